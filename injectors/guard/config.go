package guard

import (
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/faultline/faultline/injectors/signing"
)

// Config holds the guard rails every injector shares.
type Config struct {
	AllowedNamespaces   []string      `yaml:"allowed_namespaces" doc:"Namespaces (globs with '*') whose pods faults may target. Empty: every command is refused. A protected namespace is allowed only when listed by its exact name, never through a glob."`
	ProtectedNamespaces []string      `yaml:"protected_namespaces" doc:"Namespaces never targeted unless listed exactly in allowed_namespaces. Faultline's own namespace (own_namespace) is always protected."`
	OwnNamespace        string        `yaml:"own_namespace" doc:"Faultline's own namespace, always protected. Empty: $POD_NAMESPACE, else faultline."`
	OptInLabel          string        `yaml:"opt_in_label" doc:"key=value label a target's namespace or the pod itself must carry to be eligible."`
	MaxShare            float64       `yaml:"max_share" doc:"Largest share (0–1] of one workload's ready pods a single command may affect. A pod without a controller is a workload of one, so it is refused below 1."`
	MaxConcurrentFaults int           `yaml:"max_concurrent_faults" doc:"Active faults allowed at once in the cluster; a command beyond it is refused."`
	MaxDuration         time.Duration `yaml:"max_duration" doc:"Longest fault duration a command may ask for."`
	TrustedKeys         []string      `yaml:"trusted_keys" doc:"Public NKeys (ed25519) whose signed commands are accepted. Create a pair with 'faultline fault keygen'."`
	TrustedKeysFile     string        `yaml:"trusted_keys_file" doc:"File with more trusted public NKeys, one per line ('#' comments), e.g. a mounted ConfigMap."`
	MaxCommandAge       time.Duration `yaml:"max_command_age" doc:"A command issued longer ago than this is refused as expired (unless it carries an earlier expires_at). Replays are detected for 24h, so this must be shorter."`
	ClockSkew           time.Duration `yaml:"clock_skew" doc:"How far in the future issued_at may be, for clocks that disagree."`
}

// ReplayWindow is how long command ids are remembered; MaxCommandAge plus
// ClockSkew must stay below it, or an expired command could be replayed
// after its id is forgotten.
const ReplayWindow = 24 * time.Hour

// DefaultConfig is safe by default: no namespace is allowed.
func DefaultConfig() Config {
	return Config{
		ProtectedNamespaces: []string{"kube-system", "kube-public", "kube-node-lease"},
		OptInLabel:          "faultline.io/chaos=enabled",
		MaxShare:            0.5,
		MaxConcurrentFaults: 25,
		MaxDuration:         time.Hour,
		MaxCommandAge:       2 * time.Minute,
		ClockSkew:           30 * time.Second,
	}
}

// Validate returns one error per invalid field.
func (c Config) Validate() []error {
	var errs []error
	for i, ns := range c.AllowedNamespaces {
		if _, err := path.Match(ns, ""); err != nil || ns == "" {
			errs = append(errs, fmt.Errorf("allowed_namespaces[%d]: %q is not a namespace or glob", i, ns))
		}
	}
	for i, ns := range c.ProtectedNamespaces {
		if len(validation.IsDNS1123Label(ns)) > 0 {
			errs = append(errs, fmt.Errorf("protected_namespaces[%d]: %q is not a namespace name", i, ns))
		}
	}
	if c.OwnNamespace != "" && len(validation.IsDNS1123Label(c.OwnNamespace)) > 0 {
		errs = append(errs, fmt.Errorf("own_namespace: %q is not a namespace name", c.OwnNamespace))
	}
	if _, _, err := parseLabel(c.OptInLabel); err != nil {
		errs = append(errs, fmt.Errorf("opt_in_label: %w", err))
	}
	if !(c.MaxShare > 0 && c.MaxShare <= 1) {
		errs = append(errs, fmt.Errorf("max_share: %v must be in (0, 1]", c.MaxShare))
	}
	if c.MaxConcurrentFaults < 1 {
		errs = append(errs, fmt.Errorf("max_concurrent_faults: %d must be at least 1", c.MaxConcurrentFaults))
	}
	if c.MaxDuration <= 0 {
		errs = append(errs, fmt.Errorf("max_duration: must be positive"))
	}
	if c.MaxCommandAge <= 0 || c.MaxCommandAge+c.ClockSkew >= ReplayWindow {
		errs = append(errs, fmt.Errorf("max_command_age: %v must be positive and, with clock_skew, under %v", c.MaxCommandAge, ReplayWindow))
	}
	if _, err := signing.NewTrusted(c.TrustedKeys); err != nil {
		errs = append(errs, fmt.Errorf("trusted_keys: %w", err))
	}
	if c.ClockSkew < 0 {
		errs = append(errs, fmt.Errorf("clock_skew: must not be negative"))
	}
	return errs
}

// ownNamespace resolves OwnNamespace's default.
func (c Config) ownNamespace() string {
	if c.OwnNamespace != "" {
		return c.OwnNamespace
	}
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	return "faultline"
}

func parseLabel(s string) (key, value string, err error) {
	key, value, ok := strings.Cut(s, "=")
	if !ok || key == "" {
		return "", "", fmt.Errorf("%q must be key=value", s)
	}
	if errs := validation.IsQualifiedName(key); len(errs) > 0 {
		return "", "", fmt.Errorf("label key %q: %s", key, strings.Join(errs, "; "))
	}
	if errs := validation.IsValidLabelValue(value); len(errs) > 0 {
		return "", "", fmt.Errorf("label value %q: %s", value, strings.Join(errs, "; "))
	}
	return key, value, nil
}
