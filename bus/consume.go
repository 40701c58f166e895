package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Headers set on dead letters.
const (
	HeaderDLQReason     = "Faultline-Dlq-Reason"
	HeaderDLQSubject    = "Faultline-Dlq-Subject"
	HeaderDLQStream     = "Faultline-Dlq-Stream"
	HeaderDLQSequence   = "Faultline-Dlq-Sequence"
	HeaderDLQConsumer   = "Faultline-Dlq-Consumer"
	HeaderDLQDeliveries = "Faultline-Dlq-Deliveries"
	HeaderDLQTime       = "Faultline-Dlq-Time"
)

// Msg is one delivered message.
type Msg struct {
	Subject string
	Data    []byte
	Header  nats.Header
	// ID is the Nats-Msg-Id the message was published with.
	ID string
	// Deliveries counts this delivery: 1 the first time.
	Deliveries uint64
	StreamSeq  uint64
	Published  time.Time
}

// Handler processes one message. It returns nil only when the message's
// effect is durable; the message is acknowledged after that. An error causes
// a redelivery with backoff; Permanent errors go to the dead letters at once.
type Handler func(ctx context.Context, m *Msg) error

type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent marks an error that retrying cannot fix (malformed input): the
// message goes to the dead letters without further attempts.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent tells whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// ConsumerSpec describes a durable pull consumer. Replicas of a role that
// use the same Durable name share the messages (a consumer group).
type ConsumerSpec struct {
	Stream         string
	Durable        string
	FilterSubjects []string
	// MaxDeliver is the number of attempts before a message goes to the
	// dead letters (default 5).
	MaxDeliver int
	// Backoff is the delay before each redelivery; the last value repeats
	// (default 1s, 5s, 30s).
	Backoff []time.Duration
	// AckWait is how long a delivery may take before the server delivers it
	// again (default 30s).
	AckWait time.Duration
	// MaxAckPending bounds messages delivered but not acknowledged across
	// the group (default 1000). The server stops delivering at the bound.
	MaxAckPending int
	// Concurrency is the number of handlers running at once in this process
	// (default 1: in order).
	Concurrency int
	// DeliverNew starts a new consumer at new messages instead of the start
	// of the stream.
	DeliverNew bool
	// DrainTimeout bounds the wait for handlers in flight at shutdown
	// (default 10s).
	DrainTimeout time.Duration
}

func (s *ConsumerSpec) defaults() {
	if s.MaxDeliver <= 0 {
		s.MaxDeliver = 5
	}
	if len(s.Backoff) == 0 {
		s.Backoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}
	}
	if s.AckWait <= 0 {
		s.AckWait = 30 * time.Second
	}
	if s.MaxAckPending <= 0 {
		s.MaxAckPending = 1000
	}
	if s.Concurrency <= 0 {
		s.Concurrency = 1
	}
	if s.DrainTimeout <= 0 {
		s.DrainTimeout = 10 * time.Second
	}
}

func (b *Bus) ensureConsumer(ctx context.Context, s ConsumerSpec) (jetstream.Consumer, error) {
	deliver := jetstream.DeliverAllPolicy
	if s.DeliverNew {
		deliver = jetstream.DeliverNewPolicy
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       s.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.AckWait,
		DeliverPolicy: deliver,
		// Unlimited at the server: the consumer itself counts attempts and
		// moves a message to the dead letters, so a message whose handler
		// crashed the process on its last attempt is not dropped silently.
		MaxDeliver:    -1,
		MaxAckPending: s.MaxAckPending,
	}
	switch len(s.FilterSubjects) {
	case 0:
	case 1:
		cfg.FilterSubject = s.FilterSubjects[0]
	default:
		cfg.FilterSubjects = s.FilterSubjects
	}
	c, err := b.js.CreateOrUpdateConsumer(ctx, s.Stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("bus: ensure consumer %s on %s: %w", s.Durable, s.Stream, err)
	}
	return c, nil
}

// Consume runs handler over the consumer's messages until ctx ends, then
// stops fetching, lets handlers in flight finish (bounded by DrainTimeout)
// and returns nil. It returns an error if the consumer cannot be set up.
func (b *Bus) Consume(ctx context.Context, spec ConsumerSpec, handler Handler) error {
	spec.defaults()
	if spec.Stream == "" || spec.Durable == "" {
		return errors.New("bus: consume: stream and durable name are required")
	}
	cons, err := b.ensureConsumer(ctx, spec)
	if err != nil {
		return err
	}
	log := b.log.With("stream", spec.Stream, "consumer", spec.Durable)
	c := &consumer{
		b: b, spec: spec, handler: handler, log: log,
		ack:     b.metrics.consumed.WithLabelValues(spec.Stream, spec.Durable, "ack"),
		retry:   b.metrics.consumed.WithLabelValues(spec.Stream, spec.Durable, "retry"),
		dead:    b.metrics.consumed.WithLabelValues(spec.Stream, spec.Durable, "dead_letter"),
		dlqs:    b.metrics.deadLetters.WithLabelValues(spec.Stream, spec.Durable),
		handleH: b.metrics.handleSeconds.WithLabelValues(spec.Stream, spec.Durable),
	}
	// Fetch at most what the handlers can take soon; the rest stays on the
	// server, where another replica can get it.
	// A 10s pull expiry (heartbeat 5s) means a lost pull request or a silent
	// connection is noticed and re-issued within seconds, not the library's
	// default 30s.
	it, err := cons.Messages(jetstream.PullMaxMessages(max(2*spec.Concurrency, 16)), jetstream.PullExpiry(10*time.Second))
	if err != nil {
		return fmt.Errorf("bus: consume %s/%s: %w", spec.Stream, spec.Durable, err)
	}
	// Handlers get a context that outlives the stop signal by DrainTimeout,
	// so work in flight finishes instead of failing half-way.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()

	work := make(chan jetstream.Msg) // unbuffered: the iterator's buffer is the only queue
	var wg sync.WaitGroup
	for range spec.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range work {
				c.handle(hctx, m)
			}
		}()
	}
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			it.Drain()
		case <-stopped:
		}
	}()
	log.Info("bus: consumer started", "concurrency", spec.Concurrency, "max_deliver", spec.MaxDeliver)
	for {
		m, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				break
			}
			if ctx.Err() != nil {
				break
			}
			// Heartbeat misses and reconnects are transient: the iterator
			// resumes by itself.
			log.Warn("bus: consumer fetch", "err", err)
			continue
		}
		work <- m
	}
	close(stopped)
	close(work)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(spec.DrainTimeout):
		hcancel()
		<-done
		log.Warn("bus: consumer drain timed out; unfinished messages will be redelivered", "timeout", spec.DrainTimeout)
	}
	log.Info("bus: consumer stopped")
	return nil
}

type consumer struct {
	b       *Bus
	spec    ConsumerSpec
	handler Handler
	log     *slog.Logger

	ack, retry, dead, dlqs interface{ Inc() }
	handleH                interface{ Observe(float64) }
}

func (c *consumer) handle(ctx context.Context, jm jetstream.Msg) {
	md, err := jm.Metadata()
	if err != nil {
		// Not a JetStream message: nothing to acknowledge.
		c.log.Error("bus: message without metadata", "err", err)
		return
	}
	m := &Msg{
		Subject:    jm.Subject(),
		Data:       jm.Data(),
		Header:     jm.Headers(),
		Deliveries: md.NumDelivered,
		StreamSeq:  md.Sequence.Stream,
		Published:  md.Timestamp,
	}
	if m.Header != nil {
		m.ID = m.Header.Get(jetstream.MsgIDHeader)
	}
	var herr error
	if md.NumDelivered > uint64(c.spec.MaxDeliver) {
		// An earlier attempt never returned (crash or ack timeout).
		herr = fmt.Errorf("no verdict after %d deliveries (handler crashed or exceeded ack wait %s)", md.NumDelivered-1, c.spec.AckWait)
	} else {
		start := time.Now()
		herr = c.safeHandle(ctx, m)
		c.handleH.Observe(time.Since(start).Seconds())
		if herr == nil {
			if err := jm.Ack(); err != nil {
				c.log.Warn("bus: ack failed; the message will be redelivered", "seq", m.StreamSeq, "err", err)
				return
			}
			c.ack.Inc()
			return
		}
	}
	if !IsPermanent(herr) && md.NumDelivered < uint64(c.spec.MaxDeliver) {
		delay := c.spec.Backoff[min(int(md.NumDelivered)-1, len(c.spec.Backoff)-1)]
		c.retry.Inc()
		c.log.Warn("bus: handler failed; will retry", "seq", m.StreamSeq, "attempt", md.NumDelivered,
			"max_deliver", c.spec.MaxDeliver, "retry_in", delay, "err", herr)
		if err := jm.NakWithDelay(delay); err != nil {
			c.log.Warn("bus: nak failed; redelivery after ack wait", "seq", m.StreamSeq, "err", err)
		}
		return
	}
	if err := c.deadLetter(ctx, m, herr); err != nil {
		// Keep the message: without its dead letter it must not be lost.
		c.log.Error("bus: dead letter publish failed; message kept for redelivery", "seq", m.StreamSeq, "err", err)
		_ = jm.NakWithDelay(c.spec.Backoff[len(c.spec.Backoff)-1])
		return
	}
	if err := jm.Term(); err != nil {
		c.log.Warn("bus: term after dead letter failed; a duplicate dead letter is de-duplicated by id", "seq", m.StreamSeq, "err", err)
	}
	c.dead.Inc()
	c.dlqs.Inc()
}

// safeHandle keeps a panicking handler from taking the process down with
// the message unaccounted for.
func (c *consumer) safeHandle(ctx context.Context, m *Msg) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = Permanent(fmt.Errorf("handler panic: %v", r))
		}
	}()
	return c.handler(ctx, m)
}

func (c *consumer) deadLetter(ctx context.Context, m *Msg, reason error) error {
	h := nats.Header{}
	for k, v := range m.Header {
		if k == jetstream.MsgIDHeader {
			continue
		}
		h[k] = v
	}
	h.Set(HeaderDLQReason, reason.Error())
	h.Set(HeaderDLQSubject, m.Subject)
	h.Set(HeaderDLQStream, c.spec.Stream)
	h.Set(HeaderDLQSequence, strconv.FormatUint(m.StreamSeq, 10))
	h.Set(HeaderDLQConsumer, c.spec.Durable)
	h.Set(HeaderDLQDeliveries, strconv.FormatUint(m.Deliveries, 10))
	h.Set(HeaderDLQTime, time.Now().UTC().Format(time.RFC3339Nano))
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := c.b.Publish(pctx, Message{
		Subject: DeadLetterSubject(c.spec.Stream, c.spec.Durable),
		// One dead letter per stream message and consumer, however often
		// this runs.
		ID:     "dlq:" + c.spec.Stream + ":" + c.spec.Durable + ":" + strconv.FormatUint(m.StreamSeq, 10),
		Data:   m.Data,
		Header: h,
	})
	if err != nil {
		return fmt.Errorf("bus: dead letter %s seq %d: %w", c.spec.Stream, m.StreamSeq, err)
	}
	c.log.Warn("bus: message moved to dead letters", "seq", m.StreamSeq, "deliveries", m.Deliveries, "reason", reason)
	return nil
}
