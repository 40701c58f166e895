package rules

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// Config configures the rules analyzer.
type Config struct {
	Enabled bool `yaml:"enabled" doc:"Run the rules analyzer: every audit event checked against the detection rules (docs/rules.md)."`

	DefaultRuleset bool `yaml:"default_ruleset" doc:"Load the embedded default ruleset (faultline-default). Off: only the rules of dirs."`

	Dirs []string `yaml:"dirs" doc:"Directories of rule files (*.yaml) of your own, read after the default ruleset: new rules, lists extended or replaced, exceptions added, rules disabled. A file with an error stops the start with its path, rule id and the CEL error."`

	Disabled []string `yaml:"disabled" doc:"Rule ids not to run."`

	AllowedRegistries []string `yaml:"allowed_registries" doc:"Registries (and optional path prefixes) images must come from, e.g. registry.k8s.io,ghcr.io/acme. Images are compared fully spelled out, so docker.io/library/nginx for nginx. Empty: untrusted-registry-image is off."`

	SystemNamespaceImages []string `yaml:"system_namespace_images" doc:"Images (globs on the full reference, e.g. registry.example/ops/agent:*) allowed in kube-system and kube-public besides the control plane's."`

	PodCIDRs []string `yaml:"pod_cidrs" doc:"The cluster's pod networks. With node_cidrs, where node and service-account credentials are expected to come from; empty both: node-credentials-used-elsewhere is off."`

	NodeCIDRs []string `yaml:"node_cidrs" doc:"The networks of the cluster's nodes (including the control plane's addresses)."`

	Concurrency int `yaml:"concurrency" doc:"Events analysed at once per process."`

	WindowMaxKeys int `yaml:"window_max_keys" doc:"Keys (e.g. users) each windowed rule keeps counts for; beyond it the least recently seen are forgotten and counted in faultline_rules_window_evictions_total."`
}

// DefaultConfig is the built-in default.
func DefaultConfig() Config {
	return Config{
		Enabled:        true,
		DefaultRuleset: true,
		Concurrency:    4,
		WindowMaxKeys:  10000,
	}
}

// Validate returns one error per invalid field, each starting with the
// field's YAML name.
func (c Config) Validate() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	for i, d := range c.Dirs {
		st, err := os.Stat(d)
		switch {
		case err != nil:
			bad(fmt.Sprintf("dirs[%d]", i), "%v", err)
		case !st.IsDir():
			bad(fmt.Sprintf("dirs[%d]", i), "%s is not a directory", d)
		}
	}
	if !c.DefaultRuleset && len(c.Dirs) == 0 && c.Enabled {
		bad("default_ruleset", "is off and no dirs are set: there would be no rules")
	}
	for i, r := range c.AllowedRegistries {
		if strings.TrimSpace(r) == "" || strings.ContainsAny(r, " *") {
			bad(fmt.Sprintf("allowed_registries[%d]", i), "%q is not a registry or registry/path prefix", r)
		}
	}
	for field, list := range map[string][]string{"pod_cidrs": c.PodCIDRs, "node_cidrs": c.NodeCIDRs} {
		for i, s := range list {
			if _, err := netip.ParsePrefix(s); err != nil {
				bad(fmt.Sprintf("%s[%d]", field, i), "%q is not a CIDR (e.g. 10.244.0.0/16)", s)
			}
		}
	}
	if c.Concurrency < 1 || c.Concurrency > 256 {
		bad("concurrency", "must be between 1 and 256 (got %d)", c.Concurrency)
	}
	if c.WindowMaxKeys < 100 {
		bad("window_max_keys", "must be at least 100 (got %d)", c.WindowMaxKeys)
	}
	return errs
}

// Options turns the configuration into engine options.
func (c Config) Options() Options {
	o := Options{Disabled: c.Disabled, WindowMaxKeys: c.WindowMaxKeys,
		ReplaceLists: map[string][]string{}, AppendLists: map[string][]string{}}
	if c.DefaultRuleset {
		o.Sources = append(o.Sources, DefaultSource())
	}
	for _, d := range c.Dirs {
		o.Sources = append(o.Sources, DirSource(d))
	}
	if len(c.AllowedRegistries) > 0 {
		o.ReplaceLists["allowed_registries"] = RegistryPrefixes(c.AllowedRegistries)
	}
	if len(c.SystemNamespaceImages) > 0 {
		o.AppendLists["system_namespace_images"] = c.SystemNamespaceImages
	}
	if cidrs := append(append([]string(nil), c.PodCIDRs...), c.NodeCIDRs...); len(cidrs) > 0 {
		o.AppendLists["trusted_cidrs"] = cidrs
	}
	return o
}

// RegistryPrefixes turns registry names as people write them
// ("registry.k8s.io", "ghcr.io/acme", "nginx" for Docker Hub's library) into
// the prefixes normalized image references are compared with.
func RegistryPrefixes(regs []string) []string {
	out := make([]string, 0, len(regs))
	for _, r := range regs {
		r = strings.TrimSuffix(strings.TrimSpace(r), "/")
		if r == "index.docker.io" {
			r = "docker.io"
		}
		out = append(out, r+"/")
	}
	return out
}
