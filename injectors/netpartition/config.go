package netpartition

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Config tunes the network-partition injector.
type Config struct {
	LabelKey    string `yaml:"label_key" doc:"Label put on the target pods so the fault's NetworkPolicy can select them (value: the command id, or a hash of it). A pod carries at most one partition at a time. The revert record keeps the key, so changing it does not strand labels of active faults."`
	Parallelism int    `yaml:"parallelism" doc:"Pods of one command labelled or unlabelled at once (1-100)."`
}

// DefaultLabelKey is the default label_key.
const DefaultLabelKey = "faultline.io/partition"

// DefaultConfig is the built-in default.
func DefaultConfig() Config {
	return Config{LabelKey: DefaultLabelKey, Parallelism: 10}
}

// Validate returns one error per invalid field, each starting with the
// field's YAML name.
func (c Config) Validate() []error {
	var errs []error
	if msgs := validation.IsQualifiedName(c.LabelKey); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("label_key: %q is not a label key: %s", c.LabelKey, strings.Join(msgs, "; ")))
	}
	if c.Parallelism < 1 || c.Parallelism > 100 {
		errs = append(errs, fmt.Errorf("parallelism: must be between 1 and 100 (got %d)", c.Parallelism))
	}
	return errs
}
