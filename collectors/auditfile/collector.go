// Package auditfile follows the API server's audit log (--audit-log-path,
// JSON lines) and publishes every audit event onto the bus, resuming after a
// restart from a checkpoint kept in JetStream KV. See README.md.
package auditfile

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/collectors"
	"github.com/faultline/faultline/schemas"
)

// Name is the collector's name: `faultline collect audit-file`.
const Name = "audit-file"

// Source is the CloudEvents source of the envelopes it publishes.
const Source = "/faultline/collectors/audit-file"

// drainGrace bounds how long, after a stop is requested, the batch in hand
// may take to be acknowledged and checkpointed. What is not is read again
// after the restart.
const drainGrace = 10 * time.Second

// Retry delays after a failed publish or checkpoint write.
const (
	retryMin = 200 * time.Millisecond
	retryMax = 10 * time.Second
)

// envelopeOverhead bounds what the envelope and the headers add to an
// event, for the max_payload check.
const envelopeOverhead = 4 << 10

// errReplan ends a pass over the files: the file followed was rotated or
// something changed under the reader, so where to go next is decided again
// from the checkpoint, exactly as after a restart.
var errReplan = errors.New("auditfile: replan")

// Collector follows one audit log. It is not safe for concurrent use: Run
// is called once.
type Collector struct {
	cfg     Config
	cluster string
	subject string
	key     string
	log     *slog.Logger
	m       *metrics
	b       *bus.Bus
	files   fileSet

	dlq  string
	prep schemas.AuditPreparer
	// scratch holds the prepared event until it is encoded.
	scratch []byte

	kv jetstream.KeyValue
	// pctx outlives the Run context by drainGrace for the final flush.
	pctx context.Context

	// The batch in hand: messages read but not yet acknowledged, with the
	// file:line of each for reports.
	msgs  []bus.Message
	where []string
	size  int
	// pos is the position after the last line taken; cp the last one saved.
	pos   position
	dirty bool
	cp    *checkpoint
	// taken counts lines taken, to tell a pass that made progress.
	taken     int64
	startedAt time.Time
	// waiting is set while the active file does not exist (logged once).
	waiting bool

	mu     sync.Mutex
	health error

	// testHookPlanned, when set, runs after each plan (tests only).
	testHookPlanned func()
}

// position is where reading stands in one file.
type position struct {
	// Path is informational: files are recognised by content.
	Path string `json:"path"`
	// FP is the SHA-256 (hex) of the first FPLen bytes of the file.
	FP    string `json:"fp"`
	FPLen int    `json:"fp_len"`
	// Offset is the byte just after the last line handled; Line is that
	// line's number.
	Offset int64 `json:"offset"`
	Line   int64 `json:"line"`
	// Rotated tells whether the file was a rotated file when the position
	// was taken. Order is that file's rotation time, or for the active file
	// the last time it was seen active: files rotated after Order are newer.
	Rotated bool      `json:"rotated"`
	Order   time.Time `json:"order"`
}

// checkpoint is what the KV bucket holds.
type checkpoint struct {
	Version int `json:"version"`
	position
	Saved time.Time `json:"saved"`
}

const checkpointVersion = 1

// New builds the collector from its configuration.
func New(cfg Config, d collectors.Deps) (*Collector, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("auditfile: %w", errors.Join(errs...))
	}
	if d.Bus == nil {
		return nil, errors.New("auditfile: no bus")
	}
	if d.Cluster == "" {
		return nil, errors.New("auditfile: no cluster name")
	}
	if nc := d.Bus.Conn(); nc != nil {
		if mp := nc.MaxPayload(); mp > 0 && int64(cfg.MaxEventSize)+envelopeOverhead > mp {
			return nil, fmt.Errorf("auditfile: max_event_size %s plus the envelope does not fit in the NATS server's max_payload of %d bytes", cfg.MaxEventSize, mp)
		}
	}
	path, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("auditfile: path %s: %w", cfg.Path, err)
	}
	cfg.Path = path
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Collector{
		cfg:     cfg,
		cluster: d.Cluster,
		subject: bus.AuditSubject(d.Cluster),
		dlq:     bus.DeadLetterSubject(bus.StreamAudit, Name),
		prep:    schemas.AuditPreparer{MaxEventSize: int(cfg.MaxEventSize)},
		key:     checkpointKey(cfg, d.Cluster),
		log:     log.With("path", path),
		m:       newMetrics(d.Metrics),
		b:       d.Bus,
		files:   newFileSet(path),
	}
	if d.AddReadyCheck != nil {
		d.AddReadyCheck("collector/"+Name, func(context.Context) error { return c.healthErr() })
	}
	return c, nil
}

// checkpointKey is the configured key, or one derived from the cluster, the
// host name and the path, so collectors of different files never share one.
func checkpointKey(cfg Config, cluster string) string {
	if cfg.CheckpointKey != "" {
		return cfg.CheckpointKey
	}
	host, _ := os.Hostname()
	sum := sha256.Sum256([]byte(host + "\x00" + cfg.Path))
	return "audit-file." + bus.Token(cluster) + "." + hex.EncodeToString(sum[:8])
}

// Name implements collectors.Collector.
func (c *Collector) Name() string { return Name }

// CheckpointKey is the key of the collector's resume position in the
// faultline_checkpoints bucket.
func (c *Collector) CheckpointKey() string { return c.key }

func (c *Collector) setHealth(err error) {
	c.mu.Lock()
	c.health = err
	c.mu.Unlock()
}

func (c *Collector) healthErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.health
}

// Run follows the audit log until ctx ends. It returns an error only when
// the checkpoint bucket cannot be used at all; trouble with the files or the
// bus is logged, shown on /readyz and retried.
func (c *Collector) Run(ctx context.Context) error {
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stopGrace := context.AfterFunc(ctx, func() { time.AfterFunc(drainGrace, cancel) })
	defer stopGrace()
	c.pctx = pctx

	kv, err := c.b.KV(ctx, bus.BucketCheckpoints)
	if err != nil {
		return fmt.Errorf("auditfile: open checkpoints: %w", err)
	}
	c.kv = kv
	cp, err := c.load(ctx)
	if err != nil {
		return err
	}
	c.cp = cp
	c.startedAt = time.Now()
	if cp != nil {
		c.log.Info("auditfile: resuming", "file", cp.Path, "line", cp.Line, "offset", cp.Offset)
	}
	for first := true; ctx.Err() == nil; first = false {
		before := c.taken
		err := c.pass(ctx, first)
		if ctx.Err() != nil {
			break
		}
		if err != nil && !errors.Is(err, errReplan) {
			c.setHealth(err)
			c.log.Warn("auditfile: reading failed; retrying", "err", err)
		}
		if err != nil && c.taken == before {
			// No progress: do not spin.
			if sleep(ctx, c.cfg.PollInterval) != nil {
				break
			}
		}
	}
	c.m.batchPending.Set(0)
	return nil
}

// load reads the checkpoint; nil when there is none.
func (c *Collector) load(ctx context.Context) (*checkpoint, error) {
	e, err := c.kv.Get(ctx, c.key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("auditfile: read checkpoint %s: %w", c.key, err)
	}
	var cp checkpoint
	if err := json.Unmarshal(e.Value(), &cp); err != nil || cp.Version != checkpointVersion {
		c.log.Error("auditfile: checkpoint unreadable; starting as on a first start", "key", c.key, "err", err, "version", cp.Version)
		return nil, nil
	}
	return &cp, nil
}

// step is one file to read from a position.
type step struct {
	c            candidate
	offset, line int64
	// atEnd starts at the end of the file (start_at: end).
	atEnd bool
	// fp/fpLen, when set, is what the file must start with for offset to
	// be valid.
	fp    string
	fpLen int
	// For the active file: the file at the path when planning (nil if
	// there was none) and its first bytes. If another file is there when
	// it is opened, it was rotated meanwhile and the plan is stale.
	planned       os.FileInfo
	plannedPrefix []byte
}

// plan decides which files to read, in order; the last step is the active
// file, which is then followed.
func (c *Collector) plan(cp *checkpoint, first bool) ([]step, error) {
	active := step{c: c.files.activeCandidate()}
	// The active file is looked at before the rotated ones are listed, so
	// that a rotation in between shows as a different file at open.
	if f, err := os.Open(active.c.path); err == nil {
		active.planned, err = f.Stat()
		if err == nil {
			active.plannedPrefix = make([]byte, min(prefixLen, active.planned.Size()))
			n, _ := f.ReadAt(active.plannedPrefix, 0)
			active.plannedPrefix = active.plannedPrefix[:n]
		}
		f.Close()
	}
	rotated, err := c.files.rotated()
	if err != nil && !isNotExist(err) {
		return nil, err
	}
	var out []step
	switch {
	case cp == nil && first:
		switch {
		case c.cfg.StartAt == StartEnd:
			active.atEnd = true
		case c.cfg.ReadRotated:
			for _, r := range rotated {
				out = append(out, step{c: r})
			}
		}
	case cp == nil:
		// Nothing was read since the start: take what was rotated since.
		for _, r := range rotated {
			if r.order.After(c.startedAt) {
				out = append(out, step{c: r})
			}
		}
	default:
		all := append(rotated, active.c)
		i, stale := findByPrefix(all, cp.FP, cp.FPLen)
		switch {
		case stale:
			return nil, errReplan
		case i == len(all)-1:
			active.offset, active.line, active.fp, active.fpLen = cp.Offset, cp.Line, cp.FP, cp.FPLen
		case i >= 0:
			out = append(out, step{c: all[i], offset: cp.Offset, line: cp.Line})
			for _, r := range rotated[i+1:] {
				out = append(out, step{c: r})
			}
		default:
			c.m.checkpointMiss.Inc()
			c.log.Warn("auditfile: the file of the checkpoint is gone (rotated away and deleted?); events written to it after the checkpoint are lost",
				"file", cp.Path, "line", cp.Line)
			for _, r := range rotated {
				if r.order.After(cp.Order) {
					out = append(out, step{c: r})
				}
			}
		}
	}
	return append(out, active), nil
}

// pass reads the planned files and follows the active one until it is
// rotated (errReplan) or ctx ends.
func (c *Collector) pass(ctx context.Context, first bool) error {
	steps, err := c.plan(c.cp, first)
	if err != nil {
		return err
	}
	if c.testHookPlanned != nil {
		c.testHookPlanned()
	}
	for _, s := range steps[:len(steps)-1] {
		if err := c.readRotated(ctx, s); err != nil {
			return err
		}
	}
	return c.follow(ctx, steps[len(steps)-1])
}

// cursor is a file being read.
type cursor struct {
	c      candidate
	lr     *lineReader
	prefix []byte
	f      *os.File // active file only
	// seen is the last time the active file was confirmed to be the one
	// at the path.
	seen time.Time
}

// readRotated reads a rotated file from s to its end.
func (c *Collector) readRotated(ctx context.Context, s step) error {
	prefix, err := readPrefix(s.c, prefixLen)
	if err != nil {
		if isNotExist(err) {
			return errReplan // compressed or deleted meanwhile
		}
		return c.unreadable(s.c, err)
	}
	r, err := openContent(s.c)
	if err != nil {
		if isNotExist(err) {
			return errReplan
		}
		return c.unreadable(s.c, err)
	}
	defer r.Close()
	if s.offset > 0 {
		if f, ok := r.(*os.File); ok {
			_, err = f.Seek(s.offset, io.SeekStart)
		} else {
			_, err = io.CopyN(io.Discard, r, s.offset)
		}
		if errors.Is(err, io.EOF) {
			return nil // shorter than the offset: read to its end before
		}
		if err != nil {
			return c.unreadable(s.c, fmt.Errorf("skip to offset %d: %w", s.offset, err))
		}
	}
	c.log.Info("auditfile: reading rotated file", "file", s.c.path, "from_line", s.line+1)
	cur := &cursor{c: s.c, lr: newLineReader(r, int(c.cfg.MaxLineSize), s.offset, s.line), prefix: prefix}
	if err := c.pump(ctx, cur); err != nil && !errors.Is(err, io.EOF) {
		if ctx.Err() != nil {
			return err
		}
		// A damaged file (a corrupt .gz): keep what was read, move on.
		if ferr := c.flush(ctx); ferr != nil {
			return ferr
		}
		return c.unreadable(s.c, err)
	}
	if rec, ok := cur.lr.Rest(); ok {
		c.take(cur, rec)
	}
	return c.flush(ctx)
}

// unreadable reports a rotated file that cannot be read and moves the
// checkpoint past it, so one bad file does not stop the collector.
func (c *Collector) unreadable(cd candidate, err error) error {
	c.m.checkpointMiss.Inc()
	c.log.Error("auditfile: rotated file unreadable; skipping it", "file", cd.path, "err", err)
	c.setHealth(fmt.Errorf("auditfile: read %s: %w", cd.path, err))
	prefix, perr := readPrefix(cd, prefixLen)
	if perr != nil || len(prefix) == 0 {
		return nil
	}
	// Mark the whole file as read.
	c.pos = position{Path: cd.path, FP: fingerprint(prefix), FPLen: len(prefix), Offset: 1 << 62, Rotated: true, Order: cd.order}
	c.dirty = true
	return nil
}

// follow reads the active file from s and keeps reading what is appended
// until it is rotated.
func (c *Collector) follow(ctx context.Context, s step) error {
	seen := time.Now()
	f, err := os.Open(s.c.path)
	if err != nil {
		if !isNotExist(err) {
			return fmt.Errorf("auditfile: open %s: %w", s.c.path, err)
		}
		c.setHealth(nil) // waiting for the API server to create it is normal
		if !c.waiting {
			c.waiting = true
			c.log.Info("auditfile: waiting for the audit log to appear")
		}
		if err := sleep(ctx, c.cfg.PollInterval); err != nil {
			return err
		}
		return errReplan
	}
	defer f.Close()
	c.waiting = false
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("auditfile: stat %s: %w", s.c.path, err)
	}
	size := fi.Size()
	prefix := make([]byte, min(prefixLen, size))
	if _, err := f.ReadAt(prefix, 0); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("auditfile: read start of %s: %w", s.c.path, err)
	}
	if s.fpLen > 0 && (len(prefix) < s.fpLen || fingerprint(prefix[:s.fpLen]) != s.fp) {
		return errReplan // rotated between planning and opening
	}
	if s.planned != nil && (!os.SameFile(s.planned, fi) || !bytes.HasPrefix(prefix, s.plannedPrefix)) {
		return errReplan // rotated while the rotated files were read
	}
	offset, line := s.offset, s.line
	if s.atEnd {
		if offset, line, err = lineStartAtOrBefore(f, size); err != nil {
			return err
		}
	}
	if offset > size {
		c.log.Warn("auditfile: file shorter than the checkpoint; reading it from its start", "size", size, "offset", offset)
		offset, line = 0, 0
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return fmt.Errorf("auditfile: seek %s: %w", s.c.path, err)
	}
	cur := &cursor{c: s.c, f: f, prefix: prefix, seen: seen,
		lr: newLineReader(f, int(c.cfg.MaxLineSize), offset, line)}
	if s.atEnd && offset > 0 {
		// Remember the start, so a rotation before the first line does not
		// make the skipped lines look unread.
		c.setPos(cur, offset, line)
		if err := c.flush(ctx); err != nil {
			return err
		}
	}
	c.setHealth(nil)
	for {
		if err := c.pump(ctx, cur); err != nil {
			return err
		}
		now := time.Now()
		pi, perr := os.Stat(s.c.path)
		fi, ferr := f.Stat()
		if ferr != nil {
			return fmt.Errorf("auditfile: stat %s: %w", s.c.path, ferr)
		}
		c.m.lagBytes.Set(float64(max(0, fi.Size()-cur.lr.Offset())))
		switch {
		case perr == nil && os.SameFile(pi, fi):
			cur.seen = now
			ok, err := hasPrefix(f, cur.prefix)
			if err != nil {
				return err
			}
			if !ok || fi.Size() < cur.lr.Offset()+cur.lr.Buffered() {
				// Copied and truncated: the copy is found by its content
				// and read from the checkpoint on.
				c.m.rotations.WithLabelValues("truncate").Inc()
				c.log.Info("auditfile: file truncated (copy and truncate)")
				return errReplan
			}
			if len(cur.prefix) < prefixLen && fi.Size() > int64(len(cur.prefix)) {
				p := make([]byte, min(prefixLen, fi.Size()))
				if n, err := f.ReadAt(p, 0); err == nil || errors.Is(err, io.EOF) {
					cur.prefix = p[:n]
				}
			}
			if err := sleep(ctx, c.cfg.PollInterval); err != nil {
				return err
			}
		case perr != nil && !isNotExist(perr):
			c.setHealth(fmt.Errorf("auditfile: stat %s: %w", s.c.path, perr))
			if err := sleep(ctx, c.cfg.PollInterval); err != nil {
				return err
			}
		default:
			// Renamed (or removed): the writer moved on to a new file.
			// Take what was written before, then plan again.
			c.m.rotations.WithLabelValues("rename").Inc()
			c.log.Info("auditfile: file rotated (rename)")
			if err := c.pump(ctx, cur); err != nil {
				return err
			}
			if rec, ok := cur.lr.Rest(); ok {
				c.take(cur, rec)
			}
			if err := c.flush(ctx); err != nil {
				return err
			}
			return errReplan
		}
	}
}

// pump takes every complete line available now, publishing full batches,
// and flushes the rest at the end. It returns ctx's error once ctx ends
// (after a last flush).
func (c *Collector) pump(ctx context.Context, cur *cursor) error {
	for ctx.Err() == nil {
		rec, err := cur.lr.Next()
		if errors.Is(err, io.EOF) {
			return c.flush(ctx)
		}
		if err != nil {
			return fmt.Errorf("auditfile: read %s: %w", cur.c.path, err)
		}
		c.take(cur, rec)
		if len(c.msgs) >= c.cfg.BatchSize || c.size >= int(c.cfg.MaxBatchBytes) {
			if err := c.flush(ctx); err != nil {
				return err
			}
		}
	}
	if err := c.flush(ctx); err != nil {
		return err
	}
	return ctx.Err()
}

func (c *Collector) setPos(cur *cursor, offset, line int64) {
	p := position{Path: cur.c.path, Offset: offset, Line: line, Rotated: !cur.c.active, Order: cur.c.order}
	if cur.c.active {
		p.Order = cur.seen
		if len(cur.prefix) < prefixLen && int64(len(cur.prefix)) < offset {
			pr := make([]byte, min(prefixLen, offset))
			if n, err := cur.f.ReadAt(pr, 0); err == nil || errors.Is(err, io.EOF) {
				cur.prefix = pr[:n]
			}
		}
	}
	p.FP, p.FPLen = fingerprint(cur.prefix), len(cur.prefix)
	c.pos, c.dirty = p, true
}

// take handles one line: a message for the batch, or a report.
func (c *Collector) take(cur *cursor, rec record) {
	c.taken++
	c.m.bytesRead.Add(float64(rec.End - rec.Offset))
	c.setPos(cur, rec.End, rec.Line)
	where := cur.c.path + ":" + strconv.FormatInt(rec.Line, 10)
	switch {
	case rec.TooLong > 0:
		c.reject(where, reasonTooLong, fmt.Errorf("%w: %d bytes, max_line_size is %s", errLineTooLong, rec.TooLong, c.cfg.MaxLineSize))
		return
	case isBlank(rec.Data):
		return
	}
	msg, ev, err := c.message(rec.Data)
	if err != nil {
		reason := reasonInvalid
		if rec.Unterminated {
			reason = reasonUnterminated
		}
		c.reject(where, reason, err)
		c.add(c.deadLetter(where, err, rec.Data), where)
		return
	}
	if ev.Redacted {
		c.m.redacted.Inc()
	}
	if ev.Truncated {
		c.m.truncated.Inc()
		c.log.Warn("auditfile: event larger than max_event_size published truncated",
			"where", where, "size", ev.OriginalSize, "id", ev.ID)
	}
	c.add(msg, where)
}

func (c *Collector) add(msg bus.Message, where string) {
	c.msgs = append(c.msgs, msg)
	c.where = append(c.where, where)
	c.size += len(msg.Data)
	c.m.batchPending.Set(float64(len(c.msgs)))
}

// deadLetter is the copy of a rejected line kept on the dead-letter
// subject, redacted without knowing its shape; the reason names the file
// and line.
func (c *Collector) deadLetter(where string, reason error, line []byte) bus.Message {
	h := nats.Header{}
	h.Set(bus.HeaderDLQReason, where+": "+reason.Error())
	h.Set(bus.HeaderDLQSubject, c.subject)
	h.Set(bus.HeaderDLQStream, bus.StreamAudit)
	h.Set(bus.HeaderDLQConsumer, Name)
	h.Set(bus.HeaderDLQTime, time.Now().UTC().Format(time.RFC3339Nano))
	return bus.Message{
		Subject: c.dlq,
		// Re-reading the line after a restart gives the same id.
		ID:     schemas.DeriveID("auditreject", c.cluster, where, string(line)),
		Data:   schemas.RedactRejectedAuditItem(line),
		Header: h,
	}
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

// reject reports a line that is not published, with its file and line.
func (c *Collector) reject(where, reason string, err error) {
	c.m.rejected.WithLabelValues(reason).Inc()
	c.log.Warn("auditfile: line not published", "where", where, "reason", reason, "err", err)
}

// message checks, redacts and (above max_event_size) truncates one audit
// event line and wraps it in its envelope.
func (c *Collector) message(line []byte) (bus.Message, schemas.PreparedAuditEvent, error) {
	data, ev, err := c.prep.Prepare(c.scratch[:0], line)
	if err != nil {
		return bus.Message{}, ev, err
	}
	c.scratch = data
	env := schemas.Envelope{
		SpecVersion: schemas.SpecVersion, ID: ev.ID, Source: Source, Type: schemas.TypeAudit,
		Subject: ev.Subject, Time: ev.Time, DataContentType: schemas.ContentTypeJSON,
		Cluster: c.cluster, Data: data,
	}
	b, err := env.Encode()
	if err != nil {
		return bus.Message{}, ev, err
	}
	return bus.Message{Subject: c.subject, ID: ev.ID, Data: b}, ev, nil
}

// flush publishes the batch in hand, waits until JetStream acknowledges
// every message, then saves the checkpoint. A batch that is not fully
// acknowledged is retried (only the failed messages) until ctx ends; then
// the checkpoint stays where it was and the lines are read again after the
// restart.
func (c *Collector) flush(ctx context.Context) error {
	if !c.dirty && len(c.msgs) == 0 {
		return nil
	}
	delay := retryMin
	for len(c.msgs) > 0 {
		err := c.publish()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			c.log.Warn("auditfile: stopping with events not acknowledged; they are read again after the restart", "events", len(c.msgs), "err", err)
			return ctx.Err()
		}
		c.m.retries.Inc()
		c.setHealth(err)
		c.log.Warn("auditfile: publish failed; retrying", "events", len(c.msgs), "err", err, "retry_in", delay)
		if err := sleep(ctx, delay); err != nil {
			return err
		}
		delay = min(2*delay, retryMax)
	}
	delay = retryMin
	for {
		err := c.save()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.m.retries.Inc()
		c.setHealth(err)
		c.log.Warn("auditfile: saving the checkpoint failed; retrying", "err", err, "retry_in", delay)
		if err := sleep(ctx, delay); err != nil {
			return err
		}
		delay = min(2*delay, retryMax)
	}
	c.msgs, c.where, c.size = c.msgs[:0], c.where[:0], 0
	c.m.batchPending.Set(0)
	c.setHealth(nil)
	return nil
}

// publish sends c.msgs as one batch and keeps only those not acknowledged.
func (c *Collector) publish() error {
	bt := c.b.NewBatch()
	for _, m := range c.msgs {
		_ = bt.Add(c.pctx, m) // failures are in the result
	}
	res, err := bt.Wait(c.pctx)
	c.m.published.Add(float64(res.Acked - res.Duplicates))
	c.m.duplicates.Add(float64(res.Duplicates))
	if err == nil {
		c.msgs, c.where = c.msgs[:0], c.where[:0]
		return nil
	}
	if len(res.Failed) == 0 {
		// Wait gave up (stop requested): nothing is known to be stored.
		return err
	}
	failed := make(map[int]error, len(res.Failed))
	for _, f := range res.Failed {
		failed[f.Index] = f.Err
	}
	keepM, keepW := c.msgs[:0], c.where[:0]
	for i := range c.msgs {
		ferr, bad := failed[i]
		switch {
		case !bad:
		case errors.Is(ferr, nats.ErrMaxPayload):
			// Never storable: report it, do not retry forever.
			c.reject(c.where[i], reasonUnpublishable, ferr)
		default:
			keepM, keepW = append(keepM, c.msgs[i]), append(keepW, c.where[i])
		}
	}
	c.msgs, c.where = keepM, keepW
	c.size = 0
	for _, m := range c.msgs {
		c.size += len(m.Data)
	}
	if len(c.msgs) == 0 {
		return nil
	}
	return err
}

// save writes the checkpoint.
func (c *Collector) save() error {
	if !c.dirty {
		return nil
	}
	cp := &checkpoint{Version: checkpointVersion, position: c.pos, Saved: time.Now().UTC()}
	b, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("auditfile: encode checkpoint: %w", err)
	}
	if _, err := c.kv.Put(c.pctx, c.key, b); err != nil {
		return fmt.Errorf("auditfile: save checkpoint %s: %w", c.key, err)
	}
	c.m.checkpointSaves.Inc()
	c.cp, c.dirty = cp, false
	return nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
