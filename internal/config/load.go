package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// EnvConfigFile names the configuration file when --config is not given.
const EnvConfigFile = "FAULTLINE_CONFIG"

// Flags binds every setting to a flag set. Values are kept as given and
// applied by Load after the file and the environment, so a flag always wins.
type Flags struct {
	fs         *pflag.FlagSet
	configPath *string
	raw        map[string]*string
}

// BindFlags adds --config and one flag per setting (plus the short aliases,
// e.g. --data-dir) to fs.
func BindFlags(fs *pflag.FlagSet) *Flags {
	def := Default()
	f := &Flags{fs: fs, raw: map[string]*string{}}
	f.configPath = fs.String("config", "", "YAML configuration file (env "+EnvConfigFile+")")
	for _, fld := range Fields() {
		if fld.YAMLOnly {
			continue
		}
		usage := fld.Doc + " (env " + fld.Env + ")"
		p := new(string)
		fs.StringVar(p, fld.Flag, fld.Get(&def), usage)
		f.raw[fld.Flag] = p
		if fld.Alias != "" {
			a := new(string)
			fs.StringVar(a, fld.Alias, fld.Get(&def), "same as --"+fld.Flag)
			f.raw[fld.Alias] = a
		}
	}
	return f
}

// Load builds the configuration: defaults, then the file (from --config or
// FAULTLINE_CONFIG), then FAULTLINE_* variables, then flags that were set;
// and validates the result.
func (f *Flags) Load(environ []string) (Config, error) {
	path := ""
	if f != nil && f.configPath != nil {
		path = *f.configPath
	}
	env := envMap(environ)
	if path == "" {
		path = env[EnvConfigFile]
	}
	cfg := Default()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config: read %s: %w", path, err)
		}
		if err := DecodeYAML(data, &cfg); err != nil {
			return cfg, fmt.Errorf("config: %s: %w", path, err)
		}
	}
	for _, fld := range Fields() {
		if fld.YAMLOnly {
			if name := envName(fld.Path); fld.index != nil && env[name] != "" {
				return cfg, fmt.Errorf("config: environment %s: %s is a %s: set it in the YAML file", name, fld.Path, fld.Type)
			}
			continue
		}
		if raw, ok := env[fld.Env]; ok {
			if err := fld.Set(&cfg, raw); err != nil {
				return cfg, fmt.Errorf("config: environment %s: %w", fld.Env, err)
			}
		}
	}
	if f != nil && f.fs != nil {
		for _, fld := range Fields() {
			if fld.YAMLOnly {
				continue
			}
			for _, name := range []string{fld.Flag, fld.Alias} {
				if name == "" {
					continue
				}
				if fl := f.fs.Lookup(name); fl != nil && fl.Changed {
					if err := fld.Set(&cfg, *f.raw[name]); err != nil {
						return cfg, fmt.Errorf("config: flag --%s: %w", name, err)
					}
				}
			}
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// LoadFile reads one configuration file over the defaults and validates it
// (no environment, no flags): for tools and for tests of sample files.
func LoadFile(path string) (Config, error) {
	cfg := Default()
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("config: read %s: %w", path, err)
	}
	if err := DecodeYAML(data, &cfg); err != nil {
		return cfg, fmt.Errorf("config: %s: %w", path, err)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("config: %s: %w", path, err)
	}
	return cfg, nil
}

// DecodeYAML reads a YAML document over cfg, refusing unknown fields and
// more than one document.
func DecodeYAML(data []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file keeps the defaults
		}
		return fmt.Errorf("decode YAML: %w", err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("decode YAML: more than one document in the file")
	}
	return nil
}

func envMap(environ []string) map[string]string {
	m := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "FAULTLINE_") {
			m[k] = v
		}
	}
	return m
}
