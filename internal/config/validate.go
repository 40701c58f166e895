package config

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

var clusterRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$`)

// Validate checks every field and returns all problems at once, each naming
// its field.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if !clusterRE.MatchString(c.Cluster) {
		bad("cluster", "%q is not a valid cluster name (1-63 lowercase letters, digits, '-' or '_', starting and ending with a letter or digit)", c.Cluster)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		bad("log.format", "%q is not one of json, text", c.Log.Format)
	}
	if c.HTTP.Listen != "" {
		if err := checkHostPort(c.HTTP.Listen); err != nil {
			bad("http.listen", "%v", err)
		}
	}
	pair(bad, "http.tls_cert_file", c.HTTP.TLSCertFile, "http.tls_key_file", c.HTTP.TLSKeyFile)
	files(bad, map[string]string{
		"http.tls_cert_file":         c.HTTP.TLSCertFile,
		"http.tls_key_file":          c.HTTP.TLSKeyFile,
		"http.metrics_token_file":    c.HTTP.MetricsTokenFile,
		"bus.ca_file":                c.Bus.CAFile,
		"bus.cert_file":              c.Bus.CertFile,
		"bus.key_file":               c.Bus.KeyFile,
		"bus.creds_file":             c.Bus.CredsFile,
		"bus.nkey_seed_file":         c.Bus.NKeySeedFile,
		"bus.password_file":          c.Bus.PasswordFile,
		"bus.token_file":             c.Bus.TokenFile,
		"bus.embedded.token_file":    c.Bus.Embedded.TokenFile,
		"bus.embedded.tls_cert_file": c.Bus.Embedded.TLSCertFile,
		"bus.embedded.tls_key_file":  c.Bus.Embedded.TLSKeyFile,
	})

	b := c.Bus
	for i, u := range b.URLs {
		if err := checkNATSURL(u); err != nil {
			bad(fmt.Sprintf("bus.urls[%d]", i), "%v", err)
		}
	}
	pair(bad, "bus.cert_file", b.CertFile, "bus.key_file", b.KeyFile)
	auth := 0
	for _, s := range []string{b.CredsFile, b.NKeySeedFile, b.PasswordFile, b.TokenFile} {
		if s != "" {
			auth++
		}
	}
	if auth > 1 {
		bad("bus", "more than one of creds_file, nkey_seed_file, password_file, token_file is set: choose one authentication method")
	}
	if b.PasswordFile != "" && b.User == "" {
		bad("bus.user", "password_file is set but user is empty")
	}
	if len(b.URLs) == 0 {
		e := b.Embedded
		if e.DataDir == "" {
			bad("bus.embedded.data_dir", "must not be empty when the embedded server is used (bus.urls is empty)")
		}
		pair(bad, "bus.embedded.tls_cert_file", e.TLSCertFile, "bus.embedded.tls_key_file", e.TLSKeyFile)
		if e.Listen != "" {
			if err := checkHostPort(e.Listen); err != nil {
				bad("bus.embedded.listen", "%v", err)
			} else if host, _, _ := net.SplitHostPort(e.Listen); !isLoopback(host) && (e.TokenFile == "" || e.TLSCertFile == "") {
				bad("bus.embedded.listen", "%q is reachable from other hosts: set bus.embedded.token_file and bus.embedded.tls_cert_file/tls_key_file", e.Listen)
			}
		}
		if e.MaxStore < 0 {
			bad("bus.embedded.max_store", "must not be negative (got %d)", e.MaxStore)
		}
	}
	positive(bad, "bus.connect_timeout", b.ConnectTimeout)
	positive(bad, "bus.ack_timeout", b.AckTimeout)
	if b.MaxInflight < 1 || b.MaxInflight > 1_000_000 {
		bad("bus.max_inflight", "must be between 1 and 1000000 (got %d)", b.MaxInflight)
	}
	if b.Replicas < 1 || b.Replicas > 5 {
		bad("bus.replicas", "must be between 1 and 5 (got %d)", b.Replicas)
	}
	if len(b.URLs) == 0 && b.Replicas > 1 {
		bad("bus.replicas", "the embedded server is a single node: replicas must be 1 (got %d); set bus.urls to use a cluster", b.Replicas)
	}
	positive(bad, "bus.duplicate_window", b.DuplicateWindow)
	for _, st := range []struct {
		name string
		s    StreamLimits
	}{
		{"audit", b.Streams.Audit}, {"kevent", b.Streams.KubeEvent}, {"metric", b.Streams.Metric},
		{"finding", b.Streams.Finding}, {"deviation", b.Streams.Deviation}, {"fault", b.Streams.Fault},
		{"dead_letter", b.Streams.DeadLetter},
	} {
		name, s := st.name, st.s
		if s.MaxAge < 0 {
			bad("bus.streams."+name+".max_age", "must not be negative (got %s)", s.MaxAge)
		} else if s.MaxAge > 0 && s.MaxAge < b.DuplicateWindow {
			bad("bus.streams."+name+".max_age", "%s is shorter than bus.duplicate_window %s", s.MaxAge, b.DuplicateWindow)
		}
		if s.MaxBytes < 0 {
			bad("bus.streams."+name+".max_bytes", "must not be negative (got %d)", s.MaxBytes)
		}
	}
	if b.Consumer.MaxDeliver < 1 {
		bad("bus.consumer.max_deliver", "must be at least 1 (got %d)", b.Consumer.MaxDeliver)
	}
	if len(b.Consumer.Backoff) == 0 {
		bad("bus.consumer.backoff", "must list at least one delay")
	}
	for i, d := range b.Consumer.Backoff {
		positive(bad, fmt.Sprintf("bus.consumer.backoff[%d]", i), d)
	}
	positive(bad, "bus.consumer.ack_wait", b.Consumer.AckWait)
	if b.Consumer.MaxAckPending < 1 {
		bad("bus.consumer.max_ack_pending", "must be at least 1 (got %d)", b.Consumer.MaxAckPending)
	}
	if c.Kubernetes.QPS <= 0 {
		bad("kubernetes.qps", "must be positive (got %g)", c.Kubernetes.QPS)
	}
	if c.Kubernetes.Burst < 1 {
		bad("kubernetes.burst", "must be at least 1 (got %d)", c.Kubernetes.Burst)
	}
	for _, sec := range []struct {
		path string
		errs []error
	}{
		{"collectors.audit_webhook", c.Collectors.AuditWebhook.Validate()},
		{"collectors.audit_file", c.Collectors.AuditFile.Validate()},
		{"collectors.events", c.Collectors.KubeEvents.Validate()},
		{"collectors.metrics", c.Collectors.Metrics.Validate()},
		{"analyzers.rules", c.Analyzers.Rules.Validate()},
		{"analyzers.baseline", c.Analyzers.Baseline.Validate()},
		{"analyzers.chaos", c.Analyzers.Chaos.Validate()},
		{"analyzers.steadystate", c.Analyzers.SteadyState.Validate()},
		{"injectors.guard", c.Injectors.Guard.Validate()},
		{"injectors.lifecycle", c.Injectors.Lifecycle.Validate()},
		{"injectors.pod_kill", c.Injectors.PodKill.Validate()},
		{"injectors.network_partition", c.Injectors.NetworkPartition.Validate()},
		{"injectors.resource_starvation", c.Injectors.ResourceStarvation.Validate()},
		{"sinks.elasticsearch", c.Sinks.Elasticsearch.Validate()},
		{"sinks.fluent", c.Sinks.Fluent.Validate()},
	} {
		for _, e := range sec.errs {
			errs = append(errs, fmt.Errorf("%s.%w", sec.path, e))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return &ValidationError{Problems: errs}
}

// ValidationError lists every invalid field.
type ValidationError struct{ Problems []error }

func (v *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid configuration:")
	for _, p := range v.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// Unwrap exposes the problems to errors.Is/As.
func (v *ValidationError) Unwrap() []error { return v.Problems }

func positive(bad func(string, string, ...any), field string, d time.Duration) {
	if d <= 0 {
		bad(field, "must be a positive duration (got %s)", d)
	}
}

func pair(bad func(string, string, ...any), aName, a, bName, b string) {
	if (a == "") != (b == "") {
		bad(aName, "%s and %s must be set together", aName, bName)
	}
}

func files(bad func(string, string, ...any), m map[string]string) {
	for _, field := range slices.Sorted(maps.Keys(m)) {
		path := m[field]
		if path == "" {
			continue
		}
		f, err := os.Open(path)
		if err != nil {
			bad(field, "cannot read: %v", err)
			continue
		}
		f.Close()
	}
}

func checkHostPort(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", s, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number between 0 and 65535", s, port)
	}
	return nil
}

func checkNATSURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return fmt.Errorf("scheme %q is not one of nats, tls, ws, wss", u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
