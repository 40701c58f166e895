// Package rules is the security analyzer: declarative rules, with CEL
// conditions, over every audit event (docs/rules.md).
package rules

import (
	"context"
	"fmt"
	"log/slog"

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
// here, with its path, rule id and the CEL error.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Analyzer, error) {
	e, err := Compile(cfg.Options())
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
func (a *Analyzer) Analyze(_ context.Context, in *analyzers.Input) ([]*schemas.Finding, error) {
	hits := a.engine.Evaluate(in.Event)
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
