package kubeevents

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/schemas"
)

// pruneEvery is how often remembered UIDs of Events that are gone are
// forgotten in memory (their KV entries expire by themselves).
const pruneEvery = 5 * time.Minute

// drainGrace bounds how long, after collecting stops, the batch in hand
// may take to be acknowledged. What is not is published by the next leader
// (or after the restart), found by re-listing.
const drainGrace = 10 * time.Second

// leader is the state of one leadership term.
type leader struct {
	c  *Collector
	kv jetstream.KeyValue
	// pctx outlives the term's context by drainGrace.
	pctx context.Context

	// queue carries notifications from the informers to the worker.
	// Overflow policy: the informer's handler never blocks; when the queue
	// is full it notes the Event's key in overflow, and the worker later
	// publishes the Event's latest state from the informer's cache.
	queue chan *eventsv1.Event

	omu      sync.Mutex
	overflow map[string]struct{}

	stores []cache.Store
	// published maps an Event UID to the last resourceVersion published.
	// Only the worker (the goroutine running lead) touches it.
	published map[types.UID]string
}

// lead collects until ctx ends: it loads what was published, starts the
// informers, publishes what the list shows and was not published, then
// every notification.
func (c *Collector) lead(ctx context.Context, kv jetstream.KeyValue) error {
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stopGrace := context.AfterFunc(ctx, func() { time.AfterFunc(drainGrace, cancel) })
	defer stopGrace()

	c.mu.Lock()
	c.leading, c.synced, c.health = true, false, nil
	c.mu.Unlock()
	c.m.leader.Set(1)
	defer func() {
		c.mu.Lock()
		c.leading, c.synced = false, false
		c.mu.Unlock()
		c.m.leader.Set(0)
		c.m.queueLength.Set(0)
		c.m.overflowKeys.Set(0)
	}()

	l := &leader{
		c: c, kv: kv, pctx: pctx,
		queue:    make(chan *eventsv1.Event, c.cfg.QueueSize),
		overflow: map[string]struct{}{},
	}
	var err error
	if l.published, err = c.loadState(ctx, kv); err != nil {
		return err
	}
	c.m.stateEntries.Set(float64(len(l.published)))

	api, err := c.chooseAPI(ctx)
	if err != nil {
		return err
	}
	icx, stopInformers := context.WithCancel(ctx)
	factories := c.factories()
	defer func() {
		stopInformers()
		for _, f := range factories {
			f.Shutdown() // waits for the informers' goroutines
		}
	}()
	handler := cache.ResourceEventHandlerDetailedFuncs{
		AddFunc: func(obj any, initial bool) {
			if initial {
				// The list at start is published from the cache once synced.
				c.m.notifications.WithLabelValues("initial").Inc()
				return
			}
			c.m.notifications.WithLabelValues("add").Inc()
			l.enqueue(obj)
		},
		UpdateFunc: func(_, obj any) {
			c.m.notifications.WithLabelValues("update").Inc()
			l.enqueue(obj)
		},
		DeleteFunc: func(any) {
			c.m.notifications.WithLabelValues("delete").Inc()
		},
	}
	for _, f := range factories {
		var inf cache.SharedIndexInformer
		if api == APIEvents {
			inf = f.Events().V1().Events().Informer()
		} else {
			inf = f.Core().V1().Events().Informer()
		}
		if _, err := inf.AddEventHandler(handler); err != nil {
			return fmt.Errorf("kubeevents: add event handler: %w", err)
		}
		l.stores = append(l.stores, inf.GetStore())
		f.Start(icx.Done())
	}
	for _, f := range factories {
		for typ, ok := range f.WaitForCacheSync(icx.Done()) {
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("kubeevents: %s informer did not sync", typ)
			}
		}
	}
	c.mu.Lock()
	c.synced = true
	c.mu.Unlock()
	c.log.Info("kubeevents: informers synced", "api", api, "namespaces", c.namespacesDescr(), "remembered", len(l.published))

	l.prune()
	if err := l.publishCached(ctx, nil); err != nil {
		return err
	}
	return l.work(ctx)
}

// chooseAPI resolves api: auto.
func (c *Collector) chooseAPI(ctx context.Context) (string, error) {
	if c.cfg.API != APIAuto {
		return c.cfg.API, nil
	}
	_, err := c.client.Discovery().ServerResourcesForGroupVersion(eventsv1.SchemeGroupVersion.String())
	switch {
	case err == nil:
		return APIEvents, nil
	case apierrors.IsNotFound(err):
		c.log.Info("kubeevents: the API server does not serve events.k8s.io/v1; watching v1 Events")
		return APICore, nil
	case ctx.Err() != nil:
		return "", ctx.Err()
	default:
		return "", fmt.Errorf("kubeevents: discover the events API: %w", err)
	}
}

func (c *Collector) factories() []informers.SharedInformerFactory {
	if len(c.cfg.Namespaces) == 0 {
		return []informers.SharedInformerFactory{informers.NewSharedInformerFactory(c.client, 0)}
	}
	out := make([]informers.SharedInformerFactory, 0, len(c.cfg.Namespaces))
	for _, ns := range c.cfg.Namespaces {
		out = append(out, informers.NewSharedInformerFactoryWithOptions(c.client, 0, informers.WithNamespace(ns)))
	}
	return out
}

func (c *Collector) namespacesDescr() string {
	if len(c.cfg.Namespaces) == 0 {
		return "all"
	}
	return strings.Join(c.cfg.Namespaces, ",")
}

// toEvent returns an events.k8s.io/v1 view of an informer object without
// changing the cached object.
func toEvent(obj any) (*eventsv1.Event, bool) {
	switch o := obj.(type) {
	case *eventsv1.Event:
		ev := *o
		return &ev, true
	case *corev1.Event:
		ev := schemas.KubeEventFromCore(o)
		return &ev, true
	}
	return nil, false
}

// enqueue runs on the informer's goroutine: it never blocks.
func (l *leader) enqueue(obj any) {
	ev, ok := toEvent(obj)
	if !ok {
		return
	}
	select {
	case l.queue <- ev:
		l.c.m.queueLength.Set(float64(len(l.queue)))
	default:
		l.c.m.overflow.Inc()
		l.omu.Lock()
		l.overflow[ev.Namespace+"/"+ev.Name] = struct{}{}
		n := len(l.overflow)
		l.omu.Unlock()
		l.c.m.overflowKeys.Set(float64(n))
	}
}

// work publishes notifications until ctx ends.
func (l *leader) work(ctx context.Context) error {
	prune := time.NewTicker(pruneEvery)
	defer prune.Stop()
	// Overflowed keys are looked at every so often even when no
	// notification arrives.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	batch := make([]*eventsv1.Event, 0, l.c.cfg.BatchSize)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return nil
		case ev := <-l.queue:
			batch = append(batch, ev)
		drain:
			for len(batch) < l.c.cfg.BatchSize {
				select {
				case ev := <-l.queue:
					batch = append(batch, ev)
				default:
					break drain
				}
			}
			l.c.m.queueLength.Set(float64(len(l.queue)))
		case <-prune.C:
			l.prune()
		case <-tick.C:
		}
		if len(batch) > 0 {
			if err := l.publish(ctx, batch); err != nil {
				return err
			}
		}
		if keys := l.takeOverflow(); len(keys) > 0 {
			if err := l.publishCached(ctx, keys); err != nil {
				return err
			}
		}
	}
}

func (l *leader) takeOverflow() map[string]struct{} {
	l.omu.Lock()
	defer l.omu.Unlock()
	if len(l.overflow) == 0 {
		return nil
	}
	keys := l.overflow
	l.overflow = map[string]struct{}{}
	l.c.m.overflowKeys.Set(0)
	return keys
}

// publishCached publishes the cached Events (those of keys, or all when
// keys is nil) whose current resourceVersion was not published yet, oldest
// first.
func (l *leader) publishCached(ctx context.Context, keys map[string]struct{}) error {
	var evs []*eventsv1.Event
	consider := func(obj any) {
		ev, ok := toEvent(obj)
		switch {
		case !ok:
		case l.published[ev.UID] == ev.ResourceVersion:
			l.c.m.skipped.Inc()
		default:
			evs = append(evs, ev)
		}
	}
	for _, s := range l.stores {
		if keys == nil {
			for _, obj := range s.List() {
				consider(obj)
			}
			continue
		}
		for k := range keys {
			if obj, ok, err := s.GetByKey(k); err == nil && ok {
				consider(obj)
			}
		}
	}
	slices.SortStableFunc(evs, func(a, b *eventsv1.Event) int {
		if c := schemas.KubeEventTime(a).Compare(schemas.KubeEventTime(b)); c != 0 {
			return c
		}
		return compareRV(a.ResourceVersion, b.ResourceVersion)
	})
	for len(evs) > 0 {
		n := min(len(evs), l.c.cfg.BatchSize)
		if err := l.publish(ctx, evs[:n]); err != nil {
			return err
		}
		evs = evs[n:]
	}
	return nil
}

// publish publishes the occurrences of evs not published before, waits
// for JetStream's acknowledgements (retrying what failed until ctx ends),
// and remembers them. It returns an error only for a broken state bucket.
func (l *leader) publish(ctx context.Context, evs []*eventsv1.Event) error {
	type item struct {
		ev  *eventsv1.Event
		msg bus.Message
	}
	items := make([]item, 0, len(evs))
	for _, ev := range evs {
		if l.published[ev.UID] == ev.ResourceVersion {
			l.c.m.skipped.Inc()
			continue
		}
		msg, err := l.c.message(ev)
		if err != nil {
			l.c.m.invalid.Inc()
			l.c.log.Error("kubeevents: Event not publishable", "namespace", ev.Namespace, "name", ev.Name, "err", err)
			continue
		}
		items = append(items, item{ev, msg})
	}
	delay := retryMin
	for len(items) > 0 {
		bt := l.c.b.NewBatch()
		for _, it := range items {
			_ = bt.Add(l.pctx, it.msg) // failures are in the result
		}
		res, err := bt.Wait(l.pctx)
		l.c.m.published.Add(float64(res.Acked - res.Duplicates))
		l.c.m.duplicates.Add(float64(res.Duplicates))
		failed := make(map[int]bool, len(res.Failed))
		for _, f := range res.Failed {
			failed[f.Index] = true
		}
		var retry []item
		for i, it := range items {
			if failed[i] || (err != nil && len(res.Failed) == 0) {
				retry = append(retry, it)
				continue
			}
			l.remember(it.ev)
		}
		items = retry
		if len(items) == 0 {
			l.c.setHealth(nil)
			break
		}
		if ctx.Err() != nil {
			l.c.log.Warn("kubeevents: stopping with Events not acknowledged; the next leader publishes them", "events", len(items), "err", err)
			return nil
		}
		l.c.m.retries.Inc()
		l.c.setHealth(err)
		l.c.log.Warn("kubeevents: publish failed; retrying", "events", len(items), "err", err, "retry_in", delay)
		if sleep(ctx, delay) != nil {
			return nil
		}
		delay = min(2*delay, retryMax)
	}
	return nil
}

// remember records a published occurrence in memory and in the bucket.
func (l *leader) remember(ev *eventsv1.Event) {
	prev, had := l.published[ev.UID]
	if !had || compareRV(ev.ResourceVersion, prev) > 0 {
		l.published[ev.UID] = ev.ResourceVersion
	}
	l.c.m.stateEntries.Set(float64(len(l.published)))
	if had && compareRV(ev.ResourceVersion, prev) < 0 {
		return // an older occurrence published late: the newer one stays
	}
	if _, err := l.kv.Put(l.pctx, l.c.stateKey(ev.UID), []byte(ev.ResourceVersion)); err != nil {
		l.c.m.stateFailures.Inc()
		l.c.log.Warn("kubeevents: could not remember a published Event; it may be published again after a restart, with the same id",
			"namespace", ev.Namespace, "name", ev.Name, "err", err)
	}
}

// prune forgets UIDs of Events no longer in the cache.
func (l *leader) prune() {
	live := make(map[types.UID]bool, len(l.published))
	for _, s := range l.stores {
		for _, obj := range s.List() {
			if m, err := metaOf(obj); err == nil {
				live[m.GetUID()] = true
			}
		}
	}
	for uid := range l.published {
		if !live[uid] {
			delete(l.published, uid)
		}
	}
	l.c.m.stateEntries.Set(float64(len(l.published)))
}

func metaOf(obj any) (metav1.Object, error) {
	switch o := obj.(type) {
	case *eventsv1.Event:
		return o, nil
	case *corev1.Event:
		return o, nil
	}
	return nil, errors.New("not an Event")
}

// compareRV orders resource versions. They are opaque to clients, but
// etcd's are decimal revisions; others compare equal unless identical.
func compareRV(a, b string) int {
	x, errA := strconv.ParseUint(a, 10, 64)
	y, errB := strconv.ParseUint(b, 10, 64)
	if errA != nil || errB != nil {
		if a == b {
			return 0
		}
		return 1 // unknown order: treat the one at hand as newer
	}
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// stateKey is an Event's key in the state bucket.
func (c *Collector) stateKey(uid types.UID) string {
	return bus.Token(c.cluster) + "." + string(uid)
}

// loadState reads what was published in the cluster, by UID.
func (c *Collector) loadState(ctx context.Context, kv jetstream.KeyValue) (map[types.UID]string, error) {
	prefix := bus.Token(c.cluster) + "."
	w, err := kv.Watch(ctx, prefix+"*", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("kubeevents: read state: %w", err)
	}
	defer w.Stop()
	out := map[types.UID]string{}
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok || e == nil {
				return out, nil // nil marks the end of the current values
			}
			out[types.UID(strings.TrimPrefix(e.Key(), prefix))] = string(e.Value())
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// message builds the envelope of one Event occurrence.
func (c *Collector) message(ev *eventsv1.Event) (bus.Message, error) {
	if ev.UID == "" || ev.ResourceVersion == "" {
		return bus.Message{}, errors.New("event without uid or resourceVersion")
	}
	out := *ev
	schemas.NormalizeKubeEvent(&out)
	out.ManagedFields = nil // field ownership bookkeeping, not the Event
	at := schemas.KubeEventTime(&out)
	if at.IsZero() {
		at = time.Now()
	}
	env, err := schemas.NewEnvelope(schemas.Attributes{
		ID:      schemas.KubeEventIDOf(&out),
		Source:  Source,
		Type:    schemas.TypeKubeEvent,
		Subject: regardingSubject(&out),
		Cluster: c.cluster,
		Time:    at,
	}, &out)
	if err != nil {
		return bus.Message{}, err
	}
	data, err := env.Encode()
	if err != nil {
		return bus.Message{}, err
	}
	return bus.Message{Subject: bus.KubeEventSubject(c.cluster, out.Namespace), ID: env.ID, Data: data}, nil
}

// regardingSubject is the envelope subject: <namespace>/<Kind>/<name> of
// the object the Event is about (namespace left out for cluster-scoped
// objects).
func regardingSubject(ev *eventsv1.Event) string {
	r := ev.Regarding
	parts := make([]string, 0, 3)
	for _, p := range []string{r.Namespace, r.Kind, r.Name} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '_'
		}
		return r
	}, strings.Join(parts, "/"))
}
