package auditfile

// Config configures the audit log file reader.
type Config struct {
	Enabled bool `yaml:"enabled" doc:"Follow API-server audit log files (JSON lines)."`
}

// DefaultConfig is the built-in default.
func DefaultConfig() Config { return Config{} }

// Validate returns one error per invalid field, each starting with the
// field's YAML name (the caller adds the section path).
func (c Config) Validate() []error { return nil }
