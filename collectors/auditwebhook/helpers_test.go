package auditwebhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/bus/bustest"
	"github.com/faultline/faultline/collectors"
	"github.com/faultline/faultline/internal/tlsutil"
	"github.com/faultline/faultline/schemas"
)

// testCluster is the cluster name of the tests' envelopes.
const testCluster = "test"

// pki is a CA with the files a receiver and its clients need.
type pki struct {
	ca                *tlsutil.CA
	dir               string
	caFile            string
	certFile, keyFile string // serving pair for 127.0.0.1
	token, tokenFile  string
	// clientCert is signed by ca, otherClientCert by another CA.
	clientCert, otherClientCert tls.Certificate
	clientCertPEM, clientKeyPEM []byte
	clientCertFile              string
	clientKeyFile               string
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	dir := t.TempDir()
	p := &pki{dir: dir, token: "tok-" + strings.Repeat("a1", 16)}
	var err error
	if p.ca, err = tlsutil.NewCA("faultline-test-ca", time.Hour); err != nil {
		t.Fatal(err)
	}
	serving, err := p.ca.Serving([]string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	client, err := p.ca.Client("kube-apiserver", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if p.clientCert, err = client.TLSCertificate(); err != nil {
		t.Fatal(err)
	}
	p.clientCertPEM, p.clientKeyPEM = client.CertPEM, client.KeyPEM
	otherCA, err := tlsutil.NewCA("someone-else", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := otherCA.Client("kube-apiserver", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if p.otherClientCert, err = other.TLSCertificate(); err != nil {
		t.Fatal(err)
	}
	p.caFile = filepath.Join(dir, "ca.crt")
	p.certFile, p.keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	p.clientCertFile, p.clientKeyFile = filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	p.tokenFile = filepath.Join(dir, "token")
	must(t, tlsutil.WriteFile(p.caFile, p.ca.CertPEM, 0o644, false))
	must(t, tlsutil.WriteFiles(p.certFile, serving.CertPEM, p.keyFile, serving.KeyPEM, false))
	must(t, tlsutil.WriteFiles(p.clientCertFile, client.CertPEM, p.clientKeyFile, client.KeyPEM, false))
	must(t, os.WriteFile(p.tokenFile, []byte("# the API server's token\n"+p.token+"\n"), 0o600))
	return p
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// testConfig is a receiver on a random loopback port with HTTPS, the token
// file and client certificates.
func (p *pki) testConfig() Config {
	cfg := DefaultConfig()
	cfg.Enabled = true
	cfg.Listen = "127.0.0.1:0"
	cfg.TLSCertFile, cfg.TLSKeyFile = p.certFile, p.keyFile
	cfg.TokenFile = p.tokenFile
	cfg.ClientCAFile = p.caFile
	cfg.PublishTimeout = 5 * time.Second
	return cfg
}

// client returns an HTTPS client trusting the test CA, presenting certs.
func (p *pki) client(certs ...tls.Certificate) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: p.ca.CertPool(), Certificates: certs, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
	}}
}

// receiver is a running collector with its bus.
type receiver struct {
	*Collector
	bus  *bus.Bus
	reg  *prometheus.Registry
	stop func() // cancels Run and waits for it
}

// startReceiver runs a receiver with cfg against b until the test ends.
func startReceiver(t testing.TB, b *bus.Bus, cfg Config) *receiver {
	t.Helper()
	return startReceiverReloading(t, b, cfg, 0)
}

// startReceiverReloading is startReceiver checking its files every
// reloadEvery (0: the default).
func startReceiverReloading(t testing.TB, b *bus.Bus, cfg Config, reloadEvery time.Duration) *receiver {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := New(collectors.Deps{Bus: b, Cluster: testCluster, Log: bustest.Logger(), Metrics: reg}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if reloadEvery > 0 {
		c.reloadEvery = reloadEvery
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("Run did not return within 30s of cancellation")
			}
		})
	}
	t.Cleanup(stop)
	bustest.WaitFor(t, 5*time.Second, "receiver serving", c.serving.Load)
	return &receiver{Collector: c, bus: b, reg: reg, stop: stop}
}

// post sends body with the given headers; the token is added unless the
// headers set Authorization (an empty value sends none).
func post(t testing.TB, client *http.Client, url, token string, body []byte, header map[string]string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	return do(t, client, req)
}

func do(t testing.TB, client *http.Client, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	return resp.StatusCode, b
}

// fixtureItems returns the audit events the harness recorded from a real
// API server, compact.
func fixtureItems(t testing.TB) [][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "test", "testdata", "kube", "audit-eventlist.json"))
	if err != nil {
		t.Fatal(err)
	}
	items, err := schemas.SplitAuditEvents(b)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, len(items))
	for i, it := range items {
		var buf bytes.Buffer
		if err := json.Compact(&buf, it); err != nil {
			t.Fatal(err)
		}
		out[i] = buf.Bytes()
	}
	return out
}

// withAuditID returns a copy of a compact event with another auditID.
func withAuditID(t testing.TB, item []byte, id string) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(item, &m); err != nil {
		t.Fatal(err)
	}
	old := m["auditID"]
	out := bytes.Replace(item, []byte(`"auditID":`+string(old)), []byte(`"auditID":"`+id+`"`), 1)
	if bytes.Equal(out, item) {
		t.Fatalf("no auditID in %s", item)
	}
	return out
}

// eventList wraps items in an audit.k8s.io/v1 EventList.
func eventList(items ...[]byte) []byte {
	return listOf("audit.k8s.io/v1", items...)
}

func listOf(apiVersion string, items ...[]byte) []byte {
	var b bytes.Buffer
	b.WriteString(`{"kind":"EventList","apiVersion":"` + apiVersion + `","metadata":{},"items":[`)
	b.Write(bytes.Join(items, []byte(",")))
	b.WriteString(`]}`)
	return b.Bytes()
}

// idsOf returns the envelope ids the items get.
func idsOf(t testing.TB, items ...[]byte) []string {
	t.Helper()
	ids := make([]string, len(items))
	for i, it := range items {
		ev, err := schemas.ParseAuditEvent(it)
		if err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
		ids[i] = schemas.AuditEventIDOf(&ev)
	}
	return ids
}

// stored is one message read back from a stream.
type stored struct {
	Subject string
	ID      string // Nats-Msg-Id
	Data    []byte
	Header  map[string][]string
}

// readStream returns every message of a stream on subject, in order.
func readStream(t testing.TB, b *bus.Bus, stream, subject string) []stored {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := b.JetStream().Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []stored
	if info.State.Msgs == 0 {
		return nil
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("get message %d: %v", seq, err)
		}
		if subject != "" && m.Subject != subject {
			continue
		}
		out = append(out, stored{Subject: m.Subject, ID: m.Header.Get(jetstream.MsgIDHeader), Data: m.Data, Header: m.Header})
	}
	return out
}

// auditIDs decodes the envelopes of msgs, checks each against the schemas
// and its Nats-Msg-Id, and counts the ids.
func auditIDs(t testing.TB, msgs []stored) map[string]int {
	t.Helper()
	ids := map[string]int{}
	for _, m := range msgs {
		env, err := schemas.DecodeEnvelope(m.Data)
		if err != nil {
			t.Fatalf("message %s: %v", m.ID, err)
		}
		if env.ID != m.ID {
			t.Fatalf("envelope id %s sent with Nats-Msg-Id %s", env.ID, m.ID)
		}
		ev, err := schemas.ParseAuditEvent(env.Data)
		if err != nil {
			t.Fatalf("message %s: data: %v", m.ID, err)
		}
		if id := schemas.AuditEventIDOf(&ev); id != env.ID {
			t.Fatalf("envelope id %s for event %s", env.ID, id)
		}
		ids[env.ID]++
	}
	return ids
}

func counter(t testing.TB, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue metric
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

// writeFileAtomic replaces path as a Secret volume update does: a new file
// renamed over the old one.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
