package elasticsearch

import (
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/faultline/faultline/internal/units"

	"github.com/faultline/faultline/sinks"
)

// Document kinds the indexer can write, as named in Config.Documents: the
// kinds of every sink (package sinks).
const (
	KindAudit            = sinks.KindAudit
	KindKubeEvent        = sinks.KindKubeEvent
	KindFinding          = sinks.KindFinding
	KindDeviation        = sinks.KindDeviation
	KindExperimentReport = sinks.KindExperimentReport
	KindFaultStatus      = sinks.KindFaultStatus
)

// Config configures the Elasticsearch indexer.
type Config struct {
	URLs []string `yaml:"urls" doc:"Elasticsearch URLs (http:// or https://), e.g. https://es-0.es:9200. Setting them enables the indexer inside 'faultline run'; 'faultline index' needs them."`

	APIKeyFile   string `yaml:"api_key_file" doc:"File holding an API key in its encoded form (base64 of id:key, as Elasticsearch and Kibana show it). Read on every request, so a rotated key is picked up."`
	Username     string `yaml:"username" doc:"User for basic authentication (with password_file)."`
	PasswordFile string `yaml:"password_file" doc:"File holding the password for username. Read on every request."`
	CAFile       string `yaml:"ca_file" doc:"CA certificate (PEM) to verify the Elasticsearch servers. Empty: the system's roots."`
	CertFile     string `yaml:"cert_file" doc:"Client certificate (PEM) for mutual TLS (Elasticsearch's PKI realm)."`
	KeyFile      string `yaml:"key_file" doc:"Private key (PEM) for cert_file."`

	Namespace string   `yaml:"namespace" doc:"Data stream namespace: documents go to logs-kubernetes.audit_logs-<namespace>, logs-faultline.findings-<namespace>, logs-faultline.experiments-<namespace> and logs-faultline.kevents-<namespace>. Lowercase letters, digits and '_'."`
	Documents []string `yaml:"documents" doc:"Kinds of documents to index: audit, kevent, finding, deviation, experiment_report, fault_status. Each kind read from the bus by its own durable consumer."`

	BatchSize      int            `yaml:"batch_size" doc:"Most documents in one write (one or more _bulk requests)."`
	FlushInterval  time.Duration  `yaml:"flush_interval" doc:"Longest a document waits for its batch to fill."`
	FlushBytes     units.ByteSize `yaml:"flush_bytes" doc:"Largest _bulk request body; a batch above it is split over several requests."`
	Workers        int            `yaml:"workers" doc:"_bulk requests of one batch sent at once."`
	RequestTimeout time.Duration  `yaml:"request_timeout" doc:"Bound on one _bulk request, the client's own retries included."`
	Compress       bool           `yaml:"compress" doc:"Gzip request bodies (worth it over slow links; costs CPU)."`

	MaxDeliver int             `yaml:"max_deliver" doc:"Attempts per document before it goes to the dead letters. Only retryable failures (overload, unavailability, authorization) are attempted again; a document Elasticsearch rejects (mapping) goes at once. The default with backoff keeps retrying for about a week, as long as the audit stream keeps events, so an outage loses nothing."`
	Backoff    []time.Duration `yaml:"backoff" doc:"Delay before each new attempt of a document; the last value repeats."`

	StartTimeout time.Duration `yaml:"start_timeout" doc:"How long to wait at start for Elasticsearch to answer before refusing to start."`
	Shards       int           `yaml:"shards" doc:"Primary shards of each backing index."`
	Replicas     int           `yaml:"replicas" doc:"Replicas of each backing index (0 on a single-node cluster, else it stays yellow)."`
	ILMPolicy    string        `yaml:"ilm_policy" doc:"Index lifecycle policy set on the backing indices (index.lifecycle.name), e.g. logs. Empty: none. The policy must exist."`
}

// DefaultConfig is the built-in default: disabled (no URLs).
func DefaultConfig() Config {
	return Config{
		Namespace:      "faultline",
		Documents:      sinks.Kinds(),
		BatchSize:      500,
		FlushInterval:  200 * time.Millisecond,
		FlushBytes:     5 << 20,
		Workers:        2,
		RequestTimeout: 30 * time.Second,
		MaxDeliver:     10080,
		Backoff:        []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, time.Minute},
		StartTimeout:   time.Minute,
		Shards:         1,
		Replicas:       1,
	}
}

// Enabled tells whether the indexer is configured.
func (c Config) Enabled() bool { return len(c.URLs) > 0 }

var namespaceRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_]{0,99}$`)

// policyRE is what Elasticsearch accepts as a lifecycle policy name, less
// what would need escaping in YAML and logs.
var policyRE = regexp.MustCompile(`^[A-Za-z0-9@][A-Za-z0-9@._-]{0,254}$`)

// Validate returns one error per invalid field, each starting with the
// field's YAML name (the caller adds the section path).
func (c Config) Validate() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	for i, u := range c.URLs {
		if err := checkURL(u); err != nil {
			bad(fmt.Sprintf("urls[%d]", i), "%v", err)
		}
	}
	if c.APIKeyFile != "" && (c.Username != "" || c.PasswordFile != "") {
		bad("api_key_file", "set either api_key_file or username/password_file, not both")
	}
	if (c.Username == "") != (c.PasswordFile == "") {
		bad("username", "username and password_file must be set together")
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		bad("cert_file", "cert_file and key_file must be set together")
	}
	for _, f := range []struct{ field, path string }{
		{"api_key_file", c.APIKeyFile}, {"password_file", c.PasswordFile},
		{"ca_file", c.CAFile}, {"cert_file", c.CertFile}, {"key_file", c.KeyFile},
	} {
		if f.path == "" {
			continue
		}
		fh, err := os.Open(f.path)
		if err != nil {
			bad(f.field, "cannot read: %v", err)
			continue
		}
		_ = fh.Close()
	}
	if !namespaceRE.MatchString(c.Namespace) {
		bad("namespace", "%q is not a data stream namespace (1-100 lowercase letters, digits or '_', not starting with '_')", c.Namespace)
	}
	if len(c.Documents) == 0 {
		bad("documents", "must list at least one of %s", strings.Join(sinks.Kinds(), ", "))
	}
	seen := map[string]bool{}
	for i, k := range c.Documents {
		switch {
		case !slices.Contains(sinks.Kinds(), k):
			bad(fmt.Sprintf("documents[%d]", i), "%q is not one of %s", k, strings.Join(sinks.Kinds(), ", "))
		case seen[k]:
			bad(fmt.Sprintf("documents[%d]", i), "%q is listed twice", k)
		}
		seen[k] = true
	}
	if c.BatchSize < 1 || c.BatchSize > 10000 {
		bad("batch_size", "must be between 1 and 10000 (got %d)", c.BatchSize)
	}
	if c.FlushInterval <= 0 {
		bad("flush_interval", "must be a positive duration (got %s)", c.FlushInterval)
	}
	if c.FlushBytes < 64<<10 || c.FlushBytes > 100<<20 {
		bad("flush_bytes", "must be between 64KiB and 100MiB, Elasticsearch's default http.max_content_length (got %d)", c.FlushBytes)
	}
	if c.Workers < 1 || c.Workers > 64 {
		bad("workers", "must be between 1 and 64 (got %d)", c.Workers)
	}
	if c.RequestTimeout < time.Second {
		bad("request_timeout", "must be at least 1s (got %s)", c.RequestTimeout)
	}
	if c.MaxDeliver < 1 {
		bad("max_deliver", "must be at least 1 (got %d)", c.MaxDeliver)
	}
	if len(c.Backoff) == 0 {
		bad("backoff", "must list at least one delay")
	}
	for i, d := range c.Backoff {
		if d <= 0 {
			bad(fmt.Sprintf("backoff[%d]", i), "must be a positive duration (got %s)", d)
		}
	}
	if c.StartTimeout <= 0 {
		bad("start_timeout", "must be a positive duration (got %s)", c.StartTimeout)
	}
	if c.Shards < 1 || c.Shards > 1024 {
		bad("shards", "must be between 1 and 1024 (got %d)", c.Shards)
	}
	if c.Replicas < 0 || c.Replicas > 32 {
		bad("replicas", "must be between 0 and 32 (got %d)", c.Replicas)
	}
	if c.ILMPolicy != "" && !policyRE.MatchString(c.ILMPolicy) {
		bad("ilm_policy", "%q is not a lifecycle policy name", c.ILMPolicy)
	}
	return errs
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	switch u.Scheme {
	case "http", "https":
	default:
		return fmt.Errorf("scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	if u.User != nil {
		return fmt.Errorf("%q holds credentials: use username and password_file or api_key_file", redactURL(u))
	}
	return nil
}

// redactURL shows a URL without its credentials.
func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}
