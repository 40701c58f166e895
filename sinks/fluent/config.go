package fluent

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/faultline/faultline/sinks"
)

// Document kinds the sink can forward, as named in Config.Documents: the
// kinds of every sink (package sinks); each is also the last part of its
// records' tag.
const (
	KindAudit            = sinks.KindAudit
	KindKubeEvent        = sinks.KindKubeEvent
	KindFinding          = sinks.KindFinding
	KindDeviation        = sinks.KindDeviation
	KindExperimentReport = sinks.KindExperimentReport
	KindFaultStatus      = sinks.KindFaultStatus
)

// Delivery modes: when a bus message counts as forwarded and is
// acknowledged.
const (
	// DeliveryAcknowledged sends each record with the forward protocol's
	// chunk option and acknowledges the bus message once the receiver has
	// answered that chunk's ack.
	DeliveryAcknowledged = "acknowledged"
	// DeliveryWritten acknowledges the bus message once the record is
	// written to the connection, without asking the receiver.
	DeliveryWritten = "written"
	// DeliveryBuffered acknowledges the bus message once the logger has the
	// record in its buffer.
	DeliveryBuffered = "buffered"
)

// Config configures the Fluentd forward sink.
type Config struct {
	Address               string `yaml:"address" doc:"Where Fluentd or Fluent Bit listens with its forward input: host:port (TCP) or unix:///path/to/socket. Setting it enables the sink inside 'faultline run'; 'faultline forward' needs it."`
	TLS                   bool   `yaml:"tls" doc:"Connect with TLS (Fluentd's in_forward <transport tls>, Fluent Bit's tls on). The server certificate is checked against the system's trust store (SSL_CERT_FILE and SSL_CERT_DIR add a private CA); the client library takes no CA file and no client certificate."`
	TLSInsecureSkipVerify bool   `yaml:"tls_insecure_skip_verify" doc:"Accept any server certificate. For tests only: anyone on the path can read and change the records."`

	Documents   []string `yaml:"documents" doc:"Kinds of documents to forward: audit, kevent, finding, deviation, experiment_report, fault_status. Each kind is read from the bus by its own durable consumer and tagged <tag_prefix>.<kind>."`
	TagPrefix   string   `yaml:"tag_prefix" doc:"First part of every record's tag: findings are tagged <tag_prefix>.finding. Empty: the kind alone. Letters, digits, '_', '-' and '.' between parts."`
	EnvelopeKey string   `yaml:"envelope_key" doc:"Record key holding the bus envelope's id, type, subject, cluster and time (the id lets a receiver drop the duplicates at-least-once delivery can make). Empty: records carry the document alone."`
	// TimeAsInteger is Fluent Bit's out_forward option of the same name.
	TimeAsInteger bool `yaml:"time_as_integer" doc:"Send event times as whole seconds, for receivers older than Fluentd v0.14. Otherwise they are the forward protocol's EventTime, to the nanosecond."`

	Delivery    string `yaml:"delivery" doc:"When a bus message counts as forwarded and is acknowledged: acknowledged (the receiver has answered the record's chunk ack: nothing is lost), written (the record was written to the connection: what the connection held when it broke is lost), or buffered (the record is in the client's memory buffer: a crash or a record the client gives up on is lost). See docs/fluentd.md."`
	BufferLimit int    `yaml:"buffer_limit" doc:"Records the client holds in memory at most, not yet sent or answered. A record that does not fit is not taken: its bus message stays unacknowledged and comes back after backoff, and faultline_fluent_records_total{result=\"overflow\"} counts it."`

	BatchSize     int           `yaml:"batch_size" doc:"Most documents handed to the client at once."`
	FlushInterval time.Duration `yaml:"flush_interval" doc:"Longest a document waits for its batch to fill."`
	WriteTimeout  time.Duration `yaml:"write_timeout" doc:"How long a batch waits for its records' results; a record still unanswered then is left for redelivery (it may still arrive: a duplicate)."`

	DialTimeout       time.Duration `yaml:"dial_timeout" doc:"Bound on connecting to the receiver."`
	SendTimeout       time.Duration `yaml:"send_timeout" doc:"Bound on writing one record to the connection."`
	AckTimeout        time.Duration `yaml:"ack_timeout" doc:"Bound on waiting for the receiver's ack of one record (delivery acknowledged); also about how long a stop may wait on a receiver that hangs."`
	MaxRetry          int           `yaml:"max_retry" doc:"The client's own attempts to connect, and to send, one record before it reports the record failed. Keep it small: the bus retries with backoff, and while the client retries one record the others wait behind it."`
	RetryWait         time.Duration `yaml:"retry_wait" doc:"The client's wait between connection attempts; from the third attempt on it grows about 1.5 times per attempt."`
	MaxRetryWait      time.Duration `yaml:"max_retry_wait" doc:"The longest wait between the client's connection attempts."`
	ReconnectInterval time.Duration `yaml:"reconnect_interval" doc:"Open a new connection this often, so that records spread over the receivers behind a DNS name or a Kubernetes Service. 0: keep the connection while it works."`

	MaxDeliver int             `yaml:"max_deliver" doc:"Attempts per document before it goes to the dead letters. The default with backoff keeps retrying for about a week, so a receiver outage loses nothing."`
	Backoff    []time.Duration `yaml:"backoff" doc:"Delay before each new attempt of a document; the last value repeats."`
}

// DefaultConfig is the built-in default: disabled (no address), findings
// only.
func DefaultConfig() Config {
	return Config{
		Documents:     []string{KindFinding},
		TagPrefix:     "faultline",
		EnvelopeKey:   "envelope",
		Delivery:      DeliveryAcknowledged,
		BufferLimit:   8192,
		BatchSize:     500,
		FlushInterval: 200 * time.Millisecond,
		WriteTimeout:  30 * time.Second,
		DialTimeout:   3 * time.Second,
		SendTimeout:   10 * time.Second,
		AckTimeout:    10 * time.Second,
		MaxRetry:      2,
		RetryWait:     200 * time.Millisecond,
		MaxRetryWait:  5 * time.Second,
		MaxDeliver:    10080,
		Backoff:       []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, time.Minute},
	}
}

// Enabled tells whether the sink is configured.
func (c Config) Enabled() bool { return c.Address != "" }

// endpoint is a parsed Address.
type endpoint struct {
	network string // tcp or unix
	host    string
	port    int
	path    string
}

func (e endpoint) String() string {
	if e.network == "unix" {
		return "unix://" + e.path
	}
	return net.JoinHostPort(e.host, strconv.Itoa(e.port))
}

func parseAddress(s string) (endpoint, error) {
	if rest, ok := strings.CutPrefix(s, "unix://"); ok {
		if !strings.HasPrefix(rest, "/") {
			return endpoint{}, fmt.Errorf("%q: a unix socket needs an absolute path (unix:///run/fluent.sock)", s)
		}
		return endpoint{network: "unix", path: rest}, nil
	}
	if strings.Contains(s, "://") {
		return endpoint{}, fmt.Errorf("%q: use host:port or unix:///path (for TLS set tls: true)", s)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return endpoint{}, fmt.Errorf("%q is not host:port: %w", s, err)
	}
	if host == "" {
		return endpoint{}, fmt.Errorf("%q has no host", s)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return endpoint{}, fmt.Errorf("%q: port %q is not 1-65535", s, port)
	}
	return endpoint{network: "tcp", host: host, port: p}, nil
}

// tagPrefixRE is dot-separated words: Fluentd matches tags part by part.
var tagPrefixRE = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

// Validate returns one error per invalid field, each starting with the
// field's YAML name (the caller adds the section path).
func (c Config) Validate() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.Address != "" {
		ep, err := parseAddress(c.Address)
		switch {
		case err != nil:
			bad("address", "%v", err)
		case c.TLS && ep.network == "unix":
			bad("tls", "TLS over a unix socket is not supported; use host:port")
		}
	}
	if c.TLSInsecureSkipVerify && !c.TLS {
		bad("tls_insecure_skip_verify", "set only with tls: true")
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
	if c.TagPrefix != "" && (len(c.TagPrefix) > 200 || !tagPrefixRE.MatchString(c.TagPrefix)) {
		bad("tag_prefix", "%q is not a tag prefix (parts of letters, digits, '_' or '-' joined by '.', at most 200 characters)", c.TagPrefix)
	}
	if len(c.EnvelopeKey) > 100 {
		bad("envelope_key", "at most 100 characters")
	}
	switch c.Delivery {
	case DeliveryAcknowledged, DeliveryWritten, DeliveryBuffered:
	default:
		bad("delivery", "%q is not acknowledged, written or buffered", c.Delivery)
	}
	if c.BufferLimit < 1 || c.BufferLimit > 1<<20 {
		bad("buffer_limit", "must be between 1 and 1048576 (got %d)", c.BufferLimit)
	}
	if c.BatchSize < 1 || c.BatchSize > 10000 {
		bad("batch_size", "must be between 1 and 10000 (got %d)", c.BatchSize)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"flush_interval", c.FlushInterval}, {"write_timeout", c.WriteTimeout}, {"dial_timeout", c.DialTimeout},
		{"send_timeout", c.SendTimeout}, {"ack_timeout", c.AckTimeout}, {"retry_wait", c.RetryWait}, {"max_retry_wait", c.MaxRetryWait},
	} {
		if d.v <= 0 {
			bad(d.field, "must be a positive duration (got %s)", d.v)
		}
	}
	// The client counts these in milliseconds.
	if c.RetryWait > 0 && c.RetryWait < time.Millisecond {
		bad("retry_wait", "must be at least 1ms (got %s)", c.RetryWait)
	}
	if c.MaxRetryWait < c.RetryWait {
		bad("max_retry_wait", "must not be below retry_wait (%s < %s)", c.MaxRetryWait, c.RetryWait)
	}
	if c.ReconnectInterval < 0 || (c.ReconnectInterval > 0 && c.ReconnectInterval < time.Second) {
		bad("reconnect_interval", "must be 0 (off) or at least 1s (got %s)", c.ReconnectInterval)
	}
	if c.MaxRetry < 1 || c.MaxRetry > 100 {
		bad("max_retry", "must be between 1 and 100 (got %d)", c.MaxRetry)
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
	return errs
}
