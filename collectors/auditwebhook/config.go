package auditwebhook

// Config configures the audit webhook receiver.
type Config struct {
	Enabled bool `yaml:"enabled" doc:"Receive the API server's audit webhook."`
}

// DefaultConfig is the built-in default.
func DefaultConfig() Config { return Config{} }

// Validate returns one error per invalid field, each starting with the
// field's YAML name (the caller adds the section path).
func (c Config) Validate() []error { return nil }
