package kibana

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// A subset of KQL, the Kibana Query Language, parsed following the grammar of
// Kibana's @kbn/es-query (kuery/grammar) and translated to query DSL the way
// its kuery functions (is, range, and, or, not) do, so that the saved
// searches' queries can be run by a real Elasticsearch in the tests.
//
// The subset: field: value, field: "phrase", field: (a or b and not c),
// field: * (exists), field: prefix* (wildcards), field >= value (ranges),
// and / or / not and parentheses. Anything else is an error rather than a
// guess: free text without a field, nested queries (field: { ... }),
// wildcards in field names, null, and unquoted values that Kibana would
// read differently from how they look (spaces, a "not " inside a word).

// kqlNode is one node of a parsed query.
type kqlNode interface{ kql() }

type (
	kqlAnd struct{ Kids []kqlNode }
	kqlOr  struct{ Kids []kqlNode }
	kqlNot struct{ Kid kqlNode }
	kqlIs  struct {
		Field string
		Value kqlValue
	}
	kqlRange struct {
		Field, Op string // Op: gt, gte, lt, lte
		Value     kqlValue
	}
	kqlMatchAll struct{}
)

func (kqlAnd) kql()      {}
func (kqlOr) kql()       {}
func (kqlNot) kql()      {}
func (kqlIs) kql()       {}
func (kqlRange) kql()    {}
func (kqlMatchAll) kql() {}

// kqlValue is a literal. Parts holds the text between wildcards: one part
// for a plain value, ["", ""] for a lone * (exists).
type kqlValue struct {
	Parts  []string
	Quoted bool
	Bool   *bool // unquoted true or false
}

func (v kqlValue) wildcard() bool { return len(v.Parts) > 1 }
func (v kqlValue) exists() bool {
	return len(v.Parts) == 2 && v.Parts[0] == "" && v.Parts[1] == ""
}

// text is the value with its wildcards as *.
func (v kqlValue) text() string { return strings.Join(v.Parts, "*") }

// parseKQL parses a query of the subset.
func parseKQL(q string) (kqlNode, error) {
	p := &kqlParser{s: []rune(q)}
	p.spaces()
	if p.eof() {
		return kqlMatchAll{}, nil // Kibana: an empty query matches everything
	}
	n, err := p.orQuery()
	if err != nil {
		return nil, err
	}
	p.spaces()
	if !p.eof() {
		return nil, p.errorf("unexpected %q", string(p.s[p.i:]))
	}
	return n, nil
}

type kqlParser struct {
	s []rune
	i int
}

func (p *kqlParser) eof() bool { return p.i >= len(p.s) }

func (p *kqlParser) errorf(format string, a ...any) error {
	return fmt.Errorf("kql: at %d: %s", p.i, fmt.Sprintf(format, a...))
}

// isSpace is the grammar's Space: [ \t\r\n\u00A0].
func isSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\r' || r == '\n' || r == '\u00a0' }

// isSpecial is the grammar's SpecialCharacter.
func isSpecial(r rune) bool { return strings.ContainsRune(`\():<>"*{}`, r) }

func (p *kqlParser) spaces() {
	for !p.eof() && isSpace(p.s[p.i]) {
		p.i++
	}
}

// wordAt tells whether the keyword w (lowercase) starts at i, in any case.
func (p *kqlParser) wordAt(i int, w string) bool {
	if i+len(w) > len(p.s) {
		return false
	}
	return strings.EqualFold(string(p.s[i:i+len(w)]), w)
}

// spaceWordAt matches the grammar's Or / And: Space+ word Space+, and
// returns the index after it.
func (p *kqlParser) spaceWordAt(i int, w string) (int, bool) {
	j := i
	for j < len(p.s) && isSpace(p.s[j]) {
		j++
	}
	if j == i || !p.wordAt(j, w) {
		return i, false
	}
	k := j + len(w)
	if k >= len(p.s) || !isSpace(p.s[k]) {
		return i, false
	}
	for k < len(p.s) && isSpace(p.s[k]) {
		k++
	}
	return k, true
}

// notAt matches the grammar's Not: 'not' Space+.
func (p *kqlParser) notAt(i int) (int, bool) {
	if !p.wordAt(i, "not") {
		return i, false
	}
	k := i + 3
	if k >= len(p.s) || !isSpace(p.s[k]) {
		return i, false
	}
	for k < len(p.s) && isSpace(p.s[k]) {
		k++
	}
	return k, true
}

func (p *kqlParser) orQuery() (kqlNode, error) {
	first, err := p.andQuery()
	if err != nil {
		return nil, err
	}
	kids := []kqlNode{first}
	for {
		j, ok := p.spaceWordAt(p.i, "or")
		if !ok {
			break
		}
		p.i = j
		n, err := p.andQuery()
		if err != nil {
			return nil, err
		}
		kids = append(kids, n)
	}
	if len(kids) == 1 {
		return first, nil
	}
	return kqlOr{kids}, nil
}

func (p *kqlParser) andQuery() (kqlNode, error) {
	first, err := p.notQuery()
	if err != nil {
		return nil, err
	}
	kids := []kqlNode{first}
	for {
		j, ok := p.spaceWordAt(p.i, "and")
		if !ok {
			break
		}
		p.i = j
		n, err := p.notQuery()
		if err != nil {
			return nil, err
		}
		kids = append(kids, n)
	}
	if len(kids) == 1 {
		return first, nil
	}
	return kqlAnd{kids}, nil
}

func (p *kqlParser) notQuery() (kqlNode, error) {
	if j, ok := p.notAt(p.i); ok {
		p.i = j
		n, err := p.subQuery()
		if err != nil {
			return nil, err
		}
		return kqlNot{n}, nil
	}
	return p.subQuery()
}

func (p *kqlParser) subQuery() (kqlNode, error) {
	if !p.eof() && p.s[p.i] == '(' {
		p.i++
		p.spaces()
		n, err := p.orQuery()
		if err != nil {
			return nil, err
		}
		p.spaces()
		if p.eof() || p.s[p.i] != ')' {
			return nil, p.errorf("expected )")
		}
		p.i++
		return n, nil
	}
	return p.expression()
}

func (p *kqlParser) expression() (kqlNode, error) {
	start := p.i
	field, err := p.literal()
	if err != nil {
		return nil, err
	}
	if field.Bool != nil || field.wildcard() {
		return nil, fmt.Errorf("kql: at %d: field name %q: wildcards and true/false are not supported", start, field.text())
	}
	name := field.text()
	if name == "" {
		return nil, fmt.Errorf("kql: at %d: empty field name", start)
	}
	p.spaces()
	if p.eof() {
		return nil, fmt.Errorf("kql: at %d: %q without a field: free text search is not supported", start, name)
	}
	switch r := p.s[p.i]; r {
	case '<', '>':
		op := map[rune]string{'<': "lt", '>': "gt"}[r]
		p.i++
		if !p.eof() && p.s[p.i] == '=' {
			op += "e"
			p.i++
		}
		p.spaces()
		v, err := p.literal()
		if err != nil {
			return nil, err
		}
		if v.wildcard() || v.Bool != nil {
			return nil, p.errorf("a range needs a plain value, not %q", v.text())
		}
		return kqlRange{Field: name, Op: op, Value: v}, nil
	case ':':
		p.i++
		p.spaces()
		if !p.eof() && p.s[p.i] == '{' {
			return nil, p.errorf("nested queries are not supported")
		}
		list, err := p.listOfValues()
		if err != nil {
			return nil, err
		}
		return list(name), nil
	default:
		return nil, fmt.Errorf("kql: at %d: %q without a field: free text search is not supported", start, name)
	}
}

// valueList builds the node of a field's value list for the field.
type valueList func(field string) kqlNode

func (p *kqlParser) listOfValues() (valueList, error) {
	if !p.eof() && p.s[p.i] == '(' {
		p.i++
		p.spaces()
		l, err := p.orList()
		if err != nil {
			return nil, err
		}
		p.spaces()
		if p.eof() || p.s[p.i] != ')' {
			return nil, p.errorf("expected ) after the values")
		}
		p.i++
		return l, nil
	}
	v, err := p.literal()
	if err != nil {
		return nil, err
	}
	return func(f string) kqlNode { return kqlIs{Field: f, Value: v} }, nil
}

func (p *kqlParser) orList() (valueList, error) {
	first, err := p.andList()
	if err != nil {
		return nil, err
	}
	kids := []valueList{first}
	for {
		j, ok := p.spaceWordAt(p.i, "or")
		if !ok {
			break
		}
		p.i = j
		l, err := p.andList()
		if err != nil {
			return nil, err
		}
		kids = append(kids, l)
	}
	if len(kids) == 1 {
		return first, nil
	}
	return func(f string) kqlNode {
		n := kqlOr{}
		for _, k := range kids {
			n.Kids = append(n.Kids, k(f))
		}
		return n
	}, nil
}

func (p *kqlParser) andList() (valueList, error) {
	first, err := p.notList()
	if err != nil {
		return nil, err
	}
	kids := []valueList{first}
	for {
		j, ok := p.spaceWordAt(p.i, "and")
		if !ok {
			break
		}
		p.i = j
		l, err := p.notList()
		if err != nil {
			return nil, err
		}
		kids = append(kids, l)
	}
	if len(kids) == 1 {
		return first, nil
	}
	return func(f string) kqlNode {
		n := kqlAnd{}
		for _, k := range kids {
			n.Kids = append(n.Kids, k(f))
		}
		return n
	}, nil
}

func (p *kqlParser) notList() (valueList, error) {
	if j, ok := p.notAt(p.i); ok {
		p.i = j
		l, err := p.listOfValues()
		if err != nil {
			return nil, err
		}
		return func(f string) kqlNode { return kqlNot{l(f)} }, nil
	}
	return p.listOfValues()
}

// literal reads a quoted string or an unquoted literal (the grammar's
// Literal).
func (p *kqlParser) literal() (kqlValue, error) {
	if p.eof() {
		return kqlValue{}, p.errorf("expected a value")
	}
	if p.s[p.i] == '"' {
		return p.quoted()
	}
	return p.unquoted()
}

func (p *kqlParser) quoted() (kqlValue, error) {
	p.i++ // "
	var b strings.Builder
	for {
		if p.eof() {
			return kqlValue{}, p.errorf("unterminated quoted string")
		}
		r := p.s[p.i]
		if r == '"' {
			p.i++
			return kqlValue{Parts: []string{b.String()}, Quoted: true}, nil
		}
		if r == '\\' && p.i+1 < len(p.s) {
			if c, n, ok := p.escapedWhitespaceOrUnicode(); ok {
				b.WriteRune(c)
				p.i += n
				continue
			}
			if next := p.s[p.i+1]; next == '\\' || next == '"' {
				b.WriteRune(next)
				p.i += 2
				continue
			}
		}
		// Any other character, a lone backslash included, is itself.
		b.WriteRune(r)
		p.i++
	}
}

// escapedWhitespaceOrUnicode reads \t, \r, \n or \uXXXX at p.i.
func (p *kqlParser) escapedWhitespaceOrUnicode() (rune, int, bool) {
	switch p.s[p.i+1] {
	case 't':
		return '\t', 2, true
	case 'r':
		return '\r', 2, true
	case 'n':
		return '\n', 2, true
	case 'u':
		if p.i+6 <= len(p.s) {
			if v, err := strconv.ParseUint(string(p.s[p.i+2:p.i+6]), 16, 32); err == nil {
				return rune(v), 6, true
			}
		}
	}
	return 0, 0, false
}

func (p *kqlParser) unquoted() (kqlValue, error) {
	start := p.i
	parts := []string{""}
	var b strings.Builder
	for !p.eof() {
		r := p.s[p.i]
		if r == '\\' && p.i+1 < len(p.s) {
			if c, n, ok := p.escapedWhitespaceOrUnicode(); ok {
				b.WriteRune(c)
				p.i += n
				continue
			}
			if next := p.s[p.i+1]; isSpecial(next) {
				b.WriteRune(next)
				p.i += 2
				continue
			}
			// An escaped keyword is the keyword's text.
			if kw := p.keywordAfterBackslash(); kw != "" {
				b.WriteString(kw)
				p.i += 1 + len([]rune(kw))
				continue
			}
			return kqlValue{}, p.errorf("a backslash escapes only special characters, keywords, \\t, \\r, \\n and \\uXXXX")
		}
		if r == '*' {
			parts[len(parts)-1] = b.String()
			b.Reset()
			parts = append(parts, "")
			p.i++
			continue
		}
		// Kibana ends an unquoted literal where "not " begins, even
		// inside a word.
		if _, ok := p.notAt(p.i); ok {
			break
		}
		if isSpecial(r) || isSpace(r) {
			break
		}
		b.WriteRune(r)
		p.i++
	}
	parts[len(parts)-1] = b.String()
	if p.i == start {
		return kqlValue{}, p.errorf("expected a value")
	}
	// Kibana's unquoted literals run on over spaces up to a keyword or a
	// special character; the subset wants such values quoted.
	if j := p.i; j < len(p.s) && isSpace(p.s[j]) {
		k := j
		for k < len(p.s) && isSpace(p.s[k]) {
			k++
		}
		_, or := p.spaceWordAt(j, "or")
		_, and := p.spaceWordAt(j, "and")
		if k < len(p.s) && !or && !and && !isSpecial(p.s[k]) {
			return kqlValue{}, p.errorf("unquoted value %q followed by %q: quote values with spaces", string(p.s[start:j]), string(p.s[k:]))
		}
	}
	v := kqlValue{Parts: parts}
	if len(parts) == 1 {
		switch parts[0] {
		case "true", "false":
			t := parts[0] == "true"
			v.Bool = &t
		case "null":
			return kqlValue{}, p.errorf("null is not supported")
		}
	}
	return v, nil
}

// keywordAfterBackslash returns the keyword (as written) after the
// backslash at p.i, or "".
func (p *kqlParser) keywordAfterBackslash() string {
	for _, w := range []string{"and", "not", "or"} {
		if p.wordAt(p.i+1, w) {
			return string(p.s[p.i+1 : p.i+1+len(w)])
		}
	}
	return ""
}

// String prints a node as a query of the subset that parses back to it.
func kqlString(n kqlNode) string {
	switch n := n.(type) {
	case kqlMatchAll:
		return ""
	case kqlAnd:
		return joinKids(n.Kids, " and ")
	case kqlOr:
		return joinKids(n.Kids, " or ")
	case kqlNot:
		return "not (" + kqlString(n.Kid) + ")"
	case kqlIs:
		return quoteLiteral(n.Field) + ": " + valueString(n.Value)
	case kqlRange:
		op := map[string]string{"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[n.Op]
		return quoteLiteral(n.Field) + " " + op + " " + valueString(n.Value)
	}
	panic(fmt.Sprintf("kql: unknown node %T", n))
}

func joinKids(kids []kqlNode, sep string) string {
	s := make([]string, len(kids))
	for i, k := range kids {
		s[i] = "(" + kqlString(k) + ")"
	}
	return strings.Join(s, sep)
}

func valueString(v kqlValue) string {
	switch {
	case v.Bool != nil:
		return strconv.FormatBool(*v.Bool)
	case v.Quoted:
		r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
		return `"` + r.Replace(v.Parts[0]) + `"`
	}
	s := make([]string, len(v.Parts))
	for i, p := range v.Parts {
		s[i] = escapeUnquoted(p)
	}
	return strings.Join(s, "*")
}

// quoteLiteral prints a field name, quoted.
func quoteLiteral(s string) string {
	return valueString(kqlValue{Parts: []string{s}, Quoted: true})
}

// escapeUnquoted escapes what an unquoted literal cannot hold as is:
// special characters, white space, and "not" (which would end the
// literal; written \u006eot, since \n is a newline).
func escapeUnquoted(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case isSpecial(r):
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\n':
			b.WriteString(`\n`)
		case isSpace(r), len(s)-i >= 3 && strings.EqualFold(s[i:i+3], "not"):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
		i += n
	}
	return b.String()
}

// dslMode is which of Kibana's translations of field: value to use. Both
// are Kibana's: older 8.x releases send match / match_phrase /
// query_string; newer ones send term / wildcard for keyword fields.
type dslMode int

const (
	dslMatch dslMode = iota
	dslKeywordTerm
)

func (m dslMode) String() string {
	if m == dslKeywordTerm {
		return "term"
	}
	return "match"
}

// kqlToDSL translates a node to query DSL as Kibana does, given the
// data view's field types (Elasticsearch types, from _field_caps).
func kqlToDSL(n kqlNode, types map[string]string, mode dslMode) (map[string]any, error) {
	type obj = map[string]any
	should := func(q obj) obj { return obj{"bool": obj{"should": []any{q}, "minimum_should_match": 1}} }
	switch n := n.(type) {
	case kqlMatchAll:
		return obj{"match_all": obj{}}, nil
	case kqlAnd:
		kids := make([]any, 0, len(n.Kids))
		for _, k := range n.Kids {
			q, err := kqlToDSL(k, types, mode)
			if err != nil {
				return nil, err
			}
			kids = append(kids, q)
		}
		return obj{"bool": obj{"filter": kids}}, nil
	case kqlOr:
		kids := make([]any, 0, len(n.Kids))
		for _, k := range n.Kids {
			q, err := kqlToDSL(k, types, mode)
			if err != nil {
				return nil, err
			}
			kids = append(kids, q)
		}
		if len(kids) == 1 {
			return kids[0].(obj), nil
		}
		return obj{"bool": obj{"should": kids, "minimum_should_match": 1}}, nil
	case kqlNot:
		q, err := kqlToDSL(n.Kid, types, mode)
		if err != nil {
			return nil, err
		}
		return obj{"bool": obj{"must_not": q}}, nil
	case kqlRange:
		return should(obj{"range": obj{n.Field: obj{n.Op: n.Value.text()}}}), nil
	case kqlIs:
		typ := types[n.Field]
		keyword := typ == "keyword" && mode == dslKeywordTerm
		v := n.Value
		var value any = v.text()
		if v.Bool != nil {
			value = *v.Bool
		}
		switch {
		case v.exists():
			return should(obj{"exists": obj{"field": n.Field}}), nil
		case v.wildcard() && keyword:
			return should(obj{"wildcard": obj{n.Field: obj{"value": queryStringWildcard(v)}}}), nil
		case v.wildcard():
			return should(obj{"query_string": obj{"fields": []string{n.Field}, "query": queryStringWildcard(v)}}), nil
		case typ == "date" || typ == "date_nanos":
			return should(obj{"range": obj{n.Field: obj{"gte": value, "lte": value}}}), nil
		case keyword:
			return should(obj{"term": obj{n.Field: obj{"value": value}}}), nil
		case v.Quoted:
			return should(obj{"match_phrase": obj{n.Field: value}}), nil
		default:
			return should(obj{"match": obj{n.Field: value}}), nil
		}
	}
	return nil, errors.New("kql: unknown node")
}

// queryStringWildcard is Kibana's wildcard.toQueryStringQuery: the parts
// between wildcards escaped for query_string, joined by *. Kibana's
// character class [+-=&|><!(){}[\]^"~*?:\\/] holds the range +-= (so
// digits, '.', ',' and ';' are escaped too); escaping them is harmless in
// query_string and in a wildcard pattern, and this does the same.
func queryStringWildcard(v kqlValue) string {
	s := make([]string, len(v.Parts))
	for i, p := range v.Parts {
		var b strings.Builder
		for _, r := range p {
			if (r >= '+' && r <= '=') || strings.ContainsRune(`&|><!(){}[]^"~*?:\/`, r) {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
		s[i] = b.String()
	}
	return strings.Join(s, "*")
}

// kqlFields lists the fields a node names, in order of appearance.
func kqlFields(n kqlNode) []string {
	var out []string
	var walk func(kqlNode)
	walk = func(n kqlNode) {
		switch n := n.(type) {
		case kqlAnd:
			for _, k := range n.Kids {
				walk(k)
			}
		case kqlOr:
			for _, k := range n.Kids {
				walk(k)
			}
		case kqlNot:
			walk(n.Kid)
		case kqlIs:
			out = append(out, n.Field)
		case kqlRange:
			out = append(out, n.Field)
		}
	}
	walk(n)
	return out
}
