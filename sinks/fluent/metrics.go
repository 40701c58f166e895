package fluent

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline/faultline/internal/promutil"
)

// Results of a record in faultline_fluent_records_total.
const (
	// resultDelivered: the client reported the record sent (and, with
	// delivery acknowledged, answered by the receiver).
	resultDelivered = "delivered"
	// resultFailed: the client gave up on the record (max_retry); its bus
	// message is left for redelivery.
	resultFailed = "failed"
	// resultLost: the client gave up on a record whose bus message was
	// already acknowledged (delivery buffered).
	resultLost = "lost"
	// resultOverflow: the buffer was full; the record was not taken and its
	// bus message is left for redelivery.
	resultOverflow = "overflow"
	// resultTimeout: no result within write_timeout; the bus message is
	// left for redelivery though the record may still be sent.
	resultTimeout = "timeout"
	// resultBuffered: taken into the buffer, bus message acknowledged
	// (delivery buffered).
	resultBuffered = "buffered"
	// resultRejected: the document cannot be a record; dead-lettered.
	resultRejected = "rejected"
)

type metrics struct {
	records     *prometheus.CounterVec
	failures    *prometheus.CounterVec
	buffered    prometheus.Gauge
	bufferLimit prometheus.Gauge
	send        prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_fluent_records_total",
			Help: "Records of the Fluentd forward sink by kind and result: delivered (sent; with delivery acknowledged, answered by the receiver), failed (the client gave up; left for redelivery), overflow (buffer full, not taken; left for redelivery), timeout (no result within write_timeout; left for redelivery, may still arrive), buffered (taken, bus message acknowledged: delivery buffered), lost (given up after its bus message was acknowledged: delivery buffered), rejected (cannot be a record; dead-lettered).",
		}, []string{"kind", "result"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_fluent_send_failures_total",
			Help: "Records the forward client gave up on, by reason: connect (no connection after max_retry attempts), send (writing or reading the ack failed max_retry times), closing (the sink stopped), order (a result that did not match the record expected; the record is retried).",
		}, []string{"reason"}),
		buffered: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "faultline_fluent_buffer_records",
			Help: "Records in the forward client's buffer: handed over, their result not yet known.",
		}),
		bufferLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "faultline_fluent_buffer_limit",
			Help: "The most records the forward client's buffer holds (buffer_limit).",
		}),
		send: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "faultline_fluent_send_seconds",
			Help:    "From a record's handover to the forward client until its result (waiting behind other records included).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
	}
	if reg != nil {
		m.records = promutil.Reuse(reg, m.records)
		m.failures = promutil.Reuse(reg, m.failures)
		m.buffered = promutil.Reuse(reg, m.buffered)
		m.bufferLimit = promutil.Reuse(reg, m.bufferLimit)
		m.send = promutil.Reuse(reg, m.send)
	}
	return m
}
