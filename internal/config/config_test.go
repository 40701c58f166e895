package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestDefaultsAreValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
}

// testdata/*.good.yaml must load; testdata/*.bad.yaml must fail with an error
// naming the field given on the file's first line ("# want: text").
func TestConfigFiles(t *testing.T) {
	good, _ := filepath.Glob("testdata/*.good.yaml")
	bad, _ := filepath.Glob("testdata/*.bad.yaml")
	if len(good) == 0 || len(bad) == 0 {
		t.Fatal("no testdata")
	}
	for _, p := range good {
		t.Run(filepath.Base(p), func(t *testing.T) {
			f := BindFlags(pflag.NewFlagSet("t", pflag.ContinueOnError))
			if err := f.fs.Parse([]string{"--config", p}); err != nil {
				t.Fatal(err)
			}
			if _, err := f.Load(nil); err != nil {
				t.Fatalf("load: %v", err)
			}
		})
	}
	for _, p := range bad {
		t.Run(filepath.Base(p), func(t *testing.T) {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(data), "\n")
			want, ok := strings.CutPrefix(first, "# want: ")
			if !ok {
				t.Fatalf("%s: first line must be '# want: <error text>'", p)
			}
			f := BindFlags(pflag.NewFlagSet("t", pflag.ContinueOnError))
			if err := f.fs.Parse([]string{"--config", p}); err != nil {
				t.Fatal(err)
			}
			_, err = f.Load(nil)
			if err == nil {
				t.Fatalf("load succeeded, want error containing %q", want)
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
		})
	}
}

func TestPrecedenceFileEnvFlag(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(p, []byte("cluster: from-file\nlog:\n  level: warn\nbus:\n  max_inflight: 10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	f := BindFlags(fs)
	if err := fs.Parse([]string{"--config", p, "--bus.max-inflight", "30", "--data-dir", "/tmp/x"}); err != nil {
		t.Fatal(err)
	}
	c, err := f.Load([]string{"FAULTLINE_CLUSTER=from-env", "FAULTLINE_BUS_MAX_INFLIGHT=20", "FAULTLINE_BUS_CONSUMER_BACKOFF=1s,2s", "PATH=/bin"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster != "from-env" {
		t.Errorf("cluster = %q, want env to override file", c.Cluster)
	}
	if c.Log.Level != "warn" {
		t.Errorf("log.level = %q, want file value", c.Log.Level)
	}
	if c.Bus.MaxInflight != 30 {
		t.Errorf("max_inflight = %d, want flag to override env and file", c.Bus.MaxInflight)
	}
	if c.Bus.Embedded.DataDir != "/tmp/x" {
		t.Errorf("data dir alias not applied: %q", c.Bus.Embedded.DataDir)
	}
	if got := c.Bus.Consumer.Backoff; len(got) != 2 || got[1] != 2*time.Second {
		t.Errorf("backoff = %v", got)
	}
	if c.Bus.Streams.Audit.MaxAge != 7*24*time.Hour {
		t.Errorf("untouched default lost: %v", c.Bus.Streams.Audit.MaxAge)
	}
}

func TestBadFlagAndEnvNameTheField(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--bus.max-inflight", "many"}, nil, "flag --bus.max-inflight: bus.max_inflight: invalid integer"},
		{nil, []string{"FAULTLINE_BUS_STREAMS_AUDIT_MAX_AGE=-1h"}, "bus.streams.audit.max_age: must not be negative"},
		{nil, []string{"FAULTLINE_BUS_ACK_TIMEOUT=soon"}, "environment FAULTLINE_BUS_ACK_TIMEOUT: bus.ack_timeout: invalid duration"},
		{[]string{"--bus.urls", "http://x:4222"}, nil, "bus.urls[0]: scheme \"http\""},
		{[]string{"--log-level", "loud"}, nil, "log.level"},
		{[]string{"--bus.embedded.max-store", "lots"}, nil, "invalid size"},
	} {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		f := BindFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		_, err := f.Load(tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("args %v env %v: error %v, want it to contain %q", tc.args, tc.env, err, tc.want)
		}
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"0": 0, "512": 512, "1KiB": 1024, "10GiB": 10 << 30, "2MB": 2e6, " 3 MiB ": 3 << 20} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "1.5GiB", "-", "99999999999999999999"} {
		if _, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) succeeded", in)
		}
	}
	if s := ByteSize(10 << 30).String(); s != "10GiB" {
		t.Errorf("String = %q", s)
	}
}

// docs/configuration.md and docs/faultline.example.yaml are generated; this
// fails when they are stale.
func TestDocsCurrent(t *testing.T) {
	example, err := ExampleYAML()
	if err != nil {
		t.Fatal(err)
	}
	checkGenerated(t, filepath.Join("..", "..", "docs", "configuration.md"), Markdown())
	checkGenerated(t, filepath.Join("..", "..", "docs", "faultline.example.yaml"), example)
	// The example must itself be a valid configuration.
	var c Config
	if err := DecodeYAML([]byte(example), &c); err != nil {
		t.Fatalf("example does not decode: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("example invalid: %v", err)
	}
}

func checkGenerated(t *testing.T, path, want string) {
	t.Helper()
	if os.Getenv("FAULTLINE_UPDATE_DOCS") == "1" {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (generate with FAULTLINE_UPDATE_DOCS=1 go test ./internal/config)", err)
	}
	if string(got) != want {
		t.Errorf("%s is stale: run FAULTLINE_UPDATE_DOCS=1 go test ./internal/config", path)
	}
}

func TestFieldsHaveDocsAndUniqueNames(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range Fields() {
		if f.Doc == "" {
			t.Errorf("%s has no doc tag", f.Path)
		}
		for _, n := range []string{f.Flag, f.Alias, f.Env} {
			if n != "" && seen[n] {
				t.Errorf("duplicate name %s", n)
			}
			seen[n] = true
		}
	}
}

// Lists of objects and maps are set in the YAML file only: they get no flag,
// an environment variable for them is refused with a clear error, and the
// fields of their items are documented.
func TestYAMLOnlyFields(t *testing.T) {
	byPath := map[string]Field{}
	for _, f := range Fields() {
		byPath[f.Path] = f
	}
	for _, tc := range []struct {
		path     string
		yamlOnly bool
	}{
		{"collectors.metrics.scrape.targets", true},
		{"collectors.metrics.scrape.targets[].url", true},
		{"collectors.metrics.scrape.targets[].labels", true},
		{"collectors.metrics.promql.queries[].query", true},
		{"collectors.metrics.scrape.kubernetes_pods.namespaces", false},
		{"bus.urls", false},
	} {
		f, ok := byPath[tc.path]
		if !ok {
			t.Errorf("%s: not listed", tc.path)
			continue
		}
		if f.YAMLOnly != tc.yamlOnly {
			t.Errorf("%s: YAMLOnly = %v, want %v", tc.path, f.YAMLOnly, tc.yamlOnly)
		}
		if f.YAMLOnly && (f.Flag != "" || f.Env != "") {
			t.Errorf("%s: YAML-only field has flag %q env %q", tc.path, f.Flag, f.Env)
		}
	}

	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	f := BindFlags(fs)
	if fs.Lookup("collectors.metrics.scrape.targets") != nil {
		t.Error("a list of objects got a flag")
	}
	_, err := f.Load([]string{"FAULTLINE_COLLECTORS_METRICS_SCRAPE_TARGETS=http://x/metrics"})
	if err == nil || !strings.Contains(err.Error(), "collectors.metrics.scrape.targets is a list of objects: set it in the YAML file") {
		t.Errorf("env for a YAML-only field: error %v", err)
	}
	if err := byPath["collectors.metrics.scrape.targets"].Set(new(Config), "x"); err == nil {
		t.Error("Set on a YAML-only field succeeded")
	}

	fs = pflag.NewFlagSet("t", pflag.ContinueOnError)
	f = BindFlags(fs)
	if err := fs.Parse([]string{"--config", filepath.Join("testdata", "metrics.good.yaml")}); err != nil {
		t.Fatal(err)
	}
	c, err := f.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := byPath["collectors.metrics.scrape.targets"].Get(&c); got != "2 items" {
		t.Errorf("Get = %q, want 2 items", got)
	}
	if got := c.Collectors.Metrics.Scrape.Targets[0].Labels["job"]; got != "shop" {
		t.Errorf("labels not read from YAML: %q", got)
	}
	if !strings.Contains(Markdown(), "| `collectors.metrics.scrape.targets[].url` | — | YAML only |") {
		t.Error("Markdown does not document the items' fields as YAML only")
	}
}
