package podkill

import (
	"fmt"
	"time"
)

// Config tunes the pod-kill injector; commands choose their own grace
// period and interval within these bounds.
type Config struct {
	DefaultGracePeriodSeconds int64         `yaml:"default_grace_period_seconds" doc:"Grace period of a kill whose command sets none. 0 deletes the pod at once (its containers get SIGKILL without SIGTERM); above 0 the pod is Terminating until its kubelet confirms it stopped."`
	MinInterval               time.Duration `yaml:"min_interval" doc:"Shortest interval between repeated kills a command may ask for (at least 1s), so a command cannot turn the injector into a tight delete loop."`
	Parallelism               int           `yaml:"parallelism" doc:"Pods of one command deleted at once (1-100)."`
}

// DefaultConfig is the built-in default.
func DefaultConfig() Config {
	return Config{
		DefaultGracePeriodSeconds: 0,
		MinInterval:               time.Second,
		Parallelism:               10,
	}
}

// Validate returns one error per invalid field, each starting with the
// field's YAML name.
func (c Config) Validate() []error {
	var errs []error
	if c.DefaultGracePeriodSeconds < 0 {
		errs = append(errs, fmt.Errorf("default_grace_period_seconds: must not be negative (got %d)", c.DefaultGracePeriodSeconds))
	}
	if c.MinInterval < time.Second {
		errs = append(errs, fmt.Errorf("min_interval: must be at least 1s (got %s)", c.MinInterval))
	}
	if c.Parallelism < 1 || c.Parallelism > 100 {
		errs = append(errs, fmt.Errorf("parallelism: must be between 1 and 100 (got %d)", c.Parallelism))
	}
	return errs
}
