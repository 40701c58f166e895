package auditwebhook

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline/faultline/internal/promutil"
)

// Reasons in faultline_audit_webhook_events_rejected_total.
const (
	// rejectInvalid: the item is not an audit event. It is dead-lettered
	// (redacted) with the reason and reported in the response.
	rejectInvalid = "invalid"
	// rejectUnacknowledged: JetStream did not acknowledge it within
	// publish_timeout; the request got 503 and the API server retries it.
	rejectUnacknowledged = "not_acknowledged"
)

// Reasons in faultline_audit_webhook_auth_failures_total.
const (
	authMissing     = "missing"
	authBadToken    = "invalid_token"
	authBadCert     = "invalid_certificate"
	authUnsupported = "unsupported_scheme"
)

type metrics struct {
	requests        *prometheus.CounterVec
	codes           map[int]prometheus.Counter
	authFailures    *prometheus.CounterVec
	received        prometheus.Counter
	published       *prometheus.CounterVec
	stored          prometheus.Counter
	duplicates      prometheus.Counter
	rejected        *prometheus.CounterVec
	rejectedInvalid prometheus.Counter
	rejectedUnacked prometheus.Counter
	redacted        prometheus.Counter
	truncated       prometheus.Counter
	bytes           prometheus.Counter
	publishSeconds  prometheus.Histogram
	requestSeconds  prometheus.Histogram
	inFlight        prometheus.Gauge
	inFlightLimit   prometheus.Gauge
	waiting         prometheus.Gauge
	reloadErrors    prometheus.Counter
}

// The status codes the receiver answers; others are created on demand.
var knownCodes = []int{200, 400, 401, 404, 405, 413, 415, 500, 503}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	buckets := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_audit_webhook_requests_total",
			Help: "Requests to the audit webhook by HTTP status code.",
		}, []string{"code"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_audit_webhook_auth_failures_total",
			Help: "Requests refused with 401 (never processed), by reason: missing, invalid_token, invalid_certificate, unsupported_scheme.",
		}, []string{"reason"}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_audit_webhook_events_received_total",
			Help: "Items received in authenticated, well-formed requests (every event of an EventList or array).",
		}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_audit_webhook_events_published_total",
			Help: "Audit events acknowledged by JetStream, by result: stored, or duplicate (already stored under the same id, e.g. a retried batch).",
		}, []string{"result"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_audit_webhook_events_rejected_total",
			Help: "Events not published, by reason: invalid (not an audit event; dead-lettered and reported), not_acknowledged (the bus did not acknowledge in time; answered 503 so the API server retries).",
		}, []string{"reason"}),
		redacted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_audit_webhook_events_redacted_total",
			Help: "Events from which secret values were removed before publishing.",
		}),
		truncated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_audit_webhook_events_truncated_total",
			Help: "Events above max_event_size published truncated (flagged faultline.io/truncated).",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_audit_webhook_request_bytes_total",
			Help: "Request body bytes read from authenticated requests.",
		}),
		publishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "faultline_audit_webhook_publish_seconds",
			Help:    "Time from a request's first publish to the acknowledgement of its last event.",
			Buckets: buckets,
		}),
		requestSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "faultline_audit_webhook_request_seconds",
			Help:    "Time from a request's arrival to its answer.",
			Buckets: buckets,
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "faultline_audit_webhook_requests_in_flight",
			Help: "Requests being processed.",
		}),
		inFlightLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "faultline_audit_webhook_requests_in_flight_limit",
			Help: "max_concurrent_requests: requests beyond it wait for a slot up to publish_timeout, then get 503.",
		}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "faultline_audit_webhook_requests_waiting",
			Help: "Requests waiting for a processing slot.",
		}),
		reloadErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_audit_webhook_reload_errors_total",
			Help: "Failed re-reads of a changed token file or TLS key pair (the previous ones stay in use).",
		}),
	}
	m.codes = make(map[int]prometheus.Counter, len(knownCodes))
	for _, c := range knownCodes {
		m.codes[c] = m.requests.WithLabelValues(strconv.Itoa(c))
	}
	for _, r := range []string{authMissing, authBadToken, authBadCert, authUnsupported} {
		m.authFailures.WithLabelValues(r)
	}
	m.stored = m.published.WithLabelValues("stored")
	m.duplicates = m.published.WithLabelValues("duplicate")
	m.rejectedInvalid = m.rejected.WithLabelValues(rejectInvalid)
	m.rejectedUnacked = m.rejected.WithLabelValues(rejectUnacknowledged)
	if err := promutil.RegisterAll(reg, m.requests, m.authFailures, m.received, m.published, m.rejected,
		m.redacted, m.truncated, m.bytes, m.publishSeconds, m.requestSeconds, m.inFlight, m.inFlightLimit,
		m.waiting, m.reloadErrors); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return nil, fmt.Errorf("audit webhook: metrics: already registered (one receiver per registry): %w", err)
		}
		return nil, fmt.Errorf("audit webhook: metrics: %w", err)
	}
	return m, nil
}

func (m *metrics) code(c int) {
	if ctr, ok := m.codes[c]; ok {
		ctr.Inc()
		return
	}
	m.requests.WithLabelValues(strconv.Itoa(c)).Inc()
}
