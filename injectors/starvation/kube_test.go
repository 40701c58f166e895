package starvation_test

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/faultline/faultline/injectors"
	"github.com/faultline/faultline/injectors/injectortest"
	"github.com/faultline/faultline/injectors/starvation"
	"github.com/faultline/faultline/schemas"
)

// The integration tests share one API server (no kubelet: the stress pods
// are created and deleted, never run), each in a namespace of its own that
// enforces the restricted Pod Security Standard, so the API server's
// PodSecurity admission proves the stress pods comply.
var kube = injectortest.NewShared()

func TestMain(m *testing.M) { injectortest.Main(m, kube) }

type env struct {
	admin kubernetes.Interface
	ns    string
	nodes []string
	inj   *starvation.Injector
}

func setup(t *testing.T) env {
	t.Helper()
	admin := injectortest.Admin(t, kube.Get(t))
	ns := injectortest.Namespace(t, admin, injectortest.NamespaceOptions{OptIn: true, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce":         "restricted",
		"pod-security.kubernetes.io/enforce-version": "latest",
	}})
	a, b := injectortest.Node(injectortest.Name("st-a-")), injectortest.Node(injectortest.Name("st-b-"))
	b.Spec.Taints = []corev1.Taint{{Key: "dedicated", Value: "shop", Effect: corev1.TaintEffectNoSchedule}}
	nodes := injectortest.CreateNodes(t, admin, a, b)
	inj, err := starvation.New(injectortest.Deps(admin), starvation.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return env{admin: admin, ns: ns, nodes: nodes, inj: inj}
}

func (e env) stressPods(t *testing.T, cmd *schemas.FaultCommand) []corev1.Pod {
	t.Helper()
	list, err := e.admin.CoreV1().Pods(e.ns).List(injectortest.Context(t, injectortest.Timeout), metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(injectors.ObjectLabels(cmd)).String(),
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(list.Items, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return list.Items
}

// One stress pod per node of the targets, pinned, restricted, bounded by
// two deadlines, with requests = limits; revert removes them, twice, and a
// plan never applied reverts too.
func TestApplyRevert(t *testing.T) {
	e := setup(t)
	ctx := injectortest.Context(t, injectortest.Timeout)
	w := injectortest.NewWorkload(t, e.admin, e.ns, injectortest.WorkloadOptions{Name: "shop", Replicas: 3, Nodes: e.nodes})
	pending := injectortest.NewWorkload(t, e.admin, e.ns, injectortest.WorkloadOptions{Name: "pending"})
	targets := append(slices.Clone(w.Pods), pending.Pods...)

	cmd := injectortest.Command(starvation.Name, e.ns, targets, 2*time.Minute+300*time.Millisecond)
	cmd.ResourceStarvation = &schemas.ResourceStarvationParams{CPUWorkers: 2, MemoryBytes: 256 << 20}
	p, err := e.inj.Plan(ctx, cmd, targets)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if len(p.Affected) != 2 || len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "pending-0 is not bound") {
		t.Fatalf("plan affected %v warnings %q", p.Affected, p.Warnings)
	}
	if got := e.stressPods(t, cmd); len(got) != 0 {
		t.Fatalf("plan created pods: %v", got)
	}

	if err := e.inj.Apply(ctx, p); err != nil {
		t.Fatalf("apply: %v", err)
	}
	got := e.stressPods(t, cmd)
	if len(got) != 2 {
		t.Fatalf("%d stress pods, want 2", len(got))
	}
	sortedNodes := slices.Sorted(slices.Values(e.nodes))
	wantRes := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("2"),
		corev1.ResourceMemory: resource.MustParse("320Mi"),
	}
	for k, pod := range got {
		if pod.Name != starvation.PodName(cmd.ID, k) || pod.Name != p.Affected[k].Name {
			t.Errorf("pod %d is %s, want %s", k, pod.Name, starvation.PodName(cmd.ID, k))
		}
		s := pod.Spec
		if s.NodeName != sortedNodes[k] {
			t.Errorf("%s on node %q, want %q", pod.Name, s.NodeName, sortedNodes[k])
		}
		if !maps.Equal(pod.Labels, injectors.ObjectLabels(cmd)) {
			t.Errorf("%s labels %v", pod.Name, pod.Labels)
		}
		if s.RestartPolicy != corev1.RestartPolicyNever || s.ActiveDeadlineSeconds == nil || *s.ActiveDeadlineSeconds != 121+30 {
			t.Errorf("%s restartPolicy %s activeDeadlineSeconds %v, want Never and 151", pod.Name, s.RestartPolicy, s.ActiveDeadlineSeconds)
		}
		if s.AutomountServiceAccountToken == nil || *s.AutomountServiceAccountToken {
			t.Errorf("%s mounts a service account token", pod.Name)
		}
		for _, v := range s.Volumes {
			if v.Projected != nil {
				t.Errorf("%s has a projected volume %s", pod.Name, v.Name)
			}
		}
		if !reflect.DeepEqual(s.Tolerations, []corev1.Toleration{{Operator: corev1.TolerationOpExists}}) {
			t.Errorf("%s tolerations %v", pod.Name, s.Tolerations)
		}
		psc := s.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65534 ||
			psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s pod security context %+v", pod.Name, psc)
		}
		if len(s.Containers) != 1 {
			t.Fatalf("%s containers %v", pod.Name, s.Containers)
		}
		c := s.Containers[0]
		if c.Image != starvation.DefaultImage {
			t.Errorf("%s image %s", pod.Name, c.Image)
		}
		if want := "--cpu 2 --vm 1 --vm-bytes 268435456 --vm-keep --timeout 121s"; !strings.HasPrefix(strings.Join(c.Args, " "), want) {
			t.Errorf("%s args %q, want them to start with %q", pod.Name, c.Args, want)
		}
		if !equalResources(c.Resources.Requests, wantRes) || !equalResources(c.Resources.Limits, wantRes) {
			t.Errorf("%s resources %v, want requests = limits = %v", pod.Name, c.Resources, wantRes)
		}
		csc := c.SecurityContext
		if csc == nil || csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem ||
			csc.Capabilities == nil || !slices.Equal(csc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("%s container security context %+v", pod.Name, csc)
		}
		if pod.Status.QOSClass != corev1.PodQOSGuaranteed {
			t.Errorf("%s QoS class %s, want Guaranteed", pod.Name, pod.Status.QOSClass)
		}
	}

	// A retried Apply keeps the pods.
	if err := e.inj.Apply(ctx, p); err != nil {
		t.Errorf("second apply: %v", err)
	}
	for n := range 2 {
		if err := e.inj.Revert(ctx, &p.Revert); err != nil {
			t.Fatalf("revert %d: %v", n+1, err)
		}
		if got := e.stressPods(t, cmd); len(got) != 0 {
			t.Errorf("after revert %d: stress pods %v", n+1, got)
		}
	}
	for _, pd := range w.Pods {
		if s, err := injectortest.GetPodState(ctx, e.admin, e.ns, pd.Name, pd.UID); err != nil || s != injectortest.PodPresent {
			t.Errorf("target %s is %v (%v)", pd.Name, s, err)
		}
	}

	never := injectortest.Command(starvation.Name, e.ns, w.Pods, time.Minute)
	never.ResourceStarvation = &schemas.ResourceStarvationParams{MemoryBytes: 64 << 20}
	np, err := e.inj.Plan(ctx, never, w.Pods)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.inj.Revert(ctx, &np.Revert); err != nil {
		t.Errorf("revert of a plan never applied: %v", err)
	}
}

func equalResources(a, b corev1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || v.Cmp(w) != 0 {
			return false
		}
	}
	return true
}

// A pod that holds a stress pod's name but is not this command's makes
// Apply fail and is left alone by Revert; a half-applied fault (one stress
// pod created) reverts fully.
func TestForeignPodAndHalfApplied(t *testing.T) {
	e := setup(t)
	ctx := injectortest.Context(t, injectortest.Timeout)
	w := injectortest.NewWorkload(t, e.admin, e.ns, injectortest.WorkloadOptions{Name: "shop", Replicas: 2, Nodes: e.nodes})
	cmd := injectortest.Command(starvation.Name, e.ns, w.Pods, time.Minute)
	cmd.ResourceStarvation = &schemas.ResourceStarvationParams{CPUWorkers: 1}
	p, err := e.inj.Plan(ctx, cmd, w.Pods)
	if err != nil {
		t.Fatal(err)
	}

	squatter := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.Affected[1].Name, Namespace: e.ns, Labels: map[string]string{"app": "other"}},
		Spec:       injectortest.PodSpec(""),
	}
	if _, err := e.admin.CoreV1().Pods(e.ns).Create(ctx, squatter, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = e.inj.Apply(ctx, p)
	if err == nil || !strings.Contains(err.Error(), p.Affected[1].Name+" exists and is not this command's") {
		t.Fatalf("apply over a foreign pod: %v", err)
	}
	if got := e.stressPods(t, cmd); len(got) != 1 || got[0].Name != p.Affected[0].Name {
		t.Fatalf("stress pods after a failed apply: %v", got)
	}
	if err := e.inj.Revert(ctx, &p.Revert); err != nil {
		t.Fatalf("revert: %v", err)
	}
	if got := e.stressPods(t, cmd); len(got) != 0 {
		t.Errorf("stress pods after revert: %v", got)
	}
	if _, err := e.admin.CoreV1().Pods(e.ns).Get(ctx, squatter.Name, metav1.GetOptions{}); err != nil {
		t.Errorf("the foreign pod is gone: %v", err)
	}
}
