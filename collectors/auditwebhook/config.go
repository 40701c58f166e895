package auditwebhook

// Config configures the audit webhook receiver.
type Config struct {
	Enabled bool `yaml:"enabled" doc:"Receive the API server's audit webhook."`
}
