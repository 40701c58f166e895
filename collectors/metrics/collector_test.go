package metrics

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline/faultline/bus/bustest"
	"github.com/faultline/faultline/internal/testprom"
	"github.com/faultline/faultline/schemas"
)

// shopExporter is a small exporter with a gauge, a counter and a histogram.
type shopExporter struct {
	*testprom.Exporter
	registry *prometheus.Registry
	inFlight *prometheus.GaugeVec
	requests *prometheus.CounterVec
	latency  prometheus.Histogram
}

func startShopExporter(t *testing.T) *shopExporter {
	reg := prometheus.NewRegistry()
	e := &shopExporter{
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "shop_in_flight", Help: "Requests in flight."}, []string{"group"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shop_requests_total", Help: "Requests served."}, []string{"code"}),
		latency:  prometheus.NewHistogram(prometheus.HistogramOpts{Name: "shop_latency_seconds", Help: "Latency.", Buckets: []float64{0.1, 0.5}}),
	}
	e.registry = reg
	reg.MustRegister(e.inFlight, e.requests, e.latency)
	e.inFlight.WithLabelValues("control").Set(12)
	e.requests.WithLabelValues("200").Add(1027)
	for _, v := range []float64{0.05, 0.2, 0.7} {
		e.latency.Observe(v)
	}
	e.Exporter = testprom.StartExporter(t, reg)
	return e
}

func sampleIs(target, name string, labels map[string]string) func(schemas.MetricSample) bool {
	return func(s schemas.MetricSample) bool {
		if s.Target != target || s.Name != name {
			return false
		}
		for k, v := range labels {
			if s.Labels[k] != v {
				return false
			}
		}
		return true
	}
}

// Direct scraping of an exporter in the text format and in OpenMetrics:
// every sample carries its labels, the target's labels, its kind, the
// source and the scrape time, and follows the exporter's values.
func TestScrapeTextAndOpenMetrics(t *testing.T) {
	b, _ := bustest.Start(t)
	sink := watchBus(t, b)
	exp := startShopExporter(t)

	cfg := testConfig()
	textURL, omURL := exp.URL, exp.URL+"?format=openmetrics"
	cfg.Scrape.Targets = []Target{
		{URL: textURL, Format: FormatText, Labels: map[string]string{"job": "shop-text"}},
		{URL: omURL, Format: FormatOpenMetrics, Labels: map[string]string{"job": "shop-om"}},
	}
	r := startCollector(t, b, cfg)

	for _, tc := range []struct{ target, job string }{{textURL, "shop-text"}, {omURL, "shop-om"}} {
		t.Run(tc.job, func(t *testing.T) {
			common := map[string]string{"job": tc.job, "instance": exp.Addr}
			checks := []struct {
				name   string
				labels map[string]string
				value  float64
				kind   schemas.MetricKind
			}{
				{"shop_in_flight", map[string]string{"group": "control"}, 12, schemas.MetricGauge},
				{"shop_requests_total", map[string]string{"code": "200"}, 1027, schemas.MetricCounter},
				{"shop_latency_seconds_bucket", map[string]string{"le": "0.1"}, 1, schemas.MetricHistogram},
				{"shop_latency_seconds_bucket", map[string]string{"le": "+Inf"}, 3, schemas.MetricHistogram},
				{"shop_latency_seconds_count", nil, 3, schemas.MetricHistogram},
			}
			for _, c := range checks {
				labels := map[string]string{}
				for k, v := range common {
					labels[k] = v
				}
				for k, v := range c.labels {
					labels[k] = v
				}
				got := sink.waitFor(t, 10*time.Second, c.name+" from "+tc.job, 1, sampleIs(tc.target, c.name, labels))
				s := got[0]
				if float64(s.Value) != c.value || s.Kind != c.kind || s.Source != "scrape" {
					t.Errorf("%s: value %v kind %s source %s; want %v %s scrape", c.name, s.Value, s.Kind, s.Source, c.value, c.kind)
				}
				if time.Since(s.Timestamp) > time.Minute || s.Timestamp.After(time.Now()) {
					t.Errorf("%s: timestamp %v is not the scrape time", c.name, s.Timestamp)
				}
			}
			up := sink.waitFor(t, 10*time.Second, "up sample of "+tc.job, 1, isHealth(tc.target, true))
			if h := up[0]; h.Labels["job"] != tc.job || h.Health.ConsecutiveFailures != 0 || h.Health.LastSuccess == nil {
				t.Errorf("health sample %+v %+v", h, h.Health)
			}
		})
	}

	// Values follow the exporter.
	exp.inFlight.WithLabelValues("control").Set(13)
	sink.waitFor(t, 10*time.Second, "the new gauge value", 1, func(s schemas.MetricSample) bool {
		return sampleIs(textURL, "shop_in_flight", map[string]string{"group": "control"})(s) && s.Value == 13
	})
	if n := r.metric(t, "faultline_metrics_scrapes_total", map[string]string{"source": "scrape", "result": "success"}); n < 2 {
		t.Errorf("scrapes_total{result=success} = %v", n)
	}
	if n := r.metric(t, "faultline_metrics_samples_published_total", map[string]string{"source": "scrape", "kind": "series"}); n < 10 {
		t.Errorf("samples_published_total{kind=series} = %v", n)
	}
	if n := r.metric(t, "faultline_metrics_targets", map[string]string{"source": "scrape", "state": "up"}); n != 2 {
		t.Errorf("targets{state=up} = %v, want 2", n)
	}
	if n := r.metric(t, "faultline_metrics_scrape_duration_seconds", map[string]string{"source": "scrape"}); n < 2 {
		t.Errorf("scrape_duration_seconds count = %v", n)
	}
}

// A target that goes down yields a target-health sample every interval,
// with consecutive failures, the error, the last success and the next
// attempt; retries back off exponentially up to the cap; when the target
// comes back, samples flow again.
func TestTargetDownBackoffAndRecovery(t *testing.T) {
	b, _ := bustest.Start(t)
	sink := watchBus(t, b)
	exp := startShopExporter(t)
	addr := exp.Addr

	cfg := testConfig()
	cfg.Interval = 300 * time.Millisecond
	cfg.Timeout = 200 * time.Millisecond
	cfg.Backoff = Backoff{Initial: 100 * time.Millisecond, Max: 800 * time.Millisecond}
	cfg.Scrape.Targets = []Target{{URL: exp.URL}}
	r := startCollector(t, b, cfg)

	sink.waitFor(t, 10*time.Second, "the target up", 1, isHealth(exp.URL, true))
	exp.Stop()
	downAt := time.Now()

	// Five failed attempts: 100+200+400+800+800ms of backoff plus the
	// attempts themselves.
	sink.waitFor(t, 15*time.Second, "five failed attempts", 1, func(s schemas.MetricSample) bool {
		return isHealth(exp.URL, false)(s) && s.Health.ConsecutiveFailures >= 5
	})
	downs := sink.match(isHealth(exp.URL, false))
	var (
		lastFailures int
		delays       []time.Duration
		repeats      int
	)
	for i, s := range downs {
		h := s.Health
		if h.Error == "" || !strings.Contains(h.Error, "scrape "+exp.URL) {
			t.Errorf("down sample %d: error %q does not name the target", i, h.Error)
		}
		if h.LastSuccess == nil || h.NextAttempt == nil {
			t.Fatalf("down sample %d lacks last_success or next_attempt: %+v", i, h)
		}
		if s.Value != 0 {
			t.Errorf("down sample %d has value %v", i, s.Value)
		}
		if i > 0 {
			// Timestamps are scheduled times: consecutive health samples of
			// a down target are at most an interval apart, two if a loaded
			// machine made the job miss a tick (which it counts).
			if gap := s.Timestamp.Sub(downs[i-1].Timestamp); gap > 2*cfg.Interval {
				t.Errorf("gap of %s between down samples %d and %d", gap, i-1, i)
			}
		}
		switch {
		case h.ConsecutiveFailures == lastFailures:
			repeats++ // a tick while backing off
		case h.ConsecutiveFailures == lastFailures+1:
			delay := h.NextAttempt.Sub(s.Timestamp)
			want := r.c.backoff(h.ConsecutiveFailures)
			if delay < want {
				t.Errorf("failure %d: next attempt %s after the attempt, want at least the backoff %s", h.ConsecutiveFailures, delay, want)
			}
			// The attempt's own duration and scheduling delay come on top.
			if delay > want+cfg.Timeout+time.Second {
				t.Errorf("failure %d: next attempt %s after the attempt, backoff is %s", h.ConsecutiveFailures, delay, want)
			}
			delays = append(delays, delay)
		default:
			t.Errorf("down sample %d: failures went from %d to %d", i, lastFailures, h.ConsecutiveFailures)
		}
		lastFailures = h.ConsecutiveFailures
	}
	t.Logf("retry delays after each failure: %v (backoff %s doubling to %s)", delays, cfg.Backoff.Initial, cfg.Backoff.Max)
	if repeats == 0 {
		t.Error("no target-health sample at an interval while backing off (backoff 800ms > interval 300ms)")
	}
	if n := r.metric(t, "faultline_metrics_targets", map[string]string{"source": "scrape", "state": "down"}); n != 1 {
		t.Errorf("targets{state=down} = %v", n)
	}
	if n := r.metric(t, "faultline_metrics_scrapes_total", map[string]string{"source": "scrape", "result": "error"}); n < 5 {
		t.Errorf("scrapes_total{result=error} = %v", n)
	}

	// The exporter comes back on its address.
	testprom.StartExporterAt(t, addr, exp.registry)
	sink.waitFor(t, 10*time.Second, "the target up again", 1, func(s schemas.MetricSample) bool {
		return isHealth(exp.URL, true)(s) && s.Timestamp.After(downAt)
	})
	sink.waitFor(t, 10*time.Second, "samples again", 1, func(s schemas.MetricSample) bool {
		return sampleIs(exp.URL, "shop_in_flight", nil)(s) && s.Timestamp.After(downAt)
	})
	if n := r.metric(t, "faultline_metrics_targets", map[string]string{"source": "scrape", "state": "up"}); n != 1 {
		t.Errorf("targets{state=up} = %v after recovery", n)
	}
}

// Bad targets fail with a clear error and a metric each; a good target
// scraped by the same collector is unaffected.
func TestBadTargetsLeaveOthersUnaffected(t *testing.T) {
	b, _ := bustest.Start(t)
	sink := watchBus(t, b)
	good := startShopExporter(t)

	serve := func(contentType string, body []byte, status int, delay time.Duration) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if delay > 0 {
				select {
				case <-time.After(delay):
				case <-req.Context().Done():
					return
				}
			}
			w.Header().Set("Content-Type", contentType)
			w.WriteHeader(status)
			_, _ = w.Write(body)
		}))
		t.Cleanup(srv.Close)
		return srv.URL + "/metrics"
	}
	var many strings.Builder
	for i := range 30 {
		many.WriteString("series_" + string(rune('a'+i%26)) + strings.Repeat("x", i/26) + " 1\n")
	}
	tests := []struct {
		name    string
		url     string
		result  string
		errText string
	}{
		{"malformed", serve(ctText, readFixture(t, "malformed.prom"), 200, 0), resultParseError, `malformed exposition: text: text format parsing error in line 3: expected float as value, got "twelve"`},
		{"over the sample limit", serve(ctText, []byte(many.String()), 200, 0), resultSampleLimit, "sample limit exceeded: 30 samples, the limit is 20"},
		{"over the body limit", serve(ctText, []byte(strings.Repeat("# padding\n", 500)), 200, 0), resultBodyLimit, "exceeds collectors.metrics.max_body_size"},
		{"HTTP 500", serve(ctText, []byte("oops"), 500, 0), resultError, "HTTP 500 Internal Server Error"},
		{"too slow", serve(ctText, []byte("x 1\n"), 200, 5*time.Second), resultError, "(timeout 150ms)"},
	}
	cfg := testConfig()
	cfg.MaxSamples = 20
	cfg.MaxBodySize = 4096
	cfg.Scrape.Targets = []Target{{URL: good.URL}}
	for _, tc := range tests {
		cfg.Scrape.Targets = append(cfg.Scrape.Targets, Target{URL: tc.url})
	}
	r := startCollector(t, b, cfg)

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := sink.waitFor(t, 10*time.Second, "a down sample", 1, isHealth(tc.url, false))
			if !strings.Contains(got[0].Health.Error, tc.errText) {
				t.Errorf("error %q does not say %q", got[0].Health.Error, tc.errText)
			}
			bustest.WaitFor(t, 5*time.Second, "scrapes_total{result="+tc.result+"}", func() bool {
				return r.metric(t, "faultline_metrics_scrapes_total", map[string]string{"source": "scrape", "result": tc.result}) > 0
			})
			if n := len(sink.match(func(s schemas.MetricSample) bool { return s.Target == tc.url && s.Kind != schemas.MetricTargetHealth })); n != 0 {
				t.Errorf("%d samples published from a failed scrape", n)
			}
		})
	}
	// The good target kept its pace meanwhile: a scrape every interval.
	start := time.Now()
	before := len(sink.match(isHealth(good.URL, true)))
	sink.waitFor(t, 5*time.Second, "the good target scraped on", before+5, isHealth(good.URL, true))
	if took := time.Since(start); took > 5*cfg.Interval+2*time.Second {
		t.Errorf("five scrapes of the good target took %s at an interval of %s", took, cfg.Interval)
	}
	if n := len(sink.match(isHealth(good.URL, false))); n != 0 {
		t.Errorf("the good target was reported down %d times", n)
	}
}
