// Package analyzers defines the seam every analyzer implements and the
// runner that feeds one from the bus. Each analyzer lives in its own package
// (rules, baseline, ...) and is registered in one place, internal/roles.
//
// An analyzer reads audit events and returns findings. The runner consumes
// the analyzer's subjects through a durable JetStream consumer (replicas with
// the same name share the load), publishes each finding on
// fl.finding.<cluster>.<analyzer> with its deterministic id as Nats-Msg-Id,
// waits for JetStream to acknowledge every finding, and only then
// acknowledges the input. A redelivered event yields the same finding ids,
// which JetStream drops as duplicates.
package analyzers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline/faultline/internal/promutil"

	"github.com/faultline/faultline/analyzers/audit"
	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/schemas"
)

// Analyzer turns audit events into findings.
//
// Analyze must be safe for concurrent use and deterministic for a given
// event and state: the same event analysed twice (a redelivery) must yield
// findings with the same ids. It returns an error only for a transient
// failure (the event is retried); an event it cannot use yields no finding.
// It must not keep the event, or a string read from it, beyond the call
// (replay reuses their memory for the next event): it keeps copies.
type Analyzer interface {
	// Name is the analyzer's name: the last token of its finding subject,
	// faultline.analyzer of its findings and part of its consumer name.
	Name() string
	// Analyze returns the findings about one event. The runner fills in
	// the cluster and the chaos labels.
	Analyze(ctx context.Context, in *Input) ([]*schemas.Finding, error)
}

// Input is one event handed to an analyzer.
type Input struct {
	// Cluster is the cluster the event comes from.
	Cluster string
	// SourceID is the event's envelope id (schemas.AuditEventID for audit
	// events); findings derive their ids from it. Empty: Event.ID().
	SourceID string
	Event    *audit.Event
}

// Deps is what the runtime hands every analyzer.
type Deps struct {
	Bus     *bus.Bus
	Cluster string
	Log     *slog.Logger
	// Metrics registers the analyzer's faultline_* series (nil: none).
	Metrics prometheus.Registerer
	// Consumer is the durable consumer's retry policy (stream, durable and
	// filters are set by the runner).
	Consumer bus.ConsumerSpec
	// Chaos marks findings caused by Faultline's injector or falling in the
	// blast radius of an active experiment (nil: no chaos awareness).
	Chaos *Chaos
}

// Runner feeds one analyzer from the bus. It is an app.Component.
type Runner struct {
	a    Analyzer
	deps Deps
	spec bus.ConsumerSpec
	m    *runnerMetrics
}

// NewRunner builds the runner of a; concurrency is the number of events
// analysed at once in this process.
func NewRunner(a Analyzer, d Deps, concurrency int) (*Runner, error) {
	if d.Bus == nil {
		return nil, errors.New("analyzer runner: no bus")
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	spec := d.Consumer
	spec.Stream = bus.StreamAudit
	spec.Durable = "analyzer-" + bus.Token(a.Name()) + "-" + bus.Token(d.Cluster)
	spec.FilterSubjects = []string{bus.AuditSubject(d.Cluster)}
	spec.Concurrency = max(concurrency, 1)
	m, err := newRunnerMetrics(d.Metrics, a.Name())
	if err != nil {
		return nil, fmt.Errorf("analyzer %s: %w", a.Name(), err)
	}
	return &Runner{a: a, deps: d, spec: spec, m: m}, nil
}

// Name is "analyzer/<name>".
func (r *Runner) Name() string { return "analyzer/" + r.a.Name() }

// Background is implemented by analyzers with work of their own beside
// events (writing learned state). The runner starts it with the consumer
// and ends it after the consumer has drained.
type Background interface {
	Background(ctx context.Context) error
}

// Run consumes until ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	bg, ok := r.a.(Background)
	if !ok {
		return r.deps.Bus.Consume(ctx, r.spec, r.handle)
	}
	bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- bg.Background(bctx) }()
	err := r.deps.Bus.Consume(ctx, r.spec, r.handle)
	cancel()
	if berr := <-done; berr != nil && !errors.Is(berr, context.Canceled) {
		err = errors.Join(err, fmt.Errorf("analyzer %s: %w", r.a.Name(), berr))
	}
	return err
}

func (r *Runner) handle(ctx context.Context, m *bus.Msg) error {
	env, err := schemas.DecodeEnvelope(m.Data)
	if err != nil {
		r.m.events.WithLabelValues("rejected").Inc()
		return bus.Permanent(fmt.Errorf("analyze: decode envelope: %w", err))
	}
	if env.Type != schemas.TypeAudit {
		r.m.events.WithLabelValues("skipped").Inc()
		return nil
	}
	ev, err := audit.ParseValid(env.Data)
	if err != nil {
		r.m.events.WithLabelValues("rejected").Inc()
		return bus.Permanent(fmt.Errorf("analyze %s: %w", env.ID, err))
	}
	cluster := env.Cluster
	if cluster == "" {
		cluster = r.deps.Cluster
	}
	start := time.Now()
	findings, err := r.a.Analyze(ctx, &Input{Cluster: cluster, SourceID: env.ID, Event: ev})
	r.m.seconds.Observe(time.Since(start).Seconds())
	if err != nil {
		r.m.events.WithLabelValues("error").Inc()
		return fmt.Errorf("analyze %s: %w", env.ID, err)
	}
	r.m.events.WithLabelValues("ok").Inc()
	if len(findings) == 0 {
		return nil
	}
	batch := r.deps.Bus.NewBatch()
	for _, f := range findings {
		Finish(f, cluster, ev, r.deps.Chaos)
		data, err := EncodeFinding(f)
		if err != nil {
			return bus.Permanent(fmt.Errorf("analyze %s: %w", env.ID, err))
		}
		if err := batch.Add(ctx, bus.Message{
			Subject: bus.FindingSubject(cluster, r.a.Name()),
			ID:      f.Event.ID,
			Data:    data,
		}); err != nil {
			break // recorded in the batch result
		}
	}
	res, err := batch.Wait(ctx)
	if err != nil {
		return fmt.Errorf("analyze %s: publish findings: %w", env.ID, err)
	}
	for _, f := range findings {
		r.m.findings.WithLabelValues(f.Rule.ID, f.Faultline.Severity.String()).Inc()
	}
	if res.Duplicates > 0 {
		r.m.duplicates.Add(float64(res.Duplicates))
	}
	return nil
}

// EncodeFinding wraps a finding in its CloudEvents envelope.
func EncodeFinding(f *schemas.Finding) ([]byte, error) {
	data, err := f.AppendJSON(nil, true) // as json.Marshal writes it
	if err != nil {
		return nil, fmt.Errorf("encode finding %s: %w", f.Event.ID, err)
	}
	env, err := schemas.NewEnvelopeRaw(schemas.Attributes{
		ID:      f.Event.ID,
		Source:  "/faultline/analyzers/" + f.Faultline.Analyzer,
		Type:    schemas.TypeFinding,
		Subject: f.Rule.ID,
		Cluster: f.Orchestrator.Cluster.Name,
		Time:    f.Timestamp,
	}, data)
	if err != nil {
		return nil, fmt.Errorf("encode finding %s: %w", f.Event.ID, err)
	}
	b, err := env.Encode()
	if err != nil {
		return nil, fmt.Errorf("encode finding %s: %w", f.Event.ID, err)
	}
	return b, nil
}

// Finish fills what every finding gets whatever its analyzer: the cluster,
// and the chaos labels and severity (see Chaos). replay uses it too, so the
// document is the same on the bus and offline.
func Finish(f *schemas.Finding, cluster string, ev *audit.Event, chaos *Chaos) {
	f.Orchestrator.Cluster.Name = cluster
	if chaos != nil {
		chaos.Apply(f, ev)
	}
}

type runnerMetrics struct {
	events     *prometheus.CounterVec
	findings   *prometheus.CounterVec
	duplicates prometheus.Counter
	seconds    prometheus.Observer
}

func newRunnerMetrics(reg prometheus.Registerer, name string) (*runnerMetrics, error) {
	labels := prometheus.Labels{"analyzer": name}
	m := &runnerMetrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_analyzer_events_total", ConstLabels: labels,
			Help: "Events handled by the analyzer, by result (ok, error, rejected, skipped).",
		}, []string{"result"}),
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_analyzer_findings_total", ConstLabels: labels,
			Help: "Findings published and acknowledged, by rule and severity.",
		}, []string{"rule", "severity"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_analyzer_duplicate_findings_total", ConstLabels: labels,
			Help: "Findings JetStream already held (a redelivered event).",
		}),
	}
	h := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "faultline_analyzer_analyze_seconds", ConstLabels: labels,
		Help:    "Time to analyze one event.",
		Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10),
	})
	m.seconds = h
	if err := promutil.RegisterAll(reg, m.events, m.findings, m.duplicates, h); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	return m, nil
}
