package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/bus/bustest"
	"github.com/faultline/faultline/injectors"
	"github.com/faultline/faultline/injectors/guard"
	"github.com/faultline/faultline/injectors/injectortest"
	"github.com/faultline/faultline/injectors/signing"
	"github.com/faultline/faultline/schemas"
)

var cluster = injectortest.NewShared()

func TestMain(m *testing.M) { injectortest.Main(m, cluster) }

// markerFault stands in for a fault type so the lifecycle is tested on its
// own against the real API server: "applying" it creates a ConfigMap per
// target pod, reverting deletes them. The fault types have their own tests.
type markerFault struct {
	kube      kubernetes.Interface
	failApply atomic.Bool
	applies   atomic.Int32
}

func (f *markerFault) Fault() schemas.FaultKind { return schemas.FaultPodKill }

func (f *markerFault) Check(cmd *schemas.FaultCommand) error {
	if cmd.PodKill != nil && cmd.PodKill.Interval.Std() < 0 {
		return errors.New("interval must not be negative")
	}
	return nil
}

func (f *markerFault) Interval(cmd *schemas.FaultCommand) time.Duration {
	if cmd.PodKill == nil {
		return 0
	}
	return cmd.PodKill.Interval.Std()
}

func markerName(cmdID, pod string) string { return "marker-" + injectors.LabelValue(cmdID) + "-" + pod }

func (f *markerFault) Plan(_ context.Context, cmd *schemas.FaultCommand, pods []corev1.Pod) (*injectors.Plan, error) {
	p := &injectors.Plan{Command: cmd, Revert: injectors.Revert{Fault: cmd.Fault, CommandID: cmd.ID}}
	for i := range pods {
		p.Targets = append(p.Targets, injectors.PodRef(&pods[i]))
		ref := schemas.ObjectRef{APIVersion: "v1", Kind: "ConfigMap", Namespace: pods[i].Namespace, Name: markerName(cmd.ID, pods[i].Name)}
		p.Affected = append(p.Affected, ref)
		p.Revert.Objects = append(p.Revert.Objects, ref)
		p.Steps = append(p.Steps, "create configmap "+ref.Name)
		p.Revert.Steps = append(p.Revert.Steps, "delete configmap "+ref.Name)
	}
	return p, nil
}

func (f *markerFault) Apply(ctx context.Context, p *injectors.Plan) error {
	f.applies.Add(1)
	for i, o := range p.Revert.Objects {
		if i == 1 && f.failApply.Load() {
			return errors.New("injected apply failure after the first object")
		}
		_, err := f.kube.CoreV1().ConfigMaps(o.Namespace).Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: o.Name, Labels: injectors.ObjectLabels(p.Command)},
		}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return nil
}

func (f *markerFault) Revert(ctx context.Context, r *injectors.Revert) error {
	for _, o := range r.Objects {
		err := f.kube.CoreV1().ConfigMaps(o.Namespace).Delete(ctx, o.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// env is one test's world: a bus, a cluster namespace with a workload, a
// signing key and the statuses published.
type env struct {
	t       testing.TB
	bus     *bus.Bus
	kube    kubernetes.Interface
	ns      string
	work    *injectortest.Workload
	key     nkeys.KeyPair
	cluster string

	// faults, when set, replaces the marker fault with real fault types.
	faults func() []injectors.Injector

	mu       sync.Mutex
	statuses []*schemas.FaultStatus
}

func newEnv(t testing.TB, replicas int) *env {
	return newEnvOn(t, replicas, 1)
}

// newEnvOn spreads the workload over nodes nodes.
func newEnvOn(t testing.TB, replicas, nodes int) *env {
	t.Helper()
	c := cluster.Get(t)
	b, _ := bustest.Start(t)
	kube := injectortest.Admin(t, c)
	e := &env{t: t, bus: b, kube: kube, cluster: "test"}
	e.ns = injectortest.Namespace(t, kube, injectortest.NamespaceOptions{OptIn: true})
	names := make([]string, nodes)
	for i := range names {
		names[i] = injectortest.Name("node-")
	}
	e.work = injectortest.NewWorkload(t, kube, e.ns, injectortest.WorkloadOptions{Name: "shop", Replicas: replicas, Nodes: injectortest.Nodes(t, kube, names...)})
	var err error
	if e.key, err = signing.NewKey(); err != nil {
		t.Fatal(err)
	}
	sub, err := b.Conn().Subscribe(bus.PrefixFaultStatus+".>", func(m *nats.Msg) {
		env, err := schemas.DecodeEnvelope(m.Data)
		if err != nil {
			t.Errorf("status envelope: %v", err)
			return
		}
		if err := schemas.Validate(schemas.KindFaultStatus, env.Data); err != nil {
			t.Errorf("status does not match its schema: %v\n%s", err, env.Data)
			return
		}
		var st schemas.FaultStatus
		if err := json.Unmarshal(env.Data, &st); err != nil {
			t.Errorf("status: %v", err)
			return
		}
		e.mu.Lock()
		e.statuses = append(e.statuses, &st)
		e.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return e
}

func (e *env) config() (Config, guard.Config) {
	rc := DefaultConfig()
	rc.HeartbeatInterval = 100 * time.Millisecond
	rc.HeartbeatTimeout = 600 * time.Millisecond
	rc.ReconcileInterval = 100 * time.Millisecond
	rc.RevertTimeout = 10 * time.Second
	gc := guard.DefaultConfig()
	pub, _ := e.key.PublicKey()
	gc.TrustedKeys = []string{pub}
	gc.AllowedNamespaces = []string{e.ns}
	return rc, gc
}

type replica struct {
	r      *Runner
	fault  *markerFault
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

// start runs a replica until the test ends (or stop).
func (e *env) start(mut func(*Config, *guard.Config)) *replica {
	e.t.Helper()
	rc, gc := e.config()
	if mut != nil {
		mut(&rc, &gc)
	}
	g, err := guard.New(gc, e.kube)
	if err != nil {
		e.t.Fatal(err)
	}
	f := &markerFault{kube: e.kube}
	faults := []injectors.Injector{f}
	if e.faults != nil {
		faults = e.faults()
	}
	reg := prometheus.NewRegistry()
	r, err := New(Options{Config: rc, Guard: g, Injectors: faults, Bus: e.bus, Cluster: e.cluster,
		Log: injectortest.Logger(), Metrics: reg})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rep := &replica{r: r, fault: f, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { rep.done <- r.Run(ctx) }()
	e.t.Cleanup(func() { rep.stop(e.t) })
	// Ready once its heartbeat is recorded.
	store := e.store()
	bustest.WaitFor(e.t, 10*time.Second, "injector heartbeat", func() bool {
		_, err := store.State.Get(context.Background(), heartbeatKey(e.cluster, r.ID()))
		return err == nil
	})
	// The command consumer delivers only what is published after it exists.
	bustest.WaitFor(e.t, 10*time.Second, "injector consumer", func() bool {
		_, err := e.bus.JetStream().Consumer(context.Background(), bus.StreamFault, r.consumer.Durable)
		return err == nil
	})
	return rep
}

func (rep *replica) stop(t testing.TB) {
	if rep.cancel == nil {
		return
	}
	rep.cancel()
	rep.cancel = nil
	select {
	case err := <-rep.done:
		if err != nil {
			t.Errorf("injector run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("injector did not stop within 30s")
	}
}

func (e *env) store() *Store {
	s, err := OpenStore(context.Background(), e.bus, e.cluster)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// command is a signed command on the workload's first n pods.
func (e *env) command(n int, d time.Duration, mut func(*schemas.FaultCommand)) *schemas.FaultCommand {
	c := injectortest.Command(schemas.FaultPodKill, e.ns, e.work.Pods[:n], d)
	if mut != nil {
		mut(c)
	}
	if err := signCommand(c, e); err != nil {
		e.t.Fatal(err)
	}
	return c
}

func signCommand(c *schemas.FaultCommand, e *env) error { return signing.Sign(c, e.key) }

func (e *env) publish(c *schemas.FaultCommand) {
	e.t.Helper()
	if err := PublishCommand(context.Background(), e.bus, e.cluster, c); err != nil {
		e.t.Fatal(err)
	}
}

// waitStatus waits for the status of cmdID in phase.
func (e *env) waitStatus(cmdID string, phase schemas.FaultPhase) *schemas.FaultStatus {
	e.t.Helper()
	var got *schemas.FaultStatus
	bustest.WaitFor(e.t, 20*time.Second, fmt.Sprintf("status %s of %s", phase, cmdID), func() bool {
		got = e.find(cmdID, phase)
		return got != nil
	})
	return got
}

func (e *env) find(cmdID string, phase schemas.FaultPhase) *schemas.FaultStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.statuses {
		if s.CommandID == cmdID && s.Phase == phase {
			return s
		}
	}
	return nil
}

func (e *env) count(cmdID string, phase schemas.FaultPhase) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, s := range e.statuses {
		if s.CommandID == cmdID && s.Phase == phase {
			n++
		}
	}
	return n
}

// markers lists the ConfigMaps the marker fault created for cmdID.
func (e *env) markers(cmdID string) int {
	e.t.Helper()
	l, err := e.kube.CoreV1().ConfigMaps(e.ns).List(context.Background(), metav1.ListOptions{
		LabelSelector: injectors.LabelCommand + "=" + injectors.LabelValue(cmdID),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(l.Items)
}

func (e *env) waitNoRecord(cmdID string) {
	e.t.Helper()
	s := e.store()
	bustest.WaitFor(e.t, 20*time.Second, "record of "+cmdID+" removed", func() bool {
		r, err := s.Get(context.Background(), FaultKey(e.cluster, cmdID))
		return err == nil && r == nil
	})
}
