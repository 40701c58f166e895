package steadystate

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/schemas"
)

// Bounds of the bus-fed buffers. Overflow policy: the oldest entry of the
// namespace (events) or metric name (samples) is dropped and counted in
// faultline_steadystate_buffer_dropped_total.
const (
	maxEventsPerNamespace = 10000
	maxSamplesPerMetric   = 50000
)

type eventRec struct {
	at     time.Time
	reason string
	pod    string
}

type sampleRec struct {
	at     time.Time
	labels map[string]string
	value  float64
}

// feeds buffers the Kubernetes Events and scraped samples the active runs'
// indicators read, as they arrive on the bus.
type feeds struct {
	mu      sync.Mutex
	events  map[string][]eventRec  // by namespace
	samples map[string][]sampleRec // by metric name
	// members remembers, per run and group, every pod seen in the group,
	// so Events about a killed pod still count.
	members map[string]map[string]bool
}

func newFeeds() *feeds {
	return &feeds{events: map[string][]eventRec{}, samples: map[string][]sampleRec{}, members: map[string]map[string]bool{}}
}

// forget drops what a run kept.
func (f *feeds) forget(runID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := range f.members {
		if strings.HasPrefix(k, runID+"/") {
			delete(f.members, k)
		}
	}
}

// wanted lists the namespaces and metric names the active runs read.
func (a *Analyzer) wanted() (namespaces, metrics map[string]bool) {
	namespaces, metrics = map[string]bool{}, map[string]bool{}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, t := range a.active {
		e := t.run.Experiment
		for _, ind := range e.SteadyState {
			if ind.Events != nil {
				namespaces[e.Groups.Control.Namespace] = true
				namespaces[e.Groups.Experimental.Namespace] = true
			}
			if ind.Metric != nil {
				metrics[ind.Metric.Name] = true
			}
		}
	}
	return namespaces, metrics
}

// followFeeds buffers new Events and samples the active runs need.
func (a *Analyzer) followFeeds(ctx context.Context) ([]jetstream.ConsumeContext, error) {
	var out []jetstream.ConsumeContext
	for _, f := range []struct {
		stream, prefix string
		handle         func(jetstream.Msg)
	}{
		{bus.StreamKubeEvent, bus.PrefixKubeEvent, a.onKubeEvent},
		{bus.StreamMetric, bus.PrefixMetric, a.onSample},
	} {
		cons, err := a.d.Bus.JetStream().OrderedConsumer(ctx, f.stream, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{f.prefix + "." + bus.Token(a.d.Cluster) + ".>"},
			DeliverPolicy:  jetstream.DeliverNewPolicy,
		})
		if err != nil {
			return out, fmt.Errorf("steadystate: follow %s: %w", f.stream, err)
		}
		cc, err := cons.Consume(f.handle)
		if err != nil {
			return out, fmt.Errorf("steadystate: follow %s: %w", f.stream, err)
		}
		out = append(out, cc)
	}
	return out, nil
}

func (a *Analyzer) onKubeEvent(m jetstream.Msg) {
	namespaces, _ := a.wanted()
	if len(namespaces) == 0 {
		return
	}
	env, err := schemas.DecodeEnvelope(m.Data())
	if err != nil {
		return
	}
	ev, err := schemas.ParseKubeEvent(env.Data)
	if err != nil || ev.Regarding.Kind != "Pod" || !namespaces[ev.Regarding.Namespace] {
		return
	}
	a.feeds.mu.Lock()
	defer a.feeds.mu.Unlock()
	buf := append(a.feeds.events[ev.Regarding.Namespace], eventRec{at: env.Time, reason: ev.Reason, pod: ev.Regarding.Name})
	if len(buf) > maxEventsPerNamespace {
		a.m.dropped.Add(float64(len(buf) - maxEventsPerNamespace))
		buf = slices.Delete(buf, 0, len(buf)-maxEventsPerNamespace)
	}
	a.feeds.events[ev.Regarding.Namespace] = buf
}

func (a *Analyzer) onSample(m jetstream.Msg) {
	_, metrics := a.wanted()
	if len(metrics) == 0 {
		return
	}
	env, err := schemas.DecodeEnvelope(m.Data())
	if err != nil {
		return
	}
	var s schemas.MetricSample
	if json.Unmarshal(env.Data, &s) != nil || !metrics[s.Name] {
		return
	}
	a.feeds.mu.Lock()
	defer a.feeds.mu.Unlock()
	buf := append(a.feeds.samples[s.Name], sampleRec{at: s.Timestamp, labels: s.Labels, value: float64(s.Value)})
	if len(buf) > maxSamplesPerMetric {
		a.m.dropped.Add(float64(len(buf) - maxSamplesPerMetric))
		buf = slices.Delete(buf, 0, len(buf)-maxSamplesPerMetric)
	}
	a.feeds.samples[s.Name] = buf
}

// sample reads one group's value of an indicator at time at: the value, or
// why there is none.
func (a *Analyzer) sample(ctx context.Context, run *Run, ind *schemas.Indicator, g schemas.GroupName, at time.Time) (float64, string) {
	sel, _ := run.Experiment.Group(g)
	switch {
	case ind.PromQL != "":
		q, err := schemas.ExpandPromQL(ind.PromQL, g, sel)
		if err != nil {
			return 0, err.Error()
		}
		return a.query(ctx, q, at)
	case ind.Metric != nil:
		return a.metricValue(ind, sel, at)
	case ind.Events != nil:
		return a.eventRate(ctx, run, ind, g, sel, at)
	case ind.Replicas != nil:
		return a.replicas(ctx, ind.Replicas, sel)
	}
	return 0, "the indicator has no source"
}

// metricValue aggregates the latest value (or, with rate, the per-second
// increase over the window) of each of the group's series in the window.
func (a *Analyzer) metricValue(ind *schemas.Indicator, sel schemas.GroupSelector, at time.Time) (float64, string) {
	src := ind.Metric
	from := at.Add(-ind.Window.Std())
	type series struct{ first, last sampleRec }
	bySeries := map[string]*series{}
	a.feeds.mu.Lock()
	for _, s := range a.feeds.samples[src.Name] {
		if !s.at.After(from) || s.at.After(at) || !sel.Matches(s.labels["namespace"], s.labels) || !hasLabels(s.labels, src.Labels) {
			continue
		}
		k := seriesKey(s.labels)
		if cur := bySeries[k]; cur == nil {
			bySeries[k] = &series{first: s, last: s}
		} else {
			if s.at.Before(cur.first.at) {
				cur.first = s
			}
			if !s.at.Before(cur.last.at) {
				cur.last = s
			}
		}
	}
	a.feeds.mu.Unlock()
	var vals []float64
	for _, s := range bySeries {
		if !src.Rate {
			vals = append(vals, s.last.value)
			continue
		}
		dt := s.last.at.Sub(s.first.at).Seconds()
		if dt <= 0 {
			continue
		}
		inc := s.last.value - s.first.value
		if inc < 0 { // counter reset
			inc = s.last.value
		}
		vals = append(vals, inc/dt)
	}
	if len(vals) == 0 {
		return 0, fmt.Sprintf("no sample of %s from the group's pods in the last %v (is the metrics collector scraping them with copy_pod_labels?)", src.Name, ind.Window.Std())
	}
	return aggregate(src.Aggregate, vals), ""
}

func aggregate(how schemas.Aggregation, vals []float64) float64 {
	out := vals[0]
	sum := 0.0
	for _, v := range vals {
		sum += v
		switch how {
		case schemas.AggregateMin:
			out = min(out, v)
		case schemas.AggregateMax:
			out = max(out, v)
		}
	}
	switch how {
	case schemas.AggregateSum:
		return sum
	case schemas.AggregateMin, schemas.AggregateMax:
		return out
	}
	return sum / float64(len(vals))
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func seriesKey(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + l[k] + ",")
	}
	return b.String()
}

// eventRate is the occurrences per minute, within the window, of Events
// with one of the reasons about a pod of the group (every pod seen in the
// group during the run, so a killed pod still counts).
func (a *Analyzer) eventRate(ctx context.Context, run *Run, ind *schemas.Indicator, g schemas.GroupName, sel schemas.GroupSelector, at time.Time) (float64, string) {
	members, why := a.groupPods(ctx, run.ID, g, sel)
	if why != "" {
		return 0, why
	}
	from := at.Add(-ind.Window.Std())
	n := 0
	a.feeds.mu.Lock()
	for _, e := range a.feeds.events[sel.Namespace] {
		if e.at.After(from) && !e.at.After(at) && members[e.pod] && slices.Contains(ind.Events.Reasons, e.reason) {
			n++
		}
	}
	a.feeds.mu.Unlock()
	return float64(n) / ind.Window.Std().Minutes(), ""
}

// groupPods lists the group's pods now and adds them to those seen before.
func (a *Analyzer) groupPods(ctx context.Context, runID string, g schemas.GroupName, sel schemas.GroupSelector) (map[string]bool, string) {
	if a.d.Kube == nil {
		return nil, "no API server access to tell the group's pods (analyzers.steadystate.read_cluster)"
	}
	ls, err := sel.LabelSelector()
	if err != nil {
		return nil, err.Error()
	}
	qctx, cancel := context.WithTimeout(ctx, a.cfg.QueryTimeout)
	defer cancel()
	pods, err := a.d.Kube.CoreV1().Pods(sel.Namespace).List(qctx, metav1.ListOptions{LabelSelector: ls.String()})
	if err != nil {
		return nil, "list the group's pods: " + err.Error()
	}
	key := runID + "/" + string(g)
	a.feeds.mu.Lock()
	defer a.feeds.mu.Unlock()
	m := a.feeds.members[key]
	if m == nil {
		m = map[string]bool{}
		a.feeds.members[key] = m
	}
	for _, p := range pods.Items {
		m[p.Name] = true
	}
	return m, ""
}

// replicas is ready ÷ desired replicas summed over the group's workloads of
// the kind.
func (a *Analyzer) replicas(ctx context.Context, src *schemas.ReplicasSource, sel schemas.GroupSelector) (float64, string) {
	if a.d.Kube == nil {
		return 0, "no API server access to read the group's workloads (analyzers.steadystate.read_cluster)"
	}
	ls, err := sel.LabelSelector()
	if err != nil {
		return 0, err.Error()
	}
	qctx, cancel := context.WithTimeout(ctx, a.cfg.QueryTimeout)
	defer cancel()
	var ready, desired int32
	match := func(tmpl map[string]string) bool { return ls.Matches(labels.Set(tmpl)) }
	apps := a.d.Kube.AppsV1()
	switch src.Kind {
	case schemas.WorkloadStatefulSet:
		l, err := apps.StatefulSets(sel.Namespace).List(qctx, metav1.ListOptions{})
		if err != nil {
			return 0, "list statefulsets: " + err.Error()
		}
		for _, w := range l.Items {
			if match(w.Spec.Template.Labels) && w.Spec.Replicas != nil {
				desired += *w.Spec.Replicas
				ready += w.Status.ReadyReplicas
			}
		}
	case schemas.WorkloadReplicaSet:
		l, err := apps.ReplicaSets(sel.Namespace).List(qctx, metav1.ListOptions{})
		if err != nil {
			return 0, "list replicasets: " + err.Error()
		}
		for _, w := range l.Items {
			if match(w.Spec.Template.Labels) && w.Spec.Replicas != nil {
				desired += *w.Spec.Replicas
				ready += w.Status.ReadyReplicas
			}
		}
	default:
		l, err := apps.Deployments(sel.Namespace).List(qctx, metav1.ListOptions{})
		if err != nil {
			return 0, "list deployments: " + err.Error()
		}
		for _, w := range l.Items {
			if match(w.Spec.Template.Labels) && w.Spec.Replicas != nil {
				desired += *w.Spec.Replicas
				ready += w.Status.ReadyReplicas
			}
		}
	}
	if desired == 0 {
		return 0, fmt.Sprintf("no %s of the group with desired replicas", src.Kind)
	}
	return float64(ready) / float64(desired), ""
}
