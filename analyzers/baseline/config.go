package baseline

import (
	"fmt"
	"strings"
	"time"
)

// Config configures the baseline analyzer.
type Config struct {
	Enabled bool `yaml:"enabled" doc:"Run the baseline analyzer: findings when an identity does what it has never done (new verb×resource×namespace, user agent, source network) and on rate spikes against its own average. State lives in the faultline_state KV bucket."`

	LearningPeriod time.Duration `yaml:"learning_period" doc:"How long an identity is only learned, from the first event seen for it (event time), before its new behaviour is reported."`

	IgnoreUsers []string `yaml:"ignore_users" doc:"Identities (globs with '*') not profiled: the control plane, whose work follows the workloads."`

	RateFactor float64 `yaml:"rate_factor" doc:"A minute with more than rate_factor times the identity's moving average of requests per minute is a spike."`

	RateMinCount int `yaml:"rate_min_count" doc:"A minute with fewer requests than this is never a spike."`

	MaxTerms int `yaml:"max_terms" doc:"Bound on the activities, user agents and source networks remembered per identity; beyond it new ones are neither learned nor reported (counted in faultline_baseline_terms_dropped_total)."`

	MaxIdentities int `yaml:"max_identities" doc:"Identities kept in memory; the least recently seen are written back and dropped beyond it."`

	FlushInterval time.Duration `yaml:"flush_interval" doc:"How often learned changes are written to the KV bucket (merged with other replicas' by compare-and-set)."`

	Concurrency int `yaml:"concurrency" doc:"Events analysed at once per process."`
}

// DefaultConfig is the built-in default.
func DefaultConfig() Config {
	return Config{
		Enabled:        true,
		LearningPeriod: 7 * 24 * time.Hour,
		IgnoreUsers: []string{
			"system:apiserver", "system:kube-controller-manager", "system:kube-scheduler", "system:kube-proxy",
			"system:node:*", "system:serviceaccount:kube-system:*",
		},
		RateFactor:    10,
		RateMinCount:  300,
		MaxTerms:      2000,
		MaxIdentities: 50000,
		FlushInterval: 5 * time.Second,
		Concurrency:   2,
	}
}

// Validate returns one error per invalid field, each starting with the
// field's YAML name.
func (c Config) Validate() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.LearningPeriod < 0 {
		bad("learning_period", "must not be negative (got %s)", c.LearningPeriod)
	}
	for i, u := range c.IgnoreUsers {
		if strings.TrimSpace(u) == "" {
			bad(fmt.Sprintf("ignore_users[%d]", i), "must not be empty")
		}
	}
	if c.RateFactor <= 1 {
		bad("rate_factor", "must be above 1 (got %g)", c.RateFactor)
	}
	if c.RateMinCount < 1 {
		bad("rate_min_count", "must be at least 1 (got %d)", c.RateMinCount)
	}
	if c.MaxTerms < 10 {
		bad("max_terms", "must be at least 10 (got %d)", c.MaxTerms)
	}
	if c.MaxIdentities < 100 {
		bad("max_identities", "must be at least 100 (got %d)", c.MaxIdentities)
	}
	if c.FlushInterval <= 0 {
		bad("flush_interval", "must be a positive duration (got %s)", c.FlushInterval)
	}
	if c.Concurrency < 1 || c.Concurrency > 256 {
		bad("concurrency", "must be between 1 and 256 (got %d)", c.Concurrency)
	}
	return errs
}
