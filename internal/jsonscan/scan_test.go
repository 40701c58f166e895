package jsonscan

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestSkipAgreesWithEncodingJSON(t *testing.T) {
	deep := func(n int, open, close string) string { return strings.Repeat(open, n) + strings.Repeat(close, n) }
	tests := []struct {
		name, in string
	}{
		{"empty", ""},
		{"space", " \t\r\n"},
		{"object", `{"a":1,"b":[true,false,null],"c":{"d":"e"}}`},
		{"spaced", " { \"a\" : [ 1 , 2 ] , \"b\" : { } , \"c\" : [ ] } "},
		{"empty containers", `[{},[],{"":[]}]`},
		{"strings", `["", "a", "\"\\\/\b\f\n\r\t", "\u00e9\uD83D\uDE00", "long string of more than eight bytes with an \"escape\" in it"]`},
		{"utf-8 and invalid utf-8", "[\"é😀\", \"\xff\xfe\"]"},
		{"numbers", `[0, -0, 1, -1, 1.5, 1e10, 1E+10, 1e-10, -0.0e0, 123456789012345678901234567890]`},
		{"bad numbers", `[01]`},
		{"bad number dot", `[1.]`},
		{"bad number exp", `[1e]`},
		{"minus alone", `[-]`},
		{"plus", `[+1]`},
		{"control char", "[\"a\x01b\"]"},
		{"control char late", "[\"abcdefghijklmnopq\x1fr\"]"},
		{"bad escape", `["\x"]`},
		{"short unicode escape", `["\u12"]`},
		{"bad unicode escape", `["\u12g4"]`},
		{"unterminated string", `["abc`},
		{"unterminated after escape", `["abc\`},
		{"unterminated object", `{"a":1`},
		{"missing colon", `{"a" 1}`},
		{"missing value", `{"a":}`},
		{"trailing comma", `[1,]`},
		{"trailing comma object", `{"a":1,}`},
		{"mismatched", `[1}`},
		{"key not string", `{1:2}`},
		{"bad literal", `[tru]`},
		{"literal prefix", `[nul`},
		{"two values", `1 2`},
		{"max depth", deep(MaxDepth, "[", "]")},
		{"too deep", deep(MaxDepth+1, "[", "]")},
		{"too deep objects", strings.Repeat(`{"a":`, MaxDepth+1) + "1" + strings.Repeat("}", MaxDepth+1)},
		{"deep objects", strings.Repeat(`{"a":`, MaxDepth) + "1" + strings.Repeat("}", MaxDepth)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkAgainstStdlib(t, []byte(tc.in))
		})
	}
}

// checkAgainstStdlib: Skip accepts exactly what json.Valid accepts;
// SkipValid and Skip agree on valid input; Value decodes what
// encoding/json decodes.
func checkAgainstStdlib(t *testing.T, in []byte) {
	t.Helper()
	end, err := Skip(in, 0, 0)
	if err == nil {
		err = Trailing(in, end)
	}
	valid := json.Valid(in)
	if (err == nil) != valid {
		t.Fatalf("Skip: %v, json.Valid: %v, on %.80q", err, valid, in)
	}
	if err != nil {
		if !errors.Is(err, ErrSyntax) {
			t.Fatalf("error %v does not wrap ErrSyntax", err)
		}
		return
	}
	if got := SkipValid(in, 0); got != end {
		t.Fatalf("SkipValid ends at %d, Skip at %d, on %.80q", got, end, in)
	}
	var want any
	werr := json.Unmarshal(in, &want)
	for _, view := range []bool{false, true} {
		got, vend, gerr := Value(in, 0, view)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("Value: %v, encoding/json: %v, on %.80q", gerr, werr, in)
		}
		if gerr == nil && (vend != end || !reflect.DeepEqual(got, want)) {
			t.Fatalf("Value = %#v (end %d), encoding/json %#v (end %d)", got, vend, want, end)
		}
	}
}

func TestUnquoteAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range []string{
		`""`, `"plain ascii"`, `"\"\\\/\b\f\n\r\t"`, `"\u00e9\u2603"`, `"\ud83d\ude00"`, `"\ud83d"`, `"\ud83dx"`, `"\ude00\ud83d"`,
		`"\ud83d\u0041"`, "\"\xff\"", "\"a\xffb\xfe\xfdc\"", "\"\xed\xa0\x80\"", `"é"`, "\"8 bytes!é\\n\"",
	} {
		var want string
		if err := json.Unmarshal([]byte(s), &want); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		_, escaped, err := String([]byte(s), 0)
		if err != nil {
			t.Fatalf("String(%q): %v", s, err)
		}
		viewOf := func(tok []byte) (string, bool) { return UnquoteViewOf(tok, escaped) }
		for _, un := range []func([]byte) (string, bool){Unquote, UnquoteView, viewOf} {
			got, ok := un([]byte(s))
			if !ok || got != want {
				t.Errorf("unquote(%q) = %q, %v; encoding/json %q", s, got, ok, want)
			}
		}
	}
	for _, bad := range []string{``, `"`, `x`, `"\"`, `"\q"`} {
		if _, ok := Unquote([]byte(bad)); ok {
			t.Errorf("Unquote(%q) ok", bad)
		}
	}
	// A plain string is a view, an escaped one a copy.
	b := []byte(`"view"`)
	v, _ := UnquoteView(b)
	b[1] = 'V'
	if v != "View" {
		t.Errorf("UnquoteView copied: %q", v)
	}
	c, _ := Unquote(b)
	b[1] = 'x'
	if c != "View" {
		t.Errorf("Unquote aliases its input: %q", c)
	}
}

func TestMembersAndElements(t *testing.T) {
	doc := []byte(` { "a" : 1 , "b\u0063" : [ "x" , {"y":null} ] , "d":"e" } `)
	for _, valid := range []bool{false, true} {
		var names, values []string
		end, err := Members(doc, 0, valid, func(m Member) error {
			names = append(names, string(m.Name(doc)))
			values = append(values, string(m.Value(doc)))
			return nil
		})
		if err != nil || end != len(doc)-1 {
			t.Fatalf("valid=%v: end %d, %v", valid, end, err)
		}
		if strings.Join(names, ",") != "a,bc,d" || strings.Join(values, "|") != `1|[ "x" , {"y":null} ]|"e"` {
			t.Errorf("valid=%v: names %q values %q", valid, names, values)
		}
		arr := doc[strings.Index(string(doc), "["):]
		var elems []string
		if _, err := Elements(arr, 0, valid, func(vs, ve int) error {
			elems = append(elems, string(arr[vs:ve]))
			return nil
		}); err != nil || strings.Join(elems, "|") != `"x"|{"y":null}` {
			t.Errorf("valid=%v: elements %q, %v", valid, elems, err)
		}
	}
	// Stopping at a member and resuming from it.
	stopAt := func(m Member) bool { return string(m.Name(doc)) == "bc" }
	var seen []string
	collect := func(m Member) error { seen = append(seen, string(m.Name(doc))); return nil }
	start := bytes.IndexByte(doc, '{') + 1
	_, at, err := MembersFrom(doc, start, false, stopAt, collect)
	if err != nil || at < 0 || doc[at] != '"' {
		t.Fatalf("stop: at %d, %v", at, err)
	}
	end, at2, err := MembersFrom(doc, at, true, nil, collect)
	if err != nil || at2 != -1 || end != len(doc)-1 || strings.Join(seen, ",") != "a,bc,d" {
		t.Errorf("resume: end %d at %d seen %q %v", end, at2, seen, err)
	}
	for _, bad := range []string{`{"a"}`, `{"a":1 "b":2}`, `{"a":1`, `[1`, `{`, `x`} {
		_, err1 := Members([]byte(bad), 0, false, func(Member) error { return nil })
		_, err2 := Elements([]byte(bad), 0, false, func(int, int) error { return nil })
		if err1 == nil && err2 == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// corpus is the recorded benign audit events: ~2.4 KB each, as the API
// server writes them.
func corpus(tb testing.TB) [][]byte {
	tb.Helper()
	f, err := os.Open("../../analyzers/rules/testdata/recorded/benign.jsonl.gz")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		tb.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		tb.Fatal(err)
	}
	var out [][]byte
	for _, l := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(l)) > 0 {
			out = append(out, l)
		}
	}
	return out
}

func TestCorpus(t *testing.T) {
	for _, ev := range corpus(t) {
		checkAgainstStdlib(t, ev)
	}
}

// BenchmarkScan: checking the syntax of recorded audit events (Skip), the
// same with encoding/json (json.Valid), and skipping them as valid input
// (SkipValid).
func BenchmarkScan(b *testing.B) {
	events := corpus(b)
	size := 0
	for _, e := range events {
		size += len(e)
	}
	for _, tc := range []struct {
		name string
		fn   func([]byte) bool
	}{
		{"Skip", func(e []byte) bool { _, err := Skip(e, 0, 0); return err == nil }},
		{"json.Valid", json.Valid},
		{"SkipValid", func(e []byte) bool { return SkipValid(e, 0) == len(e) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(size / len(events)))
			for i := 0; b.Loop(); i++ {
				if !tc.fn(events[i%len(events)]) {
					b.Fatal("invalid")
				}
			}
		})
	}
}

func FuzzSkip(f *testing.F) {
	for _, s := range []string{`{"a":[1,-2.5e3,"\u00e9\n",true,null,{}]}`, `["\ud83d\ude00", "\xff"]`, `{"a" : [ ] }`, `[01]`, `"abc`, "[\"\x01\"]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkAgainstStdlib(t, in)
		if len(in) > 0 && in[0] == '"' {
			if end, escaped, err := String(in, 0); err == nil {
				var want string
				werr := json.Unmarshal(in[:end], &want)
				got, ok := Unquote(in[:end])
				view, vok := UnquoteViewOf(in[:end], escaped)
				if werr != nil || !ok || got != want || !vok || view != want {
					t.Fatalf("Unquote(%q) = %q, %v, UnquoteViewOf %q; encoding/json %q, %v", in[:end], got, ok, view, want, werr)
				}
			}
		}
	})
}
