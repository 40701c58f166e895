package starvation_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/faultline/faultline/injectors/starvation"
	"github.com/faultline/faultline/internal/config"
)

// sample.yaml is a complete configuration with every default of the
// section.
func TestSampleConfig(t *testing.T) {
	c, err := config.LoadFile("sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Injectors.ResourceStarvation, starvation.DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("sample.yaml differs from the defaults:\n got %+v\nwant %+v", got, want)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(c *starvation.Config)
		want []string // start of each error
	}{
		{"defaults", func(*starvation.Config) {}, nil},
		{"pinned image", func(c *starvation.Config) {
			c.Image = "registry.example.com/tools/stress-ng@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
		}, nil},
		{"everything set", func(c *starvation.Config) {
			c.AllowedImages = []string{"registry.example.com/tools/*"}
			c.Command = []string{"/usr/bin/stress-ng"}
			c.ImagePullPolicy = "Always"
			c.PriorityClassName = "chaos-high"
		}, nil},
		{"no image", func(c *starvation.Config) { c.Image = "" }, []string{"image: "}},
		{"image with space", func(c *starvation.Config) { c.Image = "stress ng" }, []string{"image: "}},
		{"bad glob", func(c *starvation.Config) { c.AllowedImages = []string{"reg/[x"} }, []string{"allowed_images[0]: "}},
		{"empty argument", func(c *starvation.Config) { c.Command = []string{"stress-ng", ""} }, []string{"command[1]: "}},
		{"pull policy", func(c *starvation.Config) { c.ImagePullPolicy = "Sometimes" }, []string{"image_pull_policy: "}},
		{"small overhead", func(c *starvation.Config) { c.MemoryOverhead = 1 << 20 }, []string{"memory_overhead: "}},
		{"bad cpu", func(c *starvation.Config) { c.MemoryOnlyCPU = "lots" }, []string{"memory_only_cpu: "}},
		{"tiny cpu", func(c *starvation.Config) { c.MemoryOnlyCPU = "1m" }, []string{"memory_only_cpu: "}},
		{"no slack", func(c *starvation.Config) { c.DeadlineSlack = 0 }, []string{"deadline_slack: "}},
		{"root", func(c *starvation.Config) { c.RunAsUser = 0 }, []string{"run_as_user: "}},
		{"bad priority class", func(c *starvation.Config) { c.PriorityClassName = "High_Priority" }, []string{"priority_class_name: "}},
		{"all bad", func(c *starvation.Config) {
			*c = starvation.Config{DeadlineSlack: time.Millisecond}
		}, []string{"image: ", "image_pull_policy: ", "memory_overhead: ", "memory_only_cpu: ", "deadline_slack: ", "run_as_user: "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := starvation.DefaultConfig()
			tc.edit(&c)
			errs := c.Validate()
			if len(errs) != len(tc.want) {
				t.Fatalf("errors %v, want %d", errs, len(tc.want))
			}
			for i, e := range errs {
				if !strings.HasPrefix(e.Error(), tc.want[i]) {
					t.Errorf("error %d %q, want it to start with %q", i, e, tc.want[i])
				}
			}
		})
	}
}
