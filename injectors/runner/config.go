package runner

import (
	"fmt"
	"time"
)

// Config is the injector's lifecycle: how it proves it is alive, how often
// it reconciles the recorded faults, and how it retries reverts.
type Config struct {
	ID                string        `yaml:"id" doc:"Name of this injector replica in fault records and statuses. Empty: the host name plus a random suffix, new at every start, so a restarted process is a new owner and its predecessor's faults are taken over."`
	Concurrency       int           `yaml:"concurrency" doc:"Fault commands handled at once by this replica."`
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval" doc:"How often the replica records that it is alive."`
	HeartbeatTimeout  time.Duration `yaml:"heartbeat_timeout" doc:"A replica silent this long is dead: another replica (or its own restart) takes over its faults and reverts them by their deadline."`
	ReconcileInterval time.Duration `yaml:"reconcile_interval" doc:"How often every replica scans the fault records for faults past their deadline, aborted, orphaned or whose experiment stopped heartbeating."`
	RevertTimeout     time.Duration `yaml:"revert_timeout" doc:"Bound on one revert attempt."`
	RevertBackoffMax  time.Duration `yaml:"revert_backoff_max" doc:"Longest wait between attempts of a revert that keeps failing (it is retried until it succeeds, or until a person who reverted it by hand runs 'faultline fault forget')."`
	AbortParallelism  int           `yaml:"abort_parallelism" doc:"Reverts run at once on an abort."`
}

// DefaultConfig returns the built-in lifecycle settings.
func DefaultConfig() Config {
	return Config{
		Concurrency:       4,
		HeartbeatInterval: 2 * time.Second,
		HeartbeatTimeout:  10 * time.Second,
		ReconcileInterval: 2 * time.Second,
		RevertTimeout:     20 * time.Second,
		RevertBackoffMax:  30 * time.Second,
		AbortParallelism:  32,
	}
}

// Validate returns one error per invalid field.
func (c Config) Validate() []error {
	var errs []error
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("concurrency: %d must be at least 1", c.Concurrency))
	}
	if c.HeartbeatInterval <= 0 {
		errs = append(errs, fmt.Errorf("heartbeat_interval: must be positive"))
	}
	if c.HeartbeatTimeout < 2*c.HeartbeatInterval {
		errs = append(errs, fmt.Errorf("heartbeat_timeout: %v must be at least twice heartbeat_interval (%v)", c.HeartbeatTimeout, c.HeartbeatInterval))
	}
	if c.ReconcileInterval <= 0 {
		errs = append(errs, fmt.Errorf("reconcile_interval: must be positive"))
	}
	if c.RevertTimeout <= 0 {
		errs = append(errs, fmt.Errorf("revert_timeout: must be positive"))
	}
	if c.RevertBackoffMax < time.Second {
		errs = append(errs, fmt.Errorf("revert_backoff_max: %v must be at least 1s", c.RevertBackoffMax))
	}
	if c.AbortParallelism < 1 {
		errs = append(errs, fmt.Errorf("abort_parallelism: %d must be at least 1", c.AbortParallelism))
	}
	return errs
}
