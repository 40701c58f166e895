package metrics_test

import (
	"os"
	"testing"

	"github.com/faultline/faultline/internal/config"
)

// sample.yaml is a valid configuration.
func TestSampleConfig(t *testing.T) {
	data, err := os.ReadFile("sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := config.Default()
	if err := config.DecodeYAML(data, &c); err != nil {
		t.Fatalf("sample.yaml: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("sample.yaml: %v", err)
	}
	m := c.Collectors.Metrics
	if !m.Enabled || len(m.Scrape.Targets) != 2 || len(m.PromQL.Queries) != 2 {
		t.Errorf("sample.yaml not read as expected: %+v", m)
	}
}
