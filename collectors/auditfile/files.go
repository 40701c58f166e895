package auditfile

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// prefixLen is how many bytes at the start of a file identify it. A file
// is recognised by content, not by name or inode: a rotated file keeps its
// first bytes when it is renamed or compressed, and an audit log's first
// line holds a unique auditID.
const prefixLen = 1024

// kubeTimeLayout is the timestamp the API server's log rotation
// (lumberjack) puts in a rotated file's name, in UTC:
// audit-2026-11-22T05-30-00.123.log.
const kubeTimeLayout = "2006-01-02T15-04-05.000"

// candidate is the active audit log or one rotated file next to it.
type candidate struct {
	path   string
	gz     bool
	active bool
	// order sorts rotated files oldest first: the rotation time in the
	// name, else the modification time.
	order time.Time
}

// fileSet knows the active path and how its rotated siblings are named.
type fileSet struct {
	path string // active file
	dir  string
	// kube matches <stem>-<timestamp><ext>[.gz]; numbered matches logrotate's
	// <base>.<N>[.gz] and <base>-<date>[.gz].
	kube, numbered *regexp.Regexp
}

func newFileSet(path string) fileSet {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	ext := filepath.Ext(base)
	stem := strings.TrimSuffix(base, ext)
	q := regexp.QuoteMeta
	return fileSet{
		path:     path,
		dir:      filepath.Clean(dir),
		kube:     regexp.MustCompile(`^` + q(stem) + `-(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{3})` + q(ext) + `(\.gz)?$`),
		numbered: regexp.MustCompile(`^` + q(base) + `[.-](\d+)(\.gz)?$`),
	}
}

// rotated lists the rotated files, oldest first.
func (s fileSet) rotated() ([]candidate, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list rotated files in %s: %w", s.dir, err)
	}
	var out []candidate
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		name := e.Name()
		c := candidate{path: filepath.Join(s.dir, name)}
		if m := s.kube.FindStringSubmatch(name); m != nil {
			t, err := time.Parse(kubeTimeLayout, m[1])
			if err != nil {
				continue // not a real timestamp: not ours
			}
			c.order, c.gz = t, m[2] != ""
		} else if m := s.numbered.FindStringSubmatch(name); m != nil {
			info, err := e.Info()
			if err != nil {
				continue // removed meanwhile
			}
			c.order, c.gz = info.ModTime(), m[2] != ""
		} else {
			continue
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b candidate) int {
		if c := a.order.Compare(b.order); c != 0 {
			return c
		}
		// Same instant: the plain file was compressed into the .gz, or
		// names decide.
		return strings.Compare(a.path, b.path)
	})
	return dedupeCompressed(out), nil
}

// dedupeCompressed drops a rotated file's .gz twin while the plain file
// still exists (the API server compresses in the background).
func dedupeCompressed(cs []candidate) []candidate {
	plain := map[string]bool{}
	for _, c := range cs {
		if !c.gz {
			plain[c.path] = true
		}
	}
	out := cs[:0]
	for _, c := range cs {
		if c.gz && plain[strings.TrimSuffix(c.path, ".gz")] {
			continue
		}
		out = append(out, c)
	}
	return out
}

func (s fileSet) activeCandidate() candidate {
	return candidate{path: s.path, active: true}
}

// openContent opens a file's content: plain, or decompressed for .gz.
func openContent(c candidate) (io.ReadCloser, error) {
	f, err := os.Open(c.path)
	if err != nil {
		return nil, err
	}
	if !c.gz {
		return f, nil
	}
	zr, err := gzip.NewReader(bufio.NewReader(f))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open %s: %w", c.path, err)
	}
	return gzReadCloser{zr, f}, nil
}

type gzReadCloser struct {
	*gzip.Reader
	f *os.File
}

func (g gzReadCloser) Close() error {
	zerr := g.Reader.Close()
	if err := g.f.Close(); err != nil {
		return err
	}
	return zerr
}

// readPrefix returns up to n first content bytes of c.
func readPrefix(c candidate, n int) ([]byte, error) {
	r, err := openContent(c)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	buf := make([]byte, n)
	k, err := io.ReadFull(r, buf)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("read start of %s: %w", c.path, err)
	}
	return buf[:k], nil
}

// fingerprint is the identity stored in a checkpoint.
func fingerprint(prefix []byte) string {
	sum := sha256.Sum256(prefix)
	return hex.EncodeToString(sum[:])
}

// findByPrefix returns the index of the newest candidate whose content
// starts with the bytes that hash to fp (fpLen of them), or -1. stale
// tells that a candidate vanished while looking (compressed or deleted
// since the listing): the answer may be wrong and the caller lists again.
func findByPrefix(cs []candidate, fp string, fpLen int) (i int, stale bool) {
	if fpLen <= 0 {
		return -1, false
	}
	for i := len(cs) - 1; i >= 0; i-- {
		p, err := readPrefix(cs[i], fpLen)
		if isNotExist(err) && !cs[i].active {
			stale = true
		}
		if err != nil || len(p) != fpLen {
			continue // shorter or unreadable: not it
		}
		if fingerprint(p) == fp {
			return i, false
		}
	}
	return -1, stale
}

// hasPrefix reports whether the file at path still starts with prefix.
func hasPrefix(f *os.File, prefix []byte) (bool, error) {
	if len(prefix) == 0 {
		return true, nil
	}
	buf := make([]byte, len(prefix))
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("read start of %s: %w", f.Name(), err)
	}
	return bytes.Equal(buf[:n], prefix), nil
}

// lineStartAtOrBefore returns the start of the line that contains offset
// size-1's successor, i.e. the offset just after the last '\n' before size,
// and how many lines precede it.
func lineStartAtOrBefore(f *os.File, size int64) (offset, lines int64, err error) {
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, size), 256<<10)
	var pos int64
	for {
		chunk, err := r.ReadSlice('\n')
		pos += int64(len(chunk))
		if len(chunk) > 0 && chunk[len(chunk)-1] == '\n' {
			offset, lines = pos, lines+1
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return offset, lines, nil
		default:
			return 0, 0, fmt.Errorf("count lines of %s: %w", f.Name(), err)
		}
	}
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
