package schemas

import (
	"bytes"
	"embed"
	"fmt"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The schemas travel inside the binary so validation needs no files.
//
//go:embed jsonschema/*.schema.json
var schemaFiles embed.FS

// SchemaBaseURL is the base of every schema's $id. Nothing is fetched from
// it; it only names the documents so they can refer to each other.
const SchemaBaseURL = "https://faultline.io/schemas/"

// commonSchema holds shared definitions; it is not a Kind.
const commonSchema = "common"

// compiled holds every kind's compiled schema. Compiling is the expensive
// part, so it happens once, on first use.
var compiled = sync.OnceValues(compileSchemas)

func schemaURL(name string) string { return SchemaBaseURL + name + ".schema.json" }

func compileSchemas() (map[Kind]*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	// Formats (date-time, ipv4, uri-reference, ...) are only annotations in
	// 2020-12 unless asserted; an ECS ip or date field that does not parse
	// makes Elasticsearch refuse the document, so assert them.
	c.AssertFormat()
	names := []string{commonSchema}
	for _, k := range Kinds() {
		names = append(names, string(k))
	}
	for _, name := range names {
		raw, err := SchemaJSON(Kind(name))
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("compile schemas: %s: %w", name, err)
		}
		if err := c.AddResource(schemaURL(name), doc); err != nil {
			return nil, fmt.Errorf("compile schemas: %s: %w", name, err)
		}
	}
	out := make(map[Kind]*jsonschema.Schema, len(kinds))
	for _, k := range Kinds() {
		s, err := c.Compile(schemaURL(string(k)))
		if err != nil {
			return nil, fmt.Errorf("compile schemas: %s: %w", k, err)
		}
		out[k] = s
	}
	return out, nil
}

// SchemaJSON returns the JSON Schema document of kind as shipped.
func SchemaJSON(kind Kind) ([]byte, error) {
	b, err := schemaFiles.ReadFile("jsonschema/" + string(kind) + ".schema.json")
	if err != nil {
		return nil, fmt.Errorf("schema of %q: no such kind", kind)
	}
	return b, nil
}

// Validate checks doc, one JSON document, against the JSON Schema of kind.
// The error wraps a *jsonschema.ValidationError that lists every violation
// with its location in doc.
//
// Validation builds a generic tree of doc, so it costs about as much as
// decoding it; producers validate in tests and at trust boundaries, not on
// every message of the hot path.
func Validate(kind Kind, doc []byte) error {
	schemas, err := compiled()
	if err != nil {
		return fmt.Errorf("validate %s: %w", kind, err)
	}
	s, ok := schemas[kind]
	if !ok {
		return fmt.Errorf("validate %s: no schema for this kind", kind)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("validate %s: %w: %v", kind, ErrSyntax, err)
	}
	if err := s.Validate(v); err != nil {
		return fmt.Errorf("validate %s: %w", kind, err)
	}
	return nil
}
