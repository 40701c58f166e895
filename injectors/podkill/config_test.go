package podkill_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/faultline/faultline/injectors/podkill"
	"github.com/faultline/faultline/internal/config"
)

// sample.yaml is a complete configuration with every default of the
// section.
func TestSampleConfig(t *testing.T) {
	c, err := config.LoadFile("sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Injectors.PodKill, podkill.DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("sample.yaml differs from the defaults:\n got %+v\nwant %+v", got, want)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(c *podkill.Config)
		want []string // start of each error
	}{
		{"defaults", func(*podkill.Config) {}, nil},
		{"grace 30", func(c *podkill.Config) { c.DefaultGracePeriodSeconds = 30 }, nil},
		{"negative grace", func(c *podkill.Config) { c.DefaultGracePeriodSeconds = -1 }, []string{"default_grace_period_seconds: "}},
		{"short interval", func(c *podkill.Config) { c.MinInterval = 500 * time.Millisecond }, []string{"min_interval: "}},
		{"no parallelism", func(c *podkill.Config) { c.Parallelism = 0 }, []string{"parallelism: "}},
		{"huge parallelism", func(c *podkill.Config) { c.Parallelism = 101 }, []string{"parallelism: "}},
		{"all bad", func(c *podkill.Config) { *c = podkill.Config{DefaultGracePeriodSeconds: -5} }, []string{"default_grace_period_seconds: ", "min_interval: ", "parallelism: "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := podkill.DefaultConfig()
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
