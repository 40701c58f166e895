package deploy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// check is one SubjectAccessReview: may the role do verb on resource?
type check struct {
	ns, verb, group, resource, sub, name string
	allowed                              bool
}

func (c check) String() string {
	r := c.resource
	if c.group != "" {
		r = c.group + "/" + r
	}
	if c.sub != "" {
		r += "/" + c.sub
	}
	if c.name != "" {
		r += " " + c.name
	}
	ns := c.ns
	if ns == "" {
		ns = "(all namespaces)"
	}
	return fmt.Sprintf("%s %s in %s", c.verb, r, ns)
}

func serviceAccountUser(ns, name string) (string, []string) {
	return "system:serviceaccount:" + ns + ":" + name,
		[]string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}
}

// allowed asks the API server's authorizer, as the admin, whether the
// ServiceAccount may do c.
func allowed(t *testing.T, admin kubernetes.Interface, ns, sa string, c check) bool {
	t.Helper()
	user, groups := serviceAccountUser(ns, sa)
	r, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctxFor(t, 30*time.Second), &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   user,
			Groups: groups,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: c.ns, Verb: c.verb, Group: c.group, Resource: c.resource, Subresource: c.sub, Name: c.name,
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SubjectAccessReview %s: %v", c, err)
	}
	return r.Status.Allowed
}

// rulesOf lists what the ServiceAccount may do in ns, one "verb group/resource
// [name]" line each, from a SelfSubjectRulesReview made by impersonating it.
// What every authenticated user may do (review itself) is left out.
func rulesOf(t *testing.T, ns, sa, in string) []string {
	t.Helper()
	rc := kube.Get(t).Admin.RESTConfig()
	user, groups := serviceAccountUser(ns, sa)
	rc.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	k, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	r, err := k.AuthorizationV1().SelfSubjectRulesReviews().Create(ctxFor(t, 30*time.Second), &authorizationv1.SelfSubjectRulesReview{
		Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: in},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SelfSubjectRulesReview as %s in %s: %v", user, in, err)
	}
	if r.Status.Incomplete {
		t.Fatalf("SelfSubjectRulesReview as %s in %s incomplete: %s", user, in, r.Status.EvaluationError)
	}
	var out []string
	for _, rr := range r.Status.ResourceRules {
		names := rr.ResourceNames
		if len(names) == 0 {
			names = []string{""}
		}
		for _, g := range rr.APIGroups {
			for _, res := range rr.Resources {
				if strings.HasPrefix(res, "selfsubject") && (g == "authorization.k8s.io" || g == "authentication.k8s.io") {
					continue
				}
				for _, v := range rr.Verbs {
					for _, n := range names {
						out = append(out, strings.TrimSpace(fmt.Sprintf("%s %s/%s %s", v, g, res, n)))
					}
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// grants expands verbs on group/resource into rules lines.
func grants(group string, resources, verbs []string, name string) []string {
	var out []string
	for _, r := range resources {
		for _, v := range verbs {
			out = append(out, strings.TrimSpace(fmt.Sprintf("%s %s/%s %s", v, group, r, name)))
		}
	}
	return out
}

// Each role's ServiceAccount may do exactly what the role needs, where it
// needs it, and nothing else: SubjectAccessReviews of what it must and must
// not do, and the complete list of its rules in its own namespace, in the
// injector's and metrics collector's target namespaces and in others.
func TestRBAC(t *testing.T) {
	r := installed(t, "production")
	admin, err := kubernetes.NewForConfig(kube.Get(t).Admin.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	const own = "faultline-prod"
	lease := own + "-collector-events"
	forbiddenEverywhere := []check{
		{ns: own, verb: "get", resource: "secrets"},
		{ns: "shop", verb: "get", resource: "secrets"},
		{verb: "list", resource: "secrets"},
		{ns: own, verb: "list", resource: "configmaps"},
		{ns: "shop", verb: "list", resource: "configmaps"},
		{verb: "list", resource: "nodes"},
		{ns: "shop", verb: "create", group: "rbac.authorization.k8s.io", resource: "rolebindings"},
		{verb: "create", group: "rbac.authorization.k8s.io", resource: "clusterrolebindings"},
		{ns: "shop", verb: "create", resource: "pods", sub: "exec"},
		{ns: own, verb: "delete", resource: "pods"},
		{ns: "kube-system", verb: "delete", resource: "pods"},
		{ns: own, verb: "update", group: "apps", resource: "deployments"},
	}
	nothing := []check{
		{verb: "list", resource: "pods"},
		{ns: "shop", verb: "list", resource: "pods"},
		{verb: "list", resource: "events"},
		{verb: "get", resource: "namespaces", name: "shop"},
		{ns: own, verb: "get", group: "coordination.k8s.io", resource: "leases", name: lease},
		{ns: own, verb: "list", group: "apps", resource: "deployments"},
	}
	namespaceRead := grants("", []string{"namespaces"}, []string{"get", "list", "watch"}, "")
	eventsRead := append(grants("", []string{"events"}, []string{"get", "list", "watch"}, ""),
		grants("events.k8s.io", []string{"events"}, []string{"get", "list", "watch"}, "")...)
	injectorTarget := append(grants("", []string{"pods"}, []string{"get", "list", "watch", "create", "delete", "patch"}, ""),
		grants("networking.k8s.io", []string{"networkpolicies"}, []string{"get", "list", "create", "delete"}, "")...)
	cases := []struct {
		role   string
		checks []check
		// rules in each namespace; a namespace not listed has none.
		rules map[string][]string
	}{
		{role: "collector-audit", checks: nothing},
		{role: "analyzer", checks: nothing},
		{role: "indexer", checks: nothing},
		{role: "collector-events", checks: []check{
			{verb: "list", resource: "events", allowed: true},
			{verb: "watch", resource: "events", allowed: true},
			{verb: "watch", group: "events.k8s.io", resource: "events", allowed: true},
			{ns: "kube-system", verb: "list", group: "events.k8s.io", resource: "events", allowed: true},
			{ns: own, verb: "get", group: "coordination.k8s.io", resource: "leases", name: lease, allowed: true},
			{ns: own, verb: "update", group: "coordination.k8s.io", resource: "leases", name: lease, allowed: true},
			{ns: own, verb: "create", group: "coordination.k8s.io", resource: "leases", allowed: true},
			{ns: own, verb: "update", group: "coordination.k8s.io", resource: "leases", name: "other"},
			{ns: own, verb: "delete", group: "coordination.k8s.io", resource: "leases", name: lease},
			{ns: "kube-system", verb: "update", group: "coordination.k8s.io", resource: "leases", name: lease},
			{verb: "create", resource: "events"},
			{ns: "shop", verb: "delete", resource: "events"},
			{verb: "list", resource: "pods"},
		}, rules: map[string][]string{
			own: append(slices.Clone(eventsRead), append(grants("coordination.k8s.io", []string{"leases"}, []string{"get", "update"}, lease),
				"create coordination.k8s.io/leases")...),
			"shop":        eventsRead,
			"checkout":    eventsRead,
			"default":     eventsRead,
			"kube-system": eventsRead,
		}},
		{role: "collector-metrics", checks: []check{
			{ns: "shop", verb: "list", resource: "pods", allowed: true},
			{ns: "checkout", verb: "watch", resource: "pods", allowed: true},
			{ns: "default", verb: "list", resource: "pods"},
			{verb: "list", resource: "pods"},
			{ns: "shop", verb: "get", resource: "pods", sub: "log"},
			{ns: "shop", verb: "delete", resource: "pods"},
		}, rules: map[string][]string{
			"shop":     grants("", []string{"pods"}, []string{"list", "watch"}, ""),
			"checkout": grants("", []string{"pods"}, []string{"list", "watch"}, ""),
		}},
		{role: "injector", checks: []check{
			{verb: "get", resource: "namespaces", name: "shop", allowed: true},
			{verb: "list", resource: "namespaces", allowed: true},
			{ns: "shop", verb: "delete", resource: "pods", allowed: true},
			{ns: "checkout", verb: "delete", resource: "pods", allowed: true},
			{ns: "shop", verb: "create", resource: "pods", allowed: true},
			{ns: "shop", verb: "patch", resource: "pods", allowed: true},
			{ns: "checkout", verb: "create", group: "networking.k8s.io", resource: "networkpolicies", allowed: true},
			{ns: "checkout", verb: "delete", group: "networking.k8s.io", resource: "networkpolicies", allowed: true},
			{ns: "default", verb: "delete", resource: "pods"},
			{ns: "default", verb: "create", resource: "pods"},
			{ns: "default", verb: "create", group: "networking.k8s.io", resource: "networkpolicies"},
			{verb: "delete", resource: "pods"},
			{ns: "shop", verb: "update", group: "networking.k8s.io", resource: "networkpolicies"},
			{ns: "shop", verb: "create", resource: "pods", sub: "eviction"},
			{verb: "update", resource: "namespaces", name: "shop"},
		}, rules: map[string][]string{
			own:           namespaceRead,
			"default":     namespaceRead,
			"kube-system": namespaceRead,
			"shop":        append(slices.Clone(namespaceRead), injectorTarget...),
			"checkout":    append(slices.Clone(namespaceRead), injectorTarget...),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.role, func(t *testing.T) {
			sa := own + "-" + tc.role
			r.find(t, "ServiceAccount", sa)
			for _, c := range append(slices.Clone(tc.checks), forbiddenEverywhere...) {
				if got := allowed(t, admin, own, sa, c); got != c.allowed {
					t.Errorf("%s: allowed %v, want %v", c, got, c.allowed)
				}
			}
			for _, ns := range []string{own, "shop", "checkout", "default", "kube-system"} {
				want := slices.Clone(tc.rules[ns])
				slices.Sort(want)
				if got := rulesOf(t, own, sa, ns); !slices.Equal(got, want) {
					t.Errorf("rules in %s:\n  got  %q\n  want %q", ns, got, want)
				}
			}
		})
	}
}

// With analyzer.readCluster.namespaces the analyzer reads pods and
// workloads there, and only there; its token is then mounted.
func TestRBACAnalyzerReadCluster(t *testing.T) {
	r := installed(t, "read-cluster")
	admin, err := kubernetes.NewForConfig(kube.Get(t).Admin.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	const own = "faultline-read"
	sa := own + "-analyzer"
	if mount, _, _ := unstructuredBool(r.find(t, "ServiceAccount", sa).Object, "automountServiceAccountToken"); !mount {
		t.Errorf("the analyzer's token is not mounted")
	}
	for _, c := range []check{
		{ns: "shop", verb: "list", resource: "pods", allowed: true},
		{ns: "shop", verb: "list", group: "apps", resource: "replicasets", allowed: true},
		{ns: "shop", verb: "get", group: "apps", resource: "deployments", allowed: true},
		{ns: "shop", verb: "list", group: "apps", resource: "statefulsets", allowed: true},
		{ns: "shop", verb: "watch", resource: "pods"},
		{ns: "shop", verb: "get", resource: "secrets"},
		{ns: "checkout", verb: "list", resource: "pods"},
		{verb: "list", resource: "pods"},
	} {
		if got := allowed(t, admin, own, sa, c); got != c.allowed {
			t.Errorf("%s: allowed %v, want %v", c, got, c.allowed)
		}
	}
	want := append(grants("", []string{"pods"}, []string{"get", "list"}, ""),
		grants("apps", []string{"deployments", "statefulsets", "replicasets"}, []string{"get", "list"}, "")...)
	slices.Sort(want)
	if got := rulesOf(t, own, sa, "shop"); !slices.Equal(got, want) {
		t.Errorf("rules in shop:\n  got  %q\n  want %q", got, want)
	}
	if got := rulesOf(t, own, sa, "checkout"); len(got) > 0 {
		t.Errorf("rules in checkout: %q, want none", got)
	}
}

func unstructuredBool(obj map[string]any, field string) (bool, bool, error) {
	v, ok := obj[field]
	if !ok {
		return false, false, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, true, fmt.Errorf("%s is %T", field, v)
	}
	return b, true, nil
}
