package podkill_test

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/faultline/faultline/injectors/podkill"
)

// sample.yaml holds every default.
func TestSampleConfig(t *testing.T) {
	data, err := os.ReadFile("sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var got podkill.Config
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if want := podkill.DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("sample.yaml differs from the defaults:\n got %+v\nwant %+v", got, want)
	}
	if errs := got.Validate(); len(errs) > 0 {
		t.Errorf("sample.yaml is invalid: %v", errs)
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
