package auditfile_test

import (
	"testing"

	"github.com/faultline/faultline/collectors/auditfile"
	"github.com/faultline/faultline/internal/config"
)

// sample.yaml is a valid configuration holding every default.
func TestSampleConfig(t *testing.T) {
	c, err := config.LoadFile("sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got := c.Collectors.AuditFile
	want := auditfile.DefaultConfig()
	want.Enabled = true
	if got != want {
		t.Errorf("sample.yaml differs from the defaults:\n got %+v\nwant %+v", got, want)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(c *auditfile.Config)
		want string // start of the single error, "" for none
	}{
		{"defaults", func(*auditfile.Config) {}, ""},
		{"no path", func(c *auditfile.Config) { c.Path = "" }, "path: "},
		{"directory", func(c *auditfile.Config) { c.Path = "/var/log/" }, "path: "},
		{"start at middle", func(c *auditfile.Config) { c.StartAt = "middle" }, "start_at: "},
		{"no poll interval", func(c *auditfile.Config) { c.PollInterval = 0 }, "poll_interval: "},
		{"batch of zero", func(c *auditfile.Config) { c.BatchSize = 0 }, "batch_size: "},
		{"tiny lines", func(c *auditfile.Config) { c.MaxLineSize = 10 }, "max_line_size: "},
		{"event limit under the summary", func(c *auditfile.Config) { c.MaxEventSize = 1 << 10 }, "max_event_size: "},
		{"event limit over max_payload", func(c *auditfile.Config) { c.MaxEventSize = 64 << 20; c.MaxBatchBytes = 128 << 20 }, "max_event_size: "},
		{"batch bytes under the event limit", func(c *auditfile.Config) { c.MaxBatchBytes = 64 << 10 }, "max_batch_bytes: "},
		{"checkpoint key with a space", func(c *auditfile.Config) { c.CheckpointKey = "node a" }, "checkpoint_key: "},
		{"checkpoint key", func(c *auditfile.Config) { c.CheckpointKey = "audit-file.node-a" }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := auditfile.DefaultConfig()
			tc.edit(&c)
			errs := c.Validate()
			switch {
			case tc.want == "" && len(errs) > 0:
				t.Errorf("unexpected errors: %v", errs)
			case tc.want != "" && (len(errs) != 1 || len(errs[0].Error()) < len(tc.want) || errs[0].Error()[:len(tc.want)] != tc.want):
				t.Errorf("errors %v, want one starting with %q", errs, tc.want)
			}
		})
	}
}
