package kubeevents

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline/faultline/internal/promutil"
)

type metrics struct {
	notifications *prometheus.CounterVec
	published     prometheus.Counter
	duplicates    prometheus.Counter
	skipped       prometheus.Counter
	invalid       prometheus.Counter
	retries       prometheus.Counter
	queueLength   prometheus.Gauge
	queueCapacity prometheus.Gauge
	overflow      prometheus.Counter
	overflowKeys  prometheus.Gauge
	leader        prometheus.Gauge
	stateEntries  prometheus.Gauge
	stateFailures prometheus.Counter
	leaderChanges prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_kevents_notifications_total",
			Help: "Notifications from the Event informers, by kind: add, update, delete, initial (the list at start).",
		}, []string{"kind"}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_kevents_published_total",
			Help: "Event occurrences (an Event at one resourceVersion) acknowledged by JetStream as new.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_kevents_duplicate_total",
			Help: "Event occurrences JetStream already held under the same id.",
		}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_kevents_skipped_total",
			Help: "Event occurrences not published because they were published before (re-list after a restart or a leader change, resync).",
		}),
		invalid: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_kevents_invalid_total",
			Help: "Events that could not be turned into an envelope (reported in the log).",
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_kevents_publish_retries_total",
			Help: "Batches published again because JetStream did not acknowledge every event.",
		}),
		queueLength: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "faultline_kevents_queue_length",
			Help: "Event notifications waiting to be published.",
		}),
		queueCapacity: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "faultline_kevents_queue_capacity",
			Help: "Bound of the notification queue (queue_size).",
		}),
		overflow: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_kevents_queue_overflow_total",
			Help: "Notifications that found the queue full; the Event's key was noted and its latest state is published later.",
		}),
		overflowKeys: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "faultline_kevents_overflow_keys",
			Help: "Events noted on overflow and not yet published (at most the number of Events watched).",
		}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "faultline_kevents_leader",
			Help: "1 while this replica holds the Lease and collects, else 0.",
		}),
		stateEntries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "faultline_kevents_state_entries",
			Help: "Events whose last published resourceVersion is remembered.",
		}),
		stateFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_kevents_state_write_failures_total",
			Help: "Failed writes of a published resourceVersion to the KV bucket (the occurrence may be published again after a restart, with the same id).",
		}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_kevents_leadership_acquired_total",
			Help: "Times this replica took the Lease.",
		}),
	}
	for _, k := range []string{"add", "update", "delete", "initial"} {
		m.notifications.WithLabelValues(k)
	}
	if reg != nil {
		m.notifications = promutil.Reuse(reg, m.notifications)
		m.published = promutil.Reuse(reg, m.published)
		m.duplicates = promutil.Reuse(reg, m.duplicates)
		m.skipped = promutil.Reuse(reg, m.skipped)
		m.invalid = promutil.Reuse(reg, m.invalid)
		m.retries = promutil.Reuse(reg, m.retries)
		m.queueLength = promutil.Reuse(reg, m.queueLength)
		m.queueCapacity = promutil.Reuse(reg, m.queueCapacity)
		m.overflow = promutil.Reuse(reg, m.overflow)
		m.overflowKeys = promutil.Reuse(reg, m.overflowKeys)
		m.leader = promutil.Reuse(reg, m.leader)
		m.stateEntries = promutil.Reuse(reg, m.stateEntries)
		m.stateFailures = promutil.Reuse(reg, m.stateFailures)
		m.leaderChanges = promutil.Reuse(reg, m.leaderChanges)
	}
	return m
}
