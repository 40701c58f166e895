package roles

import (
	"fmt"

	"k8s.io/client-go/kubernetes"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/injectors"
	"github.com/faultline/faultline/injectors/guard"
	"github.com/faultline/faultline/injectors/netpartition"
	"github.com/faultline/faultline/injectors/podkill"
	"github.com/faultline/faultline/injectors/runner"
	"github.com/faultline/faultline/injectors/starvation"
	"github.com/faultline/faultline/internal/app"
	"github.com/faultline/faultline/internal/config"
	"github.com/faultline/faultline/internal/kube"
	"github.com/faultline/faultline/schemas"
)

// InjectorPlugin describes one registered fault type.
type InjectorPlugin struct {
	Fault schemas.FaultKind
	New   func(d injectors.Deps, c *config.Config) (injectors.Injector, error)
}

// Injectors lists every fault type.
func Injectors() []InjectorPlugin {
	return []InjectorPlugin{
		{Fault: podkill.Name, New: func(d injectors.Deps, c *config.Config) (injectors.Injector, error) {
			return podkill.New(d, c.Injectors.PodKill)
		}},
		{Fault: netpartition.Name, New: func(d injectors.Deps, c *config.Config) (injectors.Injector, error) {
			return netpartition.New(d, c.Injectors.NetworkPartition)
		}},
		{Fault: starvation.Name, New: func(d injectors.Deps, c *config.Config) (injectors.Injector, error) {
			return starvation.New(d, c.Injectors.ResourceStarvation)
		}},
	}
}

// NewInjector builds the injector replica: every fault type, the guard
// rails and the lifecycle, with an API client whose User-Agent names the
// experiment of each request.
func NewInjector(rt *app.Runtime, version string) (*runner.Runner, error) {
	cfg := &rt.Config
	rc, err := kube.RestConfig(cfg.Kubernetes, "faultline/"+version+" ("+runner.Name+")")
	if err != nil {
		return nil, fmt.Errorf("injector: %w", err)
	}
	rc.Wrap(injectors.ExperimentTransport)
	rc.RateLimiter = injectors.NewRateLimiter(rc.QPS, rc.Burst)
	kc, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("injector: kubernetes client: %w", err)
	}
	log := rt.Log.With("component", runner.Name)
	g, err := guard.New(cfg.Injectors.Guard, kc)
	if err != nil {
		return nil, fmt.Errorf("injector: %w", err)
	}
	d := injectors.Deps{Kube: kc, Log: log}
	var faults []injectors.Injector
	for _, p := range Injectors() {
		i, err := p.New(d, cfg)
		if err != nil {
			return nil, fmt.Errorf("injector %s: %w", p.Fault, err)
		}
		faults = append(faults, i)
	}
	return runner.New(runner.Options{
		Config: cfg.Injectors.Lifecycle, Guard: g, Injectors: faults, Bus: rt.Bus, Cluster: cfg.Cluster,
		Log: log, Metrics: rt.Registry, Consumer: app.ConsumerSpec(*cfg, bus.StreamFault, ""),
	})
}
