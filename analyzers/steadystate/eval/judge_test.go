package eval

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/faultline/faultline/schemas"
)

func tol(t *testing.T, expr string) schemas.Tolerance {
	t.Helper()
	tl, err := schemas.ParseTolerance(expr)
	if err != nil {
		t.Fatal(err)
	}
	return tl
}

var (
	nan  = math.NaN()
	pinf = math.Inf(1)
	ninf = math.Inf(-1)
)

func TestJudge(t *testing.T) {
	slow := []float64{0.30, 0.28, 0.35, 0.22, 0.31, 0.29, 0.33, 0.27, 0.36, 0.30, 0.32, 0.34}
	fast := []float64{0.21, 0.22, 0.19, 0.25, 0.20, 0.23, 0.24, 0.18, 0.22, 0.21, 0.26, 0.20}
	cases := []struct {
		name         string
		tol          string
		exp, ctl     []float64
		want         schemas.Verdict
		expMean      float64 // checked when the group has data
		ctlMean      float64
		expN, ctlN   int
		noControl    bool    // Groups.Control must be nil
		bound        float64 // checked when not 0
		msg          string
		wantPValue   bool
		pValueAtMost float64
	}{
		{name: "absolute ok", tol: "< 0.01", exp: []float64{0.004, 0.006}, want: schemas.VerdictOK, expMean: 0.005, expN: 2, noControl: true, bound: 0.01, msg: "experimental 0.005 is < 0.01"},
		{name: "absolute failing", tol: "< 0.01", exp: []float64{0.02}, want: schemas.VerdictFailing, expMean: 0.02, expN: 1, noControl: true, bound: 0.01, msg: "experimental 0.02 is not < 0.01"},
		{name: "strict bound excludes equality", tol: "< 1", exp: []float64{1}, want: schemas.VerdictFailing, expMean: 1, expN: 1, noControl: true},
		{name: "inclusive bound includes equality", tol: "<= 1", exp: []float64{1}, want: schemas.VerdictOK, expMean: 1, expN: 1, noControl: true},
		{name: "greater", tol: "> 0.5", exp: []float64{0.4, 0.8}, want: schemas.VerdictOK, expMean: 0.6, expN: 2, noControl: true},
		{name: "greater or equal failing", tol: ">= 0.9", exp: []float64{0.5}, want: schemas.VerdictFailing, expMean: 0.5, expN: 1, noControl: true},
		{name: "absolute reports control when given", tol: "< 1", exp: []float64{0.5}, ctl: []float64{3, 5}, want: schemas.VerdictOK, expMean: 0.5, expN: 1, ctlMean: 4, ctlN: 2},
		{name: "NaN samples dropped", tol: "< 0.01", exp: []float64{nan, 0.002, nan}, want: schemas.VerdictOK, expMean: 0.002, expN: 1, noControl: true},
		{name: "only NaN is no data", tol: "< 0.01", exp: []float64{nan}, want: schemas.VerdictNoData, expN: 0, noControl: true, msg: "no data from the experimental group"},
		{name: "nothing is no data", tol: "< 0.01", want: schemas.VerdictNoData, noControl: true},
		{name: "+Inf fails an upper bound", tol: "< 1", exp: []float64{1, pinf}, want: schemas.VerdictFailing, expMean: pinf, expN: 2, noControl: true},
		{name: "+Inf and -Inf: undefined mean", tol: "< 1", exp: []float64{ninf, pinf}, want: schemas.VerdictNoData, expMean: nan, expN: 2, noControl: true, msg: "undefined"},
		{name: "range ok", tol: "in [0.9, 1]", exp: []float64{0.9, 1}, want: schemas.VerdictOK, expMean: 0.95, expN: 2, noControl: true, msg: "within [0.9, 1]"},
		{name: "range bounds are inclusive", tol: "in [2, 2]", exp: []float64{2}, want: schemas.VerdictOK, expMean: 2, expN: 1, noControl: true},
		{name: "range failing", tol: "in [0.9, 1]", exp: []float64{0.5}, want: schemas.VerdictFailing, expMean: 0.5, expN: 1, noControl: true, msg: "outside [0.9, 1]"},
		{name: "range no data", tol: "in [0.9, 1]", exp: []float64{}, want: schemas.VerdictNoData, noControl: true},
		{name: "range undefined mean", tol: "in [0, 1]", exp: []float64{ninf, pinf}, want: schemas.VerdictNoData, expMean: nan, expN: 2, noControl: true},
		{name: "relative ok", tol: "<= control * 1.2", exp: []float64{0.24}, ctl: []float64{0.21}, want: schemas.VerdictOK, expMean: 0.24, expN: 1, ctlMean: 0.21, ctlN: 1, bound: 0.252},
		{name: "relative failing", tol: "<= control * 1.2", exp: []float64{0.48, 0.5}, ctl: []float64{0.21, 0.21}, want: schemas.VerdictFailing, expMean: 0.49, expN: 2, ctlMean: 0.21, ctlN: 2, bound: 0.252, msg: "experimental 0.49 is not <= control 0.21 × 1.2 = 0.252"},
		{name: "relative uses the means of the window", tol: "<= control", exp: []float64{1, 3}, ctl: []float64{2, 2.5}, want: schemas.VerdictOK, expMean: 2, expN: 2, ctlMean: 2.25, ctlN: 2, bound: 2.25},
		{name: "relative lower bound", tol: "> control * 0.8", exp: []float64{70}, ctl: []float64{100}, want: schemas.VerdictFailing, expMean: 70, expN: 1, ctlMean: 100, ctlN: 1, bound: 80},
		{name: "relative at zero", tol: "<= control * 1.2", exp: []float64{0}, ctl: []float64{0}, want: schemas.VerdictOK, expMean: 0, expN: 1, ctlMean: 0, ctlN: 1},
		{name: "relative without control data", tol: "<= control * 1.2", exp: []float64{0.2}, ctl: []float64{nan}, want: schemas.VerdictNoData, expMean: 0.2, expN: 1, ctlN: 0, msg: "no data from the control group"},
		{name: "relative without control slice", tol: "<= control * 1.2", exp: []float64{0.2}, want: schemas.VerdictNoData, expMean: 0.2, expN: 1},
		{name: "relative with an undefined control mean", tol: "<= control", exp: []float64{1}, ctl: []float64{pinf, ninf}, want: schemas.VerdictNoData, expMean: 1, expN: 1, ctlMean: nan, ctlN: 2},
		{name: "relative with +Inf control", tol: "<= control * 2", exp: []float64{5}, ctl: []float64{pinf}, want: schemas.VerdictOK, expMean: 5, expN: 1, ctlMean: pinf, ctlN: 1},
		{name: "statistical differs", tol: "mann-whitney-u p=0.01", exp: slow, ctl: fast, want: schemas.VerdictFailing, expMean: mean(slow), expN: 12, ctlMean: mean(fast), ctlN: 12, wantPValue: true, pValueAtMost: 0.001, msg: "experimental and control differ"},
		{name: "statistical same", tol: "mann-whitney-u p=0.05", exp: fast[:6], ctl: fast[6:], want: schemas.VerdictOK, expMean: mean(fast[:6]), expN: 6, ctlMean: mean(fast[6:]), ctlN: 6, wantPValue: true, pValueAtMost: 1, msg: "no difference"},
		{name: "statistical, better is also different", tol: "mann-whitney-u p=0.01", exp: fast, ctl: slow, want: schemas.VerdictFailing, expMean: mean(fast), expN: 12, ctlMean: mean(slow), ctlN: 12, wantPValue: true, pValueAtMost: 0.001},
		{name: "statistical with too few samples", tol: "mann-whitney-u p=0.05", exp: []float64{9, 9, 9}, ctl: []float64{1, 1, 1}, want: schemas.VerdictNoData, expMean: 9, expN: 3, ctlMean: 1, ctlN: 3, msg: "cannot reach p < 0.05 (the smallest possible p is 0.1)"},
		{name: "statistical at the smallest useful size", tol: "mann-whitney-u p=0.05", exp: []float64{9, 9.5, 10, 11}, ctl: []float64{1, 2, 3, 4}, want: schemas.VerdictFailing, expMean: 9.875, expN: 4, ctlMean: 2.5, ctlN: 4, wantPValue: true, pValueAtMost: 2.0 / 70},
		{name: "statistical without control", tol: "mann-whitney-u", exp: []float64{1, 2, 3, 4}, want: schemas.VerdictNoData, expMean: 2.5, expN: 4},
		{name: "statistical, all equal", tol: "mann-whitney-u", exp: []float64{0, 0, 0, 0, 0}, ctl: []float64{0, 0, 0, 0, 0}, want: schemas.VerdictOK, expMean: 0, expN: 5, ctlMean: 0, ctlN: 5, wantPValue: true, pValueAtMost: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Judge(tol(t, tc.tol), tc.exp, tc.ctl)
			if err != nil {
				t.Fatal(err)
			}
			if r.Verdict != tc.want {
				t.Errorf("verdict %s, want %s (%s)", r.Verdict, tc.want, r.Message)
			}
			checkGroup(t, "experimental", &r.Groups.Experimental, tc.expMean, tc.expN)
			switch {
			case tc.noControl && r.Groups.Control != nil:
				t.Errorf("control group reported: %+v", r.Groups.Control)
			case !tc.noControl:
				if r.Groups.Control == nil {
					t.Fatal("no control group")
				}
				checkGroup(t, "control", r.Groups.Control, tc.ctlMean, tc.ctlN)
			}
			if tc.bound != 0 && (r.Bound == nil || !near(*r.Bound, tc.bound, 1e-12)) {
				t.Errorf("bound %v, want %v", r.Bound, tc.bound)
			}
			if tc.wantPValue != (r.PValue != nil) {
				t.Errorf("p-value %v, want one: %v", r.PValue, tc.wantPValue)
			} else if r.PValue != nil && (*r.PValue > tc.pValueAtMost+1e-12 || *r.PValue < 0) {
				t.Errorf("p-value %v, want at most %v", *r.PValue, tc.pValueAtMost)
			}
			if !strings.Contains(r.Message, tc.msg) {
				t.Errorf("message %q does not contain %q", r.Message, tc.msg)
			}
			if r.Message == "" {
				t.Error("no message")
			}
		})
	}
}

func checkGroup(t *testing.T, name string, g *schemas.GroupValue, m float64, n int) {
	t.Helper()
	if g.Samples != n {
		t.Errorf("%s: %d samples, want %d", name, g.Samples, n)
	}
	if n == 0 {
		if g.Value != nil {
			t.Errorf("%s: value %v without samples", name, *g.Value)
		}
		return
	}
	if g.Value == nil {
		t.Fatalf("%s: no value", name)
	}
	got := float64(*g.Value)
	if math.IsNaN(m) != math.IsNaN(got) || (!math.IsNaN(m) && !near(got, m, 1e-12)) {
		t.Errorf("%s: mean %v, want %v", name, got, m)
	}
}

func TestJudgeRefusesInvalidTolerances(t *testing.T) {
	one := 1.0
	for _, tl := range []schemas.Tolerance{
		{},
		{Kind: schemas.ToleranceAbsolute, Op: "<"},
		{Kind: schemas.ToleranceRelative, Op: "<=", Factor: new(float64)},
		{Kind: schemas.ToleranceStatistical, Test: "t-test", P: &one},
		{Kind: "vibes"},
	} {
		if _, err := Judge(tl, []float64{1}, []float64{1}); err == nil {
			t.Errorf("%+v: no error", tl)
		}
	}
}

// A Judge result fills a Deviation that satisfies the deviation schema,
// whatever the verdict.
func TestJudgeMakesValidDeviations(t *testing.T) {
	exprs := []string{"< 0.01", "in [0, 1]", "<= control * 1.2", "mann-whitney-u p=0.05"}
	data := [][2][]float64{
		{{0.001}, {0.002}},
		{{5, 6, 7, 8, 9}, {0, 0, 0, 0, 0}},
		{{nan}, {1}},
		{{1}, nil},
		{{pinf}, {1}},
	}
	for _, expr := range exprs {
		tl := tol(t, expr)
		tracker := &Tracker{Hysteresis: 2, GapIntervals: 3}
		for i, d := range data {
			r, err := Judge(tl, d[0], d[1])
			if err != nil {
				t.Fatal(err)
			}
			step, err := tracker.Observe(r.Verdict)
			if err != nil {
				t.Fatal(err)
			}
			at := time.Date(2025, 6, 3, 11, 0, i, 0, time.UTC)
			dev := schemas.Deviation{
				ID:                  schemas.DeviationID("exp-1", "ind", at),
				ExperimentID:        "exp-1",
				Indicator:           "ind",
				Groups:              r.Groups,
				Tolerance:           tl,
				Verdict:             step.Verdict,
				PValue:              r.PValue,
				ConsecutiveFailures: step.NonOK,
				Hysteresis:          tracker.Hysteresis,
				Message:             r.Message,
				EvaluatedAt:         at,
			}
			dev.Abort, _ = Abort(schemas.AbortWhen{Deviation: true}, "ind", step)
			doc, err := json.Marshal(&dev)
			if err != nil {
				t.Fatal(err)
			}
			if err := schemas.Validate(schemas.KindDeviation, doc); err != nil {
				t.Errorf("%s, %v: %v\n%s", expr, d, err, doc)
			}
		}
	}
}

func TestMean(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
		n    int
	}{
		{[]float64{1, 2, 3}, 2, 3},
		{[]float64{nan, 4}, 4, 1},
		{nil, nan, 0},
		{[]float64{nan}, nan, 0},
		{[]float64{1, pinf}, pinf, 2},
		{[]float64{ninf, 1}, ninf, 2},
		{[]float64{ninf, pinf}, nan, 2},
		{[]float64{math.MaxFloat64, math.MaxFloat64}, math.MaxFloat64, 2},
		{[]float64{1e16, 1, -1e16, 1}, 0.5, 4},
	} {
		got, n := Mean(tc.in)
		if n != tc.n || (math.IsNaN(tc.want) != math.IsNaN(got)) || (!math.IsNaN(got) && !near(got, tc.want, 1e-12)) {
			t.Errorf("Mean(%v) = %v, %d; want %v, %d", tc.in, got, n, tc.want, tc.n)
		}
	}
}
