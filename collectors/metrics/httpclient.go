package metrics

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
)

// ErrBodyLimit is wrapped when a response is larger than max_body_size.
var ErrBodyLimit = errors.New("response body exceeds collectors.metrics.max_body_size")

// httpOptions configure the client of a group of targets or of the
// Prometheus server.
type httpOptions struct {
	CAFile          string
	BearerTokenFile string
	Username        string
	PasswordFile    string
	// AuthHost limits credentials to one host:port (the Prometheus server),
	// so a redirect elsewhere does not carry them. Empty: any host (scrape
	// targets, each requested directly).
	AuthHost string
	// MaxBody caps every response body; 0: no cap.
	MaxBody int64
	// MaxConns bounds connections per host.
	MaxConns int
}

// newHTTPClient builds a client with its own transport: TLS verified against
// CAFile (else the system roots), credentials read from their files on every
// request so rotated tokens are picked up, bodies capped at MaxBody.
func newHTTPClient(o httpOptions) (*http.Client, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", o.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	for _, f := range []string{o.BearerTokenFile, o.PasswordFile} {
		if f == "" {
			continue
		}
		if _, err := readSecret(f); err != nil {
			return nil, err
		}
	}
	maxConns := o.MaxConns
	if maxConns < 1 {
		maxConns = 4
	}
	var rt http.RoundTripper = &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		TLSClientConfig:       tlsCfg,
		MaxIdleConns:          128,
		MaxIdleConnsPerHost:   maxConns,
		MaxConnsPerHost:       maxConns,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 0, // each request has its own deadline
		ForceAttemptHTTP2:     true,
	}
	if o.BearerTokenFile != "" || o.PasswordFile != "" {
		rt = &authTransport{next: rt, opts: o}
	}
	if o.MaxBody > 0 {
		rt = &limitTransport{next: rt, max: o.MaxBody}
	}
	return &http.Client{Transport: rt}, nil
}

// readSecret reads a token or password file, without surrounding
// whitespace.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read credentials: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("read credentials: %s is empty", path)
	}
	return s, nil
}

type authTransport struct {
	next http.RoundTripper
	opts httpOptions
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.opts.AuthHost != "" && req.URL.Host != t.opts.AuthHost {
		return t.next.RoundTrip(req)
	}
	r := req.Clone(req.Context())
	switch {
	case t.opts.BearerTokenFile != "":
		tok, err := readSecret(t.opts.BearerTokenFile)
		if err != nil {
			return nil, err
		}
		r.Header.Set("Authorization", "Bearer "+tok)
	case t.opts.PasswordFile != "":
		pw, err := readSecret(t.opts.PasswordFile)
		if err != nil {
			return nil, err
		}
		r.SetBasicAuth(t.opts.Username, pw)
	}
	return t.next.RoundTrip(r)
}

// limitTransport caps response bodies: reading past max fails with
// ErrBodyLimit instead of buffering without bound.
type limitTransport struct {
	next http.RoundTripper
	max  int64
}

func (t *limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.max}
	return resp, nil
}

type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One more byte tells a body of exactly max bytes from a longer one.
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, ErrBodyLimit
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// PrometheusAPI is a client of the Prometheus server configured in p (TLS,
// credentials bound to its host, responses capped at maxBody), for the
// other components that query it: the steady-state analyzer evaluates its
// PromQL indicators through the same connection settings.
func PrometheusAPI(p PromQL, maxBody int64) (promv1.API, error) {
	u, err := url.Parse(p.URL)
	if err != nil || p.URL == "" {
		return nil, fmt.Errorf("prometheus url %q: not set or invalid", p.URL)
	}
	hc, err := newHTTPClient(httpOptions{
		CAFile: p.CAFile, BearerTokenFile: p.BearerTokenFile, Username: p.Username, PasswordFile: p.PasswordFile,
		AuthHost: u.Host, MaxBody: maxBody, MaxConns: 8,
	})
	if err != nil {
		return nil, err
	}
	client, err := api.NewClient(api.Config{Address: p.URL, Client: hc})
	if err != nil {
		return nil, fmt.Errorf("prometheus client: %w", err)
	}
	return promv1.NewAPI(client), nil
}
