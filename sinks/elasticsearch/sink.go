package elasticsearch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esutil"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline/faultline/sinks"
)

// Name is the sink's name (its metrics' sink label, its component's name).
const Name = "elasticsearch"

// Options are what a Sink gets from the runtime.
type Options struct {
	Log     *slog.Logger
	Metrics prometheus.Registerer
}

// Sink writes bus documents into Elasticsearch data streams with one
// long-lived esutil.BulkIndexer: op create with the envelope id as _id,
// each document's result from its own bulk item. Init must succeed before
// Write stores anything.
type Sink struct {
	cfg Config
	log *slog.Logger
	es  *elasticsearch.Client
	bi  esutil.BulkIndexer
	tr  *transformer
	m   *metrics

	ready    atomic.Bool
	version  string
	features features
}

var _ sinks.Sink = (*Sink)(nil)

// New builds a sink; it does not contact Elasticsearch (Init does).
func New(cfg Config, o Options) (*Sink, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("elasticsearch: %w", errors.Join(errs...))
	}
	if !cfg.Enabled() {
		return nil, errors.New("elasticsearch: no urls configured")
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{cfg: cfg, log: log, tr: newTransformer(cfg.Namespace), m: newMetrics(o.Metrics)}
	es, err := newClient(cfg, s.m.retries.Inc)
	if err != nil {
		return nil, fmt.Errorf("elasticsearch: %w", err)
	}
	s.es = es
	s.bi, err = esutil.NewBulkIndexer(esutil.BulkIndexerConfig{
		Client:     bulkTransport{es},
		NumWorkers: cfg.Workers,
		FlushBytes: int(cfg.FlushBytes),
		// Write flushes every batch itself; this only bounds how long a
		// document added by a Write that gave up waits.
		FlushInterval: time.Second,
		// Each item's status and error, nothing else, in the same order.
		FilterPath:   []string{"errors", "items.*.status", "items.*.error"},
		OnFlushStart: s.flushStart,
		OnFlushEnd:   s.flushEnd,
		OnError:      s.flushError,
	})
	if err != nil {
		return nil, fmt.Errorf("elasticsearch: bulk indexer: %w", err)
	}
	return s, nil
}

// Name implements sinks.Sink.
func (s *Sink) Name() string { return Name }

// Version is the cluster's version, known after Init.
func (s *Sink) Version() string { return s.version }

// Ready tells whether Init has succeeded.
func (s *Sink) Ready() bool { return s.ready.Load() }

// Close flushes what is left and stops the bulk indexer.
func (s *Sink) Close(ctx context.Context) error { return s.bi.Close(ctx) }

type flushKey struct{}

// flushState follows one _bulk request from start to end.
type flushState struct {
	start  time.Time
	cancel context.CancelFunc
	failed atomic.Bool
}

// flushStart bounds each _bulk request by request_timeout: the bulk
// indexer sends it with a context of its own, which nothing else cancels.
func (s *Sink) flushStart(ctx context.Context) context.Context {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	return context.WithValue(ctx, flushKey{}, &flushState{start: time.Now(), cancel: cancel})
}

func (s *Sink) flushEnd(ctx context.Context) {
	st, ok := ctx.Value(flushKey{}).(*flushState)
	if !ok {
		return
	}
	st.cancel()
	s.m.bulk.Observe(time.Since(st.start).Seconds())
	if st.failed.Load() {
		s.m.bulkResults.WithLabelValues("error").Inc()
	} else {
		s.m.bulkResults.WithLabelValues("ok").Inc()
	}
}

func (s *Sink) flushError(ctx context.Context, err error) {
	if st, ok := ctx.Value(flushKey{}).(*flushState); ok {
		st.failed.Store(true)
		s.log.Warn("elasticsearch: bulk request failed; its documents will be retried", "err", err)
	}
}

// write collects the results of one Write.
type write struct {
	mu      sync.Mutex
	results []sinks.Result
	set     []bool
	left    int
	done    chan struct{}
	closed  bool
}

func (w *write) resolve(i int, r sinks.Result) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || w.set[i] {
		return false
	}
	w.results[i], w.set[i] = r, true
	w.left--
	if w.left == 0 {
		close(w.done)
	}
	return true
}

// finish marks every document without a result retryable with err and
// ignores results that arrive later.
func (w *write) finish(err error) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for i, ok := range w.set {
		if !ok {
			w.results[i] = sinks.Result{Err: err, Retryable: true}
			n++
		}
	}
	w.closed = true
	return n
}

// Write implements sinks.Sink: it returns once every document has its
// result — stored (created, or already there: a 409 conflict on create),
// retryable (429, 5xx, transport errors, authorization) or permanent
// (mapping and other rejections, with Elasticsearch's reason) — or when ctx
// ends, leaving the documents still unanswered retryable.
func (s *Sink) Write(ctx context.Context, docs []sinks.Document) []sinks.Result {
	results := make([]sinks.Result, len(docs))
	if !s.ready.Load() {
		for i := range results {
			results[i] = sinks.Result{Err: errors.New("elasticsearch: not initialised (templates not installed)"), Retryable: true}
		}
		return results
	}
	w := &write{results: results, set: make([]bool, len(docs)), left: len(docs), done: make(chan struct{})}
	size := 0
	for i := range docs {
		size += len(docs[i].Body) + 512
	}
	// Bodies stay referenced by the bulk indexer until flushed: one buffer
	// per Write, not reused.
	arena := make([]byte, 0, size)
	added := 0
	for i := range docs {
		start := len(arena)
		var ds string
		var err error
		arena, ds, err = s.tr.appendDocument(arena, &docs[i])
		if err != nil {
			kind, _ := sinks.KindOf(docs[i].Type)
			s.m.docs.WithLabelValues(datasetLabel(kind), "rejected", "transform").Inc()
			w.resolve(i, sinks.Result{Err: fmt.Errorf("elasticsearch: %w", err)})
			continue
		}
		dataset := DatasetOf(mustKind(docs[i].Type))
		i := i
		item := esutil.BulkIndexerItem{
			Index:      ds,
			Action:     "create",
			DocumentID: docs[i].ID,
			Body:       bytes.NewReader(arena[start:len(arena):len(arena)]),
			OnSuccess: func(context.Context, esutil.BulkIndexerItem, esutil.BulkIndexerResponseItem) {
				if w.resolve(i, sinks.Result{}) {
					s.m.docs.WithLabelValues(dataset, "created", "").Inc()
				}
			},
			OnFailure: func(_ context.Context, _ esutil.BulkIndexerItem, res esutil.BulkIndexerResponseItem, err error) {
				var r sinks.Result
				var result, reason string
				if err != nil {
					r, result, reason = classifyError(err)
				} else {
					r, result, reason = classifyItem(res)
				}
				if w.resolve(i, r) {
					s.m.docs.WithLabelValues(dataset, result, reason).Inc()
				}
			},
		}
		if err := s.bi.Add(ctx, item); err != nil {
			w.resolve(i, sinks.Result{Err: fmt.Errorf("elasticsearch: %w", err), Retryable: true})
			continue
		}
		added++
	}
	if added > 0 {
		if err := s.bi.Flush(ctx); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			s.log.Warn("elasticsearch: flush", "err", err)
		}
	}
	if len(docs) == 0 {
		return results
	}
	select {
	case <-w.done:
	case <-ctx.Done():
		if n := w.finish(fmt.Errorf("elasticsearch: no answer before the write's deadline: %w", ctx.Err())); n > 0 {
			s.m.docs.WithLabelValues("", "retry", "timeout").Add(float64(n))
		}
	}
	return results
}

func mustKind(t string) string {
	k, _ := sinks.KindOf(t)
	return k
}

func datasetLabel(kind string) string {
	if kind == "" {
		return ""
	}
	return DatasetOf(kind)
}

// classifyItem turns a failed bulk item into a result. A 409 on create is
// the document already indexed (a redelivery): stored. 429, 5xx, 408, and
// 401, 403 and 404 (credentials, privileges or a missing index: the
// operator's to fix, and retried meanwhile rather than dead-lettering
// everything) are retryable. Any other status (400 mapping errors, 413) is
// permanent, with Elasticsearch's error type and reason.
func classifyItem(res esutil.BulkIndexerResponseItem) (sinks.Result, string, string) {
	e := &esError{
		Status: res.Status, Type: res.Error.Type, Reason: res.Error.Reason,
		CauseType: res.Error.Cause.Type, CauseReason: res.Error.Cause.Reason,
	}
	if res.Status == http.StatusConflict {
		return sinks.Result{}, "duplicate", ""
	}
	reason := e.Type
	if reason == "" {
		reason = "http_" + strconv.Itoa(e.Status)
	}
	err := fmt.Errorf("elasticsearch: %w", e)
	if retryableStatus(e.Status) {
		return sinks.Result{Err: err, Retryable: true}, "retry", reason
	}
	return sinks.Result{Err: err}, "rejected", reason
}

// classifyError turns the failure of a whole _bulk request into its items'
// result: by its status when Elasticsearch answered one, else (transport
// errors, timeouts) retryable.
func classifyError(err error) (sinks.Result, string, string) {
	var e *esError
	if errors.As(err, &e) {
		reason := e.Type
		if reason == "" {
			reason = "http_" + strconv.Itoa(e.Status)
		}
		werr := fmt.Errorf("elasticsearch: bulk request: %w", e)
		if retryableStatus(e.Status) {
			return sinks.Result{Err: werr, Retryable: true}, "retry", reason
		}
		return sinks.Result{Err: werr}, "rejected", reason
	}
	reason := "transport"
	if errors.Is(err, context.DeadlineExceeded) {
		reason = "timeout"
	}
	return sinks.Result{Err: fmt.Errorf("elasticsearch: %w", err), Retryable: true}, "retry", reason
}

func retryableStatus(status int) bool {
	switch {
	case status >= 500, status == http.StatusTooManyRequests, status == http.StatusRequestTimeout,
		status == http.StatusUnauthorized, status == http.StatusForbidden, status == http.StatusNotFound:
		return true
	case status == 0:
		// No status: a malformed answer.
		return true
	}
	return false
}
