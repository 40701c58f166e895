package kubeevents

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// API choices.
const (
	APIAuto   = "auto"
	APIEvents = "events.k8s.io/v1"
	APICore   = "v1"
)

// Config configures the Kubernetes Events collector.
type Config struct {
	Enabled bool `yaml:"enabled" doc:"Watch Kubernetes Events through the API server."`

	Namespaces []string `yaml:"namespaces" doc:"Namespaces whose Events are collected. Empty: all namespaces (needs a ClusterRole)."`

	API string `yaml:"api" doc:"Events API to watch: auto (events.k8s.io/v1 when the API server serves it, else v1), events.k8s.io/v1 or v1. Both show the same objects."`

	EventTTL time.Duration `yaml:"event_ttl" doc:"The API server's --event-ttl (default 1h): how long an Event is kept after its last update. Which occurrences were published is remembered this long (plus 5m), so a restart neither repeats nor misses any."`

	QueueSize int `yaml:"queue_size" doc:"Event notifications waiting to be published. When full, the informer does not wait: the Event's key is noted and its latest state is published once the queue has room (occurrences in between are folded into that state's count)."`

	BatchSize int `yaml:"batch_size" doc:"Events published together before waiting for JetStream's acknowledgements."`

	LeaderElection LeaderElection `yaml:"leader_election"`
}

// LeaderElection makes several replicas publish one stream: only the
// holder of a Lease collects.
type LeaderElection struct {
	Enabled bool `yaml:"enabled" doc:"Take a Lease before collecting, so that of several replicas only one publishes. Turn off only with a single replica."`

	LeaseName string `yaml:"lease_name" doc:"Name of the coordination.k8s.io Lease."`

	LeaseNamespace string `yaml:"lease_namespace" doc:"Namespace of the Lease. Empty: the pod's own namespace, else default."`

	Identity string `yaml:"identity" doc:"This replica's name in the Lease. Empty: the host name plus a random suffix."`

	LeaseDuration time.Duration `yaml:"lease_duration" doc:"How long a Lease holds without renewal: the longest a crashed leader's replicas wait before taking over."`

	RenewDeadline time.Duration `yaml:"renew_deadline" doc:"How long the leader keeps trying to renew before it stops collecting. Shorter than lease_duration."`

	RetryPeriod time.Duration `yaml:"retry_period" doc:"How often replicas try to take or renew the Lease."`
}

// DefaultConfig is the built-in default.
func DefaultConfig() Config {
	return Config{
		API:       APIAuto,
		EventTTL:  time.Hour,
		QueueSize: 1024,
		BatchSize: 256,
		LeaderElection: LeaderElection{
			Enabled:       true,
			LeaseName:     "faultline-events",
			LeaseDuration: 15 * time.Second,
			RenewDeadline: 10 * time.Second,
			RetryPeriod:   2 * time.Second,
		},
	}
}

// Validate returns one error per invalid field, each starting with the
// field's YAML name (the caller adds the section path).
func (c Config) Validate() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	seen := map[string]bool{}
	for i, ns := range c.Namespaces {
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			bad(fmt.Sprintf("namespaces[%d]", i), "%q is not a namespace name: %s", ns, msgs[0])
		}
		if seen[ns] {
			bad(fmt.Sprintf("namespaces[%d]", i), "%q is listed twice", ns)
		}
		seen[ns] = true
	}
	switch c.API {
	case APIAuto, APIEvents, APICore:
	default:
		bad("api", "must be %s, %s or %s (got %q)", APIAuto, APIEvents, APICore, c.API)
	}
	if c.EventTTL < time.Minute {
		bad("event_ttl", "must be at least 1m (got %s)", c.EventTTL)
	}
	if c.QueueSize < 1 || c.QueueSize > 1<<20 {
		bad("queue_size", "must be between 1 and 1048576 (got %d)", c.QueueSize)
	}
	if c.BatchSize < 1 || c.BatchSize > 10000 {
		bad("batch_size", "must be between 1 and 10000 (got %d)", c.BatchSize)
	}
	le := c.LeaderElection
	if !le.Enabled {
		return errs
	}
	if msgs := validation.IsDNS1123Subdomain(le.LeaseName); len(msgs) > 0 {
		bad("leader_election.lease_name", "%q is not a Lease name: %s", le.LeaseName, msgs[0])
	}
	if le.LeaseNamespace != "" {
		if msgs := validation.IsDNS1123Label(le.LeaseNamespace); len(msgs) > 0 {
			bad("leader_election.lease_namespace", "%q is not a namespace name: %s", le.LeaseNamespace, msgs[0])
		}
	}
	switch {
	case le.RetryPeriod <= 0:
		bad("leader_election.retry_period", "must be a positive duration (got %s)", le.RetryPeriod)
	case le.RenewDeadline <= le.RetryPeriod*12/10:
		bad("leader_election.renew_deadline", "must be longer than 1.2 × retry_period %s (got %s)", le.RetryPeriod, le.RenewDeadline)
	case le.LeaseDuration <= le.RenewDeadline:
		bad("leader_election.lease_duration", "must be longer than renew_deadline %s (got %s)", le.RenewDeadline, le.LeaseDuration)
	}
	return errs
}
