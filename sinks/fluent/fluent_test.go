package fluent

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/bus/bustest"
	"github.com/faultline/faultline/internal/testfluent"
	"github.com/faultline/faultline/internal/tlsutil"
	"github.com/faultline/faultline/schemas"
	"github.com/faultline/faultline/sinks"
)

// subSecond is an envelope time with nanoseconds, for the documents
// without an @timestamp.
var subSecond = time.Date(2026, 11, 22, 6, 25, 12, 987654321, time.UTC)

func readIn(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "in", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// everyKind is one document of each kind, with the tag it must arrive
// under.
func everyKind(t *testing.T) []published {
	return []published{
		{"fl-audit", bus.AuditSubject("test"), schemas.TypeAudit, readIn(t, "audit.json"), subSecond},
		{"fl-kevent", bus.KubeEventSubject("test", "payments"), schemas.TypeKubeEvent, readIn(t, "kevent.json"), subSecond},
		{"fl-finding", bus.FindingSubject("test", "rules"), schemas.TypeFinding, readIn(t, "finding.json"), subSecond},
		{"fl-deviation", bus.DeviationSubject("test", "run-1"), schemas.TypeDeviation, readIn(t, "deviation.json"), subSecond},
		{"fl-report", bus.ExperimentReportSubject("test", "run-1"), sinks.TypeExperimentReport, readIn(t, "report.json"), subSecond},
		{"fl-status", bus.FaultStatusSubject("test", "run-1"), schemas.TypeFaultStatus, readIn(t, "fault-status.json"), subSecond},
	}
}

// recordFields is what the receiver holds of a record: its attributes,
// with the body back under "message" (the receiver keeps a record's
// message member apart as the log body).
func recordFields(r testfluent.Record) map[string]any {
	out := map[string]any{}
	for k, v := range r.Attributes {
		out[k] = v
	}
	if r.Body != nil {
		out["message"] = r.Body
	}
	return out
}

func servingCert(t *testing.T) (dir string) {
	t.Helper()
	dir = t.TempDir()
	ca, err := tlsutil.NewCA("faultline test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ca.Serving([]string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlsutil.WriteFiles(filepath.Join(dir, "tls.crt"), p.CertPEM, filepath.Join(dir, "tls.key"), p.KeyPEM, false); err != nil {
		t.Fatal(err)
	}
	if err := tlsutil.WriteFile(filepath.Join(dir, "ca.crt"), ca.CertPEM, 0o644, false); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Every kind of document goes from the bus to the real receiver, over TCP,
// a unix socket and TLS: under its tag, with every member of the document
// and the envelope, at the document's @timestamp (else the envelope's
// time) to the nanosecond; with time_as_integer, to the second.
func TestForwardEveryKind(t *testing.T) {
	certs := servingCert(t)
	for _, tc := range []struct {
		name       string
		opts       func(t *testing.T) testfluent.Options
		address    func(r *testfluent.Receiver) string
		tls        bool
		asInteger  bool
		tagPrefix  string
		envelope   string
		wantPrefix string
	}{
		{name: "tcp", opts: func(*testing.T) testfluent.Options { return testfluent.Options{} },
			address: func(r *testfluent.Receiver) string { return r.Listen }, tagPrefix: "faultline", envelope: "envelope", wantPrefix: "faultline."},
		{name: "unix socket, time as integer, own tag prefix", opts: func(t *testing.T) testfluent.Options {
			return testfluent.Options{Listen: "unix://" + filepath.Join(t.TempDir(), "fluent.sock")}
		}, address: func(r *testfluent.Receiver) string { return r.Listen }, asInteger: true, tagPrefix: "prod.eu-1", envelope: "envelope", wantPrefix: "prod.eu-1."},
		{name: "tls, no envelope, no prefix", opts: func(*testing.T) testfluent.Options {
			return testfluent.Options{TLSCertFile: filepath.Join(certs, "tls.crt"), TLSKeyFile: filepath.Join(certs, "tls.key")}
		}, address: func(r *testfluent.Receiver) string { return r.TLSAddr }, tls: true, wantPrefix: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recv := testfluent.Start(t, tc.opts(t))
			b, _ := bustest.Start(t)
			reg := prometheus.NewRegistry()
			cfg := testConfig(tc.address(recv))
			cfg.Documents = sinks.Kinds()
			cfg.TLS, cfg.TLSInsecureSkipVerify = tc.tls, tc.tls
			cfg.TimeAsInteger = tc.asInteger
			cfg.TagPrefix, cfg.EnvelopeKey = tc.tagPrefix, tc.envelope
			var lb logBuffer
			runForwarder(t, b, cfg, reg, lb.logger())
			docs := everyKind(t)
			for _, d := range docs {
				publish(t, b, d)
			}
			recv.WaitFor(30*time.Second, "a record of every kind", func(rs []testfluent.Record) bool { return len(rs) >= len(docs) })
			bustest.WaitFor(t, 10*time.Second, "every document acknowledged", func() bool { return sinkDocs(t, reg, "stored") == float64(len(docs)) })

			byTag := map[string]testfluent.Record{}
			for _, r := range recv.Records() {
				if _, dup := byTag[r.Tag]; dup {
					t.Errorf("two records tagged %s", r.Tag)
				}
				byTag[r.Tag] = r
			}
			for _, d := range docs {
				kind, _ := sinks.KindOf(d.typ)
				tag := tc.wantPrefix + kind
				r, ok := byTag[tag]
				if !ok {
					t.Errorf("no record tagged %q (got %v)", tag, keys(byTag))
					continue
				}
				var want map[string]any
				if err := json.Unmarshal(d.body, &want); err != nil {
					t.Fatal(err)
				}
				if tc.envelope != "" {
					want[tc.envelope] = map[string]any{"id": d.id, "type": d.typ, "subject": "test", "cluster": "test", "time": d.time.Format(time.RFC3339Nano)}
				}
				if got := recordFields(r); !reflect.DeepEqual(got, want) {
					gj, _ := json.Marshal(got)
					wj, _ := json.Marshal(want)
					t.Errorf("%s: record differs\n got %s\nwant %s", tag, gj, wj)
				}
				wantTime := d.time
				if kind == KindFinding {
					wantTime = time.Date(2025, 6, 3, 10, 15, 42, 178901000, time.UTC) // its @timestamp
				}
				if tc.asInteger {
					wantTime = wantTime.Truncate(time.Second)
				}
				if !r.Time.Equal(wantTime) {
					t.Errorf("%s: time %s, want %s", tag, r.Time.Format(time.RFC3339Nano), wantTime.Format(time.RFC3339Nano))
				}
			}
			if n := records(t, reg, resultDelivered); n != float64(len(docs)) {
				t.Errorf("%v records counted delivered, want %d", n, len(docs))
			}
			if g := metric(t, reg, "faultline_fluent_buffer_records", nil); g != 0 {
				t.Errorf("buffer gauge %v after every result", g)
			}
		})
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// The receiver is SIGKILLed while findings flow and started again on the
// same port: every finding arrives (at least once; duplicates are
// counted), the sink reconnects by itself, and the metrics show the
// failures meanwhile.
func TestReceiverKilledAndRestarted(t *testing.T) {
	recv := testfluent.Start(t, testfluent.Options{})
	b, _ := bustest.Start(t)
	reg := prometheus.NewRegistry()
	cfg := testConfig(recv.Listen)
	cfg.BatchSize = 20
	var lb logBuffer
	runForwarder(t, b, cfg, reg, lb.logger())

	const n = 800
	var sent atomic.Int64
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		tick := time.NewTicker(4 * time.Millisecond) // ~250 findings/s: the flow goes on across the outage
		defer tick.Stop()
		for i := range n {
			<-tick.C
			publish(t, b, finding(t, i))
			sent.Add(1)
		}
	}()
	t.Cleanup(func() { <-pubDone })

	recv.WaitFor(30*time.Second, "100 findings before the kill", func(rs []testfluent.Record) bool { return len(rs) >= 100 })
	recv.Kill()
	atKill := sent.Load()
	killedAt := time.Now()
	bustest.WaitFor(t, 30*time.Second, "the sink to notice the dead receiver", func() bool {
		return metric(t, reg, "faultline_fluent_send_failures_total", nil) > 0
	})
	bustest.WaitFor(t, 30*time.Second, "250 more findings published while the receiver is down", func() bool { return sent.Load() >= atKill+250 })
	down := time.Since(killedAt)
	recv.Restart()
	<-pubDone

	want := map[string]bool{}
	for i := range n {
		want[finding(t, i).id] = true
	}
	recs := recv.WaitFor(60*time.Second, "every finding", func(rs []testfluent.Record) bool {
		got := testfluent.CountByID(rs, "envelope.id")
		for id := range want {
			if got[id] == 0 {
				return false
			}
		}
		return true
	})
	counts := testfluent.CountByID(recs, "envelope.id")
	dups := testfluent.Duplicates(counts)
	afterRestart := 0
	for _, r := range recs {
		if r.Tag != "faultline.finding" {
			t.Errorf("record tagged %q", r.Tag)
		}
		if r.Start == 2 {
			afterRestart++
		}
	}
	if afterRestart == 0 {
		t.Error("no record reached the restarted receiver")
	}
	bustest.WaitFor(t, 30*time.Second, "every finding acknowledged", func() bool { return sinkDocs(t, reg, "stored") >= n })
	failed := records(t, reg, resultFailed)
	failures := metric(t, reg, "faultline_fluent_send_failures_total", nil)
	retries := sinkDocs(t, reg, "retry")
	if failed == 0 || failures == 0 || retries == 0 {
		t.Errorf("the outage is not in the metrics: %v failed records, %v send failures, %v retries", failed, failures, retries)
	}
	if lb.Count("gave up on a record") == 0 {
		t.Error("no warning about the failed records")
	}
	t.Logf("%d findings, receiver down %s: %d records received (%d by the restarted receiver), %d ids more than once %v; %v records failed and retried (send failures by reason: connect %v, send %v)",
		n, down.Round(time.Millisecond), len(recs), afterRestart, len(dups), dups, failed,
		metric(t, reg, "faultline_fluent_send_failures_total", map[string]string{"reason": "connect"}),
		metric(t, reg, "faultline_fluent_send_failures_total", map[string]string{"reason": "send"}))
}

// With the receiver down and a small buffer, a batch bigger than the
// buffer overflows: the records not taken are counted, the log says so
// (rate-limited), nothing is acknowledged, and the runner keeps going;
// once a receiver listens, every finding arrives.
func TestBufferOverflow(t *testing.T) {
	addr := testfluent.FreeAddr(t) // nothing listens here yet
	b, _ := bustest.Start(t)
	reg := prometheus.NewRegistry()
	cfg := testConfig(addr)
	cfg.BufferLimit = 4
	cfg.BatchSize = 50
	cfg.FlushInterval = 200 * time.Millisecond
	// Each record takes the client about a second to give up on, so the
	// buffer stays full while the batch is handed over.
	cfg.MaxRetry = 3
	cfg.RetryWait = 400 * time.Millisecond
	cfg.MaxRetryWait = 400 * time.Millisecond
	cfg.Backoff = []time.Duration{300 * time.Millisecond}
	const n = 50
	for i := range n {
		publish(t, b, finding(t, i))
	}
	var lb logBuffer
	f := runForwarder(t, b, cfg, reg, lb.logger())

	bustest.WaitFor(t, 30*time.Second, "an overflow, counted and logged", func() bool {
		return records(t, reg, resultOverflow) > 0 && lb.Count("buffer is full") > 0
	})
	if !strings.Contains(lb.String(), "buffer_limit=4") {
		t.Errorf("the warning does not give the limit:\n%s", lb.String())
	}
	// The first batch: at most four taken, the rest refused at once and
	// left for redelivery; nothing acknowledged.
	bustest.WaitFor(t, 30*time.Second, "the first batch's results", func() bool { return sinkDocs(t, reg, "retry") >= n-4 })
	if over := records(t, reg, resultOverflow); over < n-4 {
		t.Errorf("%v records counted overflowing, want at least %d", over, n-4)
	}
	if stored := sinkDocs(t, reg, "stored"); stored != 0 {
		t.Errorf("%v documents acknowledged with no receiver", stored)
	}
	if g := metric(t, reg, "faultline_fluent_buffer_records", nil); g > 4 {
		t.Errorf("buffer gauge %v above the limit", g)
	}
	if l := metric(t, reg, "faultline_fluent_buffer_limit", nil); l != 4 {
		t.Errorf("buffer limit gauge %v", l)
	}
	// The pipeline goes on: redeliveries come back, overflow again, and
	// are counted; the warning stays rate-limited.
	first := records(t, reg, resultOverflow)
	bustest.WaitFor(t, 30*time.Second, "a redelivered batch overflowing again", func() bool { return records(t, reg, resultOverflow) > first })
	if c := lb.Count("buffer is full"); c > 2 {
		t.Errorf("%d overflow warnings within seconds: not rate-limited", c)
	}

	recv := testfluent.Start(t, testfluent.Options{Listen: addr})
	recs := recv.WaitFor(60*time.Second, "every finding once a receiver listens", func(rs []testfluent.Record) bool {
		return len(testfluent.CountByID(rs, "envelope.id")) == n
	})
	bustest.WaitFor(t, 30*time.Second, "every finding acknowledged", func() bool { return sinkDocs(t, reg, "stored") == n })
	t.Logf("%v records refused by the full buffer, %v given up by the client, %d received (%d duplicates)",
		records(t, reg, resultOverflow), records(t, reg, resultFailed), len(recs), len(testfluent.Duplicates(testfluent.CountByID(recs, "envelope.id"))))
	_ = f
}

// Delivery buffered acknowledges a document as soon as the client holds
// its record: the records the client still holds when the sink stops, or
// gives up on, are lost, and counted and logged as such.
func TestDeliveryBufferedLosesWhatTheBufferHolds(t *testing.T) {
	addr := testfluent.FreeAddr(t) // nothing listens
	cfg := testConfig(addr)
	cfg.Delivery = DeliveryBuffered
	cfg.MaxRetry = 3
	cfg.RetryWait = 300 * time.Millisecond
	cfg.MaxRetryWait = 300 * time.Millisecond
	reg := prometheus.NewRegistry()
	var lb logBuffer
	s, err := New(cfg, Options{Log: lb.logger(), Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	docs := make([]sinks.Document, 3)
	for i := range docs {
		p := finding(t, i)
		docs[i] = sinks.Document{ID: p.id, Type: p.typ, Subject: p.subject, Cluster: "test", Time: p.time, Body: p.body}
	}
	start := time.Now()
	for i, r := range s.Write(t.Context(), docs) {
		if r.Err != nil {
			t.Errorf("document %d: %v", i, r.Err)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("a buffered write took %s", d)
	}
	if n := records(t, reg, resultBuffered); n != 3 {
		t.Errorf("%v counted buffered", n)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if lost := records(t, reg, resultLost); lost != 3 {
		t.Errorf("%v records counted lost, want 3", lost)
	}
	if lb.Count("they are lost") == 0 && lb.Count("it is lost") == 0 {
		t.Errorf("no warning about the loss:\n%s", lb.String())
	}
	// A closed sink takes nothing.
	if r := s.Write(t.Context(), docs[:1]); r[0].Err == nil || !r[0].Retryable {
		t.Errorf("write after close: %+v", r[0])
	}
}

// Delivery written sends without asking the receiver for acks; records
// arrive all the same.
func TestDeliveryWritten(t *testing.T) {
	recv := testfluent.Start(t, testfluent.Options{})
	cfg := testConfig(recv.Listen)
	cfg.Delivery = DeliveryWritten
	reg := prometheus.NewRegistry()
	s, err := New(cfg, Options{Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	docs := make([]sinks.Document, 20)
	for i := range docs {
		p := finding(t, i)
		docs[i] = sinks.Document{ID: p.id, Type: p.typ, Subject: p.subject, Cluster: "test", Time: p.time, Body: p.body}
	}
	for i, r := range s.Write(t.Context(), docs) {
		if r.Err != nil {
			t.Fatalf("document %d: %v", i, r.Err)
		}
	}
	recv.WaitFor(30*time.Second, "20 records", func(rs []testfluent.Record) bool { return len(rs) == 20 })
	if n := records(t, reg, resultDelivered); n != 20 {
		t.Errorf("%v counted delivered", n)
	}
}

// TLS is verified: a receiver whose certificate the system does not trust
// gets nothing (the client's failures say connect); with the CA in
// SSL_CERT_FILE (read by Go at start, so in a child process) records
// arrive.
func TestTLSVerification(t *testing.T) {
	certs := servingCert(t)
	recv := testfluent.Start(t, testfluent.Options{TLSCertFile: filepath.Join(certs, "tls.crt"), TLSKeyFile: filepath.Join(certs, "tls.key")})

	cfg := testConfig(recv.TLSAddr)
	cfg.TLS = true
	cfg.MaxRetry = 1
	reg := prometheus.NewRegistry()
	s, err := New(cfg, Options{Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	p := finding(t, 1)
	res := s.Write(t.Context(), []sinks.Document{{ID: p.id, Type: p.typ, Cluster: "test", Time: p.time, Body: p.body}})
	if res[0].Err == nil || !res[0].Retryable {
		t.Fatalf("untrusted receiver: %+v", res[0])
	}
	if n := metric(t, reg, "faultline_fluent_send_failures_total", map[string]string{"reason": "connect"}); n != 1 {
		t.Errorf("%v connect failures counted", n)
	}
	if err := s.Probe(t.Context()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("probe of an untrusted receiver: %v", err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestTLSChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+filepath.Join(certs, "ca.crt"), "FAULTLINE_FLUENT_TLS_CHILD="+recv.TLSAddr)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestTLSChild") {
		t.Fatalf("child with the CA trusted: %v\n%s", err, out)
	}
	recs := recv.WaitFor(30*time.Second, "the child's records", func(rs []testfluent.Record) bool { return len(rs) == 3 })
	for _, r := range recs {
		if r.Tag != "faultline.finding" {
			t.Errorf("tag %q", r.Tag)
		}
	}
}

// TestTLSChild runs only as TestTLSVerification's child, with the test CA
// in SSL_CERT_FILE.
func TestTLSChild(t *testing.T) {
	addr := os.Getenv("FAULTLINE_FLUENT_TLS_CHILD")
	if addr == "" {
		t.Skip("run by TestTLSVerification")
	}
	cfg := testConfig(addr)
	cfg.TLS = true
	s, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Probe(t.Context()); err != nil {
		t.Fatal(err)
	}
	docs := make([]sinks.Document, 3)
	for i := range docs {
		p := finding(t, i)
		docs[i] = sinks.Document{ID: p.id, Type: p.typ, Cluster: "test", Time: p.time, Body: p.body}
	}
	for i, r := range s.Write(t.Context(), docs) {
		if r.Err != nil {
			t.Errorf("document %d: %v", i, r.Err)
		}
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// A document that cannot be a record goes to the dead letters with the
// reason; the others of its batch are forwarded.
func TestRejectedDocument(t *testing.T) {
	recv := testfluent.Start(t, testfluent.Options{})
	cfg := testConfig(recv.Listen)
	reg := prometheus.NewRegistry()
	s, err := New(cfg, Options{Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	good := finding(t, 1)
	res := s.Write(t.Context(), []sinks.Document{
		{ID: "bad", Type: schemas.TypeFinding, Time: subSecond, Body: []byte(`["not an object"]`)},
		{ID: good.id, Type: good.typ, Time: good.time, Body: good.body},
		{ID: "metric", Type: "io.faultline.metric.v1", Time: subSecond, Body: []byte(`{}`)},
	})
	if res[0].Err == nil || res[0].Retryable || !strings.Contains(res[0].Err.Error(), "not a JSON object") {
		t.Errorf("array document: %+v", res[0])
	}
	if res[1].Err != nil {
		t.Errorf("good document: %v", res[1].Err)
	}
	if res[2].Err == nil || res[2].Retryable {
		t.Errorf("metric document: %+v", res[2])
	}
	if n := records(t, reg, resultRejected); n != 2 {
		t.Errorf("%v counted rejected", n)
	}
	recv.WaitFor(10*time.Second, "the good record", func(rs []testfluent.Record) bool { return len(rs) == 1 })
}

// A receiver that hangs (SIGSTOP: connections accepted, nothing read or
// answered) does not block the pipeline silently: each batch ends by
// write_timeout with its records counted timed out or failed and left on
// the bus, the buffer stays within its limit, nothing is acknowledged; once
// the receiver continues, every finding arrives, some twice (records the
// client gave up on that the receiver read later).
func TestReceiverHangs(t *testing.T) {
	recv := testfluent.Start(t, testfluent.Options{})
	b, _ := bustest.Start(t)
	reg := prometheus.NewRegistry()
	cfg := testConfig(recv.Listen)
	cfg.BufferLimit = 8
	cfg.BatchSize = 10
	cfg.WriteTimeout = time.Second
	cfg.AckTimeout = 500 * time.Millisecond
	cfg.Backoff = []time.Duration{300 * time.Millisecond}
	var lb logBuffer
	runForwarder(t, b, cfg, reg, lb.logger())

	publish(t, b, finding(t, 0))
	recv.WaitFor(30*time.Second, "the first finding", func(rs []testfluent.Record) bool { return len(rs) == 1 })
	bustest.WaitFor(t, 10*time.Second, "the first finding acknowledged", func() bool { return sinkDocs(t, reg, "stored") == 1 })
	recv.Pause()
	paused := time.Now()
	const n = 30
	for i := 1; i < n; i++ {
		publish(t, b, finding(t, i))
	}
	bustest.WaitFor(t, 30*time.Second, "timed-out writes and refused records", func() bool {
		return records(t, reg, resultTimeout) > 0 && records(t, reg, resultOverflow) > 0
	})
	if stored := sinkDocs(t, reg, "stored"); stored != 1 {
		t.Errorf("%v documents acknowledged, want only the one before the hang", stored)
	}
	if g := metric(t, reg, "faultline_fluent_buffer_records", nil); g > 8 {
		t.Errorf("buffer gauge %v above its limit", g)
	}
	hung := time.Since(paused)
	recv.Resume()
	recs := recv.WaitFor(60*time.Second, "every finding after the receiver continues", func(rs []testfluent.Record) bool {
		return len(testfluent.CountByID(rs, "envelope.id")) == n
	})
	bustest.WaitFor(t, 30*time.Second, "every finding acknowledged", func() bool { return sinkDocs(t, reg, "stored") == n })
	dups := testfluent.Duplicates(testfluent.CountByID(recs, "envelope.id"))
	t.Logf("receiver hung %s: %v records timed out, %v failed, %v refused by the full buffer; %d received, %d ids more than once",
		hung.Round(time.Millisecond), records(t, reg, resultTimeout), records(t, reg, resultFailed), records(t, reg, resultOverflow), len(recs), len(dups))
}
