package steadystate

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/bus/bustest"
	"github.com/faultline/faultline/injectors/injectortest"
	"github.com/faultline/faultline/schemas"
)

var cluster = injectortest.NewShared()

func TestMain(m *testing.M) { injectortest.Main(m, cluster) }

const testCluster = "test"

// fixture: a bus, the analyzer (no Prometheus; API server access), and a
// namespace with two groups of two pods owned by ReplicaSets.
type fixture struct {
	t       *testing.T
	bus     *bus.Bus
	ns      string
	runs    *Runs
	control *injectortest.Workload
	canary  *injectortest.Workload
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	kube := injectortest.Admin(t, cluster.Get(t))
	f := &fixture{t: t}
	f.bus, _ = bustest.Start(t)
	f.ns = injectortest.Namespace(t, kube, injectortest.NamespaceOptions{})
	nodes := injectortest.Nodes(t, kube, injectortest.Name("node-"))
	f.control = injectortest.NewWorkload(t, kube, f.ns, injectortest.WorkloadOptions{Name: "web-control", Replicas: 2, Nodes: nodes, Labels: map[string]string{"app": "web", "track": "control"}})
	f.canary = injectortest.NewWorkload(t, kube, f.ns, injectortest.WorkloadOptions{Name: "web-canary", Replicas: 2, Nodes: nodes, Labels: map[string]string{"app": "web", "track": "canary"}})
	// As the ReplicaSet controller would: the control group is fully
	// ready, the canary has one of two.
	for _, w := range []struct {
		wl    *injectortest.Workload
		ready int32
	}{{f.control, 2}, {f.canary, 1}} {
		rs := w.wl.ReplicaSet.DeepCopy()
		rs.Status = appsStatus(2, w.ready)
		if _, err := kube.AppsV1().ReplicaSets(f.ns).UpdateStatus(context.Background(), rs, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	a, err := New(DefaultConfig(), Deps{Bus: f.bus, Cluster: testCluster, Log: injectortest.Logger(), Metrics: prometheus.NewRegistry(), Kube: kube})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("analyzer: %v", err)
		}
	})
	if f.runs, err = OpenRuns(context.Background(), f.bus, testCluster); err != nil {
		t.Fatal(err)
	}
	return f
}

// start records a running experiment with one indicator, as the runner
// would after a steady warmup.
func (f *fixture) start(name, indicator string) *Run {
	f.t.Helper()
	doc := fmt.Sprintf(`name: %s
cluster: %s
groups:
  control: {namespace: %s, selector: {matchLabels: {app: web, track: control}}}
  experimental: {namespace: %s, selector: {matchLabels: {app: web, track: canary}}}
interval: 1s
hysteresis: 2
steady_state:
%s
method:
  - fault: pod-kill
    duration: 1m
`, name, testCluster, f.ns, f.ns, indicator)
	e, err := schemas.ParseExperiment([]byte(doc))
	if err != nil {
		f.t.Fatalf("%v\n%s", err, doc)
	}
	now := time.Now().UTC()
	run := &Run{ID: e.RunID(now), Experiment: e, Phase: PhaseRunning, Started: now, Ends: now.Add(time.Minute), Runner: "test"}
	if _, err := f.runs.Create(context.Background(), run); err != nil {
		f.t.Fatal(err)
	}
	return run
}

// ended waits for the run to end and returns its record.
func (f *fixture) ended(id string) *Run {
	f.t.Helper()
	var got *Run
	bustest.WaitFor(f.t, 20*time.Second, "the run to end", func() bool {
		r, _, err := f.runs.Get(context.Background(), id)
		got = r
		return err == nil && r != nil && !r.Phase.Active()
	})
	return got
}

func (f *fixture) publish(subject, id, typ string, at time.Time, payload any) {
	f.t.Helper()
	env, err := schemas.NewEnvelope(schemas.Attributes{ID: id, Source: "/test", Type: typ, Cluster: testCluster, Time: at}, payload)
	if err != nil {
		f.t.Fatal(err)
	}
	data, err := env.Encode()
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.bus.Publish(context.Background(), bus.Message{Subject: subject, ID: id, Data: data}); err != nil {
		f.t.Fatal(err)
	}
}

// feed publishes, every 200ms until stop, what produce makes.
func (f *fixture) feed(produce func(i int, now time.Time)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			produce(i, time.Now().UTC())
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}

// The three bus and API sources each judge the groups and abort the run
// once the canary deviates for the hysteresis.
func TestSourcesDeviate(t *testing.T) {
	t.Run("metric relative to control", func(t *testing.T) {
		f := newFixture(t)
		run := f.start("metric", `  - name: latency
    metric: {name: http_request_seconds, labels: {route: /checkout}}
    tolerance: "<= control * 1.5"`)
		stop := f.feed(func(i int, now time.Time) {
			for _, p := range append(f.control.Pods, f.canary.Pods...) {
				v := 0.1
				if p.Labels["track"] == "canary" {
					v = 0.5 // five times slower
				}
				s := schemas.MetricSample{Name: "http_request_seconds", Value: schemas.SampleValue(v), Timestamp: now, Source: "scrape", Target: "http://" + p.Name, Kind: schemas.MetricGauge,
					Labels: map[string]string{"namespace": f.ns, "pod": p.Name, "app": "web", "track": p.Labels["track"], "route": "/checkout"}}
				f.publish(bus.MetricSubject(testCluster, "scrape"), fmt.Sprintf("s-%s-%d", p.Name, i), schemas.TypeMetric, now, s)
			}
		})
		defer stop()
		got := f.ended(run.ID)
		if got.Phase != PhaseDeviated || got.Indicator != "latency" || !strings.Contains(got.Reason, "control") {
			t.Fatalf("ended %s (%s): %s", got.Phase, got.Indicator, got.Reason)
		}
	})
	t.Run("events per minute", func(t *testing.T) {
		f := newFixture(t)
		run := f.start("events", `  - name: backoff
    events: {reasons: [BackOff]}
    tolerance: "<= 0"`)
		stop := f.feed(func(i int, now time.Time) {
			p := f.canary.Pods[i%2]
			ev := eventsv1.Event{
				TypeMeta:   metav1.TypeMeta{APIVersion: schemas.KubeEventAPIVersion, Kind: "Event"},
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.%d", p.Name, i), Namespace: f.ns, UID: types.UID(fmt.Sprint("u", i)), ResourceVersion: fmt.Sprint(i + 1)},
				EventTime:  metav1.NewMicroTime(now), Reason: "BackOff", Type: "Warning", Action: "Restarting",
				ReportingController: "kubelet", ReportingInstance: "node",
				Regarding: corev1.ObjectReference{Kind: "Pod", Namespace: f.ns, Name: p.Name},
				Note:      "Back-off restarting failed container",
			}
			f.publish(bus.KubeEventSubject(testCluster, f.ns), fmt.Sprintf("e-%s-%d", f.ns, i), schemas.TypeKubeEvent, now, ev)
		})
		defer stop()
		got := f.ended(run.ID)
		if got.Phase != PhaseDeviated || got.Indicator != "backoff" {
			t.Fatalf("ended %s (%s): %s", got.Phase, got.Indicator, got.Reason)
		}
	})
	t.Run("ready replicas", func(t *testing.T) {
		f := newFixture(t)
		run := f.start("replicas", `  - name: ready
    replicas: {kind: ReplicaSet}
    tolerance: "in [0.9, 1]"`)
		got := f.ended(run.ID)
		if got.Phase != PhaseDeviated || got.Indicator != "ready" || !strings.Contains(got.Reason, "0.5") {
			t.Fatalf("ended %s (%s): %s", got.Phase, got.Indicator, got.Reason)
		}
	})
}

func appsStatus(replicas, ready int32) appsv1.ReplicaSetStatus {
	return appsv1.ReplicaSetStatus{Replicas: replicas, ReadyReplicas: ready, AvailableReplicas: ready}
}
