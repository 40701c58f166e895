package rules

import (
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/faultline/faultline/analyzers/audit"
	"github.com/faultline/faultline/schemas"
)

// TestRuleTests runs the rule test files of testdata/tests against the
// default ruleset: every catalogue rule on recorded events, plus hand-made
// variants.
func TestRuleTests(t *testing.T) {
	files, err := FindTestFiles("testdata/tests")
	if err != nil {
		t.Fatal(err)
	}
	results, err := RunTests(Options{}, files)
	if err != nil {
		t.Fatal(err)
	}
	pos, neg := map[string]bool{}, map[string]bool{}
	for _, r := range results {
		if !r.Passed() {
			t.Error(r.String())
			continue
		}
		if strings.Contains(r.Case.Events, "recorded/") {
			if r.Case.Hits > 0 {
				pos[r.Case.Rule] = true
			} else {
				neg[r.Case.Rule] = true
			}
		}
	}
	e, err := Compile(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range e.Rules() {
		if !pos[r.ID] {
			t.Errorf("rule %s has no passing positive test on recorded events", r.ID)
		}
		if !neg[r.ID] {
			t.Errorf("rule %s has no passing near-miss test on recorded events", r.ID)
		}
	}
}

// TestBenignCorpus: minutes of ordinary control-plane traffic (start-up,
// controllers, scheduler, an application deployed) recorded from the real
// API server yield nothing above low.
func TestBenignCorpus(t *testing.T) {
	e, err := Compile(Options{ReplaceLists: map[string][]string{
		"allowed_registries": {"registry.k8s.io/", "registry.example/"},
		"trusted_cidrs":      {"127.0.0.0/8"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("testdata/recorded/benign.jsonl.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := audit.NewReader(f, "benign.jsonl.gz")
	n, low := 0, 0
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		for _, h := range evaluate(t, e, ev) {
			if h.Rule.Severity > schemas.SeverityLow {
				t.Errorf("%s (%s) on %s %s by %s: %s", h.Rule.ID, h.Rule.Severity, ev.Verb, ev.RequestURI, ev.User.Username, h.Message)
			} else {
				low++
			}
		}
	}
	if n < 500 {
		t.Errorf("benign corpus has %d events, want at least 500", n)
	}
	if e.EvalErrors() != 0 {
		t.Errorf("%d evaluation errors on the benign corpus", e.EvalErrors())
	}
	t.Logf("%d benign events, %d low findings", n, low)
}
