package baseline

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/faultline/faultline/analyzers"
	"github.com/faultline/faultline/analyzers/audit"
	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/bus/bustest"
)

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func ev(t *testing.T, at time.Time, user, verb, resource, ns, ua, ip string) *analyzers.Input {
	t.Helper()
	raw := fmt.Sprintf(`{"auditID":"%s-%d","stage":"ResponseComplete","level":"Metadata","verb":%q,"requestURI":"/x","user":{"username":%q},`+
		`"sourceIPs":[%q],"userAgent":%q,"objectRef":{"resource":%q,"namespace":%q},"requestReceivedTimestamp":%q,"stageTimestamp":%q}`,
		user, at.UnixNano(), verb, user, ip, ua, resource, ns, at.Format(time.RFC3339Nano), at.Format(time.RFC3339Nano))
	e, err := audit.Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return &analyzers.Input{Cluster: "c", SourceID: e.ID(), Event: e}
}

func rulesOf(t *testing.T, a *Analyzer, in *analyzers.Input) []string {
	t.Helper()
	fs, err := a.Analyze(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, f := range fs {
		ids = append(ids, f.Rule.ID)
	}
	return ids
}

func TestLearnsThenReportsWhatIsNew(t *testing.T) {
	cfg := DefaultConfig()
	cfg.LearningPeriod = time.Hour
	cfg.RateMinCount = 20
	a, err := New(cfg, &MemoryStore{}, "c", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		at                          time.Duration
		user, verb, res, ns, ua, ip string
		want                        string
	}{
		{0, "ci-bot", "list", "pods", "shop", "kubectl/v1.30", "10.0.0.5", ""},
		{10 * time.Minute, "ci-bot", "get", "secrets", "shop", "kubectl/v1.30", "10.0.0.6", ""}, // still learning
		{2 * time.Hour, "ci-bot", "list", "pods", "shop", "kubectl/v1.31", "10.0.0.7", ""},      // known (version and /24 ignored)
		{2 * time.Hour, "ci-bot", "delete", "pods", "shop", "kubectl/v1.31", "10.0.0.7", "[baseline-new-activity]"},
		{2 * time.Hour, "ci-bot", "list", "pods", "shop", "curl/8.5", "10.0.0.7", "[baseline-new-user-agent]"},
		{2 * time.Hour, "ci-bot", "list", "pods", "shop", "kubectl/v1.31", "203.0.113.9", "[baseline-new-source-ip]"},
		{2 * time.Hour, "system:node:w1", "delete", "pods", "shop", "kubelet", "10.9.9.9", ""}, // ignored identity
		{2 * time.Hour, "newcomer", "delete", "pods", "shop", "kubectl", "10.0.0.7", ""},       // new identity: learning
	}
	for i, s := range steps {
		got := fmt.Sprint(rulesOf(t, a, ev(t, t0.Add(s.at), s.user, s.verb, s.res, s.ns, s.ua, s.ip)))
		if s.want == "" {
			s.want = "[]"
		}
		if got != s.want {
			t.Errorf("step %d (%s %s %s by %s): %s, want %s", i, s.verb, s.res, s.ua, s.user, got, s.want)
		}
	}
	// A redelivered event raises the same finding again (same id).
	in := ev(t, t0.Add(3*time.Hour), "ci-bot", "patch", "deployments", "shop", "kubectl", "10.0.0.7")
	f1, _ := a.Analyze(context.Background(), in)
	f2, _ := a.Analyze(context.Background(), in)
	if len(f1) != 1 || len(f2) != 1 || f1[0].Event.ID != f2[0].Event.ID {
		t.Errorf("redelivery: %v then %v", f1, f2)
	}
}

func TestRateSpike(t *testing.T) {
	cfg := DefaultConfig()
	cfg.LearningPeriod = 0
	cfg.RateMinCount = 50
	cfg.RateFactor = 5
	a, _ := New(cfg, &MemoryStore{}, "c", nil, nil)
	spikes := 0
	for m := range 30 { // 30 quiet minutes of 5 requests
		for i := range 5 {
			spikes += len(rulesOf(t, a, ev(t, t0.Add(time.Duration(m)*time.Minute+time.Duration(i)*time.Second), "app", "get", "pods", "shop", "app", "10.0.0.1")))
		}
	}
	got := 0
	for i := range 200 { // then 200 in one minute
		for _, id := range rulesOf(t, a, ev(t, t0.Add(31*time.Minute+time.Duration(i)*100*time.Millisecond), "app", "get", "pods", "shop", "app", "10.0.0.1")) {
			if id == RuleRateSpike {
				got++
			}
		}
	}
	if spikes != 1 { // the very first activity of a profile without learning period
		t.Logf("%d findings during the quiet minutes", spikes)
	}
	if got != 1 {
		t.Errorf("%d rate spikes in the busy minute, want 1", got)
	}
}

// TestKVStoreSharedAndMerged: two replicas learn different things; after
// both flush, a third sees the union, and neither lost the other's terms.
func TestKVStoreSharedAndMerged(t *testing.T) {
	b, _ := bustest.Start(t)
	ctx := context.Background()
	kv, err := b.KV(ctx, bus.BucketState)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.LearningPeriod = time.Hour
	r1, _ := New(cfg, KVStore{KV: kv}, "c", nil, nil)
	r2, _ := New(cfg, KVStore{KV: kv}, "c", nil, nil)
	rulesOf(t, r1, ev(t, t0, "bob", "get", "pods", "a", "kubectl", "10.0.0.1"))
	rulesOf(t, r2, ev(t, t0.Add(time.Minute), "bob", "get", "secrets", "a", "kubectl", "10.0.0.1"))
	if err := r1.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r3, _ := New(cfg, KVStore{KV: kv}, "c", nil, nil)
	later := t0.Add(2 * time.Hour)
	if got := rulesOf(t, r3, ev(t, later, "bob", "get", "pods", "a", "kubectl", "10.0.0.1")); len(got) != 0 {
		t.Errorf("r1's term lost: %v", got)
	}
	if got := rulesOf(t, r3, ev(t, later, "bob", "get", "secrets", "a", "kubectl", "10.0.0.1")); len(got) != 0 {
		t.Errorf("r2's term lost: %v", got)
	}
	if got := rulesOf(t, r3, ev(t, later, "bob", "delete", "secrets", "a", "kubectl", "10.0.0.1")); len(got) != 1 {
		t.Errorf("new activity not reported after restart: %v", got)
	}
}

func TestConfigValidate(t *testing.T) {
	if errs := DefaultConfig().Validate(); len(errs) != 0 {
		t.Fatal(errs)
	}
	c := Config{}
	if errs := c.Validate(); len(errs) < 5 {
		t.Errorf("zero config: %v", errs)
	}
}
