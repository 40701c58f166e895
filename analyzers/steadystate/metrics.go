package steadystate

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline/faultline/internal/promutil"
)

type metrics struct {
	evaluations *prometheus.CounterVec
	aborts      *prometheus.CounterVec
	runs        prometheus.Gauge
	queryErrors prometheus.Counter
	dropped     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		evaluations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_steadystate_evaluations_total",
			Help: "Indicator evaluations, by verdict (ok, failing, deviated, no-data).",
		}, []string{"verdict"}),
		aborts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_steadystate_aborts_total",
			Help: "Experiment runs aborted, by cause (deviation, finding, telemetry-gap).",
		}, []string{"cause"}),
		runs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "faultline_steadystate_runs",
			Help: "Experiment runs being evaluated.",
		}),
		queryErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_steadystate_query_errors_total",
			Help: "PromQL queries of indicators that failed (counted as no data).",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_steadystate_buffer_dropped_total",
			Help: "Events and samples dropped from the full buffers of the events and metric indicators (oldest first).",
		}),
	}
	if err := promutil.RegisterAll(reg, m.evaluations, m.aborts, m.runs, m.queryErrors, m.dropped); err != nil {
		return nil, err
	}
	return m, nil
}
