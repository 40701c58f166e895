package auditfile

// Config configures the audit log file reader.
type Config struct {
	Enabled bool `yaml:"enabled" doc:"Follow API-server audit log files (JSON lines)."`
}
