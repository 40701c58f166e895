package roles

import (
	"fmt"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/faultline/faultline/analyzers/steadystate"
	"github.com/faultline/faultline/collectors/metrics"
	"github.com/faultline/faultline/internal/app"
)

// NewSteadyState builds the steady-state analyzer. It queries the
// Prometheus server configured for the metrics collector's PromQL source,
// when one is.
func NewSteadyState(rt *app.Runtime) (*steadystate.Analyzer, error) {
	cfg := rt.Config
	var prom promv1.API
	if p := cfg.Collectors.Metrics.PromQL; p.URL != "" {
		var err error
		if prom, err = metrics.PrometheusAPI(p, int64(cfg.Collectors.Metrics.MaxBodySize)); err != nil {
			return nil, fmt.Errorf("analyzer %s: %w", steadystate.Name, err)
		}
	}
	a, err := steadystate.New(cfg.Analyzers.SteadyState, steadystate.Deps{
		Bus: rt.Bus, Cluster: cfg.Cluster, Log: rt.Log.With("component", "analyzer/"+steadystate.Name),
		Metrics: rt.Registry, Prometheus: prom,
	})
	if err != nil {
		return nil, fmt.Errorf("analyzer %s: %w", steadystate.Name, err)
	}
	return a, nil
}
