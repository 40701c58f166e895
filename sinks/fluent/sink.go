package fluent

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline/faultline/sinks"
)

// Name is the sink's name (its metrics' sink label, its component's name).
const Name = "fluent"

// Options are what a Sink gets from the runtime.
type Options struct {
	Log     *slog.Logger
	Metrics prometheus.Registerer
}

// Sink forwards documents as Fluent Forward records with
// fluent-logger-golang in async mode: Write hands each record to the
// client's bounded buffer and, unless delivery is buffered, waits for the
// client's own report of that record (AsyncResultCallback), so a bus
// message is acknowledged only for a record the receiver answered (or that
// was written). The client sends its buffer in order from one goroutine and
// reports every record in that order; the sink keeps the records it handed
// over in the same order to match each report to its record.
type Sink struct {
	cfg Config
	ep  endpoint
	log *slog.Logger
	enc *encoder
	m   *metrics
	fl  *fluent.Fluent

	mu sync.Mutex
	// inflight are the records handed to the client, oldest first, whose
	// result has not come; never more than buffer_limit.
	inflight []*entry
	head     int
	drained  chan struct{} // closed when inflight empties, while Close waits
	closed   bool

	overflowLog, failLog rateLimit
}

// entry is one record handed to the client.
type entry struct {
	kind  string
	id    string // the envelope id when the record holds it, to check the report's order
	start time.Time
	// acked: its bus message is acknowledged already (delivery buffered).
	acked bool
	res   chan error
}

var _ sinks.Sink = (*Sink)(nil)

// New builds the sink and its client; the client connects on the first
// record.
func New(cfg Config, o Options) (*Sink, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("fluent: %w", errors.Join(errs...))
	}
	if !cfg.Enabled() {
		return nil, errors.New("fluent: no address configured")
	}
	ep, err := parseAddress(cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("fluent: address: %w", err)
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{
		cfg: cfg, ep: ep, log: log, enc: newEncoder(cfg), m: newMetrics(o.Metrics),
		overflowLog: rateLimit{every: 10 * time.Second}, failLog: rateLimit{every: 10 * time.Second},
	}
	s.m.bufferLimit.Set(float64(cfg.BufferLimit))
	fc := fluent.Config{
		FluentNetwork:          ep.network,
		FluentHost:             ep.host,
		FluentPort:             ep.port,
		FluentSocketPath:       ep.path,
		Timeout:                cfg.DialTimeout,
		WriteTimeout:           cfg.SendTimeout,
		ReadTimeout:            cfg.AckTimeout,
		BufferLimit:            cfg.BufferLimit,
		RetryWait:              int(cfg.RetryWait / time.Millisecond),
		MaxRetry:               cfg.MaxRetry,
		MaxRetryWait:           int(cfg.MaxRetryWait / time.Millisecond),
		Async:                  true,
		AsyncResultCallback:    s.result,
		AsyncReconnectInterval: int(cfg.ReconnectInterval / time.Millisecond),
		SubSecondPrecision:     !cfg.TimeAsInteger,
		RequestAck:             cfg.Delivery == DeliveryAcknowledged,
		TlsInsecureSkipVerify:  cfg.TLSInsecureSkipVerify,
	}
	if cfg.TLS {
		fc.FluentNetwork = "tls"
	}
	s.fl, err = fluent.New(fc)
	if err != nil {
		return nil, fmt.Errorf("fluent: client: %w", err)
	}
	return s, nil
}

// Name implements sinks.Sink.
func (s *Sink) Name() string { return Name }

// Address is the receiver's address as configured.
func (s *Sink) Address() string { return s.ep.String() }

// Probe connects to the receiver once (with the TLS handshake when
// configured) and hangs up: a start-up check whose failure the caller
// logs. The client itself connects when it sends.
func (s *Sink) Probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	var c net.Conn
	var err error
	switch {
	case s.cfg.TLS:
		d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: s.cfg.TLSInsecureSkipVerify, MinVersion: tls.VersionTLS12}}
		c, err = d.DialContext(ctx, "tcp", s.ep.String())
	case s.ep.network == "unix":
		var d net.Dialer
		c, err = d.DialContext(ctx, "unix", s.ep.path)
	default:
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp", s.ep.String())
	}
	if err != nil {
		return fmt.Errorf("fluent: probe %s: %w", s.ep, err)
	}
	return c.Close()
}

var errOverflow = errors.New("fluent: the forward client's buffer is full (buffer_limit); left for redelivery")

// Write implements sinks.Sink. Each document becomes one record handed to
// the client. The result of a document is: stored once the client reports
// its record delivered (delivery acknowledged or written) or once it is in
// the buffer (delivery buffered); retryable when the buffer is full, the
// client gave up on it, or no result came before ctx ended; permanent when
// it cannot be a record.
func (s *Sink) Write(ctx context.Context, docs []sinks.Document) []sinks.Result {
	results := make([]sinks.Result, len(docs))
	waits := make([]*entry, len(docs))
	overflow := 0
	// The client encodes each record into its own message before Post
	// returns, so one scratch buffer serves the whole batch.
	var scratch []byte
	for i := range docs {
		d := &docs[i]
		r, err := s.enc.encode(scratch[:0], d)
		if err != nil {
			kind, _ := sinks.KindOf(d.Type)
			s.m.records.WithLabelValues(kind, resultRejected).Inc()
			results[i] = sinks.Result{Err: fmt.Errorf("fluent: %w", err)}
			continue
		}
		scratch = r.rec[:0]
		e := &entry{kind: r.kind, start: time.Now(), acked: s.cfg.Delivery == DeliveryBuffered, res: make(chan error, 1)}
		if d.ID != "" && bytes.Contains(r.rec, []byte(d.ID)) {
			e.id = d.ID
		}
		if err := s.post(r, e); err != nil {
			if errors.Is(err, errOverflow) {
				overflow++
				s.m.records.WithLabelValues(r.kind, resultOverflow).Inc()
			}
			results[i] = sinks.Result{Err: err, Retryable: true}
			continue
		}
		if e.acked {
			s.m.records.WithLabelValues(r.kind, resultBuffered).Inc()
			continue
		}
		waits[i] = e
	}
	if overflow > 0 {
		if ok, suppressed := s.overflowLog.allow(); ok {
			s.log.Warn("fluent: the forward client's buffer is full; records not taken stay on the bus and come back after backoff",
				"not_taken", overflow, "buffer_limit", s.cfg.BufferLimit, "address", s.ep.String(), "similar_warnings_suppressed", suppressed)
		}
	}
	for i, e := range waits {
		if e == nil {
			continue
		}
		select {
		case err := <-e.res:
			if err != nil {
				results[i] = sinks.Result{Err: fmt.Errorf("fluent: %w", err), Retryable: true}
			}
		case <-ctx.Done():
			s.m.records.WithLabelValues(e.kind, resultTimeout).Inc()
			results[i] = sinks.Result{Err: fmt.Errorf("fluent: no result from the forward client before the write's deadline: %w", ctx.Err()), Retryable: true}
		}
	}
	return results
}

// post hands one record to the client and queues its entry, under the lock
// so that the queue's order is the client's.
func (s *Sink) post(r encoded, e *entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("fluent: the sink is closed")
	}
	// The queue holds what the client's buffer holds plus the record being
	// sent, so refusing here keeps the client's own buffer from ever being
	// full: every refusal is counted by the sink.
	if len(s.inflight)-s.head >= s.cfg.BufferLimit {
		return errOverflow
	}
	if err := s.fl.EncodeAndPostData(r.tag, r.time, r.rec); err != nil {
		if strings.Contains(err.Error(), "Buffer full") {
			return errOverflow
		}
		return fmt.Errorf("fluent: post: %w", err)
	}
	if s.head > 0 && s.head == len(s.inflight) {
		s.inflight, s.head = s.inflight[:0], 0
	}
	s.inflight = append(s.inflight, e)
	s.m.buffered.Set(float64(len(s.inflight) - s.head))
	return nil
}

// result is the client's AsyncResultCallback: called from its sending
// goroutine once per record, in the order the records were posted.
func (s *Sink) result(data []byte, err error) {
	s.mu.Lock()
	if s.head == len(s.inflight) {
		s.mu.Unlock()
		s.log.Error("fluent: the forward client reported a record the sink did not hand over")
		return
	}
	e := s.inflight[s.head]
	s.inflight[s.head] = nil
	s.head++
	if s.head > 1024 && s.head*2 > len(s.inflight) {
		s.inflight = append(s.inflight[:0], s.inflight[s.head:]...)
		s.head = 0
	}
	left := len(s.inflight) - s.head
	s.m.buffered.Set(float64(left))
	if left == 0 && s.drained != nil {
		close(s.drained)
		s.drained = nil
	}
	s.mu.Unlock()

	if err == nil && e.id != "" && !bytes.Contains(data, []byte(e.id)) {
		// Never happens while the client reports in order; if it did, the
		// record is retried rather than acknowledged for another's result.
		err = errors.New("the forward client's result does not match the record expected")
		s.log.Error("fluent: result out of order; the record is retried", "envelope_id", e.id)
	}
	s.m.send.Observe(time.Since(e.start).Seconds())
	switch {
	case err == nil:
		s.m.records.WithLabelValues(e.kind, resultDelivered).Inc()
	case e.acked:
		s.m.records.WithLabelValues(e.kind, resultLost).Inc()
	default:
		s.m.records.WithLabelValues(e.kind, resultFailed).Inc()
	}
	if err != nil {
		reason := failureReason(err)
		s.m.failures.WithLabelValues(reason).Inc()
		if ok, suppressed := s.failLog.allow(); ok {
			if e.acked {
				s.log.Warn("fluent: the forward client gave up on a record already acknowledged on the bus (delivery buffered): it is lost",
					"reason", reason, "err", err, "address", s.ep.String(), "similar_warnings_suppressed", suppressed)
			} else {
				s.log.Warn("fluent: the forward client gave up on a record; it stays on the bus and comes back after backoff",
					"reason", reason, "err", err, "address", s.ep.String(), "similar_warnings_suppressed", suppressed)
			}
		}
	}
	e.res <- err
}

func failureReason(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "could not connect"):
		return "connect"
	case strings.Contains(msg, "is closing"):
		return "closing"
	case strings.Contains(msg, "does not match the record expected"):
		return "order"
	}
	return "send"
}

// Close waits until the client has reported every record handed over, or
// ctx ends, then stops it; records still unreported are dropped by the
// client (their bus messages are unacknowledged and come back, except with
// delivery buffered, where they are counted lost).
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var wait chan struct{}
	if len(s.inflight) > s.head {
		wait = make(chan struct{})
		s.drained = wait
	}
	s.mu.Unlock()
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
		}
	}
	s.mu.Lock()
	left := s.inflight[s.head:]
	s.drained = nil
	s.mu.Unlock()
	if len(left) > 0 {
		// Stop at once instead of sending what is left for as long as the
		// client's retries last.
		s.fl.Config.ForceStopAsyncSend = true
	}
	err := s.fl.Close()
	s.mu.Lock()
	left = s.inflight[s.head:]
	lost := 0
	for _, e := range left {
		if e.acked {
			lost++
			s.m.records.WithLabelValues(e.kind, resultLost).Inc()
		}
	}
	n := len(left)
	// The client has stopped: no report comes for these any more.
	for _, e := range left {
		e.res <- errors.New("fluent: the sink stopped before the forward client sent the record")
	}
	s.inflight, s.head = nil, 0
	s.m.buffered.Set(0)
	s.mu.Unlock()
	if lost > 0 {
		s.log.Warn("fluent: stopped with records in the client's buffer whose bus messages were acknowledged (delivery buffered): they are lost", "lost", lost)
	} else if n > 0 {
		s.log.Info("fluent: stopped with records unsent; their bus messages are unacknowledged and come back", "records", n)
	}
	if err != nil {
		return fmt.Errorf("fluent: close: %w", err)
	}
	return nil
}

// rateLimit lets one log line through per period and counts the others.
type rateLimit struct {
	mu         sync.Mutex
	every      time.Duration
	last       time.Time
	suppressed int
}

func (r *rateLimit) allow() (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < r.every {
		r.suppressed++
		return false, 0
	}
	n := r.suppressed
	r.last, r.suppressed = now, 0
	return true, n
}
