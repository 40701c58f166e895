package analyzers_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/faultline/faultline/analyzers"
	"github.com/faultline/faultline/analyzers/audit"
	"github.com/faultline/faultline/analyzers/rules"
	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/bus/bustest"
	"github.com/faultline/faultline/schemas"
)

func auditEnvelope(t *testing.T, cluster, auditID, user, resource, sub string) []byte {
	t.Helper()
	ev := fmt.Sprintf(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":%q,"stage":"ResponseComplete",`+
		`"requestURI":"/api/v1/namespaces/shop/pods/web/%s","verb":"create","user":{"username":%q,"groups":["system:authenticated"]},`+
		`"sourceIPs":["10.0.0.9"],"userAgent":"kubectl/v1.33.1 faultline-experiment/exp-42","objectRef":{"resource":%q,"namespace":"shop","name":"web","subresource":%q},`+
		`"responseStatus":{"code":101},"requestReceivedTimestamp":"2026-11-22T06:00:00Z","stageTimestamp":"2026-11-22T06:00:01Z"}`,
		auditID, sub, user, resource, sub)
	env, err := schemas.NewEnvelopeRaw(schemas.Attributes{
		ID: schemas.AuditEventID(auditID, "ResponseComplete"), Source: "/test", Type: schemas.TypeAudit,
		Cluster: cluster, Time: time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC),
	}, []byte(ev))
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type collected struct {
	mu   sync.Mutex
	msgs []*bus.Msg
}

func (c *collected) n() int { c.mu.Lock(); defer c.mu.Unlock(); return len(c.msgs) }

// TestRunnerPublishesFindingsOnceAndAcksAfter: an exec becomes a finding on
// fl.finding.<cluster>.rules, a valid envelope around a valid finding; the
// same event analysed again (a redelivery that escaped the audit stream's
// dedupe) does not store a second finding; an injector's request is kept as
// info with the experiment id.
func TestRunnerPublishesFindingsOnceAndAcksAfter(t *testing.T) {
	b, _ := bustest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e, err := rules.Compile(rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	chaos := analyzers.NewChaos(analyzers.ChaosConfig{InjectorUsers: []string{"system:serviceaccount:faultline:*"}, ExperimentUserAgentMarker: "faultline-experiment/"},
		analyzers.StaticExperiments{{ID: "exp-7", Namespaces: []string{"sh*"}}}, bustest.Logger())
	r, err := analyzers.NewRunner(rules.NewWithEngine(e), analyzers.Deps{Bus: b, Cluster: "prod", Log: bustest.Logger(), Chaos: chaos,
		Consumer: bus.ConsumerSpec{MaxDeliver: 3, Backoff: []time.Duration{50 * time.Millisecond}, AckWait: 5 * time.Second}}, 2)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("runner: %v", err)
		}
	}()

	var got collected
	cctx, cstop := context.WithCancel(ctx)
	cdone := make(chan error, 1)
	go func() {
		cdone <- b.Consume(cctx, bus.ConsumerSpec{Stream: bus.StreamFinding, Durable: "test-reader"}, func(_ context.Context, m *bus.Msg) error {
			got.mu.Lock()
			got.msgs = append(got.msgs, m)
			got.mu.Unlock()
			return nil
		})
	}()
	defer func() { cstop(); <-cdone }()

	pub := func(id string, data []byte) {
		if _, err := b.Publish(ctx, bus.Message{Subject: bus.AuditSubject("prod"), ID: id, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	exec := auditEnvelope(t, "prod", "a1", "mallory", "pods", "exec")
	pub("first", exec)
	bustest.WaitFor(t, 20*time.Second, "the exec finding", func() bool { return got.n() == 1 })
	pub("again", exec) // the same event under another message id
	inj := auditEnvelope(t, "prod", "a2", "system:serviceaccount:faultline:faultline-injector", "pods", "exec")
	pub("injector", inj)
	bustest.WaitFor(t, 20*time.Second, "the injector finding", func() bool { return got.n() == 2 })
	time.Sleep(300 * time.Millisecond)
	if n := got.n(); n != 2 {
		t.Fatalf("%d findings stored, want 2 (the redelivered exec must be a duplicate)", n)
	}
	for i, m := range got.msgs {
		if err := schemas.Validate(schemas.KindEnvelope, m.Data); err != nil {
			t.Errorf("finding %d does not validate: %v", i, err)
		}
		env, err := schemas.DecodeEnvelope(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != "fl.finding.prod.rules" || m.ID != env.ID {
			t.Errorf("finding %d on %s with id %s (envelope %s)", i, m.Subject, m.ID, env.ID)
		}
	}
	first, _ := schemas.DecodeEnvelope(got.msgs[0].Data)
	if want := schemas.FindingID("pod-exec", schemas.AuditEventID("a1", "ResponseComplete")); first.ID != want {
		t.Errorf("finding id %s, want %s", first.ID, want)
	}
	assertJSON(t, first.Data, `"experiment_id":"exp-7"`, `"severity":"medium"`, `"cluster":{"name":"prod"}`)
	second, _ := schemas.DecodeEnvelope(got.msgs[1].Data)
	assertJSON(t, second.Data, `"severity":"info"`, `"experiment_id":"exp-42"`, `"chaos":"injector"`, `"risk_score":0`)
}

func assertJSON(t *testing.T, doc []byte, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !contains(string(doc), w) {
			t.Errorf("%s lacks %s", doc, w)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestChaosAndGlob(t *testing.T) {
	c := analyzers.NewChaos(analyzers.DefaultChaosConfig(), analyzers.StaticExperiments{
		{ID: "old", Namespaces: []string{"shop"}, Until: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{ID: "exp-1", Namespaces: []string{"pay*"}},
	}, nil)
	mk := func(user, ua, ns string) (*schemas.Finding, *audit.Event) {
		ev, err := audit.Parse([]byte(fmt.Sprintf(`{"auditID":"x","stage":"ResponseComplete","level":"Metadata","verb":"delete","requestURI":"/x",`+
			`"user":{"username":%q},"userAgent":%q,"objectRef":{"resource":"pods","namespace":%q},"requestReceivedTimestamp":"2026-01-01T00:00:00Z","stageTimestamp":"2026-01-01T00:00:00Z"}`, user, ua, ns)))
		if err != nil {
			t.Fatal(err)
		}
		f := schemas.NewFinding("rules", schemas.Rule{ID: "r", Name: "r"}, schemas.SeverityHigh, ev.ID(), ev.Time())
		f.SetAuditContext(ev.Upstream())
		return f, ev
	}
	tests := []struct {
		user, ua, ns string
		sev          schemas.Severity
		exp          string
	}{
		{"alice", "kubectl", "payments", schemas.SeverityHigh, "exp-1"},
		{"alice", "kubectl", "shop", schemas.SeverityHigh, ""}, // experiment over
		{"system:serviceaccount:faultline:faultline-injector", "faultline/1 faultline-experiment/e9;x", "shop", schemas.SeverityInfo, "e9"},
		{"system:serviceaccount:faultline:faultline-injector", "faultline/1", "payments", schemas.SeverityInfo, "exp-1"},
		{"system:serviceaccount:faultline:faultline-injector", "faultline/1", "other", schemas.SeverityInfo, analyzers.UnknownExperiment},
	}
	for _, tc := range tests {
		f, ev := mk(tc.user, tc.ua, tc.ns)
		analyzers.Finish(f, "c1", ev, c)
		if f.Faultline.Severity != tc.sev || f.Labels[schemas.LabelExperimentID] != tc.exp {
			t.Errorf("%+v: severity %s labels %v", tc, f.Faultline.Severity, f.Labels)
		}
	}
	for _, g := range []struct {
		p, s string
		ok   bool
	}{
		{"system:node:*", "system:node:w1", true}, {"*", "", true}, {"a*b*c", "axxbyyc", true}, {"a*b*c", "axxbyy", false},
		{"*.sock", "/run/docker.sock", true}, {"/proc/*", "/proc", false}, {"x", "x", true}, {"x", "xy", false}, {"*ab", "aab", true},
	} {
		if got := analyzers.Glob(g.p, g.s); got != g.ok {
			t.Errorf("Glob(%q, %q) = %v", g.p, g.s, got)
		}
	}
}
