package rules

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// docs/rules.md has two generated parts, the catalogue and the variables,
// between markers; this fails when they are stale. Regenerate with
//
//	FAULTLINE_UPDATE_DOCS=1 go test ./analyzers/rules -run TestRulesDocCurrent
func TestRulesDocCurrent(t *testing.T) {
	const path = "../../docs/rules.md"
	e, err := Compile(Options{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	doc = replaceBetween(t, doc, "catalogue", catalogueMarkdown(e))
	doc = replaceBetween(t, doc, "variables", variablesMarkdown())
	doc = replaceBetween(t, doc, "lists", listsMarkdown(e))
	if os.Getenv("FAULTLINE_UPDATE_DOCS") == "1" {
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if doc != string(data) {
		t.Errorf("%s is stale: run FAULTLINE_UPDATE_DOCS=1 go test ./analyzers/rules -run TestRulesDocCurrent", path)
	}
}

func replaceBetween(t *testing.T, doc, name, body string) string {
	begin, end := "<!-- "+name+":begin -->\n", "<!-- "+name+":end -->"
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatalf("docs/rules.md has no %s markers", name)
	}
	return doc[:i+len(begin)] + body + doc[j:]
}

var listRef = regexp.MustCompile(`lists\.([a-z_]+)`)

func catalogueMarkdown(e *Engine) string {
	var b strings.Builder
	b.WriteString("| id | severity | ATT&CK | what and why | tune with |\n| --- | --- | --- | --- | --- |\n")
	for _, r := range e.Rules() {
		var tune []string
		for _, x := range r.exceptions {
			tune = append(tune, "exception `"+x.name+"`")
		}
		seen := map[string]bool{}
		spec := specOf(r.ID)
		for _, m := range listRef.FindAllStringSubmatch(spec.Condition+" "+r.Description, -1) {
			if !seen[m[1]] {
				seen[m[1]] = true
				tune = append(tune, "list `"+m[1]+"`")
			}
		}
		if r.window != nil {
			tune = append(tune, fmt.Sprintf("window (%d in %s)", r.window.count, r.window.dur))
		}
		var mitre []string
		for _, m := range r.MITRE {
			if n := TechniqueName(m); n != "" {
				mitre = append(mitre, m+" "+n)
			} else {
				mitre = append(mitre, m)
			}
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | **%s.** %s | %s |\n", r.ID, r.Severity, strings.Join(mitre, "; "),
			r.Name, strings.ReplaceAll(r.Description, "|", `\|`), strings.Join(tune, ", "))
	}
	return b.String()
}

func specOf(id string) RuleSpec {
	files, names, _ := readSources([]Source{DefaultSource()})
	m, _ := merge(files, names, Options{})
	for _, r := range m.rules {
		if r.ID == id {
			return *r
		}
	}
	return RuleSpec{}
}

func variablesMarkdown() string {
	var b strings.Builder
	b.WriteString("| variable | type | what |\n| --- | --- | --- |\n")
	for _, v := range variables {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", v.name, v.typ, strings.ReplaceAll(v.doc, "|", `\|`))
	}
	return b.String()
}

func listsMarkdown(e *Engine) string {
	var b strings.Builder
	b.WriteString("| list | default items |\n| --- | --- |\n")
	names := make([]string, 0, len(e.Lists()))
	for n := range e.Lists() {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		items := e.Lists()[n]
		shown := make([]string, 0, len(items))
		for i, it := range items {
			if i == 8 {
				shown = append(shown, fmt.Sprintf("… (%d in all)", len(items)))
				break
			}
			shown = append(shown, "`"+it+"`")
		}
		if len(shown) == 0 {
			shown = []string{"(empty)"}
		}
		fmt.Fprintf(&b, "| `%s` | %s |\n", n, strings.Join(shown, ", "))
	}
	return b.String()
}
