// Package collectors defines the seam every source of events implements.
// Each source lives in its own package (auditwebhook, auditfile, kubeevents,
// metrics) with its code, tests, README and sample configuration; they are
// registered explicitly in one place, internal/roles.
package collectors

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"

	"github.com/faultline/faultline/bus"
)

// Collector reads one source and publishes what it reads onto the bus.
//
// Run blocks until ctx ends or the collector fails. On ctx end it stops
// taking input, waits until everything it accepted is acknowledged by
// JetStream (or reports it not accepted to its client), and returns nil.
type Collector interface {
	Name() string
	Run(ctx context.Context) error
}

// Deps is what the runtime hands every collector.
type Deps struct {
	Bus     *bus.Bus
	Cluster string
	Log     *slog.Logger
	// Metrics registers the collector's faultline_* series.
	Metrics prometheus.Registerer
	// AddReadyCheck adds a check to /readyz (nil: no endpoint).
	AddReadyCheck func(name string, check func(context.Context) error)
	// Kube is the API server connection for collectors that read the
	// Kubernetes API (nil when none is configured).
	Kube *rest.Config
}
