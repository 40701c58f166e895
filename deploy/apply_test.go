package deploy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
)

// The roles and the objects each must have.
var roles = []string{"collector-audit", "collector-events", "collector-metrics", "analyzer", "indexer", "injector"}

// roleAPI tells which roles talk to the Kubernetes API in the production
// values: only they get a token.
var roleAPI = map[string]bool{"collector-events": true, "collector-metrics": true, "injector": true}

// The checked-in manifests (the chart's defaults: the audit webhook, the
// Events collector, the analyzers, the trial NATS server) are accepted by
// the real API server and raise no warning, Pod Security's included.
func TestApplyManifests(t *testing.T) {
	r := installed(t, "manifests")
	if len(r.warnings) > 0 {
		t.Errorf("warnings while applying deploy/manifests/faultline.yaml:\n  %s", strings.Join(r.warnings, "\n  "))
	}
	ns := r.find(t, "Namespace", "faultline")
	for k, v := range restricted {
		if got := ns.GetLabels()[k]; got != v {
			t.Errorf("namespace label %s=%q, want %q", k, got, v)
		}
	}
	for _, role := range []string{"collector-audit", "collector-events", "analyzer"} {
		r.find(t, "Deployment", "faultline-"+role)
	}
	r.find(t, "StatefulSet", "faultline-nats")
	checkPods(t, r)
}

// The production values (external NATS with TLS and credentials,
// Elasticsearch with an API key and a CA, every role, two or more replicas,
// the injector's allow-list) are accepted by the real API server without a
// warning, with a PodDisruptionBudget for every role of several replicas.
func TestApplyProduction(t *testing.T) {
	r := installed(t, "production")
	if len(r.warnings) > 0 {
		t.Errorf("warnings while applying the production values:\n  %s", strings.Join(r.warnings, "\n  "))
	}
	if len(r.ofKind("CustomResourceDefinition")) > 0 {
		t.Errorf("the chart installs CRDs")
	}
	if len(r.ofKind("StatefulSet")) > 0 {
		t.Errorf("the in-cluster NATS server is rendered with nats.urls set")
	}
	for _, role := range roles {
		d := r.find(t, "Deployment", "faultline-prod-"+role)
		sa := r.find(t, "ServiceAccount", "faultline-prod-"+role)
		replicas, _, _ := unstructured.NestedInt64(d.Object, "spec", "replicas")
		pdb := slices.IndexFunc(r.ofKind("PodDisruptionBudget"), func(o *unstructured.Unstructured) bool { return o.GetName() == d.GetName() })
		if (replicas > 1) != (pdb >= 0) {
			t.Errorf("%s: %d replicas, PodDisruptionBudget: %v", role, replicas, pdb >= 0)
		}
		if role != "collector-metrics" && replicas < 2 {
			t.Errorf("%s: %d replicas in the production values", role, replicas)
		}
		saName, _, _ := unstructured.NestedString(d.Object, "spec", "template", "spec", "serviceAccountName")
		if saName != sa.GetName() {
			t.Errorf("%s runs as %q, want its own ServiceAccount %s", role, saName, sa.GetName())
		}
		// Only the roles that use the API have a token, on both objects.
		saMount, _, _ := unstructured.NestedBool(sa.Object, "automountServiceAccountToken")
		podMount, found, _ := unstructured.NestedBool(d.Object, "spec", "template", "spec", "automountServiceAccountToken")
		if !found || saMount != roleAPI[role] || podMount != roleAPI[role] {
			t.Errorf("%s: automountServiceAccountToken ServiceAccount %v, pod %v (set %v), want %v", role, saMount, podMount, found, roleAPI[role])
		}
	}
	checkPods(t, r)
	for _, np := range r.ofKind("NetworkPolicy") {
		if np.GetName() == "faultline-prod-default-deny" {
			return
		}
	}
	t.Errorf("no default-deny NetworkPolicy")
}

// checkPods creates (dry run) a pod from every pod template of r in its
// namespace, labelled enforce=restricted: Pod Security admission checks pods,
// not their Deployments (for those it only warns), so this is what proves
// the templates pass. It also checks the settings the restricted profile
// does not demand but the chart promises: a read-only root filesystem, the
// nonroot user, probes on /healthz and /readyz, requests and limits.
func checkPods(t *testing.T, r *release) {
	t.Helper()
	c := kube.Get(t)
	admin, err := kubernetes.NewForConfig(c.Admin.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t, time.Minute)
	workloads := append(r.ofKind("Deployment"), r.ofKind("StatefulSet")...)
	if len(workloads) == 0 {
		t.Fatal("no workloads")
	}
	for _, w := range workloads {
		var tmpl corev1.PodTemplateSpec
		raw, _, _ := unstructured.NestedMap(w.Object, "spec", "template")
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &tmpl); err != nil {
			t.Fatalf("%s: %v", w.GetName(), err)
		}
		pod := podFrom(w, tmpl)
		if _, err := admin.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Errorf("a pod of %s %s: %v", w.GetKind(), w.GetName(), err)
		}
		ps := tmpl.Spec.SecurityContext
		if ps == nil || ps.RunAsUser == nil || *ps.RunAsUser != 65532 || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot {
			t.Errorf("%s: pod securityContext %+v, want runAsNonRoot and user 65532", w.GetName(), ps)
		}
		for _, ctr := range tmpl.Spec.Containers {
			sc := ctr.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s/%s: root filesystem not read-only", w.GetName(), ctr.Name)
			}
			if ctr.Resources.Requests.Cpu().IsZero() || ctr.Resources.Requests.Memory().IsZero() ||
				ctr.Resources.Limits.Cpu().IsZero() || ctr.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s/%s: resources %+v, want CPU and memory requests and limits", w.GetName(), ctr.Name, ctr.Resources)
			}
			if ctr.LivenessProbe == nil || ctr.ReadinessProbe == nil || ctr.LivenessProbe.HTTPGet == nil || ctr.ReadinessProbe.HTTPGet == nil {
				t.Errorf("%s/%s: no HTTP liveness and readiness probes", w.GetName(), ctr.Name)
			} else if w.GetKind() == "Deployment" && (ctr.LivenessProbe.HTTPGet.Path != "/healthz" || ctr.ReadinessProbe.HTTPGet.Path != "/readyz") {
				t.Errorf("%s/%s: probes on %s and %s, want /healthz and /readyz", w.GetName(), ctr.Name, ctr.LivenessProbe.HTTPGet.Path, ctr.ReadinessProbe.HTTPGet.Path)
			}
		}
	}
}

// podFrom is the pod a workload's controller would create from tmpl.
func podFrom(w *unstructured.Unstructured, tmpl corev1.PodTemplateSpec) *corev1.Pod {
	pod := &corev1.Pod{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec}
	pod.Name = w.GetName() + "-dry-run"
	pod.Namespace = w.GetNamespace()
	if w.GetKind() == "StatefulSet" {
		// The StatefulSet controller adds a volume per claim template.
		claims, _, _ := unstructured.NestedSlice(w.Object, "spec", "volumeClaimTemplates")
		for _, c := range claims {
			name, _, _ := unstructured.NestedString(c.(map[string]any), "metadata", "name")
			pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: name + "-" + pod.Name}}})
		}
	}
	return pod
}

// The checks above can fail: a template that escalates privileges is
// refused as a pod, and warned about as a Deployment, in the same
// namespace.
func TestPodSecurityRefusesEscalation(t *testing.T) {
	r := installed(t, "manifests")
	d := r.find(t, "Deployment", "faultline-analyzer").DeepCopy()
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	if err := unstructured.SetNestedField(containers[0].(map[string]any), true, "securityContext", "allowPrivilegeEscalation"); err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedSlice(d.Object, containers, "spec", "template", "spec", "containers"); err != nil {
		t.Fatal(err)
	}
	d.SetName("faultline-analyzer-escalating")

	c := kube.Get(t)
	a := newApplier(t, c)
	ctx := ctxFor(t, time.Minute)
	if err := a.apply(ctx, d, true); err != nil {
		t.Fatal(err)
	}
	if w := a.warn.take(); !slices.ContainsFunc(w, func(s string) bool { return strings.Contains(s, "allowPrivilegeEscalation") }) {
		t.Errorf("applying an escalating Deployment warned %q, want a PodSecurity warning about allowPrivilegeEscalation", w)
	}
	var tmpl corev1.PodTemplateSpec
	raw, _, _ := unstructured.NestedMap(d.Object, "spec", "template")
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &tmpl); err != nil {
		t.Fatal(err)
	}
	admin, err := kubernetes.NewForConfig(c.Admin.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	_, err = admin.CoreV1().Pods("faultline").Create(ctx, podFrom(d, tmpl), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "PodSecurity") {
		t.Errorf("an escalating pod: %v, want Forbidden by PodSecurity", err)
	}
}

// Each role's NetworkPolicy opens only the ports the role uses (the
// harness has no network plugin to enforce them; this checks what they
// say): DNS and NATS for all, the API server only for the roles with a
// token, Elasticsearch only for the indexer, Prometheus for the PromQL
// users, the scrape targets for the metrics collector; ingress only to the
// operations port, and to the webhook port of the audit collector.
func TestNetworkPolicies(t *testing.T) {
	r, _ := rendered(t, "production")
	common := []string{"UDP/53", "TCP/53", "TCP/4222"}
	want := map[string]struct{ in, out []string }{
		"collector-audit":   {[]string{"TCP/9880", "TCP/9443"}, common},
		"collector-events":  {[]string{"TCP/9880"}, append(slices.Clone(common), "TCP/6443")},
		"collector-metrics": {[]string{"TCP/9880"}, append(slices.Clone(common), "TCP/6443", "TCP/9090", "TCP/8080")},
		"analyzer":          {[]string{"TCP/9880"}, append(slices.Clone(common), "TCP/9090")},
		"indexer":           {[]string{"TCP/9880"}, append(slices.Clone(common), "TCP/9200")},
		"injector":          {[]string{"TCP/9880"}, append(slices.Clone(common), "TCP/6443")},
	}
	ports := func(np *unstructured.Unstructured, field string) []string {
		var out []string
		rules, _, _ := unstructured.NestedSlice(np.Object, "spec", field)
		for _, rule := range rules {
			ps, _, _ := unstructured.NestedSlice(rule.(map[string]any), "ports")
			if len(ps) == 0 {
				out = append(out, "any port")
			}
			for _, p := range ps {
				m := p.(map[string]any)
				out = append(out, fmt.Sprintf("%v/%v", m["protocol"], m["port"]))
			}
		}
		slices.Sort(out)
		return out
	}
	for role, w := range want {
		np := r.find(t, "NetworkPolicy", "faultline-prod-"+role)
		types, _, _ := unstructured.NestedStringSlice(np.Object, "spec", "policyTypes")
		if !slices.Equal(types, []string{"Ingress", "Egress"}) {
			t.Errorf("%s: policyTypes %q", role, types)
		}
		slices.Sort(w.in)
		slices.Sort(w.out)
		if got := ports(np, "ingress"); !slices.Equal(got, w.in) {
			t.Errorf("%s: ingress to %q, want %q", role, got, w.in)
		}
		if got := ports(np, "egress"); !slices.Equal(got, w.out) {
			t.Errorf("%s: egress to %q, want %q", role, got, w.out)
		}
	}
	deny := r.find(t, "NetworkPolicy", "faultline-prod-default-deny")
	sel, _, _ := unstructured.NestedMap(deny.Object, "spec", "podSelector")
	if len(sel) != 0 || len(ports(deny, "ingress")) != 0 || len(ports(deny, "egress")) != 0 {
		t.Errorf("default-deny selects %v and allows something", sel)
	}
}
