package elasticsearch

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

// Deps are what the indexer gets from the runtime.
type Deps struct {
	Bus     *bus.Bus
	Cluster string
	Log     *slog.Logger
	Metrics prometheus.Registerer
	// MaxAckPending is the consumers' bound on unacknowledged messages
	// (bus.consumer.max_ack_pending); raised to two batches if lower.
	MaxAckPending int
}

// Indexer is the indexer role: Init, then a sinks.Runner feeding the sink
// from one durable consumer per bus stream.
type Indexer struct {
	sink   *Sink
	runner *sinks.Runner
}

// writeTimeout bounds one Write: its requests run in parallel, each within
// request_timeout, but a worker may send two when its share of the batch
// exceeds flush_bytes.
func (c Config) writeTimeout() time.Duration { return 2 * c.RequestTimeout }

// Consumers returns the durable consumers of the configured document
// kinds: one per bus stream, named index-<cluster>-<stream>, so the
// replicas of the indexer share each stream (a consumer group). A document
// is attempted up to max_deliver times with backoff; the acknowledgement
// wait covers a batch that waits for the one before it.
func Consumers(cluster string, c Config, maxAckPending int) []bus.ConsumerSpec {
	return sinks.Consumers("index", cluster, c.Documents, bus.ConsumerSpec{
		MaxDeliver: c.MaxDeliver, Backoff: c.Backoff,
		AckWait:       2*c.writeTimeout() + c.FlushInterval + 30*time.Second,
		MaxAckPending: max(maxAckPending, 2*c.BatchSize),
	})
}

// NewIndexer builds the indexer; it contacts Elasticsearch only when run.
func NewIndexer(cfg Config, d Deps) (*Indexer, error) {
	if d.Bus == nil {
		return nil, errors.New("elasticsearch indexer: no bus")
	}
	s, err := New(cfg, Options{Log: d.Log, Metrics: d.Metrics})
	if err != nil {
		return nil, err
	}
	r, err := sinks.NewRunner(sinks.RunnerOptions{
		Sink: s, Bus: d.Bus, Consumers: Consumers(d.Cluster, cfg, d.MaxAckPending),
		BatchSize: cfg.BatchSize, FlushInterval: cfg.FlushInterval, WriteTimeout: cfg.writeTimeout(),
		Log: d.Log, Metrics: d.Metrics,
	})
	if err != nil {
		return nil, fmt.Errorf("elasticsearch indexer: %w", err)
	}
	return &Indexer{sink: s, runner: r}, nil
}

// Name implements app.Component.
func (ix *Indexer) Name() string { return ix.runner.Name() }

// Sink is the indexer's sink.
func (ix *Indexer) Sink() *Sink { return ix.sink }

// Ready is a readiness check: nil once Init has succeeded. It does not
// ask Elasticsearch, so that an outage (which the indexer rides out by
// retrying) does not make a whole `faultline run` unready.
func (ix *Indexer) Ready(context.Context) error {
	if !ix.sink.Ready() {
		return errors.New("elasticsearch: not initialised")
	}
	return nil
}

// Run checks the cluster and installs the templates (failing when it is
// unreachable or unsupported), then indexes until ctx ends.
func (ix *Indexer) Run(ctx context.Context) error {
	if err := ix.sink.Init(ctx); err != nil {
		return err
	}
	err := ix.runner.Run(ctx)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if cerr := ix.sink.Close(cctx); cerr != nil && err == nil {
		err = fmt.Errorf("elasticsearch: close: %w", cerr)
	}
	return err
}
