package roles

import (
	"context"
	"fmt"

	"github.com/faultline/faultline/analyzers"
	"github.com/faultline/faultline/analyzers/baseline"
	"github.com/faultline/faultline/analyzers/rules"
	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/internal/app"
	"github.com/faultline/faultline/internal/config"
)

// AnalyzerPlugin describes one registered analyzer.
type AnalyzerPlugin struct {
	// Name is the analyzer's name (the last token of its finding subject).
	Name    string
	Enabled func(c *config.Config) bool
	// Concurrency is how many events one process analyses at once.
	Concurrency func(c *config.Config) int
	New         func(d analyzers.Deps, c *config.Config) (analyzers.Analyzer, error)
}

// Analyzers lists every analyzer.
func Analyzers() []AnalyzerPlugin {
	return []AnalyzerPlugin{
		{
			Name:        rules.Name,
			Enabled:     func(c *config.Config) bool { return c.Analyzers.Rules.Enabled },
			Concurrency: func(c *config.Config) int { return c.Analyzers.Rules.Concurrency },
			New: func(d analyzers.Deps, c *config.Config) (analyzers.Analyzer, error) {
				// Windows live in JetStream KV: the replicas count together
				// and a restart forgets nothing.
				kv, err := d.Bus.KV(context.Background(), bus.BucketState)
				if err != nil {
					return nil, err
				}
				return rules.New(c.Analyzers.Rules, rules.NewKVWindowStore(d.Bus.JetStream(), kv, d.Cluster), d.Log, d.Metrics)
			},
		},
		{
			Name:        baseline.Name,
			Enabled:     func(c *config.Config) bool { return c.Analyzers.Baseline.Enabled },
			Concurrency: func(c *config.Config) int { return c.Analyzers.Baseline.Concurrency },
			New: func(d analyzers.Deps, c *config.Config) (analyzers.Analyzer, error) {
				kv, err := d.Bus.KV(context.Background(), bus.BucketState)
				if err != nil {
					return nil, err
				}
				return baseline.New(c.Analyzers.Baseline, baseline.KVStore{KV: kv}, d.Cluster, d.Log, d.Metrics)
			},
		},
	}
}

// ExperimentSource is where analyzers learn which chaos experiments are
// active (labels.experiment_id on findings in their blast radius). Nil until
// the experiments component sets it at start.
var ExperimentSource analyzers.ExperimentSource

// NewAnalyzer builds the runner of one analyzer: a JetStream consumer group
// named after the analyzer and the cluster, so replicas share the events.
func NewAnalyzer(rt *app.Runtime, p AnalyzerPlugin) (*analyzers.Runner, error) {
	log := rt.Log.With("component", "analyzer/"+p.Name)
	d := analyzers.Deps{
		Bus:      rt.Bus,
		Cluster:  rt.Config.Cluster,
		Log:      log,
		Metrics:  rt.Registry,
		Consumer: app.ConsumerSpec(rt.Config, bus.StreamAudit, ""),
		Chaos:    analyzers.NewChaos(rt.Config.Analyzers.Chaos, ExperimentSource, log),
	}
	a, err := p.New(d, &rt.Config)
	if err != nil {
		return nil, fmt.Errorf("analyzer %s: %w", p.Name, err)
	}
	r, err := analyzers.NewRunner(a, d, p.Concurrency(&rt.Config))
	if err != nil {
		return nil, fmt.Errorf("analyzer %s: %w", p.Name, err)
	}
	return r, nil
}

// EnabledAnalyzers builds every enabled analyzer: the audit analyzers and
// the steady-state analyzer.
func EnabledAnalyzers(rt *app.Runtime, version string) ([]app.Component, error) {
	var out []app.Component
	for _, p := range Analyzers() {
		if !p.Enabled(&rt.Config) {
			continue
		}
		r, err := NewAnalyzer(rt, p)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if rt.Config.Analyzers.SteadyState.Enabled {
		s, err := NewSteadyState(rt, version)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}
