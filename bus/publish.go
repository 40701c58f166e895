package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Message is one message to publish.
type Message struct {
	Subject string
	// ID is sent as Nats-Msg-Id: JetStream stores a message once per ID
	// within the stream's duplicate window, so a retried publish is not
	// stored twice. Empty means no de-duplication.
	ID     string
	Data   []byte
	Header nats.Header
}

// Failure is one message of a batch that JetStream did not acknowledge.
type Failure struct {
	Index int // position in the batch, in Add order
	ID    string
	Err   error
}

// BatchResult tells what became of every message of a batch.
type BatchResult struct {
	Total      int
	Acked      int // stored, including duplicates
	Duplicates int // already stored under the same ID
	Failed     []Failure
}

// Err summarises the failures, nil when every message was acknowledged.
func (r BatchResult) Err() error {
	if len(r.Failed) == 0 {
		return nil
	}
	return &BatchError{Result: r}
}

// BatchError is returned when some messages of a batch were not
// acknowledged; the caller must treat all of them as not published.
type BatchError struct{ Result BatchResult }

func (e *BatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "bus: %d of %d messages not acknowledged", len(e.Result.Failed), e.Result.Total)
	if len(e.Result.Failed) > 0 {
		fmt.Fprintf(&b, " (first: message %d: %v)", e.Result.Failed[0].Index, e.Result.Failed[0].Err)
	}
	return b.String()
}

// Unwrap exposes the individual errors to errors.Is.
func (e *BatchError) Unwrap() []error {
	errs := make([]error, len(e.Result.Failed))
	for i, f := range e.Result.Failed {
		errs[i] = f.Err
	}
	return errs
}

type publisher struct {
	b *Bus
	// sem bounds publishes in flight. Overflow policy: a publisher blocks
	// (backpressure) until an acknowledgement frees a slot or its context
	// ends; nothing is queued beyond the bound.
	sem     chan struct{}
	pending sync.Map // *nats.Msg -> *tracked
}

type tracked struct {
	batch *Batch
	index int
	id    string
	start time.Time
	size  int
}

func newPublisher(b *Bus, maxInflight int) *publisher {
	return &publisher{b: b, sem: make(chan struct{}, maxInflight)}
}

func (p *publisher) release() {
	<-p.sem
	p.b.metrics.inflight.Dec()
}

// onAck runs on the library's ack goroutine: it must not block.
func (p *publisher) onAck(_ jetstream.JetStream, m *nats.Msg, ack *jetstream.PubAck) {
	v, ok := p.pending.LoadAndDelete(m)
	if !ok {
		return
	}
	t := v.(*tracked)
	p.release()
	mt := p.b.metrics
	mt.publishSeconds.Observe(time.Since(t.start).Seconds())
	if ack.Duplicate {
		mt.pubDuplicate.Inc()
	} else {
		mt.pubAcked.Inc()
		mt.publishBytes.Add(float64(t.size))
	}
	t.batch.complete(t, nil, ack.Duplicate)
}

// onErr runs on the library's goroutines (sometimes under its lock): it must
// not block or call into the JetStream context.
func (p *publisher) onErr(_ jetstream.JetStream, m *nats.Msg, err error) {
	v, ok := p.pending.LoadAndDelete(m)
	if !ok {
		return
	}
	t := v.(*tracked)
	p.release()
	p.b.metrics.pubFailed.Inc()
	t.batch.complete(t, err, false)
}

// Batch groups publishes so the caller can wait until each is acknowledged
// and learn which failed. A Batch is used by one goroutine.
type Batch struct {
	p *publisher

	mu          sync.Mutex
	total       int
	outstanding int
	sealed      bool
	done        chan struct{}
	res         BatchResult
}

// NewBatch starts a batch of publishes.
func (b *Bus) NewBatch() *Batch {
	return &Batch{p: b.pub, done: make(chan struct{})}
}

// Add publishes m asynchronously. It blocks while the in-flight bound is
// reached, until ctx ends. An error here means m was not sent; it is also
// recorded in the batch result.
func (bt *Batch) Add(ctx context.Context, m Message) error {
	p := bt.p
	bt.mu.Lock()
	if bt.sealed {
		bt.mu.Unlock()
		return errors.New("bus: publish: batch already waited on")
	}
	idx := bt.total
	bt.total++
	bt.outstanding++
	bt.mu.Unlock()

	t := &tracked{batch: bt, index: idx, id: m.ID, size: len(m.Data)}
	select {
	case p.sem <- struct{}{}:
	default:
		// Slow path: the bound is reached.
		select {
		case p.sem <- struct{}{}:
		case <-ctx.Done():
			err := fmt.Errorf("bus: publish %s: waiting for in-flight capacity: %w", m.Subject, ctx.Err())
			p.b.metrics.pubFailed.Inc()
			bt.complete(t, err, false)
			return err
		}
	}
	p.b.metrics.inflight.Inc()
	msg := &nats.Msg{Subject: m.Subject, Data: m.Data, Header: m.Header}
	if m.ID != "" {
		if msg.Header == nil {
			msg.Header = nats.Header{}
		}
		msg.Header[jetstream.MsgIDHeader] = []string{m.ID}
	}
	t.start = time.Now()
	p.pending.Store(msg, t)
	if _, err := p.b.js.PublishMsgAsync(msg); err != nil {
		if _, still := p.pending.LoadAndDelete(msg); still {
			p.release()
			p.b.metrics.pubFailed.Inc()
			err = fmt.Errorf("bus: publish %s: %w", m.Subject, err)
			bt.complete(t, err, false)
			return err
		}
		// The error callback already accounted for it.
		return fmt.Errorf("bus: publish %s: %w", m.Subject, err)
	}
	return nil
}

func (bt *Batch) complete(t *tracked, err error, dup bool) {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	if err != nil {
		bt.res.Failed = append(bt.res.Failed, Failure{Index: t.index, ID: t.id, Err: err})
	} else {
		bt.res.Acked++
		if dup {
			bt.res.Duplicates++
		}
	}
	bt.outstanding--
	if bt.sealed && bt.outstanding == 0 {
		close(bt.done)
	}
}

// Wait blocks until every message added is acknowledged or failed, or ctx
// ends. The result lists the failures; its Err is non-nil if any.
func (bt *Batch) Wait(ctx context.Context) (BatchResult, error) {
	bt.mu.Lock()
	if !bt.sealed {
		bt.sealed = true
		if bt.outstanding == 0 {
			close(bt.done)
		}
	}
	bt.mu.Unlock()
	select {
	case <-bt.done:
	case <-ctx.Done():
		bt.mu.Lock()
		n := bt.outstanding
		bt.mu.Unlock()
		return bt.snapshot(), fmt.Errorf("bus: wait for %d acknowledgements: %w", n, ctx.Err())
	}
	r := bt.snapshot()
	return r, r.Err()
}

func (bt *Batch) snapshot() BatchResult {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	r := bt.res
	r.Total = bt.total
	r.Failed = append([]Failure(nil), bt.res.Failed...)
	return r
}

// Publish sends one message and waits for its acknowledgement. It returns
// whether JetStream already held a message with the same ID.
func (b *Bus) Publish(ctx context.Context, m Message) (duplicate bool, err error) {
	bt := b.NewBatch()
	if err := bt.Add(ctx, m); err != nil {
		return false, err
	}
	r, err := bt.Wait(ctx)
	if err != nil {
		return false, err
	}
	return r.Duplicates > 0, nil
}
