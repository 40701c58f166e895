package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// TestDevCertsWireTheAuditWebhook writes the development certificates,
// runs `faultline collect audit-webhook` with them, and posts the recorded
// EventList with the credentials of the webhook kubeconfig it wrote, as the
// API server would.
func TestDevCertsWireTheAuditWebhook(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	out, err := exec.Command(binary, "dev", "certs", "--dir", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("dev certs: %v\n%s", err, out)
	}
	for _, want := range []string{"BEGIN CERTIFICATE", "client_ca_file:", "--audit-webhook-config-file=" + filepath.Join(dir, "webhook-kubeconfig.yaml")} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// A second run keeps the files.
	again := exec.Command(binary, "dev", "certs", "--dir", dir)
	if out, err := again.CombinedOutput(); again.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "--force") {
		t.Errorf("second run: %v\n%s", err, out)
	}

	p, url := startProcess(t, 30*time.Second, "audit webhook: listening", "url",
		"collect", "audit-webhook", "--data-dir", t.TempDir(), "--http-listen", "127.0.0.1:0", "--log-format", "json",
		"--collectors.audit-webhook.listen", "127.0.0.1:0",
		"--collectors.audit-webhook.tls-cert-file", filepath.Join(dir, "tls.crt"),
		"--collectors.audit-webhook.tls-key-file", filepath.Join(dir, "tls.key"),
		"--collectors.audit-webhook.token-file", filepath.Join(dir, "token"),
		"--collectors.audit-webhook.client-ca-file", filepath.Join(dir, "ca.crt"))

	// The API server's view: the webhook kubeconfig, pointed at the port
	// the receiver got.
	rc, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, "webhook-kubeconfig.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if rc.BearerToken == "" || rc.CertFile == "" || len(rc.CAData) == 0 {
		t.Fatalf("webhook kubeconfig lacks credentials: %+v", rc)
	}
	rc.Host = url
	apiserver, err := rest.HTTPClientFor(rc)
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(filepath.Join("..", "..", "test", "testdata", "kube", "audit-eventlist.json"))
	if err != nil {
		t.Fatal(err)
	}
	code, resp := postJSON(t, apiserver, url, body)
	if code != 200 || !bytes.Contains(resp, []byte(`"published":45`)) {
		t.Errorf("API server's post: %d %s", code, resp)
	}

	// Trusting the CA but without credentials: refused.
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(rc.CAData)
	anonymous := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	if code, resp := postJSON(t, anonymous, url, body); code != 401 {
		t.Errorf("anonymous post: %d %s", code, resp)
	}

	p.stop(t, 30*time.Second)
}

func postJSON(t *testing.T, c *http.Client, url string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}
