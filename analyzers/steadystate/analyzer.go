// Package steadystate is the steady-state analyzer: for every experiment run
// in progress (recorded in the experiments KV bucket by its runner) it
// evaluates each indicator per group every interval, publishes every
// evaluation as a Deviation on fl.deviation.<cluster>.<run>, and aborts the
// run — a FaultAbort every injector acts on — when an indicator deviates
// (after the hysteresis), when an indicator has had no data for too long
// (unknown is not healthy), or when a security finding at or above the
// run's severity lands in the experimental group's namespace.
package steadystate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"

	"github.com/faultline/faultline/analyzers/steadystate/eval"
	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/injectors/runner"
	"github.com/faultline/faultline/schemas"
)

// Name is the analyzer's name.
const Name = "steadystate"

// Deps is what the analyzer gets from the runtime.
type Deps struct {
	Bus     *bus.Bus
	Cluster string
	Log     *slog.Logger
	Metrics prometheus.Registerer
	// Prometheus answers PromQL indicators; nil when no server is
	// configured (a run with a PromQL indicator then fails at once).
	Prometheus promv1.API
	// Kube reads the groups' pods (events indicators) and workloads
	// (replicas indicators); nil without API server access (a run with
	// such an indicator then fails at once).
	Kube kubernetes.Interface
}

// Analyzer evaluates running experiments.
type Analyzer struct {
	cfg     Config
	d       Deps
	log     *slog.Logger
	m       *metrics
	runs    *Runs
	faults  *runner.Store
	state   jetstream.KeyValue
	now     func() time.Time
	mu      sync.Mutex
	active  map[string]*tracked
	evalsWG sync.WaitGroup
	feeds   *feeds
}

type tracked struct {
	run    *Run
	cancel context.CancelFunc
}

// New builds the analyzer.
func New(cfg Config, d Deps) (*Analyzer, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("steadystate: %w", errors.Join(errs...))
	}
	m, err := newMetrics(d.Metrics)
	if err != nil {
		return nil, fmt.Errorf("steadystate: metrics: %w", err)
	}
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Analyzer{cfg: cfg, d: d, log: log, m: m, now: time.Now, active: map[string]*tracked{}, feeds: newFeeds()}, nil
}

// Name implements app.Component.
func (a *Analyzer) Name() string { return "analyzer/" + Name }

// Run follows the experiment runs and the findings until ctx ends.
func (a *Analyzer) Run(ctx context.Context) error {
	var err error
	if a.runs, err = OpenRuns(ctx, a.d.Bus, a.d.Cluster); err != nil {
		return fmt.Errorf("steadystate: %w", err)
	}
	if a.faults, err = runner.OpenStore(ctx, a.d.Bus, a.d.Cluster); err != nil {
		return fmt.Errorf("steadystate: %w", err)
	}
	if a.state, err = a.d.Bus.KV(ctx, bus.BucketState); err != nil {
		return fmt.Errorf("steadystate: %w", err)
	}
	watch, err := a.runs.KV.WatchFiltered(ctx, []string{bus.Token(a.d.Cluster) + ".*"})
	if err != nil {
		return fmt.Errorf("steadystate: watch experiment runs: %w", err)
	}
	defer func() { _ = watch.Stop() }()
	findings, err := a.followFindings(ctx)
	if err != nil {
		return err
	}
	defer findings.Stop()
	feeds, err := a.followFeeds(ctx)
	defer func() {
		for _, f := range feeds {
			f.Stop()
		}
	}()
	if err != nil {
		return err
	}
	a.log.Info("steadystate: following experiment runs", "prometheus", a.d.Prometheus != nil)
	for {
		select {
		case <-ctx.Done():
			a.stopAll()
			return nil
		case e, ok := <-watch.Updates():
			if !ok {
				a.stopAll()
				return ctx.Err()
			}
			if e != nil {
				a.onRun(ctx, e)
			}
		}
	}
}

func (a *Analyzer) stopAll() {
	a.mu.Lock()
	for id, t := range a.active {
		t.cancel()
		delete(a.active, id)
	}
	a.mu.Unlock()
	a.evalsWG.Wait()
	a.m.runs.Set(0)
}

// onRun starts or stops the evaluation of the run an update is about.
func (a *Analyzer) onRun(ctx context.Context, e jetstream.KeyValueEntry) {
	key := e.Key()
	id := key[len(bus.Token(a.d.Cluster))+1:]
	var run *Run
	if e.Operation() == jetstream.KeyValuePut {
		r, err := decodeRun(e.Value())
		if err != nil {
			a.log.Warn("steadystate: unreadable experiment run", "run", id, "err", err)
			return
		}
		run = r
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.active[id]
	if run == nil || !run.Phase.Active() {
		if t != nil {
			t.cancel()
			delete(a.active, id)
			a.m.runs.Set(float64(len(a.active)))
			a.feeds.forget(id)
		}
		return
	}
	if t != nil {
		t.run = run // phase moves from warmup to running
		return
	}
	if len(a.active) >= a.cfg.MaxRuns {
		go a.fail(ctx, id, fmt.Sprintf("the steady-state analyzer already evaluates max_runs=%d runs", a.cfg.MaxRuns))
		return
	}
	if reason := a.unsupported(run.Experiment); reason != "" {
		go a.fail(ctx, id, reason)
		return
	}
	rctx, cancel := context.WithCancel(ctx)
	a.active[id] = &tracked{run: run, cancel: cancel}
	a.m.runs.Set(float64(len(a.active)))
	a.evalsWG.Add(1)
	go func() {
		defer a.evalsWG.Done()
		a.evaluate(rctx, id)
	}()
}

// unsupported says why this analyzer cannot evaluate an experiment, if so.
func (a *Analyzer) unsupported(e *schemas.Experiment) string {
	for _, ind := range e.SteadyState {
		switch {
		case ind.PromQL != "" && a.d.Prometheus == nil:
			return fmt.Sprintf("indicator %s is a PromQL query but no Prometheus server is configured (collectors.metrics.promql.url)", ind.Name)
		case (ind.Events != nil || ind.Replicas != nil) && a.d.Kube == nil:
			return fmt.Sprintf("indicator %s reads the group's pods or workloads, but the steady-state analyzer has no API server access (analyzers.steadystate.read_cluster, kubernetes.*)", ind.Name)
		}
	}
	return ""
}

func (a *Analyzer) fail(ctx context.Context, id, reason string) {
	a.log.Error("steadystate: cannot evaluate experiment run", "run", id, "reason", reason)
	if _, err := a.runs.End(ctx, id, PhaseFailed, reason, ""); err != nil {
		a.log.Warn("steadystate: end run", "run", id, "err", err)
	}
}

// current is the latest record of an evaluated run.
func (a *Analyzer) current(id string) *Run {
	a.mu.Lock()
	defer a.mu.Unlock()
	if t := a.active[id]; t != nil {
		return t.run
	}
	return nil
}

// abort ends the run and tells every injector to revert its faults. Only
// the analyzer (replica) that ends the run publishes the abort, once.
func (a *Analyzer) abort(ctx context.Context, id string, phase Phase, cause, indicator, reason string) {
	ended, err := a.runs.End(ctx, id, phase, reason, indicator)
	if err != nil {
		a.log.Error("steadystate: end run before abort; aborting anyway", "run", id, "err", err)
	} else if !ended {
		return
	}
	ab := &schemas.FaultAbort{ID: schemas.DeriveID("abort", id), ExperimentID: id, Reason: reason, IssuedAt: a.now().UTC(), Issuer: "steadystate"}
	if err := runner.PublishAbort(context.WithoutCancel(ctx), a.d.Bus, a.faults, ab); err != nil {
		a.log.Error("steadystate: publish abort", "run", id, "err", err)
		return
	}
	a.m.aborts.WithLabelValues(cause).Inc()
	a.log.Warn("steadystate: experiment aborted", "run", id, "cause", cause, "indicator", indicator, "reason", reason)
}

// publishDeviation sends one evaluation.
func (a *Analyzer) publishDeviation(ctx context.Context, d *schemas.Deviation) {
	env, err := schemas.NewEnvelope(schemas.Attributes{
		ID: d.ID, Source: "/faultline/analyzers/" + Name, Type: schemas.TypeDeviation,
		Subject: d.Indicator, Cluster: a.d.Cluster, Time: d.EvaluatedAt,
	}, d)
	var data []byte
	if err == nil {
		data, err = env.Encode()
	}
	if err == nil {
		_, err = a.d.Bus.Publish(ctx, bus.Message{Subject: bus.DeviationSubject(a.d.Cluster, d.ExperimentID), ID: d.ID, Data: data})
	}
	if err != nil {
		a.log.Warn("steadystate: publish deviation", "run", d.ExperimentID, "indicator", d.Indicator, "err", err)
	}
}

// trackerState is what survives a restart of the analyzer: where each
// indicator's run of failures and gaps stands.
type trackerState struct {
	// Next is the index of the next evaluation (1: at start + interval).
	Next int `json:"next"`
	// Trackers holds each indicator's hysteresis and gap counts.
	Trackers map[string]eval.State `json:"trackers"`
}

func (a *Analyzer) stateKey(id string) string {
	return "steadystate." + bus.Token(a.d.Cluster) + "." + id
}

func (a *Analyzer) loadState(ctx context.Context, id string) trackerState {
	fresh := trackerState{Next: 1, Trackers: map[string]eval.State{}}
	e, err := a.state.Get(ctx, a.stateKey(id))
	if err != nil {
		return fresh
	}
	var st trackerState
	if json.Unmarshal(e.Value(), &st) != nil || st.Next < 1 {
		return fresh
	}
	if st.Trackers == nil {
		st.Trackers = map[string]eval.State{}
	}
	return st
}

func (a *Analyzer) saveState(ctx context.Context, id string, st trackerState) {
	b, err := json.Marshal(st)
	if err == nil {
		_, err = a.state.Put(ctx, a.stateKey(id), b)
	}
	if err != nil {
		a.log.Warn("steadystate: save evaluation state", "run", id, "err", err)
	}
}
