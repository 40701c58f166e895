package auditwebhook

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// tokenSet holds the SHA-256 of each accepted token, so comparisons take
// the same time whatever the token's length.
type tokenSet struct {
	sums [][sha256.Size]byte
}

// readTokens reads a token file: one token per line, blank lines and lines
// starting with # ignored.
func readTokens(path string) (*tokenSet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read token file: %w", err)
	}
	ts := &tokenSet{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.ContainsAny(line, " \t") {
			return nil, fmt.Errorf("token file %s: a line holds whitespace inside a token", path)
		}
		ts.sums = append(ts.sums, sha256.Sum256([]byte(line)))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read token file %s: %w", path, err)
	}
	if len(ts.sums) == 0 {
		return nil, fmt.Errorf("token file %s holds no token", path)
	}
	return ts, nil
}

// valid compares against every token, in constant time per token.
func (ts *tokenSet) valid(token string) bool {
	sum := sha256.Sum256([]byte(token))
	ok := 0
	for i := range ts.sums {
		ok |= subtle.ConstantTimeCompare(sum[:], ts.sums[i][:])
	}
	return ok == 1
}

// authenticator decides whether a request may be processed: a bearer token
// from the token file, or a client certificate signed by the client CA (with
// an allowed common name).
type authenticator struct {
	tokens  atomic.Pointer[tokenSet] // nil: tokens not accepted
	roots   *x509.CertPool           // nil: certificates not accepted
	names   []string
	tokenFn string // the token file, for reloads
}

func newAuthenticator(cfg Config) (*authenticator, error) {
	a := &authenticator{names: cfg.ClientNames, tokenFn: cfg.TokenFile}
	if cfg.TokenFile != "" {
		ts, err := readTokens(cfg.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("token_file: %w", err)
		}
		a.tokens.Store(ts)
	}
	if cfg.ClientCAFile != "" {
		pem, err := os.ReadFile(cfg.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("client_ca_file: %w", err)
		}
		a.roots = x509.NewCertPool()
		if !a.roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("client_ca_file: %s holds no PEM certificate", cfg.ClientCAFile)
		}
	}
	return a, nil
}

// check returns "" for an authenticated request, else the failure reason.
// A valid client certificate suffices; otherwise the bearer token decides.
func (a *authenticator) check(r *http.Request) string {
	certReason := ""
	if a.roots != nil && r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		if a.verifyCert(r.TLS) {
			return ""
		}
		certReason = authBadCert
	}
	ts := a.tokens.Load()
	h := r.Header.Get("Authorization")
	if ts == nil || h == "" {
		if certReason != "" {
			return certReason
		}
		if h != "" {
			return authUnsupported
		}
		return authMissing
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return authUnsupported
	}
	if ts.valid(strings.TrimSpace(token)) {
		return ""
	}
	return authBadToken
}

func (a *authenticator) verifyCert(cs *tls.ConnectionState) bool {
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         a.roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		CurrentTime:   time.Now(),
	}); err != nil {
		return false
	}
	return len(a.names) == 0 || slices.Contains(a.names, leaf.Subject.CommonName)
}

// reloadTokens re-reads the token file; on failure the old tokens stay.
func (a *authenticator) reloadTokens() error {
	if a.tokenFn == "" {
		return nil
	}
	ts, err := readTokens(a.tokenFn)
	if err != nil {
		return err
	}
	a.tokens.Store(ts)
	return nil
}

// keyPair serves the TLS certificate, re-read when its files change.
type keyPair struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

func newKeyPair(certFile, keyFile string) (*keyPair, error) {
	kp := &keyPair{certFile: certFile, keyFile: keyFile}
	if err := kp.reload(); err != nil {
		return nil, err
	}
	return kp, nil
}

func (kp *keyPair) reload() error {
	c, err := tls.LoadX509KeyPair(kp.certFile, kp.keyFile)
	if err != nil {
		return fmt.Errorf("load TLS key pair %s, %s: %w", kp.certFile, kp.keyFile, err)
	}
	kp.cert.Store(&c)
	return nil
}

func (kp *keyPair) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := kp.cert.Load()
	if c == nil {
		return nil, errors.New("no certificate loaded")
	}
	return c, nil
}

// fileStamp identifies a file's version for change detection (Kubernetes
// Secret volumes swap a symlink, which changes what stat sees).
type fileStamp struct {
	mod  time.Time
	size int64
}

func stamp(path string) fileStamp {
	st, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{mod: st.ModTime(), size: st.Size()}
}
