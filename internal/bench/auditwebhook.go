package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/collectors"
	"github.com/faultline/faultline/collectors/auditwebhook"
	"github.com/faultline/faultline/internal/tlsutil"
	"github.com/faultline/faultline/schemas"
)

// AuditWebhookOptions configures `faultline bench audit-webhook`.
type AuditWebhookOptions struct {
	// Events per round and path.
	Events int
	// BatchSize is the events per request (the API server's default
	// --audit-webhook-batch-max-size is 400).
	BatchSize int
	// Senders post concurrently over one HTTP/2 connection, as the API
	// server's batch backend does.
	Senders int
	// Inflight bounds publishes waiting for acknowledgement (both paths).
	Inflight int
	Rounds   int
	// Fixture is an EventList of recorded audit events.
	Fixture   string
	DataDir   string // empty: a temp dir
	InProcess bool   // connect in-process instead of over loopback TCP
	// CPUProfile, when set, receives a CPU profile of the webhook rounds.
	CPUProfile io.Writer
	Out        io.Writer
	Logger     *slog.Logger
}

// WebhookRound is one measured round of one path.
type WebhookRound struct {
	Path      string  `json:"path"`
	Round     int     `json:"round"`
	Events    int     `json:"events"`
	Seconds   float64 `json:"seconds"`
	EventsPS  float64 `json:"events_per_s"`
	MBPS      float64 `json:"mb_per_s"`
	P50Millis float64 `json:"p50_request_ms,omitempty"`
	P99Millis float64 `json:"p99_request_ms,omitempty"`
	// CPUMicrosPerEvent is the CPU time of the whole process (NATS server,
	// receiver, senders) per event: steadier than the rate on a busy
	// machine.
	CPUMicrosPerEvent float64 `json:"cpu_us_per_event,omitempty"`
}

// AuditWebhookReport is the outcome of a run.
type AuditWebhookReport struct {
	Rounds []WebhookRound `json:"rounds"`
	// EventBytes is the mean size of a recorded event as posted.
	EventBytes    int     `json:"event_bytes"`
	RequestBytes  int     `json:"request_bytes"`
	WebhookMedian float64 `json:"webhook_median_events_per_s"`
	BareMedian    float64 `json:"bare_median_msgs_per_s"`
	Ratio         float64 `json:"ratio"`
	// P99Millis is the 99th percentile request latency over every webhook
	// round.
	P50Millis float64 `json:"p50_request_ms"`
	P99Millis float64 `json:"p99_request_ms"`
}

const benchCluster = "bench"

// AuditWebhook runs the audit webhook benchmark: an embedded NATS server
// with JetStream on file storage, the receiver on HTTPS with a bearer token,
// senders posting EventLists of recorded events (each event with a fresh
// auditID, so every one is stored), and in alternating rounds the bare
// nats.go PublishAsync loop publishing the same event bytes to the same
// stream. Every round must store exactly its events.
func AuditWebhook(ctx context.Context, o AuditWebhookOptions) (*AuditWebhookReport, error) {
	const op = "bench audit-webhook"
	if o.Events <= 0 || o.BatchSize <= 0 || o.Senders <= 0 || o.Inflight <= 0 || o.Rounds <= 0 {
		return nil, fmt.Errorf("%s: events, batch, senders, inflight and rounds must be positive", op)
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	items, err := loadFixture(o.Fixture)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	tmp, err := os.MkdirTemp("", "faultline-bench-webhook")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer os.RemoveAll(tmp)
	dir := o.DataDir
	if dir == "" {
		dir = filepath.Join(tmp, "data")
	}
	listen := "127.0.0.1:0"
	if o.InProcess {
		listen = ""
	}
	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: dir, Listen: listen, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer srv.Shutdown()
	bopts := bus.Options{Name: "bench-webhook", MaxInflight: o.Inflight, AckTimeout: 30 * time.Second, Logger: logger}
	natsOpts := []nats.Option{nats.Name("bench-bare")}
	if o.InProcess {
		bopts.Embedded = srv
		natsOpts = append(natsOpts, nats.InProcessServer(srv.Server()))
	} else {
		bopts.URLs = []string{srv.ClientURL()}
	}
	b, err := bus.Connect(ctx, bopts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer b.Close(context.Background())
	if err := b.EnsureStreams(ctx, bus.Layout()); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	nc, err := nats.Connect(srv.ClientURL(), natsOpts...)
	if err != nil {
		return nil, fmt.Errorf("%s: bare connect: %w", op, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(o.Inflight))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	stream, err := js.Stream(ctx, bus.StreamAudit)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}

	// The receiver, with certificates and a token of its own.
	ca, err := tlsutil.NewCA("faultline-bench-ca", time.Hour)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	serving, err := ca.Serving([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	cfg := auditwebhook.DefaultConfig()
	cfg.Enabled = true
	cfg.Listen = "127.0.0.1:0"
	cfg.TLSCertFile, cfg.TLSKeyFile = filepath.Join(tmp, "tls.crt"), filepath.Join(tmp, "tls.key")
	cfg.TokenFile = filepath.Join(tmp, "token")
	cfg.PublishTimeout = 30 * time.Second
	cfg.MaxConcurrentRequests = o.Senders
	const token = "bench-token"
	if err := tlsutil.WriteFiles(cfg.TLSCertFile, serving.CertPEM, cfg.TLSKeyFile, serving.KeyPEM, true); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := os.WriteFile(cfg.TokenFile, []byte(token+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	recv, err := auditwebhook.New(collectors.Deps{Bus: b, Cluster: benchCluster, Log: logger}, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	rctx, stopRecv := context.WithCancel(context.WithoutCancel(ctx))
	recvDone := make(chan error, 1)
	go func() { recvDone <- recv.Run(rctx) }()
	defer func() {
		stopRecv()
		<-recvDone
	}()
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ca.CertPool(), MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
	}}
	defer client.CloseIdleConnections()

	tpl := newBodyTemplate(items, o.BatchSize)
	rep := &AuditWebhookReport{EventBytes: tpl.eventBytes, RequestBytes: len(tpl.body)}
	var hooks, bares []float64
	var latencies []time.Duration
	for r := 1; r <= o.Rounds; r++ {
		for _, path := range []string{"bare nats.go", "audit webhook"} {
			if err := stream.Purge(ctx); err != nil {
				return nil, fmt.Errorf("%s: purge: %w", op, err)
			}
			res := WebhookRound{Path: path, Round: r, Events: o.Events}
			cpu0 := processCPU()
			start := time.Now()
			var bytesSent int64
			if path == "bare nats.go" {
				bytesSent, err = bareEvents(ctx, js, tpl, r, o.Events)
			} else {
				var lat []time.Duration
				if o.CPUProfile != nil {
					if err := pprof.StartCPUProfile(o.CPUProfile); err == nil {
						defer pprof.StopCPUProfile()
					}
				}
				lat, bytesSent, err = postEvents(ctx, client, recv.URL(), token, tpl, r, o.Events, o.Senders)
				if o.CPUProfile != nil {
					pprof.StopCPUProfile()
					o.CPUProfile = nil // the first webhook round only
				}
				latencies = append(latencies, lat...)
				res.P50Millis, res.P99Millis = percentileMillis(lat, 0.50), percentileMillis(lat, 0.99)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %s round %d: %w", op, path, r, err)
			}
			res.Seconds = time.Since(start).Seconds()
			if cpu := processCPU() - cpu0; cpu > 0 {
				res.CPUMicrosPerEvent = float64(cpu.Microseconds()) / float64(o.Events)
			}
			info, err := stream.Info(ctx)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", op, err)
			}
			if info.State.Msgs != uint64(o.Events) {
				return nil, fmt.Errorf("%s: %s round %d stored %d of %d events", op, path, r, info.State.Msgs, o.Events)
			}
			res.EventsPS = float64(o.Events) / res.Seconds
			res.MBPS = float64(bytesSent) / res.Seconds / 1e6
			rep.Rounds = append(rep.Rounds, res)
			if path == "bare nats.go" {
				bares = append(bares, res.EventsPS)
			} else {
				hooks = append(hooks, res.EventsPS)
			}
			if o.Out != nil {
				lat := ""
				if res.P99Millis > 0 {
					lat = fmt.Sprintf("  p50 %6.1f ms  p99 %6.1f ms", res.P50Millis, res.P99Millis)
				}
				fmt.Fprintf(o.Out, "round %d  %-14s %8d events  %7.3fs  %9.0f events/s  %7.1f MB/s  %5.1f µs CPU/event%s\n",
					r, path, o.Events, res.Seconds, res.EventsPS, res.MBPS, res.CPUMicrosPerEvent, lat)
			}
		}
	}
	rep.WebhookMedian, rep.BareMedian = median(hooks), median(bares)
	rep.Ratio = rep.WebhookMedian / rep.BareMedian
	rep.P50Millis, rep.P99Millis = percentileMillis(latencies, 0.50), percentileMillis(latencies, 0.99)
	return rep, nil
}

// loadFixture reads the recorded events, compact as the API server sends
// them.
func loadFixture(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read fixture (run from the repository root or pass --fixture): %w", err)
	}
	raw, err := schemas.SplitAuditEvents(b)
	if err != nil {
		return nil, fmt.Errorf("fixture %s: %w", path, err)
	}
	var items [][]byte
	for _, it := range raw {
		var buf bytes.Buffer
		if err := json.Compact(&buf, it); err != nil {
			return nil, fmt.Errorf("fixture %s: %w", path, err)
		}
		ev, err := schemas.ParseAuditEvent(buf.Bytes())
		if err != nil {
			return nil, fmt.Errorf("fixture %s: %w", path, err)
		}
		if len(ev.AuditID) != idLen {
			continue // the template needs UUID-sized audit IDs
		}
		items = append(items, buf.Bytes())
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("fixture %s holds no audit event with a UUID audit ID", path)
	}
	return items, nil
}

// idLen is the length of a UUID, and of the audit IDs the senders write.
const idLen = 36

// bodyTemplate is one EventList of batch events whose audit IDs are
// rewritten in place for every request, so every event is new.
type bodyTemplate struct {
	body       []byte
	idAt       []int // offset of each event's audit ID in body
	itemAt     [][2]int
	eventBytes int
}

func newBodyTemplate(items [][]byte, batch int) *bodyTemplate {
	t := &bodyTemplate{}
	t.body = append(t.body, `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[`...)
	total := 0
	for i := range batch {
		if i > 0 {
			t.body = append(t.body, ',')
		}
		it := items[i%len(items)]
		start := len(t.body)
		t.body = append(t.body, it...)
		k := bytes.Index(it, []byte(`"auditID":"`)) + len(`"auditID":"`)
		t.idAt = append(t.idAt, start+k)
		t.itemAt = append(t.itemAt, [2]int{start, len(t.body)})
		total += len(it)
	}
	t.body = append(t.body, "]}"...)
	t.eventBytes = total / batch
	return t
}

// fill writes request seq's audit IDs into body (a copy of the template).
func (t *bodyTemplate) fill(body []byte, round, seq int) {
	for i, at := range t.idAt {
		// 8-4-4-4-12 like a UUID: the round, then the event number.
		id := body[at : at+idLen]
		digits(id[:8], round)
		copy(id[8:24], "-0000-4000-8000-")
		digits(id[24:], seq*len(t.idAt)+i)
	}
}

// digits writes n in decimal, zero-padded, into all of b.
func digits(b []byte, n int) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
}

// postEvents posts n events in requests of the template's size from
// senders goroutines and returns each request's latency.
func postEvents(ctx context.Context, client *http.Client, url, token string, tpl *bodyTemplate, round, n, senders int) ([]time.Duration, int64, error) {
	batch := len(tpl.idAt)
	requests := (n + batch - 1) / batch
	var next atomic.Int64
	var sent atomic.Int64
	lat := make([]time.Duration, requests)
	errc := make(chan error, senders)
	var wg sync.WaitGroup
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := slices.Clone(tpl.body)
			for {
				seq := int(next.Add(1) - 1)
				if seq >= requests || ctx.Err() != nil {
					return
				}
				tpl.fill(body, round, seq)
				req := body
				if rest := n - seq*batch; rest < batch {
					// The last request carries the remainder.
					req = append(slices.Clone(body[:tpl.itemAt[rest-1][1]]), "]}"...)
				}
				start := time.Now()
				if err := postOnce(ctx, client, url, token, req); err != nil {
					errc <- err
					return
				}
				lat[seq] = time.Since(start)
				sent.Add(int64(len(req)))
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return nil, 0, err
	}
	return lat, sent.Load(), nil
}

func postOnce(ctx context.Context, client *http.Client, url, token string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, msg)
	}
	return nil
}

// bareEvents publishes n events — the template's event bytes with fresh
// audit IDs — with the bare nats.go PublishAsync loop.
func bareEvents(ctx context.Context, js jetstream.JetStream, tpl *bodyTemplate, round, n int) (int64, error) {
	batch := len(tpl.idAt)
	body := slices.Clone(tpl.body)
	subject := bus.AuditSubject(benchCluster)
	var sent int64
	for seq := 0; seq*batch < n; seq++ {
		// A fresh copy per batch: PublishAsync may still hold the bytes.
		body = slices.Clone(body)
		tpl.fill(body, round, seq)
		for i, at := range tpl.itemAt {
			if seq*batch+i >= n {
				break
			}
			id := string(body[tpl.idAt[i] : tpl.idAt[i]+idLen])
			data := body[at[0]:at[1]]
			if _, err := js.PublishAsync(subject, data, jetstream.WithMsgID(id), jetstream.WithStallWait(time.Minute)); err != nil {
				return sent, err
			}
			sent += int64(len(data))
		}
	}
	select {
	case <-js.PublishAsyncComplete():
		return sent, nil
	case <-ctx.Done():
		return sent, ctx.Err()
	}
}

func percentileMillis(d []time.Duration, q float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	i = min(max(i, 0), len(s)-1)
	return float64(s[i].Microseconds()) / 1000
}
