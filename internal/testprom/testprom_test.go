package testprom_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline/faultline/internal/testprom"
)

// A real Prometheus scrapes an exporter the test runs, and answers PromQL
// with what the exporter exposes.
func TestPrometheusScrapesExporter(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "testprom_value", Help: "A value."}, []string{"group"})
	reg.MustRegister(g)
	g.WithLabelValues("control").Set(42)
	exp := testprom.StartExporter(t, reg)

	srv := testprom.Start(t, testprom.Options{Targets: []string{exp.Addr}, ScrapeInterval: 200 * time.Millisecond})
	if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
		t.Errorf("URL %q is not on loopback", srv.URL)
	}
	got := srv.WaitForSeries(t, `testprom_value{group="control"}`, 30*time.Second)
	want := `{__name__="testprom_value", group="control", instance="` + exp.Addr + `", job="exporter"}`
	if v, ok := got[want]; !ok || v != 42 {
		t.Errorf("query result %v, want %s = 42", got, want)
	}
	if err := srv.Stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if err := srv.Stop(); err != nil {
		t.Errorf("second stop: %v", err)
	}
}
