package auditwebhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/schemas"
)

// retryAfter is sent with every 503: client-go retries such an answer by
// itself, and the audit webhook backend retries the batch with backoff.
const retryAfter = "1"

// maxLoggedRejects bounds the rejected items logged per request (all are
// counted, reported in the response and dead-lettered).
const maxLoggedRejects = 5

// Reject describes one item of a request that is not an audit event.
type Reject struct {
	Index int    `json:"index"`
	Error string `json:"error"`
}

// Response is the body of a 200 (and of a 400 for a request whose items
// are all rejected).
type Response struct {
	// Received is the number of items in the request.
	Received int `json:"received"`
	// Published is the number of audit events acknowledged by JetStream,
	// Duplicates of them already stored before (a retried batch).
	Published  int `json:"published"`
	Duplicates int `json:"duplicates"`
	// Rejected lists the items that are not audit events; each was stored,
	// redacted, as a dead letter on fl.dlq.FL_AUDIT.audit-webhook.
	Rejected []Reject `json:"rejected,omitempty"`
}

type errorBody struct {
	Error string `json:"error"`
}

func reply(w http.ResponseWriter, code int, body any) int {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
	return code
}

func replyError(w http.ResponseWriter, code int, format string, args ...any) int {
	return reply(w, code, errorBody{Error: fmt.Sprintf(format, args...)})
}

func unavailable(w http.ResponseWriter, format string, args ...any) int {
	w.Header().Set("Retry-After", retryAfter)
	return replyError(w, http.StatusServiceUnavailable, format, args...)
}

// ServeHTTP handles one request of the API server's webhook backend.
func (c *Collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	code := c.handle(w, r)
	c.m.code(code)
	c.m.requestSeconds.Observe(time.Since(start).Seconds())
}

func (c *Collector) handle(w http.ResponseWriter, r *http.Request) int {
	if r.URL.Path != c.cfg.Path {
		return replyError(w, http.StatusNotFound, "not found: the audit webhook is at %s", c.cfg.Path)
	}
	if reason := c.auth.check(r); reason != "" {
		c.m.authFailures.WithLabelValues(reason).Inc()
		c.logRefusal(r, reason)
		w.Header().Set("WWW-Authenticate", `Bearer realm="faultline audit webhook"`)
		return replyError(w, http.StatusUnauthorized, "unauthorized: %s", strings.ReplaceAll(reason, "_", " "))
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return replyError(w, http.StatusMethodNotAllowed, "method %s not allowed: POST audit events", r.Method)
	}
	if ct := r.Header.Get("Content-Type"); !isJSON(ct) {
		return replyError(w, http.StatusUnsupportedMediaType, "content type %q not supported: send application/json", ct)
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return replyError(w, http.StatusUnsupportedMediaType, "content encoding %q not supported", ce)
	}
	limit := int64(c.cfg.MaxRequestSize)
	if r.ContentLength > limit {
		w.Header().Set("Connection", "close")
		return replyError(w, http.StatusRequestEntityTooLarge, "body of %d bytes over the limit of %d", r.ContentLength, limit)
	}

	// A processing slot; waiting is bounded like the publish, and by half
	// the read timeout: the body is not read while waiting, and a request
	// that waited out its read time would fail as a timeout instead of
	// being told to retry.
	wctx, cancel := context.WithTimeout(r.Context(), min(c.cfg.PublishTimeout, c.cfg.ReadTimeout/2))
	defer cancel()
	select {
	case c.slots <- struct{}{}:
	default:
		c.m.waiting.Inc()
		select {
		case c.slots <- struct{}{}:
			c.m.waiting.Dec()
		case <-wctx.Done():
			c.m.waiting.Dec()
			return unavailable(w, "busy: %d requests in progress", c.cfg.MaxConcurrentRequests)
		}
	}
	c.m.inFlight.Inc()
	defer func() {
		<-c.slots
		c.m.inFlight.Dec()
	}()

	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(c.cfg.ReadTimeout)) // not supported everywhere; the server's ReadTimeout still holds
	bodyBuf := c.getBuffer(int(min(max(r.ContentLength, 0), limit)) + 1)
	defer c.putBuffer(bodyBuf)
	body, err := readBody(http.MaxBytesReader(w, r.Body, limit), *bodyBuf)
	*bodyBuf = body[:0]
	c.m.bytes.Add(float64(len(body)))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return replyError(w, http.StatusRequestEntityTooLarge, "body over the limit of %d bytes", limit)
		}
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			// A body slower than read_timeout: a slow client, or a server
			// too busy to read it in time. Either way the sender may
			// retry, and the API server retries only what asks for it.
			w.Header().Set("Connection", "close")
			return unavailable(w, "the body did not arrive within %v", c.cfg.ReadTimeout)
		}
		return replyError(w, http.StatusBadRequest, "reading the body: %v", err)
	}
	items, err := schemas.SplitAuditEvents(body)
	if err != nil {
		return replyError(w, http.StatusBadRequest, "%v", err)
	}
	c.m.received.Add(float64(len(items)))
	return c.publish(w, r, items)
}

// publish prepares every item, publishes it and answers once JetStream has
// acknowledged them all (200), or 503 when it has not within
// publish_timeout.
func (c *Collector) publish(w http.ResponseWriter, r *http.Request, items []json.RawMessage) int {
	ctx, cancel := context.WithTimeout(r.Context(), c.cfg.PublishTimeout)
	defer cancel()
	prep := c.preparers.Get().(*schemas.AuditPreparer)
	defer c.preparers.Put(prep)

	size := 0
	for _, it := range items {
		size += len(it)
	}
	arenaBuf := c.getBuffer(size + len(items)*512)
	arena := *arenaBuf
	scratchBuf, _ := c.scratch.Get().(*[]byte)
	if scratchBuf == nil {
		scratchBuf = new([]byte)
	}
	defer c.scratch.Put(scratchBuf)
	scratch := *scratchBuf

	var (
		rejects   []Reject
		rejected  [][]byte
		events    = c.bus.NewBatch()
		added     int
		redacted  int
		truncated int
		addErr    error
	)
	began := time.Now()
	for i, item := range items {
		var msg bus.Message
		var ev schemas.PreparedAuditEvent
		var err error
		scratch, arena, msg, ev, err = c.encodeEvent(prep, scratch, arena, item)
		if err != nil {
			rejects = append(rejects, Reject{Index: i, Error: err.Error()})
			rejected = append(rejected, item)
			continue
		}
		if ev.Redacted {
			redacted++
		}
		if ev.Truncated {
			truncated++
			c.log.Warn("audit webhook: oversize event published truncated", "id", ev.ID, "size", ev.OriginalSize, "limit", int64(c.cfg.MaxEventSize))
		}
		if addErr = events.Add(ctx, msg); addErr != nil {
			break
		}
		added++
	}
	*scratchBuf = scratch[:0]

	// Items that are not audit events are kept, redacted, as dead letters.
	var dead *bus.Batch
	if addErr == nil && len(rejects) > 0 {
		dead = c.bus.NewBatch()
		now := time.Now().UTC().Format(time.RFC3339Nano)
		for k, item := range rejected {
			h := nats.Header{}
			h.Set(bus.HeaderDLQReason, rejects[k].Error)
			h.Set(bus.HeaderDLQSubject, c.subject)
			h.Set(bus.HeaderDLQStream, bus.StreamAudit)
			h.Set(bus.HeaderDLQConsumer, Name)
			h.Set(bus.HeaderDLQTime, now)
			msg := bus.Message{Subject: c.dlq, ID: schemas.DeriveID("auditreject", c.cluster, string(item)),
				Data: schemas.RedactRejectedAuditItem(item), Header: h}
			if addErr = dead.Add(ctx, msg); addErr != nil {
				break
			}
		}
	}
	res, werr := events.Wait(ctx)
	complete := settled(werr)
	var dres bus.BatchResult
	if dead != nil {
		var derr error
		dres, derr = dead.Wait(ctx)
		complete = complete && settled(derr)
		if werr == nil {
			werr = derr
		}
	}
	c.m.publishSeconds.Observe(time.Since(began).Seconds())
	if complete {
		// Every message is acknowledged or failed: nothing refers to the
		// arena any more.
		*arenaBuf = arena[:0]
		c.putBuffer(arenaBuf)
	}
	c.m.stored.Add(float64(res.Acked - res.Duplicates))
	c.m.duplicates.Add(float64(res.Duplicates))
	c.m.redacted.Add(float64(redacted))
	c.m.truncated.Add(float64(truncated))

	nEvents := len(items) - len(rejects)
	if addErr != nil || werr != nil {
		unacked := nEvents - res.Acked
		c.m.rejectedUnacked.Add(float64(unacked))
		err := addErr
		if err == nil {
			err = werr
		}
		c.log.Warn("audit webhook: events not acknowledged by JetStream; answering 503 so the API server retries",
			"events", nEvents, "acknowledged", res.Acked, "dead_letters", len(rejects), "dead_letters_acknowledged", dres.Acked, "err", err)
		return unavailable(w, "%d of %d events not acknowledged by the bus: %v", unacked, nEvents, err)
	}
	c.m.rejectedInvalid.Add(float64(len(rejects)))
	for k, rj := range rejects {
		if k == maxLoggedRejects {
			c.log.Warn("audit webhook: more items rejected", "count", len(rejects)-k)
			break
		}
		c.log.Warn("audit webhook: item is not an audit event; stored as a dead letter", "index", rj.Index, "reason", rj.Error, "dead_letter_subject", c.dlq)
	}
	resp := Response{Received: len(items), Published: res.Acked, Duplicates: res.Duplicates, Rejected: rejects}
	if nEvents == 0 && len(rejects) > 0 {
		return reply(w, http.StatusBadRequest, resp)
	}
	return reply(w, http.StatusOK, resp)
}

// encodeEvent prepares one item (checks, redacts, truncates it) and appends
// its envelope to arena. It returns both buffers grown and the message to
// publish, whose data is the end of arena: it stays valid while in flight,
// because arena grows only by reallocation and never overwrites what it
// held.
func (c *Collector) encodeEvent(prep *schemas.AuditPreparer, scratch, arena, item []byte) ([]byte, []byte, bus.Message, schemas.PreparedAuditEvent, error) {
	scratch, ev, err := prep.Prepare(scratch[:0], item)
	if err != nil {
		return scratch, arena, bus.Message{}, ev, err
	}
	env := schemas.Envelope{
		SpecVersion: schemas.SpecVersion, ID: ev.ID, Source: Source, Type: schemas.TypeAudit,
		Subject: ev.Subject, Time: ev.Time, DataContentType: schemas.ContentTypeJSON,
		Cluster: c.cluster, Data: scratch,
	}
	start := len(arena)
	if arena, err = env.AppendEncode(arena); err != nil {
		return scratch, arena, bus.Message{}, ev, err
	}
	return scratch, arena, bus.Message{Subject: c.subject, ID: ev.ID, Data: arena[start:len(arena):len(arena)]}, ev, nil
}

// refusalLogEvery bounds the log lines about refused requests (each is
// counted in faultline_audit_webhook_auth_failures_total regardless), so a
// scanner cannot flood the log.
const refusalLogEvery = 10 * time.Second

func (c *Collector) logRefusal(r *http.Request, reason string) {
	now := time.Now().UnixNano()
	last := c.lastRefusalLog.Load()
	if now-last < int64(refusalLogEvery) || !c.lastRefusalLog.CompareAndSwap(last, now) {
		c.refusalsNotLogged.Add(1)
		return
	}
	c.log.Warn("audit webhook: unauthenticated request refused", "remote", r.RemoteAddr, "reason", reason,
		"refusals_not_logged", c.refusalsNotLogged.Swap(0))
}

// readBody reads all of r into buf (grown as needed).
func readBody(r io.Reader, buf []byte) ([]byte, error) {
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// maxPooledBuffer keeps very large buffers (a rare huge batch) out of the
// free list, so what it retains stays small.
const maxPooledBuffer = 4 << 20

// getBuffer returns a buffer of at least size bytes from the free list. The
// free list is a bounded channel rather than a sync.Pool: the buffers are
// large, and a sync.Pool is emptied by every garbage collection, which these
// very allocations would trigger.
func (c *Collector) getBuffer(size int) *[]byte {
	select {
	case p := <-c.buffers:
		if cap(*p) >= size {
			return p
		}
		// Too small for this one: replaced by a larger buffer below.
	default:
	}
	b := make([]byte, 0, size)
	return &b
}

// putBuffer returns a buffer to the free list. Overflow policy: when the
// list is full (more buffers than requests in flight need), the buffer is
// left to the garbage collector.
func (c *Collector) putBuffer(p *[]byte) {
	if cap(*p) > maxPooledBuffer {
		return
	}
	*p = (*p)[:0]
	select {
	case c.buffers <- p:
	default:
	}
}

// isJSON accepts application/json with parameters; a charset other than
// UTF-8 is refused (JSON is UTF-8).
func isJSON(ct string) bool {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return false
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return false
	}
	return true
}

// settled tells whether a batch's Wait saw every message acknowledged or
// failed (rather than giving up waiting).
func settled(err error) bool {
	var be *bus.BatchError
	return err == nil || errors.As(err, &be)
}
