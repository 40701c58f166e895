package elasticsearch

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
)

// newClient builds the client: its own transport with TLS verified against
// ca_file (else the system roots), an optional client certificate, and the
// credentials read from their files on every request (so rotated secrets
// are picked up; they are never logged). The client's own retries (3, with
// backoff) cover transport errors, 429, 502, 503 and 504; onRetry counts
// them.
func newClient(c Config, onRetry func()) (*elasticsearch.Client, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s holds no PEM certificate", c.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cert_file/key_file: %w", err)
		}
		tlsCfg.Certificates = []tls.Certificate{cert}
	}
	var rt http.RoundTripper = &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		TLSClientConfig:       tlsCfg,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   max(8, 2*c.Workers),
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
	}
	if c.APIKeyFile != "" || c.PasswordFile != "" {
		a := &authTransport{next: rt, apiKeyFile: c.APIKeyFile, username: c.Username, passwordFile: c.PasswordFile}
		// Fail at start, not at the first request.
		if _, err := a.header(); err != nil {
			return nil, err
		}
		rt = a
	}
	return elasticsearch.NewClient(elasticsearch.Config{
		Addresses:           c.URLs,
		Transport:           rt,
		CompressRequestBody: c.Compress,
		MaxRetries:          3,
		RetryOnStatus:       []int{http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout},
		RetryBackoff: func(attempt int) time.Duration {
			if onRetry != nil {
				onRetry()
			}
			return min(100*time.Millisecond<<(attempt-1), 2*time.Second)
		},
		// Responses in 8.x form from 8.x and 9.x servers alike.
		EnableCompatibilityMode: true,
	})
}

// readSecret reads a key or password file, without surrounding white space.
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

// authTransport sets the Authorization header of every request from the
// credential files.
type authTransport struct {
	next                   http.RoundTripper
	apiKeyFile             string
	username, passwordFile string
}

func (t *authTransport) header() (string, error) {
	if t.apiKeyFile != "" {
		key, err := readSecret(t.apiKeyFile)
		if err != nil {
			return "", fmt.Errorf("api_key_file: %w", err)
		}
		return "ApiKey " + key, nil
	}
	pw, err := readSecret(t.passwordFile)
	if err != nil {
		return "", fmt.Errorf("password_file: %w", err)
	}
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(t.username+":"+pw)), nil
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	h, err := t.header()
	if err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", h)
	return t.next.RoundTrip(r)
}

// esError is an error answer of Elasticsearch: its status and the type
// and reason of its error (and of the error's cause).
type esError struct {
	Status      int
	Type        string
	Reason      string
	CauseType   string
	CauseReason string
}

func (e *esError) Error() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(e.Status))
	if e.Type != "" {
		b.WriteString(" ")
		b.WriteString(e.Type)
	} else {
		b.WriteString(" ")
		b.WriteString(http.StatusText(e.Status))
	}
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	if e.CauseType != "" || e.CauseReason != "" {
		b.WriteString(" (caused by ")
		b.WriteString(e.CauseType)
		if e.CauseReason != "" {
			b.WriteString(": ")
			b.WriteString(e.CauseReason)
		}
		b.WriteString(")")
	}
	return b.String()
}

// errorOf reads an error answer (status ≥ 300); the body is consumed.
func errorOf(res *http.Response) *esError {
	e := &esError{Status: res.StatusCode}
	data, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	var body struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(data, &body) != nil || len(body.Error) == 0 {
		e.Reason = strings.TrimSpace(string(bytes.ToValidUTF8(data[:min(len(data), 512)], nil)))
		return e
	}
	var detail struct {
		Type     string `json:"type"`
		Reason   string `json:"reason"`
		CausedBy struct {
			Type   string `json:"type"`
			Reason string `json:"reason"`
		} `json:"caused_by"`
	}
	if json.Unmarshal(body.Error, &detail) != nil {
		// "error" is a string in a few answers (404 of an unknown route).
		var s string
		_ = json.Unmarshal(body.Error, &s)
		e.Reason = s
		return e
	}
	e.Type, e.Reason = detail.Type, detail.Reason
	e.CauseType, e.CauseReason = detail.CausedBy.Type, detail.CausedBy.Reason
	return e
}

// request sends a request and decodes a 2xx answer into out (when not
// nil). Any other answer is an *esError.
func request(ctx context.Context, es *elasticsearch.Client, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(mustJSON(body))
	}
	req, err := http.NewRequestWithContext(ctx, method, path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	res, err := es.Perform(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return errorOf(res)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, res.Body)
		return nil
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// statusOf is the status of an *esError in err's chain, else 0.
func statusOf(err error) int {
	var e *esError
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// bulkTransport turns a _bulk answer with an error status (429 or 503 for
// the whole request, 413, 401, …) into an *esError, so that each item's
// failure carries the status and Elasticsearch's reason rather than the
// bulk indexer's text.
type bulkTransport struct{ es *elasticsearch.Client }

func (t bulkTransport) Perform(req *http.Request) (*http.Response, error) {
	res, err := t.es.Perform(req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode >= 300 {
		defer res.Body.Close()
		return nil, errorOf(res)
	}
	return res, nil
}
