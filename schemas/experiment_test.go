package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

func experimentFiles(t testing.TB, suffix string) []string {
	t.Helper()
	var files []string
	for _, ext := range []string{".yaml", ".json"} {
		m, err := filepath.Glob(filepath.Join("testdata", "experiments", "*"+suffix+ext))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	return files
}

func mustParseExperimentFile(t testing.TB, name string) *Experiment {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "experiments", name))
	if err != nil {
		t.Fatal(err)
	}
	e, err := ParseExperiment(b)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return e
}

// sameExperiment compares two experiments by their JSON form (which is
// what a file holds, nil and empty maps alike) and parsed tolerances.
func sameExperiment(t testing.TB, a, b *Experiment) {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ja, jb) {
		t.Fatalf("experiments differ\n%s\n%s", ja, jb)
	}
	for i := range a.SteadyState {
		if !reflect.DeepEqual(a.SteadyState[i].ParsedTolerance, b.SteadyState[i].ParsedTolerance) {
			t.Fatalf("steady_state[%d]: parsed tolerances differ: %+v, %+v", i, a.SteadyState[i].ParsedTolerance, b.SteadyState[i].ParsedTolerance)
		}
	}
}

// testdata/experiments/*.good.{yaml,json} must parse, their JSON form must
// satisfy the experiment schema and parse back to the same experiment;
// *.bad.yaml must fail with an error containing the text of their first
// line ("# want: text").
func TestExperimentFiles(t *testing.T) {
	good, bad := experimentFiles(t, ".good"), experimentFiles(t, ".bad")
	if len(good) < 4 || len(bad) < 40 {
		t.Fatalf("%d good and %d bad experiment files, want more", len(good), len(bad))
	}
	for _, p := range good {
		t.Run(filepath.Base(p), func(t *testing.T) {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			e, err := ParseExperiment(data)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Validate(); err != nil {
				t.Fatalf("parsed experiment does not validate: %v", err)
			}
			doc, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			if err := ValidateExperimentJSON(doc); err != nil {
				t.Fatalf("schema refuses the JSON form: %v\n%s", err, doc)
			}
			again, err := ParseExperiment(doc)
			if err != nil {
				t.Fatalf("JSON form does not parse: %v\n%s", err, doc)
			}
			sameExperiment(t, e, again)
			for i := range e.Method {
				cmd, err := e.Command(i, "cmd-1", e.RunID(time.Now()), time.Now())
				if err != nil {
					t.Fatalf("method[%d]: %v", i, err)
				}
				cmd.Issuer = "test"
				raw, _ := json.Marshal(cmd)
				if err := Validate(KindFaultCommand, raw); err != nil {
					t.Fatalf("method[%d]: command invalid: %v\n%s", i, err, raw)
				}
			}
		})
	}
	for _, p := range bad {
		t.Run(filepath.Base(p), func(t *testing.T) {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(data), "\n")
			want, ok := strings.CutPrefix(first, "# want: ")
			if !ok || want == "" {
				t.Fatalf("first line must be '# want: <error text>'")
			}
			e, err := ParseExperiment(data)
			if err == nil {
				t.Fatalf("parsed, want an error containing %q", want)
			}
			if e != nil {
				t.Error("experiment returned with an error")
			}
			var ee *ExperimentError
			if !errors.As(err, &ee) || len(ee.Problems) == 0 {
				t.Fatalf("error is not an *ExperimentError with problems: %v", err)
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error does not contain %q:\n%v", want, err)
			}
		})
	}
}

func TestExperimentDefaults(t *testing.T) {
	e := mustParseExperimentFile(t, "minimal.good.yaml")
	if e.Hysteresis != 2 || e.Interval.Std() != 10*time.Second || e.Warmup.Std() != 30*time.Second ||
		e.HeartbeatTimeout.Std() != 15*time.Second {
		t.Errorf("timing defaults: hysteresis %d, interval %s, warmup %s, heartbeat %s", e.Hysteresis, e.Interval, e.Warmup, e.HeartbeatTimeout)
	}
	a := e.AbortWhen
	if !a.Deviation || a.Finding.MinSeverity != SeverityHigh || a.TelemetryGap.Intervals != 3 {
		t.Errorf("abort defaults: %+v", a)
	}
	ind := e.SteadyState[0]
	if ind.Window.Std() != 10*time.Second || ind.ParsedTolerance.Kind != ToleranceAbsolute || *ind.ParsedTolerance.Value != 1 || ind.ParsedTolerance.Op != "<" {
		t.Errorf("indicator defaults: %+v", ind)
	}
	st := e.Method[0]
	if st.Name != "0-pod-kill" || st.Mode.Type != ModeOne || st.Start != 0 || e.MethodDuration() != time.Minute {
		t.Errorf("step defaults: %+v", st)
	}

	e = mustParseExperimentFile(t, "partition-latency.good.yaml")
	if w := e.SteadyState[1].Window.Std(); w != 2*time.Minute {
		t.Errorf("explicit window %s", w)
	}
	if e.Warmup.Std() != 30*time.Second || e.Hysteresis != 3 {
		t.Errorf("warmup %s hysteresis %d", e.Warmup, e.Hysteresis)
	}
	if e.MethodDuration() != 3*time.Minute+30*time.Second {
		t.Errorf("method duration %s", e.MethodDuration())
	}

	e = mustParseExperimentFile(t, "json-form.good.json")
	if e.AbortWhen.Deviation || e.AbortWhen.Finding.MinSeverity != SeverityCritical || e.AbortWhen.TelemetryGap.Intervals != 5 {
		t.Errorf("explicit abort_when lost: %+v", e.AbortWhen)
	}
	if e.SteadyState[0].Replicas.Kind != WorkloadDeployment || e.SteadyState[1].Metric.Aggregate != AggregateSum {
		t.Errorf("source defaults: %+v %+v", e.SteadyState[0].Replicas, e.SteadyState[1].Metric)
	}

	// Defaults that depend on the interval and on the tolerance.
	e = NewExperiment()
	e.Interval = Duration(20 * time.Second)
	e.SteadyState = []Indicator{
		{Name: "a", PromQL: "x{{.Selector}}", Tolerance: "mann-whitney-u"},
		{Name: "b", Events: &EventsSource{Reasons: []string{"BackOff"}}, Tolerance: "< 1"},
		{Name: "c", Events: &EventsSource{Reasons: []string{"BackOff"}}, Tolerance: "< 1"},
		{Name: "d", Replicas: &ReplicasSource{}, Tolerance: "bogus"},
	}
	e.ApplyDefaults()
	for i, want := range []time.Duration{200 * time.Second, time.Minute, time.Minute, 20 * time.Second} {
		if got := e.SteadyState[i].Window.Std(); got != want {
			t.Errorf("steady_state[%d] window %s, want %s", i, got, want)
		}
	}
	if e.Warmup.Std() != time.Minute {
		t.Errorf("warmup %s, want 3 × 20s", e.Warmup)
	}
	if p := e.SteadyState[0].ParsedTolerance.P; p == nil || *p != DefaultStatisticalP {
		t.Errorf("default p: %v", p)
	}
	if e.SteadyState[3].ParsedTolerance.Kind != "" {
		t.Error("an invalid tolerance was parsed")
	}
	e.Interval = Duration(2 * time.Minute)
	e.SteadyState[1].Window = 0
	e.ApplyDefaults()
	if got := e.SteadyState[1].Window.Std(); got != 2*time.Minute {
		t.Errorf("events window with a 2m interval: %s", got)
	}

	// ApplyDefaults is idempotent and fills zero values of a bare struct.
	var bare Experiment
	bare.ApplyDefaults()
	once := bare
	bare.ApplyDefaults()
	if !reflect.DeepEqual(once, bare) {
		t.Error("ApplyDefaults is not idempotent")
	}
	if bare.Hysteresis != 2 || bare.Interval.Std() != 10*time.Second || bare.AbortWhen.TelemetryGap.Intervals != 3 || bare.HeartbeatTimeout.Std() != 15*time.Second {
		t.Errorf("ApplyDefaults on a zero experiment: %+v", bare)
	}
}

func TestExperimentExampleContent(t *testing.T) {
	e := mustParseExperimentFile(t, "pod-kill-error-rate.good.yaml")
	if e.Name != "checkout-pod-kill" || e.Cluster != "prod-eu-1" || len(e.SteadyState) != 3 || len(e.Method) != 1 {
		t.Fatalf("unexpected experiment: %+v", e)
	}
	q, err := ExpandPromQL(e.SteadyState[0].PromQL, GroupExperimental, e.Groups.Experimental)
	if err != nil {
		t.Fatal(err)
	}
	want := `sum(rate(http_requests_total{code=~"5..",namespace="shop",app="checkout",track="experimental"}[1m])) / sum(rate(http_requests_total{namespace="shop",app="checkout",track="experimental"}[1m]))`
	if q != want {
		t.Errorf("expanded query\n got %s\nwant %s", q, want)
	}
	st := e.Method[0]
	if st.Mode != (Mode{Type: ModePercent, Value: 50}) || st.PodKill == nil || *st.PodKill.GracePeriodSeconds != 0 || st.PodKill.Interval.Std() != 30*time.Second {
		t.Errorf("step: %+v", st)
	}

	e = mustParseExperimentFile(t, "partition-latency.good.yaml")
	rel := e.SteadyState[0].ParsedTolerance
	if rel.Kind != ToleranceRelative || rel.Op != "<=" || *rel.Factor != 1.2 || rel.Expr != "<= control * 1.2" {
		t.Errorf("relative tolerance: %+v", rel)
	}
	st2 := e.SteadyState[1].ParsedTolerance
	if st2.Kind != ToleranceStatistical || st2.Test != TestMannWhitneyU || *st2.P != 0.01 {
		t.Errorf("statistical tolerance: %+v", st2)
	}
	np := e.Method[0].NetworkPartition
	if np.Direction != DirectionEgress || np.Peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "payments" {
		t.Errorf("partition: %+v", np)
	}
}

func TestParseToleranceGrammar(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	cases := []struct {
		in   string
		want Tolerance
	}{
		{"< 0.01", Tolerance{Kind: ToleranceAbsolute, Op: "<", Value: f(0.01)}},
		{"<=250", Tolerance{Kind: ToleranceAbsolute, Op: "<=", Value: f(250)}},
		{"  > -1.5e3  ", Tolerance{Kind: ToleranceAbsolute, Op: ">", Value: f(-1500)}},
		{">= .5", Tolerance{Kind: ToleranceAbsolute, Op: ">=", Value: f(0.5)}},
		{"≤ 3", Tolerance{Kind: ToleranceAbsolute, Op: "<=", Value: f(3)}},
		{"≥ +3.", Tolerance{Kind: ToleranceAbsolute, Op: ">=", Value: f(3)}},
		{"experimental < 0.01", Tolerance{Kind: ToleranceAbsolute, Op: "<", Value: f(0.01)}},
		{"experimental<0", Tolerance{Kind: ToleranceAbsolute, Op: "<", Value: f(0)}},
		{"in [0.9, 1.0]", Tolerance{Kind: ToleranceRange, Min: f(0.9), Max: f(1)}},
		{"in[-1,1]", Tolerance{Kind: ToleranceRange, Min: f(-1), Max: f(1)}},
		{"experimental in [2, 2]", Tolerance{Kind: ToleranceRange, Min: f(2), Max: f(2)}},
		{"<= control * 1.2", Tolerance{Kind: ToleranceRelative, Op: "<=", Factor: f(1.2)}},
		{"<= control", Tolerance{Kind: ToleranceRelative, Op: "<=", Factor: f(1)}},
		{"> control*0.8", Tolerance{Kind: ToleranceRelative, Op: ">", Factor: f(0.8)}},
		{"≤ control × 1.5", Tolerance{Kind: ToleranceRelative, Op: "<=", Factor: f(1.5)}},
		{"experimental <= 1.2 * control", Tolerance{Kind: ToleranceRelative, Op: "<=", Factor: f(1.2)}},
		{"mann-whitney-u p=0.05", Tolerance{Kind: ToleranceStatistical, Test: TestMannWhitneyU, P: f(0.05)}},
		{"mann-whitney-u", Tolerance{Kind: ToleranceStatistical, Test: TestMannWhitneyU, P: f(0.05)}},
		{"mann-whitney-u  p = 1e-3", Tolerance{Kind: ToleranceStatistical, Test: TestMannWhitneyU, P: f(0.001)}},
	}
	for _, tc := range cases {
		got, err := ParseTolerance(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		tc.want.Expr = strings.TrimSpace(tc.in)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q:\n got %s\nwant %s", tc.in, dumpTol(got), dumpTol(tc.want))
		}
		if err := got.Validate(); err != nil {
			t.Errorf("%q: parsed tolerance does not validate: %v", tc.in, err)
		}
		back, err := ParseTolerance(FormatTolerance(got))
		if err != nil {
			t.Errorf("%q: canonical form %q does not parse: %v", tc.in, FormatTolerance(got), err)
			continue
		}
		back.Expr = got.Expr
		if !reflect.DeepEqual(back, got) {
			t.Errorf("%q: canonical form %q parses to %s", tc.in, FormatTolerance(got), dumpTol(back))
		}
	}

	bad := []struct{ in, want string }{
		{"", "tolerance is empty"},
		{"   ", "tolerance is empty"},
		{"0.01", `"0.01": starts with a number: write the comparison first, e.g. "< 0.01"`},
		{"<", `"<": < needs a bound`},
		{"< x", `bound is not a number or control: "x"`},
		{"< 5ms", `bound is not a number or control: "5ms"`},
		{"< 1e999", "bound 1e999 is out of range"},
		{"< 1 2", `unexpected "2" after "< 1"`},
		{"<= control * x", `"<= control * x": factor is not a number: "x"`},
		{"<= control *", "factor is not a number: the end"},
		{"<= control * -1", "factor must be greater than 0 (got -1)"},
		{"<= 2 * x", `expected "control" after 2 *, found "x"`},
		{"<= control + 1", `unexpected character '+'`},
		{"== 1", `unknown operator "=="`},
		{"= 1", `expected a comparison`},
		{"!= 1", `unknown operator "!="`},
		{"in 0.9, 1", `expected [min, max] after in, found "0.9"`},
		{"in [0.9 1]", `expected ',' after the range min, found "1"`},
		{"in [0.9, 1", `expected ']' after the range max, found the end`},
		{"in [a, 1]", `range min is not a number: "a"`},
		{"in [0, b]", `range max is not a number: "b"`},
		{"in (0, 1]", "ranges are closed"},
		{"in [0, 1)", "ranges are closed"},
		{"in [2, 1]", "range min 2 is greater than max 1"},
		{"mann-whitney-u p=0", "p must be between 0 and 1, exclusive (got 0)"},
		{"mann-whitney-u p=1", "p must be between 0 and 1, exclusive (got 1)"},
		{"mann-whitney-u p<0.05", `expected p=<significance>, found p "<"`},
		{"mann-whitney-u p=x", `p is not a number: "x"`},
		{"mann-whitney-u q=0.05", `unexpected "q" after "mann-whitney-u"`},
		{"experimental mann-whitney-u", "a statistical test compares both groups"},
		{"t-test", `unknown test "t-test"`},
		{"kolmogorov-smirnov p=0.05", `unknown test "kolmogorov-smirnov"`},
		{"Control <= 1", "expected a comparison"},
		{"< 1 %", `unexpected character '%'`},
		{"< \xff", "not valid UTF-8"},
		{"<= control experimental", `unexpected "experimental" after "<= control"`},
	}
	for _, tc := range bad {
		_, err := ParseTolerance(tc.in)
		if err == nil {
			t.Errorf("%q: parsed, want error %q", tc.in, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %q does not contain %q", tc.in, err, tc.want)
		}
	}
}

func dumpTol(t Tolerance) string {
	b, _ := json.Marshal(t)
	return string(b)
}

func TestToleranceValidate(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	cases := []struct {
		tol  Tolerance
		want string // "" for valid
	}{
		{Tolerance{Kind: ToleranceAbsolute, Op: "<", Value: f(1)}, ""},
		{Tolerance{Kind: ToleranceAbsolute, Op: "<"}, "absolute tolerance needs value"},
		{Tolerance{Kind: ToleranceAbsolute, Value: f(1)}, "absolute tolerance needs an op"},
		{Tolerance{Kind: ToleranceAbsolute, Op: "=", Value: f(1)}, `op "=" is not one of`},
		{Tolerance{Kind: ToleranceAbsolute, Op: "<", Value: f(math.NaN())}, "value must be a finite number"},
		{Tolerance{Kind: ToleranceRange, Min: f(0), Max: f(math.Inf(1))}, "max must be a finite number"},
		{Tolerance{Kind: ToleranceRange, Min: f(1)}, "range tolerance needs max"},
		{Tolerance{Kind: ToleranceRange, Min: f(1), Max: f(0)}, "range min 1 is greater than max 0"},
		{Tolerance{Kind: ToleranceRelative, Op: "<=", Factor: f(1.2)}, ""},
		{Tolerance{Kind: ToleranceRelative, Op: "<="}, "relative tolerance needs factor"},
		{Tolerance{Kind: ToleranceRelative, Op: "<=", Factor: f(0)}, "factor must be greater than 0"},
		{Tolerance{Kind: ToleranceStatistical, Test: TestMannWhitneyU, P: f(0.05)}, ""},
		{Tolerance{Kind: ToleranceStatistical, Test: "t-test", P: f(0.05)}, `unknown test "t-test"`},
		{Tolerance{Kind: ToleranceStatistical, Test: TestMannWhitneyU}, "statistical tolerance needs p"},
		{Tolerance{Kind: ToleranceStatistical, Test: TestMannWhitneyU, P: f(1.5)}, "p must be between 0 and 1"},
		{Tolerance{}, "tolerance has no kind"},
		{Tolerance{Kind: "fuzzy"}, `unknown tolerance kind "fuzzy"`},
	}
	for _, tc := range cases {
		err := tc.tol.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", dumpTol(tc.tol), err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", dumpTol(tc.tol), err, tc.want)
		}
	}
	if !(&Tolerance{Kind: ToleranceRelative}).NeedsControl() || !(&Tolerance{Kind: ToleranceStatistical}).NeedsControl() ||
		(&Tolerance{Kind: ToleranceAbsolute}).NeedsControl() || (&Tolerance{Kind: ToleranceRange}).NeedsControl() {
		t.Error("NeedsControl")
	}
}

func TestPromQLMatchers(t *testing.T) {
	cases := []struct {
		g    GroupSelector
		want string
	}{
		{GroupSelector{Namespace: "shop"}, `namespace="shop"`},
		{GroupSelector{Namespace: "shop", Selector: &metav1.LabelSelector{}}, `namespace="shop"`},
		{GroupSelector{Namespace: "shop", Selector: &metav1.LabelSelector{
			MatchLabels: map[string]string{"track": "canary", "app.kubernetes.io/name": "web", "9lives": "x"},
		}}, `namespace="shop",_9lives="x",app_kubernetes_io_name="web",track="canary"`},
		{GroupSelector{Namespace: "shop", Selector: &metav1.LabelSelector{
			MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "track", Operator: metav1.LabelSelectorOpIn, Values: []string{"a.b", "c"}},
				{Key: "tier", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"db"}},
				{Key: "canary", Operator: metav1.LabelSelectorOpExists},
				{Key: "legacy", Operator: metav1.LabelSelectorOpDoesNotExist},
			},
		}}, `namespace="shop",track=~"a\\.b|c",tier!~"db",canary!="",legacy=""`},
	}
	for _, tc := range cases {
		if got := tc.g.PromQLMatchers(); got != tc.want {
			t.Errorf("%+v:\n got %s\nwant %s", tc.g, got, tc.want)
		}
	}
}

func TestExpandPromQL(t *testing.T) {
	g := GroupSelector{Namespace: "shop", Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"track": "canary"}}}
	m := `namespace="shop",track="canary"`
	cases := []struct{ tmpl, want, err string }{
		{`sum(rate(http_requests_total{code=~"5..",{{.Matchers}}}[1m])) / sum(rate(http_requests_total{{{.Matchers}}}[1m]))`,
			`sum(rate(http_requests_total{code=~"5..",` + m + `}[1m])) / sum(rate(http_requests_total{` + m + `}[1m]))`, ""},
		{`up{{.Selector}}`, `up{` + m + `}`, ""},
		{`up{ {{ .Matchers }} }`, `up{ ` + m + ` }`, ""},
		{`x{namespace="{{.Namespace}}",track="{{.Group}}"}`, `x{namespace="shop",track="experimental"}`, ""},
		{`no variables`, `no variables`, ""},
		{`x{{{.Labels}}}`, "", "unknown template variable {{.Labels}}"},
		{`x{{{.matchers}}}`, "", "unknown template variable {{.matchers}}"},
		{`x{{.Matchers}`, "", "malformed template variable"},
		{`x{{ .Matchers.Foo }}`, "", "malformed template variable"},
	}
	for _, tc := range cases {
		got, err := ExpandPromQL(tc.tmpl, GroupExperimental, g)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want %q", tc.tmpl, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.tmpl, err)
		case tc.err == "" && got != tc.want:
			t.Errorf("%s:\n got %s\nwant %s", tc.tmpl, got, tc.want)
		}
	}
}

func TestCheckPromQLShape(t *testing.T) {
	for _, ok := range []string{
		`sum(rate(x{a="}"}[1m]))`,
		`x{a='(['}`,
		"x{a=`\\`}",
		`x{a="\")"}`,
		`histogram_quantile(0.99, sum by (le) (rate(x_bucket{a="b"}[5m])))`,
	} {
		if err := checkPromQLShape(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for q, want := range map[string]string{
		``:                   "query is empty",
		`sum(x`:              "unclosed '('",
		`sum(x))`:            "unbalanced ')'",
		`x{a="b"]`:           "unbalanced ']'",
		`x{a="b}`:            "unterminated string literal",
		`x{a='b}`:            "unterminated string literal",
		"x{a=`b}":            "unterminated string literal",
		`rate(x{a="b"}[1m)]`: "unbalanced ')'",
	} {
		if err := checkPromQLShape(q); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", q, err, want)
		}
	}
}

func TestSelectorsIntersect(t *testing.T) {
	ml := func(kv ...string) *metav1.LabelSelector {
		s := &metav1.LabelSelector{MatchLabels: map[string]string{}}
		for i := 0; i+1 < len(kv); i += 2 {
			s.MatchLabels[kv[i]] = kv[i+1]
		}
		return s
	}
	expr := func(key string, op metav1.LabelSelectorOperator, vals ...string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: op, Values: vals}}}
	}
	cases := []struct {
		name string
		a, b *metav1.LabelSelector
		want bool
	}{
		{"both everything", nil, nil, true},
		{"one everything", nil, ml("track", "a"), true},
		{"same labels", ml("app", "web"), ml("app", "web"), true},
		{"different values", ml("track", "a"), ml("track", "b"), false},
		{"different keys", ml("track", "a"), ml("tier", "b"), true},
		{"In overlaps", expr("track", "In", "a", "b"), ml("track", "b"), true},
		{"In disjoint", expr("track", "In", "a", "b"), expr("track", "In", "c"), false},
		{"NotIn excludes", ml("track", "a"), expr("track", "NotIn", "a"), false},
		{"NotIn allows absent", ml("app", "web"), expr("track", "NotIn", "a"), true},
		{"NotIn other value", ml("track", "b"), expr("track", "NotIn", "a"), true},
		{"Exists vs DoesNotExist", expr("canary", "Exists"), expr("canary", "DoesNotExist"), false},
		{"DoesNotExist vs value", expr("canary", "DoesNotExist"), ml("canary", "true"), false},
		{"DoesNotExist vs NotIn", expr("canary", "DoesNotExist"), expr("canary", "NotIn", "x"), true},
		{"both DoesNotExist", expr("canary", "DoesNotExist"), expr("canary", "DoesNotExist"), true},
		{"Exists vs NotIn", expr("track", "Exists"), expr("track", "NotIn", "a"), true},
		{"In minus NotIn", expr("track", "In", "a"), expr("track", "NotIn", "a"), false},
	}
	for _, tc := range cases {
		if got := selectorsIntersect(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
		if got := selectorsIntersect(tc.b, tc.a); got != tc.want {
			t.Errorf("%s (swapped): %v, want %v", tc.name, got, tc.want)
		}
	}
	// One selector: does it select anything at all?
	self := &metav1.LabelSelector{
		MatchLabels:      map[string]string{"track": "a"},
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "track", Operator: "In", Values: []string{"b"}}},
	}
	if selectorsIntersect(self) {
		t.Error("track=a and track in (b) selects something")
	}
	if !selectorsIntersect(ml("a", "b")) || selectorsIntersect(expr("a", "In")) {
		t.Error("single selectors")
	}
}

func TestGroupSelectorMatches(t *testing.T) {
	g := GroupSelector{Namespace: "shop", Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"track": "canary"}}}
	if !g.Matches("shop", map[string]string{"track": "canary", "pod": "x"}) {
		t.Error("member not matched")
	}
	if g.Matches("other", map[string]string{"track": "canary"}) || g.Matches("shop", map[string]string{"track": "stable"}) || g.Matches("shop", nil) {
		t.Error("non-member matched")
	}
	if !(GroupSelector{Namespace: "shop"}).Matches("shop", nil) {
		t.Error("a group without selector is the whole namespace")
	}
	bad := GroupSelector{Namespace: "shop", Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Equals"}}}}
	if bad.Matches("shop", map[string]string{"a": "b"}) {
		t.Error("an invalid selector matched")
	}
}

func TestExperimentCommand(t *testing.T) {
	e := mustParseExperimentFile(t, "anchors-and-steps.good.yaml")
	at := time.Date(2025, 6, 3, 11, 0, 0, 0, time.FixedZone("x", 3600))
	runID := e.RunID(at)
	if runID != "anchors_and_steps-20250603-100000" || !ValidKeyToken(runID) {
		t.Fatalf("RunID = %q", runID)
	}
	cmd, err := e.Command(0, "cmd-0", runID, at)
	if err != nil {
		t.Fatal(err)
	}
	want := &FaultCommand{
		ID:           "cmd-0",
		ExperimentID: runID,
		Fault:        FaultPodKill,
		Target: Target{Namespace: "shop", Selector: &metav1.LabelSelector{
			MatchLabels: map[string]string{"app": "web", "track": "canary", "tier": "frontend"},
		}},
		Mode:             Mode{Type: ModeOne},
		Duration:         Duration(2 * time.Minute),
		IssuedAt:         at.UTC(),
		HeartbeatTimeout: Duration(10 * time.Second),
	}
	if !reflect.DeepEqual(cmd, want) {
		t.Errorf("command\n got %+v\nwant %+v", cmd, want)
	}
	// The command is the caller's: changing it leaves the experiment alone.
	cmd.Target.Selector.MatchLabels["track"] = "stable"
	if e.Groups.Experimental.Selector.MatchLabels["track"] != "canary" {
		t.Fatal("the command aliases the experiment's selector")
	}

	cmd, err = e.Command(2, "cmd-2", runID, at)
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Fault != FaultNetworkPartition || cmd.Mode != (Mode{Type: ModePercent, Value: 25}) || cmd.NetworkPartition.Direction != DirectionBoth {
		t.Errorf("partition command: %+v", cmd)
	}
	cmd.NetworkPartition.Peer.CIDRs[0] = "1.2.3.4/32"
	if e.Method[2].NetworkPartition.Peer.CIDRs[0] != "10.0.0.0/16" {
		t.Fatal("the command aliases the step's peer")
	}
	if !reflect.DeepEqual(cmd.Target.Selector, e.Groups.Experimental.Selector) {
		t.Errorf("a step without selector targets the whole group: %+v", cmd.Target.Selector)
	}

	cmd, err = e.Command(1, "cmd-1", runID, at)
	if err != nil {
		t.Fatal(err)
	}
	if cmd.ResourceStarvation == nil || cmd.ResourceStarvation.MemoryBytes != 1<<30 || cmd.PodKill != nil || cmd.NetworkPartition != nil {
		t.Errorf("starvation command: %+v", cmd)
	}

	// A group without selector becomes {} (every pod of the namespace),
	// which a command needs: selector or names.
	m := mustParseExperimentFile(t, "minimal.good.yaml")
	cmd, err = m.Command(0, "c", "minimal-1", at)
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Target.Namespace != "shop-experimental" || cmd.Target.Selector == nil || len(cmd.Target.Selector.MatchLabels) != 0 {
		t.Errorf("target: %+v", cmd.Target)
	}

	for _, tc := range []struct {
		i         int
		id, expID string
		want      string
	}{
		{3, "c", "e", "no method step 3"},
		{-1, "c", "e", "no method step -1"},
		{0, "", "e", `command id "" is not a key token`},
		{0, "c", "a.b", `experiment id "a.b" is not a key token`},
		{0, "c", strings.Repeat("a", 257), "is not a key token"},
	} {
		if _, err := e.Command(tc.i, tc.id, tc.expID, at); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Command(%d, %q, %q): %v, want %q", tc.i, tc.id, tc.expID, err, tc.want)
		}
	}

	// The longest name still gives a valid experiment id.
	long := *e
	long.Name = strings.Repeat("n", MaxExperimentNameLength)
	if id := long.RunID(at); !ValidKeyToken(id) {
		t.Errorf("RunID of a %d-character name is not a key token: %d bytes", MaxExperimentNameLength, len(id))
	}
}

func TestNarrowSelector(t *testing.T) {
	group := &metav1.LabelSelector{
		MatchLabels:      map[string]string{"app": "web"},
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "track", Operator: "In", Values: []string{"canary"}}},
	}
	got, err := narrowSelector(group, &metav1.LabelSelector{
		MatchLabels:      map[string]string{"app": "web", "tier": "front"},
		MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "zone", Operator: "NotIn", Values: []string{"a"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := &metav1.LabelSelector{
		MatchLabels: map[string]string{"app": "web", "tier": "front"},
		MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "track", Operator: "In", Values: []string{"canary"}},
			{Key: "zone", Operator: "NotIn", Values: []string{"a"}},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("narrowed\n got %+v\nwant %+v", got, want)
	}
	if len(group.MatchExpressions) != 1 || len(group.MatchLabels) != 1 {
		t.Error("narrowSelector changed the group's selector")
	}
	if _, err := narrowSelector(group, &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}); err == nil {
		t.Error("a step changing a group label was accepted")
	}
	// Narrowing only ever selects a subset of the group.
	gsel, _ := metav1.LabelSelectorAsSelector(group)
	nsel, _ := metav1.LabelSelectorAsSelector(got)
	for _, lbls := range []map[string]string{
		{"app": "web", "track": "canary", "tier": "front"},
		{"app": "web", "track": "canary", "tier": "front", "zone": "a"},
		{"app": "web", "track": "stable", "tier": "front"},
		{"app": "db", "track": "canary", "tier": "front"},
	} {
		set := labels.Set(lbls)
		if nsel.Matches(set) && !gsel.Matches(set) {
			t.Errorf("%v: matched by the step, not by the group", lbls)
		}
	}
}

func TestValidateEveryProblem(t *testing.T) {
	e := NewExperiment()
	e.Name = "x y"
	e.Groups.Control = GroupSelector{Namespace: "shop"}
	e.Groups.Experimental = GroupSelector{Namespace: "shop"}
	e.SteadyState = []Indicator{
		{Name: "a", PromQL: "up", Tolerance: "< 1"},
		{Name: "a", Tolerance: "<= control * x"},
	}
	e.Method = []MethodStep{{Fault: "pod-kill", Duration: -1}}
	e.Hysteresis = 0
	e.ApplyDefaults()
	e.Hysteresis = 0
	err := e.Validate()
	var ee *ExperimentError
	if !errors.As(err, &ee) {
		t.Fatalf("not an *ExperimentError: %v", err)
	}
	var paths []string
	for _, p := range ee.Problems {
		if p.Line != 0 {
			t.Errorf("%v: a line for an experiment built in Go", p)
		}
		paths = append(paths, p.Path)
	}
	want := []string{
		"name", "cluster", "groups", "hysteresis",
		"steady_state[0].promql", "steady_state[1].name", "steady_state[1]", "steady_state[1].tolerance",
		"method[0].duration",
	}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("problems at\n %v\nwant\n %v\n%v", paths, want, err)
	}
	if !strings.HasPrefix(err.Error(), "invalid experiment:\n  - name: ") {
		t.Errorf("message: %v", err)
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path != "name" {
		t.Errorf("errors.As FieldError: %v", fe)
	}
}

func TestParseExperimentLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want string
	}{
		{"empty", "", "the file is empty"},
		{"comments only", "# nothing\n", "the file is empty"},
		{"too big", "name: x\n" + strings.Repeat("#", MaxExperimentFileSize), "more than the 1048576"},
		{"billion laughs", laughs(), "more than 100000 nodes"},
		{"scalar", "just text", "the file must be a mapping of fields"},
		{"key not a string", "{[a]: 1}", "a key must be a string"},
		{"float into int", "hysteresis: 1.5", "hysteresis: must be an integer, not the number 1.5"},
		{"huge int", "hysteresis: 99999999999999999999", "hysteresis: must be an integer"},
		{"nan", "method: [{mode: {value: .nan}}]", "mode.value: must be an integer"},
		{"mapping for string", "name: {a: b}", "name: must be a string, not a mapping"},
		{"list for duration", "interval: [1s]", "interval: must be a string, not a list"},
		{"map key path", "groups: {control: {selector: {matchLabels: {app.kubernetes.io/name: [x]}}}}", `groups.control.selector.matchLabels["app.kubernetes.io/name"]: must be a string, not a list`},
		{"unknown far off", "zzzzzzzz: 1", `zzzzzzzz: unknown field (known: name, cluster,`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseExperiment([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// laughs is a small YAML file whose aliases expand to a million nodes of
// the experiment's own types (a "billion laughs" aimed at the converter).
func laughs() string {
	rep := func(s string, n int) string { return strings.TrimSuffix(strings.Repeat(s+", ", n), ", ") }
	return "method:\n" +
		"  - &s {fault: pod-kill, duration: 1m, selector: {matchExpressions: [&r {key: k, operator: In, values: [" + rep("a", 100) + "]}, " + rep("*r", 99) + "]}}\n" +
		strings.Repeat("  - *s\n", 99)
}

func TestMinMannWhitneySamples(t *testing.T) {
	for p, want := range map[float64]int{0.05: 4, 0.01: 5, 0.1: 4, 0.2: 3, 0.5: 2, 0.001: 7} {
		if got := MinMannWhitneySamples(p); got != want {
			t.Errorf("p=%v: %d, want %d", p, got, want)
		}
	}
}

func TestExperimentSchema(t *testing.T) {
	var schema struct {
		Schema string `json:"$schema"`
		ID     string `json:"$id"`
	}
	if err := json.Unmarshal(ExperimentSchemaJSON(), &schema); err != nil || schema.ID != schemaURL("experiment") {
		t.Fatalf("schema: %v %+v", err, schema)
	}
	base := `"name":"x","cluster":"c","groups":{"control":{"namespace":"a"},"experimental":{"namespace":"b"}},` +
		`"method":[{"fault":"pod-kill","duration":"1m"}]`
	ok := `{` + base + `,"steady_state":[{"name":"i","promql":"q","tolerance":"< 1"}]}`
	if err := ValidateExperimentJSON([]byte(ok)); err != nil {
		t.Fatalf("minimal document refused: %v", err)
	}
	for doc, want := range map[string]string{
		`{` + base + `}`: "missing property 'steady_state'",
		`{` + base + `,"steady_state":[{"name":"i","promql":"q","tolerance":"< 1"}],"extra":1}`:                                                                                                                                                                 "additional properties 'extra' not allowed",
		`{` + base + `,"steady_state":[{"name":"i","promql":"q","tolerance":"about 1"}]}`:                                                                                                                                                                       "at '/steady_state/0/tolerance'",
		`{` + base + `,"steady_state":[{"name":"i","promql":"q","events":{"reasons":["X"]},"tolerance":"< 1"}]}`:                                                                                                                                                "at '/steady_state/0'",
		`{` + base + `,"steady_state":[{"name":"i","promql":"q","tolerance":"< 1"}],"abort_when":{"finding":{"min_severity":"info"}}}`:                                                                                                                          "at '/abort_when/finding/min_severity'",
		`{"name":"x","cluster":"c","groups":{"control":{"namespace":"a"},"experimental":{"namespace":"b"}},"steady_state":[{"name":"i","promql":"q","tolerance":"< 1"}],"method":[{"fault":"network-partition","duration":"1m"}]}`:                              "missing property 'network_partition'",
		`{"name":"x","cluster":"c","groups":{"control":{"namespace":"a"},"experimental":{"namespace":"b"}},"steady_state":[{"name":"i","promql":"q","tolerance":"< 1"}],"method":[{"fault":"pod-kill","duration":"1m","mode":{"type":"percent","value":101}}]}`: "at '/method/0/mode/value'",
		`{`: "invalid JSON",
	} {
		err := ValidateExperimentJSON([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s:\n%v\nwant %q", doc, err, want)
		}
	}
}
