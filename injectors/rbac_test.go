package injectors_test

import (
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"github.com/faultline/faultline/injectors"
	"github.com/faultline/faultline/injectors/guard"
	"github.com/faultline/faultline/injectors/injectortest"
	"github.com/faultline/faultline/injectors/netpartition"
	"github.com/faultline/faultline/injectors/podkill"
	"github.com/faultline/faultline/injectors/starvation"
	"github.com/faultline/faultline/schemas"
)

var cluster = injectortest.NewShared()

func TestMain(m *testing.M) { injectortest.Main(m, cluster) }

const injectorSA = "system:serviceaccount:faultline:faultline-injector"

// applyRBAC creates the objects of deploy/rbac/injector.yaml as shipped.
func applyRBAC(t *testing.T, admin kubernetes.Interface) {
	t.Helper()
	ctx := injectortest.Context(t, injectortest.Timeout)
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "faultline"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	data, err := os.ReadFile("../deploy/rbac/injector.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := scheme.Codecs.UniversalDeserializer()
	for _, doc := range strings.Split(string(data), "\n---\n") {
		obj, _, err := dec.Decode([]byte(doc), nil, nil)
		if err != nil {
			t.Fatalf("deploy/rbac/injector.yaml: %v", err)
		}
		switch o := obj.(type) {
		case *corev1.ServiceAccount:
			_, err = admin.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRole:
			_, err = admin.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRoleBinding:
			_, err = admin.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
		default:
			t.Fatalf("deploy/rbac/injector.yaml: unexpected %T", obj)
		}
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("create %T: %v", obj, err)
		}
	}
}

// asInjector is a client that acts as the injector's ServiceAccount.
func asInjector(t *testing.T) kubernetes.Interface {
	t.Helper()
	rc := cluster.Get(t).Admin.RESTConfig()
	rc.Impersonate = rest.ImpersonationConfig{UserName: injectorSA, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:faultline", "system:authenticated"}}
	k, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func forbidden(t *testing.T, what string, err error) {
	t.Helper()
	if !apierrors.IsForbidden(err) {
		t.Errorf("%s as the injector: %v, want Forbidden", what, err)
	}
}

// The shipped RBAC lets the injector run every fault type in a namespace
// bound to faultline-injector-target, and nothing in one that is not; it
// never reads Secrets or ConfigMaps.
func TestInjectorRBAC(t *testing.T) {
	admin := injectortest.Admin(t, cluster.Get(t))
	applyRBAC(t, admin)
	allowed := injectortest.Namespace(t, admin, injectortest.NamespaceOptions{OptIn: true})
	other := injectortest.Namespace(t, admin, injectortest.NamespaceOptions{OptIn: true})
	ctx := injectortest.Context(t, time.Minute)
	if _, err := admin.RbacV1().RoleBindings(allowed).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "faultline-injector"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "faultline-injector-target"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "faultline-injector", Namespace: "faultline"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	nodes := injectortest.Nodes(t, admin, injectortest.Name("node-"))
	w := injectortest.NewWorkload(t, admin, allowed, injectortest.WorkloadOptions{Name: "shop", Replicas: 6, Nodes: nodes})
	wOther := injectortest.NewWorkload(t, admin, other, injectortest.WorkloadOptions{Name: "shop", Replicas: 2, Nodes: nodes})
	for _, ns := range []string{allowed, other} {
		if _, err := admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db"}, StringData: map[string]string{"password": "hunter2"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	inj := asInjector(t)
	d := injectors.Deps{Kube: inj, Log: injectortest.Logger()}
	gc := guard.DefaultConfig()
	gc.AllowedNamespaces = []string{allowed, other} // RBAC must hold even where the configuration is wider
	gc.MaxShare = 1
	g, err := guard.New(gc, inj)
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := podkill.New(d, podkill.DefaultConfig())
	np, _ := netpartition.New(d, netpartition.DefaultConfig())
	st, _ := starvation.New(d, starvation.DefaultConfig())
	faults := []struct {
		inj    injectors.Injector
		params func(*schemas.FaultCommand)
		pod    int
	}{
		{pk, func(*schemas.FaultCommand) {}, 0},
		{np, func(c *schemas.FaultCommand) {
			c.NetworkPartition = &schemas.NetworkPartitionParams{Direction: schemas.DirectionBoth}
		}, 1},
		{st, func(c *schemas.FaultCommand) {
			c.ResourceStarvation = &schemas.ResourceStarvationParams{CPUWorkers: 1}
		}, 2},
	}
	for _, f := range faults {
		t.Run("allowed/"+string(f.inj.Fault()), func(t *testing.T) {
			c := injectortest.Command(f.inj.Fault(), allowed, w.Pods[f.pod:f.pod+1], time.Minute)
			f.params(c)
			sel, err := g.Select(ctx, c, 0)
			if err != nil {
				t.Fatalf("select: %v", err)
			}
			plan, err := f.inj.Plan(ctx, c, sel.Pods)
			if err != nil {
				t.Fatalf("plan: %v", err)
			}
			if err := f.inj.Apply(ctx, plan); err != nil {
				t.Fatalf("apply: %v", err)
			}
			if err := f.inj.Revert(injectors.WithRevert(ctx), &plan.Revert); err != nil {
				t.Fatalf("revert: %v", err)
			}
		})
	}

	c := injectortest.Command(schemas.FaultPodKill, other, wOther.Pods[:1], time.Minute)
	_, err = g.Select(ctx, c, 0)
	forbidden(t, "select pods in a namespace without the RoleBinding", unwrapStatus(err))
	forbidden(t, "delete a pod outside", inj.CoreV1().Pods(other).Delete(ctx, wOther.Pods[0].Name, metav1.DeleteOptions{}))
	_, err = inj.NetworkingV1().NetworkPolicies(other).Create(ctx, &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "x"}}, metav1.CreateOptions{})
	forbidden(t, "create a NetworkPolicy outside", err)
	_, err = inj.CoreV1().Pods(other).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "x"}, Spec: injectortest.PodSpec(nodes[0])}, metav1.CreateOptions{})
	forbidden(t, "create a pod outside", err)
	_, err = inj.CoreV1().Secrets(allowed).Get(ctx, "db", metav1.GetOptions{})
	forbidden(t, "read a Secret in an allowed namespace", err)
	_, err = inj.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	forbidden(t, "list Secrets cluster-wide", err)
	_, err = inj.CoreV1().ConfigMaps(allowed).List(ctx, metav1.ListOptions{})
	forbidden(t, "list ConfigMaps", err)
	_, err = inj.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	forbidden(t, "list Nodes", err)
	_, err = inj.RbacV1().RoleBindings(allowed).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "escalate"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "faultline-injector", Namespace: "faultline"}},
	}, metav1.CreateOptions{})
	forbidden(t, "bind itself to cluster-admin", err)
	if _, err := inj.CoreV1().Namespaces().Get(ctx, other, metav1.GetOptions{}); err != nil {
		t.Errorf("read a namespace (the opt-in label): %v", err)
	}
}

// unwrapStatus finds the API status error inside a wrapped error.
func unwrapStatus(err error) error {
	for e := err; e != nil; {
		if _, ok := e.(apierrors.APIStatus); ok {
			return e
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			break
		}
		e = u.Unwrap()
	}
	return err
}
