package runner

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline/faultline/internal/promutil"
)

type metrics struct {
	commands      *prometheus.CounterVec
	refusals      *prometheus.CounterVec
	active        prometheus.Gauge
	reverts       *prometheus.CounterVec
	revertSeconds prometheus.Histogram
	abortSeconds  prometheus.Histogram
	abortsDropped prometheus.Counter
	statusErrors  prometheus.Counter
	takeovers     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_injector_commands_total",
			Help: "Fault commands handled, by fault and outcome (applied, planned, refused, failed).",
		}, []string{"fault", "outcome"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_injector_refusals_total",
			Help: "Fault commands refused, by reason code (unsigned, forged, expired, replayed, namespace-not-allowed, blast-radius, ...).",
		}, []string{"reason"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "faultline_injector_active_faults",
			Help: "Faults this replica drives now (applied, waiting for their deadline).",
		}),
		reverts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_injector_reverts_total",
			Help: "Revert attempts, by cause (deadline, abort, shutdown, takeover, experiment-heartbeat, apply-failed) and result (ok, failed).",
		}, []string{"cause", "result"}),
		revertSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "faultline_injector_revert_seconds",
			Help:    "Duration of one revert attempt, until the API server confirmed it.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		abortSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "faultline_injector_abort_seconds",
			Help:    "From an abort's arrival to every matching fault reverted by this replica.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		abortsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_injector_aborts_dropped_total",
			Help: "Aborts not queued because the queue was full; the reconciler still applies them from the recorded abort.",
		}),
		statusErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_injector_status_publish_errors_total",
			Help: "Fault statuses that could not be published.",
		}),
		takeovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_injector_takeovers_total",
			Help: "Faults taken over from an injector replica that stopped heartbeating.",
		}),
	}
	cs := []prometheus.Collector{m.commands, m.refusals, m.active, m.reverts, m.revertSeconds, m.abortSeconds, m.abortsDropped, m.statusErrors, m.takeovers}
	if err := promutil.RegisterAll(reg, cs...); err != nil {
		return nil, err
	}
	return m, nil
}
