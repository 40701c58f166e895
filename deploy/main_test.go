// Package deploy tests the Helm chart (deploy/helm/faultline), the plain
// manifests rendered from it and the API server audit policy against a real
// kube-apiserver (internal/testkube): the objects are accepted by
// server-side apply, the pods meet the restricted Pod Security Standard, each
// role's ServiceAccount may do exactly what the role needs, every role's
// configuration is one the binary accepts, and the audit policy keeps secret
// values out of the audit trail.
//
// There is no kubelet or scheduler: Deployments are stored, not run.
package deploy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/faultline/faultline/internal/testkube"
)

const (
	// EnvHelm names the helm binary (scripts/helm-build.sh); test.sh sets it.
	envHelm = "FAULTLINE_HELM_BIN"
	// EnvRequireHelm=1 turns a missing helm into a failure, not a skip.
	envRequireHelm = "FAULTLINE_REQUIRE_HELM"

	chartDir     = "helm/faultline"
	fieldManager = "faultline-test"
)

// One cluster for the package, with the recommended audit policy, so the
// audit test reads what that policy records.
var kube = testkube.NewShared(testkube.Options{
	AuditPolicy: mustAbs("audit/policy.yaml"),
	Logger:      slog.New(slog.DiscardHandler),
})

func TestMain(m *testing.M) {
	code := m.Run()
	if err := kube.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		panic(err)
	}
	return a
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// helmBin is the helm binary, or the test is skipped (failed with
// FAULTLINE_REQUIRE_HELM=1).
func helmBin(t *testing.T) string {
	t.Helper()
	p := os.Getenv(envHelm)
	if p == "" {
		if os.Getenv(envRequireHelm) == "1" {
			t.Fatalf("%s is not set (scripts/helm-build.sh builds helm)", envHelm)
		}
		t.Skipf("no helm: set %s=$(scripts/helm-build.sh | tail -n1)", envHelm)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s: %v", envHelm, err)
	}
	return p
}

// helmTemplate renders the chart as release in namespace.
func helmTemplate(t *testing.T, release, namespace string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(helmBin(t), append([]string{"template", release, chartDir, "--namespace", namespace}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// parseObjects splits a multi-document YAML stream into objects; documents
// holding only comments are skipped.
func parseObjects(data []byte) ([]*unstructured.Unstructured, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read YAML: %w", err)
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("YAML to JSON: %w", err)
		}
		if bytes.Equal(bytes.TrimSpace(j), []byte("null")) {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(j); err != nil {
			return nil, fmt.Errorf("decode %s: %w", j, err)
		}
		out = append(out, u)
	}
}

// release is a set of objects installed on the shared cluster.
type release struct {
	name, namespace string
	objects         []*unstructured.Unstructured
	// warnings are those the API server sent while the objects were applied.
	warnings []string
}

// find returns the object of kind and name, or fails.
func (r *release) find(t *testing.T, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range r.objects {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("release %s: no %s %s", r.name, kind, name)
	return nil
}

func (r *release) ofKind(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range r.objects {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// warningLog collects the API server's Warning headers.
type warningLog struct {
	mu   sync.Mutex
	list []string
}

func (w *warningLog) HandleWarningHeader(_ int, _, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warningLog) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.list
	w.list = nil
	return out
}

// applier applies objects with server-side apply as the test's field
// manager, recording warnings.
type applier struct {
	dyn    dynamic.Interface
	mapper meta.RESTMapper
	warn   *warningLog
}

func newApplier(t *testing.T, c *testkube.Cluster) *applier {
	t.Helper()
	rc := c.Admin.RESTConfig()
	w := &warningLog{}
	rc.WarningHandler = w
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return &applier{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)), warn: w}
}

func (a *applier) resource(o *unstructured.Unstructured) (dynamic.ResourceInterface, *meta.RESTMapping, error) {
	gvk := o.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", gvk, err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return a.dyn.Resource(m.Resource).Namespace(o.GetNamespace()), m, nil
	}
	return a.dyn.Resource(m.Resource), m, nil
}

func (a *applier) apply(ctx context.Context, o *unstructured.Unstructured, dryRun bool) error {
	ri, _, err := a.resource(o)
	if err != nil {
		return err
	}
	opts := metav1.ApplyOptions{FieldManager: fieldManager, Force: true}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	if _, err := ri.Apply(ctx, o.GetName(), o, opts); err != nil {
		return fmt.Errorf("apply %s %s/%s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err)
	}
	return nil
}

// restricted labels a namespace for the restricted Pod Security Standard,
// as docs/install.md tells users to (the chart's own Namespace object has
// the same labels).
var restricted = map[string]string{
	"pod-security.kubernetes.io/enforce": "restricted",
	"pod-security.kubernetes.io/warn":    "restricted",
	"pod-security.kubernetes.io/audit":   "restricted",
}

// install applies every object of data, after creating the namespaces it
// refers to that it does not create itself (the release's own labelled
// restricted). Every namespaced object must name its namespace.
func install(t *testing.T, name, namespace string, data []byte) *release {
	t.Helper()
	c := kube.Get(t)
	objs, err := parseObjects(data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(objs) == 0 {
		t.Fatalf("%s: no objects", name)
	}
	ctx := ctxFor(t, 2*time.Minute)
	admin, err := kubernetes.NewForConfig(c.Admin.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	a := newApplier(t, c)
	own := map[string]bool{}
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			own[o.GetName()] = true
		}
	}
	// Namespaces first, then everything in the order rendered (Helm's
	// install order).
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			if err := a.apply(ctx, o, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, o := range objs {
		_, m, err := a.resource(o)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if m.Scope.Name() != meta.RESTScopeNameNamespace {
			continue
		}
		ns := o.GetNamespace()
		if ns == "" {
			t.Errorf("%s: %s %s has no metadata.namespace: a plain `kubectl apply` would put it in the current namespace", name, o.GetKind(), o.GetName())
			continue
		}
		if own[ns] {
			continue
		}
		labels := map[string]string(nil)
		if ns == namespace {
			labels = restricted
		}
		_, err = admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		own[ns] = true
	}
	a.warn.take()
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			continue
		}
		if err := a.apply(ctx, o, false); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	return &release{name: name, namespace: namespace, objects: objs, warnings: a.warn.take()}
}

// The releases the tests share, each installed once.
var (
	releasesMu sync.Mutex
	releases   = map[string]*release{}
)

// installed returns the release named, installing it on first use:
//   - "manifests": deploy/manifests/faultline.yaml as checked in (the
//     chart's defaults), namespace faultline;
//   - "production": the chart with values-production.yaml as release
//     faultline-prod in namespace faultline-prod;
//   - "read-cluster": the same with the analyzer's read access to shop,
//     as release faultline-read in namespace faultline-read.
func installed(t *testing.T, name string) *release {
	t.Helper()
	releasesMu.Lock()
	defer releasesMu.Unlock()
	if r := releases[name]; r != nil {
		return r
	}
	var r *release
	switch name {
	case "manifests":
		data, err := os.ReadFile("manifests/faultline.yaml")
		if err != nil {
			t.Fatal(err)
		}
		r = install(t, name, "faultline", data)
	case "production":
		r = install(t, name, "faultline-prod", helmTemplate(t, "faultline-prod", "faultline-prod", "-f", chartDir+"/values-production.yaml"))
	case "read-cluster":
		r = install(t, name, "faultline-read", helmTemplate(t, "faultline-read", "faultline-read",
			"-f", chartDir+"/values-production.yaml", "--set", "analyzer.readCluster.namespaces={shop}",
			"--set", "auditWebhook.service.clusterIP=10.96.100.11")) // each Service its own address
	default:
		t.Fatalf("no release %q", name)
	}
	if t.Failed() {
		t.FailNow()
	}
	releases[name] = r
	return r
}
