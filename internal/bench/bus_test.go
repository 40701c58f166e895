package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/faultline/faultline/schemas"
)

// A small run of the real benchmark: both paths store every message and the
// report adds up. (The figures themselves are recorded in docs/benchmarks.md,
// never asserted here.)
func TestBusBenchSmallRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	rep, err := Bus(ctx, BusOptions{Messages: 500, Size: 1536, Inflight: 64, Rounds: 2, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rounds) != 4 {
		t.Fatalf("rounds = %d, want 4", len(rep.Rounds))
	}
	if rep.BareMedian <= 0 || rep.BusMedian <= 0 || rep.Ratio <= 0 {
		t.Errorf("report = %+v", rep)
	}
	if got := strings.Count(out.String(), "\n"); got != 4 {
		t.Errorf("progress lines = %d, want 4:\n%s", got, out.String())
	}
	if rep.MessageBytes < 1400 || rep.MessageBytes > 1700 {
		t.Errorf("message size %d, want about 1536", rep.MessageBytes)
	}
}

func TestBenchEnvelopeIsValid(t *testing.T) {
	b, err := envelopeOfSize(1536)
	if err != nil {
		t.Fatal(err)
	}
	env, err := schemas.DecodeEnvelope(b)
	if err != nil {
		t.Fatalf("benchmark envelope does not decode: %v", err)
	}
	if err := schemas.Validate(schemas.KindEnvelope, b); err != nil {
		t.Errorf("benchmark envelope fails its JSON Schema: %v", err)
	}
	var data map[string]any
	if err := json.Unmarshal(env.Data, &data); err != nil || data["auditID"] == nil {
		t.Errorf("data = %v, %v", data, err)
	}
}

func TestBusBenchRejectsBadOptions(t *testing.T) {
	if _, err := Bus(context.Background(), BusOptions{Messages: 0, Size: 1, Inflight: 1, Rounds: 1}); err == nil {
		t.Error("zero messages accepted")
	}
}
