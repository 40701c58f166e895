package fluent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/sinks"
)

// Deps are what the forwarder gets from the runtime.
type Deps struct {
	Bus     *bus.Bus
	Cluster string
	Log     *slog.Logger
	Metrics prometheus.Registerer
	// MaxAckPending is the consumers' bound on unacknowledged messages
	// (bus.consumer.max_ack_pending); raised to two batches if lower.
	MaxAckPending int
}

// Forwarder is the forward role: a sinks.Runner feeding the sink from one
// durable consumer per bus stream.
type Forwarder struct {
	sink   *Sink
	runner *sinks.Runner
	log    *slog.Logger
}

// Consumers returns the durable consumers of the configured document
// kinds: one per bus stream, named fluent-<cluster>-<stream>, so the
// replicas of the forwarder share each stream (a consumer group) and the
// Elasticsearch indexer's consumers are not affected. The acknowledgement
// wait covers a batch that waits for the one before it.
func Consumers(cluster string, c Config, maxAckPending int) []bus.ConsumerSpec {
	return sinks.Consumers("fluent", cluster, c.Documents, bus.ConsumerSpec{
		MaxDeliver: c.MaxDeliver, Backoff: c.Backoff,
		AckWait:       2*c.WriteTimeout + c.FlushInterval + 30*time.Second,
		MaxAckPending: max(maxAckPending, 2*c.BatchSize),
	})
}

// NewForwarder builds the forwarder; its client connects when it first
// sends.
func NewForwarder(cfg Config, d Deps) (*Forwarder, error) {
	if d.Bus == nil {
		return nil, errors.New("fluent forwarder: no bus")
	}
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, err := New(cfg, Options{Log: log, Metrics: d.Metrics})
	if err != nil {
		return nil, err
	}
	r, err := sinks.NewRunner(sinks.RunnerOptions{
		Sink: s, Bus: d.Bus, Consumers: Consumers(d.Cluster, cfg, d.MaxAckPending),
		BatchSize: cfg.BatchSize, FlushInterval: cfg.FlushInterval, WriteTimeout: cfg.WriteTimeout,
		Log: log, Metrics: d.Metrics,
	})
	if err != nil {
		_ = s.Close(context.Background())
		return nil, fmt.Errorf("fluent forwarder: %w", err)
	}
	return &Forwarder{sink: s, runner: r, log: log}, nil
}

// Name implements app.Component.
func (f *Forwarder) Name() string { return f.runner.Name() }

// Sink is the forwarder's sink.
func (f *Forwarder) Sink() *Sink { return f.sink }

// Run forwards until ctx ends, then gives the client up to 10 s to report
// the records it holds. A receiver that does not answer at start is
// logged, not fatal: documents wait on the bus until it does.
func (f *Forwarder) Run(ctx context.Context) error {
	if err := f.sink.Probe(ctx); err != nil {
		f.log.Warn("fluent: the receiver does not answer yet; documents wait on the bus until it does", "address", f.sink.Address(), "err", err)
	} else {
		f.log.Info("fluent: forwarding", "address", f.sink.Address(), "delivery", f.sink.cfg.Delivery, "documents", f.sink.cfg.Documents)
	}
	err := f.runner.Run(ctx)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if cerr := f.sink.Close(cctx); cerr != nil && err == nil {
		err = cerr
	}
	return err
}
