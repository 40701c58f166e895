package kubeevents

// Config configures the Kubernetes Events collector.
type Config struct {
	Enabled bool `yaml:"enabled" doc:"Watch Kubernetes Events through the API server."`
}
