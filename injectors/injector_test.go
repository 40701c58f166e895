package injectors

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestLabelValue(t *testing.T) {
	long := strings.Repeat("a", 64)
	cases := map[string]bool{ // value → kept as is
		"cmd-1":   true,
		"a_b.c-d": true,
		"x=y":     false, // '=' is a keyToken character but not a label one
		long:      false,
		"-lead":   false,
		"":        false,
	}
	for in, kept := range cases {
		got := LabelValue(in)
		if (got == in) != kept {
			t.Errorf("LabelValue(%q) = %q", in, got)
		}
		if len(got) > 63 || got == "" {
			t.Errorf("LabelValue(%q) = %q: not a label value", in, got)
		}
		if LabelValue(in) != got {
			t.Errorf("LabelValue(%q) is not stable", in)
		}
	}
	if LabelValue(long) == LabelValue(long+"b") {
		t.Error("distinct long ids share a label value")
	}
}

// Reverts pass a drained token bucket without waiting; everything else
// waits for a token. A cancelled context tells the two apart without
// timing: waiting on it fails at once, not waiting succeeds.
func TestRateLimiterLetsRevertsThrough(t *testing.T) {
	rl := NewRateLimiter(0.001, 1)
	defer rl.Stop()
	if err := rl.Wait(context.Background()); err != nil { // drains the bucket
		t.Fatal(err)
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for range 50 {
		if err := rl.Wait(WithRevert(done)); err != nil {
			t.Fatalf("a revert waited: %v", err)
		}
	}
	if err := rl.Wait(done); err == nil {
		t.Error("an ordinary request passed a drained bucket")
	}
}

// Requests made for an experiment say so in their User-Agent.
func TestExperimentTransport(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.UserAgent())
	}))
	defer srv.Close()
	c := &http.Client{Transport: ExperimentTransport(http.DefaultTransport)}
	for _, ctx := range []context.Context{context.Background(), WithExperiment(context.Background(), "exp-7")} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		req.Header.Set("User-Agent", "faultline/1.0 (injector)")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	want := []string{"faultline/1.0 (injector)", "faultline/1.0 (injector) faultline-experiment/exp-7"}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("user agents %q, want %q", got, want)
	}
}
