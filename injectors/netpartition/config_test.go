package netpartition_test

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/faultline/faultline/injectors/netpartition"
)

// sample.yaml holds every default.
func TestSampleConfig(t *testing.T) {
	data, err := os.ReadFile("sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var got netpartition.Config
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if want := netpartition.DefaultConfig(); !reflect.DeepEqual(got, want) {
		t.Errorf("sample.yaml differs from the defaults:\n got %+v\nwant %+v", got, want)
	}
	if errs := got.Validate(); len(errs) > 0 {
		t.Errorf("sample.yaml is invalid: %v", errs)
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
