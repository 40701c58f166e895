package testkube_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/faultline/faultline/internal/testkube"
)

// The package's tests share one cluster with the controllers on and the
// audit webhook pointing at receiver.
var (
	receiver *auditReceiver
	kube     *testkube.Shared
)

func TestMain(m *testing.M) {
	var err error
	if receiver, err = newAuditReceiver(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kube = testkube.NewShared(testkube.Options{
		Controllers:  true,
		AuditWebhook: receiver.webhook(),
	})
	code := m.Run()
	// The API server flushes its last audit batch while it stops, so the
	// receiver closes after it.
	if err := kube.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop shared cluster:", err)
		code = 1
	}
	receiver.srv.Close()
	os.Exit(code)
}

// auditReceiver is an audit webhook: a TLS server that accepts
// audit.k8s.io/v1 EventLists with a bearer token and keeps their events.
type auditReceiver struct {
	srv                         *httptest.Server
	token                       string
	clientCertPEM, clientKeyPEM []byte

	mu       sync.Mutex
	events   []auditv1.Event
	seen     map[string]bool // audit ID + stage: batch retries may resend
	problems []string        // requests that were not what the API server should send
	changed  chan struct{}   // closed and replaced whenever events or problems grow
}

// auditClientCN is the common name of the client certificate the API server
// presents to the receiver.
const auditClientCN = "kube-apiserver-audit"

func newAuditReceiver() (*auditReceiver, error) {
	r := &auditReceiver{token: randomName("token-"), seen: map[string]bool{}, changed: make(chan struct{})}
	// The receiver wants both a bearer token and a client certificate, so
	// that both kinds of webhook credentials are exercised. The handler, not
	// the TLS handshake, refuses a request without the certificate, so that
	// the test fails at once and says why.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("audit receiver: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: auditClientCN},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // self-signed: its own CA
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("audit receiver: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("audit receiver: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("audit receiver: %w", err)
	}
	r.clientCertPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	r.clientKeyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(cert)

	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.serveHTTP))
	r.srv.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: clientCAs, MinVersion: tls.VersionTLS12}
	r.srv.StartTLS()
	return r, nil
}

func (r *auditReceiver) webhook() *testkube.AuditWebhook {
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.srv.Certificate().Raw})
	return &testkube.AuditWebhook{
		URL:           r.srv.URL + "/audit/webhook",
		CAPEM:         caPEM,
		Token:         r.token,
		ClientCertPEM: r.clientCertPEM,
		ClientKeyPEM:  r.clientKeyPEM,
	}
}

func (r *auditReceiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	problem := func(code int, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		r.mu.Lock()
		r.problems = append(r.problems, msg)
		r.notifyLocked()
		r.mu.Unlock()
		http.Error(w, msg, code)
	}
	if req.Method != http.MethodPost || req.URL.Path != "/audit/webhook" {
		problem(http.StatusNotFound, "unexpected %s %s", req.Method, req.URL.Path)
		return
	}
	if req.TLS == nil || len(req.TLS.PeerCertificates) == 0 || req.TLS.PeerCertificates[0].Subject.CommonName != auditClientCN {
		problem(http.StatusUnauthorized, "no client certificate for %s", auditClientCN)
		return
	}
	if got := req.Header.Get("Authorization"); got != "Bearer "+r.token {
		problem(http.StatusUnauthorized, "wrong Authorization header %q", got)
		return
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		problem(http.StatusBadRequest, "read body: %v", err)
		return
	}
	var list auditv1.EventList
	if err := json.Unmarshal(body, &list); err != nil {
		problem(http.StatusBadRequest, "decode EventList: %v", err)
		return
	}
	if list.APIVersion != "audit.k8s.io/v1" || list.Kind != "EventList" {
		problem(http.StatusBadRequest, "got apiVersion %q kind %q, want audit.k8s.io/v1 EventList", list.APIVersion, list.Kind)
		return
	}
	r.mu.Lock()
	for _, e := range list.Items {
		key := string(e.AuditID) + "/" + string(e.Stage)
		if !r.seen[key] {
			r.seen[key] = true
			r.events = append(r.events, e)
		}
	}
	r.notifyLocked()
	r.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (r *auditReceiver) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// waitFor calls cond with the events received so far until it returns true,
// waking up whenever more arrive, and fails the test at ctx's end or when the
// receiver saw a request it should not have.
func (r *auditReceiver) waitFor(ctx context.Context, t *testing.T, what string, cond func([]auditv1.Event) bool) []auditv1.Event {
	t.Helper()
	for {
		r.mu.Lock()
		events := append([]auditv1.Event(nil), r.events...)
		problems := append([]string(nil), r.problems...)
		changed := r.changed
		r.mu.Unlock()
		if len(problems) > 0 {
			t.Fatalf("audit webhook got bad requests: %q", problems)
		}
		if cond(events) {
			return events
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v (%d audit events received)", what, ctx.Err(), len(events))
		}
	}
}

// newNamespace creates a namespace with a fresh name and waits for its
// default ServiceAccount, without which pods are refused.
func newNamespace(ctx context.Context, t *testing.T, c *testkube.Cluster, client kubernetes.Interface, prefix string) string {
	t.Helper()
	ns, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: randomName(prefix)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	if err := c.WaitForServiceAccount(ctx, ns.Name, "default"); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

func randomName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func clients(t *testing.T, c *testkube.Cluster) (admin, user kubernetes.Interface) {
	t.Helper()
	a, err := kubernetes.NewForConfig(c.Admin.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	u, err := kubernetes.NewForConfig(c.User.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return a, u
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}
