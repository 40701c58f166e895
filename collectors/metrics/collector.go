// Package metrics is the metrics collector: it scrapes Prometheus
// endpoints (static targets and pods found by their prometheus.io/*
// annotations) and runs PromQL queries against a Prometheus server, each on
// its interval, and publishes every sample on fl.metric.<cluster>.<source>
// for the steady-state analyzer. A target that fails is retried with
// exponential backoff and reported by a target-health sample every
// interval, so a telemetry gap is visible downstream. See README.md.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/faultline/faultline/collectors"
	"github.com/faultline/faultline/schemas"
)

// Name is the collector's name: `faultline collect metrics`.
const Name = "metrics"

// publishTimeout bounds the publication of one scrape's samples, also when
// the collector is stopping (what was read is still published).
const publishTimeout = 30 * time.Second

// Collector scrapes and queries; see the package documentation.
type Collector struct {
	cfg     Config
	deps    collectors.Deps
	log     *slog.Logger
	metrics *collectorMetrics
	pub     *publisher
	// slots bounds scrapes and queries running at once. Overflow policy: a
	// target waits for a slot until its next interval, then skips that
	// scrape (result "skipped", reported as down).
	slots chan struct{}
	jobs  []*job // static targets and queries
	pods  *podDiscovery
}

// job is one thing read on an interval: a scrape target or a query.
type job struct {
	key      string // unique among running jobs
	source   string
	target   string // what samples carry as target
	query    string // query name, for query jobs
	labels   map[string]string
	interval time.Duration
	timeout  time.Duration
	collect  func(ctx context.Context, at time.Time) ([]schemas.MetricSample, error)
}

// New builds the collector from its configuration. Pod discovery needs
// d.Kube.
func New(d collectors.Deps, cfg Config) (*Collector, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("metrics: invalid configuration: %w", errors.Join(errs...))
	}
	if len(cfg.Scrape.Targets) == 0 && !cfg.Scrape.Pods.Enabled && len(cfg.PromQL.Queries) == 0 {
		return nil, errors.New("metrics: nothing to collect: list collectors.metrics.scrape.targets, enable collectors.metrics.scrape.kubernetes_pods or list collectors.metrics.promql.queries")
	}
	if d.Bus == nil {
		return nil, errors.New("metrics: no bus")
	}
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newCollectorMetrics(d.Metrics)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	m.slotsLimit.Set(float64(cfg.MaxConcurrent))
	c := &Collector{
		cfg:     cfg,
		deps:    d,
		log:     log,
		metrics: m,
		pub:     &publisher{bus: d.Bus, cluster: d.Cluster, metrics: m},
		slots:   make(chan struct{}, cfg.MaxConcurrent),
	}
	for i, t := range cfg.Scrape.Targets {
		j, err := c.staticJob(t)
		if err != nil {
			return nil, fmt.Errorf("metrics: scrape.targets[%d]: %w", i, err)
		}
		c.jobs = append(c.jobs, j)
	}
	if len(cfg.PromQL.Queries) > 0 {
		qjobs, err := c.queryJobs()
		if err != nil {
			return nil, fmt.Errorf("metrics: promql: %w", err)
		}
		c.jobs = append(c.jobs, qjobs...)
	}
	if cfg.Scrape.Pods.Enabled {
		if d.Kube == nil {
			return nil, errors.New("metrics: scrape.kubernetes_pods is enabled but there is no Kubernetes API connection (set the kubernetes section)")
		}
		p, err := newPodDiscovery(c, d.Kube)
		if err != nil {
			return nil, fmt.Errorf("metrics: pod discovery: %w", err)
		}
		c.pods = p
	}
	if d.AddReadyCheck != nil {
		d.AddReadyCheck("collector-metrics", c.ready)
	}
	return c, nil
}

// Name implements collectors.Collector.
func (c *Collector) Name() string { return Name }

func (c *Collector) ready(context.Context) error {
	if c.pods != nil && !c.pods.synced.Load() {
		return errors.New("metrics: pod discovery has not listed the pods yet")
	}
	return nil
}

// Run scrapes and queries until ctx ends. On ctx end every job stops after
// publishing what it has read (bounded by publishTimeout), then Run returns
// nil.
func (c *Collector) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for _, j := range c.jobs {
		wg.Go(func() { c.runJob(ctx, j) })
	}
	c.log.Info("metrics: collector started", "static_targets", len(c.cfg.Scrape.Targets),
		"queries", len(c.cfg.PromQL.Queries), "pod_discovery", c.pods != nil)
	var err error
	if c.pods != nil {
		err = c.pods.run(ctx, &wg)
	} else {
		<-ctx.Done()
	}
	cancel()
	wg.Wait()
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

func (c *Collector) staticJob(t Target) (*job, error) {
	interval, timeout := c.cfg.schedule(t.Interval, t.Timeout)
	client, err := newHTTPClient(httpOptions{CAFile: t.CAFile, BearerTokenFile: t.BearerTokenFile, MaxConns: 2})
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(t.URL)
	if err != nil {
		return nil, fmt.Errorf("parse url: %w", err)
	}
	labels := map[string]string{"instance": u.Host}
	for k, v := range t.Labels {
		labels[k] = v
	}
	return c.scrapeJob("static|"+t.URL, t.URL, labels, interval, timeout, t.Format, client), nil
}

func (c *Collector) scrapeJob(key, target string, labels map[string]string, interval, timeout time.Duration, format string, client *http.Client) *job {
	s := &scraper{
		client:     client,
		url:        target,
		accept:     acceptHeader(format),
		maxBody:    int64(c.cfg.MaxBodySize),
		maxSamples: c.cfg.MaxSamples,
		base:       seriesBase{Source: c.cfg.Scrape.Source, Target: target, Labels: labels},
	}
	return &job{
		key: key, source: c.cfg.Scrape.Source, target: target, labels: labels,
		interval: interval, timeout: timeout, collect: s.collect,
	}
}

func (c *Collector) queryJobs() ([]*job, error) {
	p := c.cfg.PromQL
	u, err := url.Parse(p.URL)
	if err != nil {
		return nil, fmt.Errorf("parse url: %w", err)
	}
	hc, err := newHTTPClient(httpOptions{
		CAFile: p.CAFile, BearerTokenFile: p.BearerTokenFile, Username: p.Username, PasswordFile: p.PasswordFile,
		AuthHost: u.Host, MaxBody: int64(c.cfg.MaxBodySize), MaxConns: c.cfg.MaxConcurrent,
	})
	if err != nil {
		return nil, err
	}
	client, err := api.NewClient(api.Config{Address: p.URL, Client: hc})
	if err != nil {
		return nil, fmt.Errorf("prometheus client: %w", err)
	}
	papi := v1.NewAPI(client)
	var jobs []*job
	for _, q := range p.Queries {
		interval, timeout := c.cfg.schedule(q.Interval, q.Timeout)
		base := seriesBase{Source: p.Source, Target: p.URL, Labels: q.Labels}
		qr := &querier{api: papi, name: q.Name, expr: q.Query, timeout: timeout, maxSamples: c.cfg.MaxSamples, base: base,
			warn: c.log.With("source", p.Source).Warn}
		jobs = append(jobs, &job{
			key: "query|" + q.Name, source: p.Source, target: p.URL, query: q.Name, labels: q.Labels,
			interval: interval, timeout: timeout, collect: qr.collect,
		})
	}
	return jobs, nil
}

// backoff is the delay before retry n (1-based): initial doubled n-1
// times, capped at max.
func (c *Collector) backoff(n int) time.Duration {
	d := c.cfg.Backoff.Initial
	for i := 1; i < n && d < c.cfg.Backoff.Max; i++ {
		d *= 2
	}
	return min(d, c.cfg.Backoff.Max)
}

// firstTick spreads jobs over their interval by a stable offset, as
// Prometheus does, so targets are not all scraped at the same instant.
func firstTick(now time.Time, key string, interval time.Duration) time.Time {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	offset := time.Duration(h.Sum64() % uint64(interval))
	t := now.Truncate(interval).Add(offset)
	for !t.After(now) {
		t = t.Add(interval)
	}
	return t
}

// nextAfter is the first tick of the series base+k*interval after now.
func nextAfter(base time.Time, interval time.Duration, now time.Time) time.Time {
	if base.After(now) {
		return base
	}
	k := now.Sub(base)/interval + 1
	return base.Add(k * interval)
}

// targetState is what a job knows about its target's health.
type targetState struct {
	failures    int
	lastErr     error
	lastSuccess time.Time
	state       string // "", "up" or "down"
}

// runJob reads one target or query until ctx ends.
//
// Every interval (tick) the job either attempts a read or, while it waits
// out a backoff, publishes a target-health sample saying the target is
// still down. A success publishes the samples and an up sample; a failure
// publishes a down sample with the error and the time of the next attempt,
// backoff(failures) after the failed one ended: retries may come sooner
// than the next tick (fast recovery) or later (less load on a sick target).
func (c *Collector) runJob(ctx context.Context, j *job) {
	log := c.log.With("source", j.source, "target", j.target)
	if j.query != "" {
		log = log.With("query", j.query)
	}
	st := &targetState{}
	defer c.setState(j, st, "")
	base := firstTick(time.Now(), j.key, j.interval)
	nextTick, nextAttempt := base, base
	for {
		wake := nextTick
		if nextAttempt.Before(wake) {
			wake = nextAttempt
		}
		if !sleepUntil(ctx, wake) {
			return
		}
		at := wake.Truncate(time.Millisecond)
		if !nextAttempt.After(wake) {
			nextAttempt = c.attempt(ctx, j, st, at, nextAfter(base, j.interval, wake), log)
		} else {
			// A tick while backing off: say again that the target is down.
			c.publishHealth(ctx, j, at, c.health(st, nextAttempt), log)
		}
		if ctx.Err() != nil {
			return
		}
		if now := time.Now(); !nextTick.After(now) {
			nt := nextAfter(base, j.interval, now)
			// Ticks that passed while reading, less the one the attempt
			// (or health sample) just made stands for.
			missed := int(nt.Sub(nextTick)/j.interval) - 1
			if missed > 0 {
				c.metrics.missed.WithLabelValues(j.source).Add(float64(missed))
				log.Warn("metrics: intervals missed: reading and publishing took longer than the interval", "missed", missed, "interval", j.interval)
			}
			nextTick = nt
		}
		if st.failures == 0 {
			nextAttempt = nextTick
		}
	}
}

// attempt reads the target once, publishes the outcome, and returns when
// to retry after a failure.
func (c *Collector) attempt(ctx context.Context, j *job, st *targetState, at, nextTick time.Time, log *slog.Logger) time.Time {
	samples, err := c.collectBounded(ctx, j, at, nextTick)
	if err != nil && ctx.Err() != nil {
		return time.Time{} // stopping: a read cut short is not a target failure
	}
	if err != nil {
		result := resultOf(err)
		prevErr := st.lastErr
		st.failures++
		st.lastErr = err
		c.setState(j, st, "down")
		retry := time.Now().Add(c.backoff(st.failures)).Truncate(time.Millisecond)
		level := slog.LevelDebug
		if prevErr == nil || prevErr.Error() != err.Error() {
			level = slog.LevelWarn // first failure or a new reason; repeats go to debug
		}
		log.Log(ctx, level, "metrics: scrape failed; retrying with backoff", "result", result, "error", err,
			"consecutive_failures", st.failures, "next_attempt", retry)
		c.metrics.scrapes.WithLabelValues(j.source, result).Inc()
		c.publishHealth(ctx, j, at, c.health(st, retry), log)
		return retry
	}
	if st.failures > 0 {
		log.Info("metrics: target recovered", "after_failures", st.failures)
	}
	st.failures, st.lastErr, st.lastSuccess = 0, nil, at
	c.setState(j, st, "up")
	msgs := append(samples, c.healthSample(j, at, c.health(st, time.Time{})))
	if err := c.pub.publish(ctx, j.source, msgs); err != nil {
		c.metrics.scrapes.WithLabelValues(j.source, resultPublish).Inc()
		log.Error("metrics: publish failed; the samples of this scrape are not on the bus", "samples", len(msgs), "error", err)
		return time.Time{}
	}
	c.metrics.scrapes.WithLabelValues(j.source, resultSuccess).Inc()
	log.Debug("metrics: scraped", "samples", len(samples))
	return time.Time{}
}

// collectBounded runs j.collect in a scrape slot, within j.timeout. It
// waits for a slot until nextTick at most.
func (c *Collector) collectBounded(ctx context.Context, j *job, at, nextTick time.Time) ([]schemas.MetricSample, error) {
	select {
	case c.slots <- struct{}{}:
	default:
		wait, cancel := context.WithDeadline(ctx, nextTick)
		defer cancel()
		select {
		case c.slots <- struct{}{}:
		case <-wait.Done():
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("%w (all %d slots of collectors.metrics.max_concurrent busy)", errSkipped, cap(c.slots))
		}
	}
	c.metrics.slotsInUse.Inc()
	defer func() {
		<-c.slots
		c.metrics.slotsInUse.Dec()
	}()
	rctx, cancel := context.WithTimeout(ctx, j.timeout)
	defer cancel()
	start := time.Now()
	samples, err := j.collect(rctx, at)
	c.metrics.duration.WithLabelValues(j.source).Observe(time.Since(start).Seconds())
	if err != nil && rctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
		err = fmt.Errorf("%w (timeout %s)", err, j.timeout)
	}
	return samples, err
}

func (c *Collector) health(st *targetState, next time.Time) schemas.TargetHealth {
	h := schemas.TargetHealth{Up: st.failures == 0, ConsecutiveFailures: st.failures}
	if st.lastErr != nil {
		h.Error = st.lastErr.Error()
	}
	if !st.lastSuccess.IsZero() {
		ls := st.lastSuccess.UTC()
		h.LastSuccess = &ls
	}
	if !next.IsZero() {
		n := next.UTC().Truncate(time.Millisecond)
		h.NextAttempt = &n
	}
	return h
}

func (c *Collector) healthSample(j *job, at time.Time, h schemas.TargetHealth) schemas.MetricSample {
	s := schemas.NewTargetHealthSample(j.source, j.target, at, h)
	s.Query = j.query
	if len(j.labels) > 0 {
		s.Labels = make(map[string]string, len(j.labels))
		for k, v := range j.labels {
			s.Labels[k] = v
		}
	}
	return s
}

func (c *Collector) publishHealth(ctx context.Context, j *job, at time.Time, h schemas.TargetHealth, log *slog.Logger) {
	if err := c.pub.publish(ctx, j.source, []schemas.MetricSample{c.healthSample(j, at, h)}); err != nil {
		log.Error("metrics: publish of the target-health sample failed", "error", err)
	}
}

// setState moves the job between the up and down counts of the targets
// gauge ("" when the job stops).
func (c *Collector) setState(j *job, st *targetState, state string) {
	if st.state == state {
		return
	}
	if st.state != "" {
		c.metrics.targets.WithLabelValues(j.source, st.state).Dec()
	}
	if state != "" {
		c.metrics.targets.WithLabelValues(j.source, state).Inc()
	}
	st.state = state
}

// sleepUntil waits until t or ctx's end; false means ctx ended.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}
