// Package injectortest sets up what injector tests need on a real
// kube-apiserver (internal/testkube): namespaces, nodes, "workloads" (a
// ReplicaSet and pods it owns, bound to nodes and marked Running and Ready),
// fault commands, and waits with deadlines. Nothing here fakes the API
// server.
//
// There is no kubelet. The harness is best run without controllers
// ([Options]): then nothing deletes pods bound to nodes that do not exist,
// nothing marks nodes without heartbeats NotReady, and nothing recreates a
// killed pod, so what a test sees is what the injector did. Without
// controllers no ServiceAccount is created either, so [Namespace] creates
// the "default" one itself (the API server refuses pods without it).
//
// Because no kubelet confirms a deletion, a bound pod deleted with a grace
// period above zero stays in the API server with its deletionTimestamp set
// (Terminating) until deleted with grace 0; only grace 0 removes it at once.
//
// Typical use, one cluster per package:
//
//	var kube = injectortest.NewShared()
//
//	func TestMain(m *testing.M) { injectortest.Main(m, kube) }
//
//	func TestKill(t *testing.T) {
//		admin := injectortest.Admin(t, kube.Get(t))
//		ns := injectortest.Namespace(t, admin, injectortest.NamespaceOptions{OptIn: true})
//		nodes := injectortest.Nodes(t, admin, injectortest.Name("node-"), injectortest.Name("node-"))
//		w := injectortest.NewWorkload(t, admin, ns, injectortest.WorkloadOptions{Replicas: 3, Nodes: nodes})
//		cmd := injectortest.Command(schemas.FaultPodKill, ns, w.Pods, time.Minute)
//		...
//	}
package injectortest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/faultline/faultline/injectors"
	"github.com/faultline/faultline/internal/testkube"
	"github.com/faultline/faultline/schemas"
)

// Timeout bounds each wait of the helpers that take no context of their
// own: generous for a loaded CI machine, short enough to fail a hung test.
const Timeout = 30 * time.Second

// PollInterval is how often the waits look again.
const PollInterval = 25 * time.Millisecond

// OptInLabel is the default opt-in label of the guard rails.
const (
	OptInLabelKey   = "faultline.io/chaos"
	OptInLabelValue = "enabled"
)

// Options are the harness options for injector tests: etcd and
// kube-apiserver only, the harness's own log discarded.
func Options() testkube.Options {
	return testkube.Options{Logger: slog.New(slog.DiscardHandler)}
}

// NewShared returns a cluster shared by a package's tests, started with
// [Options] on first use; stop it from TestMain with [Main].
func NewShared() *testkube.Shared { return testkube.NewShared(Options()) }

// Main runs the package's tests and stops the shared cluster.
func Main(m *testing.M, shared *testkube.Shared) {
	code := m.Run()
	if err := shared.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

// Admin returns a client of c as its system:masters user.
func Admin(t testing.TB, c *testkube.Cluster) kubernetes.Interface {
	t.Helper()
	k, err := kubernetes.NewForConfig(c.Admin.RESTConfig())
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	return k
}

// Logger returns a logger for tests: warnings and errors on stderr, more
// with FAULTLINE_TEST_LOG=debug. It never writes through t, so a goroutine
// that outlives its test cannot make it panic.
func Logger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("FAULTLINE_TEST_LOG") == "debug" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// Deps are injector dependencies on kube.
func Deps(kube kubernetes.Interface) injectors.Deps {
	return injectors.Deps{Kube: kube, Log: Logger()}
}

// Context returns a context ending after d or with the test.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Name returns prefix followed by 8 random hex digits, for names that must
// not collide between the tests sharing a cluster.
func Name(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// NamespaceOptions shape a test namespace.
type NamespaceOptions struct {
	// Prefix of the generated name; default "fl-test-".
	Prefix string
	// OptIn labels the namespace faultline.io/chaos=enabled.
	OptIn bool
	// Labels are added to the namespace.
	Labels map[string]string
}

// Namespace creates a namespace with a random name and its "default"
// ServiceAccount (unless the controllers made it first), and deletes the
// namespace at cleanup. Without controllers a deleted namespace stays
// Terminating with its content; the cluster's end removes it.
func Namespace(t testing.TB, kube kubernetes.Interface, o NamespaceOptions) string {
	t.Helper()
	ctx := Context(t, Timeout)
	if o.Prefix == "" {
		o.Prefix = "fl-test-"
	}
	labels := maps.Clone(o.Labels)
	if o.OptIn {
		if labels == nil {
			labels = map[string]string{}
		}
		labels[OptInLabelKey] = OptInLabelValue
	}
	ns, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: Name(o.Prefix), Labels: labels},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		_ = kube.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{})
	})
	_, err = kube.CoreV1().ServiceAccounts(ns.Name).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "default"},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create default service account in %s: %v", ns.Name, err)
	}
	return ns.Name
}

// Node returns a Node object named name: Ready, with 4 CPUs and 8Gi of
// memory, for [CreateNodes] or to edit (taints, labels) first.
func Node(name string) *corev1.Node {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("4"),
		corev1.ResourceMemory: resource.MustParse("8Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
		Status: corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: capacity,
			Conditions: []corev1.NodeCondition{{
				Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
				LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(),
			}},
		},
	}
}

// CreateNodes creates the nodes (which keep their status: the API server
// stores a Node's status on create) and deletes them at cleanup. It returns
// their names.
func CreateNodes(t testing.TB, kube kubernetes.Interface, nodes ...*corev1.Node) []string {
	t.Helper()
	ctx := Context(t, Timeout)
	names := make([]string, 0, len(nodes))
	for _, n := range nodes {
		got, err := kube.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create node %s: %v", n.Name, err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), Timeout)
			defer cancel()
			_ = kube.CoreV1().Nodes().Delete(ctx, got.Name, metav1.DeleteOptions{})
		})
		names = append(names, got.Name)
	}
	return names
}

// Nodes creates Ready nodes with the given names (see [Node]) and deletes
// them at cleanup. Nodes are cluster-wide: use [Name] for names.
func Nodes(t testing.TB, kube kubernetes.Interface, names ...string) []string {
	t.Helper()
	nodes := make([]*corev1.Node, len(names))
	for i, n := range names {
		nodes[i] = Node(n)
	}
	return CreateNodes(t, kube, nodes...)
}

// WorkloadOptions shape a workload.
type WorkloadOptions struct {
	// Name of the ReplicaSet and prefix of its pods' names; default "app".
	Name string
	// Replicas is the number of pods; default 1.
	Replicas int
	// Nodes the pods are bound to (spec.nodeName), round-robin. Empty
	// leaves them unbound and Pending (not ready).
	Nodes []string
	// Labels of the pods (and the ReplicaSet's selector); default
	// app=<Name>.
	Labels map[string]string
}

// Workload is a ReplicaSet and the pods it owns.
type Workload struct {
	ReplicaSet *appsv1.ReplicaSet
	// Pods are as stored after their status update, in creation order.
	Pods []corev1.Pod
}

// Selector selects the workload's pods.
func (w *Workload) Selector() *metav1.LabelSelector {
	return w.ReplicaSet.Spec.Selector.DeepCopy()
}

// Names returns the names of the workload's pods.
func (w *Workload) Names() []string {
	out := make([]string, len(w.Pods))
	for i, p := range w.Pods {
		out[i] = p.Name
	}
	return out
}

// NewWorkload creates, in ns, a ReplicaSet and Replicas pods it controls
// (ownerReferences with controller=true), named <Name>-<i>. Bound pods are
// marked Running and Ready through the status subresource, as a kubelet
// would, so they count as ready pods of the workload. No controller acts on
// the ReplicaSet without the harness's controllers: a killed pod stays gone.
func NewWorkload(t testing.TB, kube kubernetes.Interface, ns string, o WorkloadOptions) *Workload {
	t.Helper()
	ctx := Context(t, Timeout)
	if o.Name == "" {
		o.Name = "app"
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Labels == nil {
		o.Labels = map[string]string{"app": o.Name}
	}
	rs, err := kube.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: o.Name, Labels: maps.Clone(o.Labels)},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: new(int32(o.Replicas)),
			Selector: &metav1.LabelSelector{MatchLabels: maps.Clone(o.Labels)},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: maps.Clone(o.Labels)},
				Spec:       PodSpec(""),
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create replicaset %s/%s: %v", ns, o.Name, err)
	}
	w := &Workload{ReplicaSet: rs}
	owner := metav1.OwnerReference{
		APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID,
		Controller: new(true), BlockOwnerDeletion: new(true),
	}
	for i := range o.Replicas {
		node := ""
		if len(o.Nodes) > 0 {
			node = o.Nodes[i%len(o.Nodes)]
		}
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Name: fmt.Sprintf("%s-%d", o.Name, i), Namespace: ns,
				Labels: maps.Clone(o.Labels), OwnerReferences: []metav1.OwnerReference{owner},
			},
			Spec: PodSpec(node),
		}
		got, err := CreatePod(ctx, kube, p)
		if err != nil {
			t.Fatal(err)
		}
		w.Pods = append(w.Pods, *got)
	}
	return w
}

// PodSpec is the spec of a test pod bound to node ("" leaves it unbound).
// It meets the restricted Pod Security Standard, so it may be created in a
// namespace that enforces it. Its container never runs: there is no
// kubelet.
func PodSpec(node string) corev1.PodSpec {
	return corev1.PodSpec{
		NodeName:                      node,
		AutomountServiceAccountToken:  new(false),
		TerminationGracePeriodSeconds: new(int64(30)),
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   new(true),
			RunAsUser:      new(int64(65532)),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Containers: []corev1.Container{{
			Name: "app", Image: "registry.k8s.io/pause:3.10",
			SecurityContext: &corev1.SecurityContext{
				AllowPrivilegeEscalation: new(false),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
		}},
	}
}

// CreatePod creates p and, when it is bound to a node, marks it Running
// and Ready ([MarkReady]). It returns the stored pod.
func CreatePod(ctx context.Context, kube kubernetes.Interface, p *corev1.Pod) (*corev1.Pod, error) {
	got, err := kube.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	if got.Spec.NodeName == "" {
		return got, nil
	}
	return MarkReady(ctx, kube, got)
}

// podIPs hands out distinct pod IPs in 10.244.0.0/16.
var podIPs = make(chan int, 1)

func init() { podIPs <- 0 }

func nextPodIP() string {
	n := <-podIPs
	n++
	podIPs <- n
	return fmt.Sprintf("10.244.%d.%d", (n/250)%250, n%250+1)
}

// MarkReady sets p's status as a kubelet running it would: phase Running,
// a pod IP, every condition True and its containers running and ready.
func MarkReady(ctx context.Context, kube kubernetes.Interface, p *corev1.Pod) (*corev1.Pod, error) {
	now := metav1.Now()
	p = p.DeepCopy()
	ip := nextPodIP()
	p.Status = corev1.PodStatus{
		Phase:     corev1.PodRunning,
		HostIP:    "192.0.2.10",
		HostIPs:   []corev1.HostIP{{IP: "192.0.2.10"}},
		PodIP:     ip,
		PodIPs:    []corev1.PodIP{{IP: ip}},
		StartTime: &now,
		QOSClass:  corev1.PodQOSBestEffort,
	}
	for _, c := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: c, Status: corev1.ConditionTrue, LastTransitionTime: now})
	}
	for _, c := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image, Ready: true, Started: new(true),
			ContainerID: "containerd://" + Name(""),
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	got, err := kube.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("mark pod %s/%s ready: %w", p.Namespace, p.Name, err)
	}
	return got, nil
}

// Command returns an unsigned fault command of the given type that targets
// pods by name in ns, for the whole of them, lasting d. Its id and
// experiment id are random; the fault's parameters are left for the caller.
func Command(fault schemas.FaultKind, ns string, pods []corev1.Pod, d time.Duration) *schemas.FaultCommand {
	names := make([]string, len(pods))
	for i, p := range pods {
		names[i] = p.Name
	}
	return &schemas.FaultCommand{
		ID:           Name("cmd-"),
		ExperimentID: Name("exp-"),
		Fault:        fault,
		Target:       schemas.Target{Namespace: ns, Names: names},
		Mode:         schemas.Mode{Type: schemas.ModeCount, Value: max(len(pods), 1)},
		Duration:     schemas.Duration(d),
		IssuedAt:     time.Now().UTC(),
		Issuer:       "test",
	}
}

// Poll calls cond every [PollInterval] until it reports done, returns an
// error, or timeout passes (or ctx ends); the error then says what was
// awaited and the last error cond returned, if any.
func Poll(ctx context.Context, timeout time.Duration, what string, cond func(ctx context.Context) (bool, error)) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, PollInterval, timeout, true, func(ctx context.Context) (bool, error) {
		done, err := cond(ctx)
		if err != nil {
			last = err
			return false, nil
		}
		return done, nil
	})
	if err == nil {
		return nil
	}
	if last != nil {
		return fmt.Errorf("waiting for %s: %w (last error: %v)", what, err, last)
	}
	return fmt.Errorf("waiting for %s: %w", what, err)
}

// WaitFor is [Poll] with [Timeout] that fails the test on timeout.
func WaitFor(t testing.TB, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	if err := Poll(context.Background(), Timeout, what, cond); err != nil {
		t.Fatal(err)
	}
}

// Gone reports whether get's error says the object does not exist.
// Another error is returned as is.
func gone(err error) (bool, error) {
	switch {
	case err == nil:
		return false, nil
	case apierrors.IsNotFound(err):
		return true, nil
	default:
		return false, err
	}
}

// WaitGone waits until get returns NotFound.
func WaitGone(t testing.TB, what string, get func(ctx context.Context) error) {
	t.Helper()
	WaitFor(t, what+" to be gone", func(ctx context.Context) (bool, error) { return gone(get(ctx)) })
}

// WaitExists waits until get succeeds.
func WaitExists(t testing.TB, what string, get func(ctx context.Context) error) {
	t.Helper()
	WaitFor(t, what+" to exist", func(ctx context.Context) (bool, error) {
		err := get(ctx)
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
}

// PodState is what the API server says of one pod.
type PodState int

// Pod states. A pod replaced by another of the same name (a different UID)
// counts as gone.
const (
	PodPresent     PodState = iota
	PodTerminating          // deletionTimestamp set, still stored
	PodGone
)

func (s PodState) String() string {
	switch s {
	case PodPresent:
		return "present"
	case PodTerminating:
		return "terminating"
	case PodGone:
		return "gone"
	}
	return fmt.Sprintf("PodState(%d)", int(s))
}

// GetPodState returns the state of the pod ns/name with uid (any pod of
// that name when uid is empty).
func GetPodState(ctx context.Context, kube kubernetes.Interface, ns, name string, uid types.UID) (PodState, error) {
	p, err := kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return PodGone, nil
	case err != nil:
		return 0, err
	case uid != "" && p.UID != uid:
		return PodGone, nil
	case p.DeletionTimestamp != nil:
		return PodTerminating, nil
	}
	return PodPresent, nil
}

// WaitPodState waits until the pod ns/name with uid is in state want.
func WaitPodState(t testing.TB, kube kubernetes.Interface, ns, name string, uid types.UID, want PodState) {
	t.Helper()
	WaitFor(t, fmt.Sprintf("pod %s/%s to be %s", ns, name, want), func(ctx context.Context) (bool, error) {
		s, err := GetPodState(ctx, kube, ns, name, uid)
		return s == want, err
	})
}

// WaitPodGone waits until the pod ns/name with uid is gone (deleted, or
// replaced by a pod with another UID).
func WaitPodGone(t testing.TB, kube kubernetes.Interface, ns, name string, uid types.UID) {
	t.Helper()
	WaitPodState(t, kube, ns, name, uid, PodGone)
}

// ForceDelete deletes the pod ns/name with grace 0 (NotFound is fine), as
// a test's clean-up of a pod left Terminating.
func ForceDelete(ctx context.Context, kube kubernetes.Interface, ns, name string) error {
	err := kube.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return nil
}
