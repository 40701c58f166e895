package testkube_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/faultline/faultline/internal/testkube"
)

// The fixtures recorded from a real cluster, for unit tests that must not
// start one. Regenerate them with
//
//	FAULTLINE_UPDATE_FIXTURES=1 go test ./internal/testkube/ -run TestGenerateFixtures -count=1
//
// (docs/testing.md).
var (
	auditFixture  = filepath.Join("..", "..", "test", "testdata", "kube", "audit-eventlist.json")
	eventsFixture = filepath.Join("..", "..", "test", "testdata", "kube", "events.json")
)

const (
	fixtureNamespace = "payments"
	fixtureCRB       = "payments-deployer-admin"
)

// TestGenerateFixtures plays a small, security-relevant story against the
// shared cluster and records what the audit webhook and the Events API saw:
// a namespace with a config map and a secret, a forbidden and an anonymous
// secret list, a role binding that then lets the low-privilege user read the
// secret, a cluster-admin binding for a service account and a token for it,
// a Deployment, a privileged host-PID pod, an exec and a log request on it,
// and its deletion.
func TestGenerateFixtures(t *testing.T) {
	if os.Getenv("FAULTLINE_UPDATE_FIXTURES") != "1" {
		t.Skip("set FAULTLINE_UPDATE_FIXTURES=1 to record test/testdata/kube fixtures from a real cluster")
	}
	c := kube.Get(t)
	ctx := testContext(t, 2*time.Minute)
	admin, user := clients(t, c)
	anon, err := kubernetes.NewForConfig(rest.AnonymousClientConfig(c.Admin.RESTConfig()))
	if err != nil {
		t.Fatal(err)
	}
	ns := fixtureNamespace
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: ns} }

	_, err = admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	must("create namespace", err)
	must("default service account", c.WaitForServiceAccount(ctx, ns, "default"))

	_, err = admin.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: meta("checkout-config"),
		Data: map[string]string{"LOG_LEVEL": "info"}}, metav1.CreateOptions{})
	must("create configmap", err)
	_, err = admin.CoreV1().ConfigMaps(ns).Patch(ctx, "checkout-config", types.MergePatchType,
		[]byte(`{"data":{"LOG_LEVEL":"debug"}}`), metav1.PatchOptions{})
	must("patch configmap", err)
	_, err = admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: meta("db-credentials"),
		StringData: map[string]string{"username": "checkout", "password": "not-a-real-password"}}, metav1.CreateOptions{})
	must("create secret", err)
	_, err = admin.CoreV1().Secrets(ns).Get(ctx, "db-credentials", metav1.GetOptions{})
	must("get secret", err)

	_, err = user.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("low-privilege list secrets: %v, want 403", err)
	}
	_, err = anon.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("anonymous list secrets: %v, want 403", err)
	}

	_, err = admin.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: meta("secret-reader"),
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list"}}}},
		metav1.CreateOptions{})
	must("create role", err)
	_, err = admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: meta("read-secrets"),
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "secret-reader"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: testkube.LowPrivUser}}},
		metav1.CreateOptions{})
	must("create rolebinding", err)
	// The RBAC authorizer reads bindings from a cache: retry until it has it.
	poll(ctx, t, "the low-privilege user reading the secret", func(ctx context.Context) (bool, error) {
		_, err := user.CoreV1().Secrets(ns).Get(ctx, "db-credentials", metav1.GetOptions{})
		if apierrors.IsForbidden(err) {
			return false, nil
		}
		return err == nil, err
	})

	_, err = admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: meta("deployer")}, metav1.CreateOptions{})
	must("create service account", err)
	_, err = admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: fixtureCRB},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "deployer"}}},
		metav1.CreateOptions{})
	must("create clusterrolebinding", err)
	_, err = admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "deployer", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	must("create token", err)

	replicas := int32(2)
	labels := map[string]string{"app": "checkout"}
	_, err = admin.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: meta("checkout"),
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "checkout",
					Image: "registry.example/shop/checkout:1.4.2", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}},
			},
		}}, metav1.CreateOptions{})
	must("create deployment", err)

	privileged := true
	_, err = admin.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: meta("debug"),
		Spec: corev1.PodSpec{
			HostPID: true, HostNetwork: true,
			Containers: []corev1.Container{{Name: "debug", Image: "busybox:1.36", Command: []string{"sleep", "3600"},
				SecurityContext: &corev1.SecurityContext{Privileged: &privileged}}},
		}}, metav1.CreateOptions{})
	must("create privileged pod", err)
	// Without a kubelet the exec is refused (the log of a pod on no node is
	// empty); both are audited.
	execErr := admin.CoreV1().RESTClient().Post().Namespace(ns).Resource("pods").Name("debug").SubResource("exec").
		Param("container", "debug").Param("command", "sh").Param("stdin", "true").Param("stdout", "true").Param("tty", "true").
		Do(ctx).Error()
	if execErr == nil {
		t.Fatal("exec without a kubelet succeeded")
	}
	_ = admin.CoreV1().Pods(ns).GetLogs("debug", &corev1.PodLogOptions{}).Do(ctx).Error()
	must("delete pod", admin.CoreV1().Pods(ns).Delete(ctx, "debug", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}))
	must("delete configmap", admin.CoreV1().ConfigMaps(ns).Delete(ctx, "checkout-config", metav1.DeleteOptions{}))

	// Wait for the controllers' Events, then for every request to be audited.
	reasons := []string{"ScalingReplicaSet", "SuccessfulCreate", "FailedScheduling"}
	var events *corev1.EventList
	poll(ctx, t, "Events "+strings.Join(reasons, ", "), func(ctx context.Context) (bool, error) {
		var err error
		if events, err = admin.CoreV1().Events(ns).List(ctx, metav1.ListOptions{}); err != nil {
			return false, err
		}
		for _, r := range reasons {
			if !slices.ContainsFunc(events.Items, func(e corev1.Event) bool { return e.Reason == r }) {
				return false, nil
			}
		}
		return true, nil
	})
	var recorded []auditv1.Event
	receiver.waitFor(ctx, t, "the story's requests at the audit webhook", func(all []auditv1.Event) bool {
		recorded = recorded[:0]
		for _, e := range all {
			if inFixture(e) {
				recorded = append(recorded, e)
			}
		}
		return fixtureProblem(recorded) == nil
	})

	slices.SortStableFunc(recorded, func(a, b auditv1.Event) int {
		if c := a.RequestReceivedTimestamp.Time.Compare(b.RequestReceivedTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(string(a.AuditID), string(b.AuditID))
	})
	auditList := auditv1.EventList{TypeMeta: metav1.TypeMeta{APIVersion: "audit.k8s.io/v1", Kind: "EventList"}, Items: recorded}
	events.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "EventList"}
	events.ResourceVersion = ""
	for i := range events.Items {
		events.Items[i].ManagedFields = nil
	}
	writeJSON(t, auditFixture, auditList)
	writeJSON(t, eventsFixture, events)
	t.Logf("wrote %d audit events to %s and %d Events to %s", len(recorded), auditFixture, len(events.Items), eventsFixture)
}

// inFixture tells whether an audit event belongs to the fixture's story.
func inFixture(e auditv1.Event) bool {
	r := e.ObjectRef
	return e.Stage == auditv1.StageResponseComplete && r != nil &&
		(r.Namespace == fixtureNamespace ||
			(r.Resource == "namespaces" && r.Name == fixtureNamespace) ||
			(r.Resource == "clusterrolebindings" && r.Name == fixtureCRB))
}

// fixtureProblem returns what the audit fixture lacks, or nil.
func fixtureProblem(items []auditv1.Event) error {
	has := func(what string, f func(auditv1.Event) bool) error {
		if slices.ContainsFunc(items, f) {
			return nil
		}
		return errors.New("no audit event for " + what)
	}
	req := func(verb, resource, subresource string) func(auditv1.Event) bool {
		return func(e auditv1.Event) bool {
			return e.Verb == verb && e.ObjectRef != nil && e.ObjectRef.Resource == resource && e.ObjectRef.Subresource == subresource
		}
	}
	return errors.Join(
		has("create pods", req("create", "pods", "")),
		has("delete pods", req("delete", "pods", "")),
		has("create pods/exec", req("create", "pods", "exec")),
		has("get pods/log", req("get", "pods", "log")),
		has("create secrets", req("create", "secrets", "")),
		has("get secrets", req("get", "secrets", "")),
		has("create configmaps", req("create", "configmaps", "")),
		has("patch configmaps", req("patch", "configmaps", "")),
		has("delete configmaps", req("delete", "configmaps", "")),
		has("create rolebindings", req("create", "rolebindings", "")),
		has("create clusterrolebindings", req("create", "clusterrolebindings", "")),
		has("create serviceaccounts/token", req("create", "serviceaccounts", "token")),
		has("create deployments", req("create", "deployments", "")),
		has("a 403 with authorization.k8s.io/decision: forbid", func(e auditv1.Event) bool {
			return e.ResponseStatus != nil && e.ResponseStatus.Code == 403 && e.Annotations["authorization.k8s.io/decision"] == "forbid"
		}),
		has("an anonymous request", func(e auditv1.Event) bool { return e.User.Username == "system:anonymous" }),
		has("the low-privilege user reading a secret", func(e auditv1.Event) bool {
			return e.User.Username == testkube.LowPrivUser && req("get", "secrets", "")(e) &&
				e.ResponseStatus != nil && e.ResponseStatus.Code == 200
		}),
		has("a pod created by the replicaset controller", func(e auditv1.Event) bool {
			return req("create", "pods", "")(e) && e.User.Username == "system:serviceaccount:kube-system:replicaset-controller"
		}),
	)
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

// readStrict decodes a fixture, refusing fields the type does not have.
func readStrict(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read fixture (regenerate with FAULTLINE_UPDATE_FIXTURES=1): %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
}

// TestFixturesParse checks the committed fixtures: an audit.k8s.io/v1
// EventList that covers the story, and a v1 EventList with the controllers'
// Events. It needs no cluster.
func TestFixturesParse(t *testing.T) {
	var audit auditv1.EventList
	readStrict(t, auditFixture, &audit)
	if audit.APIVersion != "audit.k8s.io/v1" || audit.Kind != "EventList" {
		t.Errorf("audit fixture is %s %s, want audit.k8s.io/v1 EventList", audit.APIVersion, audit.Kind)
	}
	for i, e := range audit.Items {
		// Items of a webhook's EventList carry no apiVersion and kind.
		if e.AuditID == "" || e.Stage == "" || e.Verb == "" ||
			e.RequestURI == "" || e.User.Username == "" || e.StageTimestamp.IsZero() || !inFixture(e) {
			t.Errorf("audit fixture item %d (%s %s by %s) is incomplete or off-story", i, e.Verb, e.RequestURI, e.User.Username)
		}
	}
	if err := fixtureProblem(audit.Items); err != nil {
		t.Errorf("audit fixture: %v", err)
	}

	var events corev1.EventList
	readStrict(t, eventsFixture, &events)
	if events.APIVersion != "v1" || events.Kind != "EventList" {
		t.Errorf("events fixture is %s %s, want v1 EventList", events.APIVersion, events.Kind)
	}
	reasons := map[string]bool{}
	for i, e := range events.Items {
		if e.Reason == "" || e.Message == "" || e.InvolvedObject.Kind == "" || e.InvolvedObject.Name == "" ||
			e.Namespace != fixtureNamespace || e.UID == "" {
			t.Errorf("events fixture item %d (%s %s) is incomplete", i, e.Reason, e.Name)
		}
		reasons[e.Reason] = true
	}
	for _, r := range []string{"ScalingReplicaSet", "SuccessfulCreate", "FailedScheduling"} {
		if !reasons[r] {
			t.Errorf("events fixture has no %s Event", r)
		}
	}
}
