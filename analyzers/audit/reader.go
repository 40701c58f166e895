package audit

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"

	"github.com/faultline/faultline/internal/jsonscan"
	"github.com/faultline/faultline/schemas"
)

// DefaultMaxLine bounds one JSON line (and an event of an EventList or
// array document).
const DefaultMaxLine = 16 << 20

// DefaultMaxDocument bounds a whole-document input (an EventList or a JSON
// array that is not one line per event).
const DefaultMaxDocument = 1 << 30

// Reject is an input item that is not an audit event. Reading goes on after
// it.
type Reject struct {
	// File is the reader's name; Line the 1-based line where the item
	// starts.
	File string
	Line int
	// Err wraps ErrNotAuditEvent.
	Err error
}

func (r *Reject) Error() string { return fmt.Sprintf("%s:%d: %v", r.File, r.Line, r.Err) }
func (r *Reject) Unwrap() error { return r.Err }

// Reader reads audit events from JSON lines (one event, array or EventList
// per line, as the API server's log backend writes them), or from one
// EventList or JSON array document, of audit.k8s.io/v1 or v1beta1, gzipped
// or not (detected from the content).
type Reader struct {
	name    string
	br      *bufio.Reader
	maxLine int
	maxDoc  int

	started bool
	line    int // lines consumed so far
	pending []item
	next    int // the next of pending to return
	err     error

	scratch []byte // a line longer than br's buffer
	slab    []byte // where lines are kept (keep)

	reuse bool
	ev    *Event // reuse: the event of a line that holds one
}

// Reuse makes the reader recycle its memory: an event returned by Next,
// and every string read from it, is valid only until the next call to
// Next. Nothing is copied or allocated per line then (the event is parsed
// where the line was read). Replay and rule tests read this way: their
// analyzers keep copies of what they keep (see analyzers.Analyzer).
func (r *Reader) Reuse() { r.reuse = true }

type item struct {
	ev   *Event
	rej  *Reject
	line int
}

// NewReader reads from r; name appears in rejects (a file name or "-").
func NewReader(r io.Reader, name string) *Reader {
	return &Reader{name: name, br: bufio.NewReaderSize(r, 64<<10), maxLine: DefaultMaxLine, maxDoc: DefaultMaxDocument}
}

// SetLimits changes the line and document bounds (0 keeps the default).
func (r *Reader) SetLimits(maxLine, maxDoc int) {
	if maxLine > 0 {
		r.maxLine = maxLine
	}
	if maxDoc > 0 {
		r.maxDoc = maxDoc
	}
}

// Next returns the next event, or a *Reject for an item that is not one
// (call Next again to go on), or io.EOF at the end, or another error when
// the input cannot be read.
func (r *Reader) Next() (*Event, error) {
	for {
		if r.next < len(r.pending) {
			it := r.pending[r.next]
			r.pending[r.next] = item{}
			if r.next++; r.next == len(r.pending) {
				r.pending, r.next = r.pending[:0], 0 // the array serves again
			}
			if it.rej != nil {
				return nil, it.rej
			}
			return it.ev, nil
		}
		if r.err != nil {
			return nil, r.err
		}
		r.fill()
	}
}

func (r *Reader) fill() {
	if !r.started {
		r.started = true
		if head, _ := r.br.Peek(2); len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
			zr, err := gzip.NewReader(r.br)
			if err != nil {
				r.err = fmt.Errorf("read %s: gzip: %w", r.name, err)
				return
			}
			r.br = bufio.NewReaderSize(zr, 64<<10)
		}
		first, err := r.firstByte()
		if err != nil {
			r.err = err
			return
		}
		if first == '[' || !r.firstLineComplete() {
			r.readDocument()
			return
		}
	}
	r.readLine()
}

// firstByte skips leading blank space (counting lines) and returns the
// first byte without consuming it.
func (r *Reader) firstByte() (byte, error) {
	for {
		c, err := r.br.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return 0, io.EOF
			}
			return 0, fmt.Errorf("read %s: %w", r.name, err)
		}
		switch c {
		case '\n':
			r.line++
		case ' ', '\t', '\r':
		default:
			_ = r.br.UnreadByte()
			return c, nil
		}
	}
}

// firstLineComplete tells whether the first line holds a whole JSON value
// (JSON lines) rather than the start of an indented document.
func (r *Reader) firstLineComplete() bool {
	for n := 4096; ; n *= 2 {
		buf, err := r.br.Peek(n)
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			end, serr := jsonscan.Skip(buf[:i], 0, 0)
			return serr == nil && jsonscan.SkipSpace(buf[:i], end) == i
		}
		if err != nil || n >= r.br.Size() {
			// One line up to the end of the input (or a huge first line):
			// treat as lines; a line that is not complete is rejected.
			end, serr := jsonscan.Skip(buf, 0, 0)
			if serr == nil && jsonscan.SkipSpace(buf, end) == len(buf) {
				return true
			}
			return err != nil && !errors.Is(err, bufio.ErrBufferFull)
		}
	}
}

func (r *Reader) readLine() {
	// A line within the reader's buffer (nearly all) is read in place;
	// a longer one is collected in scratch.
	var line []byte
	pieces, tooLong := false, false
	for {
		chunk, err := r.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) || pieces {
			pieces = true
			if !tooLong {
				if len(r.scratch)+len(chunk) > r.maxLine {
					tooLong = true
				} else {
					r.scratch = append(r.scratch, chunk...)
				}
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			line = r.scratch
		} else {
			tooLong = len(chunk) > r.maxLine
			line = chunk
		}
		if err != nil && !errors.Is(err, io.EOF) {
			r.err = fmt.Errorf("read %s: %w", r.name, err)
			return
		}
		if len(line) == 0 && errors.Is(err, io.EOF) && !tooLong {
			r.err = io.EOF
			return
		}
		r.line++
		n := r.line
		if tooLong {
			r.reject(n, fmt.Errorf("%w: line longer than %d bytes", ErrNotAuditEvent, r.maxLine))
		} else if line = bytes.TrimSpace(line); len(line) > 0 {
			if !r.reuse {
				line = r.keep(line)
			}
			r.lineItems(line, n)
		}
		r.scratch = r.scratch[:0]
		if cap(r.scratch) > 1<<20 {
			r.scratch = nil // a rare long line: not kept
		}
		if errors.Is(err, io.EOF) {
			r.err = io.EOF
		}
		return
	}
}

// slabSize is the size of the blocks lines are copied into.
const slabSize = 64 << 10

// keep copies a line out of the reader's buffer for the events parsed from
// it. An event's strings are views of its bytes, so a line is never
// reused; lines are carved from slabs, one allocation for many lines. (An
// analyzer that keeps a string of an event beyond the event keeps a copy,
// or it keeps its neighbours' bytes too.)
func (r *Reader) keep(line []byte) []byte {
	if len(line) > slabSize/8 {
		return bytes.Clone(line)
	}
	if cap(r.slab)-len(r.slab) < len(line) {
		r.slab = make([]byte, 0, slabSize)
	}
	start := len(r.slab)
	r.slab = append(r.slab, line...)
	return r.slab[start:len(r.slab):len(r.slab)]
}

func (r *Reader) readDocument() {
	data, err := io.ReadAll(io.LimitReader(r.br, int64(r.maxDoc)+1))
	if err != nil {
		r.err = fmt.Errorf("read %s: %w", r.name, err)
		return
	}
	if len(data) > r.maxDoc {
		r.err = fmt.Errorf("read %s: document larger than %d bytes; use JSON lines for large inputs", r.name, r.maxDoc)
		return
	}
	r.items(data, r.line+1, true)
	r.err = io.EOF
}

// lineItems reads one line of JSON lines. Nearly always it is one event:
// that is checked and parsed in a single pass (Parse). An EventList or an
// array on one line is split into its events.
func (r *Reader) lineItems(line []byte, n int) {
	if line[0] == '{' {
		var ev *Event
		if r.reuse {
			if r.ev == nil {
				r.ev = new(Event)
			}
			ev = r.ev
		} else {
			ev = new(Event)
		}
		err := ev.reparse(line, false)
		if err == nil {
			r.pending = append(r.pending, item{ev: ev, line: n})
			return
		}
		if !errors.Is(err, errEventList) {
			r.reject(n, err)
			return
		}
	}
	r.items(line, n, false)
}

// items splits one document (a line or the whole input) into events.
func (r *Reader) items(doc []byte, line int, multiline bool) {
	raw, err := schemas.SplitAuditEvents(doc)
	if err != nil {
		if !errors.Is(err, ErrNotAuditEvent) {
			err = fmt.Errorf("%w: %w", ErrNotAuditEvent, err)
		}
		r.reject(line, err)
		return
	}
	pos, lines := 0, 0 // where the previous item ended, and newlines before it
	for _, it := range raw {
		l := line
		if multiline {
			// Items are in order: find each after the previous one.
			if k := bytes.Index(doc[pos:], it); k >= 0 {
				lines += bytes.Count(doc[pos:pos+k], []byte{'\n'})
				l = line + lines
				lines += bytes.Count(it, []byte{'\n'})
				pos += k + len(it)
			}
		}
		ev, err := ParseValid(it)
		if err == nil {
			err = ev.Complete()
		}
		if err != nil {
			r.reject(l, err)
			continue
		}
		r.pending = append(r.pending, item{ev: ev, line: l})
	}
}

func (r *Reader) reject(line int, err error) {
	r.pending = append(r.pending, item{rej: &Reject{File: r.name, Line: line, Err: err}, line: line})
}
