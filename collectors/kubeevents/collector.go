// Package kubeevents watches Kubernetes Events with client-go informers
// and publishes every occurrence onto the bus, including the updates that
// raise an Event's count, once, across restarts and replicas. See
// README.md.
package kubeevents

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/collectors"
)

// Name is the collector's name: `faultline collect events`.
const Name = "events"

// Source is the CloudEvents source of the envelopes it publishes.
const Source = "/faultline/collectors/kube-events"

// StateBucket is the KV bucket holding, per Event UID, the last
// resourceVersion published. Its entries expire EventTTL (+ stateTTLMargin)
// after their last write, as the Events themselves do.
const StateBucket = "faultline_kevents"

// stateTTLMargin covers the API server's etcd lease reuse, which lets an
// Event outlive --event-ttl by up to a minute.
const stateTTLMargin = 5 * time.Minute

// serviceAccountNamespace holds the pod's namespace in a cluster.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// Retry delays after a failed publish or a failed leadership term.
const (
	retryMin = 200 * time.Millisecond
	retryMax = 10 * time.Second
)

// Options are settings from outside the collector's own section.
type Options struct {
	// StateReplicas is the replica count of the state bucket (bus.replicas).
	StateReplicas int
}

// Collector watches Events. Run is called once.
type Collector struct {
	cfg      Config
	cluster  string
	log      *slog.Logger
	m        *metrics
	b        *bus.Bus
	client   kubernetes.Interface
	identity string
	leaseNS  string
	replicas int

	mu      sync.Mutex
	health  error
	leading bool
	synced  bool
}

// New builds the collector. d.Kube must be set.
func New(cfg Config, d collectors.Deps, o Options) (*Collector, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("kubeevents: %w", errors.Join(errs...))
	}
	switch {
	case d.Bus == nil:
		return nil, errors.New("kubeevents: no bus")
	case d.Cluster == "":
		return nil, errors.New("kubeevents: no cluster name")
	case d.Kube == nil:
		return nil, errors.New("kubeevents: no Kubernetes API server connection")
	}
	client, err := kubernetes.NewForConfig(rest.CopyConfig(d.Kube))
	if err != nil {
		return nil, fmt.Errorf("kubeevents: build client: %w", err)
	}
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Collector{
		cfg:      cfg,
		cluster:  d.Cluster,
		log:      log,
		m:        newMetrics(d.Metrics),
		b:        d.Bus,
		client:   client,
		identity: cfg.LeaderElection.Identity,
		leaseNS:  cfg.LeaderElection.LeaseNamespace,
		replicas: max(o.StateReplicas, 1),
	}
	if c.identity == "" {
		host, _ := os.Hostname()
		var rnd [4]byte
		_, _ = rand.Read(rnd[:])
		c.identity = host + "_" + hex.EncodeToString(rnd[:])
	}
	if c.leaseNS == "" {
		c.leaseNS = "default"
		if b, err := os.ReadFile(serviceAccountNamespace); err == nil && strings.TrimSpace(string(b)) != "" {
			c.leaseNS = strings.TrimSpace(string(b))
		}
	}
	c.log = c.log.With("identity", c.identity)
	c.m.queueCapacity.Set(float64(cfg.QueueSize))
	if d.AddReadyCheck != nil {
		d.AddReadyCheck("collector/"+Name, func(context.Context) error { return c.ready() })
	}
	return c, nil
}

// Name implements collectors.Collector.
func (c *Collector) Name() string { return Name }

// Identity is this replica's name in the Lease.
func (c *Collector) Identity() string { return c.identity }

// Leading tells whether this replica collects now.
func (c *Collector) Leading() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leading
}

func (c *Collector) setHealth(err error) {
	c.mu.Lock()
	c.health = err
	c.mu.Unlock()
}

// ready: a standby replica is ready; the leader once its informers have
// synced and while publishing works.
func (c *Collector) ready() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.health != nil {
		return c.health
	}
	if c.leading && !c.synced {
		return errors.New("kubeevents: Event informers not synced yet")
	}
	return nil
}

// Run collects until ctx ends: with leader election, only while this
// replica holds the Lease. It returns an error only when the state bucket
// cannot be set up; API server and bus trouble is logged and retried.
func (c *Collector) Run(ctx context.Context) error {
	kv, err := c.ensureState(ctx)
	if err != nil {
		return err
	}
	if !c.cfg.LeaderElection.Enabled {
		delay := retryMin
		for ctx.Err() == nil {
			if err := c.lead(ctx, kv); err != nil && ctx.Err() == nil {
				c.setHealth(err)
				c.log.Error("kubeevents: collecting failed; retrying", "err", err, "retry_in", delay)
				if sleep(ctx, delay) != nil {
					break
				}
				delay = min(2*delay, retryMax)
			}
		}
		return nil
	}
	return c.campaign(ctx, kv)
}

// ensureState creates or updates the state bucket with a TTL matching the
// API server's Event TTL.
func (c *Collector) ensureState(ctx context.Context) (jetstream.KeyValue, error) {
	spec := bus.KVSpec{
		Bucket:      StateBucket,
		Description: "Kubernetes Events collector: last published resourceVersion per Event UID",
		TTL:         c.cfg.EventTTL + stateTTLMargin,
		History:     1,
		Replicas:    c.replicas,
	}
	if err := c.b.EnsureKV(ctx, []bus.KVSpec{spec}); err != nil {
		return nil, fmt.Errorf("kubeevents: %w", err)
	}
	kv, err := c.b.KV(ctx, StateBucket)
	if err != nil {
		return nil, fmt.Errorf("kubeevents: %w", err)
	}
	return kv, nil
}

// campaign takes part in leader election until ctx ends, collecting during
// each term this replica wins.
func (c *Collector) campaign(ctx context.Context, kv jetstream.KeyValue) error {
	le := c.cfg.LeaderElection
	lock := &resourcelock.LeaseLock{
		Client: c.client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{
			Identity: c.identity,
		},
	}
	lock.LeaseMeta.Namespace, lock.LeaseMeta.Name = c.leaseNS, le.LeaseName
	c.log.Info("kubeevents: campaigning for the Lease", "lease", c.leaseNS+"/"+le.LeaseName)
	delay := retryMin
	for ctx.Err() == nil {
		termErr := c.term(ctx, kv, lock)
		if ctx.Err() != nil {
			break
		}
		if termErr != nil {
			c.setHealth(termErr)
			c.log.Error("kubeevents: collecting failed; gave the Lease up, campaigning again", "err", termErr, "retry_in", delay)
			if sleep(ctx, delay) != nil {
				break
			}
			c.setHealth(nil) // a standby is ready again
			delay = min(2*delay, retryMax)
			continue
		}
		delay = retryMin
	}
	return nil
}

// term runs one leader election: it waits for the Lease, collects while it
// holds it, and returns when leadership ends (lost, or given up after an
// error of lead, which is returned).
func (c *Collector) term(ctx context.Context, kv jetstream.KeyValue, lock resourcelock.Interface) error {
	le := c.cfg.LeaderElection
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	// client-go calls OnStartedLeading on a goroutine of its own; it only
	// hands the term's context over and ends with that context, so the
	// collecting happens here, on the goroutine Run owns.
	won := make(chan context.Context)
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   le.LeaseDuration,
		RenewDeadline:   le.RenewDeadline,
		RetryPeriod:     le.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            "faultline-" + Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lctx context.Context) {
				select {
				case won <- lctx:
				case <-lctx.Done():
				}
			},
			OnStoppedLeading: func() {},
			OnNewLeader: func(id string) {
				if id != c.identity {
					c.log.Info("kubeevents: another replica collects", "leader", id)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("kubeevents: leader election: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		elector.Run(runCtx)
	}()
	var leadErr error
	led := false
	select {
	case lctx := <-won:
		led = true
		c.m.leaderChanges.Inc()
		c.log.Info("kubeevents: took the Lease; collecting")
		leadErr = c.lead(lctx, kv)
		if leadErr == nil && ctx.Err() == nil {
			c.log.Warn("kubeevents: lost the Lease; stopped collecting")
		}
	case <-done:
	}
	stop() // client-go releases the Lease if still held
	<-done
	if led {
		c.release(ctx, lock)
	}
	return leadErr
}

// release gives the Lease up if this replica still holds it, so a standby
// takes over within retry_period rather than lease_duration. client-go
// releases it too, but that fails when the stop cancelled a renewal the
// API server had already applied (a conflict on the Lease).
func (c *Collector) release(ctx context.Context, lock resourcelock.Interface) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.LeaderElection.RenewDeadline)
	defer cancel()
	rec, _, err := lock.Get(rctx)
	if err != nil || rec.HolderIdentity != c.identity {
		return // released, taken over, or unreachable: nothing to do
	}
	now := metav1.NewTime(time.Now())
	if err := lock.Update(rctx, resourcelock.LeaderElectionRecord{
		LeaderTransitions:    rec.LeaderTransitions,
		LeaseDurationSeconds: 1,
		AcquireTime:          now,
		RenewTime:            now,
	}); err != nil {
		c.log.Warn("kubeevents: could not release the Lease; a standby takes over once it expires", "err", err)
		return
	}
	c.log.Info("kubeevents: released the Lease")
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
