// Package app is the process runtime every role shares: logger, metrics
// registry, the bus (embedded or external) with its streams, the operations
// endpoint, and an orderly start and shutdown of the roles' components.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"k8s.io/klog/v2"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/internal/config"
	"github.com/faultline/faultline/internal/logging"
	"github.com/faultline/faultline/internal/ops"
)

// Component is one long-running part of a role (a collector, an analyzer, an
// indexer). Run blocks until ctx ends or it fails; on ctx end it stops taking
// new work, finishes what it has, and returns nil.
type Component interface {
	Name() string
	Run(ctx context.Context) error
}

// Runtime holds what the components of a process share.
type Runtime struct {
	Config   config.Config
	Log      *slog.Logger
	Registry *prometheus.Registry
	Bus      *bus.Bus
	Embedded *bus.Embedded
	Ops      *ops.Server
	// ShutdownTimeout bounds the drain at stop.
	ShutdownTimeout time.Duration
}

// Start builds the runtime: it fails with a clear error, within the connect
// timeout, when the bus cannot be reached or the endpoint cannot listen.
func Start(ctx context.Context, cfg config.Config, role string, logOut io.Writer) (_ *Runtime, err error) {
	log, err := logging.New(logOut, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return nil, err
	}
	log = log.With("role", role, "cluster", cfg.Cluster)
	// client-go (informers, leader election) logs through klog; route it into
	// the same structured stream instead of bare stderr lines.
	klog.SetSlogLogger(log.With("component", "client-go"))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	rt := &Runtime{Config: cfg, Log: log, Registry: reg, ShutdownTimeout: 30 * time.Second}
	defer func() {
		if err != nil {
			_ = rt.closeBus()
			if rt.Ops != nil {
				_ = rt.Ops.Close()
			}
		}
	}()

	if cfg.HTTP.Listen != "" {
		token, err := ops.ReadSecretFile(cfg.HTTP.MetricsTokenFile)
		if err != nil {
			return nil, fmt.Errorf("start: http.metrics_token_file: %w", err)
		}
		rt.Ops, err = ops.Listen(ops.Options{
			Listen: cfg.HTTP.Listen, TLSCertFile: cfg.HTTP.TLSCertFile, TLSKeyFile: cfg.HTTP.TLSKeyFile,
			MetricsToken: token, Gatherer: reg, Logger: log,
		})
		if err != nil {
			return nil, fmt.Errorf("start: %w", err)
		}
	}

	bo, err := busOptions(cfg)
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	bo.Name = "faultline-" + role
	bo.Logger = log
	if bo.Metrics, err = bus.NewMetrics(reg); err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	if len(cfg.Bus.URLs) == 0 {
		eo := bus.EmbeddedOptions{
			DataDir:     cfg.Bus.Embedded.DataDir,
			Listen:      cfg.Bus.Embedded.Listen,
			TLSCertFile: cfg.Bus.Embedded.TLSCertFile,
			TLSKeyFile:  cfg.Bus.Embedded.TLSKeyFile,
			MaxStore:    int64(cfg.Bus.Embedded.MaxStore),
			Logger:      log,
		}
		if eo.Token, err = ops.ReadSecretFile(cfg.Bus.Embedded.TokenFile); err != nil {
			return nil, fmt.Errorf("start: bus.embedded.token_file: %w", err)
		}
		rt.Embedded, err = bus.StartEmbedded(ctx, eo)
		if err != nil {
			return nil, fmt.Errorf("start: %w", err)
		}
		bo.Embedded = rt.Embedded
	}
	rt.Bus, err = bus.Connect(ctx, bo)
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	ectx, cancel := context.WithTimeout(ctx, cfg.Bus.ConnectTimeout+10*time.Second)
	defer cancel()
	if err := rt.Bus.EnsureStreams(ectx, StreamSpecs(cfg)); err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	kv := bus.KVLayout()
	for i := range kv {
		kv[i].Replicas = cfg.Bus.Replicas
	}
	if err := rt.Bus.EnsureKV(ectx, kv); err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	if rt.Ops != nil {
		rt.Ops.AddCheck("bus", rt.Bus.Ready)
	}
	return rt, nil
}

// StreamSpecs applies the configured limits to the bus layout.
func StreamSpecs(cfg config.Config) []bus.StreamSpec {
	limits := map[string]config.StreamLimits{
		bus.StreamAudit:      cfg.Bus.Streams.Audit,
		bus.StreamKubeEvent:  cfg.Bus.Streams.KubeEvent,
		bus.StreamMetric:     cfg.Bus.Streams.Metric,
		bus.StreamFinding:    cfg.Bus.Streams.Finding,
		bus.StreamDeviation:  cfg.Bus.Streams.Deviation,
		bus.StreamFault:      cfg.Bus.Streams.Fault,
		bus.StreamDeadLetter: cfg.Bus.Streams.DeadLetter,
	}
	specs := bus.Layout()
	for i := range specs {
		l := limits[specs[i].Name]
		specs[i].MaxAge = l.MaxAge
		specs[i].MaxBytes = int64(l.MaxBytes)
		specs[i].Replicas = cfg.Bus.Replicas
		specs[i].DuplicateWindow = cfg.Bus.DuplicateWindow
	}
	return specs
}

// ConsumerSpec fills a consumer's retry policy from configuration.
func ConsumerSpec(cfg config.Config, stream, durable string, filters ...string) bus.ConsumerSpec {
	c := cfg.Bus.Consumer
	return bus.ConsumerSpec{
		Stream: stream, Durable: durable, FilterSubjects: filters,
		MaxDeliver: c.MaxDeliver, Backoff: c.Backoff, AckWait: c.AckWait, MaxAckPending: c.MaxAckPending,
	}
}

func busOptions(cfg config.Config) (bus.Options, error) {
	b := cfg.Bus
	o := bus.Options{
		URLs: b.URLs, CAFile: b.CAFile, CertFile: b.CertFile, KeyFile: b.KeyFile,
		CredsFile: b.CredsFile, NKeySeedFile: b.NKeySeedFile, User: b.User,
		ConnectTimeout: b.ConnectTimeout, MaxInflight: b.MaxInflight, AckTimeout: b.AckTimeout,
	}
	var err error
	if o.Password, err = ops.ReadSecretFile(b.PasswordFile); err != nil {
		return o, fmt.Errorf("bus.password_file: %w", err)
	}
	if o.Token, err = ops.ReadSecretFile(b.TokenFile); err != nil {
		return o, fmt.Errorf("bus.token_file: %w", err)
	}
	if len(b.URLs) == 0 {
		// In-process: the embedded server's token applies to sockets only.
		o.Token = ""
	}
	return o, nil
}

// Run serves the endpoint and runs the components until ctx ends or one of
// them fails. Then it stops intake (readiness fails), lets components drain,
// flushes publishes in flight, closes the bus and stops the embedded server.
// It returns nil on a requested stop and the first component error otherwise.
func (rt *Runtime) Run(ctx context.Context, comps ...Component) error {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(comps)+1)
	opsCtx, stopOps := context.WithCancel(context.WithoutCancel(ctx))
	opsDone := make(chan error, 1)
	if rt.Ops != nil {
		go func() { opsDone <- rt.Ops.Serve(opsCtx) }()
	} else {
		opsDone <- nil
	}
	for _, c := range comps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rt.Log.Info("component started", "component", c.Name())
			if err := c.Run(cctx); err != nil {
				errc <- fmt.Errorf("%s: %w", c.Name(), err)
				return
			}
			rt.Log.Info("component stopped", "component", c.Name())
		}()
	}
	rt.Log.Info("faultline running", "components", len(comps), "bus", rt.busDescr())
	var runErr error
	select {
	case <-ctx.Done():
		rt.Log.Info("stop requested; draining")
	case runErr = <-errc:
		rt.Log.Error("component failed; stopping", "err", runErr)
	}
	if rt.Ops != nil {
		rt.Ops.SetDraining()
	}
	cancel()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(rt.ShutdownTimeout):
		rt.Log.Error("components did not stop in time; unacknowledged work will be redelivered", "timeout", rt.ShutdownTimeout)
	}
	// Errors from components after the stop are logged, not returned.
	for drained := false; !drained; {
		select {
		case err := <-errc:
			if runErr == nil && ctx.Err() == nil {
				runErr = err
			} else {
				rt.Log.Warn("component error during shutdown", "err", err)
			}
		default:
			drained = true
		}
	}
	closeErr := rt.closeBus()
	stopOps()
	if err := <-opsDone; err != nil {
		rt.Log.Warn("ops endpoint shutdown", "err", err)
	}
	if runErr == nil && closeErr != nil {
		runErr = closeErr
	}
	if runErr == nil {
		rt.Log.Info("faultline stopped cleanly")
	}
	return runErr
}

// Abort releases what Start acquired when the process gives up before Run.
func (rt *Runtime) Abort() {
	if err := rt.closeBus(); err != nil {
		rt.Log.Warn("close bus", "err", err)
	}
	if rt.Ops != nil {
		_ = rt.Ops.Close()
	}
}

func (rt *Runtime) busDescr() string {
	if rt.Embedded != nil {
		if u := rt.Embedded.ClientURL(); u != "" {
			return "embedded (" + u + ")"
		}
		return "embedded (in-process)"
	}
	return "external"
}

func (rt *Runtime) closeBus() error {
	var err error
	if rt.Bus != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if cerr := rt.Bus.Close(ctx); cerr != nil {
			err = errors.Join(err, cerr)
		}
		rt.Bus = nil
	}
	if rt.Embedded != nil {
		rt.Embedded.Shutdown()
		rt.Embedded = nil
	}
	return err
}

// Client connects to an existing bus for the commands people run against a
// running Faultline (inject, fault): no embedded server, no operations
// endpoint, logs at warn level unless configured lower.
func Client(ctx context.Context, cfg config.Config, name string, logOut io.Writer) (*bus.Bus, *slog.Logger, error) {
	log, err := logging.New(logOut, cfg.Log.Level, cfg.Log.Format)
	if err != nil {
		return nil, nil, err
	}
	if len(cfg.Bus.URLs) == 0 {
		return nil, nil, fmt.Errorf("%s: needs the bus of a running Faultline: set bus.urls (--bus.urls), e.g. nats://127.0.0.1:4222 of a 'faultline run' with bus.embedded.listen", name)
	}
	bo, err := busOptions(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	bo.Name = "faultline-" + name
	bo.Logger = log
	b, err := bus.Connect(ctx, bo)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	return b, log, nil
}
