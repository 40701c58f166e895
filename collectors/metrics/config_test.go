package metrics

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/faultline/faultline/schemas"
)

func TestDefaultConfigValid(t *testing.T) {
	if errs := DefaultConfig().Validate(); len(errs) > 0 {
		t.Fatalf("defaults invalid: %v", errs)
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("t"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name string
		edit func(*Config)
		want []string // each must appear in one error; none means valid
	}{
		{"defaults", func(*Config) {}, nil},
		{"a static target", func(c *Config) {
			c.Enabled = true
			c.Scrape.Targets = []Target{{URL: "http://127.0.0.1:8080/metrics", Labels: map[string]string{"job": "shop"}, BearerTokenFile: token}}
		}, nil},
		{"enabled with nothing to do", func(c *Config) { c.Enabled = true }, []string{"enabled: the metrics collector is enabled but has nothing to do"}},
		{"zero interval", func(c *Config) { c.Interval = 0 }, []string{"interval: must be a positive duration"}},
		{"timeout over interval", func(c *Config) { c.Timeout = time.Minute }, []string{"timeout: 1m0s is longer than interval 15s"}},
		{"no sample cap", func(c *Config) { c.MaxSamples = 0 }, []string{"max_samples: must be at least 1"}},
		{"tiny body cap", func(c *Config) { c.MaxBodySize = 10 }, []string{"max_body_size: must be at least 1KiB"}},
		{"no slots", func(c *Config) { c.MaxConcurrent = 0 }, []string{"max_concurrent: must be between 1 and 10000"}},
		{"backoff max below initial", func(c *Config) { c.Backoff.Max = time.Millisecond }, []string{"backoff.max: 1ms is shorter than backoff.initial 1s"}},
		{"source with a dot", func(c *Config) { c.Scrape.Source = "a.b" }, []string{`scrape.source: "a.b" is not a valid source name`}},
		{"same source twice", func(c *Config) { c.PromQL.Source = "scrape" }, []string{`promql.source: "scrape" is also scrape.source`}},
		{"target URL problems", func(c *Config) {
			c.Scrape.Targets = []Target{
				{URL: "ftp://x/metrics"},
				{URL: "http:///metrics"},
				{URL: "http://user:pw@x/metrics"},
				{URL: "http://x:99999/metrics"},
				{URL: "http://x/metrics"},
				{URL: "http://x/metrics"},
			}
		}, []string{
			`scrape.targets[0].url: scheme "ftp"`,
			`scrape.targets[1].url: "http:///metrics" has no host`,
			"scrape.targets[2].url: credentials in the URL are not allowed",
			`scrape.targets[3].url: port "99999"`,
			`scrape.targets[5].url: "http://x/metrics" is already scrape.targets[4]`,
		}},
		{"target fields", func(c *Config) {
			c.Scrape.Targets = []Target{{
				URL: "http://x/metrics", Interval: time.Second, Timeout: 2 * time.Second, Format: "json",
				CAFile: missing, Labels: map[string]string{"__name__": "x", "bad-label": "y", "ok": "z"},
			}}
		}, []string{
			"scrape.targets[0].timeout: 2s is longer than the interval 1s",
			`scrape.targets[0].format: "json" is not one of`,
			"scrape.targets[0].ca_file: cannot read",
			`scrape.targets[0].labels: "__name__" is not a label name`,
			`scrape.targets[0].labels: "bad-label" is not a label name`,
		}},
		{"short target interval cuts the default timeout", func(c *Config) {
			c.Scrape.Targets = []Target{{URL: "http://x/metrics", Interval: time.Second}}
		}, nil},
		{"pods", func(c *Config) {
			c.Scrape.Pods = Pods{Enabled: true, Namespaces: []string{"shop", "Bad_NS"}, LabelSelector: "app in (", Format: "auto", Interval: -time.Second}
		}, []string{
			`scrape.kubernetes_pods.namespaces[1]: "Bad_NS" is not a namespace name`,
			"scrape.kubernetes_pods.label_selector:",
			"scrape.kubernetes_pods.interval: must not be negative",
		}},
		{"queries without a URL", func(c *Config) {
			c.PromQL.Queries = []Query{{Name: "a", Query: "up"}}
		}, []string{"promql.url: must be set when promql.queries lists queries"}},
		{"query fields", func(c *Config) {
			c.PromQL.URL = "http://prom:9090"
			c.PromQL.Queries = []Query{{Name: "a", Query: "up"}, {Name: "a", Query: ""}, {Name: "1x", Query: "up"}}
		}, []string{
			`promql.queries[1].name: "a" is already promql.queries[0]`,
			"promql.queries[1].query: must not be empty",
			`promql.queries[2].name: "1x" is not a metric name`,
		}},
		{"two auth methods", func(c *Config) {
			c.PromQL.URL = "https://prom:9090"
			c.PromQL.BearerTokenFile = token
			c.PromQL.Username = "u"
			c.PromQL.PasswordFile = token
		}, []string{"promql: bearer_token_file and password_file are both set"}},
		{"password without user", func(c *Config) {
			c.PromQL.PasswordFile = token
		}, []string{"promql.username: password_file is set but username is empty"}},
		{"user without password", func(c *Config) {
			c.PromQL.Username = "u"
		}, []string{"promql.password_file: username is set but password_file is empty"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			errs := c.Validate()
			if len(tc.want) == 0 {
				if len(errs) > 0 {
					t.Fatalf("unexpected errors: %v", errs)
				}
				return
			}
			if len(errs) != len(tc.want) {
				t.Errorf("%d errors, want %d: %v", len(errs), len(tc.want), errs)
			}
			for _, w := range tc.want {
				found := false
				for _, e := range errs {
					if strings.Contains(e.Error(), w) {
						found = true
					}
				}
				if !found {
					t.Errorf("no error contains %q; got %v", w, errs)
				}
			}
		})
	}
}

func TestSchedule(t *testing.T) {
	c := DefaultConfig() // 15s, 10s
	for _, tc := range []struct {
		interval, timeout, wantInterval, wantTimeout time.Duration
	}{
		{0, 0, 15 * time.Second, 10 * time.Second},
		{time.Second, 0, time.Second, time.Second},
		{time.Minute, 0, time.Minute, 10 * time.Second},
		{time.Minute, 30 * time.Second, time.Minute, 30 * time.Second},
	} {
		iv, to := c.schedule(tc.interval, tc.timeout)
		if iv != tc.wantInterval || to != tc.wantTimeout {
			t.Errorf("schedule(%s, %s) = %s, %s; want %s, %s", tc.interval, tc.timeout, iv, to, tc.wantInterval, tc.wantTimeout)
		}
	}
}

func TestBackoffAndTicks(t *testing.T) {
	c := &Collector{cfg: DefaultConfig()} // 1s doubling to 2m
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 7: 64 * time.Second, 8: 2 * time.Minute, 100: 2 * time.Minute} {
		if got := c.backoff(n); got != want {
			t.Errorf("backoff(%d) = %s, want %s", n, got, want)
		}
	}
	now := time.Date(2025, 6, 3, 10, 40, 7, 0, time.UTC)
	first := firstTick(now, "a", 15*time.Second)
	if !first.After(now) || first.Sub(now) > 15*time.Second {
		t.Errorf("first tick %v not within one interval after %v", first, now)
	}
	if again := firstTick(now, "a", 15*time.Second); !again.Equal(first) {
		t.Error("first tick is not stable for a key")
	}
	for _, tc := range []struct {
		now  time.Duration // after first
		want time.Duration
	}{{-time.Second, 0}, {0, 15 * time.Second}, {time.Second, 15 * time.Second}, {31 * time.Second, 45 * time.Second}} {
		if got := nextAfter(first, 15*time.Second, first.Add(tc.now)); !got.Equal(first.Add(tc.want)) {
			t.Errorf("nextAfter(first+%s) = first+%s, want first+%s", tc.now, got.Sub(first), tc.want)
		}
	}
}

// A job that finds every scrape slot busy until its next tick skips that
// scrape with a clear error; with a slot free it runs.
func TestCollectBoundedSkipsWithoutSlot(t *testing.T) {
	m, err := newCollectorMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &Collector{cfg: DefaultConfig(), metrics: m, slots: make(chan struct{}, 1)}
	ran := 0
	j := &job{source: "scrape", timeout: time.Second, collect: func(context.Context, time.Time) ([]schemas.MetricSample, error) {
		ran++
		return nil, nil
	}}
	c.slots <- struct{}{} // another scrape holds the only slot
	_, err = c.collectBounded(context.Background(), j, time.Now(), time.Now().Add(50*time.Millisecond))
	if resultOf(err) != resultSkipped || !strings.Contains(err.Error(), "all 1 slots of collectors.metrics.max_concurrent busy") {
		t.Fatalf("error %v (result %s), want skipped", err, resultOf(err))
	}
	if ran != 0 {
		t.Fatal("collect ran without a slot")
	}
	<-c.slots
	if _, err := c.collectBounded(context.Background(), j, time.Now(), time.Now().Add(50*time.Millisecond)); err != nil || ran != 1 {
		t.Fatalf("with a free slot: error %v, ran %d", err, ran)
	}
	if len(c.slots) != 0 {
		t.Error("slot not released")
	}
}
