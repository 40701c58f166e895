package deploy

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// The API server runs with deploy/audit/policy.yaml (the package's
// cluster): it accepted the policy by starting. A Secret written and read
// with a marker value, and a service-account token requested, leave their
// metadata in the audit log and their values nowhere in it; a pod create,
// an exec into it, a ConfigMap and a RoleBinding are recorded with their
// bodies (RequestResponse); other writes with the request; reads with
// metadata; probes and the control plane's lease renewals not at all; no
// RequestReceived stage.
func TestAuditPolicy(t *testing.T) {
	c := kube.Get(t)
	ctx := ctxFor(t, 2*time.Minute)
	admin, err := kubernetes.NewForConfig(c.Admin.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	ns := fmt.Sprintf("audit-%d", time.Now().UnixNano())
	marker := fmt.Sprintf("marker-%d-s3cr3t", time.Now().UnixNano())
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}))
	// No controllers run: the ServiceAccount pods need is made by hand.
	for _, sa := range []string{"default", "app"} {
		must(admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}))
	}
	must(admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db"},
		StringData: map[string]string{"password": marker}}, metav1.CreateOptions{}))
	must(admin.CoreV1().Secrets(ns).Get(ctx, "db", metav1.GetOptions{}))
	must(admin.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}))
	tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "app", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(600))}}, metav1.CreateOptions{})
	if err != nil || tr.Status.Token == "" {
		t.Fatalf("token request: %v", err)
	}
	must(admin.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"},
		Data: map[string]string{"mode": "audit-test"}}, metav1.CreateOptions{}))
	must(admin.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "shell"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "sh", Image: "registry.k8s.io/pause:3.10"}}}}, metav1.CreateOptions{}))
	// The pod has no node, so the exec fails; the attempt is what is audited.
	execErr := admin.CoreV1().RESTClient().Post().Namespace(ns).Resource("pods").Name("shell").SubResource("exec").
		Param("container", "sh").Param("command", "id").Param("stdout", "true").Do(ctx).Error()
	if execErr == nil {
		t.Fatal("exec into a pod without a node succeeded")
	}
	must(admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "readers"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "view"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "app", Namespace: ns}}}, metav1.CreateOptions{}))
	must(admin.CoordinationV1().Leases(ns).Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "by-admin"}}, metav1.CreateOptions{}))
	must(admin.CoordinationV1().Leases(ns).Get(ctx, "by-admin", metav1.GetOptions{}))
	// The harness writes a kubeconfig for the controller-manager's identity
	// (system:kube-controller-manager) whether or not it runs (here it does
	// not); its lease renewals are the noise the policy drops. Its bootstrap
	// RBAC lets it create leases and get and update its own in kube-system.
	cmConfig, err := clientcmd.BuildConfigFromFlags("", filepath.Join(c.Dir, "kube-controller-manager.kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	cm, err := kubernetes.NewForConfig(cmConfig)
	if err != nil {
		t.Fatal(err)
	}
	leases := cm.CoordinationV1().Leases("kube-system")
	// An earlier run of the test on the same cluster (-count) made it.
	_, err = leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "kube-controller-manager"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create the lease as the controller-manager: %v", err)
	}
	l, err := leases.Get(ctx, "kube-controller-manager", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get the lease as the controller-manager: %v", err)
	}
	l.Spec.HolderIdentity = ptr("kube-controller-manager")
	must(leases.Update(ctx, l, metav1.UpdateOptions{}))
	if body, err := admin.Discovery().RESTClient().Get().AbsPath("/healthz").DoRaw(ctx); err != nil || string(body) != "ok" {
		t.Fatalf("/healthz: %q %v", body, err)
	}
	// Last: once its event is in the log, the others are too (the log is
	// written in order of completion, and everything above has completed).
	must(admin.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "last"}}, metav1.CreateOptions{}))

	var all, events []auditv1.Event
	var lines [][]byte
	deadline := time.Now().Add(30 * time.Second)
	for {
		all, lines = readAuditLog(t, c.AuditLogPath)
		events = events[:0]
		for _, e := range all {
			if e.ObjectRef != nil && e.ObjectRef.Namespace == ns {
				events = append(events, e)
			}
		}
		if hasEvent(events, "create", "configmaps", "", "last") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the create of configmap last is not in the audit log after 30s (%d events of the namespace)", len(events))
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Every line of the log, this test's and the other tests'.
	for _, l := range lines {
		for _, secret := range []string{marker, base64.StdEncoding.EncodeToString([]byte(marker)), tr.Status.Token} {
			if bytes.Contains(l, []byte(secret)) {
				t.Errorf("a secret value is in the audit log: %.300s", l)
			}
		}
	}
	cmLease := 0
	for _, e := range all {
		if e.Stage == auditv1.StageRequestReceived {
			t.Errorf("stage RequestReceived recorded: %s %s", e.Verb, e.RequestURI)
		}
		if strings.HasPrefix(e.RequestURI, "/healthz") {
			t.Errorf("a probe was audited: %s", e.RequestURI)
		}
		if e.User.Username == "system:kube-controller-manager" && e.ObjectRef != nil && e.ObjectRef.Resource == "leases" {
			if e.Verb != "create" {
				t.Errorf("the controller-manager's lease %s was audited", e.Verb)
			}
			cmLease++
		}
	}
	if cmLease == 0 {
		t.Errorf("the controller-manager's lease create was not audited either: the check above proves nothing")
	}
	want := []struct {
		verb, resource, sub, name string
		level                     auditv1.Level
		bodies                    bool // requestObject and responseObject present
	}{
		{"create", "secrets", "", "db", auditv1.LevelMetadata, false},
		{"get", "secrets", "", "db", auditv1.LevelMetadata, false},
		{"list", "secrets", "", "", auditv1.LevelMetadata, false},
		{"create", "serviceaccounts", "token", "app", auditv1.LevelMetadata, false},
		{"create", "serviceaccounts", "", "app", auditv1.LevelRequest, false},
		{"create", "configmaps", "", "settings", auditv1.LevelRequestResponse, true},
		{"create", "pods", "", "shell", auditv1.LevelRequestResponse, true},
		{"create", "pods", "exec", "shell", auditv1.LevelRequestResponse, false},
		{"create", "rolebindings", "", "readers", auditv1.LevelRequestResponse, true},
		{"create", "leases", "", "by-admin", auditv1.LevelRequest, false},
		{"get", "leases", "", "by-admin", auditv1.LevelMetadata, false},
	}
	for _, w := range want {
		e := findEvent(events, w.verb, w.resource, w.sub, w.name)
		if e == nil {
			t.Errorf("%s %s/%s %s: not audited", w.verb, w.resource, w.sub, w.name)
			continue
		}
		if e.Level != w.level {
			t.Errorf("%s %s/%s %s: level %s, want %s", w.verb, w.resource, w.sub, w.name, e.Level, w.level)
		}
		if w.bodies && (e.RequestObject == nil || e.ResponseObject == nil) {
			t.Errorf("%s %s %s: request or response object missing at RequestResponse", w.verb, w.resource, w.name)
		}
		if w.level == auditv1.LevelMetadata && (e.RequestObject != nil || e.ResponseObject != nil) {
			t.Errorf("%s %s/%s %s: a body at Metadata", w.verb, w.resource, w.sub, w.name)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// readAuditLog returns the events in the API server's audit log and their
// lines. A last line still being written is left for the next read.
func readAuditLog(t *testing.T, path string) ([]auditv1.Event, [][]byte) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var events []auditv1.Event
	var lines [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e auditv1.Event
		if err := json.Unmarshal(line, &e); err != nil {
			continue // incomplete: the API server is writing it
		}
		events = append(events, e)
		lines = append(lines, append([]byte(nil), line...))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return events, lines
}

func findEvent(events []auditv1.Event, verb, resource, sub, name string) *auditv1.Event {
	for i, e := range events {
		if e.Stage == auditv1.StageResponseComplete && e.Verb == verb && e.ObjectRef != nil &&
			e.ObjectRef.Resource == resource && e.ObjectRef.Subresource == sub && (name == "" || e.ObjectRef.Name == name) &&
			!strings.HasPrefix(e.User.Username, "system:serviceaccount:") {
			return &events[i]
		}
	}
	return nil
}

func hasEvent(events []auditv1.Event, verb, resource, sub, name string) bool {
	return findEvent(events, verb, resource, sub, name) != nil
}
