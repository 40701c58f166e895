package rules

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"

	"github.com/faultline/faultline/analyzers"
	"github.com/faultline/faultline/analyzers/audit"
)

// corpus is every recorded event: the benign control-plane corpus and all
// the catalogue scenarios, as the API server wrote them.
func corpus(tb testing.TB) [][]byte { return corpusOf(tb, "testdata/recorded/*") }

func corpusOf(tb testing.TB, pattern string) [][]byte {
	tb.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil {
		tb.Fatal(err)
	}
	var out [][]byte
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		if filepath.Ext(name) == ".gz" {
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				tb.Fatal(err)
			}
			if data, err = io.ReadAll(zr); err != nil {
				tb.Fatal(err)
			}
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			if l := bytes.TrimSpace(sc.Bytes()); len(l) > 0 {
				out = append(out, append([]byte(nil), l...))
			}
		}
	}
	if len(out) == 0 {
		tb.Fatal("empty corpus")
	}
	return out
}

// BenchmarkRulesVsDecode measures, in the same run and on one goroutine,
// the rules analyzer with the full default ruleset over the recorded
// corpus (parse each event once, lazily, checking its syntax; evaluate
// every candidate rule; build the findings) against plain encoding/json
// decoding of the same events into the upstream audit type. It also
// reports the analyzer on input whose syntax was checked before (what the
// runner gets from the envelope decoder). Run with:
//
//	go test ./analyzers/rules -run '^$' -bench RulesVsDecode -cpu 1 -benchtime 60x -count 5
func BenchmarkRulesVsDecode(b *testing.B) {
	b.Run("recorded", func(b *testing.B) { benchRulesVsDecode(b, corpus(b)) })
	b.Run("benign-only", func(b *testing.B) { benchRulesVsDecode(b, corpusOf(b, "testdata/recorded/benign.jsonl.gz")) })
}

func benchRulesVsDecode(b *testing.B, events [][]byte) {
	bytesTotal := 0
	for _, e := range events {
		bytesTotal += len(e)
	}
	eng, err := Compile(Options{ReplaceLists: map[string][]string{
		"allowed_registries": {"registry.k8s.io/", "registry.example/"},
		"trusted_cidrs":      {"127.0.0.0/8"}, // the harness nodes network
	}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var decodeDur, rulesDur, checkedDur time.Duration
	findings := 0
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		for _, raw := range events {
			var ev auditv1.Event
			if err := json.Unmarshal(raw, &ev); err != nil {
				b.Fatal(err)
			}
		}
		decodeDur += time.Since(start)

		a := NewWithEngine(eng.fresh())
		start = time.Now()
		for _, raw := range events {
			ev, err := audit.Parse(raw)
			if err != nil {
				b.Fatal(err)
			}
			fs, err := a.Analyze(ctx, &analyzers.Input{Cluster: "bench", SourceID: ev.ID(), Event: ev})
			if err != nil {
				b.Fatal(err)
			}
			findings += len(fs)
		}
		rulesDur += time.Since(start)

		// The same, from input whose syntax was already checked (by the
		// envelope decoder on the bus, by SplitAuditEvents in replay).
		a = NewWithEngine(eng.fresh())
		start = time.Now()
		for _, raw := range events {
			ev, err := audit.ParseValid(raw)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := a.Analyze(ctx, &analyzers.Input{Cluster: "bench", SourceID: ev.ID(), Event: ev}); err != nil {
				b.Fatal(err)
			}
		}
		checkedDur += time.Since(start)
	}
	n := float64(len(events) * b.N)
	decodeRate := n / decodeDur.Seconds()
	rulesRate := n / rulesDur.Seconds()
	b.ReportMetric(decodeRate, "decode-events/s")
	b.ReportMetric(rulesRate, "rules-events/s")
	b.ReportMetric(rulesRate/decodeRate, "ratio")
	b.ReportMetric(n/checkedDur.Seconds(), "rules-checked-input-events/s")
	b.ReportMetric(n/checkedDur.Seconds()/decodeRate, "checked-ratio")
	b.ReportMetric(float64(bytesTotal)/float64(len(events)), "bytes/event")
	b.ReportMetric(float64(findings)/float64(b.N), "findings/pass")
	b.ReportMetric(float64(len(events)), "events/pass")
}
