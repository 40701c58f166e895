package metrics

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline/faultline/bus/bustest"
	"github.com/faultline/faultline/internal/testprom"
	"github.com/faultline/faultline/schemas"
)

// The collector queries a real Prometheus server, which scrapes an
// exporter the test runs, and publishes samples whose values are what the
// exporter exposes; a broken query is reported as down without disturbing
// the others.
func TestPromQLAgainstRealPrometheus(t *testing.T) {
	testprom.Require(t)
	reg := prometheus.NewRegistry()
	ratio := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "shop_error_ratio", Help: "Errors per request."}, []string{"group"})
	reg.MustRegister(ratio)
	ratio.WithLabelValues("control").Set(0.01)
	ratio.WithLabelValues("experimental").Set(0.2)
	exp := testprom.StartExporter(t, reg)
	prom := testprom.Start(t, testprom.Options{Targets: []string{exp.Addr}, Job: "shop", ScrapeInterval: 200 * time.Millisecond})
	prom.WaitForSeries(t, `shop_error_ratio{group="experimental"}`, 30*time.Second)

	b, _ := bustest.Start(t)
	sink := watchBus(t, b)
	cfg := testConfig()
	cfg.Interval = 300 * time.Millisecond
	cfg.Timeout = 250 * time.Millisecond
	cfg.PromQL.URL = prom.URL
	cfg.PromQL.Queries = []Query{
		{Name: "shop:error_ratio", Query: `shop_error_ratio`, Labels: map[string]string{"experiment": "e1"}},
		{Name: "shop:error_ratio:max", Query: `max(shop_error_ratio)`},
		{Name: "one", Query: `scalar(vector(1))`},
		{Name: "broken", Query: `sum(`},
	}
	r := startCollector(t, b, cfg)

	isQuery := func(name string) func(schemas.MetricSample) bool {
		return func(s schemas.MetricSample) bool {
			return s.Query == name && s.Kind != schemas.MetricTargetHealth
		}
	}
	for _, group := range []struct {
		name  string
		value float64
	}{{"control", 0.01}, {"experimental", 0.2}} {
		got := sink.waitFor(t, 15*time.Second, "the "+group.name+" ratio", 1, func(s schemas.MetricSample) bool {
			return isQuery("shop:error_ratio")(s) && s.Labels["group"] == group.name
		})
		s := got[0]
		if s.Name != "shop_error_ratio" || float64(s.Value) != group.value {
			t.Errorf("%s: %s = %v, want shop_error_ratio = %v", group.name, s.Name, s.Value, group.value)
		}
		want := map[string]string{"group": group.name, "job": "shop", "instance": exp.Addr, "experiment": "e1"}
		for k, v := range want {
			if s.Labels[k] != v {
				t.Errorf("%s: label %s = %q, want %q (labels %v)", group.name, k, s.Labels[k], v, s.Labels)
			}
		}
		if s.Source != "prometheus" || s.Target != prom.URL || s.Kind != schemas.MetricUntyped {
			t.Errorf("%s: source %q target %q kind %s", group.name, s.Source, s.Target, s.Kind)
		}
		if s.Timestamp.UnixNano()%int64(time.Millisecond) != 0 || time.Since(s.Timestamp) > time.Minute {
			t.Errorf("%s: timestamp %v", group.name, s.Timestamp)
		}
	}
	max := sink.waitFor(t, 10*time.Second, "the max", 1, isQuery("shop:error_ratio:max"))[0]
	if max.Name != "shop:error_ratio:max" || max.Value != 0.2 || len(max.Labels) != 0 {
		t.Errorf("aggregate without a name: %+v", max)
	}
	one := sink.waitFor(t, 10*time.Second, "the scalar", 1, isQuery("one"))[0]
	if one.Name != "one" || one.Value != 1 {
		t.Errorf("scalar: %+v", one)
	}
	up := sink.waitFor(t, 10*time.Second, "an up sample of the query", 1, func(s schemas.MetricSample) bool {
		return isHealth(prom.URL, true)(s) && s.Query == "shop:error_ratio"
	})[0]
	if up.Labels["experiment"] != "e1" {
		t.Errorf("health sample of a query lacks its labels: %v", up.Labels)
	}
	broken := sink.waitFor(t, 10*time.Second, "the broken query reported down", 1, func(s schemas.MetricSample) bool {
		return isHealth(prom.URL, false)(s) && s.Query == "broken"
	})[0]
	if !strings.Contains(broken.Health.Error, "query broken") || !strings.Contains(broken.Health.Error, "parse error") {
		t.Errorf("broken query error: %q", broken.Health.Error)
	}

	// A change at the exporter reaches the bus through Prometheus.
	ratio.WithLabelValues("experimental").Set(0.5)
	sink.waitFor(t, 15*time.Second, "the new experimental ratio", 1, func(s schemas.MetricSample) bool {
		return isQuery("shop:error_ratio")(s) && s.Labels["group"] == "experimental" && s.Value == 0.5
	})
	if n := r.metric(t, "faultline_metrics_scrapes_total", map[string]string{"source": "prometheus", "result": "success"}); n < 3 {
		t.Errorf("scrapes_total{source=prometheus,result=success} = %v", n)
	}
	if n := r.metric(t, "faultline_metrics_scrapes_total", map[string]string{"source": "prometheus", "result": "error"}); n < 1 {
		t.Errorf("scrapes_total{source=prometheus,result=error} = %v", n)
	}

	// Stopping Prometheus is a telemetry gap: every query is reported down.
	if err := prom.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	sink.waitFor(t, 10*time.Second, "the queries reported down", 1, func(s schemas.MetricSample) bool {
		return isHealth(prom.URL, false)(s) && s.Query == "shop:error_ratio" && s.Timestamp.After(stopped)
	})
}

// Credentials for the Prometheus server are read from their files on every
// run, so a rotated token or password is picked up.
func TestPromQLCredentials(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		want string // Authorization header the server expects
		set  func(*PromQL) string
	}{
		{"bearer token file", "Bearer s3cret", func(p *PromQL) string {
			p.BearerTokenFile = write("token", "s3cret\n")
			return p.BearerTokenFile
		}},
		{"basic auth password file", "Basic dXNlcjpwYXNz", func(p *PromQL) string {
			p.Username = "user"
			p.PasswordFile = write("password", "pass")
			return p.PasswordFile
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := bustest.Start(t)
			sink := watchBus(t, b)
			api := newFakeQueryAPI(t, tc.want)
			cfg := testConfig()
			cfg.PromQL.URL = api.URL
			secret := tc.set(&cfg.PromQL)
			cfg.PromQL.Queries = []Query{{Name: "x", Query: "x"}}
			startCollector(t, b, cfg)
			got := sink.waitFor(t, 10*time.Second, "a sample with the credentials accepted", 1, func(s schemas.MetricSample) bool {
				return s.Name == "x" && s.Kind == schemas.MetricUntyped
			})
			if got[0].Value != 1 {
				t.Errorf("value %v", got[0].Value)
			}
			if err := os.WriteFile(secret, []byte("rotated"), 0o600); err != nil {
				t.Fatal(err)
			}
			down := sink.waitFor(t, 10*time.Second, "a down sample once the secret changed", 1, isHealth(api.URL, false))
			if !strings.Contains(down[0].Health.Error, "401") {
				t.Errorf("error %q", down[0].Health.Error)
			}
		})
	}
}
