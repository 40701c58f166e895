package metrics

// Config configures the metrics collector.
type Config struct {
	Enabled bool `yaml:"enabled" doc:"Scrape Prometheus endpoints and run PromQL queries."`
}
