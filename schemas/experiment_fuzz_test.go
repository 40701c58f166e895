package schemas

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// toleranceSchema is the experiment schema's tolerance definition alone,
// to check that the schema accepts every tolerance ParseTolerance accepts.
var toleranceSchema = sync.OnceValues(func() (*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	for _, name := range []string{commonSchema, string(KindFaultCommand), experimentSchemaName} {
		raw, err := SchemaJSON(Kind(name))
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(strings.NewReader(string(raw)))
		if err != nil {
			return nil, err
		}
		if err := c.AddResource(schemaURL(name), doc); err != nil {
			return nil, err
		}
	}
	return c.Compile(schemaURL(experimentSchemaName) + "#/$defs/tolerance")
})

// toleranceSeeds are the tolerances of the experiment testdata and of the
// grammar test, to seed FuzzParseTolerance.
func toleranceSeeds(f *testing.F) []string {
	seeds := []string{
		"< 0.01", "<= 250", "in [0.9, 1.0]", "<= control * 1.2", "mann-whitney-u p=0.05",
		"experimental <= 1.2 * control", "≥ control × 0.8", "in[-1e3,+.5]", "mann-whitney-u",
		"<= control * x", "in (0, 1)", "== 1", "t-test", "  > 3  ",
	}
	for _, file := range experimentFiles(f, "") {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if _, v, ok := strings.Cut(line, "tolerance: "); ok {
				seeds = append(seeds, strings.Trim(v, `"`))
			}
		}
	}
	return seeds
}

// FuzzParseTolerance checks that ParseTolerance never panics, that what it
// accepts validates, keeps the expression, survives FormatTolerance and
// back unchanged, and is accepted by the experiment schema's pattern.
func FuzzParseTolerance(f *testing.F) {
	for _, s := range toleranceSeeds(f) {
		f.Add(s)
	}
	schema, err := toleranceSchema()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in string) {
		tol, err := ParseTolerance(in)
		if err != nil {
			if tol != (Tolerance{}) {
				t.Fatalf("%q: tolerance returned with an error", in)
			}
			return
		}
		if err := tol.Validate(); err != nil {
			t.Fatalf("%q: accepted an invalid tolerance: %v", in, err)
		}
		if tol.Expr != strings.Trim(in, " \t\r\n") {
			t.Fatalf("%q: Expr %q", in, tol.Expr)
		}
		canon := FormatTolerance(tol)
		back, err := ParseTolerance(canon)
		if err != nil {
			t.Fatalf("%q: canonical form %q does not parse: %v", in, canon, err)
		}
		back.Expr = tol.Expr
		if !reflect.DeepEqual(back, tol) {
			t.Fatalf("%q: canonical form %q parses to something else", in, canon)
		}
		if err := schema.Validate(in); err != nil {
			t.Fatalf("%q: ParseTolerance accepts it, the experiment schema does not: %v", in, err)
		}
	})
}

// FuzzParseExperiment checks that ParseExperiment never panics, fails only
// with an *ExperimentError, and that what it accepts validates, satisfies
// the experiment schema in its JSON form, parses back from that form to the
// same experiment, and makes valid fault commands.
func FuzzParseExperiment(f *testing.F) {
	for _, file := range experimentFiles(f, "") {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		e, err := ParseExperiment(in)
		if err != nil {
			var ee *ExperimentError
			if !errors.As(err, &ee) || len(ee.Problems) == 0 {
				t.Fatalf("error of an unexpected kind: %v", err)
			}
			if e != nil {
				t.Fatal("experiment returned with an error")
			}
			return
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("accepted an invalid experiment: %v", err)
		}
		doc, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		if err := ValidateExperimentJSON(doc); err != nil {
			t.Fatalf("ParseExperiment accepts it, the experiment schema does not: %v\n%s", err, doc)
		}
		again, err := ParseExperiment(doc)
		if err != nil {
			t.Fatalf("the JSON form does not parse: %v\n%s", err, doc)
		}
		sameExperiment(t, e, again)
		at := time.Unix(1_750_000_000, 0)
		for i := range e.Method {
			cmd, err := e.Command(i, "cmd", e.RunID(at), at)
			if err != nil {
				t.Fatalf("method[%d]: %v", i, err)
			}
			cmd.Issuer = "fuzz"
			raw, _ := json.Marshal(cmd)
			if err := Validate(KindFaultCommand, raw); err != nil {
				t.Fatalf("method[%d]: invalid command: %v", i, err)
			}
		}
	})
}
