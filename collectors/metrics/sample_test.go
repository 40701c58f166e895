package metrics_test

import (
	"testing"

	"github.com/faultline/faultline/internal/config"
)

// sample.yaml is a valid configuration.
func TestSampleConfig(t *testing.T) {
	c, err := config.LoadFile("sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := c.Collectors.Metrics
	if !m.Enabled || len(m.Scrape.Targets) != 2 || len(m.PromQL.Queries) != 2 {
		t.Errorf("sample.yaml not read as expected: %+v", m)
	}
}
