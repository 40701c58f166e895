// Package auditwebhook receives the kube-apiserver's audit webhook
// (--audit-webhook-config-file, batch or blocking mode) and publishes every
// event onto the bus, answering 200 only once JetStream has acknowledged
// every event of the request. See README.md.
package auditwebhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/collectors"
	"github.com/faultline/faultline/schemas"
)

// Name is the collector's name: faultline collect audit-webhook.
const Name = "audit-webhook"

// Source is the CloudEvents source of the envelopes it publishes.
const Source = "/faultline/collectors/audit-webhook"

// envelopeOverhead bounds what the envelope and the message headers add to
// an event, for the max_payload check.
const envelopeOverhead = 4 << 10

// reloadInterval is how often the token file and the TLS key pair are
// checked for changes.
const reloadInterval = 10 * time.Second

// Collector is the audit webhook receiver.
type Collector struct {
	cfg     Config
	log     *slog.Logger
	bus     *bus.Bus
	cluster string
	subject string
	dlq     string
	m       *metrics
	auth    *authenticator
	kp      *keyPair // nil with insecure_http

	ln  net.Listener
	srv *http.Server

	// slots bounds the requests processed at once. Overflow policy: a
	// request waits for a slot up to publish_timeout, then gets 503.
	slots   chan struct{}
	serving atomic.Bool
	// reloadEvery is how often changed files are re-read.
	reloadEvery time.Duration
	// lastRefusalLog (unix ns) and refusalsNotLogged rate-limit the log
	// lines about refused requests.
	lastRefusalLog    atomic.Int64
	refusalsNotLogged atomic.Int64

	preparers sync.Pool    // *schemas.AuditPreparer
	buffers   chan *[]byte // free list of request bodies and envelope arenas (see getBuffer)
	scratch   sync.Pool    // *[]byte: one prepared event
}

// New checks the configuration, loads certificates and tokens and opens the
// listening socket (so a port in use fails the start). Run serves it; Close
// releases it when Run is never called.
func New(d collectors.Deps, cfg Config) (*Collector, error) {
	if err := errConfig(cfg.validate(true)); err != nil {
		return nil, err
	}
	if d.Bus == nil {
		return nil, errors.New("audit webhook: no bus")
	}
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	probe := schemas.Envelope{SpecVersion: schemas.SpecVersion, ID: "x", Source: Source, Type: schemas.TypeAudit,
		Time: time.Unix(0, 0), DataContentType: schemas.ContentTypeJSON, Cluster: d.Cluster, Data: []byte("{}")}
	if err := probe.Validate(); err != nil {
		return nil, fmt.Errorf("audit webhook: cluster name: %w", err)
	}
	if mp := d.Bus.Conn().MaxPayload(); mp > 0 && int64(cfg.MaxEventSize)+envelopeOverhead > mp {
		return nil, fmt.Errorf("audit webhook: max_event_size %s plus the envelope does not fit in the NATS server's max_payload of %d bytes", cfg.MaxEventSize, mp)
	}
	reg := d.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	auth, err := newAuthenticator(cfg)
	if err != nil {
		return nil, fmt.Errorf("audit webhook: %w", err)
	}
	c := &Collector{
		cfg:     cfg,
		log:     log,
		bus:     d.Bus,
		cluster: d.Cluster,
		subject: bus.AuditSubject(d.Cluster),
		dlq:     bus.DeadLetterSubject(bus.StreamAudit, Name),
		m:       m,
		auth:    auth,
		slots:   make(chan struct{}, cfg.MaxConcurrentRequests),
		// A body and an arena per request in flight.
		buffers: make(chan *[]byte, 2*cfg.MaxConcurrentRequests),

		reloadEvery: reloadInterval,
	}
	c.preparers.New = func() any { return &schemas.AuditPreparer{MaxEventSize: int(cfg.MaxEventSize), Validated: true} }
	m.inFlightLimit.Set(float64(cfg.MaxConcurrentRequests))

	var tlsCfg *tls.Config
	if !cfg.InsecureHTTP {
		if c.kp, err = newKeyPair(cfg.TLSCertFile, cfg.TLSKeyFile); err != nil {
			return nil, fmt.Errorf("audit webhook: %w", err)
		}
		tlsCfg = &tls.Config{
			GetCertificate: c.kp.get,
			MinVersion:     tls.VersionTLS12,
			NextProtos:     []string{"h2", "http/1.1"},
		}
		if auth.roots != nil {
			// Verified per request, so a bad certificate gets a counted 401
			// rather than a failed handshake.
			tlsCfg.ClientAuth = tls.RequestClientCert
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/", c)
	c.srv = &http.Server{
		Handler:           mux,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		// Answering waits for the publish acknowledgements.
		WriteTimeout:   cfg.ReadTimeout + cfg.PublishTimeout + 5*time.Second,
		IdleTimeout:    cfg.IdleTimeout,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("audit webhook: listen on %s: %w", cfg.Listen, err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	c.ln = ln
	if d.AddReadyCheck != nil {
		d.AddReadyCheck(Name, func(context.Context) error {
			if !c.serving.Load() {
				return errors.New("audit webhook: not serving")
			}
			return nil
		})
	}
	return c, nil
}

// Name is the collector's name.
func (c *Collector) Name() string { return Name }

// Addr is the listening address (useful with port 0).
func (c *Collector) Addr() net.Addr { return c.ln.Addr() }

// URL is where the API server reaches the receiver on this address.
func (c *Collector) URL() string {
	scheme := "https"
	if c.cfg.InsecureHTTP {
		scheme = "http"
	}
	return scheme + "://" + c.ln.Addr().String() + c.cfg.Path
}

// Close releases the socket of a receiver that was never run.
func (c *Collector) Close() error { return c.ln.Close() }

// Run serves until ctx ends. Then it stops accepting, lets requests in
// flight finish (each is bounded by publish_timeout; the whole drain by
// publish_timeout + 5s, after which remaining connections are closed and
// the API server retries their batches) and returns nil.
func (c *Collector) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	loopCtx, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.reloadLoop(loopCtx)
	}()

	errc := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		errc <- c.srv.Serve(c.ln)
	}()
	c.serving.Store(true)
	c.log.Info("audit webhook: listening", "url", c.URL(), "tls", !c.cfg.InsecureHTTP,
		"tokens", c.cfg.TokenFile != "", "client_certificates", c.cfg.ClientCAFile != "")
	select {
	case err := <-errc:
		c.serving.Store(false)
		return fmt.Errorf("audit webhook: serve: %w", err)
	case <-ctx.Done():
	}
	c.serving.Store(false)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.PublishTimeout+5*time.Second)
	defer cancel()
	err := c.srv.Shutdown(sctx)
	if err != nil {
		c.log.Warn("audit webhook: requests still in flight at the end of the drain; closing their connections", "err", err)
		err = c.srv.Close()
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("audit webhook: shutdown: %w", err)
	}
	c.log.Info("audit webhook: stopped")
	return nil
}

// reloadLoop re-reads the token file and the TLS key pair when they change.
func (c *Collector) reloadLoop(ctx context.Context) {
	files := map[string]fileStamp{}
	watch := []string{c.cfg.TokenFile}
	if c.kp != nil {
		watch = append(watch, c.cfg.TLSCertFile, c.cfg.TLSKeyFile)
	}
	for _, f := range watch {
		if f != "" {
			files[f] = stamp(f)
		}
	}
	t := time.NewTicker(c.reloadEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed := map[string]bool{}
		for f, old := range files {
			if now := stamp(f); now != old {
				files[f] = now
				changed[f] = true
			}
		}
		if changed[c.cfg.TokenFile] {
			if err := c.auth.reloadTokens(); err != nil {
				c.m.reloadErrors.Inc()
				c.log.Error("audit webhook: token file changed but cannot be read; keeping the previous tokens", "err", err)
			} else {
				c.log.Info("audit webhook: token file reloaded", "file", c.cfg.TokenFile)
			}
		}
		if c.kp != nil && (changed[c.cfg.TLSCertFile] || changed[c.cfg.TLSKeyFile]) {
			if err := c.kp.reload(); err != nil {
				c.m.reloadErrors.Inc()
				c.log.Error("audit webhook: TLS key pair changed but cannot be loaded; keeping the previous one", "err", err)
			} else {
				c.log.Info("audit webhook: TLS key pair reloaded", "cert", c.cfg.TLSCertFile)
			}
		}
	}
}
