package fluent

import (
	"context"
	"testing"
	"time"

	"github.com/faultline/faultline/internal/testfluent"
	"github.com/faultline/faultline/sinks"
)

// BenchmarkWrite sends batches of 500 findings through the sink to the real
// receiver, in each delivery mode, and reports records per second from
// the first handover to the last result (for delivery buffered, to the
// last record received).
func BenchmarkWrite(b *testing.B) {
	const batch = 500
	docs := make([]sinks.Document, batch)
	for i := range docs {
		p := finding(b, i)
		docs[i] = sinks.Document{ID: p.id, Type: p.typ, Subject: p.subject, Cluster: "test", Time: p.time, Body: p.body}
	}
	for _, mode := range []string{DeliveryAcknowledged, DeliveryWritten, DeliveryBuffered} {
		b.Run(mode, func(b *testing.B) {
			recv := testfluent.Start(b, testfluent.Options{})
			cfg := testConfig(recv.Listen)
			cfg.Delivery = mode
			s, err := New(cfg, Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close(context.Background()) })
			b.ResetTimer()
			start := time.Now()
			sent := 0
			for b.Loop() {
				for i, r := range s.Write(b.Context(), docs) {
					if r.Err != nil {
						b.Fatalf("document %d: %v", i, r.Err)
					}
				}
				sent += batch
			}
			recv.WaitFor(time.Minute, "every record", func(rs []testfluent.Record) bool { return len(rs) >= sent })
			b.ReportMetric(float64(sent)/time.Since(start).Seconds(), "records/s")
		})
	}
}
