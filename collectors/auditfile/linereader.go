package auditfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// readChunk is how much the line reader asks its source for at once.
const readChunk = 64 << 10

// record is one line of a file.
type record struct {
	// Line is the 1-based line number.
	Line int64
	// Offset is where the line starts; End is just past its '\n' (or its
	// last byte for an unterminated last line), that is where the next line
	// starts and what a checkpoint stores.
	Offset, End int64
	// Data is the line without its '\n' and a '\r' before it. It aliases
	// the reader's buffer: valid until the next call. Nil when TooLong.
	Data []byte
	// TooLong is the length of a line longer than the limit, whose bytes
	// were skipped; 0 otherwise.
	TooLong int64
	// Unterminated marks a last line without '\n' (from Rest).
	Unterminated bool
}

// errLineTooLong describes a skipped line.
var errLineTooLong = errors.New("line too long")

// lineReader splits a stream into lines while holding at most max bytes of
// one line (plus one read chunk) in memory: a longer line is skipped and
// reported with its length. A partial line at the end of the stream is kept
// until the rest arrives (a file being written), or returned by Rest (a
// file that will not grow).
type lineReader struct {
	r   io.Reader
	max int
	buf []byte
	// buf[start:end] holds unconsumed bytes; scanned bytes before scan have
	// no '\n'.
	start, end, scan int
	// offset is the stream position of buf[start]; line counts the lines
	// consumed before it.
	offset int64
	line   int64
	// skipping is set inside an overlong line: its bytes are dropped until
	// its '\n'; skipped counts them.
	skipping bool
	skipped  int64
}

// newLineReader reads r, whose first byte is at stream position offset and
// follows line number line (the count of lines before it).
func newLineReader(r io.Reader, max int, offset, line int64) *lineReader {
	return &lineReader{r: r, max: max, offset: offset, line: line}
}

// Offset is the position just after the last line returned: where a reader
// resumes.
func (lr *lineReader) Offset() int64 {
	if lr.skipping {
		return lr.offset - lr.skipped
	}
	return lr.offset
}

// Line is the number of lines returned so far, counting from the start of
// the stream.
func (lr *lineReader) Line() int64 { return lr.line }

// Buffered is how many bytes were read past Offset (a partial line).
func (lr *lineReader) Buffered() int64 {
	n := int64(lr.end - lr.start)
	if lr.skipping {
		n += lr.skipped
	}
	return n
}

// Next returns the next complete line. At the end of the source it returns
// io.EOF and keeps any partial line; a later call reads again, so a file
// that grows is followed. Other read errors are returned as they are.
func (lr *lineReader) Next() (record, error) {
	for {
		if i := bytes.IndexByte(lr.buf[lr.scan:lr.end], '\n'); i >= 0 {
			return lr.take(lr.scan+i, 1), nil
		}
		lr.scan = lr.end
		if n := lr.end - lr.start; n > lr.max {
			// Too long already: drop what is buffered and skip to '\n'.
			if !lr.skipping {
				lr.skipping, lr.skipped = true, 0
			}
			lr.skipped += int64(n)
			lr.offset += int64(n)
			lr.start, lr.end, lr.scan = 0, 0, 0
		}
		if err := lr.fill(); err != nil {
			return record{}, err
		}
	}
}

// Rest returns the partial last line of a stream that will not grow, as a
// record with Unterminated set, and false when nothing is left.
func (lr *lineReader) Rest() (record, bool) {
	if lr.end == lr.start && !lr.skipping {
		return record{}, false
	}
	rec := lr.take(lr.end, 0)
	rec.Unterminated = true
	return rec, true
}

// take consumes buf[start:nl] plus sep bytes of line end.
func (lr *lineReader) take(nl, sep int) record {
	n := int64(nl - lr.start)
	rec := record{Line: lr.line + 1, Offset: lr.offset, End: lr.offset + n + int64(sep)}
	switch {
	case lr.skipping:
		rec.Offset -= lr.skipped
		rec.TooLong = lr.skipped + n
		lr.skipping, lr.skipped = false, 0
	case n > int64(lr.max):
		rec.TooLong = n
	default:
		d := lr.buf[lr.start:nl]
		if len(d) > 0 && d[len(d)-1] == '\r' {
			d = d[:len(d)-1]
		}
		rec.Data = d
	}
	lr.line++
	lr.offset = rec.End
	lr.start = nl + sep
	lr.scan = lr.start
	if lr.start == lr.end {
		lr.start, lr.end, lr.scan = 0, 0, 0
	}
	return rec
}

// fill reads one chunk, compacting or growing the buffer first.
func (lr *lineReader) fill() error {
	if len(lr.buf)-lr.end < readChunk {
		if lr.start > 0 {
			n := copy(lr.buf, lr.buf[lr.start:lr.end])
			lr.scan -= lr.start
			lr.start, lr.end = 0, n
		}
		if len(lr.buf)-lr.end < readChunk {
			// At most max+1 bytes of a line plus one chunk are ever held.
			nb := make([]byte, min(max(2*len(lr.buf), lr.end+readChunk), lr.max+1+readChunk))
			copy(nb, lr.buf[:lr.end])
			lr.buf = nb
		}
	}
	n, err := lr.r.Read(lr.buf[lr.end:])
	if n < 0 || n > len(lr.buf)-lr.end {
		return fmt.Errorf("read: invalid count %d", n)
	}
	lr.end += n
	if n > 0 {
		return nil
	}
	if err == nil {
		// A reader may return 0, nil; treat it as "nothing now".
		return io.EOF
	}
	return err
}
