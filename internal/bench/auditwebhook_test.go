package bench

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/faultline/faultline/schemas"
)

var fixture = filepath.Join("..", "..", "test", "testdata", "kube", "audit-eventlist.json")

// A small run of the real benchmark: both paths store every event, the
// last request carries the remainder, and the report adds up. (The figures
// are recorded in docs/benchmarks.md, never asserted here.)
func TestAuditWebhookBenchSmallRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	rep, err := AuditWebhook(ctx, AuditWebhookOptions{Events: 1000, BatchSize: 300, Senders: 2, Inflight: 256, Rounds: 2,
		Fixture: fixture, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rounds) != 4 {
		t.Fatalf("rounds = %d, want 4", len(rep.Rounds))
	}
	if rep.WebhookMedian <= 0 || rep.BareMedian <= 0 || rep.Ratio <= 0 || rep.P99Millis <= 0 || rep.P99Millis < rep.P50Millis {
		t.Errorf("report = %+v", rep)
	}
	if rep.EventBytes < 500 || rep.EventBytes > 3000 {
		t.Errorf("event size %d", rep.EventBytes)
	}
	if got := strings.Count(out.String(), "\n"); got != 4 {
		t.Errorf("progress lines = %d, want 4:\n%s", got, out.String())
	}
}

// The template's bodies are EventLists of distinct, valid audit events.
func TestAuditWebhookBodyTemplate(t *testing.T) {
	items, err := loadFixture(fixture)
	if err != nil {
		t.Fatal(err)
	}
	tpl := newBodyTemplate(items, 100)
	seen := map[string]bool{}
	for seq := range 3 {
		body := bytes.Clone(tpl.body)
		tpl.fill(body, 7, seq)
		events, rejects, err := schemas.ParseAuditEvents(body)
		if err != nil || len(rejects) > 0 || len(events) != 100 {
			t.Fatalf("request %d: %d events, rejects %v, err %v", seq, len(events), rejects, err)
		}
		for _, ev := range events {
			id := schemas.AuditEventIDOf(&ev)
			if seen[id] {
				t.Fatalf("event id %s repeats", id)
			}
			seen[id] = true
		}
	}
}

func TestAuditWebhookBenchRejectsBadOptions(t *testing.T) {
	if _, err := AuditWebhook(context.Background(), AuditWebhookOptions{Events: 1, BatchSize: 0, Senders: 1, Inflight: 1, Rounds: 1}); err == nil {
		t.Error("zero batch accepted")
	}
	if _, err := AuditWebhook(context.Background(), AuditWebhookOptions{Events: 1, BatchSize: 1, Senders: 1, Inflight: 1, Rounds: 1, Fixture: "/nonexistent"}); err == nil {
		t.Error("missing fixture accepted")
	}
}
