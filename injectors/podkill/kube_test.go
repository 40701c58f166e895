package podkill_test

import (
	"context"
	"strings"
	"testing"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/faultline/faultline/injectors"
	"github.com/faultline/faultline/injectors/injectortest"
	"github.com/faultline/faultline/injectors/podkill"
	"github.com/faultline/faultline/internal/testkube"
	"github.com/faultline/faultline/schemas"
)

// The integration tests share one API server (no controllers: a killed pod
// stays gone), each in a namespace of its own.
var kube = injectortest.NewShared()

func TestMain(m *testing.M) { injectortest.Main(m, kube) }

type env struct {
	admin kubernetes.Interface
	ns    string
	w     *injectortest.Workload
}

func setup(t *testing.T, replicas int) env {
	t.Helper()
	admin := injectortest.Admin(t, kube.Get(t))
	ns := injectortest.Namespace(t, admin, injectortest.NamespaceOptions{OptIn: true})
	nodes := injectortest.Nodes(t, admin, injectortest.Name("pk-node-"), injectortest.Name("pk-node-"))
	w := injectortest.NewWorkload(t, admin, ns, injectortest.WorkloadOptions{Name: "app", Replicas: replicas, Nodes: nodes})
	return env{admin: admin, ns: ns, w: w}
}

func newInjector(t *testing.T, k kubernetes.Interface, c podkill.Config) *podkill.Injector {
	t.Helper()
	inj, err := podkill.New(injectortest.Deps(k), c)
	if err != nil {
		t.Fatal(err)
	}
	return inj
}

func plan(t *testing.T, inj *podkill.Injector, cmd *schemas.FaultCommand, targets []corev1.Pod) *injectors.Plan {
	t.Helper()
	p, err := inj.Plan(injectortest.Context(t, injectortest.Timeout), cmd, targets)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	return p
}

// Apply deletes exactly the targets; Revert succeeds, twice, and for a
// plan never applied; applying again is harmless.
func TestApplyRevert(t *testing.T) {
	e := setup(t, 4)
	inj := newInjector(t, e.admin, podkill.DefaultConfig())
	ctx := injectortest.Context(t, injectortest.Timeout)
	targets, others := e.w.Pods[:2], e.w.Pods[2:]
	cmd := injectortest.Command(podkill.Name, e.ns, targets, time.Minute)
	p := plan(t, inj, cmd, targets)
	if len(p.Affected) != 2 || len(p.Revert.Objects) != 0 {
		t.Fatalf("plan affected %v revert objects %v", p.Affected, p.Revert.Objects)
	}

	if err := inj.Apply(ctx, p); err != nil {
		t.Fatalf("apply: %v", err)
	}
	for _, pd := range targets {
		injectortest.WaitPodGone(t, e.admin, e.ns, pd.Name, pd.UID)
	}
	for _, pd := range others {
		if s, err := injectortest.GetPodState(ctx, e.admin, e.ns, pd.Name, pd.UID); err != nil || s != injectortest.PodPresent {
			t.Errorf("pod %s not targeted is %v (%v)", pd.Name, s, err)
		}
	}

	// Applying a plan whose pods are gone again (a retried apply) is fine.
	if err := inj.Apply(ctx, p); err != nil {
		t.Errorf("second apply: %v", err)
	}
	for i := range 2 {
		if err := inj.Revert(ctx, &p.Revert); err != nil {
			t.Errorf("revert %d: %v", i+1, err)
		}
	}
	never := plan(t, inj, injectortest.Command(podkill.Name, e.ns, others, time.Minute), others)
	if err := inj.Revert(ctx, &never.Revert); err != nil {
		t.Errorf("revert of a plan never applied: %v", err)
	}
	for _, pd := range others {
		if s, err := injectortest.GetPodState(ctx, e.admin, e.ns, pd.Name, pd.UID); err != nil || s != injectortest.PodPresent {
			t.Errorf("pod %s after reverting an unapplied plan is %v (%v)", pd.Name, s, err)
		}
	}
}

// With a grace period a bound pod is only marked for deletion: without a
// kubelet to confirm, it stays Terminating with that grace period.
func TestGracePeriodLeavesPodTerminating(t *testing.T) {
	e := setup(t, 2)
	inj := newInjector(t, e.admin, podkill.DefaultConfig())
	ctx := injectortest.Context(t, injectortest.Timeout)
	target := e.w.Pods[0]
	cmd := injectortest.Command(podkill.Name, e.ns, e.w.Pods[:1], time.Minute)
	cmd.PodKill = &schemas.PodKillParams{GracePeriodSeconds: new(int64(7))}
	p := plan(t, inj, cmd, e.w.Pods[:1])
	if !strings.Contains(p.Steps[0], "with grace period 7s: it is Terminating") {
		t.Errorf("step %q does not say the pod will be terminating", p.Steps[0])
	}
	if err := inj.Apply(ctx, p); err != nil {
		t.Fatalf("apply: %v", err)
	}
	injectortest.WaitPodState(t, e.admin, e.ns, target.Name, target.UID, injectortest.PodTerminating)
	got, err := e.admin.CoreV1().Pods(e.ns).Get(ctx, target.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if g := got.DeletionGracePeriodSeconds; g == nil || *g != 7 {
		t.Errorf("deletionGracePeriodSeconds %v, want 7", g)
	}
	if err := inj.Revert(ctx, &p.Revert); err != nil {
		t.Errorf("revert: %v", err)
	}
	if err := injectortest.ForceDelete(ctx, e.admin, e.ns, target.Name); err != nil {
		t.Error(err)
	}
}

// A pod that took a target's name after the plan (a StatefulSet's
// replacement) is left alone: the delete carries the target's UID.
func TestReplacementIsNotKilled(t *testing.T) {
	e := setup(t, 1)
	inj := newInjector(t, e.admin, podkill.DefaultConfig())
	ctx := injectortest.Context(t, injectortest.Timeout)
	old := e.w.Pods[0]
	p := plan(t, inj, injectortest.Command(podkill.Name, e.ns, e.w.Pods, time.Minute), e.w.Pods)

	if err := injectortest.ForceDelete(ctx, e.admin, e.ns, old.Name); err != nil {
		t.Fatal(err)
	}
	injectortest.WaitPodGone(t, e.admin, e.ns, old.Name, old.UID)
	repl := old.DeepCopy()
	repl.ResourceVersion, repl.UID, repl.CreationTimestamp = "", "", metav1.Time{}
	repl.Status = corev1.PodStatus{}
	created, err := injectortest.CreatePod(ctx, e.admin, repl)
	if err != nil {
		t.Fatal(err)
	}

	if err := inj.Apply(ctx, p); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if s, err := injectortest.GetPodState(ctx, e.admin, e.ns, created.Name, created.UID); err != nil || s != injectortest.PodPresent {
		t.Errorf("replacement pod is %v (%v), want present", s, err)
	}
}

// Every pod that could not be deleted is named in Apply's error; the others
// are deleted. The injector runs as a user allowed to delete one pod only.
func TestApplyReportsEachFailure(t *testing.T) {
	e := setup(t, 3)
	c := kube.Get(t)
	ctx := injectortest.Context(t, injectortest.Timeout)
	allowed := e.w.Pods[0].Name
	if _, err := e.admin.RbacV1().Roles(e.ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "kill-one"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"delete"}, ResourceNames: []string{allowed}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.RbacV1().RoleBindings(e.ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "kill-one"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "kill-one"},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: testkube.LowPrivUser}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	user, err := kubernetes.NewForConfig(c.User.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	// The RBAC authorizer sees the binding through an informer: wait for it.
	injectortest.WaitFor(t, "the role binding to take effect", func(ctx context.Context) (bool, error) {
		r, err := user.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authzv1.SelfSubjectAccessReview{Spec: authzv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authzv1.ResourceAttributes{Namespace: e.ns, Verb: "delete", Resource: "pods", Name: allowed},
		}}, metav1.CreateOptions{})
		return err == nil && r.Status.Allowed, err
	})

	inj := newInjector(t, user, podkill.DefaultConfig())
	p := plan(t, inj, injectortest.Command(podkill.Name, e.ns, e.w.Pods, time.Minute), e.w.Pods)
	err = inj.Apply(ctx, p)
	if err == nil {
		t.Fatal("apply succeeded without permission to delete two of the pods")
	}
	msg := err.Error()
	if !strings.Contains(msg, "2 of 3 pods not deleted") {
		t.Errorf("error %q does not count the failures", msg)
	}
	for _, pd := range e.w.Pods[1:] {
		if !strings.Contains(msg, "pod "+e.ns+"/"+pd.Name+": ") || !strings.Contains(msg, "forbidden") {
			t.Errorf("error %q does not name %s as forbidden", msg, pd.Name)
		}
	}
	if strings.Contains(msg, "/"+allowed+":") {
		t.Errorf("error %q names the pod that was deleted", msg)
	}
	injectortest.WaitPodGone(t, e.admin, e.ns, allowed, e.w.Pods[0].UID)
	for _, pd := range e.w.Pods[1:] {
		if s, err := injectortest.GetPodState(ctx, e.admin, e.ns, pd.Name, pd.UID); err != nil || s != injectortest.PodPresent {
			t.Errorf("pod %s is %v (%v), want present", pd.Name, s, err)
		}
	}
}
