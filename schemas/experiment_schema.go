package schemas

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// experimentSchemaName is the experiment file's schema
// (jsonschema/experiment.schema.json). It is not a Kind: experiment files
// are not bus messages.
const experimentSchemaName = "experiment"

var compiledExperiment = sync.OnceValues(func() (*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	for _, name := range []string{commonSchema, string(KindFaultCommand), experimentSchemaName} {
		raw, err := SchemaJSON(Kind(name))
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("compile experiment schema: %s: %w", name, err)
		}
		if err := c.AddResource(schemaURL(name), doc); err != nil {
			return nil, fmt.Errorf("compile experiment schema: %s: %w", name, err)
		}
	}
	s, err := c.Compile(schemaURL(experimentSchemaName))
	if err != nil {
		return nil, fmt.Errorf("compile experiment schema: %w", err)
	}
	return s, nil
})

// ExperimentSchemaJSON returns the JSON Schema of experiment files.
func ExperimentSchemaJSON() []byte {
	b, err := SchemaJSON(experimentSchemaName)
	if err != nil {
		panic(err) // embedded at build time
	}
	return b
}

// ValidateExperimentJSON checks an experiment file in its JSON form against
// the experiment JSON Schema. The schema checks the shape; ParseExperiment
// checks everything the schema does and more (see the schema's
// description), so the runner uses ParseExperiment and this is for tools.
func ValidateExperimentJSON(doc []byte) error {
	s, err := compiledExperiment()
	if err != nil {
		return fmt.Errorf("validate experiment: %w", err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("validate experiment: %w: %v", ErrSyntax, err)
	}
	if err := s.Validate(v); err != nil {
		return fmt.Errorf("validate experiment: %w", err)
	}
	return nil
}
