package sinks_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/bus/bustest"
	"github.com/faultline/faultline/schemas"
	"github.com/faultline/faultline/sinks"
)

// memSink stores documents by id, as an idempotent target does. Documents
// whose subject is "flaky" fail retryably the first time; "bad" fail for
// good.
type memSink struct {
	mu      sync.Mutex
	stored  map[string]int // writes per id
	seen    map[string]int
	batches []int
}

func (s *memSink) Name() string { return "mem" }

func (s *memSink) Write(_ context.Context, docs []sinks.Document) []sinks.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches = append(s.batches, len(docs))
	out := make([]sinks.Result, len(docs))
	for i, d := range docs {
		s.seen[d.ID]++
		switch {
		case d.Subject == "bad":
			out[i] = sinks.Result{Err: errors.New("mapper_parsing_exception: failed to parse field [x]")}
		case d.Subject == "flaky" && s.seen[d.ID] == 1:
			out[i] = sinks.Result{Err: errors.New("es_rejected_execution_exception (429)"), Retryable: true}
		default:
			s.stored[d.ID]++
		}
	}
	return out
}

func (s *memSink) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stored[id]
}

// Each message is acknowledged by its own document's result: stored ones
// once, a retryable failure redelivered and then stored, a permanent one
// dead-lettered with the sink's reason — in the same batches.
func TestRunnerAcksPerDocument(t *testing.T) {
	b, _ := bustest.Start(t)
	sink := &memSink{stored: map[string]int{}, seen: map[string]int{}}
	reg := prometheus.NewRegistry()
	r, err := sinks.NewRunner(sinks.RunnerOptions{
		Sink: sink, Bus: b, BatchSize: 8, FlushInterval: 50 * time.Millisecond, Metrics: reg, Log: bustest.Logger(),
		Consumers: []bus.ConsumerSpec{{Stream: bus.StreamFinding, Durable: "sink-test", FilterSubjects: []string{"fl.finding.>"},
			MaxDeliver: 5, Backoff: []time.Duration{100 * time.Millisecond}, AckWait: 5 * time.Second}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	subjects := map[string]string{}
	for i := range 20 {
		subj := "ok"
		switch i {
		case 3:
			subj = "flaky"
		case 7:
			subj = "bad"
		}
		id := fmt.Sprintf("doc-%02d", i)
		subjects[id] = subj
		env, err := schemas.NewEnvelopeRaw(schemas.Attributes{ID: id, Source: "/test", Type: schemas.TypeFinding, Subject: subj, Cluster: "test", Time: time.Now()}, []byte(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		data, _ := env.Encode()
		if _, err := b.Publish(context.Background(), bus.Message{Subject: "fl.finding.test.rules", ID: id, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	bustest.WaitFor(t, 20*time.Second, "every good document stored", func() bool {
		for id, subj := range subjects {
			if subj != "bad" && sink.count(id) != 1 {
				return false
			}
		}
		return true
	})
	// The bad one is in the dead letters with the sink's reason.
	bustest.WaitFor(t, 20*time.Second, "the bad document dead-lettered", func() bool {
		m, err := b.JetStream().Stream(context.Background(), bus.StreamDeadLetter)
		if err != nil {
			return false
		}
		raw, err := m.GetLastMsgForSubject(context.Background(), bus.DeadLetterSubject(bus.StreamFinding, "sink-test"))
		if err != nil {
			return false
		}
		return strings.Contains(raw.Header.Get(bus.HeaderDLQReason), "mapper_parsing_exception")
	})
	if sink.count("doc-07") != 0 {
		t.Error("the rejected document was stored")
	}
	if got := counter(t, reg, "faultline_sink_documents_total", "retry"); got != 1 {
		t.Errorf("retries counted %v, want 1", got)
	}
	if got := counter(t, reg, "faultline_sink_documents_total", "dead_letter"); got != 1 {
		t.Errorf("dead letters counted %v, want 1", got)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.batches) >= 20 {
		t.Errorf("%d writes for 21 documents: not batched", len(sink.batches))
	}
}

func counter(t *testing.T, reg *prometheus.Registry, name, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
