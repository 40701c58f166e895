package netpartition_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/faultline/faultline/injectors/netpartition"
	"github.com/faultline/faultline/internal/config"
)

// sample.yaml is a complete configuration with every default of the
// section.
func TestSampleConfig(t *testing.T) {
	c, err := config.LoadFile("sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Injectors.NetworkPartition, netpartition.DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("sample.yaml differs from the defaults:\n got %+v\nwant %+v", got, want)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(c *netpartition.Config)
		want []string // start of each error
	}{
		{"defaults", func(*netpartition.Config) {}, nil},
		{"other key", func(c *netpartition.Config) { c.LabelKey = "chaos.example.com/cut" }, nil},
		{"key without prefix", func(c *netpartition.Config) { c.LabelKey = "partition" }, nil},
		{"bad key", func(c *netpartition.Config) { c.LabelKey = "faultline.io/part ition" }, []string{"label_key: "}},
		{"empty key", func(c *netpartition.Config) { c.LabelKey = "" }, []string{"label_key: "}},
		{"no parallelism", func(c *netpartition.Config) { c.Parallelism = 0 }, []string{"parallelism: "}},
		{"all bad", func(c *netpartition.Config) { *c = netpartition.Config{} }, []string{"label_key: ", "parallelism: "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := netpartition.DefaultConfig()
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
