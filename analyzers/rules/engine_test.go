package rules

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/faultline/faultline/analyzers/audit"
)

func src(files map[string]string) Source {
	fsys := fstest.MapFS{}
	for name, body := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(body)}
	}
	return Source{Name: "mem", FS: fsys, Ruleset: "test"}
}

// evaluate is Evaluate that fails the test on an error.
func evaluate(t testing.TB, e *Engine, ev *audit.Event) []Hit {
	t.Helper()
	hits, err := e.Evaluate(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// event builds an audit event; fields are raw JSON members to add.
func event(t testing.TB, verb, resource, user string, extra ...string) *audit.Event {
	t.Helper()
	res, sub, _ := strings.Cut(resource, "/")
	ref := fmt.Sprintf(`"objectRef":{"resource":%q,"subresource":%q,"namespace":"shop","name":"web"},`, res, sub)
	if resource == "" {
		ref = ""
	}
	body := fmt.Sprintf(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request","auditID":"id-%d","stage":"ResponseComplete",`+
		`"requestURI":"/x","verb":%q,"user":{"username":%q,"groups":["system:authenticated"]},"sourceIPs":["10.1.2.3"],%s`+
		`"responseStatus":{"code":200},"requestReceivedTimestamp":"2026-01-01T00:00:00Z","stageTimestamp":"2026-01-01T00:00:00.1Z"%s}`,
		seq(), verb, user, ref, strings.Join(append([]string{""}, extra...), ","))
	ev, err := audit.Parse([]byte(body))
	if err != nil {
		t.Fatalf("event: %v\n%s", err, body)
	}
	return ev
}

var counter int

func seq() int { counter++; return counter }

func TestCompileErrorsNameFileRuleAndCause(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		wants []string
	}{
		{"CEL syntax", "rules:\n- {id: bad-cel, name: n, severity: high, condition: 'verb == '}\n",
			[]string{"mem/r.yaml", "rule bad-cel", "condition: CEL:", "Syntax error"}},
		{"unknown variable", "rules:\n- {id: typo, name: n, severity: high, condition: 'verbb == \"get\"'}\n",
			[]string{"rule typo", "undeclared reference to 'verbb'"}},
		{"not a bool", "rules:\n- {id: notbool, name: n, severity: high, condition: 'verb'}\n",
			[]string{"rule notbool", "want bool"}},
		{"bad severity", "rules:\n- {id: sev, name: n, severity: urgent, condition: 'true'}\n",
			[]string{"rule sev", "severity"}},
		{"bad window", "rules:\n- {id: win, name: n, severity: low, condition: 'true', window: {duration: soon, key: verb, count: 1}}\n",
			[]string{"rule win", "window.duration", "window.count"}},
		{"unknown field", "rules:\n- {id: x, name: n, severity: low, condition: 'true', when: now}\n",
			[]string{"mem/r.yaml", "field when not found"}},
		{"bad output", "rules:\n- {id: out, name: n, severity: low, condition: 'true', output: '${nope}'}\n",
			[]string{"rule out", "output", "nope"}},
		{"duplicate id", "rules:\n- {id: d, name: n, severity: low, condition: 'true'}\n- {id: d, name: n, severity: low, condition: 'true'}\n",
			[]string{"rule d", "already defined"}},
		{"exception for a missing rule", "exceptions:\n- {rule: ghost, name: x, values: [a]}\n",
			[]string{"ghost", "no rule"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(Options{Sources: []Source{src(map[string]string{"r.yaml": tc.file})}})
			if err == nil {
				t.Fatal("compiled, want an error")
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestUserFilesExtendTheDefaults(t *testing.T) {
	user := src(map[string]string{"mine.yaml": `
lists:
  system_namespace_images: ["registry.example/ops/*"]
exceptions:
  - rule: pod-exec
    name: allowed_exec_users
    values: ["oncall-*"]
disabled: [ingress-without-tls]
rules:
  - id: list-namespaces
    name: Namespaces listed
    severity: low
    match: {verbs: [list], resources: [namespaces]}
    condition: user.username.startsWith("intern-")
`})
	e, err := Compile(Options{Sources: []Source{DefaultSource(), user}})
	if err != nil {
		t.Fatal(err)
	}
	if e.Rule("ingress-without-tls") != nil {
		t.Error("disabled rule still loaded")
	}
	if got := e.Rule("list-namespaces"); got == nil || got.Ruleset != "test" {
		t.Fatalf("user rule: %+v", got)
	}
	if l := e.Lists()["system_namespace_images"]; l[len(l)-1] != "registry.example/ops/*" {
		t.Errorf("list not extended: %v", l)
	}
	hits := func(ev *audit.Event) []string {
		var ids []string
		for _, h := range evaluate(t, e, ev) {
			ids = append(ids, h.Rule.ID)
		}
		return ids
	}
	if got := hits(event(t, "create", "pods/exec", "oncall-bob")); len(got) != 0 {
		t.Errorf("excepted user: %v", got)
	}
	if got := hits(event(t, "create", "pods/exec", "mallory")); len(got) != 1 || got[0] != "pod-exec" {
		t.Errorf("exec by mallory: %v", got)
	}
	if got := hits(event(t, "list", "namespaces", "intern-joe")); len(got) != 1 {
		t.Errorf("user rule: %v", got)
	}
}

func TestWindowCountsDistinctValuesPerKey(t *testing.T) {
	e, err := Compile(Options{Sources: []Source{src(map[string]string{"w.yaml": `
rules:
  - id: burst
    name: burst
    severity: medium
    match: {verbs: [get], resources: [secrets]}
    condition: "true"
    window: {duration: 1m, key: user.username, distinct: objectRef.name, count: 3}
`})}})
	if err != nil {
		t.Fatal(err)
	}
	at := func(sec int, user, name string) *audit.Event {
		ts := time.Date(2026, 1, 1, 0, 0, sec, 0, time.UTC).Format(time.RFC3339Nano)
		body := fmt.Sprintf(`{"auditID":"w-%d","stage":"ResponseComplete","level":"Metadata","verb":"get","requestURI":"/x",`+
			`"user":{"username":%q},"objectRef":{"resource":"secrets","name":%q},"requestReceivedTimestamp":%q,"stageTimestamp":%q}`, seq(), user, name, ts, ts)
		ev, err := audit.Parse([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	steps := []struct {
		sec        int
		user, name string
		fire       bool
	}{
		{0, "a", "s1", false},
		{1, "a", "s1", false}, // same secret: not distinct
		{2, "b", "s2", false}, // another key
		{3, "a", "s2", false},
		{4, "a", "s3", true}, // third distinct for a
		{5, "a", "s4", false},
		{70, "a", "s5", false}, // s4 left the window
		{71, "a", "s6", false},
		{72, "a", "s7", true},
	}
	for i, s := range steps {
		got := len(evaluate(t, e, at(s.sec, s.user, s.name))) == 1
		if got != s.fire {
			t.Errorf("step %d (%+v): fired %v", i, s, got)
		}
	}
}

func TestWindowKeysAreBounded(t *testing.T) {
	var evictions atomic.Uint64
	s := NewMemoryWindowStore(100, &evictions)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 1000 {
		err := s.Update(context.Background(), WindowRef{Rule: "r", Duration: time.Minute, Key: windowKey(fmt.Sprint("user-", i))}, func(st *WindowState) {
			st.add(time.Minute, 5, false, digest(fmt.Sprint(i)), 0, base.Add(time.Duration(i)*time.Millisecond))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Keys("r"); n > 100 {
		t.Errorf("%d keys kept, bound 100", n)
	}
	if evictions.Load() == 0 {
		t.Error("no evictions counted")
	}
}

func TestDecisionAndStages(t *testing.T) {
	e, err := Compile(Options{})
	if err != nil {
		t.Fatal(err)
	}
	denied := event(t, "create", "pods/exec", "mallory", `"annotations":{"authorization.k8s.io/decision":"forbid"}`)
	// A denied exec is a denial, not an exec.
	denied.Code = 403
	for _, h := range evaluate(t, e, denied) {
		if h.Rule.ID == "pod-exec" {
			t.Error("pod-exec fired on a refused exec")
		}
	}
	rr := event(t, "create", "pods/exec", "mallory")
	rr.Stage = "RequestReceived"
	if hits := evaluate(t, e, rr); len(hits) != 0 {
		t.Errorf("RequestReceived evaluated: %v", hits)
	}
}

func TestOutputAndDefaultMessage(t *testing.T) {
	e, err := Compile(Options{Sources: []Source{src(map[string]string{"o.yaml": `
rules:
  - {id: with-output, name: With output, severity: low, condition: "true", output: "${user.username} did ${verb} on ${objectRef.resource} (${sourceIPs})"}
  - {id: no-output, name: No output, severity: low, condition: "true"}
`})}})
	if err != nil {
		t.Fatal(err)
	}
	hits := evaluate(t, e, event(t, "delete", "pods", "alice"))
	if len(hits) != 2 {
		t.Fatalf("hits: %v", hits)
	}
	if got, want := hits[0].Message, "alice did delete on pods (10.1.2.3)"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}
	if got, want := hits[1].Message, "No output: alice delete pods shop/web"; got != want {
		t.Errorf("default message %q, want %q", got, want)
	}
}

func TestNormalizeImage(t *testing.T) {
	for in, want := range map[string]string{
		"nginx":                            "docker.io/library/nginx:latest",
		"nginx:1.27":                       "docker.io/library/nginx:1.27",
		"bitnami/redis:7":                  "docker.io/bitnami/redis:7",
		"registry.k8s.io/pause:3.10":       "registry.k8s.io/pause:3.10",
		"localhost:5000/app":               "localhost:5000/app:latest",
		"ghcr.io/acme/app@sha256:abc":      "ghcr.io/acme/app@sha256:abc",
		"index.docker.io/library/busybox":  "docker.io/library/busybox:latest",
		"registry.example:443/team/app:v1": "registry.example:443/team/app:v1",
	} {
		if got := NormalizeImage(in); got != want {
			t.Errorf("NormalizeImage(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	if errs := c.Validate(); len(errs) != 0 {
		t.Fatalf("default config: %v", errs)
	}
	c.Dirs = []string{"/does/not/exist"}
	c.PodCIDRs = []string{"10.0.0.0/33"}
	c.AllowedRegistries = []string{"docker.io/*"}
	c.Concurrency = 0
	got := fmt.Sprint(c.Validate())
	for _, w := range []string{"dirs[0]", "pod_cidrs[0]", "allowed_registries[0]", "concurrency"} {
		if !strings.Contains(got, w) {
			t.Errorf("validation %s does not name %s", got, w)
		}
	}
	if p := RegistryPrefixes([]string{"registry.k8s.io", "ghcr.io/acme/"}); p[0] != "registry.k8s.io/" || p[1] != "ghcr.io/acme/" {
		t.Errorf("prefixes %v", p)
	}
}

// FuzzParseFile: no rule file makes the parser or the compiler panic.
func FuzzParseFile(f *testing.F) {
	f.Add([]byte("rules:\n- {id: a, name: n, severity: low, condition: 'verb == \"get\"'}\n"))
	f.Add([]byte("lists: {x: [a, b]}\nexceptions: [{rule: a, name: b, values: [c]}]\n"))
	f.Add([]byte("rules:\n- id: w\n  name: n\n  severity: high\n  condition: \"true\"\n  window: {duration: 1m, key: verb, count: 2}\n  output: '${verb'\n"))
	f.Add([]byte("rules: [{id: a, match: {resources: [a/b/c]}}]"))
	f.Add([]byte("&a [*a, *a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := ParseFile("fuzz.yaml", data); err != nil {
			return
		}
		_, _ = Compile(Options{Sources: []Source{{Name: "fuzz", FS: fstest.MapFS{"f.yaml": {Data: data}}}}})
	})
}
