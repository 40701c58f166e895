package rules

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/faultline/faultline/schemas"
)

// DefaultRuleset is the ruleset name of the embedded rules.
const DefaultRuleset = "faultline-default"

//go:embed default/*.yaml
var defaultFS embed.FS

// File is one rule file as written.
type File struct {
	// Ruleset names the rules of the file in findings (rule.ruleset);
	// default: the directory's name.
	Ruleset string `yaml:"ruleset"`
	// Lists are named lists of strings the conditions read as
	// lists.<name>. A name that already exists is extended.
	Lists map[string][]string `yaml:"lists"`
	// ReplaceLists replace earlier lists of the same name.
	ReplaceLists map[string][]string `yaml:"replace_lists"`
	Rules        []RuleSpec          `yaml:"rules"`
	// Exceptions extend the exceptions of rules defined elsewhere.
	Exceptions []ExceptionExtension `yaml:"exceptions"`
	// Disabled turns rules off by id.
	Disabled []string `yaml:"disabled"`
}

// RuleSpec is one rule as written.
type RuleSpec struct {
	ID          string   `yaml:"id"`
	Name        string   `yaml:"name"`
	Description string   `yaml:"description"`
	Severity    string   `yaml:"severity"`
	MITRE       []string `yaml:"mitre"`
	// Match restricts the rule to verbs and resources; the rule is only
	// evaluated on events that match (rules are indexed by it).
	Match      Match           `yaml:"match"`
	Condition  string          `yaml:"condition"`
	Exceptions []ExceptionSpec `yaml:"exceptions"`
	Window     *WindowSpec     `yaml:"window"`
	// Output is the finding's message: text with ${expression} parts.
	Output string `yaml:"output"`
	// Replace lets a rule take the place of an earlier rule with its id.
	Replace bool `yaml:"replace"`
	// Enabled false keeps the rule but does not run it.
	Enabled *bool `yaml:"enabled"`

	file string
}

// Match lists the verbs and resources a rule can fire on. Empty lists match
// anything. A resource is "pods" (no subresource), "pods/exec", "pods/*"
// (with or without a subresource) or "*".
type Match struct {
	Verbs     []string `yaml:"verbs"`
	Resources []string `yaml:"resources"`
	// Decision is allowed (the default: requests the authorizer refused are
	// left to the rules about denials), denied (only those) or any.
	Decision string `yaml:"decision"`
	// Users (globs) restricts the rule to these authenticated users.
	Users []string `yaml:"users"`
}

// ExceptionSpec is a named list of values of a field for which the rule
// does not fire: when the field's value (or any item, for a list) matches
// one of Values (globs with '*').
type ExceptionSpec struct {
	Name   string   `yaml:"name"`
	Field  string   `yaml:"field"`
	Values []string `yaml:"values"`
}

// ExceptionExtension adds values to a rule's named exception.
type ExceptionExtension struct {
	Rule   string   `yaml:"rule"`
	Name   string   `yaml:"name"`
	Values []string `yaml:"values"`
}

// WindowSpec makes a rule fire only when, for one key, at least Count
// matching events (or Count distinct values of Distinct) occur within
// Duration, measured on the events' own timestamps.
type WindowSpec struct {
	Duration string `yaml:"duration"`
	Key      string `yaml:"key"`
	Count    int    `yaml:"count"`
	Distinct string `yaml:"distinct"`
}

// RuleError is a rule file that cannot be used: its path, the rule's id
// (empty for file-level problems) and the cause.
type RuleError struct {
	File string
	Rule string
	Err  error
}

func (e *RuleError) Error() string {
	if e.Rule == "" {
		return e.File + ": " + e.Err.Error()
	}
	return e.File + ": rule " + e.Rule + ": " + e.Err.Error()
}

func (e *RuleError) Unwrap() error { return e.Err }

// Source is where rules come from.
type Source struct {
	// Name is shown in errors (a directory path, or "embedded").
	Name string
	FS   fs.FS
	// Ruleset is the ruleset name for files that do not set one.
	Ruleset string
}

// DefaultSource is the embedded default ruleset.
func DefaultSource() Source {
	sub, _ := fs.Sub(defaultFS, "default")
	return Source{Name: "embedded:default", FS: sub, Ruleset: DefaultRuleset}
}

// DirSource is a directory of rule files (*.yaml, *.yml; files ending in
// .test.yaml are rule tests and are skipped), read recursively.
func DirSource(dir string) Source {
	return Source{Name: dir, FS: os.DirFS(dir), Ruleset: filepath.Base(filepath.Clean(dir))}
}

// IsRuleFile tells whether a file name is a rule file.
func IsRuleFile(name string) bool {
	if IsTestFile(name) {
		return false
	}
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")
}

// IsTestFile tells whether a file name is a rule test file.
func IsTestFile(name string) bool {
	return strings.HasSuffix(name, ".test.yaml") || strings.HasSuffix(name, ".test.yml")
}

// ParseFile decodes one rule file, refusing unknown fields.
func ParseFile(name string, data []byte) (*File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return &f, nil
		}
		return nil, &RuleError{File: name, Err: fmt.Errorf("parse YAML: %w", err)}
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &RuleError{File: name, Err: errors.New("parse YAML: more than one document")}
	}
	for i := range f.Rules {
		f.Rules[i].file = name
	}
	return &f, nil
}

// readSources reads every rule file of the sources, in order (files of a
// source sorted by path).
func readSources(srcs []Source) ([]*File, []string, error) {
	var files []*File
	var names []string
	for _, src := range srcs {
		var paths []string
		err := fs.WalkDir(src.FS, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && IsRuleFile(d.Name()) {
				paths = append(paths, p)
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("rules: read %s: %w", src.Name, err)
		}
		sort.Strings(paths)
		for _, p := range paths {
			data, err := fs.ReadFile(src.FS, p)
			if err != nil {
				return nil, nil, fmt.Errorf("rules: read %s: %w", src.Name, err)
			}
			name := path.Join(src.Name, p)
			if !strings.HasPrefix(src.Name, "embedded:") {
				name = filepath.Join(src.Name, filepath.FromSlash(p))
			}
			f, err := ParseFile(name, data)
			if err != nil {
				return nil, nil, err
			}
			if f.Ruleset == "" {
				f.Ruleset = src.Ruleset
			}
			files = append(files, f)
			names = append(names, name)
		}
	}
	return files, names, nil
}

// validate checks what can be checked without CEL.
func (r *RuleSpec) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !validID(r.ID) {
		bad("id %q: use lowercase letters, digits and '-'", r.ID)
	}
	if r.Name == "" {
		bad("name is empty")
	}
	if _, err := schemas.ParseSeverity(r.Severity); err != nil {
		bad("severity: %v", err)
	}
	for _, t := range r.MITRE {
		if !validTechnique(t) {
			bad("mitre: %q is not an ATT&CK technique id (T1234 or T1234.001)", t)
		}
	}
	if strings.TrimSpace(r.Condition) == "" {
		bad("condition is empty")
	}
	for _, res := range r.Match.Resources {
		if res == "" || strings.Count(res, "/") > 1 {
			bad("match.resources: %q is not resource, resource/subresource, resource/* or *", res)
		}
	}
	switch r.Match.Decision {
	case "", "allowed", "denied", "any":
	default:
		bad("match.decision: %q is not allowed, denied or any", r.Match.Decision)
	}
	seen := map[string]bool{}
	for i, e := range r.Exceptions {
		switch {
		case e.Name == "":
			bad("exceptions[%d]: name is empty", i)
		case seen[e.Name]:
			bad("exceptions[%d]: name %q used twice", i, e.Name)
		case strings.TrimSpace(e.Field) == "":
			bad("exceptions[%d] %s: field is empty", i, e.Name)
		}
		seen[e.Name] = true
	}
	if w := r.Window; w != nil {
		d, err := time.ParseDuration(w.Duration)
		switch {
		case err != nil:
			bad("window.duration: %v", err)
		case d <= 0 || d > 24*time.Hour:
			bad("window.duration: %s is not between 0 and 24h", d)
		}
		if w.Count < 2 || w.Count > 100000 {
			bad("window.count: %d is not between 2 and 100000", w.Count)
		}
		if strings.TrimSpace(w.Key) == "" {
			bad("window.key is empty")
		}
	}
	return errors.Join(errs...)
}

func validID(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func validTechnique(t string) bool {
	if len(t) != 5 && len(t) != 9 || t[0] != 'T' {
		return false
	}
	for i := 1; i < len(t); i++ {
		c := t[i]
		if i == 5 {
			if c != '.' {
				return false
			}
			continue
		}
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// merged is the rule files combined: lists, rules by id in order, and the
// extensions applied.
type merged struct {
	lists    map[string][]string
	rules    []*RuleSpec
	rulesets map[string]string // rule id -> ruleset
}

func merge(files []*File, names []string, opts Options) (*merged, error) {
	m := &merged{lists: map[string][]string{}, rulesets: map[string]string{}}
	byID := map[string]int{}
	disabled := map[string]bool{}
	for _, id := range opts.Disabled {
		disabled[id] = true
	}
	var errs []error
	for fi, f := range files {
		for _, name := range sortedKeys(f.Lists) {
			m.lists[name] = append(m.lists[name], f.Lists[name]...)
		}
		for _, name := range sortedKeys(f.ReplaceLists) {
			m.lists[name] = slices.Clone(f.ReplaceLists[name])
		}
		for i := range f.Rules {
			r := &f.Rules[i]
			if err := r.validate(); err != nil {
				errs = append(errs, &RuleError{File: names[fi], Rule: r.ID, Err: err})
				continue
			}
			if j, ok := byID[r.ID]; ok {
				if !r.Replace {
					errs = append(errs, &RuleError{File: names[fi], Rule: r.ID,
						Err: fmt.Errorf("id already defined in %s (set replace: true to take its place)", m.rules[j].file)})
					continue
				}
				m.rules[j] = r
			} else {
				byID[r.ID] = len(m.rules)
				m.rules = append(m.rules, r)
			}
			m.rulesets[r.ID] = f.Ruleset
		}
		for _, id := range f.Disabled {
			disabled[id] = true
		}
	}
	for fi, f := range files {
		for _, x := range f.Exceptions {
			j, ok := byID[x.Rule]
			if !ok {
				errs = append(errs, &RuleError{File: names[fi], Rule: x.Rule, Err: fmt.Errorf("exceptions: no rule %q", x.Rule)})
				continue
			}
			r := m.rules[j]
			k := slices.IndexFunc(r.Exceptions, func(e ExceptionSpec) bool { return e.Name == x.Name })
			if k < 0 {
				errs = append(errs, &RuleError{File: names[fi], Rule: x.Rule, Err: fmt.Errorf("exceptions: the rule has no exception %q", x.Name)})
				continue
			}
			// Copy before appending: the spec may be shared with another
			// engine built from the same files.
			exc := slices.Clone(r.Exceptions)
			exc[k].Values = append(slices.Clone(exc[k].Values), x.Values...)
			cp := *r
			cp.Exceptions = exc
			m.rules[j] = &cp
		}
	}
	for name, items := range opts.ReplaceLists {
		m.lists[name] = slices.Clone(items)
	}
	for name, items := range opts.AppendLists {
		m.lists[name] = append(slices.Clone(m.lists[name]), items...)
	}
	for id := range disabled {
		if _, ok := byID[id]; !ok && len(errs) == 0 {
			errs = append(errs, fmt.Errorf("rules: disabled rule %q does not exist", id))
		}
	}
	kept := m.rules[:0:0]
	for _, r := range m.rules {
		if disabled[r.ID] || (r.Enabled != nil && !*r.Enabled) {
			continue
		}
		kept = append(kept, r)
	}
	m.rules = kept
	return m, errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
