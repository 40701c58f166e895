package config

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ExampleYAML renders the defaults as a configuration file.
func ExampleYAML() (string, error) {
	out, err := yaml.Marshal(Default())
	if err != nil {
		return "", fmt.Errorf("config: render example: %w", err)
	}
	return "# Faultline configuration with every default spelled out.\n" +
		"# Generated from internal/config; see docs/configuration.md for each field.\n" + string(out), nil
}

// Markdown renders the reference of every setting: docs/configuration.md is
// generated from it, so the docs cannot drift from the code.
func Markdown() string {
	def := Default()
	var b strings.Builder
	b.WriteString(`# Configuration

<!-- Generated from internal/config by ` + "`FAULTLINE_UPDATE_DOCS=1 go test ./internal/config`" + `. Do not edit by hand. -->

Faultline reads one YAML file (` + "`--config FILE`" + ` or ` + "`FAULTLINE_CONFIG`" + `). Every field can
also be set by a flag and by an environment variable. Precedence, lowest first:
built-in defaults, the file, environment variables, flags. Unknown fields and
invalid values are refused at start with an error naming the field, and
every problem is listed at once.

Lists are comma-separated in flags and environment variables
(` + "`--bus.urls=nats://a:4222,nats://b:4222`" + `). Durations use Go syntax (` + "`500ms`, `30s`, `168h`" + `).
Sizes take units (` + "`512MiB`, `10GiB`, `1GB`" + `) or a plain number of bytes.
Lists of objects and maps (for example ` + "`collectors.metrics.scrape.targets`" + `) are
set in the YAML file only; their items' fields are listed as ` + "`list[].field`" + `.

Secrets (passwords, tokens, keys) are never given inline: every secret
setting names a file, so they do not show in process lists, shell history or
logs.

An example with the defaults is in [` + "`docs/faultline.example.yaml`" + `](faultline.example.yaml).

| YAML field | flag | environment | type | default | description |
| --- | --- | --- | --- | --- | --- |
`)
	for _, f := range Fields() {
		flag, env := "`--"+f.Flag+"`", "`"+f.Env+"`"
		if f.Alias != "" {
			flag += ", `--" + f.Alias + "`"
		}
		if f.YAMLOnly {
			flag, env = "—", "YAML only"
		}
		d := f.Get(&def)
		if d == "" {
			d = " "
		} else {
			d = "`" + d + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s |\n", f.Path, flag, env, f.Type, d, strings.ReplaceAll(f.Doc, "|", `\|`))
	}
	return b.String()
}
