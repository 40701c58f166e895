package fluent

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/faultline/faultline/bus"

	"github.com/faultline/faultline/sinks"
)

func TestConfigValidate(t *testing.T) {
	if errs := DefaultConfig().Validate(); len(errs) != 0 {
		t.Fatalf("defaults: %v", errs)
	}
	if DefaultConfig().Enabled() {
		t.Fatal("enabled without an address")
	}
	if d := DefaultConfig().Documents; !slices.Equal(d, []string{KindFinding}) {
		t.Errorf("default documents %v, want findings only", d)
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"URL instead of an address", func(c *Config) { c.Address = "tcp://fluentd:24224" }, `address: "tcp://fluentd:24224": use host:port or unix:///path`},
		{"no port", func(c *Config) { c.Address = "fluentd" }, `address: "fluentd" is not host:port`},
		{"port out of range", func(c *Config) { c.Address = "fluentd:70000" }, "port \"70000\" is not 1-65535"},
		{"port not a number", func(c *Config) { c.Address = "fluentd:forward" }, `port "forward"`},
		{"no host", func(c *Config) { c.Address = ":24224" }, "has no host"},
		{"relative socket", func(c *Config) { c.Address = "unix://run/fluent.sock" }, "absolute path"},
		{"tls over a socket", func(c *Config) { c.Address, c.TLS = "unix:///run/fluent.sock", true }, "tls: TLS over a unix socket"},
		{"insecure without tls", func(c *Config) { c.TLSInsecureSkipVerify = true }, "tls_insecure_skip_verify: set only with tls"},
		{"no documents", func(c *Config) { c.Documents = nil }, "documents: must list"},
		{"unknown document", func(c *Config) { c.Documents = []string{"finding", "metric"} }, `documents[1]: "metric" is not one of`},
		{"twice", func(c *Config) { c.Documents = []string{"finding", "finding"} }, `documents[1]: "finding" is listed twice`},
		{"tag prefix with a space", func(c *Config) { c.TagPrefix = "fault line" }, `tag_prefix: "fault line"`},
		{"tag prefix ending in a dot", func(c *Config) { c.TagPrefix = "faultline." }, "tag_prefix"},
		{"tag prefix with an empty part", func(c *Config) { c.TagPrefix = "a..b" }, "tag_prefix"},
		{"delivery", func(c *Config) { c.Delivery = "at-least-once" }, `delivery: "at-least-once" is not acknowledged, written or buffered`},
		{"buffer", func(c *Config) { c.BufferLimit = 0 }, "buffer_limit: must be between 1"},
		{"batch", func(c *Config) { c.BatchSize = 0 }, "batch_size"},
		{"write timeout", func(c *Config) { c.WriteTimeout = 0 }, "write_timeout: must be a positive duration"},
		{"ack timeout", func(c *Config) { c.AckTimeout = -time.Second }, "ack_timeout"},
		{"retry wait below the client's unit", func(c *Config) { c.RetryWait = time.Microsecond }, "retry_wait: must be at least 1ms"},
		{"max retry wait below retry wait", func(c *Config) { c.MaxRetryWait = 100 * time.Millisecond }, "max_retry_wait: must not be below retry_wait"},
		{"reconnect interval", func(c *Config) { c.ReconnectInterval = time.Millisecond }, "reconnect_interval"},
		{"max retry", func(c *Config) { c.MaxRetry = 0 }, "max_retry: must be between 1 and 100"},
		{"max deliver", func(c *Config) { c.MaxDeliver = 0 }, "max_deliver"},
		{"backoff", func(c *Config) { c.Backoff = []time.Duration{time.Second, 0} }, "backoff[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Address = "127.0.0.1:24224"
			tc.mod(&c)
			errs := c.Validate()
			if len(errs) == 0 || !strings.Contains(errors.Join(errs...).Error(), tc.want) {
				t.Fatalf("errors %v, want %q", errs, tc.want)
			}
			// New refuses it the same way, naming the field.
			if _, err := New(c, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v", err)
			}
		})
	}
	for _, ok := range []string{"127.0.0.1:24224", "fluentd.logging.svc:24224", "[::1]:24224", "unix:///var/run/fluent/forward.sock"} {
		c := DefaultConfig()
		c.Address = ok
		if errs := c.Validate(); len(errs) != 0 {
			t.Errorf("%s: %v", ok, errs)
		}
	}
	if _, err := New(DefaultConfig(), Options{}); err == nil || !strings.Contains(err.Error(), "no address") {
		t.Errorf("New without an address: %v", err)
	}
}

func TestConsumers(t *testing.T) {
	c := DefaultConfig()
	c.Documents = sinks.Kinds()
	specs := Consumers("prod-eu-1", c, 100)
	got := map[string]string{}
	for _, s := range specs {
		got[s.Durable] = s.Stream + " " + strings.Join(s.FilterSubjects, ",")
		if s.MaxDeliver != c.MaxDeliver || !slices.Equal(s.Backoff, c.Backoff) {
			t.Errorf("%s: retry policy %d %v", s.Durable, s.MaxDeliver, s.Backoff)
		}
		if s.MaxAckPending < 2*c.BatchSize {
			t.Errorf("%s: max ack pending %d below two batches", s.Durable, s.MaxAckPending)
		}
		if s.AckWait <= 2*c.WriteTimeout {
			t.Errorf("%s: ack wait %s does not cover a batch waiting for the one before", s.Durable, s.AckWait)
		}
	}
	want := map[string]string{
		"fluent-prod-eu-1-audit":        bus.StreamAudit + " fl.audit.prod-eu-1",
		"fluent-prod-eu-1-kevent":       bus.StreamKubeEvent + " fl.kevent.prod-eu-1.>",
		"fluent-prod-eu-1-finding":      bus.StreamFinding + " fl.finding.prod-eu-1.>",
		"fluent-prod-eu-1-deviation":    bus.StreamDeviation + " fl.deviation.prod-eu-1.>",
		"fluent-prod-eu-1-fault_status": bus.StreamFault + " fl.fault.status.prod-eu-1.>",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("consumers\n got %v\nwant %v", got, want)
	}
	for docs, filter := range map[string]string{
		"finding":           "fl.finding.c.>",
		"deviation":         "fl.deviation.c.*",
		"experiment_report": "fl.deviation.c.*.report",
	} {
		c.Documents = []string{docs}
		specs := Consumers("c", c, 1000)
		if len(specs) != 1 || specs[0].FilterSubjects[0] != filter || specs[0].MaxAckPending != 1000 {
			t.Errorf("%s: %+v", docs, specs)
		}
	}
}
