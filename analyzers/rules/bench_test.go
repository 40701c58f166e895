package rules_test

import (
	"context"
	"testing"
	"time"

	"github.com/faultline/faultline/internal/bench"
)

// BenchmarkRulesVsDecode measures, in the same run and on one goroutine,
// plain encoding/json decoding of the recorded events into the upstream
// audit type against the rules analyzer with the full default ruleset on
// the bus path (envelope data already checked), the runner's whole
// handling of a message but NATS, and the replay path (JSON lines read,
// checked, parsed once and analysed; findings written). Passes alternate
// the paths. It is the measurement of `faultline bench rules` (see
// internal/bench). Run with:
//
//	go test ./analyzers/rules -run '^$' -bench RulesVsDecode -cpu 1 -benchtime 60x -count 5
func BenchmarkRulesVsDecode(b *testing.B) {
	corpora, err := bench.RecordedCorpora("testdata/recorded")
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range corpora {
		b.Run(c.Name, func(b *testing.B) {
			s, err := bench.NewRulesSetup(c)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			wall, cpu := map[string]time.Duration{}, map[string]time.Duration{}
			findings := 0
			b.ResetTimer()
			for range b.N {
				for _, path := range bench.RulesPaths {
					p, err := s.Pass(ctx, path)
					if err != nil {
						b.Fatal(err)
					}
					wall[path] += p.Wall
					cpu[path] += p.CPU
					if path == bench.PathReplay {
						findings += p.Findings
					}
				}
			}
			// Rates per second of elapsed time; ratios also per CPU second
			// of the process (GC included), which other work on the
			// machine does not skew.
			n := float64(len(c.Events) * b.N)
			decode := n / wall[bench.PathDecode].Seconds()
			b.ReportMetric(decode, "decode-events/s")
			for _, path := range bench.RulesPaths[1:] {
				rate := n / wall[path].Seconds()
				b.ReportMetric(rate, path+"-events/s")
				b.ReportMetric(rate/decode, path+"-ratio")
				if cpu[path] > 0 {
					b.ReportMetric(cpu[bench.PathDecode].Seconds()/cpu[path].Seconds(), path+"-cpu-ratio")
				}
			}
			b.ReportMetric(float64(s.Bytes)/float64(len(c.Events)), "bytes/event")
			b.ReportMetric(float64(findings)/float64(b.N), "findings/pass")
			b.ReportMetric(float64(len(c.Events)), "events/pass")
		})
	}
}
