package rules_test

import (
	"context"
	"sync"
	"testing"

	"github.com/faultline/faultline/analyzers/audit"
	"github.com/faultline/faultline/analyzers/rules"
	"github.com/faultline/faultline/internal/bench"
)

// TestConcurrentEvaluation: the runner analyses events concurrently; the
// engine and the lazy event view must be safe for it (run with -race).
func TestConcurrentEvaluation(t *testing.T) {
	e, err := rules.Compile(rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	corpora, err := bench.RecordedCorpora("testdata/recorded")
	if err != nil {
		t.Fatal(err)
	}
	events := corpora[0].Events
	want := 0
	for _, raw := range events {
		ev, _ := audit.Parse(raw)
		hits, err := e.Fresh().Evaluate(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		want += len(hits)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < len(events); i += 4 {
				ev, err := audit.ParseValid(events[i])
				if err != nil {
					t.Error(err)
					return
				}
				hits, err := e.Evaluate(context.Background(), ev)
				if err != nil {
					t.Error(err)
					return
				}
				for _, h := range hits {
					_ = h.Message
					_, _ = ev.RequestObject()
				}
			}
		}()
	}
	wg.Wait()
	if want == 0 {
		t.Error("no hits at all on the corpus")
	}
}
