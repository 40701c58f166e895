// Package config is Faultline's configuration: one YAML file, every field
// also settable by a flag and by a FAULTLINE_* environment variable, checked
// at start with errors that name the field.
//
// Precedence, lowest first: built-in defaults, the YAML file, environment
// variables, flags.
package config

import (
	"time"

	"github.com/faultline/faultline/analyzers"
	"github.com/faultline/faultline/analyzers/baseline"
	"github.com/faultline/faultline/analyzers/rules"
	"github.com/faultline/faultline/analyzers/steadystate"
	"github.com/faultline/faultline/collectors/auditfile"
	"github.com/faultline/faultline/collectors/auditwebhook"
	"github.com/faultline/faultline/collectors/kubeevents"
	"github.com/faultline/faultline/collectors/metrics"
	"github.com/faultline/faultline/injectors/guard"
	"github.com/faultline/faultline/injectors/netpartition"
	"github.com/faultline/faultline/injectors/podkill"
	"github.com/faultline/faultline/injectors/runner"
	"github.com/faultline/faultline/injectors/starvation"
	"github.com/faultline/faultline/sinks/elasticsearch"
	"github.com/faultline/faultline/sinks/fluent"
)

// Config is the whole configuration. Field docs are in the `doc` tags; they
// generate docs/configuration.md and the flags' help.
type Config struct {
	Cluster string `yaml:"cluster" doc:"Name of the watched cluster. It is part of every bus subject and every document, so one bus serves many clusters. Lowercase letters, digits, '-' and '_'."`
	Log     Log    `yaml:"log"`
	HTTP    HTTP   `yaml:"http"`
	Bus     Bus    `yaml:"bus"`

	Kubernetes Kubernetes `yaml:"kubernetes"`
	Collectors Collectors `yaml:"collectors"`
	Analyzers  Analyzers  `yaml:"analyzers"`
	Injectors  Injectors  `yaml:"injectors"`
	Sinks      Sinks      `yaml:"sinks"`
}

// Sinks configures where results go; each sink's settings live in its own
// package.
type Sinks struct {
	Elasticsearch elasticsearch.Config `yaml:"elasticsearch"`
	Fluent        fluent.Config        `yaml:"fluent"`
}

// Injectors configures fault injection: the guard rails, the lifecycle and
// each fault type (whose settings live in its own package).
type Injectors struct {
	Enabled            bool                `yaml:"enabled" doc:"Run the injector inside 'faultline run'. Off by default: chaos is opt-in. 'faultline injector' runs it regardless."`
	Guard              guard.Config        `yaml:"guard"`
	Lifecycle          runner.Config       `yaml:"lifecycle"`
	PodKill            podkill.Config      `yaml:"pod_kill"`
	NetworkPartition   netpartition.Config `yaml:"network_partition"`
	ResourceStarvation starvation.Config   `yaml:"resource_starvation"`
}

// Analyzers holds each analyzer's settings; each type lives in the
// analyzer's own package.
type Analyzers struct {
	Rules    rules.Config          `yaml:"rules"`
	Baseline baseline.Config       `yaml:"baseline"`
	Chaos    analyzers.ChaosConfig `yaml:"chaos"`

	SteadyState steadystate.Config `yaml:"steadystate"`
}

// Collectors holds each collector's settings; each type lives in the
// collector's own package.
type Collectors struct {
	AuditWebhook auditwebhook.Config `yaml:"audit_webhook"`
	AuditFile    auditfile.Config    `yaml:"audit_file"`
	KubeEvents   kubeevents.Config   `yaml:"events"`
	Metrics      metrics.Config      `yaml:"metrics"`
}

// Kubernetes configures the connection to the watched cluster's API server,
// for the roles that read or change it.
type Kubernetes struct {
	Kubeconfig string  `yaml:"kubeconfig" flag:"kubeconfig" doc:"Path of a kubeconfig file. Empty: the in-cluster service account when running in a pod, else $KUBECONFIG or ~/.kube/config."`
	Context    string  `yaml:"context" doc:"kubeconfig context to use. Empty: the current context."`
	QPS        float64 `yaml:"qps" doc:"Client-side rate limit of API requests per second."`
	Burst      int     `yaml:"burst" doc:"Client-side burst of API requests above qps."`
}

// Log configures structured logs.
type Log struct {
	Level  string `yaml:"level" flag:"log-level" doc:"Minimum level: debug, info, warn or error."`
	Format string `yaml:"format" flag:"log-format" doc:"json (for log shippers) or text (for people)."`
}

// HTTP configures the operations endpoint: /metrics, /healthz, /readyz.
type HTTP struct {
	Listen           string `yaml:"listen" flag:"http-listen" doc:"host:port of the operations endpoint. Not 9090, which Prometheus itself uses. Empty disables it."`
	TLSCertFile      string `yaml:"tls_cert_file" doc:"Certificate (PEM) to serve the operations endpoint over HTTPS."`
	TLSKeyFile       string `yaml:"tls_key_file" doc:"Private key (PEM) for tls_cert_file."`
	MetricsTokenFile string `yaml:"metrics_token_file" doc:"File holding a bearer token that /metrics requires. Health endpoints stay open for probes."`
}

// Bus configures NATS JetStream.
type Bus struct {
	URLs []string `yaml:"urls" doc:"NATS server URLs (nats:// or tls://) of an existing cluster. Empty: start the embedded server."`

	Embedded Embedded `yaml:"embedded"`

	CAFile       string `yaml:"ca_file" doc:"CA certificate (PEM) to verify the NATS servers."`
	CertFile     string `yaml:"cert_file" doc:"Client certificate (PEM) for mutual TLS with NATS."`
	KeyFile      string `yaml:"key_file" doc:"Private key (PEM) for cert_file."`
	CredsFile    string `yaml:"creds_file" doc:"NATS credentials file (user JWT and NKey seed)."`
	NKeySeedFile string `yaml:"nkey_seed_file" doc:"File holding an NKey user seed."`
	User         string `yaml:"user" doc:"User name for user/password authentication."`
	PasswordFile string `yaml:"password_file" doc:"File holding the password for user."`
	TokenFile    string `yaml:"token_file" doc:"File holding an authentication token."`

	ConnectTimeout time.Duration `yaml:"connect_timeout" doc:"How long to wait for the first connection before failing at start."`
	MaxInflight    int           `yaml:"max_inflight" doc:"Publishes waiting for their JetStream acknowledgement at once. When reached, publishers wait (backpressure)."`
	AckTimeout     time.Duration `yaml:"ack_timeout" doc:"How long one publish may wait for its acknowledgement before it counts as failed."`

	Replicas        int           `yaml:"replicas" doc:"Replicas of every stream and KV bucket: 1 for the embedded server, 3 on a production JetStream cluster."`
	DuplicateWindow time.Duration `yaml:"duplicate_window" doc:"How long JetStream remembers a message id, so a retried publish is stored once."`

	Streams  Streams  `yaml:"streams"`
	Consumer Consumer `yaml:"consumer"`
}

// Embedded configures the in-process NATS server.
type Embedded struct {
	DataDir     string   `yaml:"data_dir" flag:"data-dir" doc:"Directory of the embedded server's JetStream file store. Survives restarts."`
	Listen      string   `yaml:"listen" doc:"host:port where the embedded server accepts other processes. Empty: in-process only, no socket. A non-loopback address requires token_file and TLS."`
	TokenFile   string   `yaml:"token_file" doc:"File holding the token clients must present on listen."`
	TLSCertFile string   `yaml:"tls_cert_file" doc:"Certificate (PEM) for TLS on listen."`
	TLSKeyFile  string   `yaml:"tls_key_file" doc:"Private key (PEM) for tls_cert_file."`
	MaxStore    ByteSize `yaml:"max_store" doc:"Cap on the JetStream file store, e.g. 10GiB. 0: the server's default share of the disk."`
}

// Streams holds the retention limits of each stream.
type Streams struct {
	Audit      StreamLimits `yaml:"audit" doc:"fl.audit.> (FL_AUDIT)"`
	KubeEvent  StreamLimits `yaml:"kevent" doc:"fl.kevent.> (FL_KEVENT)"`
	Metric     StreamLimits `yaml:"metric" doc:"fl.metric.> (FL_METRIC)"`
	Finding    StreamLimits `yaml:"finding" doc:"fl.finding.> (FL_FINDING)"`
	Deviation  StreamLimits `yaml:"deviation" doc:"fl.deviation.> (FL_DEVIATION)"`
	Fault      StreamLimits `yaml:"fault" doc:"fl.fault.> (FL_FAULT)"`
	DeadLetter StreamLimits `yaml:"dead_letter" doc:"fl.dlq.> (FL_DLQ)"`
}

// StreamLimits are the retention limits of one stream.
type StreamLimits struct {
	MaxAge   time.Duration `yaml:"max_age" doc:"Messages older than this are removed. 0: kept until max_bytes."`
	MaxBytes ByteSize      `yaml:"max_bytes" doc:"Size cap; the oldest messages are removed first. 0: unlimited."`
}

// Consumer holds the defaults of durable consumers.
type Consumer struct {
	MaxDeliver    int             `yaml:"max_deliver" doc:"Attempts per message before it goes to the dead-letter stream with the reason."`
	Backoff       []time.Duration `yaml:"backoff" doc:"Delay before each retry; the last value repeats."`
	AckWait       time.Duration   `yaml:"ack_wait" doc:"How long one attempt may take before the message is delivered again."`
	MaxAckPending int             `yaml:"max_ack_pending" doc:"Messages delivered but not yet acknowledged, per consumer group. Delivery pauses at the bound."`
}

// Default returns the built-in defaults: embedded bus, loopback endpoint.
func Default() Config {
	day := 24 * time.Hour
	return Config{
		Cluster:    "default",
		Log:        Log{Level: "info", Format: "json"},
		HTTP:       HTTP{Listen: "127.0.0.1:9880"},
		Kubernetes: Kubernetes{QPS: 20, Burst: 40},
		Collectors: Collectors{
			AuditWebhook: auditwebhook.DefaultConfig(),
			AuditFile:    auditfile.DefaultConfig(),
			KubeEvents:   kubeevents.DefaultConfig(),
			Metrics:      metrics.DefaultConfig(),
		},
		Analyzers: Analyzers{
			Rules:    rules.DefaultConfig(),
			Baseline: baseline.DefaultConfig(),
			Chaos:    analyzers.DefaultChaosConfig(),

			SteadyState: steadystate.DefaultConfig(),
		},
		Injectors: Injectors{
			Guard:              guard.DefaultConfig(),
			Lifecycle:          runner.DefaultConfig(),
			PodKill:            podkill.DefaultConfig(),
			NetworkPartition:   netpartition.DefaultConfig(),
			ResourceStarvation: starvation.DefaultConfig(),
		},
		Sinks: Sinks{
			Elasticsearch: elasticsearch.DefaultConfig(),
			Fluent:        fluent.DefaultConfig(),
		},
		Bus: Bus{
			Embedded:        Embedded{DataDir: "./data"},
			ConnectTimeout:  5 * time.Second,
			MaxInflight:     4096,
			AckTimeout:      10 * time.Second,
			Replicas:        1,
			DuplicateWindow: 2 * time.Minute,
			Streams: Streams{
				Audit:      StreamLimits{MaxAge: 7 * day},
				KubeEvent:  StreamLimits{MaxAge: 7 * day},
				Metric:     StreamLimits{MaxAge: day},
				Finding:    StreamLimits{MaxAge: 30 * day},
				Deviation:  StreamLimits{MaxAge: 30 * day},
				Fault:      StreamLimits{MaxAge: 30 * day},
				DeadLetter: StreamLimits{MaxAge: 30 * day},
			},
			Consumer: Consumer{
				MaxDeliver:    5,
				Backoff:       []time.Duration{time.Second, 5 * time.Second, 30 * time.Second},
				AckWait:       30 * time.Second,
				MaxAckPending: 1000,
			},
		},
	}
}
