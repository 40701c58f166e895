package bus

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedOptions configures the in-process NATS server used when no
// external bus is configured.
type EmbeddedOptions struct {
	// DataDir holds the JetStream file store; it survives restarts.
	DataDir string
	// Listen is host:port for other processes to connect to. Empty means
	// in-process only: no socket is opened at all, which is the safe default.
	Listen string
	// Token, when set, is required from every client connecting over Listen.
	Token string
	// TLSCertFile and TLSKeyFile enable TLS on Listen.
	TLSCertFile string
	TLSKeyFile  string
	// MaxStore caps the JetStream file store in bytes (0: the server's default,
	// a share of the disk).
	MaxStore int64
	// ServerName names the server in logs and JetStream metadata.
	ServerName string
	// StartTimeout bounds the wait for the server to accept connections.
	StartTimeout time.Duration
	Logger       *slog.Logger
}

// Embedded is a running in-process NATS server with JetStream.
type Embedded struct {
	srv *server.Server
	log *slog.Logger
}

// StartEmbedded starts a NATS server with JetStream on file storage and waits
// until it accepts connections.
func StartEmbedded(ctx context.Context, o EmbeddedOptions) (*Embedded, error) {
	const op = "bus: start embedded server"
	log := orDiscard(o.Logger)
	if o.DataDir == "" {
		return nil, fmt.Errorf("%s: data dir is empty", op)
	}
	dir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("%s: create data dir: %w", op, err)
	}
	name := o.ServerName
	if name == "" {
		name = "faultline-embedded"
	}
	opts := &server.Options{
		ServerName:            name,
		JetStream:             true,
		StoreDir:              dir,
		JetStreamMaxStore:     o.MaxStore,
		NoSigs:                true,
		NoSystemAccount:       true,
		DisableShortFirstPing: true,
		MaxPayload:            8 << 20,
	}
	if o.Listen == "" {
		opts.DontListen = true
	} else {
		host, portStr, err := net.SplitHostPort(o.Listen)
		if err != nil {
			return nil, fmt.Errorf("%s: listen address %q: %w", op, o.Listen, err)
		}
		port, err := strconv.Atoi(portStr)
		if err != nil {
			return nil, fmt.Errorf("%s: listen port %q: %w", op, portStr, err)
		}
		if port == 0 {
			port = server.RANDOM_PORT
		}
		opts.Host, opts.Port = host, port
		opts.Authorization = o.Token
		if o.TLSCertFile != "" || o.TLSKeyFile != "" {
			cert, err := tls.LoadX509KeyPair(o.TLSCertFile, o.TLSKeyFile)
			if err != nil {
				return nil, fmt.Errorf("%s: load TLS key pair: %w", op, err)
			}
			opts.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
			opts.TLS = true
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	srv.SetLoggerV2(natsLogger{log.With("component", "nats-server")}, false, false, false)
	srv.Start()
	wait := o.StartTimeout
	if wait <= 0 {
		wait = 30 * time.Second
	}
	if !srv.ReadyForConnections(wait) {
		srv.Shutdown()
		return nil, fmt.Errorf("%s: not ready within %s (store %s)", op, wait, dir)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		return nil, fmt.Errorf("%s: JetStream did not start (store %s)", op, dir)
	}
	if err := ctx.Err(); err != nil {
		srv.Shutdown()
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	e := &Embedded{srv: srv, log: log}
	log.Info("embedded NATS server started", "store_dir", dir, "listen", e.listenDescr())
	return e, nil
}

func (e *Embedded) listenDescr() string {
	if e.srv.ClientURL() == "" || e.srv.Addr() == nil {
		return "in-process only"
	}
	return e.srv.ClientURL()
}

// Server exposes the server for in-process connections.
func (e *Embedded) Server() *server.Server { return e.srv }

// ClientURL is the URL other processes use, or "" when in-process only.
func (e *Embedded) ClientURL() string {
	if e.srv.Addr() == nil {
		return ""
	}
	return e.srv.ClientURL()
}

// Shutdown stops the server and waits until its store is closed, so the
// same data dir can be opened again at once.
func (e *Embedded) Shutdown() {
	if e == nil || e.srv == nil {
		return
	}
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	e.log.Info("embedded NATS server stopped")
}

// ErrNoServer is returned by operations that need an embedded server when
// none runs.
var ErrNoServer = errors.New("bus: no embedded server")
