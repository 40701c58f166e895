package kubeevents

// Config configures the Kubernetes Events collector.
type Config struct {
	Enabled bool `yaml:"enabled" doc:"Watch Kubernetes Events through the API server."`
}

// DefaultConfig is the built-in default.
func DefaultConfig() Config { return Config{} }

// Validate returns one error per invalid field, each starting with the
// field's YAML name (the caller adds the section path).
func (c Config) Validate() []error { return nil }
