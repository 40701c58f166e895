package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/bus/bustest"
	"github.com/faultline/faultline/collectors"
	"github.com/faultline/faultline/schemas"
)

const testCluster = "test"

// testConfig is a fast configuration for tests: short intervals and
// backoff.
func testConfig() Config {
	c := DefaultConfig()
	c.Enabled = true
	c.Interval = 200 * time.Millisecond
	c.Timeout = 150 * time.Millisecond
	c.Backoff = Backoff{Initial: 100 * time.Millisecond, Max: 800 * time.Millisecond}
	c.MaxSamples = 1000
	c.MaxBodySize = 1 << 20
	c.MaxConcurrent = 8
	return c
}

// received is one message read back from the bus.
type received struct {
	Subject string
	MsgID   string
	Env     *schemas.Envelope
	Sample  schemas.MetricSample
}

// busSink reads every metric sample of the test cluster from JetStream,
// checking each against the envelope profile and the metric-sample schema.
type busSink struct {
	t  testing.TB
	mu sync.Mutex
	// all, in stream order
	all []received
}

func watchBus(t testing.TB, b *bus.Bus) *busSink {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := b.JetStream().OrderedConsumer(ctx, bus.StreamMetric, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{bus.PrefixMetric + "." + testCluster + ".>"},
	})
	if err != nil {
		t.Fatalf("ordered consumer: %v", err)
	}
	s := &busSink{t: t}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		r, err := decodeReceived(m)
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			s.t.Errorf("message on %s: %v", m.Subject(), err)
			return
		}
		s.all = append(s.all, r)
	})
	if err != nil {
		t.Fatalf("consume: %v", err)
	}
	t.Cleanup(cc.Stop)
	return s
}

func decodeReceived(m jetstream.Msg) (received, error) {
	env, err := schemas.DecodeEnvelope(m.Data())
	if err != nil {
		return received{}, err
	}
	if env.Type != schemas.TypeMetric {
		return received{}, fmt.Errorf("type %q", env.Type)
	}
	if err := schemas.Validate(schemas.KindMetricSample, env.Data); err != nil {
		return received{}, err
	}
	var s schemas.MetricSample
	if err := json.Unmarshal(env.Data, &s); err != nil {
		return received{}, err
	}
	r := received{Subject: m.Subject(), MsgID: m.Headers().Get(jetstream.MsgIDHeader), Env: env, Sample: s}
	switch {
	case r.MsgID != env.ID:
		return r, fmt.Errorf("Nats-Msg-Id %q is not the envelope id %q", r.MsgID, env.ID)
	case env.ID != s.ID():
		return r, fmt.Errorf("envelope id %q is not the sample's id %q", env.ID, s.ID())
	case r.Subject != bus.MetricSubject(testCluster, s.Source):
		return r, fmt.Errorf("subject %q for source %q", r.Subject, s.Source)
	case env.Source != EventSourcePrefix+s.Source:
		return r, fmt.Errorf("envelope source %q", env.Source)
	case env.Cluster != testCluster:
		return r, fmt.Errorf("cluster %q", env.Cluster)
	}
	return r, nil
}

// match returns the samples pred accepts, in stream order.
func (s *busSink) match(pred func(schemas.MetricSample) bool) []schemas.MetricSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []schemas.MetricSample
	for _, r := range s.all {
		if pred(r.Sample) {
			out = append(out, r.Sample)
		}
	}
	return out
}

// waitFor waits until pred has accepted at least n samples and returns
// them.
func (s *busSink) waitFor(t testing.TB, timeout time.Duration, what string, n int, pred func(schemas.MetricSample) bool) []schemas.MetricSample {
	t.Helper()
	var got []schemas.MetricSample
	bustest.WaitFor(t, timeout, what, func() bool {
		got = s.match(pred)
		return len(got) >= n
	})
	return got
}

func isHealth(target string, up bool) func(schemas.MetricSample) bool {
	return func(s schemas.MetricSample) bool {
		return s.Kind == schemas.MetricTargetHealth && s.Target == target && s.Health.Up == up
	}
}

// running is a collector run by a test.
type running struct {
	c   *Collector
	reg *prometheus.Registry
}

// startCollector runs a collector until the test ends; its Run must
// return nil within 10s of the cancel.
func startCollector(t testing.TB, b *bus.Bus, cfg Config, mutate ...func(*collectors.Deps)) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	d := collectors.Deps{Bus: b, Cluster: testCluster, Log: bustest.Logger(), Metrics: reg}
	for _, m := range mutate {
		m(&d)
	}
	c, err := New(d, cfg)
	if err != nil {
		t.Fatalf("new collector: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return within 10s of the cancel")
		}
	})
	return &running{c: c, reg: reg}
}

// metric is the value of the series of a registered family with the given
// labels (a counter's value, a gauge's value or a histogram's count); 0
// when absent.
func (r *running) metric(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.Metric {
			have := map[string]string{}
			for _, l := range m.Label {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			return metricValue(m)
		}
	}
	return 0
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// newFakeQueryAPI answers /api/v1/query like Prometheus with one sample
// x = 1 when the request carries the Authorization header want, else 401.
func newFakeQueryAPI(t testing.TB, want string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if req.Header.Get("Authorization") != want || req.URL.Path != "/api/v1/query" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"status":"error","errorType":"unauthorized","error":"bad credentials"}`))
			return
		}
		ts := req.FormValue("time")
		_, _ = fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"x"},"value":[%s,"1"]}]}}`, ts)
	}))
	t.Cleanup(srv.Close)
	return srv
}
