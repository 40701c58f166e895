package auditwebhook

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/bus/bustest"
	"github.com/faultline/faultline/internal/testkube"
	"github.com/faultline/faultline/schemas"
)

// everythingPolicy audits every stage of every request with its request
// and response bodies, secrets included: the receiver, not the policy, must
// keep their values off the bus.
const everythingPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
rules:
  - level: None
    nonResourceURLs: ["/healthz*", "/livez*", "/readyz*"]
  - level: RequestResponse
`

// The secret values the workload plants.
const (
	kubeMarker = "FAULTLINE-MARKER-kube-s3cr3t"
	// A second one that differs from the first in every base64 alignment.
	kubeMarker2 = "faultline-marker-second-value"
)

// TestRealAPIServer points a real kube-apiserver's audit webhook (batch
// mode, bearer token and client certificate) at the receiver, makes
// requests as the admin and as a low-privilege user, and then checks that
// every audit event the API server wrote to its own audit log is on the bus
// exactly once, and that no secret value is.
func TestRealAPIServer(t *testing.T) {
	p := newPKI(t)
	b, _ := bustest.Start(t)
	r := startReceiver(t, b, p.testConfig())
	c := testkube.StartT(t, testkube.Options{
		AuditPolicy: everythingPolicy,
		AuditWebhook: &testkube.AuditWebhook{
			URL: r.URL(), CAPEM: p.ca.CertPEM, Token: p.token,
			ClientCertPEM: p.clientCertPEM, ClientKeyPEM: p.clientKeyPEM,
			BatchMaxWait: 100 * time.Millisecond,
		},
	})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	admin, err := kubernetes.NewForConfig(c.Admin.RESTConfig())
	must(t, err)
	user, err := kubernetes.NewForConfig(c.User.RESTConfig())
	must(t, err)

	secrets := workload(ctx, t, admin, user)
	if !fileContains(t, c.AuditLogPath, []byte(base64.StdEncoding.EncodeToString([]byte(kubeMarker)))) {
		t.Fatal("the API server's audit log lacks the planted secret: the policy does not log bodies and the test proves nothing")
	}

	// Every event of the audit log reaches the bus; the log keeps growing
	// (the API server's own requests), so take it as of now.
	logIDs := auditLogIDs(t, c.AuditLogPath)
	t.Logf("%d events in the API server's audit log", len(logIDs))
	var onBus map[string]int
	waitUntil(ctx, t, "every audit log event on the bus", func() bool {
		onBus = auditIDs(t, readStream(t, b, bus.StreamAudit, bus.AuditSubject(testCluster)))
		return len(missing(logIDs, onBus)) == 0
	}, func() string { return fmt.Sprintf("missing %v", first(missing(logIDs, onBus), 10)) })

	msgs := readStream(t, b, bus.StreamAudit, "")
	counts := auditIDs(t, msgs)
	for id, n := range counts {
		if n != 1 {
			t.Errorf("event %s is on the bus %d times", id, n)
		}
	}
	// And nothing on the bus that the API server did not log.
	waitUntil(ctx, t, "every bus event in the audit log", func() bool {
		return len(missing(counts, auditLogIDs(t, c.AuditLogPath))) == 0
	}, func() string {
		return fmt.Sprintf("not in the log: %v", first(missing(counts, auditLogIDs(t, c.AuditLogPath)), 10))
	})

	leaked := 0
	redacted := 0
	for _, m := range msgs {
		for _, s := range secrets {
			if bytes.Contains(m.Data, []byte(s)) {
				leaked++
				t.Errorf("secret %.12q… on the bus in %s", s, m.ID)
			}
		}
		if bytes.Contains(m.Data, []byte(`"`+schemas.AuditAnnotationRedacted+`":"true"`)) {
			redacted++
		}
	}
	if redacted < 8 {
		t.Errorf("only %d events redacted; the workload makes more", redacted)
	}
	if got := counter(t, r.reg, "faultline_audit_webhook_events_rejected_total", "reason", rejectInvalid); got != 0 {
		t.Errorf("%v events of the real API server rejected", got)
	}
	t.Logf("%d events on the bus, %d redacted, none twice, %d secrets found", len(msgs), redacted, leaked)
}

// workload makes the test's requests and returns the secret values it
// planted, in every encoding they could take.
func workload(ctx context.Context, t *testing.T, admin, user *kubernetes.Clientset) []string {
	t.Helper()
	check := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	forbidden := func(what string, err error) {
		t.Helper()
		if !apierrors.IsForbidden(err) {
			t.Fatalf("%s as the low-privilege user: %v, want 403", what, err)
		}
	}
	const ns = "webhook-test"
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: ns} }
	_, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	check("create namespace", err)
	// No controllers run: the ServiceAccounts pods need are made by hand.
	for _, sa := range []string{"default", "builder"} {
		_, err = admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: meta(sa)}, metav1.CreateOptions{})
		check("create service account", err)
	}

	// Secrets: create (data, stringData, the last-applied annotation), read,
	// list, update, three kinds of patch, delete.
	applied, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "db", "namespace": ns},
		"data": map[string]string{"password": base64.StdEncoding.EncodeToString([]byte(kubeMarker))}})
	sec := &corev1.Secret{ObjectMeta: meta("db"), Data: map[string][]byte{"password": []byte(kubeMarker)},
		StringData: map[string]string{"api-key": kubeMarker2}, Type: corev1.SecretTypeOpaque}
	sec.Annotations = map[string]string{"kubectl.kubernetes.io/last-applied-configuration": string(applied)}
	_, err = admin.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{})
	check("create secret", err)
	got, err := admin.CoreV1().Secrets(ns).Get(ctx, "db", metav1.GetOptions{})
	check("get secret", err)
	_, err = admin.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	check("list secrets", err)
	got.Data["password2"] = []byte(kubeMarker2)
	_, err = admin.CoreV1().Secrets(ns).Update(ctx, got, metav1.UpdateOptions{})
	check("update secret", err)
	b64 := base64.StdEncoding.EncodeToString
	_, err = admin.CoreV1().Secrets(ns).Patch(ctx, "db", types.MergePatchType,
		[]byte(`{"data":{"merge":"`+b64([]byte(kubeMarker))+`"},"metadata":{"labels":{"tier":"db"}}}`), metav1.PatchOptions{})
	check("merge-patch secret", err)
	_, err = admin.CoreV1().Secrets(ns).Patch(ctx, "db", types.JSONPatchType,
		[]byte(`[{"op":"add","path":"/data/json","value":"`+b64([]byte(kubeMarker2))+`"}]`), metav1.PatchOptions{})
	check("JSON-patch secret", err)
	_, err = admin.CoreV1().Secrets(ns).Patch(ctx, "db", types.StrategicMergePatchType,
		[]byte(`{"stringData":{"strategic":"`+kubeMarker+`"}}`), metav1.PatchOptions{})
	check("strategic-patch secret", err)

	// RBAC: the low-privilege user is refused, then allowed to read the
	// secret through a RoleBinding, and reads it.
	_, err = user.CoreV1().Secrets(ns).Get(ctx, "db", metav1.GetOptions{})
	forbidden("get secret", err)
	_, err = admin.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: meta("secret-reader"),
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list"}}}}, metav1.CreateOptions{})
	check("create role", err)
	_, err = admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: meta("user-reads-secrets"),
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "secret-reader"},
		Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: testkube.LowPrivUser}}}, metav1.CreateOptions{})
	check("create role binding", err)
	_, err = admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "builder-is-admin"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "builder", Namespace: ns}}}, metav1.CreateOptions{})
	check("create cluster role binding", err)
	waitUntil(ctx, t, "the role binding to take effect", func() bool {
		_, err := user.CoreV1().Secrets(ns).Get(ctx, "db", metav1.GetOptions{})
		return err == nil
	}, func() string { return "the user still cannot read the secret" })
	_, err = user.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	check("list secrets as the user", err)

	// A token for the service account, and a review of it.
	hour := int64(3600)
	tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "builder", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &hour}}, metav1.CreateOptions{})
	check("create token", err)
	if tr.Status.Token == "" {
		t.Fatal("empty token")
	}
	_, err = admin.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: tr.Status.Token}}, metav1.CreateOptions{})
	check("token review", err)

	// Config maps, pods, Events.
	_, err = admin.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: meta("cfg"), Data: map[string]string{"LOG_LEVEL": "info"}}, metav1.CreateOptions{})
	check("create configmap", err)
	_, err = admin.CoreV1().ConfigMaps(ns).Patch(ctx, "cfg", types.MergePatchType, []byte(`{"data":{"LOG_LEVEL":"debug"}}`), metav1.PatchOptions{})
	check("patch configmap", err)
	_, err = user.CoreV1().ConfigMaps(ns).Get(ctx, "cfg", metav1.GetOptions{})
	forbidden("get configmap", err)
	pod := &corev1.Pod{ObjectMeta: meta("web"), Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "web", Image: "registry.invalid/web:1",
			Env: []corev1.EnvVar{{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "password"}}}}}},
		Volumes: []corev1.Volume{{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "db"}}}}}}
	_, err = admin.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	check("create pod", err)
	_, err = user.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	forbidden("create pod", err)
	_, err = admin.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	check("list pods", err)
	now := metav1.Now()
	_, err = admin.CoreV1().Events(ns).Create(ctx, &corev1.Event{ObjectMeta: meta("web.1"),
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "web", APIVersion: "v1"},
		Reason:         "Test", Message: "core event", Type: corev1.EventTypeNormal, FirstTimestamp: now, LastTimestamp: now, Count: 1}, metav1.CreateOptions{})
	check("create core event", err)
	_, err = admin.EventsV1().Events(ns).Create(ctx, &eventsv1.Event{ObjectMeta: meta("web.2"), EventTime: metav1.NowMicro(),
		ReportingController: "faultline.io/test", ReportingInstance: "test", Action: "Test", Reason: "Test", Type: "Normal",
		Regarding: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "web", APIVersion: "v1"}, Note: "events.k8s.io event"}, metav1.CreateOptions{})
	check("create events.k8s.io event", err)
	_, err = user.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
	forbidden("list events", err)
	_, err = admin.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
	check("list events", err)

	// Clean up, audited too.
	zero := int64(0)
	check("delete pod", admin.CoreV1().Pods(ns).Delete(ctx, "web", metav1.DeleteOptions{GracePeriodSeconds: &zero}))
	check("delete configmap", admin.CoreV1().ConfigMaps(ns).Delete(ctx, "cfg", metav1.DeleteOptions{}))
	check("delete events", admin.CoreV1().Events(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}))
	check("delete secret", admin.CoreV1().Secrets(ns).Delete(ctx, "db", metav1.DeleteOptions{}))
	check("delete cluster role binding", admin.RbacV1().ClusterRoleBindings().Delete(ctx, "builder-is-admin", metav1.DeleteOptions{}))
	check("delete role binding", admin.RbacV1().RoleBindings(ns).Delete(ctx, "user-reads-secrets", metav1.DeleteOptions{}))

	var out []string
	for _, s := range []string{kubeMarker, kubeMarker2} {
		out = append(out, s, b64([]byte(s)))
	}
	// The token's signature: the part that makes it a credential.
	parts := strings.Split(tr.Status.Token, ".")
	out = append(out, tr.Status.Token, parts[len(parts)-1])
	return out
}

// auditLogIDs reads the API server's audit log (JSON lines; a last line
// still being written is skipped) and returns the envelope id of each event.
func auditLogIDs(t testing.TB, path string) map[string]int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i+1]
	}
	ids := map[string]int{}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		ev, err := schemas.ParseAuditEvent(line)
		if err != nil {
			t.Fatalf("audit log %s: %v", path, err)
		}
		ids[schemas.AuditEventIDOf(&ev)]++
	}
	return ids
}

func fileContains(t testing.TB, path string, s []byte) bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(data, s)
}

// missing returns the keys of want that have is lacks, sorted.
func missing(want, have map[string]int) []string {
	var out []string
	for id := range want {
		if have[id] == 0 {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// waitUntil polls cond until it holds or ctx ends, then fails with why().
func waitUntil(ctx context.Context, t testing.TB, what string, cond func() bool, why func() string) {
	t.Helper()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, why())
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v: %s", what, ctx.Err(), why())
		case <-tick.C:
		}
	}
}

// TestDeployPolicyInAPIServer has a real API server load
// deploy/audit/policy.yaml and checks the levels it gives.
func TestDeployPolicyInAPIServer(t *testing.T) {
	p := newPKI(t)
	b, _ := bustest.Start(t)
	r := startReceiver(t, b, p.testConfig())
	c := testkube.StartT(t, testkube.Options{
		AuditPolicy:  filepath.Join("..", "..", "deploy", "audit", "policy.yaml"),
		AuditWebhook: &testkube.AuditWebhook{URL: r.URL(), CAPEM: p.ca.CertPEM, Token: p.token, BatchMaxWait: 100 * time.Millisecond},
	})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	admin, err := kubernetes.NewForConfig(c.Admin.RESTConfig())
	must(t, err)
	_, err = admin.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db"},
		StringData: map[string]string{"password": kubeMarker}}, metav1.CreateOptions{})
	must(t, err)
	_, err = admin.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cfg"},
		Data: map[string]string{"k": "v"}}, metav1.CreateOptions{})
	must(t, err)
	want := map[string]auditv1.Level{"secrets": auditv1.LevelMetadata, "configmaps": auditv1.LevelRequestResponse}
	got := map[string]auditv1.Level{}
	waitUntil(ctx, t, "the creates on the bus", func() bool {
		for _, m := range readStream(t, b, bus.StreamAudit, "") {
			env, err := schemas.DecodeEnvelope(m.Data)
			must(t, err)
			ev, err := schemas.ParseAuditEvent(env.Data)
			must(t, err)
			if ev.Stage == auditv1.StageRequestReceived {
				t.Errorf("stage RequestReceived recorded: %s", env.ID)
			}
			if ev.Verb == "create" && ev.ObjectRef != nil && want[ev.ObjectRef.Resource] != "" {
				got[ev.ObjectRef.Resource] = ev.Level
			}
		}
		return len(got) == len(want)
	}, func() string { return fmt.Sprint(got) })
	for res, lvl := range want {
		if got[res] != lvl {
			t.Errorf("create %s audited at %s, want %s", res, got[res], lvl)
		}
	}
}
