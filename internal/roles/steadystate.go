package roles

import (
	"fmt"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/faultline/faultline/analyzers/steadystate"
	"github.com/faultline/faultline/collectors/metrics"
	"github.com/faultline/faultline/internal/app"
	"github.com/faultline/faultline/internal/kube"
)

// NewSteadyState builds the steady-state analyzer. It queries the
// Prometheus server configured for the metrics collector's PromQL source,
// when one is.
func NewSteadyState(rt *app.Runtime, version string) (*steadystate.Analyzer, error) {
	cfg := rt.Config
	var prom promv1.API
	if p := cfg.Collectors.Metrics.PromQL; p.URL != "" {
		var err error
		if prom, err = metrics.PrometheusAPI(p, int64(cfg.Collectors.Metrics.MaxBodySize)); err != nil {
			return nil, fmt.Errorf("analyzer %s: %w", steadystate.Name, err)
		}
	}
	log := rt.Log.With("component", "analyzer/"+steadystate.Name)
	var kc kubernetes.Interface
	if cfg.Analyzers.SteadyState.ReadCluster {
		// Without a cluster (a laptop trying Faultline) the analyzer still
		// runs; only events and replicas indicators are unavailable.
		rc, err := kube.RestConfig(cfg.Kubernetes, "faultline/"+version+" ("+steadystate.Name+")")
		if err == nil {
			kc, err = kubernetes.NewForConfig(rc)
		}
		if err != nil {
			log.Warn("steadystate: no API server access; events and replicas indicators are unavailable", "err", err)
			kc = nil
		}
	}
	a, err := steadystate.New(cfg.Analyzers.SteadyState, steadystate.Deps{
		Bus: rt.Bus, Cluster: cfg.Cluster, Log: log, Metrics: rt.Registry, Prometheus: prom, Kube: kc,
	})
	if err != nil {
		return nil, fmt.Errorf("analyzer %s: %w", steadystate.Name, err)
	}
	return a, nil
}
