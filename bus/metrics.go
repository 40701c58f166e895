package bus

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline/faultline/internal/promutil"
)

// Metrics are the bus's Prometheus series. One set per process: create it
// once with NewMetrics and hand it to every Bus.
type Metrics struct {
	connected      prometheus.Gauge
	reconnects     prometheus.Counter
	disconnects    prometheus.Counter
	published      *prometheus.CounterVec // result: acked, duplicate, failed
	pubAcked       prometheus.Counter
	pubDuplicate   prometheus.Counter
	pubFailed      prometheus.Counter
	publishSeconds prometheus.Histogram
	publishBytes   prometheus.Counter
	inflight       prometheus.Gauge
	inflightLimit  prometheus.Gauge
	consumed       *prometheus.CounterVec // stream, consumer, result: ack, retry, dead_letter
	handleSeconds  *prometheus.HistogramVec
	deadLetters    *prometheus.CounterVec
}

// NewMetrics creates the bus metrics and registers them with reg (nil: not
// registered, for tests and tools).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "faultline_bus_connected",
			Help: "1 while the connection to NATS is up, 0 otherwise.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_bus_reconnects_total",
			Help: "Reconnections to NATS after a lost connection.",
		}),
		disconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_bus_disconnects_total",
			Help: "Connections to NATS lost.",
		}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_bus_published_total",
			Help: "Messages published to JetStream by outcome: acked (stored), duplicate (already stored under the same Nats-Msg-Id), failed.",
		}, []string{"result"}),
		publishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "faultline_bus_publish_seconds",
			Help:    "Time from publish to JetStream acknowledgement.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		publishBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_bus_published_bytes_total",
			Help: "Payload bytes of acknowledged publishes.",
		}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "faultline_bus_publish_inflight",
			Help: "Publishes waiting for their JetStream acknowledgement.",
		}),
		inflightLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "faultline_bus_publish_inflight_limit",
			Help: "Bound on publishes in flight; publishers block (backpressure) when it is reached.",
		}),
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_bus_consumed_total",
			Help: "Messages handled by durable consumers by outcome: ack, retry, dead_letter.",
		}, []string{"stream", "consumer", "result"}),
		handleSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "faultline_bus_handle_seconds",
			Help:    "Time a consumer's handler took for one message.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"stream", "consumer"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_bus_dead_letters_total",
			Help: "Messages moved to the dead-letter stream after their last failed attempt.",
		}, []string{"stream", "consumer"}),
	}
	// Resolved once: the publish path must not look labels up per message.
	m.pubAcked = m.published.WithLabelValues("acked")
	m.pubDuplicate = m.published.WithLabelValues("duplicate")
	m.pubFailed = m.published.WithLabelValues("failed")
	if err := promutil.RegisterAll(reg, m.connected, m.reconnects, m.disconnects, m.published, m.publishSeconds,
		m.publishBytes, m.inflight, m.inflightLimit, m.consumed, m.handleSeconds, m.deadLetters); err != nil {
		return nil, fmt.Errorf("bus: register metrics: %w", err)
	}
	return m, nil
}
