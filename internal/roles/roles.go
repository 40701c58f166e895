// Package roles is the one place where every plugin is registered: the
// collectors (and, as they are built, analyzers, injectors and sinks).
// `faultline run` starts the enabled ones; `faultline collect NAME` and the
// other role commands start one for a Deployment of its own.
package roles

import (
	"context"
	"fmt"

	"github.com/faultline/faultline/collectors"
	"github.com/faultline/faultline/collectors/auditfile"
	"github.com/faultline/faultline/collectors/auditwebhook"
	"github.com/faultline/faultline/collectors/kubeevents"
	"github.com/faultline/faultline/collectors/metrics"
	"github.com/faultline/faultline/internal/app"
	"github.com/faultline/faultline/internal/config"
	"github.com/faultline/faultline/internal/kube"
)

// CollectorPlugin describes one registered collector.
type CollectorPlugin struct {
	// Name is the subcommand: faultline collect <Name>.
	Name  string
	Short string
	// NeedsKube tells the runtime to build the API server connection.
	NeedsKube bool
	Enabled   func(c *config.Config) bool
	New       func(d collectors.Deps, c *config.Config) (collectors.Collector, error)
}

// Collectors lists every collector, in start order.
func Collectors() []CollectorPlugin {
	return []CollectorPlugin{
		{
			Name:    auditwebhook.Name,
			Short:   "Receive the API server's audit webhook; answer only once every event is stored in JetStream",
			Enabled: func(c *config.Config) bool { return c.Collectors.AuditWebhook.Enabled },
			New: func(d collectors.Deps, c *config.Config) (collectors.Collector, error) {
				return auditwebhook.New(d, c.Collectors.AuditWebhook)
			},
		},
		{
			Name:    auditfile.Name,
			Short:   "Follow the API server's audit log (--audit-log-path) across rotation onto the bus",
			Enabled: func(c *config.Config) bool { return c.Collectors.AuditFile.Enabled },
			New: func(d collectors.Deps, c *config.Config) (collectors.Collector, error) {
				return auditfile.New(c.Collectors.AuditFile, d)
			},
		},
		{
			Name:      kubeevents.Name,
			Short:     "Watch Kubernetes Events onto the bus: every occurrence, once, with leader election",
			NeedsKube: true,
			Enabled:   func(c *config.Config) bool { return c.Collectors.KubeEvents.Enabled },
			New: func(d collectors.Deps, c *config.Config) (collectors.Collector, error) {
				return kubeevents.New(c.Collectors.KubeEvents, d, kubeevents.Options{StateReplicas: c.Bus.Replicas})
			},
		},
		{
			Name:    metrics.Name,
			Short:   "Scrape Prometheus endpoints and run PromQL queries onto the bus",
			Enabled: func(c *config.Config) bool { return c.Collectors.Metrics.Enabled },
			// The API server connection is needed only for pod discovery,
			// so it is built here rather than through NeedsKube.
			New: func(d collectors.Deps, c *config.Config) (collectors.Collector, error) {
				if c.Collectors.Metrics.Scrape.Pods.Enabled && d.Kube == nil {
					rc, err := kube.RestConfig(c.Kubernetes, "faultline ("+metrics.Name+")")
					if err != nil {
						return nil, err
					}
					d.Kube = rc
				}
				return metrics.New(d, c.Collectors.Metrics)
			},
		},
	}
}

// CollectorDeps builds what a collector gets from the runtime.
func CollectorDeps(rt *app.Runtime, p CollectorPlugin, version string) (collectors.Deps, error) {
	d := collectors.Deps{
		Bus:     rt.Bus,
		Cluster: rt.Config.Cluster,
		Log:     rt.Log.With("component", "collector/"+p.Name),
		Metrics: rt.Registry,
	}
	if rt.Ops != nil {
		d.AddReadyCheck = func(name string, check func(context.Context) error) { rt.Ops.AddCheck(name, check) }
	}
	if p.NeedsKube {
		rc, err := kube.RestConfig(rt.Config.Kubernetes, "faultline/"+version+" ("+p.Name+")")
		if err != nil {
			return d, fmt.Errorf("collector %s: %w", p.Name, err)
		}
		d.Kube = rc
	}
	return d, nil
}

// EnabledComponents builds every enabled collector, analyzer and sink and,
// when enabled, the injector for `faultline run`.
func EnabledComponents(rt *app.Runtime, version string) ([]app.Component, error) {
	var out []app.Component
	for _, p := range Collectors() {
		if !p.Enabled(&rt.Config) {
			continue
		}
		c, err := NewCollector(rt, p, version)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	as, err := EnabledAnalyzers(rt, version)
	if err != nil {
		return nil, err
	}
	out = append(out, as...)
	ss, err := EnabledSinks(rt)
	if err != nil {
		return nil, err
	}
	out = append(out, ss...)
	if rt.Config.Injectors.Enabled {
		inj, err := NewInjector(rt, version)
		if err != nil {
			return nil, err
		}
		out = append(out, inj)
	}
	return out, nil
}

// NewCollector builds one collector.
func NewCollector(rt *app.Runtime, p CollectorPlugin, version string) (collectors.Collector, error) {
	d, err := CollectorDeps(rt, p, version)
	if err != nil {
		return nil, err
	}
	c, err := p.New(d, &rt.Config)
	if err != nil {
		return nil, fmt.Errorf("collector %s: %w", p.Name, err)
	}
	return c, nil
}
