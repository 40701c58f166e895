package auditwebhook

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/faultline/faultline/internal/units"
	"github.com/faultline/faultline/schemas"
)

// Config configures the audit webhook receiver.
type Config struct {
	Enabled bool `yaml:"enabled" doc:"Receive the API server's audit webhook. (faultline collect audit-webhook runs it regardless.)"`

	Listen string `yaml:"listen" doc:"host:port to listen on. The API server must reach it: in a pod keep all interfaces (:9443); HTTPS and authentication are always required."`
	Path   string `yaml:"path" doc:"URL path the API server posts to (the server URL in its webhook kubeconfig); other paths answer 404."`

	TLSCertFile  string `yaml:"tls_cert_file" doc:"Serving certificate (PEM, intermediates after it). Required unless insecure_http. Re-read when the file changes. 'faultline dev certs' writes a self-signed set for development."`
	TLSKeyFile   string `yaml:"tls_key_file" doc:"Private key (PEM) of tls_cert_file."`
	InsecureHTTP bool   `yaml:"insecure_http" doc:"Serve plain HTTP instead of HTTPS. Only behind a TLS-terminating proxy or on loopback: tokens and audit events travel in clear."`

	TokenFile    string   `yaml:"token_file" doc:"File of accepted bearer tokens, one per line (blank lines and lines starting with # are ignored); re-read when it changes, so tokens rotate without restart. Put one as 'token' in the API server's webhook kubeconfig."`
	ClientCAFile string   `yaml:"client_ca_file" doc:"CA (PEM) whose client certificates are accepted: the API server presents one with client-certificate in its webhook kubeconfig. Requires HTTPS. At least one of token_file and client_ca_file is required."`
	ClientNames  []string `yaml:"client_names" doc:"Common names a client certificate must carry (any of them). Empty: any certificate client_ca_file signed."`

	MaxRequestSize        units.ByteSize `yaml:"max_request_size" doc:"Largest request body; a larger one gets 413 without being read."`
	MaxEventSize          units.ByteSize `yaml:"max_event_size" doc:"Largest event published whole. A larger one is published without its requestObject and responseObject (and, if still too large, as a bounded summary), flagged faultline.io/truncated: never dropped. At least 64KiB and below the NATS max_payload."`
	MaxConcurrentRequests int            `yaml:"max_concurrent_requests" doc:"Requests processed at once (bounds memory: this many bodies of up to max_request_size). More wait for a slot up to publish_timeout, then get 503 and are retried by the API server."`
	PublishTimeout        time.Duration  `yaml:"publish_timeout" doc:"How long a request waits for JetStream to acknowledge every event of it. Past it the answer is 503 and the API server retries the batch (acknowledged events are stored once: the id is the Nats-Msg-Id). Keep it well below the API server's webhook timeout (30s)."`

	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout" doc:"Time a client has to send the request headers (slow-loris guard)."`
	ReadTimeout       time.Duration `yaml:"read_timeout" doc:"Time a client has to send a whole request, body included."`
	IdleTimeout       time.Duration `yaml:"idle_timeout" doc:"How long an idle keep-alive connection stays open."`
}

// Defaults.
const (
	DefaultListen = ":9443"
	DefaultPath   = "/audit/webhook"
)

// DefaultConfig is the built-in default.
func DefaultConfig() Config {
	return Config{
		Listen:                DefaultListen,
		Path:                  DefaultPath,
		MaxRequestSize:        12 << 20,
		MaxEventSize:          256 << 10,
		MaxConcurrentRequests: 16,
		PublishTimeout:        10 * time.Second,
		ReadHeaderTimeout:     10 * time.Second,
		ReadTimeout:           60 * time.Second,
		IdleTimeout:           120 * time.Second,
	}
}

// Limits of the settings.
const (
	maxMaxEventSize   = 8 << 20 // the embedded server's max_payload
	maxMaxRequestSize = 1 << 30
)

// Validate returns one error per invalid field, each starting with the
// field's YAML name (the caller adds the section path). The settings the
// receiver needs to serve at all (TLS, authentication) are checked only
// when it is enabled; New checks them always.
func (c Config) Validate() []error { return c.validate(c.Enabled) }

func (c Config) validate(serving bool) []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if _, port, err := net.SplitHostPort(c.Listen); err != nil || port == "" {
		bad("listen", "%q is not host:port (e.g. :9443 or 127.0.0.1:9443)", c.Listen)
	}
	if !strings.HasPrefix(c.Path, "/") {
		bad("path", "%q must start with /", c.Path)
	}
	if c.MaxRequestSize < 1<<10 || c.MaxRequestSize > maxMaxRequestSize {
		bad("max_request_size", "must be between 1KiB and 1GiB (got %s)", c.MaxRequestSize)
	}
	if c.MaxEventSize < schemas.MinAuditEventLimit || c.MaxEventSize > maxMaxEventSize {
		bad("max_event_size", "must be between 64KiB and 8MiB (got %s)", c.MaxEventSize)
	}
	if c.MaxConcurrentRequests < 1 {
		bad("max_concurrent_requests", "must be at least 1 (got %d)", c.MaxConcurrentRequests)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"publish_timeout", c.PublishTimeout}, {"read_header_timeout", c.ReadHeaderTimeout},
		{"read_timeout", c.ReadTimeout}, {"idle_timeout", c.IdleTimeout},
	} {
		if d.v <= 0 {
			bad(d.name, "must be positive (got %s)", d.v)
		}
	}
	if c.ReadHeaderTimeout > c.ReadTimeout && c.ReadTimeout > 0 {
		bad("read_header_timeout", "%s is longer than read_timeout %s", c.ReadHeaderTimeout, c.ReadTimeout)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		bad("tls_key_file", "tls_cert_file and tls_key_file go together")
	}
	if c.InsecureHTTP && c.TLSCertFile != "" {
		bad("insecure_http", "is set together with tls_cert_file: choose one")
	}
	if c.InsecureHTTP && c.ClientCAFile != "" {
		bad("client_ca_file", "client certificates need HTTPS, but insecure_http is set")
	}
	if len(c.ClientNames) > 0 && c.ClientCAFile == "" {
		bad("client_names", "needs client_ca_file")
	}
	for i, n := range c.ClientNames {
		if strings.TrimSpace(n) == "" {
			bad(fmt.Sprintf("client_names[%d]", i), "is empty")
		}
	}
	if serving {
		if !c.InsecureHTTP && c.TLSCertFile == "" {
			bad("tls_cert_file", "is required (or set insecure_http for plain HTTP behind a TLS proxy); 'faultline dev certs' writes a development set")
		}
		if c.TokenFile == "" && c.ClientCAFile == "" {
			bad("token_file", "no authentication configured: set token_file, client_ca_file or both")
		}
	}
	return errs
}

// errConfig joins the problems of a configuration for New.
func errConfig(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("audit webhook: invalid configuration: %w", errors.Join(errs...))
}
