package auditfile

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/bus/bustest"
	"github.com/faultline/faultline/collectors"
	"github.com/faultline/faultline/collectors/collectortest"
	"github.com/faultline/faultline/schemas"
)

const testCluster = "test"

// auditLine is one audit event as the API server writes it, with a newline.
func auditLine(auditID string) string {
	return fmt.Sprintf(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":%q,"stage":"ResponseComplete",`+
		`"requestURI":"/api/v1/namespaces/shop/pods/web-1","verb":"get","user":{"username":"alice","groups":["system:authenticated"]},`+
		`"sourceIPs":["10.0.0.1"],"userAgent":"kubectl/v1.33.0","objectRef":{"resource":"pods","namespace":"shop","name":"web-1","apiVersion":"v1"},`+
		`"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"2026-11-22T05:30:00.000000Z","stageTimestamp":"2026-11-22T05:30:00.002000Z"}`+"\n", auditID)
}

// idOf is the bus id of auditLine(auditID).
func idOf(auditID string) string { return schemas.AuditEventID(auditID, "ResponseComplete") }

// ids returns n audit IDs with a prefix, e.g. a-0001.
func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%04d", prefix, i)
	}
	return out
}

func appendLines(t testing.TB, path string, auditIDs []string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, id := range auditIDs {
		if _, err := f.WriteString(auditLine(id)); err != nil {
			t.Fatal(err)
		}
	}
}

func appendRaw(t testing.TB, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// rotatedName is the API server's name for path rotated at ts.
func rotatedName(path string, ts time.Time) string {
	dir, base := filepath.Split(path)
	ext := filepath.Ext(base)
	return filepath.Join(dir, strings.TrimSuffix(base, ext)+"-"+ts.UTC().Format(kubeTimeLayout)+ext)
}

// renameRotate rotates like the API server: rename, then create anew.
func renameRotate(t testing.TB, path string, ts time.Time) string {
	t.Helper()
	to := rotatedName(path, ts)
	if err := os.Rename(path, to); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	return to
}

// copyTruncate rotates like logrotate's copytruncate: copy to path.1,
// truncate in place.
func copyTruncate(t testing.TB, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".1", data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
}

// gzipFile compresses path to path.gz and removes path, like the API
// server's --audit-log-compress.
func gzipFile(t testing.TB, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".gz", buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

// testConfig follows path with short intervals.
func testConfig(path string) Config {
	cfg := DefaultConfig()
	cfg.Enabled = true
	cfg.Path = path
	cfg.PollInterval = 10 * time.Millisecond
	cfg.CheckpointKey = "audit-file.test"
	return cfg
}

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// running is a collector running in the background.
type running struct {
	c    *Collector
	logs *logBuffer
	stop func() error
}

// start runs a collector until stop (or the end of the test).
func start(t *testing.T, b *bus.Bus, cfg Config) *running {
	t.Helper()
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(logs, testWriter{t}), &slog.HandlerOptions{Level: slog.LevelInfo}))
	c, err := New(cfg, collectors.Deps{Bus: b, Cluster: testCluster, Log: log})
	if err != nil {
		t.Fatalf("new collector: %v", err)
	}
	stop := collectortest.Run(t, c)
	return &running{c: c, logs: logs, stop: stop}
}

// testWriter sends log lines to t.Log when -v asks for them.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// streamIDs returns the Nats-Msg-Id of every message of stream, in order.
func streamIDs(t testing.TB, b *bus.Bus, stream string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := b.JetStream().Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream %s info: %v", stream, err)
	}
	var out []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("stream %s message %d: %v", stream, seq, err)
		}
		out = append(out, m.Header.Get(jetstream.MsgIDHeader))
	}
	return out
}

// streamCount is the number of messages in stream.
func streamCount(t testing.TB, b *bus.Bus, stream string) int {
	t.Helper()
	s, err := b.JetStream().Stream(context.Background(), stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatalf("stream %s info: %v", stream, err)
	}
	return int(info.State.Msgs)
}

// waitForCount waits until the audit stream holds n messages.
func waitForCount(t testing.TB, b *bus.Bus, n int) {
	t.Helper()
	bustest.WaitFor(t, 30*time.Second, fmt.Sprintf("%d messages on %s", n, bus.StreamAudit), func() bool {
		return streamCount(t, b, bus.StreamAudit) >= n
	})
}

// checkExactlyOnce checks that the stream holds exactly the ids of
// auditIDs, each once, in that order.
func checkExactlyOnce(t testing.TB, b *bus.Bus, auditIDs []string) {
	t.Helper()
	got := streamIDs(t, b, bus.StreamAudit)
	want := make([]string, len(auditIDs))
	for i, id := range auditIDs {
		want[i] = idOf(id)
	}
	if len(got) != len(want) {
		t.Fatalf("stream holds %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("message %d is %s, want %s", i, got[i], want[i])
		}
	}
}

// value reads a counter or gauge.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return -1
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// published and duplicates read the collector's counters.
func (r *running) published() float64  { return value(r.c.m.published) }
func (r *running) duplicates() float64 { return value(r.c.m.duplicates) }
func (r *running) rejected(reason string) float64 {
	return value(r.c.m.rejected.WithLabelValues(reason))
}
