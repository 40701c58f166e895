package schemas

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// LabelSelector returns the group's selector as a labels.Selector
// (everything when absent), or an error naming what is invalid.
func (g GroupSelector) LabelSelector() (labels.Selector, error) {
	if g.Selector == nil {
		return labels.Everything(), nil
	}
	return metav1.LabelSelectorAsSelector(g.Selector)
}

// Matches reports whether a pod (or a sample labelled like one) in namespace
// with labels lbls belongs to the group. An invalid selector matches
// nothing.
func (g GroupSelector) Matches(namespace string, lbls map[string]string) bool {
	if namespace != g.Namespace {
		return false
	}
	sel, err := g.LabelSelector()
	if err != nil {
		return false
	}
	return sel.Matches(labels.Set(lbls))
}

// PromQLMatchers is the group as PromQL label matchers, comma separated and
// without braces, in a fixed order: namespace="<namespace>" first, then the
// selector's matchLabels by key, then its matchExpressions in order.
// Label keys are written as Prometheus' kubernetes_sd relabelling
// (labelmap) writes pod labels: every character other than a letter, digit
// or '_' becomes '_' (app.kubernetes.io/name → app_kubernetes_io_name).
//
//	key: value         → key="value"
//	key In (a, b)      → key=~"a|b"   (values regexp-quoted)
//	key NotIn (a, b)   → key!~"a|b"
//	key Exists         → key!=""
//	key DoesNotExist   → key=""
func (g GroupSelector) PromQLMatchers() string {
	ms := []string{"namespace=" + strconv.Quote(g.Namespace)}
	if g.Selector == nil {
		return ms[0]
	}
	keys := make([]string, 0, len(g.Selector.MatchLabels))
	for k := range g.Selector.MatchLabels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		ms = append(ms, PromQLLabelName(k)+"="+strconv.Quote(g.Selector.MatchLabels[k]))
	}
	for _, r := range g.Selector.MatchExpressions {
		name := PromQLLabelName(r.Key)
		alt := func() string {
			q := make([]string, len(r.Values))
			for i, v := range r.Values {
				q[i] = regexp.QuoteMeta(v)
			}
			return strconv.Quote(strings.Join(q, "|"))
		}
		switch r.Operator {
		case metav1.LabelSelectorOpIn:
			ms = append(ms, name+"=~"+alt())
		case metav1.LabelSelectorOpNotIn:
			ms = append(ms, name+"!~"+alt())
		case metav1.LabelSelectorOpExists:
			ms = append(ms, name+`!=""`)
		case metav1.LabelSelectorOpDoesNotExist:
			ms = append(ms, name+`=""`)
		}
	}
	return strings.Join(ms, ",")
}

// PromQLLabelName spells a Kubernetes label key as a Prometheus label name,
// as Prometheus' sanitising does: characters other than [A-Za-z0-9_] become
// '_', and a leading digit gets a '_' in front.
func PromQLLabelName(key string) string {
	b := []byte(key)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) > 0 && b[0] >= '0' && b[0] <= '9' {
		return "_" + string(b)
	}
	return string(b)
}

// PromQL template variables, each written {{.Name}} (spaces allowed inside
// the braces: {{ .Name }}).
var promqlVars = []string{"Matchers", "Selector", "Namespace", "Group"}

var (
	promqlVarRE  = regexp.MustCompile(`\{\{\s*\.([A-Za-z0-9_]*)\s*\}\}`)
	promqlOpenRE = regexp.MustCompile(`\{\{\s*\.`)
)

// ExpandPromQL fills a PromQL template for one group:
//
//	{{.Matchers}}   the group's label matchers, comma separated, no braces
//	                (PromQLMatchers): namespace="shop",app="web",track="canary"
//	{{.Selector}}   the same in braces: {namespace="shop",app="web",track="canary"}
//	{{.Namespace}}  the group's namespace: shop
//	{{.Group}}      the group's name: control or experimental
//
// so `sum(rate(http_requests_total{code=~"5..",{{.Matchers}}}[1m]))` and
// `http_requests_total{{.Selector}}` both work, as does
// `rate(x{{{.Matchers}}}[1m])`. It is plain substitution, not Go's
// text/template: nothing else in the query is interpreted. An unknown
// variable, or a "{{" that opens none, is an error.
func ExpandPromQL(tmpl string, group GroupName, g GroupSelector) (string, error) {
	var err error
	m := g.PromQLMatchers()
	out := promqlVarRE.ReplaceAllStringFunc(tmpl, func(v string) string {
		name := promqlVarRE.FindStringSubmatch(v)[1]
		switch name {
		case "Matchers":
			return m
		case "Selector":
			return "{" + m + "}"
		case "Namespace":
			return g.Namespace
		case "Group":
			return string(group)
		}
		if err == nil {
			err = fmt.Errorf("unknown template variable %s: the variables are {{.%s}}", v, strings.Join(promqlVars, "}}, {{."))
		}
		return v
	})
	if err != nil {
		return "", err
	}
	// What is left of a "{{." was not a variable: {{.Matchers} or {{ .x.
	if loc := promqlOpenRE.FindStringIndex(stripStrings(out)); loc != nil {
		return "", fmt.Errorf("malformed template variable at %q: write {{.Matchers}}, {{.Selector}}, {{.Namespace}} or {{.Group}}", clip(out[loc[0]:], 20))
	}
	return out, nil
}

// usesPromQLVars reports whether tmpl refers to a group variable.
func usesPromQLVars(tmpl string) bool { return promqlVarRE.MatchString(tmpl) }

// stripStrings blanks PromQL string literals ("…", '…', `…`) so that
// brackets inside them do not count; the length is kept.
func stripStrings(q string) string {
	b := []byte(q)
	var quote byte
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case quote == 0 && (c == '"' || c == '\'' || c == '`'):
			quote = c
		case quote != 0 && c == '\\' && quote != '`' && i+1 < len(b):
			b[i], b[i+1] = ' ', ' '
			i++
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			b[i] = ' '
		}
	}
	return string(b)
}

// checkPromQLShape is a cheap sanity check of an expanded query (Faultline
// has no PromQL parser; Prometheus reports the rest when the query runs):
// brackets balance outside string literals, and strings are closed.
func checkPromQLShape(q string) error {
	if strings.TrimSpace(q) == "" {
		return fmt.Errorf("query is empty")
	}
	s := stripStrings(q)
	var quote byte
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote == 0 && (c == '"' || c == '\'' || c == '`'):
			quote = c
		case quote != 0 && c == '\\' && quote != '`':
			i++
		case quote != 0 && c == quote:
			quote = 0
		}
	}
	if quote != 0 {
		return fmt.Errorf("unterminated string literal (%c)", quote)
	}
	var stack []byte
	pairs := map[byte]byte{')': '(', ']': '[', '}': '{'}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '(', '[', '{':
			stack = append(stack, c)
		case ')', ']', '}':
			if len(stack) == 0 || stack[len(stack)-1] != pairs[c] {
				return fmt.Errorf("unbalanced %q at byte %d: %q", c, i, clip(q[max(0, i-20):], 40))
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		return fmt.Errorf("unclosed %q", stack[len(stack)-1])
	}
	return nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// selectorConstraint is what one selector demands of one label key.
type selectorConstraint struct {
	mustExist    bool
	mustNotExist bool
	allowed      map[string]bool // nil: any value
	forbidden    map[string]bool
}

func (c *selectorConstraint) allow(vals ...string) {
	set := map[string]bool{}
	for _, v := range vals {
		if c.allowed == nil || c.allowed[v] {
			set[v] = true
		}
	}
	c.allowed = set
	c.mustExist = true
}

// constraints gathers the demands of a selector per key; requirements of a
// selector are ANDed.
func constraints(sel *metav1.LabelSelector) map[string]*selectorConstraint {
	out := map[string]*selectorConstraint{}
	get := func(k string) *selectorConstraint {
		if out[k] == nil {
			out[k] = &selectorConstraint{forbidden: map[string]bool{}}
		}
		return out[k]
	}
	if sel == nil {
		return out
	}
	for k, v := range sel.MatchLabels {
		get(k).allow(v)
	}
	for _, r := range sel.MatchExpressions {
		c := get(r.Key)
		switch r.Operator {
		case metav1.LabelSelectorOpIn:
			c.allow(r.Values...)
		case metav1.LabelSelectorOpNotIn:
			for _, v := range r.Values {
				c.forbidden[v] = true
			}
		case metav1.LabelSelectorOpExists:
			c.mustExist = true
		case metav1.LabelSelectorOpDoesNotExist:
			c.mustNotExist = true
		}
	}
	return out
}

// satisfiable reports whether some label state (absent, or some value)
// meets every constraint in cs on one key.
func satisfiable(cs ...*selectorConstraint) bool {
	absentOK := true
	var allowed map[string]bool
	hasAllowed := false
	for _, c := range cs {
		if c == nil {
			continue
		}
		if c.mustExist {
			absentOK = false
		}
		if c.allowed != nil {
			if !hasAllowed {
				allowed = c.allowed
				hasAllowed = true
			} else {
				both := map[string]bool{}
				for v := range allowed {
					if c.allowed[v] {
						both[v] = true
					}
				}
				allowed = both
			}
		}
	}
	mustNotExist := false
	for _, c := range cs {
		if c != nil && c.mustNotExist {
			mustNotExist = true
		}
	}
	if absentOK {
		return true
	}
	if mustNotExist {
		return false
	}
	if !hasAllowed {
		return true // infinitely many values, finitely many forbidden
	}
	for v := range allowed {
		ok := true
		for _, c := range cs {
			if c != nil && c.forbidden[v] {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// selectorsIntersect reports whether some label set matches every one of
// sels: false proves that they select disjoint pods (or, for one selector,
// that it selects none).
func selectorsIntersect(sels ...*metav1.LabelSelector) bool {
	per := make([]map[string]*selectorConstraint, len(sels))
	keys := map[string]bool{}
	for i, s := range sels {
		per[i] = constraints(s)
		for k := range per[i] {
			keys[k] = true
		}
	}
	for k := range keys {
		cs := make([]*selectorConstraint, len(per))
		for i := range per {
			cs[i] = per[i][k]
		}
		if !satisfiable(cs...) {
			return false
		}
	}
	return true
}

// narrowSelector is the experimental group's selector ANDed with a step's:
// matchLabels merged (the step may repeat a group label with the same value,
// never change it) and matchExpressions concatenated.
func narrowSelector(group, step *metav1.LabelSelector) (*metav1.LabelSelector, error) {
	out := &metav1.LabelSelector{}
	if group != nil {
		out = group.DeepCopy()
	}
	if step == nil {
		return out, nil
	}
	for _, k := range sortedKeys(step.MatchLabels) {
		v := step.MatchLabels[k]
		if gv, ok := out.MatchLabels[k]; ok && gv != v {
			return nil, fmt.Errorf("matchLabels %s=%s contradicts the experimental group's %s=%s: a step can only narrow the group", k, v, k, gv)
		}
		if out.MatchLabels == nil {
			out.MatchLabels = map[string]string{}
		}
		out.MatchLabels[k] = v
	}
	for _, r := range step.MatchExpressions {
		out.MatchExpressions = append(out.MatchExpressions, *r.DeepCopy())
	}
	return out, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
