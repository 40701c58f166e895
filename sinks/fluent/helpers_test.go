package fluent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/schemas"
)

// testConfig is the default configuration with short timers, for a
// receiver at addr.
func testConfig(addr string) Config {
	c := DefaultConfig()
	c.Address = addr
	c.FlushInterval = 20 * time.Millisecond
	c.WriteTimeout = 5 * time.Second
	c.DialTimeout = 2 * time.Second
	c.SendTimeout = 5 * time.Second
	c.AckTimeout = 5 * time.Second
	c.RetryWait = 50 * time.Millisecond
	c.MaxRetryWait = 200 * time.Millisecond
	c.Backoff = []time.Duration{200 * time.Millisecond}
	return c
}

// logBuffer keeps what a test's logger wrote, and copies it to stderr with
// FAULTLINE_TEST_LOG=debug.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Count counts the lines holding s.
func (l *logBuffer) Count(s string) int {
	n := 0
	for line := range strings.SplitSeq(l.String(), "\n") {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

func (l *logBuffer) logger() *slog.Logger {
	var w io.Writer = l
	if os.Getenv("FAULTLINE_TEST_LOG") == "debug" {
		w = io.MultiWriter(l, os.Stderr)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// runForwarder runs a forwarder until the test ends.
func runForwarder(t *testing.T, b *bus.Bus, c Config, reg prometheus.Registerer, log *slog.Logger) *Forwarder {
	t.Helper()
	f, err := NewForwarder(c, Deps{Bus: b, Cluster: "test", Log: log, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("forwarder: %v", err)
		}
	})
	return f
}

type published struct {
	id, subject, typ string
	body             []byte
	time             time.Time
}

func publish(t testing.TB, b *bus.Bus, p published) {
	t.Helper()
	env, err := schemas.NewEnvelopeRaw(schemas.Attributes{
		ID: p.id, Source: "/test", Type: p.typ, Subject: "test", Cluster: "test", Time: p.time,
	}, p.body)
	if err != nil {
		t.Fatal(err)
	}
	data, err := env.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(context.Background(), bus.Message{Subject: p.subject, ID: p.id, Data: data}); err != nil {
		t.Fatal(err)
	}
}

// finding makes the i-th finding of a test: its id is its envelope id, its
// @timestamp has nanoseconds.
func finding(t testing.TB, i int) published {
	t.Helper()
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC).Add(time.Duration(i)*time.Second + time.Duration(i*1001+7)*time.Microsecond + 3)
	f := schemas.NewFinding("rules", schemas.Rule{ID: "test-rule", Name: "A test rule"}, schemas.SeverityHigh, fmt.Sprintf("audit_%06d", i), at)
	f.Orchestrator.Cluster.Name = "test"
	f.Message = fmt.Sprintf("finding %d", i)
	f.Labels = map[string]string{"n": fmt.Sprint(i)}
	body, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return published{id: f.Event.ID, subject: bus.FindingSubject("test", "rules"), typ: schemas.TypeFinding, body: body, time: at}
}

// metric sums the series of a counter or gauge whose labels include
// labels.
func metric(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := 0
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v == l.GetValue() {
					match++
				}
			}
			if match != len(labels) {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

func records(t testing.TB, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	return metric(t, reg, "faultline_fluent_records_total", map[string]string{"result": result})
}

func sinkDocs(t testing.TB, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	return metric(t, reg, "faultline_sink_documents_total", map[string]string{"sink": Name, "result": result})
}
