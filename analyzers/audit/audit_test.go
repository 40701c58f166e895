package audit

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

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"

	"github.com/faultline/faultline/schemas"
)

const good = `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request","auditID":"a-1","stage":"ResponseComplete",` +
	`"requestURI":"/api/v1/namespaces/shop/pods/web/exec?command=sh\u0026command=-c\u0026command=id","verb":"create",` +
	`"user":{"username":"alice","uid":"u1","groups":["dev","system:authenticated"],"extra":{"scopes":["a","b"]}},` +
	`"impersonatedUser":{"username":"system:admin","groups":["system:masters"]},"sourceIPs":["10.0.0.1","10.0.0.2"],` +
	`"userAgent":"kubectl/v1.33 \"q\" \u00e9","objectRef":{"resource":"pods","namespace":"shop","name":"web","apiVersion":"v1","subresource":"exec"},` +
	`"responseStatus":{"metadata":{},"code":403},"requestObject":{"a":[1,2.5,"x",true,null,{"b":"\u2603"}]},` +
	`"requestReceivedTimestamp":"2026-11-22T06:00:00.123456Z","stageTimestamp":"2026-11-22T06:00:01Z",` +
	`"annotations":{"authorization.k8s.io/decision":"forbid","k\u00e9":"v"}}`

func TestParseReadsWhatAnalyzersUse(t *testing.T) {
	for _, parse := range []func([]byte) (*Event, error){Parse, ParseValid} {
		ev, err := parse([]byte(good))
		if err != nil {
			t.Fatal(err)
		}
		if ev.Verb != "create" || ev.User.Username != "alice" || len(ev.User.Groups) != 2 || ev.Impersonated.Username != "system:admin" ||
			ev.SourceIPs[1] != "10.0.0.2" || ev.UserAgent != `kubectl/v1.33 "q" é` || ev.Resource() != "pods/exec" || ev.Code != 403 ||
			ev.ObjectRef.Namespace != "shop" || ev.ID() != "audit_a-1_ResponseComplete" {
			t.Errorf("parsed %+v", ev)
		}
		if got := ev.Query()["command"]; !reflect.DeepEqual(got, []string{"sh", "-c", "id"}) {
			t.Errorf("command %v", got)
		}
		if ev.Annotations()["authorization.k8s.io/decision"] != "forbid" || ev.Annotations()["ké"] != "v" {
			t.Errorf("annotations %v", ev.Annotations())
		}
		if ex := ev.User.Extra(); !reflect.DeepEqual(ex["scopes"], []string{"a", "b"}) {
			t.Errorf("extra %v", ex)
		}
		obj, err := ev.RequestObject()
		if err != nil {
			t.Fatal(err)
		}
		var want any
		_ = json.Unmarshal([]byte(`{"a":[1,2.5,"x",true,null,{"b":"\u2603"}]}`), &want)
		if !reflect.DeepEqual(obj, want) {
			t.Errorf("requestObject %#v, want %#v", obj, want)
		}
		if ev.ReceivedAt().Nanosecond() != 123456000 {
			t.Errorf("time %v", ev.ReceivedAt())
		}
		up := ev.Upstream()
		var ref auditv1.Event
		_ = json.Unmarshal([]byte(good), &ref)
		if up.User.Username != ref.User.Username || up.ImpersonatedUser.Groups[0] != "system:masters" || up.ObjectRef.Subresource != "exec" ||
			!up.RequestReceivedTimestamp.Equal(&ref.RequestReceivedTimestamp) || up.RequestURI != ref.RequestURI {
			t.Errorf("upstream %+v", up)
		}
	}
}

// TestParseValidReadsAnyMemberOrder: ParseValid leaves the request and
// response objects (and what follows them) for later only when the members
// came in the API server's order; an event whose keys were sorted by some
// tool (stage, user, verb after responseObject) reads the same as in order.
func TestParseValidReadsAnyMemberOrder(t *testing.T) {
	var m map[string]any
	if err := json.Unmarshal([]byte(good), &m); err != nil {
		t.Fatal(err)
	}
	m["responseObject"] = map[string]any{"kind": "Status"}
	sorted, _ := json.Marshal(m) // encoding/json sorts map keys
	for _, doc := range [][]byte{[]byte(good), sorted} {
		for name, parse := range map[string]func([]byte) (*Event, error){"Parse": Parse, "ParseValid": ParseValid} {
			ev, err := parse(doc)
			if err != nil {
				t.Fatalf("%s(%.60s...): %v", name, doc, err)
			}
			if ev.Stage != "ResponseComplete" || ev.Verb != "create" || ev.User.Username != "alice" || ev.Code != 403 ||
				ev.ObjectRef.Subresource != "exec" || ev.Impersonated == nil || len(ev.SourceIPs) != 2 || ev.UserAgent == "" {
				t.Errorf("%s(%.60s...): %+v", name, doc, ev)
			}
			if ev.Annotations()["authorization.k8s.io/decision"] != "forbid" || ev.Time().IsZero() {
				t.Errorf("%s: tail not read: %v %v", name, ev.Annotations(), ev.Time())
			}
		}
	}
}

// TestParseRejectsLikeSchemas: what schemas.ParseAuditEvent refuses, Parse
// refuses, with the same sentinel.
func TestParseRejectsLikeSchemas(t *testing.T) {
	base := map[string]any{}
	_ = json.Unmarshal([]byte(good), &base)
	cases := map[string]func(m map[string]any){
		"kind 0":           func(m map[string]any) { m["kind"] = 0 },
		"kind List":        func(m map[string]any) { m["kind"] = "List" },
		"apiVersion":       func(m map[string]any) { m["apiVersion"] = "v1" },
		"no auditID":       func(m map[string]any) { delete(m, "auditID") },
		"no stage":         func(m map[string]any) { delete(m, "stage") },
		"bad stage":        func(m map[string]any) { m["stage"] = "Done" },
		"bad level":        func(m map[string]any) { m["level"] = "All" },
		"no verb":          func(m map[string]any) { delete(m, "verb") },
		"verb number":      func(m map[string]any) { m["verb"] = 5 },
		"no requestURI":    func(m map[string]any) { delete(m, "requestURI") },
		"no timestamps":    func(m map[string]any) { delete(m, "stageTimestamp") },
		"user not object":  func(m map[string]any) { m["user"] = "alice" },
		"groups of number": func(m map[string]any) { m["user"] = map[string]any{"username": "a", "groups": []any{1}} },
		"code string":      func(m map[string]any) { m["responseStatus"] = map[string]any{"code": "403"} },
	}
	for name, mut := range cases {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		mut(m)
		doc, _ := json.Marshal(m)
		_, err := Parse(doc)
		if !errors.Is(err, ErrNotAuditEvent) {
			t.Errorf("%s: Parse error %v, want ErrNotAuditEvent", name, err)
		}
		if _, serr := schemas.ParseAuditEvent(doc); serr == nil {
			t.Errorf("%s: schemas accepts it: the cases are out of step", name)
		}
	}
	for _, doc := range []string{"", "[]", `{"kind":0}`, `{`, `{"auditID":"x"} x`, "null"} {
		if _, err := Parse([]byte(doc)); !errors.Is(err, ErrNotAuditEvent) {
			t.Errorf("Parse(%q): %v", doc, err)
		}
	}
}

func TestReaderFormats(t *testing.T) {
	line := strings.ReplaceAll(good, "\n", "")
	list := `{"kind":"EventList","apiVersion":"audit.k8s.io/v1beta1","items":[` + "\n" + line + ",\n" + line + "\n]}"
	gz := func(s string) string {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(s))
		zw.Close()
		return b.String()
	}
	tests := []struct {
		name, in string
		events   int
		rejects  []string // "line: substring"
	}{
		{"json lines", line + "\n\n" + line + "\n", 2, nil},
		{"json lines, no final newline", line + "\n" + line, 2, nil},
		{"a reject in the middle", line + "\n" + `{"kind": 0}` + "\n" + line + "\n", 2, []string{"2: data not recognized as a Kubernetes audit event"}},
		{"broken JSON line", line + "\n{\"auditID\":\n" + line + "\n", 2, []string{"2: data not recognized as a Kubernetes audit event"}},
		{"indented EventList", list, 2, nil},
		{"array with a bad item", "[\n" + line + ",\n{\"kind\":0}\n]", 1, []string{"3: data not recognized"}},
		{"gzipped lines", gz(line + "\n" + line + "\n"), 2, nil},
		{"an EventList per line", `{"kind":"EventList","items":[` + line + "," + line + "]}\n" + line + "\n", 3, nil},
		{"empty", "", 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tc.in), "in.log")
			n := 0
			var rejects []string
			for {
				ev, err := r.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				var rej *Reject
				if errors.As(err, &rej) {
					rejects = append(rejects, rej.Error())
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if ev.User.Username != "alice" {
					t.Errorf("event %+v", ev)
				}
				n++
			}
			if n != tc.events || len(rejects) != len(tc.rejects) {
				t.Fatalf("%d events, rejects %q; want %d and %q", n, rejects, tc.events, tc.rejects)
			}
			for i, w := range tc.rejects {
				if !strings.Contains(rejects[i], "in.log:"+w) {
					t.Errorf("reject %q, want in.log:%s", rejects[i], w)
				}
			}
		})
	}
}

func TestReaderLongLine(t *testing.T) {
	r := NewReader(strings.NewReader(good+"\n"+`{"x":"`+strings.Repeat("a", 5000)+`"}`+"\n"+good+"\n"), "f")
	r.SetLimits(4096, 0)
	var got []string
	for {
		_, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			got = append(got, err.Error())
		} else {
			got = append(got, "ok")
		}
	}
	if len(got) != 3 || got[0] != "ok" || !strings.Contains(got[1], "f:2: data not recognized as a Kubernetes audit event: line longer") || got[2] != "ok" {
		t.Errorf("got %q", got)
	}
}

// The recorded fixture of the harness parses identically.
func TestFixtureMatchesUpstreamDecode(t *testing.T) {
	data, err := os.ReadFile("../../test/testdata/kube/audit-eventlist.json")
	if err != nil {
		t.Skip(err)
	}
	items, err := schemas.SplitAuditEvents(data)
	if err != nil {
		t.Fatal(err)
	}
	for i, it := range items {
		ev, err := ParseValid(it)
		if err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
		ref, err := schemas.ParseAuditEvent(it)
		if err != nil {
			t.Fatal(err)
		}
		up := ev.Upstream()
		if up.Verb != ref.Verb || up.RequestURI != ref.RequestURI || up.User.Username != ref.User.Username ||
			!reflect.DeepEqual(up.User.Groups, ref.User.Groups) || !reflect.DeepEqual(up.SourceIPs, ref.SourceIPs) ||
			(ref.ObjectRef != nil && up.ObjectRef.Name != ref.ObjectRef.Name) || !up.StageTimestamp.Equal(&ref.StageTimestamp) {
			t.Errorf("item %d differs:\n%+v\n%+v", i, up, ref)
		}
	}
}

// FuzzParse: Parse never panics; what it accepts is valid JSON with every
// required field, and ParseValid accepts it too.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(`{"kind":0}`))
	f.Add([]byte(`{"auditID":"x","stage":"Panic","level":"None","verb":"get","requestURI":"/","requestReceivedTimestamp":"t","stageTimestamp":"t","requestObject":[{"a":"\ud83d\ude00"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := Parse(data)
		if err != nil {
			return
		}
		if !json.Valid(data) || ev.AuditID == "" || ev.Verb == "" || ev.RequestURI == "" {
			t.Fatalf("accepted %q", data)
		}
		_, _ = ev.RequestObject()
		_ = ev.Annotations()
		_ = ev.Upstream()
		ev2, err := ParseValid(data)
		if err != nil || ev2.Complete() != nil {
			t.Fatalf("ParseValid refuses what Parse accepts: %v %q", err, data)
		}
	})
}

// FuzzReader: the replay reader never panics or loops, whatever the input.
func FuzzReader(f *testing.F) {
	f.Add([]byte(good + "\n" + `{"kind": 0}` + "\n"))
	f.Add([]byte("[\n" + good + "\n]"))
	f.Add([]byte(`{"kind":"EventList","items":[` + good + `]}`))
	f.Add([]byte{0x1f, 0x8b, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), "fuzz")
		r.SetLimits(1<<16, 1<<20)
		for i := 0; ; i++ {
			if i > len(data)+10 {
				t.Fatal("reader does not end")
			}
			_, err := r.Next()
			var rej *Reject
			if err != nil && !errors.As(err, &rej) {
				return
			}
		}
	})
}

// BenchmarkParse reads the recorded benign corpus (847 events of ~2.4 KB as
// the API server wrote them) with Parse (syntax checked: what replay
// needs), ParseValid (input already checked: the bus path) and ParseValid
// then Complete (the whole event).
func BenchmarkParse(b *testing.B) {
	f, err := os.Open("../rules/testdata/recorded/benign.jsonl.gz")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	r := NewReader(f, "benign")
	var events [][]byte
	size := 0
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		events = append(events, ev.Raw)
		size += len(ev.Raw)
	}
	for _, tc := range []struct {
		name  string
		parse func([]byte) (*Event, error)
	}{
		{"Parse", Parse},
		{"ParseValid", ParseValid},
		{"ParseValid+Complete", func(b []byte) (*Event, error) {
			ev, err := ParseValid(b)
			if err == nil {
				err = ev.Complete()
			}
			return ev, err
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(size / len(events)))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := tc.parse(events[i%len(events)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
