package steadystate

import (
	"fmt"
	"time"
)

// Config configures the steady-state analyzer.
type Config struct {
	Enabled      bool          `yaml:"enabled" doc:"Evaluate the steady state of running experiments and abort them on a deviation, a finding in the blast radius or a telemetry gap. PromQL indicators are queried through collectors.metrics.promql's server (url, CA, credentials)."`
	QueryTimeout time.Duration `yaml:"query_timeout" doc:"Bound on one PromQL query of an indicator; a query that times out is no data for that evaluation."`
	MaxRuns      int           `yaml:"max_runs" doc:"Experiment runs evaluated at once; a run beyond it is failed at once with the reason."`
	ReadCluster  bool          `yaml:"read_cluster" doc:"Read the groups' pods and workloads from the API server (kubernetes.*), for events and replicas indicators: get/list pods, deployments, statefulsets and replicasets in the groups' namespaces. Off: runs with such indicators fail at once."`
}

// DefaultConfig is the built-in default.
func DefaultConfig() Config {
	return Config{Enabled: true, QueryTimeout: 5 * time.Second, MaxRuns: 50, ReadCluster: true}
}

// Validate returns one error per invalid field.
func (c Config) Validate() []error {
	var errs []error
	if c.QueryTimeout <= 0 {
		errs = append(errs, fmt.Errorf("query_timeout: must be positive"))
	}
	if c.MaxRuns < 1 {
		errs = append(errs, fmt.Errorf("max_runs: %d must be at least 1", c.MaxRuns))
	}
	return errs
}
