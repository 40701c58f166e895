package e2e

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/faultline/faultline/internal/testes"
	"github.com/faultline/faultline/internal/testkube"
)

// cluster is the name the pipeline runs under: it is in every subject and
// document.
const cluster = "e2e"

// pipeline is the whole of Faultline on real parts, each in its own
// process: a NATS server with JetStream, the audit webhook collector, the
// analyzers, the indexer and an injector, Elasticsearch, and (when asked
// for) a kube-apiserver whose audit webhook points at the collector.
type pipeline struct {
	t   testing.TB
	dir string

	nats, collector, analyzer, indexer, injector *proc
	chaos                                        *chaos

	webhookURL string
	// client posts to the webhook as the API server does: it trusts the
	// webhook's CA and presents the API server's client certificate.
	client      *http.Client
	token       string
	natsToken   string
	es          *testes.Server
	kube        *testkube.Cluster
	opsAddr     map[string]string
	certs       string
	configPath  string
	natsURL     string
	marker      string
	webhookPort int
}

type pipelineOptions struct {
	// Kube starts a kube-apiserver that sends its audit events to the
	// webhook.
	Kube bool
}

func startPipeline(t testing.TB, o pipelineOptions) *pipeline {
	t.Helper()
	dir, err := os.MkdirTemp("", "faultline-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	p := &pipeline{t: t, dir: dir, opsAddr: map[string]string{}, marker: "e2e-secret-marker-" + randHex(8)}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the pipeline's logs are kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})

	// NATS: a separate process so it can be restarted and stopped; token
	// authentication, JetStream on file storage in dir.
	p.natsToken = randHex(16)
	natsPort := freePort(t)
	p.natsURL = fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	natsConf := filepath.Join(dir, "nats.conf")
	write(t, natsConf, fmt.Sprintf("listen: 127.0.0.1:%d\nauthorization { token: %q }\njetstream { store_dir: %q }\n", natsPort, p.natsToken, filepath.Join(dir, "jetstream")))
	write(t, filepath.Join(dir, "nats-token"), p.natsToken)
	p.nats = &proc{name: "nats-server", bin: bins.nats, args: []string{"-c", natsConf}, log: filepath.Join(dir, "nats.log"),
		ready: dialable(fmt.Sprintf("127.0.0.1:%d", natsPort))}
	p.nats.start(t)
	t.Cleanup(func() { p.nats.stop(t, 20*time.Second) })

	// Elasticsearch, its own instance: the suite stops it.
	p.es = testes.Start(t, testes.Options{})

	// The webhook's certificates and token, as `faultline dev certs`
	// writes them for the API server.
	p.webhookPort = freePort(t)
	p.webhookURL = fmt.Sprintf("https://127.0.0.1:%d/audit/webhook", p.webhookPort)
	p.certs = filepath.Join(dir, "certs")
	if out, err := exec.Command(bins.faultline, "dev", "certs", "--dir", p.certs, "--url", p.webhookURL).CombinedOutput(); err != nil {
		t.Fatalf("dev certs: %v\n%s", err, out)
	}
	tok, err := os.ReadFile(filepath.Join(p.certs, "token"))
	if err != nil {
		t.Fatal(err)
	}
	p.token = strings.TrimSpace(string(tok))
	p.client = webhookClient(t, p.certs)

	if o.Kube {
		ca, err := os.ReadFile(filepath.Join(p.certs, "ca.crt"))
		if err != nil {
			t.Fatal(err)
		}
		cert, err := os.ReadFile(filepath.Join(p.certs, "apiserver-client.crt"))
		if err != nil {
			t.Fatal(err)
		}
		key, err := os.ReadFile(filepath.Join(p.certs, "apiserver-client.key"))
		if err != nil {
			t.Fatal(err)
		}
		p.kube = testkube.StartT(t, testkube.Options{AuditWebhook: &testkube.AuditWebhook{
			URL: p.webhookURL, CAPEM: ca, Token: p.token, ClientCertPEM: cert, ClientKeyPEM: key,
		}})
		p.chaos = p.prepareChaos(t)
	}

	p.configPath = filepath.Join(dir, "faultline.yaml")
	config := p.config()
	if p.chaos != nil {
		config += p.chaos.injectorConfig(p.kube.Admin.Kubeconfig)
	}
	write(t, p.configPath, config)

	role := func(name string, args ...string) *proc {
		ops := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		p.opsAddr[name] = ops
		pr := &proc{name: name, bin: bins.faultline, log: filepath.Join(dir, name+".log"), ready: readyz(ops),
			args: append(args, "--config", p.configPath, "--http-listen", ops, "--data-dir", filepath.Join(dir, name+"-data"))}
		pr.start(t)
		t.Cleanup(func() { pr.stop(t, 30*time.Second) })
		return pr
	}
	p.collector = role("collector", "collect", "audit-webhook")
	p.analyzer = role("analyzer", "analyze")
	p.indexer = role("indexer", "index")
	if p.chaos != nil {
		p.injector = role("injector", "injector")
		p.chaos.connect(t, p)
	}

	return p
}

// config is the one configuration file every role reads; each role runs
// only its part of it.
func (p *pipeline) config() string {
	c := filepath.Join(p.certs, "%s")
	return fmt.Sprintf(`cluster: %s
log:
  format: json
bus:
  urls: [%s]
  token_file: %s
  connect_timeout: 30s
  consumer:
    backoff: [500ms, 1s, 2s]
    ack_wait: 15s
collectors:
  audit_webhook:
    listen: 127.0.0.1:%d
    tls_cert_file: %s
    tls_key_file: %s
    token_file: %s
    client_ca_file: %s
    read_header_timeout: 2s
    read_timeout: 5s
analyzers:
  baseline:
    enabled: false
  steadystate:
    enabled: false
sinks:
  elasticsearch:
    urls: [%s]
    namespace: e2e
    replicas: 0
    flush_interval: 100ms
    backoff: [500ms, 1s, 2s]
    start_timeout: 2m
`, cluster, p.natsURL, filepath.Join(p.dir, "nats-token"), p.webhookPort,
		fmt.Sprintf(c, "tls.crt"), fmt.Sprintf(c, "tls.key"), fmt.Sprintf(c, "token"), fmt.Sprintf(c, "ca.crt"),
		p.es.URL)
}

func webhookClient(t testing.TB, certs string) *http.Client {
	t.Helper()
	ca, err := os.ReadFile(filepath.Join(certs, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cert, err := tls.LoadX509KeyPair(filepath.Join(certs, "apiserver-client.crt"), filepath.Join(certs, "apiserver-client.key"))
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 16,
	}}
}

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// roles are the Faultline processes, for the resource report.
func (p *pipeline) roles() []*proc {
	out := []*proc{p.collector, p.analyzer, p.indexer}
	if p.injector != nil {
		out = append(out, p.injector)
	}
	return out
}

// waitFor polls cond every 200 ms until it holds or timeout passes, and
// returns how long that took.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, error)) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return time.Since(start)
		}
		last = err
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v (last error: %v)", what, timeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
