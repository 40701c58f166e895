package auditwebhook_test

import (
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/faultline/faultline/collectors/auditwebhook"
	"github.com/faultline/faultline/internal/config"
)

// sample.yaml is a valid configuration whose limits are the defaults.
func TestSampleConfig(t *testing.T) {
	c, err := config.LoadFile("sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got := c.Collectors.AuditWebhook
	if !got.Enabled || got.TokenFile == "" || got.ClientCAFile == "" || len(got.ClientNames) != 1 {
		t.Errorf("sample.yaml not read as expected: %+v", got)
	}
	// Apart from what it must set, the sample shows the defaults.
	want := auditwebhook.DefaultConfig()
	want.Enabled = true
	want.TLSCertFile, want.TLSKeyFile = got.TLSCertFile, got.TLSKeyFile
	want.TokenFile, want.ClientCAFile, want.ClientNames = got.TokenFile, got.ClientCAFile, got.ClientNames
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sample.yaml differs from the defaults:\n got %+v\nwant %+v", got, want)
	}
}

func TestValidate(t *testing.T) {
	ok := auditwebhook.DefaultConfig()
	ok.Enabled = true
	ok.TLSCertFile, ok.TLSKeyFile, ok.TokenFile = "tls.crt", "tls.key", "tokens"
	tests := []struct {
		name   string
		change func(*auditwebhook.Config)
		want   string // "" for valid
	}{
		{"valid", func(*auditwebhook.Config) {}, ""},
		{"disabled without files", func(c *auditwebhook.Config) { *c = auditwebhook.DefaultConfig() }, ""},
		{"no TLS", func(c *auditwebhook.Config) { c.TLSCertFile, c.TLSKeyFile = "", "" }, "tls_cert_file: is required"},
		{"plain HTTP on request", func(c *auditwebhook.Config) { c.TLSCertFile, c.TLSKeyFile, c.InsecureHTTP = "", "", true }, ""},
		{"plain HTTP and TLS", func(c *auditwebhook.Config) { c.InsecureHTTP = true }, "insecure_http:"},
		{"client CA over HTTP", func(c *auditwebhook.Config) {
			c.TLSCertFile, c.TLSKeyFile, c.InsecureHTTP, c.ClientCAFile = "", "", true, "ca.crt"
		}, "client_ca_file: client certificates need HTTPS"},
		{"key without cert", func(c *auditwebhook.Config) { c.TLSCertFile = "" }, "tls_key_file:"},
		{"no authentication", func(c *auditwebhook.Config) { c.TokenFile = "" }, "token_file: no authentication"},
		{"client CA only", func(c *auditwebhook.Config) { c.TokenFile, c.ClientCAFile = "", "ca.crt" }, ""},
		{"names without CA", func(c *auditwebhook.Config) { c.ClientNames = []string{"kube-apiserver"} }, "client_names: needs client_ca_file"},
		{"bad listen", func(c *auditwebhook.Config) { c.Listen = "9443" }, "listen:"},
		{"relative path", func(c *auditwebhook.Config) { c.Path = "audit" }, "path:"},
		{"tiny event limit", func(c *auditwebhook.Config) { c.MaxEventSize = 1 << 10 }, "max_event_size:"},
		{"huge event limit", func(c *auditwebhook.Config) { c.MaxEventSize = 16 << 20 }, "max_event_size:"},
		{"tiny body limit", func(c *auditwebhook.Config) { c.MaxRequestSize = 10 }, "max_request_size:"},
		{"no concurrency", func(c *auditwebhook.Config) { c.MaxConcurrentRequests = 0 }, "max_concurrent_requests:"},
		{"no publish timeout", func(c *auditwebhook.Config) { c.PublishTimeout = 0 }, "publish_timeout:"},
		{"header timeout above read timeout", func(c *auditwebhook.Config) { c.ReadHeaderTimeout = 2 * c.ReadTimeout }, "read_header_timeout:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.change(&c)
			errs := c.Validate()
			if tc.want == "" {
				if len(errs) > 0 {
					t.Errorf("errors %v", errs)
				}
				return
			}
			for _, e := range errs {
				if len(e.Error()) >= len(tc.want) && e.Error()[:len(tc.want)] == tc.want {
					return
				}
			}
			t.Errorf("errors %v, want one starting %q", errs, tc.want)
		})
	}
}

// The deploy/audit examples load as the API server loads them.
func TestDeployExamples(t *testing.T) {
	// Strictly: a misspelt field is an error. (TestDeployPolicyInAPIServer
	// has a real API server load it.)
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "audit", "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var p auditv1.Policy
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		t.Fatalf("policy.yaml: %v", err)
	}
	if p.APIVersion != "audit.k8s.io/v1" || p.Kind != "Policy" || len(p.Rules) < 3 || p.Rules[len(p.Rules)-1].Level != auditv1.LevelMetadata {
		t.Errorf("policy.yaml: %d rules, last %+v", len(p.Rules), p.Rules[len(p.Rules)-1])
	}
	cfg, err := clientcmd.LoadFromFile(filepath.Join("..", "..", "deploy", "audit", "webhook-kubeconfig.yaml"))
	if err != nil {
		t.Fatalf("webhook-kubeconfig.yaml: %v", err)
	}
	ctx := cfg.Contexts[cfg.CurrentContext]
	if ctx == nil || cfg.Clusters[ctx.Cluster] == nil || cfg.AuthInfos[ctx.AuthInfo] == nil {
		t.Fatalf("webhook-kubeconfig.yaml: current context %q incomplete", cfg.CurrentContext)
	}
	u, err := url.Parse(cfg.Clusters[ctx.Cluster].Server)
	if err != nil || u.Scheme != "https" || u.Path != auditwebhook.DefaultPath {
		t.Errorf("server %q: want https and the default path %s", cfg.Clusters[ctx.Cluster].Server, auditwebhook.DefaultPath)
	}
	if ai := cfg.AuthInfos[ctx.AuthInfo]; ai.TokenFile == "" || ai.ClientCertificate == "" || ai.ClientKey == "" {
		t.Errorf("user %+v: want a token file and a client certificate", ai)
	}
}
