package experiment

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/faultline/faultline/analyzers"
	"github.com/faultline/faultline/analyzers/rules"
	"github.com/faultline/faultline/analyzers/steadystate"
	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/bus/bustest"
	"github.com/faultline/faultline/injectors"
	"github.com/faultline/faultline/injectors/guard"
	"github.com/faultline/faultline/injectors/injectortest"
	"github.com/faultline/faultline/injectors/netpartition"
	"github.com/faultline/faultline/injectors/podkill"
	"github.com/faultline/faultline/injectors/runner"
	"github.com/faultline/faultline/injectors/signing"
	"github.com/faultline/faultline/injectors/starvation"
	"github.com/faultline/faultline/internal/testkube"
	"github.com/faultline/faultline/internal/testprom"
	"github.com/faultline/faultline/schemas"
)

// The control plane runs its controllers and scheduler, as the issue asks:
// ReplicaSets replace killed pods, the scheduler binds them. Without a
// kubelet, replacements never become ready, which the service below sees as
// errors, as it would see crash-looping pods.
var cluster = testkube.NewShared(func() testkube.Options {
	o := injectortest.Options()
	o.Controllers = true
	return o
}())

func TestMain(m *testing.M) { injectortest.Main(m, cluster) }

const testCluster = "test"

// world is a real API server with a service split in two groups of two
// pods (track=control and track=canary), a small service that exports each
// group's error ratio — the share of the group's pods that are gone, not
// ready or cut off by a partition, read from the API server — scraped by a
// real Prometheus, an embedded bus, an injector with the three fault types
// and the steady-state analyzer.
type world struct {
	t        testing.TB
	bus      *bus.Bus
	kube     kubernetes.Interface
	ns       string
	key      nkeys.KeyPair
	exporter *testprom.Exporter
	prom     *testprom.Server
}

func newWorld(t testing.TB) *world {
	t.Helper()
	c := cluster.Get(t)
	testprom.Require(t)
	w := &world{t: t, kube: injectortest.Admin(t, c)}
	w.bus, _ = bustest.Start(t)
	w.ns = injectortest.Namespace(t, w.kube, injectortest.NamespaceOptions{OptIn: true})
	nodes := injectortest.Nodes(t, w.kube, injectortest.Name("node-"))
	for _, track := range []string{"control", "canary"} {
		injectortest.NewWorkload(t, w.kube, w.ns, injectortest.WorkloadOptions{Name: "shop-" + track, Replicas: 2, Nodes: nodes,
			Labels: map[string]string{"app": "shop", "track": track}})
	}
	var err error
	if w.key, err = signing.NewKey(); err != nil {
		t.Fatal(err)
	}
	w.startService()
	w.prom = testprom.Start(t, testprom.Options{Targets: []string{w.exporter.Addr}, ScrapeInterval: 500 * time.Millisecond})
	w.prom.WaitForSeries(t, `shop_error_ratio{track="canary"}`, 30*time.Second)
	w.startInjector()
	w.startAnalyzer()
	return w
}

// startService runs the exporter: every 100ms it reads the groups' pods
// from the API server and sets shop_error_ratio{namespace,app,track}.
func (w *world) startService() {
	reg := prometheus.NewRegistry()
	ratio := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "shop_error_ratio", Help: "Share of requests failing, per group."}, []string{"namespace", "app", "track"})
	reg.MustRegister(ratio)
	measure := func(ctx context.Context) {
		for _, track := range []string{"control", "canary"} {
			pods, err := w.kube.CoreV1().Pods(w.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=shop,track=" + track})
			if err != nil {
				continue
			}
			healthy := 0
			for _, p := range pods.Items {
				if servesTraffic(&p) {
					healthy++
				}
			}
			ratio.WithLabelValues(w.ns, "shop", track).Set(1 - float64(healthy)/2)
		}
	}
	measure(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				measure(ctx)
			}
		}
	}()
	w.t.Cleanup(func() { cancel(); wg.Wait() })
	w.exporter = testprom.StartExporter(w.t, reg)
}

// servesTraffic: a pod answers when it exists, is ready, is not being
// deleted and no partition cuts it off.
func servesTraffic(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Labels[netpartition.DefaultLabelKey] != "" {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (w *world) startInjector() {
	pub, _ := w.key.PublicKey()
	gc := guard.DefaultConfig()
	gc.AllowedNamespaces = []string{w.ns}
	gc.TrustedKeys = []string{pub}
	g, err := guard.New(gc, w.kube)
	if err != nil {
		w.t.Fatal(err)
	}
	d := injectors.Deps{Kube: w.kube, Log: injectortest.Logger()}
	pk, _ := podkill.New(d, podkill.DefaultConfig())
	np, _ := netpartition.New(d, netpartition.DefaultConfig())
	st, _ := starvation.New(d, starvation.DefaultConfig())
	rc := runner.DefaultConfig()
	rc.HeartbeatInterval, rc.HeartbeatTimeout, rc.ReconcileInterval = 200*time.Millisecond, time.Second, 200*time.Millisecond
	r, err := runner.New(runner.Options{Config: rc, Guard: g, Injectors: []injectors.Injector{pk, np, st}, Bus: w.bus,
		Cluster: testCluster, Log: injectortest.Logger(), Metrics: prometheus.NewRegistry()})
	if err != nil {
		w.t.Fatal(err)
	}
	w.run("injector", r.Run)
	waitConsumer(w.t, w.bus, bus.StreamFault, "injector-"+testCluster)
}

// waitConsumer waits until a durable consumer exists: a consumer made
// with DeliverNew (the injector's) misses what is published before.
func waitConsumer(t testing.TB, b *bus.Bus, stream, name string) {
	t.Helper()
	bustest.WaitFor(t, 30*time.Second, "consumer "+name, func() bool {
		_, err := b.JetStream().Consumer(context.Background(), stream, name)
		return err == nil
	})
}

func (w *world) startAnalyzer() {
	client, err := api.NewClient(api.Config{Address: w.prom.URL})
	if err != nil {
		w.t.Fatal(err)
	}
	a, err := steadystate.New(steadystate.DefaultConfig(), steadystate.Deps{Bus: w.bus, Cluster: testCluster,
		Log: injectortest.Logger(), Metrics: prometheus.NewRegistry(), Prometheus: promv1.NewAPI(client)})
	if err != nil {
		w.t.Fatal(err)
	}
	w.run("steady-state analyzer", a.Run)
}

// run runs a component until the test ends.
func (w *world) run(name string, f func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	w.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				w.t.Errorf("%s: %v", name, err)
			}
		case <-time.After(30 * time.Second):
			w.t.Errorf("%s did not stop", name)
		}
	})
}

// experiment parses an experiment on the world's groups with one indicator
// (the canary's error ratio under tolerance) and the given method.
func (w *world) experiment(name, tolerance, method string) *schemas.Experiment {
	w.t.Helper()
	doc := fmt.Sprintf(`name: %s
cluster: %s
groups:
  control: {namespace: %s, selector: {matchLabels: {app: shop, track: control}}}
  experimental: {namespace: %s, selector: {matchLabels: {app: shop, track: canary}}}
interval: 1s
warmup: 3s
hysteresis: 2
heartbeat_timeout: 3s
abort_when:
  telemetry_gap: {intervals: 3}
steady_state:
  - name: error-ratio
    promql: max(shop_error_ratio{{{.Matchers}}})
    tolerance: %q
method:
%s`, name, testCluster, w.ns, w.ns, tolerance, method)
	e, err := schemas.ParseExperiment([]byte(doc))
	if err != nil {
		w.t.Fatalf("experiment: %v\n%s", err, doc)
	}
	return e
}

func (w *world) runExperiment(ctx context.Context, e *schemas.Experiment) *Report {
	w.t.Helper()
	var progress strings.Builder
	rep, err := Run(ctx, Options{Experiment: e, Bus: w.bus, Cluster: testCluster, Key: w.key, Progress: &progress, Log: injectortest.Logger()})
	if err != nil {
		w.t.Fatalf("run: %v\n%s", err, progress.String())
	}
	w.t.Logf("progress:\n%s", progress.String())
	return rep
}

// leftovers counts the fault records, NetworkPolicies, stress pods and
// partition labels of a run still present.
func (w *world) leftovers(runID string) int {
	w.t.Helper()
	ctx := context.Background()
	store, err := runner.OpenStore(ctx, w.bus, testCluster)
	if err != nil {
		w.t.Fatal(err)
	}
	entries, err := store.List(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if e.Record.Command.ExperimentID == runID {
			n++
		}
	}
	sel := metav1.ListOptions{LabelSelector: injectors.LabelExperiment + "=" + injectors.LabelValue(runID)}
	nps, _ := w.kube.NetworkingV1().NetworkPolicies(w.ns).List(ctx, sel)
	stress, _ := w.kube.CoreV1().Pods(w.ns).List(ctx, sel)
	labelled, _ := w.kube.CoreV1().Pods(w.ns).List(ctx, metav1.ListOptions{LabelSelector: netpartition.DefaultLabelKey})
	return n + len(nps.Items) + len(stress.Items) + len(labelled.Items)
}

func metav1ListFault() metav1.ListOptions {
	return metav1.ListOptions{LabelSelector: injectors.LabelFault + "=" + string(schemas.FaultResourceStarvation)}
}

// startRules runs the rules analyzer with the default ruleset on the bus.
func (w *world) startRules() {
	reg := prometheus.NewRegistry()
	a, err := rules.New(rules.DefaultConfig(), rules.NewMemoryWindowStore(0, nil), injectortest.Logger(), reg)
	if err != nil {
		w.t.Fatal(err)
	}
	r, err := analyzers.NewRunner(a, analyzers.Deps{Bus: w.bus, Cluster: testCluster, Log: injectortest.Logger(), Metrics: reg}, 1)
	if err != nil {
		w.t.Fatal(err)
	}
	w.run("rules analyzer", r.Run)
}

// publishAudit publishes the first event of a recorded audit file as the
// audit collectors do, moved from namespace from into the world's and with
// a new audit ID.
func (w *world) publishAudit(path, from string) {
	w.t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		w.t.Fatal(err)
	}
	line := bytes.SplitN(raw, []byte("\n"), 2)[0]
	line = bytes.ReplaceAll(line, []byte(`"`+from+`"`), []byte(`"`+w.ns+`"`))
	line = bytes.ReplaceAll(line, []byte("/namespaces/"+from+"/"), []byte("/namespaces/"+w.ns+"/"))
	var ev map[string]any
	if err := json.Unmarshal(line, &ev); err != nil {
		w.t.Fatal(err)
	}
	ev["auditID"] = injectortest.Name("audit-")
	line, _ = json.Marshal(ev)
	var prep schemas.AuditPreparer
	data, pe, err := prep.Prepare(nil, line)
	if err != nil {
		w.t.Fatal(err)
	}
	env := schemas.Envelope{SpecVersion: schemas.SpecVersion, ID: pe.ID, Source: "/test", Type: schemas.TypeAudit,
		Subject: pe.Subject, Time: pe.Time, DataContentType: schemas.ContentTypeJSON, Cluster: testCluster, Data: data}
	msg, err := env.Encode()
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.bus.Publish(context.Background(), bus.Message{Subject: bus.AuditSubject(testCluster), ID: pe.ID, Data: msg}); err != nil {
		w.t.Fatal(err)
	}
}
