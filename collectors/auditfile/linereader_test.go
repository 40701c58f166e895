package auditfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// growingReader serves data[:limit] in chunks of at most chunk bytes and
// then io.EOF, like a file that is still being written; raising limit
// makes more appear.
type growingReader struct {
	data         []byte
	pos, limit   int
	chunk        int
	errAfter     int // fail with errBoom at this position (0: never)
	failedBefore bool
}

var errBoom = errors.New("boom")

func (g *growingReader) Read(p []byte) (int, error) {
	if g.errAfter > 0 && g.pos >= g.errAfter && !g.failedBefore {
		g.failedBefore = true
		return 0, errBoom
	}
	if g.pos >= g.limit {
		return 0, io.EOF
	}
	n := min(len(p), g.limit-g.pos, g.chunk)
	copy(p, g.data[g.pos:g.pos+n])
	g.pos += n
	return n, nil
}

// wantRecords is the reference: split on '\n', a line longer than max is
// reported by length, the unterminated rest only when final.
func wantRecords(data []byte, max int, final bool) []record {
	var out []record
	var off, line int64
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 && !final {
			break
		}
		n, sep := i, 1
		if i < 0 {
			n, sep = len(data), 0
		}
		line++
		r := record{Line: line, Offset: off, End: off + int64(n+sep), Unterminated: sep == 0}
		if n > max {
			r.TooLong = int64(n)
		} else {
			r.Data = bytes.TrimSuffix(data[:n], []byte("\r"))
		}
		out = append(out, r)
		off += int64(n + sep)
		data = data[n+sep:]
	}
	return out
}

// readAll reads every complete line, then the rest if final.
func readAll(t testing.TB, lr *lineReader, final bool) []record {
	t.Helper()
	var out []record
	for {
		r, err := lr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		r.Data = bytes.Clone(r.Data)
		out = append(out, r)
	}
	if final {
		if r, ok := lr.Rest(); ok {
			r.Data = bytes.Clone(r.Data)
			out = append(out, r)
		}
	}
	return out
}

func sameRecords(got, want []record) error {
	if len(got) != len(want) {
		return fmt.Errorf("got %d records, want %d:\n got %+v\nwant %+v", len(got), len(want), got, want)
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Line != w.Line || g.Offset != w.Offset || g.End != w.End || g.TooLong != w.TooLong ||
			g.Unterminated != w.Unterminated || !bytes.Equal(g.Data, w.Data) || (g.Data == nil) != (w.TooLong > 0) {
			return fmt.Errorf("record %d = %+v (%q), want %+v (%q)", i, g, g.Data, w, w.Data)
		}
	}
	return nil
}

func TestLineReader(t *testing.T) {
	long := strings.Repeat("x", 40)
	for _, tc := range []struct {
		name  string
		input string
		max   int
		chunk int
	}{
		{"empty", "", 16, 7},
		{"one line", "hello\n", 16, 7},
		{"lines in small chunks", "a\nbb\nccc\n\ndddd\n", 16, 1},
		{"crlf", "a\r\nb\r\n", 16, 3},
		{"unterminated last line", "a\nbc", 16, 2},
		{"line at the limit", strings.Repeat("y", 16) + "\nz\n", 16, 5},
		{"line one over the limit", strings.Repeat("y", 17) + "\nz\n", 16, 5},
		{"long line in one chunk", long + "\nz\n", 16, 1000},
		{"long line in small chunks", "a\n" + long + "\nz\n", 16, 3},
		{"long unterminated line", "a\n" + long, 16, 3},
		{"two long lines", long + "\n" + long + "\n", 16, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &growingReader{data: []byte(tc.input), limit: len(tc.input), chunk: tc.chunk}
			lr := newLineReader(g, tc.max, 0, 0)
			got := readAll(t, lr, true)
			if err := sameRecords(got, wantRecords([]byte(tc.input), tc.max, true)); err != nil {
				t.Fatal(err)
			}
			if lr.Offset() != int64(len(tc.input)) || lr.Buffered() != 0 {
				t.Errorf("after the end: offset %d buffered %d, want %d and 0", lr.Offset(), lr.Buffered(), len(tc.input))
			}
		})
	}
}

// TestLineReaderFollowsGrowingInput feeds a line in pieces with EOF in
// between, as a file being written: the partial line waits.
func TestLineReaderFollowsGrowingInput(t *testing.T) {
	input := []byte("first\nsecond line\n" + strings.Repeat("z", 30) + "\nlast\n")
	g := &growingReader{data: input, chunk: 4}
	lr := newLineReader(g, 16, 100, 7) // resumed at offset 100, after line 7
	var got []record
	for _, limit := range []int{3, 6, 10, 20, 40, 52, len(input)} {
		g.limit = limit
		got = append(got, readAll(t, lr, false)...)
		if lr.Offset()+lr.Buffered() != 100+int64(limit) {
			t.Fatalf("at %d: offset %d + buffered %d, want %d", limit, lr.Offset(), lr.Buffered(), 100+limit)
		}
	}
	want := wantRecords(input, 16, false)
	for i := range want {
		want[i].Line += 7
		want[i].Offset += 100
		want[i].End += 100
	}
	if err := sameRecords(got, want); err != nil {
		t.Fatal(err)
	}
}

func TestLineReaderReadError(t *testing.T) {
	g := &growingReader{data: []byte("a\nb\n"), limit: 4, chunk: 2, errAfter: 2}
	lr := newLineReader(g, 16, 0, 0)
	if r, err := lr.Next(); err != nil || string(r.Data) != "a" {
		t.Fatalf("first line: %+v %v", r, err)
	}
	if _, err := lr.Next(); !errors.Is(err, errBoom) {
		t.Fatalf("error not passed on: %v", err)
	}
	// A later call carries on.
	if r, err := lr.Next(); err != nil || string(r.Data) != "b" {
		t.Fatalf("after the error: %+v %v", r, err)
	}
}

// FuzzLineReader checks the reader against the reference split for any
// input, limit and chunking, read in two growth steps.
func FuzzLineReader(f *testing.F) {
	f.Add([]byte("a\nbb\n"), uint8(4), uint8(1), uint16(2))
	f.Add([]byte("{\"kind\":\"Event\"}\r\n\n\nxxxxxxxxxxxxxxxxxxxxxxxx\nend"), uint8(8), uint8(3), uint16(10))
	f.Add([]byte(strings.Repeat("q", 300)+"\n"), uint8(16), uint8(200), uint16(150))
	f.Fuzz(func(t *testing.T, data []byte, max, chunk uint8, split uint16) {
		m := int(max)%64 + 1
		g := &growingReader{data: data, chunk: int(chunk)%17 + 1, limit: min(int(split), len(data))}
		lr := newLineReader(g, m, 0, 0)
		got := readAll(t, lr, false)
		g.limit = len(data)
		got = append(got, readAll(t, lr, true)...)
		if err := sameRecords(got, wantRecords(data, m, true)); err != nil {
			t.Fatal(err)
		}
		if lr.Offset() != int64(len(data)) || lr.Buffered() != 0 {
			t.Fatalf("after the end: offset %d buffered %d, want %d and 0", lr.Offset(), lr.Buffered(), len(data))
		}
		if c := cap(lr.buf); c > m+1+readChunk {
			t.Fatalf("buffer grew to %d bytes, bound is %d", c, m+1+readChunk)
		}
	})
}
