package schemas

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// FieldError is one problem of an experiment file, at a field.
type FieldError struct {
	// Path names the field as the file spells it, e.g.
	// "steady_state[1].tolerance"; empty for the file as a whole.
	Path string
	// Line is the field's line in the file, 0 when unknown (an experiment
	// built in Go).
	Line int
	Msg  string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ExperimentError lists every problem found in an experiment.
type ExperimentError struct{ Problems []*FieldError }

func (e *ExperimentError) Error() string {
	var b strings.Builder
	b.WriteString("invalid experiment:")
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p.Error())
	}
	return b.String()
}

// Unwrap exposes the problems to errors.Is and errors.As.
func (e *ExperimentError) Unwrap() []error {
	out := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		out[i] = p
	}
	return out
}

// ParseExperiment reads an experiment file (YAML, or JSON, which is YAML),
// applies the defaults and validates it. Decoding is strict: an unknown
// field, a repeated key, a value of the wrong type, a second document or an
// alias cycle is an error. The error is an *ExperimentError listing every
// problem with its field path and line, e.g.
//
//	line 14: steady_state[1].tolerance: "<= control * x": factor is not a number: "x"
//
// (a syntax error stops at the first problem).
func ParseExperiment(data []byte) (*Experiment, error) {
	if len(data) > MaxExperimentFileSize {
		return nil, fileError(fmt.Sprintf("file is %d bytes, more than the %d an experiment may have", len(data), MaxExperimentFileSize))
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fileError("the file is empty")
		}
		msg := "YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")
		if unquotedGreater.Match(data) {
			msg += ` (a tolerance that starts with ">" must be quoted, e.g. tolerance: "> 0.5": YAML reads a bare ">" as the start of a folded block)`
		}
		return nil, fileError(msg)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fileError("more than one YAML document in the file: an experiment file holds one")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	c := &yamlConv{lines: map[string]int{}, budget: maxYAMLNodes}
	// A value with a problem converts to null, leaving the field at its
	// default, so validation can still run and report the other problems.
	v := c.convert(root, reflect.TypeFor[Experiment](), "")
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fileError("convert to JSON: " + err.Error())
	}
	e := NewExperiment()
	jd := json.NewDecoder(bytes.NewReader(raw))
	jd.DisallowUnknownFields()
	if err := jd.Decode(e); err != nil {
		return nil, fileError("decode: " + err.Error())
	}
	e.applyDerivedDefaults()
	problems := c.problems
	if err := e.Validate(); err != nil {
		var ee *ExperimentError
		if !errors.As(err, &ee) {
			return nil, err
		}
		for _, p := range ee.Problems {
			// A field that could not be read is reported once, as
			// such, not again as missing or invalid.
			if !slices.ContainsFunc(c.problems, func(d *FieldError) bool { return pathWithin(p.Path, d.Path) }) {
				p.Line = c.line(p.Path)
				problems = append(problems, p)
			}
		}
	}
	if len(problems) > 0 {
		slices.SortStableFunc(problems, func(a, b *FieldError) int { return a.Line - b.Line })
		return nil, &ExperimentError{Problems: problems}
	}
	return e, nil
}

// pathWithin reports whether path is field or inside it.
func pathWithin(path, field string) bool {
	if field == "" || path == field {
		return true
	}
	rest, ok := strings.CutPrefix(path, field)
	return ok && (rest[0] == '.' || rest[0] == '[')
}

// unquotedGreater finds a tolerance written `tolerance: > 0.5`.
var unquotedGreater = regexp.MustCompile(`(?m)^[\s-]*tolerance:\s*>`)

func fileError(msg string) *ExperimentError {
	return &ExperimentError{Problems: []*FieldError{{Msg: msg}}}
}

// maxYAMLNodes bounds the nodes visited, aliases expanded, so a file of
// nested aliases (a "billion laughs") is refused instead of expanded.
const maxYAMLNodes = 100_000

// yamlConv converts a YAML node tree into the JSON value of a Go type,
// checking field names and scalar types against the type on the way, so
// every problem is reported with its path and line.
type yamlConv struct {
	problems []*FieldError
	lines    map[string]int
	budget   int
}

func (c *yamlConv) bad(n *yaml.Node, path, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	c.problems = append(c.problems, &FieldError{Path: path, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// line is the line of path or of its nearest ancestor in the file, or 0
// when neither is there (a required top-level field that is missing).
func (c *yamlConv) line(path string) int {
	for path != "" {
		if l, ok := c.lines[path]; ok {
			return l
		}
		i := max(strings.LastIndexByte(path, '.'), strings.LastIndexByte(path, '['))
		if i < 0 {
			return 0
		}
		path = path[:i]
	}
	return 0
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

func nodeKindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!int", "!!float":
			return "the number " + n.Value
		case "!!bool":
			return n.Value
		}
		return strconv.Quote(n.Value)
	}
	return "an unsupported YAML node"
}

func (c *yamlConv) convert(n *yaml.Node, t reflect.Type, path string) any {
	if c.budget--; c.budget < 0 {
		if c.budget == -1 {
			c.bad(n, path, "the file has more than %d nodes (aliases expanded)", maxYAMLNodes)
		}
		return nil
	}
	for n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			c.bad(n, path, "alias without an anchor")
			return nil
		}
		n = n.Alias
	}
	if _, ok := c.lines[path]; !ok {
		c.lines[path] = n.Line
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		if n.Kind != yaml.ScalarNode {
			c.bad(n, path, "must be a string, not %s", nodeKindName(n))
			return nil
		}
		if err := reflect.New(t).Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			c.bad(n, path, "%v", err)
			return nil
		}
		return n.Value
	}
	switch t.Kind() {
	case reflect.Struct:
		return c.object(n, t, path)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			c.bad(n, path, "must be a mapping (key: value), not %s", nodeKindName(n))
			return nil
		}
		out := map[string]any{}
		c.pairs(n, path, func(key string, kn, vn *yaml.Node) {
			p := path + "." + key
			if !isSimpleKey(key) {
				p = path + "[" + strconv.Quote(key) + "]"
			}
			c.lines[p] = kn.Line
			out[key] = c.convert(vn, t.Elem(), p)
		})
		return out
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			c.bad(n, path, "must be a list, not %s", nodeKindName(n))
			return nil
		}
		out := make([]any, len(n.Content))
		for i, item := range n.Content {
			out[i] = c.convert(item, t.Elem(), path+"["+strconv.Itoa(i)+"]")
		}
		return out
	}
	if n.Kind != yaml.ScalarNode {
		c.bad(n, path, "must be a %s, not %s", scalarTypeName(t), nodeKindName(n))
		return nil
	}
	switch t.Kind() {
	case reflect.String:
		return n.Value
	case reflect.Bool:
		var b bool
		if n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			c.bad(n, path, "must be true or false, not %s", nodeKindName(n))
			return nil
		}
		return b
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var i int64
		if n.ShortTag() != "!!int" || n.Decode(&i) != nil || reflect.Zero(t).OverflowInt(i) {
			c.bad(n, path, "must be an integer, not %s", nodeKindName(n))
			return nil
		}
		return json.Number(strconv.FormatInt(i, 10))
	case reflect.Float32, reflect.Float64:
		var f float64
		tag := n.ShortTag()
		if tag != "!!int" && tag != "!!float" || n.Decode(&f) != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			c.bad(n, path, "must be a finite number, not %s", nodeKindName(n))
			return nil
		}
		return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
	}
	c.bad(n, path, "cannot be read into Go type %s", t)
	return nil
}

func scalarTypeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "boolean"
	case reflect.String:
		return "string"
	case reflect.Float32, reflect.Float64:
		return "number"
	}
	return "integer"
}

func isSimpleKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isLetter(k[i]) && !isDigit(k[i]) && k[i] != '-' {
			return false
		}
	}
	return true
}

// pairs calls f for every key of mapping n, refusing non-string keys,
// repeated keys and merge keys.
func (c *yamlConv) pairs(n *yaml.Node, path string, f func(key string, kn, vn *yaml.Node)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		for kn.Kind == yaml.AliasNode && kn.Alias != nil {
			kn = kn.Alias
		}
		if kn.Kind != yaml.ScalarNode {
			c.bad(kn, path, "a key must be a string, not %s", nodeKindName(kn))
			continue
		}
		if kn.ShortTag() == "!!merge" {
			c.bad(kn, path, "merge keys (<<) are not supported: write the fields out")
			continue
		}
		if first, dup := seen[kn.Value]; dup {
			c.bad(kn, joinPath(path, kn.Value), "repeated key (first on line %d)", first)
			continue
		}
		seen[kn.Value] = kn.Line
		f(kn.Value, kn, vn)
	}
}

func joinPath(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

// jsonFields maps the JSON names of t's fields to their types.
func jsonFields(t reflect.Type) (map[string]reflect.Type, []string) {
	fields := map[string]reflect.Type{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f.Type
		names = append(names, name)
	}
	return fields, names
}

func (c *yamlConv) object(n *yaml.Node, t reflect.Type, path string) any {
	if n.Kind != yaml.MappingNode {
		if path == "" {
			c.bad(n, path, "the file must be a mapping of fields, not %s", nodeKindName(n))
		} else {
			c.bad(n, path, "must be a mapping of fields, not %s", nodeKindName(n))
		}
		return nil
	}
	fields, names := jsonFields(t)
	out := map[string]any{}
	c.pairs(n, path, func(key string, kn, vn *yaml.Node) {
		p := joinPath(path, key)
		ft, ok := fields[key]
		if !ok {
			msg := "unknown field"
			if s := suggest(key, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else {
				msg += " (known: " + strings.Join(names, ", ") + ")"
			}
			c.bad(kn, p, "%s", msg)
			return
		}
		c.lines[p] = kn.Line
		out[key] = c.convert(vn, ft, p)
	})
	return out
}

// suggest returns the name closest to key if it is a likely typo.
func suggest(key string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := editDistance(strings.ToLower(key), n); d < bestD {
			best, bestD = n, d
		}
	}
	if bestD > len(key)/2 {
		return ""
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = slices.Min([]int{prev[j] + 1, cur[j-1] + 1, prev[j-1] + cost})
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
