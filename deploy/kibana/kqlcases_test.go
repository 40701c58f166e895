package kibana

import (
	"encoding/json"
	"reflect"
	"testing"
)

// fieldTypes for the translation tests.
var testTypes = map[string]string{
	"user.name": "keyword", "message": "text", "event.severity": "long",
	"@timestamp": "date", "spec.hostNetwork": "boolean",
	"kubernetes.audit.annotations.authorization_k8s_io/decision": "keyword",
}

// The translations below are what Kibana's kuery functions produce (is,
// range, and, or, not in @kbn/es-query), in both of its forms for keyword
// fields.
func TestKQLToDSL(t *testing.T) {
	for _, c := range []struct {
		kql        string
		match      string // older Kibana: match / match_phrase / query_string
		term       string // newer Kibana: term / wildcard on keyword fields ("" = as match: no keyword field)
		normalized string // kqlString of the parse ("" = not checked)
	}{
		{kql: `user.name: "alice"`,
			match: `{"bool":{"minimum_should_match":1,"should":[{"match_phrase":{"user.name":"alice"}}]}}`,
			term:  `{"bool":{"minimum_should_match":1,"should":[{"term":{"user.name":{"value":"alice"}}}]}}`},
		{kql: `user.name:alice`,
			match: `{"bool":{"minimum_should_match":1,"should":[{"match":{"user.name":"alice"}}]}}`,
			term:  `{"bool":{"minimum_should_match":1,"should":[{"term":{"user.name":{"value":"alice"}}}]}}`},
		{kql: `message: "cannot list"`,
			match: `{"bool":{"minimum_should_match":1,"should":[{"match_phrase":{"message":"cannot list"}}]}}`},
		{kql: `user.name: *`,
			match: `{"bool":{"minimum_should_match":1,"should":[{"exists":{"field":"user.name"}}]}}`},
		{kql: `user.name: system\:node\:*`,
			match: `{"bool":{"minimum_should_match":1,"should":[{"query_string":{"fields":["user.name"],"query":"system\\:node\\:*"}}]}}`,
			term:  `{"bool":{"minimum_should_match":1,"should":[{"wildcard":{"user.name":{"value":"system\\:node\\:*"}}}]}}`},
		// Kibana's escape class holds the range +-=: '-', '.', digits too.
		{kql: `user.name: kube-system.v1*`,
			match: `{"bool":{"minimum_should_match":1,"should":[{"query_string":{"fields":["user.name"],"query":"kube\\-system\\.v\\1*"}}]}}`,
			term:  `{"bool":{"minimum_should_match":1,"should":[{"wildcard":{"user.name":{"value":"kube\\-system\\.v\\1*"}}}]}}`},
		{kql: `message: "a*b"`,
			match: `{"bool":{"minimum_should_match":1,"should":[{"match_phrase":{"message":"a*b"}}]}}`},
		{kql: `event.severity >= 3`,
			match: `{"bool":{"minimum_should_match":1,"should":[{"range":{"event.severity":{"gte":"3"}}}]}}`},
		{kql: `event.severity<2`,
			match: `{"bool":{"minimum_should_match":1,"should":[{"range":{"event.severity":{"lt":"2"}}}]}}`},
		{kql: `@timestamp: "2026-11-22"`,
			match: `{"bool":{"minimum_should_match":1,"should":[{"range":{"@timestamp":{"gte":"2026-11-22","lte":"2026-11-22"}}}]}}`},
		{kql: `spec.hostNetwork: true`,
			match: `{"bool":{"minimum_should_match":1,"should":[{"match":{"spec.hostNetwork":true}}]}}`},
		{kql: `spec.hostNetwork: "true"`,
			match: `{"bool":{"minimum_should_match":1,"should":[{"match_phrase":{"spec.hostNetwork":"true"}}]}}`},
		{kql: `event.severity: 3`,
			match: `{"bool":{"minimum_should_match":1,"should":[{"match":{"event.severity":"3"}}]}}`},
		{kql: `kubernetes.audit.annotations.authorization_k8s_io/decision: "forbid"`,
			match: `{"bool":{"minimum_should_match":1,"should":[{"match_phrase":{"kubernetes.audit.annotations.authorization_k8s_io/decision":"forbid"}}]}}`,
			term:  `{"bool":{"minimum_should_match":1,"should":[{"term":{"kubernetes.audit.annotations.authorization_k8s_io/decision":{"value":"forbid"}}}]}}`},
		// A list of values is an or of field: value (a single one is not wrapped).
		{kql: `user.name: ("a" or "b")`,
			match:      `{"bool":{"minimum_should_match":1,"should":[{"bool":{"minimum_should_match":1,"should":[{"match_phrase":{"user.name":"a"}}]}},{"bool":{"minimum_should_match":1,"should":[{"match_phrase":{"user.name":"b"}}]}}]}}`,
			term:       `{"bool":{"minimum_should_match":1,"should":[{"bool":{"minimum_should_match":1,"should":[{"term":{"user.name":{"value":"a"}}}]}},{"bool":{"minimum_should_match":1,"should":[{"term":{"user.name":{"value":"b"}}}]}}]}}`,
			normalized: `("user.name": "a") or ("user.name": "b")`},
		{kql: `user.name: ("a")`,
			match: `{"bool":{"minimum_should_match":1,"should":[{"match_phrase":{"user.name":"a"}}]}}`,
			term:  `{"bool":{"minimum_should_match":1,"should":[{"term":{"user.name":{"value":"a"}}}]}}`},
		{kql: `not user.name: "a"`,
			match: `{"bool":{"must_not":{"bool":{"minimum_should_match":1,"should":[{"match_phrase":{"user.name":"a"}}]}}}}`,
			term:  `{"bool":{"must_not":{"bool":{"minimum_should_match":1,"should":[{"term":{"user.name":{"value":"a"}}}]}}}}`},
		{kql: `user.name: (not "a")`,
			match: `{"bool":{"must_not":{"bool":{"minimum_should_match":1,"should":[{"match_phrase":{"user.name":"a"}}]}}}}`,
			term:  `{"bool":{"must_not":{"bool":{"minimum_should_match":1,"should":[{"term":{"user.name":{"value":"a"}}}]}}}}`},
		// and binds tighter than or; and is a filter clause.
		{kql: `user.name: a OR user.name: b AND message: c`,
			match:      `{"bool":{"minimum_should_match":1,"should":[{"bool":{"minimum_should_match":1,"should":[{"match":{"user.name":"a"}}]}},{"bool":{"filter":[{"bool":{"minimum_should_match":1,"should":[{"match":{"user.name":"b"}}]}},{"bool":{"minimum_should_match":1,"should":[{"match":{"message":"c"}}]}}]}}]}}`,
			term:       `{"bool":{"minimum_should_match":1,"should":[{"bool":{"minimum_should_match":1,"should":[{"term":{"user.name":{"value":"a"}}}]}},{"bool":{"filter":[{"bool":{"minimum_should_match":1,"should":[{"term":{"user.name":{"value":"b"}}}]}},{"bool":{"minimum_should_match":1,"should":[{"match":{"message":"c"}}]}}]}}]}}`,
			normalized: `("user.name": a) or (("user.name": b) and ("message": c))`},
		{kql: ` ( user.name: a or user.name: b ) and not ( message: c ) `,
			normalized: `(("user.name": a) or ("user.name": b)) and (not ("message": c))`},
		{kql: `"user.name" : "x"`, normalized: `"user.name": "x"`},
		{kql: `user.name: "say \"hi\"\\"`, normalized: `"user.name": "say \"hi\"\\"`},
		{kql: `user.name: a\u0020or\u0041`, normalized: `"user.name": a\u0020orA`},
		{kql: `user.name: \and`, normalized: `"user.name": and`},
		{kql: `user.name: cannot`, normalized: `"user.name": can\u006eot`},
		{kql: ``, match: `{"match_all":{}}`},
	} {
		n, err := parseKQL(c.kql)
		if err != nil {
			t.Errorf("%q: %v", c.kql, err)
			continue
		}
		if c.normalized != "" {
			if got := kqlString(n); got != c.normalized {
				t.Errorf("%q prints as %q, want %q", c.kql, got, c.normalized)
			}
		}
		for _, m := range []struct {
			mode dslMode
			want string
		}{{dslMatch, c.match}, {dslKeywordTerm, c.term}} {
			want := m.want
			if want == "" && m.mode == dslKeywordTerm {
				want = c.match
			}
			if want == "" {
				continue
			}
			q, err := kqlToDSL(n, testTypes, m.mode)
			if err != nil {
				t.Errorf("%q (%s): %v", c.kql, m.mode, err)
				continue
			}
			got, _ := json.Marshal(q)
			if string(got) != want {
				t.Errorf("%q (%s):\n got %s\nwant %s", c.kql, m.mode, got, want)
			}
		}
	}
}

// What the subset refuses, rather than translate differently from Kibana.
func TestKQLRefused(t *testing.T) {
	for _, q := range []string{
		`alice`,                      // free text
		`"alice smith"`,              // free text
		`user.name: alice smith`,     // Kibana reads "alice smith"
		`user.name: a or`,            // Kibana reads "a or"
		`user.name: cannot and b: c`, // Kibana ends the value at "not "
		`user.*: x`,                  // wildcard field
		`user.name: { x: y }`,        // nested
		`user.name: null`,            // null
		`user.name: (a or b`,         // unbalanced
		`(user.name: a`,              // unbalanced
		`user.name: "a`,              // unterminated
		`user.name: a\x`,             // bad escape
		`user.name: a\ b`,            // bad escape (Kibana ends the value at the backslash)
		`user.name: a)`,              // stray paren
		`user.name >= 1*`,            // wildcard range
		`user.name:`,                 // no value
		`: x`,                        // no field
		`not`,                        // nothing
		`user.name: a and`,           // dangling and (Kibana reads "a and")
	} {
		if n, err := parseKQL(q); err == nil {
			t.Errorf("%q parsed as %s", q, kqlString(n))
		}
	}
}

// The parser never panics; whatever it accepts prints as a query that
// parses back to the same tree and translates to JSON.
func FuzzKQL(f *testing.F) {
	for _, q := range []string{
		`user.name: "alice"`, `a: (b or c and not d*)`, `x >= 3 and not (y: * or z: "q\"")`,
		`user.name: system\:node\:*`, `a: \and\u0041`, `"f": true`, `a: cannot`,
	} {
		f.Add(q)
	}
	for _, o := range loadObjects(f) {
		if q, ok := o.query(); ok {
			f.Add(q)
		}
	}
	f.Fuzz(func(t *testing.T, q string) {
		n, err := parseKQL(q)
		if err != nil {
			return
		}
		printed := kqlString(n)
		n2, err := parseKQL(printed)
		if err != nil {
			t.Fatalf("%q printed as %q, which does not parse: %v", q, printed, err)
		}
		if !reflect.DeepEqual(n, n2) {
			t.Fatalf("%q printed as %q, which parses differently:\n%#v\n%#v", q, printed, n, n2)
		}
		for _, m := range []dslMode{dslMatch, dslKeywordTerm} {
			d, err := kqlToDSL(n, testTypes, m)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := json.Marshal(d); err != nil {
				t.Fatal(err)
			}
		}
		for _, fld := range kqlFields(n) {
			if fld == "" {
				t.Fatalf("%q names an empty field", q)
			}
		}
	})
}
