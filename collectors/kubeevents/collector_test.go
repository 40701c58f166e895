package kubeevents

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/bus/bustest"
	"github.com/faultline/faultline/collectors"
	"github.com/faultline/faultline/collectors/collectortest"
	"github.com/faultline/faultline/internal/testkube"
	"github.com/faultline/faultline/schemas"
)

const testCluster = "test"

// The package's tests share one control plane with the controllers (they
// emit real Events); each test works in a namespace of its own.
var kube = testkube.NewShared(testkube.Options{Controllers: true, Logger: slog.New(slog.DiscardHandler)})

func TestMain(m *testing.M) {
	code := m.Run()
	if err := kube.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newNamespace creates a namespace for one test and deletes it after.
func newNamespace(ctx context.Context, t *testing.T, admin kubernetes.Interface, prefix string) string {
	t.Helper()
	ns, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: prefix + randomSuffix()},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = admin.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	return ns.Name
}

func adminClient(t *testing.T, c *testkube.Cluster) kubernetes.Interface {
	t.Helper()
	a, err := kubernetes.NewForConfig(c.Admin.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// testConfig collects ns with fast leader election.
func testConfig(ns string) Config {
	cfg := DefaultConfig()
	cfg.Enabled = true
	cfg.Namespaces = []string{ns}
	cfg.LeaderElection.LeaseNamespace = ns
	cfg.LeaderElection.LeaseName = "faultline-events-test"
	cfg.LeaderElection.LeaseDuration = 3 * time.Second
	cfg.LeaderElection.RenewDeadline = 2 * time.Second
	cfg.LeaderElection.RetryPeriod = 250 * time.Millisecond
	return cfg
}

// running is a collector running in the background.
type running struct {
	c    *Collector
	stop func() error
}

func start(t *testing.T, b *bus.Bus, rc *rest.Config, cfg Config) *running {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	c, err := New(cfg, collectors.Deps{Bus: b, Cluster: testCluster, Log: log, Kube: rc}, Options{})
	if err != nil {
		t.Fatalf("new collector: %v", err)
	}
	stop := collectortest.Run(t, c)
	return &running{c: c, stop: stop}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return -1
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

func (r *running) published() float64  { return value(r.c.m.published) }
func (r *running) duplicates() float64 { return value(r.c.m.duplicates) }
func (r *running) skipped() float64    { return value(r.c.m.skipped) }

// stored is one message of the Events stream.
type stored struct {
	subject string
	id      string
	env     *schemas.Envelope
	ev      eventsv1.Event
}

// streamMessages returns every message of the Events stream, in order.
func streamMessages(t testing.TB, b *bus.Bus) []stored {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := b.JetStream().Stream(ctx, bus.StreamKubeEvent)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []stored
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		env, err := schemas.DecodeEnvelope(m.Data)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		ev, err := schemas.ParseKubeEvent(env.Data)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		out = append(out, stored{subject: m.Subject, id: m.Header.Get(jetstream.MsgIDHeader), env: env, ev: ev})
	}
	return out
}

// waitForIDs waits until every id is on the stream, then checks that the
// stream holds exactly want, each once.
func waitForIDs(t *testing.T, b *bus.Bus, want []string) []stored {
	t.Helper()
	var msgs []stored
	bustest.WaitFor(t, 60*time.Second, fmt.Sprintf("%d Event occurrences on the bus", len(want)), func() bool {
		msgs = streamMessages(t, b)
		return len(msgs) >= len(want)
	})
	got := make([]string, len(msgs))
	for i, m := range msgs {
		got[i] = m.id
	}
	if a, b := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want)); !slices.Equal(a, b) {
		t.Fatalf("the stream holds\n%v\nwant each of\n%v\nonce", a, b)
	}
	return msgs
}

// coreEvent creates a core/v1 Event about a pod, the way kubelet's recorder
// does.
func coreEvent(ctx context.Context, t *testing.T, client kubernetes.Interface, ns, pod, reason string) *corev1.Event {
	t.Helper()
	now := metav1.Now()
	ev, err := client.CoreV1().Events(ns).Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: pod + "."},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pod, APIVersion: "v1"},
		Reason:         reason,
		Message:        "Back-off restarting failed container " + pod,
		Type:           corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: "kubelet", Host: "node-a"},
		FirstTimestamp: now,
		LastTimestamp:  now,
		Count:          1,
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create event: %v", err)
	}
	return ev
}

// recur raises a core Event's count, as a recorder does when it recurs.
func recur(ctx context.Context, t *testing.T, client kubernetes.Interface, ev *corev1.Event) *corev1.Event {
	t.Helper()
	ev = ev.DeepCopy()
	ev.Count++
	ev.LastTimestamp = metav1.Now()
	out, err := client.CoreV1().Events(ev.Namespace).Update(ctx, ev, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update event: %v", err)
	}
	return out
}

func coreID(ev *corev1.Event) string { return schemas.KubeEventID(string(ev.UID), ev.ResourceVersion) }

// TestPublishesEveryOccurrence creates Events through both APIs and makes
// them recur: each occurrence is on the bus once, whichever API is watched.
func TestPublishesEveryOccurrence(t *testing.T) {
	c := kube.Get(t)
	for _, api := range []string{APIAuto, APICore} {
		t.Run("api "+api, func(t *testing.T) {
			ctx := testContext(t, 90*time.Second)
			admin := adminClient(t, c)
			ns := newNamespace(ctx, t, admin, "kev-")
			b, _ := bustest.Start(t)
			cfg := testConfig(ns)
			cfg.API = api
			cfg.LeaderElection.Enabled = false
			r := start(t, b, c.Admin.RESTConfig(), cfg)

			// core/v1, recurring by count.
			a1 := coreEvent(ctx, t, admin, ns, "web-1", "BackOff")
			waitForIDs(t, b, []string{coreID(a1)})
			a2 := recur(ctx, t, admin, a1)
			a3 := recur(ctx, t, admin, a2)

			// events.k8s.io/v1, recurring by series.
			first := metav1.NowMicro()
			e1, err := admin.EventsV1().Events(ns).Create(ctx, &eventsv1.Event{
				ObjectMeta:          metav1.ObjectMeta{Name: "db-0." + randomSuffix()},
				EventTime:           first,
				ReportingController: "example.com/operator",
				ReportingInstance:   "operator-0",
				Action:              "Probe",
				Reason:              "Unhealthy",
				Regarding:           corev1.ObjectReference{Kind: "StatefulSet", Namespace: ns, Name: "db", APIVersion: "apps/v1"},
				Note:                "readiness probe failed",
				Type:                corev1.EventTypeWarning,
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			e2 := e1.DeepCopy()
			e2.Series = &eventsv1.EventSeries{Count: 2, LastObservedTime: metav1.NowMicro()}
			if e2, err = admin.EventsV1().Events(ns).Update(ctx, e2, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}

			want := []string{coreID(a1), coreID(a2), coreID(a3), schemas.KubeEventIDOf(e1), schemas.KubeEventIDOf(e2)}
			msgs := waitForIDs(t, b, want)
			if err := r.stop(); err != nil {
				t.Fatal(err)
			}
			byID := map[string]stored{}
			for _, m := range msgs {
				byID[m.id] = m
			}
			// The recurrences carry their count; the envelope is enriched
			// with the cluster and the object the Event is about.
			for i, a := range []*corev1.Event{a1, a2, a3} {
				m := byID[coreID(a)]
				if m.ev.DeprecatedCount != int32(i+1) {
					t.Errorf("occurrence %d has count %d", i+1, m.ev.DeprecatedCount)
				}
				if m.subject != "fl.kevent."+testCluster+"."+ns || m.env.Cluster != testCluster ||
					m.env.Subject != ns+"/Pod/web-1" || m.env.Source != Source || m.env.Type != schemas.TypeKubeEvent {
					t.Errorf("occurrence %d: subject %s, envelope %+v", i+1, m.subject, m.env)
				}
				if err := schemas.Validate(schemas.KindKubeEvent, m.env.Data); err != nil {
					t.Errorf("payload does not match the schema: %v", err)
				}
			}
			if m := byID[schemas.KubeEventIDOf(e2)]; m.ev.Series == nil || m.ev.Series.Count != 2 ||
				m.env.Subject != ns+"/StatefulSet/db" || m.ev.Regarding.Kind != "StatefulSet" {
				t.Errorf("series update published as %+v / %s", m.env, m.env.Data)
			}
			if d := r.duplicates(); d != 0 {
				t.Errorf("%v occurrences were sent twice", d)
			}
		})
	}
}

// TestRealEventsFromDeployment collects what the controllers and the
// scheduler report about a Deployment.
func TestRealEventsFromDeployment(t *testing.T) {
	c := kube.Get(t)
	ctx := testContext(t, 120*time.Second)
	admin := adminClient(t, c)
	ns := newNamespace(ctx, t, admin, "kev-deploy-")
	if err := c.WaitForServiceAccount(ctx, ns, "default"); err != nil {
		t.Fatal(err)
	}
	b, _ := bustest.Start(t)
	cfg := testConfig(ns)
	r := start(t, b, c.Admin.RESTConfig(), cfg)

	replicas := int32(2)
	labels := map[string]string{"app": "web"}
	if _, err := admin.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.invalid/web:1"}}},
			},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// deployment-controller, replicaset-controller and the scheduler (no
	// node exists, so it cannot place the pods).
	want := map[string]string{"ScalingReplicaSet": "Deployment", "SuccessfulCreate": "ReplicaSet", "FailedScheduling": "Pod"}
	var msgs []stored
	bustest.WaitFor(t, 90*time.Second, "ScalingReplicaSet, SuccessfulCreate and FailedScheduling on the bus", func() bool {
		msgs = streamMessages(t, b)
		seen := map[string]bool{}
		for _, m := range msgs {
			if kind, ok := want[m.ev.Reason]; ok && m.ev.Regarding.Kind == kind {
				seen[m.ev.Reason] = true
			}
		}
		return len(seen) == len(want)
	})
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, m := range msgs {
		ids[m.id]++
		if !strings.HasPrefix(m.env.Subject, ns+"/"+m.ev.Regarding.Kind+"/") || m.env.Cluster != testCluster {
			t.Errorf("%s: envelope subject %q cluster %q", m.ev.Reason, m.env.Subject, m.env.Cluster)
		}
		if m.id != schemas.KubeEventIDOf(&m.ev) {
			t.Errorf("%s: id %s does not match uid and resourceVersion", m.ev.Reason, m.id)
		}
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("%s stored %d times", id, n)
		}
	}
}

// TestRestartNoDuplicatesNoGap stops the collector, lets Events happen and
// recur, and starts it again.
func TestRestartNoDuplicatesNoGap(t *testing.T) {
	c := kube.Get(t)
	ctx := testContext(t, 90*time.Second)
	admin := adminClient(t, c)
	ns := newNamespace(ctx, t, admin, "kev-restart-")
	b, _ := bustest.Start(t)
	cfg := testConfig(ns)

	r1 := start(t, b, c.Admin.RESTConfig(), cfg)
	var before []*corev1.Event
	var want []string
	for i := range 5 {
		ev := coreEvent(ctx, t, admin, ns, fmt.Sprintf("before-%d", i), "BackOff")
		before = append(before, ev)
		want = append(want, coreID(ev))
	}
	waitForIDs(t, b, want)
	if err := r1.stop(); err != nil {
		t.Fatal(err)
	}

	// While down: new Events, and two of the old ones recur.
	for i := range 5 {
		want = append(want, coreID(coreEvent(ctx, t, admin, ns, fmt.Sprintf("while-down-%d", i), "Pulled")))
	}
	want = append(want, coreID(recur(ctx, t, admin, before[0])), coreID(recur(ctx, t, admin, before[3])))

	r2 := start(t, b, c.Admin.RESTConfig(), cfg)
	after := coreEvent(ctx, t, admin, ns, "after", "Started")
	want = append(want, coreID(after))
	waitForIDs(t, b, want)
	if err := r2.stop(); err != nil {
		t.Fatal(err)
	}
	if got := r2.published(); got != 8 {
		t.Errorf("after the restart %v occurrences were published, want 8 (5 new, 2 recurrences, 1 after)", got)
	}
	if got := r2.skipped(); got != 3 {
		t.Errorf("after the restart %v occurrences were recognised as published, want 3", got)
	}
	if d := r1.duplicates() + r2.duplicates(); d != 0 {
		t.Errorf("%v occurrences were sent twice", d)
	}
}

// TestLeaderElectionOneStream runs two replicas as a user holding only the
// documented RBAC: one collects; when it stops the other takes over without
// repeating or missing anything.
func TestLeaderElectionOneStream(t *testing.T) {
	c := kube.Get(t)
	ctx := testContext(t, 120*time.Second)
	admin := adminClient(t, c)
	ns := newNamespace(ctx, t, admin, "kev-leader-")
	grantDocumentedRole(ctx, t, admin, ns, c.User.Name)
	b, _ := bustest.Start(t)
	cfg := testConfig(ns)

	a := start(t, b, c.User.RESTConfig(), cfg)
	bb := start(t, b, c.User.RESTConfig(), cfg)
	replicas := []*running{a, bb}
	var leader, standby *running
	bustest.WaitFor(t, 30*time.Second, "one replica leading", func() bool {
		n := 0
		for _, r := range replicas {
			if r.c.Leading() {
				n++
				leader = r
			} else {
				standby = r
			}
		}
		return n == 1
	})
	var events []*corev1.Event
	var want []string
	for i := range 10 {
		ev := coreEvent(ctx, t, admin, ns, fmt.Sprintf("first-%d", i), "BackOff")
		events = append(events, ev)
		want = append(want, coreID(ev))
	}
	waitForIDs(t, b, want)
	if standby.c.Leading() {
		t.Fatal("both replicas lead")
	}
	if err := leader.stop(); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		want = append(want, coreID(coreEvent(ctx, t, admin, ns, fmt.Sprintf("second-%d", i), "BackOff")))
	}
	want = append(want, coreID(recur(ctx, t, admin, events[0])))
	bustest.WaitFor(t, 30*time.Second, "the standby taking over", standby.c.Leading)
	waitForIDs(t, b, want)
	if got := standby.published(); got != 11 {
		t.Errorf("the second leader published %v occurrences, want 11", got)
	}
	if d := leader.duplicates() + standby.duplicates(); d != 0 {
		t.Errorf("%v occurrences were sent twice", d)
	}
}

// grantDocumentedRole gives user the Role README.md documents for one
// namespace.
func grantDocumentedRole(ctx context.Context, t *testing.T, admin kubernetes.Interface, ns, user string) {
	t.Helper()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "faultline-events"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}},
		},
	}
	if _, err := admin.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "faultline-events"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: "rbac.authorization.k8s.io", Name: user}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestQueueOverflow runs with a queue of one: the informer never waits,
// and every Event still arrives once, through the overflow path.
func TestQueueOverflow(t *testing.T) {
	c := kube.Get(t)
	ctx := testContext(t, 90*time.Second)
	admin := adminClient(t, c)
	ns := newNamespace(ctx, t, admin, "kev-overflow-")
	b, _ := bustest.Start(t)
	cfg := testConfig(ns)
	cfg.QueueSize = 1
	cfg.BatchSize = 1
	cfg.LeaderElection.Enabled = false
	r := start(t, b, c.Admin.RESTConfig(), cfg)
	bustest.WaitFor(t, 30*time.Second, "informers synced", func() bool { return r.c.ready() == nil && r.c.Leading() })

	var want []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 15 {
				ev, err := admin.CoreV1().Events(ns).Create(ctx, &corev1.Event{
					ObjectMeta:     metav1.ObjectMeta{GenerateName: "burst."},
					InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: fmt.Sprintf("burst-%d-%d", w, i)},
					Reason:         "BackOff",
					Count:          1,
				}, metav1.CreateOptions{})
				if err != nil {
					t.Errorf("create event: %v", err)
					return
				}
				mu.Lock()
				want = append(want, coreID(ev))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	waitForIDs(t, b, want)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if value(r.c.m.overflow) == 0 {
		t.Log("the queue never overflowed (the worker kept up); the overflow path was not exercised")
	}
}

// TestOverflowPublishesLatestState drives the overflow policy directly: a
// notification that finds the queue full is not waited for; its Event's
// latest cached state is published later, once, and an Event gone from the
// cache meanwhile is skipped.
func TestOverflowPublishesLatestState(t *testing.T) {
	b, _ := bustest.Start(t)
	cfg := testConfig("shop")
	cfg.QueueSize = 1
	c, err := New(cfg, collectors.Deps{Bus: b, Cluster: testCluster, Kube: &rest.Config{Host: "https://127.0.0.1:1"}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t, 30*time.Second)
	kv, err := c.ensureState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	store := cache.NewStore(cache.MetaNamespaceKeyFunc)
	l := &leader{c: c, kv: kv, pctx: ctx, queue: make(chan *eventsv1.Event, 1), overflow: map[string]struct{}{},
		stores: []cache.Store{store}, published: map[types.UID]string{}}
	event := func(name, uid, rv string, count int32) *corev1.Event {
		return &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Namespace: "shop", Name: name, UID: types.UID(uid), ResourceVersion: rv},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "shop", Name: "web-1"},
			Reason:         "BackOff", Count: count, LastTimestamp: metav1.Now(),
		}
	}
	a1, a2, a3 := event("a", "uid-a", "10", 1), event("a", "uid-a", "11", 2), event("a", "uid-a", "12", 3)
	gone := event("b", "uid-b", "20", 1)
	for _, e := range []*corev1.Event{a1, a2, gone, a3} {
		l.enqueue(e) // never blocks
	}
	if len(l.queue) != 1 || len(l.overflow) != 2 || value(c.m.overflow) != 3 {
		t.Fatalf("queue %d, overflow keys %v, overflow count %v", len(l.queue), l.overflow, value(c.m.overflow))
	}
	// The cache holds the latest state; b was deleted meanwhile.
	if err := store.Add(a3); err != nil {
		t.Fatal(err)
	}
	if err := l.publish(ctx, []*eventsv1.Event{<-l.queue}); err != nil {
		t.Fatal(err)
	}
	if err := l.publishCached(ctx, l.takeOverflow()); err != nil {
		t.Fatal(err)
	}
	// a2 folded into a3 (its count says so); a3 again is skipped.
	if err := l.publishCached(ctx, map[string]struct{}{"shop/a": {}}); err != nil {
		t.Fatal(err)
	}
	msgs := waitForIDs(t, b, []string{coreID(a1), coreID(a3)})
	if msgs[1].ev.DeprecatedCount != 3 {
		t.Errorf("latest state published with count %d", msgs[1].ev.DeprecatedCount)
	}
	if value(c.m.skipped) != 1 || l.published["uid-a"] != "12" {
		t.Errorf("skipped %v, remembered %q", value(c.m.skipped), l.published["uid-a"])
	}
}

// TestReleaseLease: a replica that stops while it still holds the Lease
// (client-go's own release can fail on a conflict) hands it over at once.
func TestReleaseLease(t *testing.T) {
	c := kube.Get(t)
	ctx := testContext(t, 30*time.Second)
	admin := adminClient(t, c)
	ns := newNamespace(ctx, t, admin, "kev-release-")
	b, _ := bustest.Start(t)
	cfg := testConfig(ns)
	col, err := New(cfg, collectors.Deps{Bus: b, Cluster: testCluster, Kube: c.Admin.RESTConfig()}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	lock := &resourcelock.LeaseLock{Client: admin.CoordinationV1(), LockConfig: resourcelock.ResourceLockConfig{Identity: col.Identity()}}
	lock.LeaseMeta.Namespace, lock.LeaseMeta.Name = ns, cfg.LeaderElection.LeaseName
	now := metav1.Now()
	if err := lock.Create(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: col.Identity(), LeaseDurationSeconds: 15,
		AcquireTime: now, RenewTime: now}); err != nil {
		t.Fatal(err)
	}
	col.release(ctx, lock)
	rec, _, err := lock.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rec.HolderIdentity != "" || rec.LeaseDurationSeconds != 1 {
		t.Errorf("after release the Lease is %+v", rec)
	}
	// Held by another replica: left alone.
	other := &resourcelock.LeaseLock{Client: admin.CoordinationV1(), LockConfig: resourcelock.ResourceLockConfig{Identity: "other"}}
	other.LeaseMeta = lock.LeaseMeta
	if _, _, err := other.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if err := other.Update(ctx, resourcelock.LeaderElectionRecord{HolderIdentity: "other", LeaseDurationSeconds: 15, AcquireTime: now, RenewTime: now}); err != nil {
		t.Fatal(err)
	}
	col.release(ctx, lock)
	if rec, _, err := lock.Get(ctx); err != nil || rec.HolderIdentity != "other" {
		t.Errorf("another replica's Lease changed: %+v %v", rec, err)
	}
}
