package rules

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/faultline/faultline/analyzers/audit"
)

// TestFile is a rule test file (*.test.yaml): cases that feed audit events
// through the whole ruleset and count the findings of one rule.
type TestFile struct {
	Tests []TestCase `yaml:"tests"`
}

// TestCase is one rule test.
type TestCase struct {
	// Name describes the case; default: the rule id and the events' file.
	Name string `yaml:"name"`
	// Rule is the rule whose findings are counted.
	Rule string `yaml:"rule"`
	// Events is a file of audit events (JSON lines, EventList or array,
	// optionally gzipped), relative to the test file.
	Events string `yaml:"events"`
	// Inline holds audit events in the same formats, for hand-made cases.
	Inline string `yaml:"inline"`
	// Hits is how many findings the rule must raise.
	Hits int `yaml:"hits"`
	// Lists replace lists of the ruleset for this case (e.g.
	// allowed_registries).
	Lists map[string][]string `yaml:"lists"`
}

// TestResult is the outcome of one case.
type TestResult struct {
	File string
	Case TestCase
	Got  int
	// Err is set when the case could not run (bad file, unknown rule).
	Err error
}

// Passed tells whether the case ran and the rule fired as often as expected.
func (r TestResult) Passed() bool { return r.Err == nil && r.Got == r.Case.Hits }

func (r TestResult) String() string {
	name := r.Case.Name
	if name == "" {
		name = r.Case.Rule + " on " + r.Case.Events
	}
	switch {
	case r.Err != nil:
		return fmt.Sprintf("ERROR %s: %s: %v", r.File, name, r.Err)
	case r.Passed():
		return fmt.Sprintf("ok    %s: %s: %d hit(s)", r.File, name, r.Got)
	default:
		return fmt.Sprintf("FAIL  %s: %s: rule %s fired %d time(s), want %d", r.File, name, r.Case.Rule, r.Got, r.Case.Hits)
	}
}

// FindTestFiles lists the rule test files under dir.
func FindTestFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && IsTestFile(d.Name()) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rules: find tests in %s: %w", dir, err)
	}
	sort.Strings(out)
	return out, nil
}

// ParseTestFile decodes a test file, refusing unknown fields.
func ParseTestFile(name string, data []byte) (*TestFile, error) {
	var tf TestFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&tf); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: parse YAML: %w", name, err)
	}
	return &tf, nil
}

// RunTests runs the cases of the test files against the ruleset of opts. An
// engine is compiled once per distinct set of list overrides.
func RunTests(opts Options, files []string) ([]TestResult, error) {
	base, err := Compile(opts)
	if err != nil {
		return nil, err
	}
	engines := map[string]*Engine{"": base}
	var results []TestResult
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("rules: read test %s: %w", file, err)
		}
		tf, err := ParseTestFile(file, data)
		if err != nil {
			return nil, fmt.Errorf("rules: %w", err)
		}
		for _, tc := range tf.Tests {
			res := TestResult{File: file, Case: tc}
			key := listsKey(tc.Lists)
			e, ok := engines[key]
			if !ok {
				o := opts
				o.ReplaceLists = maps.Clone(opts.ReplaceLists)
				if o.ReplaceLists == nil {
					o.ReplaceLists = map[string][]string{}
				}
				maps.Copy(o.ReplaceLists, tc.Lists)
				if e, err = Compile(o); err != nil {
					res.Err = err
					results = append(results, res)
					continue
				}
				engines[key] = e
			}
			res.Got, res.Err = runCase(e, filepath.Dir(file), tc)
			results = append(results, res)
		}
	}
	return results, nil
}

func listsKey(m map[string][]string) string {
	if len(m) == 0 {
		return ""
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strings.Join(m[k], ","))
		b.WriteByte(';')
	}
	return b.String()
}

func runCase(shared *Engine, dir string, tc TestCase) (int, error) {
	if shared.Rule(tc.Rule) == nil {
		return 0, fmt.Errorf("no rule %q in the ruleset (disabled or misspelled)", tc.Rule)
	}
	var in io.Reader
	name := "inline"
	switch {
	case tc.Events != "" && tc.Inline != "":
		return 0, errors.New("set events or inline, not both")
	case tc.Events != "":
		name = tc.Events
		if !filepath.IsAbs(name) {
			name = filepath.Join(dir, name)
		}
		f, err := os.Open(name)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		in = f
	case tc.Inline != "":
		in = strings.NewReader(tc.Inline)
	default:
		return 0, errors.New("no events: set events or inline")
	}
	// A fresh engine state per case: windows and the stage dedupe must not
	// leak between cases.
	e := shared.fresh()
	r := audit.NewReader(in, name)
	r.Reuse()
	got := 0
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			return got, nil
		}
		var rej *audit.Reject
		if errors.As(err, &rej) {
			return got, rej
		}
		if err != nil {
			return got, err
		}
		hits, err := e.Evaluate(context.Background(), ev)
		if err != nil {
			return got, err
		}
		for _, h := range hits {
			if h.Rule.ID == tc.Rule {
				got++
			}
		}
	}
}
