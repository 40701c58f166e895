package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/faultline/faultline/analyzers/rules"
	"github.com/faultline/faultline/internal/config"
	"github.com/faultline/faultline/schemas"
)

// rendered are the chart's objects without a cluster: the checked-in
// manifests, and the production values rendered by helm.
func rendered(t *testing.T, name string) (*release, string) {
	t.Helper()
	var data []byte
	cluster := "default"
	switch name {
	case "manifests":
		var err error
		if data, err = os.ReadFile("manifests/faultline.yaml"); err != nil {
			t.Fatal(err)
		}
	case "production":
		data = helmTemplate(t, "faultline-prod", "faultline-prod", "-f", chartDir+"/values-production.yaml")
		cluster = "prod-eu-1"
	}
	objs, err := parseObjects(data)
	if err != nil {
		t.Fatal(err)
	}
	return &release{name: name, objects: objs}, cluster
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// faultlineBin builds the binary the image ships, as make build does.
func faultlineBin(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "faultline-deploy-test")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "faultline")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/faultline").CombinedOutput()
		if err != nil {
			binErr = err
			binPath = string(out)
		}
	})
	if binErr != nil {
		t.Fatalf("go build ./cmd/faultline: %v\n%s", binErr, binPath)
	}
	return binPath
}

// Every role's faultline.yaml is one the binary accepts as it runs in its
// pod: every file it names is mounted from the pod's volumes, every field
// is known and valid, the rule files compile, and the arguments name the
// role's subcommand. The experiment files parse, and the trial NATS
// server's configuration is one nats-server accepts.
func TestRoleConfigs(t *testing.T) {
	bin := faultlineBin(t)
	for _, name := range []string{"manifests", "production"} {
		t.Run(name, func(t *testing.T) {
			r, cluster := rendered(t, name)
			deployments := r.ofKind("Deployment")
			if len(deployments) == 0 {
				t.Fatal("no Deployments")
			}
			for _, d := range deployments {
				var tmpl corev1.PodTemplateSpec
				raw, _, _ := unstructured.NestedMap(d.Object, "spec", "template")
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &tmpl); err != nil {
					t.Fatal(err)
				}
				t.Run(d.GetName(), func(t *testing.T) { checkRole(t, r, bin, cluster, tmpl) })
			}
			for _, cm := range r.ofKind("ConfigMap") {
				if strings.HasSuffix(cm.GetName(), "-experiments") {
					data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
					for file, body := range data {
						e, err := schemas.ParseExperiment([]byte(body))
						if err != nil {
							t.Errorf("experiment %s: %v", file, err)
						} else if e.Cluster != cluster {
							t.Errorf("experiment %s is for cluster %q, the release watches %q", file, e.Cluster, cluster)
						}
					}
				}
				if strings.HasSuffix(cm.GetName(), "-nats") {
					checkNATSConfig(t, r, cm)
				}
			}
		})
	}
}

func checkRole(t *testing.T, r *release, bin, cluster string, tmpl corev1.PodTemplateSpec) {
	ctr := tmpl.Spec.Containers[0]
	root := t.TempDir()
	// Lay out every mount as the kubelet would, files from the rendered
	// ConfigMaps and placeholder files for the Secrets' keys.
	configFile := ""
	for _, m := range ctr.VolumeMounts {
		var vol *corev1.Volume
		for i := range tmpl.Spec.Volumes {
			if tmpl.Spec.Volumes[i].Name == m.Name {
				vol = &tmpl.Spec.Volumes[i]
			}
		}
		if vol == nil {
			t.Fatalf("mount %s has no volume", m.Name)
		}
		dir := filepath.Join(root, m.MountPath)
		files := map[string]string{}
		switch {
		case vol.ConfigMap != nil:
			data, _, _ := unstructured.NestedStringMap(r.find(t, "ConfigMap", vol.ConfigMap.Name).Object, "data")
			for k, v := range data {
				files[k] = v
			}
		case vol.Secret != nil:
			for _, it := range vol.Secret.Items {
				files[it.Path] = "placeholder for secret " + vol.Secret.SecretName + " key " + it.Key
			}
		case vol.Projected != nil:
			for _, src := range vol.Projected.Sources {
				if src.Secret == nil {
					t.Fatalf("volume %s: projected source %+v", vol.Name, src)
				}
				for _, it := range src.Secret.Items {
					files[it.Path] = "placeholder for secret " + src.Secret.Name + " key " + it.Key
				}
			}
		default:
			t.Fatalf("volume %s: unexpected source %+v", vol.Name, vol.VolumeSource)
		}
		for f, body := range files {
			p := filepath.Join(dir, f)
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if f, ok := files["faultline.yaml"]; ok {
			configFile = filepath.Join(dir, "faultline.yaml")
			// The paths the file names, under the test's root.
			f = strings.ReplaceAll(f, "/etc/faultline/", filepath.Join(root, "etc", "faultline")+"/")
			if err := os.WriteFile(configFile, []byte(f), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The arguments: the role's subcommand, then --config with the mounted file.
	args := ctr.Args
	if len(args) < 3 || args[len(args)-2] != "--config" || args[len(args)-1] != "/etc/faultline/config/faultline.yaml" || configFile == "" {
		t.Fatalf("args %q, config mounted at %q: want SUBCOMMAND --config /etc/faultline/config/faultline.yaml", args, configFile)
	}
	sub := args[:len(args)-2]
	out, err := exec.Command(bin, append(sub, "--help")...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Usage:\n  faultline "+strings.Join(sub, " ")+" [") {
		t.Errorf("faultline %s --help: %v, usage not of that command:\n%s", strings.Join(sub, " "), err, out)
	}

	cfg, err := config.LoadFile(configFile)
	if err != nil {
		t.Fatalf("%v", err)
	}
	if cfg.Cluster != cluster {
		t.Errorf("cluster %q, want %q", cfg.Cluster, cluster)
	}
	if cfg.HTTP.Listen != ":9880" {
		t.Errorf("http.listen %q: probes and Prometheus need all interfaces on the ops port", cfg.HTTP.Listen)
	}
	if len(cfg.Bus.URLs) == 0 {
		t.Errorf("no bus.urls: the role would start an embedded server of its own")
	}
	if sub[0] == "analyze" {
		if _, err := rules.Compile(cfg.Analyzers.Rules.Options()); err != nil {
			t.Errorf("rules: %v", err)
		}
	}
}

// checkNATSConfig has nats-server read the trial server's configuration.
func checkNATSConfig(t *testing.T, r *release, cm *unstructured.Unstructured) {
	t.Helper()
	conf, _, _ := unstructured.NestedString(cm.Object, "data", "nats.conf")
	p := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(p, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := server.ProcessConfigFile(p)
	if err != nil {
		t.Fatalf("nats.conf: %v", err)
	}
	if !o.JetStream || o.StoreDir != "/data" || o.Port != 4222 || o.HTTPPort != 8222 {
		t.Errorf("nats.conf: jetstream %v store %q port %d http %d", o.JetStream, o.StoreDir, o.Port, o.HTTPPort)
	}
	sts := r.find(t, "StatefulSet", cm.GetName())
	claims, _, _ := unstructured.NestedSlice(sts.Object, "spec", "volumeClaimTemplates")
	size, _, _ := unstructured.NestedString(claims[0].(map[string]any), "spec", "resources", "requests", "storage")
	if q := resource.MustParse(size); o.JetStreamMaxStore <= 0 || o.JetStreamMaxStore >= q.Value() {
		t.Errorf("JetStream max_file_store %d, volume %s: the store must stop before the volume is full", o.JetStreamMaxStore, size)
	}
}
