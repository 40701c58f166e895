package tlsutil

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestHandshake serves HTTPS with a generated serving certificate, requires
// a client certificate from the same CA, and connects with one.
func TestHandshake(t *testing.T) {
	ca, err := NewCA("test-ca", 0)
	if err != nil {
		t.Fatal(err)
	}
	srvPair, err := ca.Serving([]string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cliPair, err := ca.Client("kube-apiserver", []string{"system:masters"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	srvCert, err := srvPair.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	cliCert, err := cliPair.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{srvCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.CertPool(),
		MinVersion:   tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(r.TLS.PeerCertificates[0].Subject.CommonName))
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})

	for _, tc := range []struct {
		name    string
		certs   []tls.Certificate
		wantErr bool
	}{
		{"client certificate", []tls.Certificate{cliCert}, false},
		{"no client certificate", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
				RootCAs: ca.CertPool(), Certificates: tc.certs, MinVersion: tls.VersionTLS12,
			}}}
			defer client.CloseIdleConnections()
			resp, err := client.Get("https://" + ln.Addr().String() + "/")
			if tc.wantErr {
				if err == nil {
					resp.Body.Close()
					t.Fatal("request without a client certificate succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		})
	}
}

func TestServingNamesAndValidity(t *testing.T) {
	ca, err := NewCA("test-ca", 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ca.Serving([]string{"faultline.faultline.svc", "10.0.0.7", "::1"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.DNSNames) != 1 || cert.DNSNames[0] != "faultline.faultline.svc" {
		t.Errorf("DNS names %v", cert.DNSNames)
	}
	if len(cert.IPAddresses) != 2 || !cert.IPAddresses[0].Equal(net.ParseIP("10.0.0.7")) {
		t.Errorf("IP addresses %v", cert.IPAddresses)
	}
	// A certificate never outlives its CA.
	if cert.NotAfter.After(time.Now().Add(2 * time.Hour)) {
		t.Errorf("certificate valid until %s, after its CA", cert.NotAfter)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.CertPool(), DNSName: "faultline.faultline.svc"}); err != nil {
		t.Errorf("verify: %v", err)
	}
	if _, err := ca.Serving(nil, 0); err == nil {
		t.Error("serving certificate without hosts was issued")
	}
}

func TestWriteAndLoadCA(t *testing.T) {
	dir := t.TempDir()
	ca, err := NewCA("test-ca", 0)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "sub", "ca.crt"), filepath.Join(dir, "sub", "ca.key")
	if err := WriteFiles(certFile, ca.CertPEM, keyFile, ca.KeyPEM, false); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}
	if err := WriteFiles(certFile, ca.CertPEM, keyFile, ca.KeyPEM, false); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second write without overwrite: %v, want ErrExist", err)
	}
	if err := WriteFiles(certFile, ca.CertPEM, keyFile, ca.KeyPEM, true); err != nil {
		t.Errorf("overwrite: %v", err)
	}
	loaded, err := LoadCA(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loaded.Client("someone", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := p.TLSCertificate()
	leaf, _ := x509.ParseCertificate(c.Certificate[0])
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.CertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("certificate from the loaded CA does not verify against the original: %v", err)
	}
	// A leaf is not a CA.
	leafCert, leafKey := filepath.Join(dir, "leaf.crt"), filepath.Join(dir, "leaf.key")
	if err := WriteFiles(leafCert, p.CertPEM, leafKey, p.KeyPEM, false); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(leafCert, leafKey); err == nil {
		t.Error("a client certificate loaded as a CA")
	}
}
