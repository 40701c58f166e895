package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Options configures a connection to NATS.
type Options struct {
	// Name identifies this client in the server's connection list.
	Name string
	// URLs of an external server or cluster. Ignored when Embedded is set.
	URLs []string
	// Embedded, when set, connects in-process to this server.
	Embedded *Embedded

	// TLS: a CA to verify the server, and an optional client key pair.
	CAFile, CertFile, KeyFile string
	// Authentication (at most one kind): a .creds file (JWT + NKey), an NKey
	// seed file, a user and password, or a token.
	CredsFile, NKeySeedFile string
	User, Password          string
	Token                   string

	// ConnectTimeout bounds the first connection; an unreachable bus is an
	// error at start, not a hang.
	ConnectTimeout time.Duration
	// MaxInflight bounds publishes waiting for their acknowledgement.
	MaxInflight int
	// AckTimeout bounds the wait for one publish acknowledgement.
	AckTimeout time.Duration

	Logger  *slog.Logger
	Metrics *Metrics
}

// Bus is a connection to NATS with JetStream.
type Bus struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	log     *slog.Logger
	metrics *Metrics
	pub     *publisher

	mu      sync.Mutex
	streams []string // ensured at start, checked by Ready
}

// Defaults for Options fields left zero.
const (
	DefaultConnectTimeout = 5 * time.Second
	DefaultMaxInflight    = 4096
	DefaultAckTimeout     = 10 * time.Second
)

// Connect opens the connection and the JetStream context. It fails with a
// clear error when no server answers within ConnectTimeout.
func Connect(ctx context.Context, o Options) (*Bus, error) {
	const op = "bus: connect"
	log := orDiscard(o.Logger)
	m := o.Metrics
	if m == nil {
		m, _ = NewMetrics(nil) // nothing to register, nothing to fail
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.MaxInflight <= 0 {
		o.MaxInflight = DefaultMaxInflight
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = DefaultAckTimeout
	}
	name := o.Name
	if name == "" {
		name = "faultline"
	}
	nopts := []nats.Option{
		nats.Name(name),
		nats.Timeout(o.ConnectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		// Messages published while reconnecting are buffered up to this
		// size; beyond it Publish fails and the caller sees the error.
		nats.ReconnectBufSize(32 << 20),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			m.connected.Set(0)
			if err == nil {
				return // an orderly close
			}
			m.disconnects.Inc()
			log.Warn("bus: disconnected from NATS", "err", err)
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			m.connected.Set(1)
			m.reconnects.Inc()
			log.Info("bus: reconnected to NATS", "url", c.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(*nats.Conn) {
			m.connected.Set(0)
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Warn("bus: asynchronous NATS error", "subject", subj, "err", err)
		}),
	}
	authOpts, err := authOptions(o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	nopts = append(nopts, authOpts...)

	var url string
	if o.Embedded != nil {
		nopts = append(nopts, nats.InProcessServer(o.Embedded.srv))
		url = "in-process"
	} else {
		if len(o.URLs) == 0 {
			return nil, fmt.Errorf("%s: no server URL configured", op)
		}
		url = strings.Join(o.URLs, ",")
	}
	type result struct {
		nc  *nats.Conn
		err error
	}
	// nats.Connect does not take a context; run it so a cancelled start
	// returns at once. The goroutine ends when Connect returns (bounded by
	// ConnectTimeout per server).
	ch := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(url, nopts...)
		ch <- result{nc, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, fmt.Errorf("%s to %s: %w", op, redactURLs(o.URLs), ctx.Err())
	}
	if r.err != nil {
		return nil, fmt.Errorf("%s to %s: %w", op, redactURLs(o.URLs), r.err)
	}
	nc := r.nc
	m.connected.Set(1)
	m.inflightLimit.Set(float64(o.MaxInflight))

	b := &Bus{nc: nc, log: log, metrics: m}
	b.pub = newPublisher(b, o.MaxInflight)
	js, err := jetstream.New(nc,
		// The publisher enforces its own bound with a context-aware
		// semaphore, so the library's stall limit is set above it.
		jetstream.WithPublishAsyncMaxPending(o.MaxInflight*2),
		jetstream.WithPublishAsyncTimeout(o.AckTimeout),
		jetstream.WithPublishAsyncAckHandler(b.pub.onAck),
		jetstream.WithPublishAsyncErrHandler(b.pub.onErr),
	)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("%s: jetstream: %w", op, err)
	}
	b.js = js
	// Fail early with a clear message when the server has no JetStream.
	actx, cancel := context.WithTimeout(ctx, o.ConnectTimeout)
	defer cancel()
	if _, err := js.AccountInfo(actx); err != nil {
		nc.Close()
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return nil, fmt.Errorf("%s: the server at %s does not have JetStream enabled: %w", op, redactURLs(o.URLs), err)
		}
		return nil, fmt.Errorf("%s: JetStream account info: %w", op, err)
	}
	log.Info("bus: connected", "url", nc.ConnectedUrlRedacted(), "server", nc.ConnectedServerName())
	return b, nil
}

func authOptions(o Options) ([]nats.Option, error) {
	var opts []nats.Option
	kinds := 0
	if o.CredsFile != "" {
		kinds++
		if _, err := os.Stat(o.CredsFile); err != nil {
			return nil, fmt.Errorf("credentials file: %w", err)
		}
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	if o.NKeySeedFile != "" {
		kinds++
		opt, err := nats.NkeyOptionFromSeed(o.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("nkey seed file: %w", err)
		}
		opts = append(opts, opt)
	}
	if o.User != "" || o.Password != "" {
		kinds++
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	if o.Token != "" {
		kinds++
		opts = append(opts, nats.Token(o.Token))
	}
	if kinds > 1 {
		return nil, errors.New("more than one authentication method configured (credentials file, nkey seed, user/password, token): choose one")
	}
	if o.CAFile != "" {
		opts = append(opts, nats.RootCAs(o.CAFile))
	}
	if o.CertFile != "" || o.KeyFile != "" {
		if o.CertFile == "" || o.KeyFile == "" {
			return nil, errors.New("TLS client certificate needs both cert file and key file")
		}
		opts = append(opts, nats.ClientCert(o.CertFile, o.KeyFile))
	}
	if o.CAFile != "" || o.CertFile != "" {
		opts = append(opts, nats.Secure())
	}
	return opts, nil
}

// redactURLs hides passwords and tokens embedded in URLs before they reach
// an error message or a log line.
func redactURLs(urls []string) string {
	if len(urls) == 0 {
		return "in-process server"
	}
	out := make([]string, len(urls))
	for i, u := range urls {
		if at := strings.LastIndex(u, "@"); at >= 0 {
			if scheme := strings.Index(u, "://"); scheme >= 0 && scheme < at {
				u = u[:scheme+3] + "[redacted]" + u[at:]
			} else {
				u = "[redacted]" + u[at:]
			}
		}
		out[i] = u
	}
	return strings.Join(out, ",")
}

// JetStream exposes the JetStream context for operations the bus does not
// wrap (KV reads and writes, stream inspection).
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Conn exposes the NATS connection (core subscriptions, e.g. aborts).
func (b *Bus) Conn() *nats.Conn { return b.nc }

// Ready reports nil when the connection is up and every ensured stream
// exists.
func (b *Bus) Ready(ctx context.Context) error {
	if b.nc.Status() != nats.CONNECTED {
		return fmt.Errorf("bus: not connected (status %s)", b.nc.Status())
	}
	b.mu.Lock()
	streams := append([]string(nil), b.streams...)
	b.mu.Unlock()
	if len(streams) == 0 {
		return errors.New("bus: streams not yet ensured")
	}
	for _, s := range streams {
		if _, err := b.js.Stream(ctx, s); err != nil {
			return fmt.Errorf("bus: stream %s: %w", s, err)
		}
	}
	return nil
}

// Close waits for publishes in flight (bounded by ctx), then drains and
// closes the connection.
func (b *Bus) Close(ctx context.Context) error {
	var err error
	select {
	case <-b.js.PublishAsyncComplete():
	case <-ctx.Done():
		err = fmt.Errorf("bus: close: %d publishes still unacknowledged: %w", b.js.PublishAsyncPending(), ctx.Err())
	}
	closed := make(chan struct{})
	b.nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if derr := b.nc.Drain(); derr != nil {
		b.nc.Close()
		return errors.Join(err, fmt.Errorf("bus: drain: %w", derr))
	}
	select {
	case <-closed:
	case <-ctx.Done():
		b.nc.Close()
	}
	b.metrics.connected.Set(0)
	return err
}
