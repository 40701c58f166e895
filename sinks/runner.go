package sinks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/internal/promutil"
	"github.com/faultline/faultline/schemas"
)

// RunnerOptions configure a Runner.
type RunnerOptions struct {
	Sink Sink
	Bus  *bus.Bus
	// Consumers are the durable consumers the sink reads (one per stream);
	// their Concurrency is set to BatchSize so a batch can fill.
	Consumers []bus.ConsumerSpec
	// BatchSize is the most documents one Write gets (default 500).
	BatchSize int
	// FlushInterval is the longest a document waits for its batch to fill
	// (default 200ms).
	FlushInterval time.Duration
	// WriteTimeout bounds one Write (default 30s).
	WriteTimeout time.Duration
	Log          *slog.Logger
	Metrics      prometheus.Registerer
}

// Runner feeds a sink from the bus in batches and acknowledges each message
// by its own document's result: stored → acknowledged; retryable → left
// for redelivery with the consumer's backoff; anything else → the dead
// letters with the sink's reason. A Write that returns without error but
// with failed documents is not success for those documents.
type Runner struct {
	o     RunnerOptions
	log   *slog.Logger
	queue chan pending
	m     runnerMetrics
}

type pending struct {
	doc Document
	res chan Result
}

type runnerMetrics struct {
	docs  *prometheus.CounterVec
	write prometheus.Observer
	batch prometheus.Observer
}

// NewRunner builds a runner.
func NewRunner(o RunnerOptions) (*Runner, error) {
	if o.Sink == nil || o.Bus == nil || len(o.Consumers) == 0 {
		return nil, errors.New("sink runner: sink, bus and consumers are required")
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 500
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 200 * time.Millisecond
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	name := o.Sink.Name()
	docs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "faultline_sink_documents_total",
		Help: "Documents written by a sink, by result: stored, retry (left for redelivery) or dead_letter.",
	}, []string{"sink", "result"})
	write := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "faultline_sink_write_seconds",
		Help:    "Duration of one batch write of a sink.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"sink"})
	batch := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "faultline_sink_batch_documents",
		Help:    "Documents per batch write of a sink.",
		Buckets: prometheus.ExponentialBuckets(1, 4, 7),
	}, []string{"sink"})
	if o.Metrics != nil {
		docs = promutil.Reuse(o.Metrics, docs)
		write = promutil.Reuse(o.Metrics, write)
		batch = promutil.Reuse(o.Metrics, batch)
	}
	return &Runner{
		o: o, log: log.With("sink", name),
		// Bounded: handlers wait here when the sink is slower than the bus
		// (backpressure); nothing is dropped.
		queue: make(chan pending, o.BatchSize),
		m:     runnerMetrics{docs: docs, write: write.WithLabelValues(name), batch: batch.WithLabelValues(name)},
	}, nil
}

// Name implements app.Component.
func (r *Runner) Name() string { return "sink/" + r.o.Sink.Name() }

// Run consumes until ctx ends, then lets the documents in flight finish.
func (r *Runner) Run(ctx context.Context) error {
	bctx, stopBatcher := context.WithCancel(context.WithoutCancel(ctx))
	batcherDone := make(chan struct{})
	go func() {
		defer close(batcherDone)
		r.batch(bctx)
	}()
	var wg sync.WaitGroup
	errs := make(chan error, len(r.o.Consumers))
	for _, spec := range r.o.Consumers {
		spec.Concurrency = r.o.BatchSize
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.o.Bus.Consume(ctx, spec, r.handle); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	// Every handler has returned: nothing waits on the batcher any more.
	stopBatcher()
	<-batcherDone
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if err := errors.Join(all...); err != nil {
		return fmt.Errorf("sink %s: %w", r.o.Sink.Name(), err)
	}
	return nil
}

func (r *Runner) handle(ctx context.Context, m *bus.Msg) error {
	env, err := schemas.DecodeEnvelope(m.Data)
	if err != nil {
		r.m.docs.WithLabelValues(r.o.Sink.Name(), "dead_letter").Inc()
		return bus.Permanent(err)
	}
	p := pending{doc: DocumentOf(env), res: make(chan Result, 1)}
	select {
	case r.queue <- p:
	case <-ctx.Done():
		return ctx.Err()
	}
	var res Result
	select {
	case res = <-p.res:
	case <-ctx.Done():
		return ctx.Err()
	}
	switch {
	case res.Err == nil:
		r.m.docs.WithLabelValues(r.o.Sink.Name(), "stored").Inc()
		return nil
	case res.Retryable:
		r.m.docs.WithLabelValues(r.o.Sink.Name(), "retry").Inc()
		return fmt.Errorf("sink %s: document %s: %w", r.o.Sink.Name(), env.ID, res.Err)
	default:
		r.m.docs.WithLabelValues(r.o.Sink.Name(), "dead_letter").Inc()
		return bus.Permanent(fmt.Errorf("sink %s: document %s: %w", r.o.Sink.Name(), env.ID, res.Err))
	}
}

// batch collects documents into batches of BatchSize, or what arrived
// within FlushInterval of a batch's first document, and writes them.
func (r *Runner) batch(ctx context.Context) {
	buf := make([]pending, 0, r.o.BatchSize)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() {
		if len(buf) == 0 {
			return
		}
		docs := make([]Document, len(buf))
		for i, p := range buf {
			docs[i] = p.doc
		}
		wctx, cancel := context.WithTimeout(ctx, r.o.WriteTimeout)
		start := time.Now()
		results := r.o.Sink.Write(wctx, docs)
		cancel()
		r.m.write.Observe(time.Since(start).Seconds())
		r.m.batch.Observe(float64(len(docs)))
		for i, p := range buf {
			res := Result{Err: errors.New("the sink returned no result for this document"), Retryable: true}
			if i < len(results) {
				res = results[i]
			}
			p.res <- res
		}
		buf = buf[:0]
	}
	for {
		select {
		case <-ctx.Done():
			flush()
			return
		case p := <-r.queue:
			if len(buf) == 0 {
				timer.Reset(r.o.FlushInterval)
			}
			buf = append(buf, p)
			if len(buf) >= r.o.BatchSize {
				timer.Stop()
				flush()
			}
		case <-timer.C:
			flush()
		}
	}
}
