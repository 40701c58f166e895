package metrics

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline/faultline/internal/promutil"
)

// Results of one scrape or query, the result label of
// faultline_metrics_scrapes_total.
const (
	resultSuccess     = "success"
	resultError       = "error"        // connection, HTTP status, timeout, query error
	resultParseError  = "parse_error"  // malformed exposition
	resultSampleLimit = "sample_limit" // more than max_samples
	resultBodyLimit   = "body_limit"   // more than max_body_size
	resultSkipped     = "skipped"      // no free slot before the next interval
	resultPublish     = "publish_error"
)

// errSkipped is wrapped when no scrape slot was free before the next
// interval.
var errSkipped = errors.New("no free scrape slot before the next interval")

// resultOf classifies a failed scrape or query.
func resultOf(err error) string {
	switch {
	case err == nil:
		return resultSuccess
	case errors.Is(err, ErrSampleLimit):
		return resultSampleLimit
	case errors.Is(err, ErrBodyLimit):
		return resultBodyLimit
	case errors.Is(err, ErrParse):
		return resultParseError
	case errors.Is(err, errSkipped):
		return resultSkipped
	}
	return resultError
}

// collectorMetrics are the collector's faultline_metrics_* series.
type collectorMetrics struct {
	scrapes        *prometheus.CounterVec   // source, result
	duration       *prometheus.HistogramVec // source
	published      *prometheus.CounterVec   // source, kind
	publishFailed  *prometheus.CounterVec   // source
	targets        *prometheus.GaugeVec     // source, state
	missed         *prometheus.CounterVec   // source
	slotsInUse     prometheus.Gauge
	slotsLimit     prometheus.Gauge
	podRefreshes   prometheus.Counter
	discoveredPods prometheus.Gauge
}

func newCollectorMetrics(reg prometheus.Registerer) (*collectorMetrics, error) {
	m := &collectorMetrics{
		scrapes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_metrics_scrapes_total",
			Help: "Scrapes and PromQL query runs by source and result (success, error, parse_error, sample_limit, body_limit, skipped, publish_error).",
		}, []string{"source", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "faultline_metrics_scrape_duration_seconds",
			Help:    "Time to read and decode one scrape or query result, publishing excluded.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"source"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_metrics_samples_published_total",
			Help: "Samples acknowledged by JetStream, by source and kind (series: scraped or queried values; health: target-health samples).",
		}, []string{"source", "kind"}),
		publishFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_metrics_publish_failures_total",
			Help: "Samples JetStream did not acknowledge (the scrape counts as publish_error).",
		}, []string{"source"}),
		targets: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "faultline_metrics_targets",
			Help: "Targets and queries by state: up (last attempt succeeded) or down.",
		}, []string{"source", "state"}),
		missed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_metrics_missed_intervals_total",
			Help: "Intervals that passed without a scrape or health sample because the previous one was still running.",
		}, []string{"source"}),
		slotsInUse: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "faultline_metrics_scrape_slots_in_use",
			Help: "Scrapes and queries running now.",
		}),
		slotsLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "faultline_metrics_scrape_slots",
			Help: "Scrapes and queries that may run at once (collectors.metrics.max_concurrent).",
		}),
		podRefreshes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_metrics_pod_discovery_refreshes_total",
			Help: "Recomputations of the pod target set after pod changes (changes arriving meanwhile are coalesced into the next).",
		}),
		discoveredPods: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "faultline_metrics_pod_targets",
			Help: "Scrape targets found from pod annotations.",
		}),
	}
	if err := promutil.RegisterAll(reg, m.scrapes, m.duration, m.published, m.publishFailed, m.targets, m.missed, m.slotsInUse, m.slotsLimit, m.podRefreshes, m.discoveredPods); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	return m, nil
}
