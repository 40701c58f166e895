// Package testfluent runs a real Fluent Forward receiver for tests: the
// OpenTelemetry Collector's fluentforward receiver, built from the nested
// module test/fluentrecv by scripts/fluentrecv-build.sh. Each record the
// receiver accepts (and, for a chunk with an ack request, before it
// answers) is read back here with its tag, time and fields. Nothing here is
// a mock: the receiver is someone else's implementation of the protocol's
// server side, in its own process, that a test can SIGKILL and restart.
package testfluent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Environment variables the harness reads.
const (
	// EnvBin names the receiver binary (what fluentrecv-build.sh prints).
	EnvBin = "FAULTLINE_FLUENTRECV_BIN"
	// EnvRequire=1 turns a missing receiver into a test failure.
	EnvRequire = "FAULTLINE_REQUIRE_FLUENTRECV"
)

// ErrUnavailable means the receiver binary was not built.
var ErrUnavailable = errors.New("no Fluent Forward receiver for tests: run scripts/fluentrecv-build.sh (and export FAULTLINE_FLUENTRECV_BIN=\"$(scripts/fluentrecv-build.sh | tail -n1)\")")

// Find returns the receiver binary: $FAULTLINE_FLUENTRECV_BIN when set,
// else the newest build in the cache fluentrecv-build.sh writes. The error
// wraps ErrUnavailable when there is none.
func Find() (string, error) {
	if p := os.Getenv(EnvBin); p != "" {
		if err := executable(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvBin, p, err)
		}
		return p, nil
	}
	cache := os.Getenv("FAULTLINE_CACHE_DIR")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
			}
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "faultline")
	}
	matches, _ := filepath.Glob(filepath.Join(cache, "fluentrecv", "*", "fluentrecv"))
	var best string
	var bestTime time.Time
	for _, m := range matches {
		fi, err := os.Stat(m)
		if err != nil || executable(m) != nil {
			continue
		}
		if best == "" || fi.ModTime().After(bestTime) {
			best, bestTime = m, fi.ModTime()
		}
	}
	if best == "" {
		return "", ErrUnavailable
	}
	return best, nil
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%w: %s is not an executable file", ErrUnavailable, p)
	}
	return nil
}

// Options configure a receiver.
type Options struct {
	// Listen is host:port or unix:///path; default a free port on
	// 127.0.0.1.
	Listen string
	// TLSCertFile and TLSKeyFile, when set, add a TLS listener on a free
	// port (TLSAddr) relayed to the receiver.
	TLSCertFile, TLSKeyFile string
}

// Record is one record the receiver accepted.
type Record struct {
	Tag string `json:"tag"`
	// Time is the record's event time as the receiver decoded it.
	Time         time.Time `json:"time"`
	TimeUnixNano int64     `json:"time_unix_nano"`
	// Body is the record's "message" (or "log") member: the receiver keeps
	// it apart from the other members, which are the Attributes.
	Body       any            `json:"body"`
	Attributes map[string]any `json:"attributes"`
	// Start counts the receiver's starts: 1 for records the first process
	// accepted, 2 after the first restart, and so on.
	Start int `json:"-"`
}

// Field returns the attribute at a dotted path ("envelope.id").
func (r Record) Field(path string) any {
	var v any = r.Attributes
	for part := range strings.SplitSeq(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[part]
	}
	return v
}

// Receiver is a running receiver process.
type Receiver struct {
	// Listen is where it accepts the forward protocol; TLSAddr where it
	// accepts TLS, when configured.
	Listen  string
	TLSAddr string

	bin  string
	opts Options
	t    testing.TB

	mu      sync.Mutex
	records []Record
	changed chan struct{} // closed and replaced when records grow
	starts  int
	proc    *process
	stderr  []string // the receiver's last lines on stderr
}

type process struct {
	cmd    *exec.Cmd
	done   chan struct{} // closed when the process has exited and its output is read
	err    error
	outEOF chan struct{}
}

// Start starts a receiver for the test t and stops it at t's cleanup.
// When the binary is missing it skips the test, or fails it when
// FAULTLINE_REQUIRE_FLUENTRECV=1.
func Start(t testing.TB, o Options) *Receiver {
	t.Helper()
	bin, err := Find()
	if err != nil {
		if errors.Is(err, ErrUnavailable) && os.Getenv(EnvRequire) != "1" {
			t.Skipf("%v (set %s=1 to fail instead)", err, EnvRequire)
		}
		t.Fatal(err)
	}
	r := &Receiver{bin: bin, opts: o, t: t, changed: make(chan struct{}), Listen: o.Listen}
	if r.Listen == "" {
		r.Listen = FreeAddr(t)
	}
	if o.TLSCertFile != "" {
		r.TLSAddr = FreeAddr(t)
	}
	t.Cleanup(r.Stop)
	r.Restart()
	return r
}

// FreeAddr returns a 127.0.0.1 address whose TCP and UDP ports are both
// free now (the receiver also answers heartbeats over UDP on its port).
func FreeAddr(t testing.TB) string {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		_ = ln.Close()
		if err != nil {
			continue
		}
		_ = pc.Close()
		return addr
	}
	t.Fatal("no free TCP and UDP port pair on 127.0.0.1")
	return ""
}

// Restart starts the receiver process again on the same addresses (the
// first start, too). It returns once the receiver listens.
func (r *Receiver) Restart() {
	r.t.Helper()
	r.mu.Lock()
	if r.proc != nil {
		select {
		case <-r.proc.done:
		default:
			r.mu.Unlock()
			r.t.Fatal("testfluent: Restart while the receiver runs; Kill or Stop it first")
			return
		}
	}
	r.starts++
	start := r.starts
	r.mu.Unlock()

	if path, ok := strings.CutPrefix(r.Listen, "unix://"); ok {
		// A killed receiver leaves its socket file behind.
		_ = os.Remove(path)
	}
	args := []string{"-listen", r.Listen}
	if r.TLSAddr != "" {
		args = append(args, "-tls-listen", r.TLSAddr, "-tls-cert", r.opts.TLSCertFile, "-tls-key", r.opts.TLSKeyFile)
	}
	if os.Getenv("FAULTLINE_TEST_LOG") == "debug" {
		args = append(args, "-v")
	}
	cmd := exec.Command(r.bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	setPdeathsig(cmd.SysProcAttr)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		r.t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("testfluent: start %s: %v", r.bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), outEOF: make(chan struct{})}
	ready := make(chan struct{})
	wantReady := 1
	if r.TLSAddr != "" {
		wantReady = 2
	}
	var errEOF = make(chan struct{})
	go r.readStderr(stderr, ready, wantReady, errEOF)
	go r.readRecords(stdout, start, p.outEOF)
	go func() {
		<-p.outEOF
		<-errEOF
		p.err = cmd.Wait()
		close(p.done)
	}()
	r.mu.Lock()
	r.proc = p
	r.mu.Unlock()

	select {
	case <-ready:
	case <-p.done:
		r.t.Fatalf("testfluent: the receiver exited at start (%v):\n%s", p.err, r.lastStderr())
	case <-time.After(30 * time.Second):
		r.t.Fatalf("testfluent: the receiver did not listen within 30s:\n%s", r.lastStderr())
	}
}

func (r *Receiver) readStderr(rd io.Reader, ready chan struct{}, want int, eof chan struct{}) {
	defer close(eof)
	debug := os.Getenv("FAULTLINE_TEST_LOG") == "debug"
	sc := bufio.NewScanner(rd)
	seen := 0
	for sc.Scan() {
		line := sc.Text()
		if debug {
			fmt.Fprintln(os.Stderr, "fluentrecv:", line)
		}
		r.mu.Lock()
		r.stderr = append(r.stderr, line)
		if len(r.stderr) > 50 {
			r.stderr = r.stderr[len(r.stderr)-50:]
		}
		r.mu.Unlock()
		if strings.HasPrefix(line, "fluentrecv: ") && strings.Contains(line, "listening on ") {
			if seen++; seen == want {
				close(ready)
			}
		}
	}
}

func (r *Receiver) readRecords(rd io.Reader, start int, eof chan struct{}) {
	defer close(eof)
	sc := bufio.NewScanner(rd)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var rec Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			r.mu.Lock()
			r.stderr = append(r.stderr, "undecodable record line: "+err.Error())
			r.mu.Unlock()
			continue
		}
		rec.Start = start
		r.mu.Lock()
		r.records = append(r.records, rec)
		close(r.changed)
		r.changed = make(chan struct{})
		r.mu.Unlock()
	}
}

func (r *Receiver) lastStderr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.stderr, "\n")
}

// Kill sends SIGKILL and waits until the process is gone and everything it
// wrote has been read.
func (r *Receiver) Kill() {
	r.t.Helper()
	r.signal(syscall.SIGKILL)
}

// Pause stops the receiver process (SIGSTOP) without closing anything: the
// kernel still accepts connections and buffers what clients write, but
// nothing is read or answered until Resume: a hung receiver.
func (r *Receiver) Pause() {
	r.t.Helper()
	r.sendSignal(syscall.SIGSTOP)
}

// Resume continues a paused receiver (SIGCONT).
func (r *Receiver) Resume() {
	r.t.Helper()
	r.sendSignal(syscall.SIGCONT)
}

func (r *Receiver) sendSignal(sig syscall.Signal) {
	r.t.Helper()
	r.mu.Lock()
	p := r.proc
	r.mu.Unlock()
	if p == nil {
		r.t.Fatal("testfluent: no receiver process")
		return
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		r.t.Fatalf("testfluent: %v: %v", sig, err)
	}
}

// Stop ends the receiver with SIGTERM (SIGKILL after 10 s) and waits.
// Stopping a stopped receiver does nothing.
func (r *Receiver) Stop() { r.signal(syscall.SIGTERM) }

func (r *Receiver) signal(sig syscall.Signal) {
	r.mu.Lock()
	p := r.proc
	r.mu.Unlock()
	if p == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	// A paused receiver acts on SIGTERM only once continued.
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Records returns a copy of every record received so far, in arrival
// order.
func (r *Receiver) Records() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Record(nil), r.records...)
}

// Len is the number of records received so far.
func (r *Receiver) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.records)
}

// WaitFor waits until cond holds for the records received, failing the
// test after timeout with what and how many records came.
func (r *Receiver) WaitFor(timeout time.Duration, what string, cond func([]Record) bool) []Record {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		r.mu.Lock()
		recs := append([]Record(nil), r.records...)
		ch := r.changed
		r.mu.Unlock()
		if cond(recs) {
			return recs
		}
		select {
		case <-ch:
		case <-ctx.Done():
			r.t.Fatalf("testfluent: timed out after %s waiting for %s (%d records received)\nreceiver stderr:\n%s", timeout, what, len(recs), r.lastStderr())
			return nil
		}
	}
}

// CountByID counts the records of each value of the attribute at path
// (e.g. envelope.id), for at-least-once checks.
func CountByID(recs []Record, path string) map[string]int {
	out := map[string]int{}
	for _, rec := range recs {
		if id, ok := rec.Field(path).(string); ok {
			out[id]++
		}
	}
	return out
}

// Duplicates lists the ids received more than once, sorted, each with its
// count.
func Duplicates(counts map[string]int) []string {
	var out []string
	for id, n := range counts {
		if n > 1 {
			out = append(out, id+"×"+strconv.Itoa(n))
		}
	}
	sort.Strings(out)
	return out
}
