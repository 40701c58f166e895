package elasticsearch

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline/faultline/internal/promutil"
)

type metrics struct {
	// docs counts documents by data set, result (created, duplicate,
	// retry, rejected) and reason (Elasticsearch's error type, or
	// transport, timeout, http_<status>).
	docs *prometheus.CounterVec
	// bulk times each _bulk request; bulkResults counts them by result.
	bulk        prometheus.Histogram
	bulkResults *prometheus.CounterVec
	// retries counts the client's own retries of a request (transport
	// errors, 429, 502, 503, 504), before a document's failure is reported.
	retries prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		docs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_elasticsearch_documents_total",
			Help: "Documents sent to Elasticsearch, by data set and result: created, duplicate (already indexed: a redelivery), retry (left for redelivery) or rejected (dead-lettered); reason is Elasticsearch's error type (or transport, timeout, http_<status>).",
		}, []string{"dataset", "result", "reason"}),
		bulk: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "faultline_elasticsearch_bulk_request_seconds",
			Help:    "Duration of one _bulk request, the client's retries included.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		bulkResults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "faultline_elasticsearch_bulk_requests_total",
			Help: "_bulk requests by result: ok (answered; items may still have failed) or error (no answer, or an error status for the whole request).",
		}, []string{"result"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "faultline_elasticsearch_request_retries_total",
			Help: "Requests the Elasticsearch client sent again after a transport error or a 429, 502, 503 or 504 answer.",
		}),
	}
	if reg != nil {
		m.docs = promutil.Reuse(reg, m.docs)
		m.bulk = promutil.Reuse(reg, m.bulk)
		m.bulkResults = promutil.Reuse(reg, m.bulkResults)
		m.retries = promutil.Reuse(reg, m.retries)
	}
	return m
}
