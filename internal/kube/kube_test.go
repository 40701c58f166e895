package kube

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/faultline/faultline/internal/config"
)

const kubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: a
  cluster: {server: "https://127.0.0.1:6443"}
- name: b
  cluster: {server: "https://10.0.0.1:6443"}
users:
- name: u
  user: {token: abc}
contexts:
- name: ctx-a
  context: {cluster: a, user: u}
- name: ctx-b
  context: {cluster: b, user: u}
current-context: ctx-a
`

func TestRestConfig(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	p := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(p, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ctx, host string
	}{{"", "https://127.0.0.1:6443"}, {"ctx-b", "https://10.0.0.1:6443"}} {
		rc, err := RestConfig(config.Kubernetes{Kubeconfig: p, Context: tc.ctx, QPS: 5, Burst: 7}, "faultline/test")
		if err != nil {
			t.Fatal(err)
		}
		if rc.Host != tc.host || rc.QPS != 5 || rc.Burst != 7 || rc.UserAgent != "faultline/test" || rc.BearerToken != "abc" {
			t.Errorf("context %q: got host %s qps %v burst %d ua %q", tc.ctx, rc.Host, rc.QPS, rc.Burst, rc.UserAgent)
		}
	}
	if _, err := RestConfig(config.Kubernetes{Kubeconfig: p, Context: "nope", QPS: 1, Burst: 1}, ""); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown context: %v", err)
	}
}
