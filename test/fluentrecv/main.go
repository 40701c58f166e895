// Command fluentrecv runs the OpenTelemetry Collector's Fluent Forward
// receiver (receiver/fluentforwardreceiver) on one address and writes every
// log record it accepts to stdout as one JSON line:
//
//	{"tag":"faultline.finding","time":"2026-11-22T10:00:00.123456789Z","time_unix_nano":1795341600123456789,"body":"...","attributes":{...}}
//
// The receiver answers a chunk's ack only after the consumer returned, and
// the consumer returns only after its line is written, so a record the
// client saw acknowledged is on stdout. When it is listening it says so on
// stderr ("fluentrecv: listening on ADDR").
//
// The receiver has no TLS; with -tls-listen a crypto/tls listener in front
// of it relays each connection to the receiver, so a client's TLS handshake
// and certificate checks are real.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/receiver/fluentforwardreceiver"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// line is one received record.
type line struct {
	Tag          string         `json:"tag"`
	Time         string         `json:"time"`
	TimeUnixNano int64          `json:"time_unix_nano"`
	Body         any            `json:"body,omitempty"`
	Attributes   map[string]any `json:"attributes"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fluentrecv:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:24224", "receiver address: host:port (TCP, and UDP for heartbeats) or unix:///path")
	tlsListen := flag.String("tls-listen", "", "also accept TLS on this host:port and relay it to -listen")
	tlsCert := flag.String("tls-cert", "", "certificate (PEM) for -tls-listen")
	tlsKey := flag.String("tls-key", "", "private key (PEM) for -tls-listen")
	verbose := flag.Bool("v", false, "log the receiver's debug messages")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	level := zapcore.WarnLevel
	if *verbose {
		level = zapcore.DebugLevel
	}
	zc := zap.NewDevelopmentConfig()
	zc.Level = zap.NewAtomicLevelAt(level)
	logger, err := zc.Build()
	if err != nil {
		return err
	}

	out := &printer{w: bufio.NewWriterSize(os.Stdout, 64<<10)}
	next, err := consumer.NewLogs(out.consume)
	if err != nil {
		return err
	}

	factory := fluentforwardreceiver.NewFactory()
	cfg := factory.CreateDefaultConfig().(*fluentforwardreceiver.Config)
	cfg.ListenAddress = *listen
	set := receiver.Settings{
		ID:                component.NewID(factory.Type()),
		TelemetrySettings: componenttest.NewNopTelemetrySettings(),
		BuildInfo:         component.NewDefaultBuildInfo(),
	}
	set.Logger = logger
	rcv, err := factory.CreateLogs(ctx, set, cfg, next)
	if err != nil {
		return fmt.Errorf("create receiver: %w", err)
	}
	if err := rcv.Start(ctx, componenttest.NewNopHost()); err != nil {
		return fmt.Errorf("start receiver on %s: %w", *listen, err)
	}
	defer func() { _ = rcv.Shutdown(context.Background()) }()

	if *tlsListen != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		ln, err := tls.Listen("tcp", *tlsListen, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		if err != nil {
			return fmt.Errorf("tls listen: %w", err)
		}
		defer ln.Close()
		go relay(ctx, ln, *listen)
		fmt.Fprintf(os.Stderr, "fluentrecv: tls listening on %s\n", ln.Addr())
	}
	fmt.Fprintf(os.Stderr, "fluentrecv: listening on %s\n", *listen)
	<-ctx.Done()
	return nil
}

// printer writes each record as a JSON line and flushes before the
// receiver acknowledges the chunk.
type printer struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (p *printer) consume(_ context.Context, ld plog.Logs) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	enc := json.NewEncoder(p.w)
	enc.SetEscapeHTML(false)
	rls := ld.ResourceLogs()
	for i := range rls.Len() {
		sls := rls.At(i).ScopeLogs()
		for j := range sls.Len() {
			lrs := sls.At(j).LogRecords()
			for k := range lrs.Len() {
				lr := lrs.At(k)
				attrs := lr.Attributes().AsRaw()
				tag, _ := attrs["fluent.tag"].(string)
				delete(attrs, "fluent.tag")
				ts := lr.Timestamp().AsTime().UTC()
				l := line{Tag: tag, Time: ts.Format(time.RFC3339Nano), TimeUnixNano: ts.UnixNano(), Body: lr.Body().AsRaw(), Attributes: attrs}
				if err := enc.Encode(l); err != nil {
					return err
				}
			}
		}
	}
	return p.w.Flush()
}

// relay accepts TLS connections and copies each to and from a new
// connection to the receiver.
func relay(ctx context.Context, ln net.Listener, to string) {
	network, addr := "tcp", to
	if len(to) > len("unix://") && to[:len("unix://")] == "unix://" {
		network, addr = "unix", to[len("unix://"):]
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		go func() {
			defer c.Close()
			var d net.Dialer
			up, err := d.DialContext(ctx, network, addr)
			if err != nil {
				fmt.Fprintln(os.Stderr, "fluentrecv: relay:", err)
				return
			}
			defer up.Close()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
			<-done
		}()
	}
}
