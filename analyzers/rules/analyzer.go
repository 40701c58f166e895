// Package rules is the security analyzer: declarative rules, with CEL
// conditions, over every audit event (docs/rules.md).
package rules

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline/faultline/internal/promutil"

	"github.com/faultline/faultline/analyzers"
	"github.com/faultline/faultline/schemas"
)

// Name is the analyzer's name: fl.finding.<cluster>.rules.
const Name = "rules"

// Analyzer runs an Engine over audit events.
type Analyzer struct {
	engine *Engine
	log    *slog.Logger
}

// New compiles the configured rules. A rule file with an error is refused
// here, with its path, rule id and the CEL error. windows keeps the state
// of windowed rules: a KVWindowStore shares it between the replicas of
// the analyzer and keeps it across restarts; nil keeps it in memory.
func New(cfg Config, windows WindowStore, log *slog.Logger, reg prometheus.Registerer) (*Analyzer, error) {
	opts := cfg.Options()
	opts.Windows = windows
	e, err := Compile(opts)
	if err != nil {
		return nil, fmt.Errorf("rules analyzer: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	a := &Analyzer{engine: e, log: log}
	if err := promutil.RegisterAll(reg,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "faultline_rules_eval_errors_total",
			Help: "Rule evaluations that failed at run time (a field of the wrong type); counted as no match.",
		}, func() float64 { return float64(e.EvalErrors()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "faultline_rules_window_evictions_total",
			Help: "Window keys forgotten because a windowed rule reached window_max_keys.",
		}, func() float64 { return float64(e.WindowEvictions()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "faultline_rules_loaded",
			Help: "Rules compiled and running.",
		}, func() float64 { return float64(len(e.Rules())) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "faultline_rules_window_kv_conflicts_total",
			Help: "Window writes to JetStream KV that met another replica's write and were applied again.",
		}, func() float64 {
			if kv, ok := e.Windows().(*KVWindowStore); ok {
				return float64(kv.Conflicts())
			}
			return 0
		}),
	); err != nil {
		return nil, fmt.Errorf("rules analyzer: register metrics: %w", err)
	}
	log.Info("rules loaded", "rules", len(e.Rules()))
	return a, nil
}

// NewWithEngine wraps a compiled engine (replay, tests).
func NewWithEngine(e *Engine) *Analyzer { return &Analyzer{engine: e, log: slog.Default()} }

// Engine returns the analyzer's compiled rules.
func (a *Analyzer) Engine() *Engine { return a.engine }

// Name is "rules".
func (a *Analyzer) Name() string { return Name }

// Analyze evaluates the rules and builds a finding per rule that fired.
// An error (the shared window store unreachable) means the event must be
// analysed again.
func (a *Analyzer) Analyze(ctx context.Context, in *analyzers.Input) ([]*schemas.Finding, error) {
	hits, err := a.engine.Evaluate(ctx, in.Event)
	if err != nil {
		return nil, err
	}
	if len(hits) == 0 {
		return nil, nil
	}
	src := in.SourceID
	if src == "" {
		src = in.Event.ID()
	}
	up := in.Event.Upstream()
	out := make([]*schemas.Finding, 0, len(hits))
	for _, h := range hits {
		r := h.Rule
		f := schemas.NewFinding(Name, schemas.Rule{ID: r.ID, Name: r.Name, Description: r.Description, Ruleset: r.Ruleset},
			r.Severity, src, in.Event.Time())
		if len(r.MITRE) > 0 {
			names := make([]string, len(r.MITRE))
			for i, t := range r.MITRE {
				names[i] = TechniqueName(t)
			}
			f.Threat = schemas.NewMITREThreat(r.MITRE, names)
		}
		f.SetAuditContext(up)
		f.Orchestrator.Cluster.Name = in.Cluster
		f.Message = h.Message
		out = append(out, f)
	}
	return out, nil
}

// Background sweeps the shared window store while the analyzer runs (the
// runner starts it): windows not written for twice the longest window (at
// least 10 minutes) are forgotten, and a rule keeps at most
// window_max_keys keys. With windows in memory it only waits.
func (a *Analyzer) Background(ctx context.Context) error {
	kv, ok := a.engine.Windows().(*KVWindowStore)
	if !ok || a.engine.MaxWindow() == 0 {
		<-ctx.Done()
		return nil
	}
	idle := max(2*a.engine.MaxWindow(), 10*time.Minute)
	t := time.NewTicker(max(a.engine.MaxWindow(), time.Minute))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := kv.Sweep(ctx, idle, a.engine.windowLimit); err != nil && ctx.Err() == nil {
				a.log.Warn("rules: sweeping windows failed; trying again later", "err", err)
			}
		}
	}
}
