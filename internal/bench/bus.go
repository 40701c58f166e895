// Package bench holds Faultline's load commands (`faultline bench ...`).
// Each measures a Faultline path and, in the same run against the same
// server, the bare library loop that is this machine's ceiling.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/schemas"
)

// BusOptions configures `faultline bench bus`.
type BusOptions struct {
	Messages  int
	Size      int
	Inflight  int
	Rounds    int
	DataDir   string // empty: a temp dir
	InProcess bool   // connect in-process instead of over loopback TCP
	Out       io.Writer
	Logger    *slog.Logger
}

// RoundResult is one measured publish run.
type RoundResult struct {
	Path     string  `json:"path"`
	Round    int     `json:"round"`
	Messages int     `json:"messages"`
	Seconds  float64 `json:"seconds"`
	MsgsPerS float64 `json:"msgs_per_s"`
	MBPerS   float64 `json:"mb_per_s"`
}

// BusReport is the outcome of a run.
type BusReport struct {
	Options      BusOptions    `json:"-"`
	Rounds       []RoundResult `json:"rounds"`
	BareMedian   float64       `json:"bare_median_msgs_per_s"`
	BusMedian    float64       `json:"faultline_median_msgs_per_s"`
	Ratio        float64       `json:"ratio"`
	MessageBytes int           `json:"message_bytes"`
}

const benchSubject = "fl.audit.bench"

// Bus runs the bus benchmark: rounds alternate between the bare nats.go
// PublishAsync loop and Faultline's publisher, each on an emptied stream of
// the same file-backed configuration, with the same in-flight limit and the
// same message bytes (each with a distinct Nats-Msg-Id).
func Bus(ctx context.Context, o BusOptions) (*BusReport, error) {
	if o.Messages <= 0 || o.Size <= 0 || o.Inflight <= 0 || o.Rounds <= 0 {
		return nil, fmt.Errorf("bench bus: messages, size, inflight and rounds must be positive")
	}
	dir := o.DataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "faultline-bench-bus")
		if err != nil {
			return nil, fmt.Errorf("bench bus: %w", err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	listen := "127.0.0.1:0"
	if o.InProcess {
		listen = ""
	}
	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: dir, Listen: listen, Logger: o.Logger})
	if err != nil {
		return nil, fmt.Errorf("bench bus: %w", err)
	}
	defer srv.Shutdown()

	bopts := bus.Options{Name: "bench-faultline", MaxInflight: o.Inflight, Logger: o.Logger}
	natsOpts := []nats.Option{nats.Name("bench-bare")}
	url := srv.ClientURL()
	if o.InProcess {
		bopts.Embedded = srv
		natsOpts = append(natsOpts, nats.InProcessServer(srv.Server()))
	} else {
		bopts.URLs = []string{url}
	}
	b, err := bus.Connect(ctx, bopts)
	if err != nil {
		return nil, fmt.Errorf("bench bus: %w", err)
	}
	defer b.Close(context.Background())
	spec := bus.StreamSpec{Name: "BENCH", Subjects: []string{benchSubject}}
	if err := b.EnsureStreams(ctx, []bus.StreamSpec{spec}); err != nil {
		return nil, fmt.Errorf("bench bus: %w", err)
	}
	nc, err := nats.Connect(url, natsOpts...)
	if err != nil {
		return nil, fmt.Errorf("bench bus: bare connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(o.Inflight))
	if err != nil {
		return nil, fmt.Errorf("bench bus: %w", err)
	}
	stream, err := js.Stream(ctx, "BENCH")
	if err != nil {
		return nil, fmt.Errorf("bench bus: %w", err)
	}

	payload, err := envelopeOfSize(o.Size)
	if err != nil {
		return nil, err
	}
	rep := &BusReport{Options: o, MessageBytes: len(payload)}
	var bare, fl []float64
	for r := 1; r <= o.Rounds; r++ {
		for _, path := range []string{"bare nats.go", "faultline bus"} {
			if err := stream.Purge(ctx); err != nil {
				return nil, fmt.Errorf("bench bus: purge: %w", err)
			}
			prefix := fmt.Sprintf("r%d-%s-", r, path[:4])
			start := time.Now()
			if path == "bare nats.go" {
				err = bareLoop(ctx, js, payload, prefix, o.Messages)
			} else {
				err = busLoop(ctx, b, payload, prefix, o.Messages)
			}
			if err != nil {
				return nil, fmt.Errorf("bench bus: %s round %d: %w", path, r, err)
			}
			secs := time.Since(start).Seconds()
			info, err := stream.Info(ctx)
			if err != nil {
				return nil, fmt.Errorf("bench bus: %w", err)
			}
			if info.State.Msgs != uint64(o.Messages) {
				return nil, fmt.Errorf("bench bus: %s round %d stored %d of %d messages", path, r, info.State.Msgs, o.Messages)
			}
			res := RoundResult{Path: path, Round: r, Messages: o.Messages, Seconds: secs,
				MsgsPerS: float64(o.Messages) / secs, MBPerS: float64(o.Messages*len(payload)) / secs / 1e6}
			rep.Rounds = append(rep.Rounds, res)
			if path == "bare nats.go" {
				bare = append(bare, res.MsgsPerS)
			} else {
				fl = append(fl, res.MsgsPerS)
			}
			if o.Out != nil {
				fmt.Fprintf(o.Out, "round %d  %-14s %8d msgs  %7.3fs  %9.0f msg/s  %7.1f MB/s\n", r, path, o.Messages, secs, res.MsgsPerS, res.MBPerS)
			}
		}
	}
	rep.BareMedian, rep.BusMedian = median(bare), median(fl)
	rep.Ratio = rep.BusMedian / rep.BareMedian
	return rep, nil
}

// bareLoop waits up to a minute when its in-flight limit is reached, as
// Faultline's publisher does, instead of failing after the default 200ms.
func bareLoop(ctx context.Context, js jetstream.JetStream, payload []byte, prefix string, n int) error {
	for i := range n {
		if _, err := js.PublishAsync(benchSubject, payload, jetstream.WithMsgID(prefix+itoa(i)), jetstream.WithStallWait(time.Minute)); err != nil {
			return err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func busLoop(ctx context.Context, b *bus.Bus, payload []byte, prefix string, n int) error {
	bt := b.NewBatch()
	for i := range n {
		if err := bt.Add(ctx, bus.Message{Subject: benchSubject, ID: prefix + itoa(i), Data: payload}); err != nil {
			return err
		}
	}
	_, err := bt.Wait(ctx)
	return err
}

func itoa(i int) string { return fmt.Sprint(i) }

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// envelopeOfSize builds a realistic CloudEvents envelope of about size bytes
// with the schemas package, as collectors do.
func envelopeOfSize(size int) ([]byte, error) {
	build := func(pad string) ([]byte, error) {
		data, err := json.Marshal(map[string]any{"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
			"auditID": "5b1f0c84-6a3f-4c55-9a9f-1d6c0a1d2e3f", "stage": "ResponseComplete",
			"requestURI": "/api/v1/namespaces/default/pods/web-7d9c", "verb": "get",
			"requestReceivedTimestamp": "2026-11-22T05:30:00.120000Z", "stageTimestamp": "2026-11-22T05:30:00.123456Z",
			"user":      map[string]any{"username": "system:serviceaccount:default:web", "groups": []string{"system:serviceaccounts", "system:authenticated"}},
			"sourceIPs": []string{"10.0.3.17"}, "userAgent": "kubectl/v1.33.13 (linux/amd64) kubernetes/abcdef",
			"annotations": map[string]string{"pad": pad}})
		if err != nil {
			return nil, err
		}
		env, err := schemas.NewEnvelopeRaw(schemas.Attributes{
			ID:     schemas.AuditEventID("5b1f0c84-6a3f-4c55-9a9f-1d6c0a1d2e3f", "ResponseComplete"),
			Source: "faultline/collector/audit-webhook", Type: schemas.KindAuditEvent.EventType(),
			Subject: "pods/default/web-7d9c", Cluster: "bench", Time: time.Date(2026, 11, 22, 5, 30, 0, 123456000, time.UTC),
		}, data)
		if err != nil {
			return nil, err
		}
		return env.Encode()
	}
	b, err := build("")
	if err != nil {
		return nil, fmt.Errorf("bench: build envelope: %w", err)
	}
	if pad := size - len(b); pad > 0 {
		if b, err = build(strings.Repeat("x", pad)); err != nil {
			return nil, fmt.Errorf("bench: build envelope: %w", err)
		}
	}
	return b, nil
}
