package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func testEnvelope() *Envelope {
	return &Envelope{
		SpecVersion:     SpecVersion,
		ID:              "audit_6b0b6a3e-4f3c-4f07-9a49-3d1b2a7f0c11_ResponseStarted",
		Source:          "/faultline/collectors/audit-webhook",
		Type:            TypeAudit,
		Subject:         "shop/pods/web",
		Time:            time.Date(2025, 6, 3, 10, 15, 42, 178901000, time.UTC),
		DataContentType: ContentTypeJSON,
		Cluster:         "prod-eu-1",
		Data:            json.RawMessage(`{"auditID":"6b0b6a3e","stage":"ResponseStarted","n":[1,2.5e3,true,null]}`),
	}
}

// sameEnvelope compares envelopes with Time.Equal, as DeepEqual would also
// compare time zones' pointers.
func sameEnvelope(a, b *Envelope) bool {
	if !a.Time.Equal(b.Time) {
		return false
	}
	x, y := *a, *b
	x.Time, y.Time = time.Time{}, time.Time{}
	return x.SpecVersion == y.SpecVersion && x.ID == y.ID && x.Source == y.Source &&
		x.Type == y.Type && x.Subject == y.Subject && x.DataContentType == y.DataContentType &&
		x.Cluster == y.Cluster && bytes.Equal(x.Data, y.Data)
}

// The hand-written encoder must write exactly what encoding/json writes for
// the same struct (given compact data without HTML characters, which
// encoding/json would rewrite).
func TestEncodeMatchesEncodingJSON(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Envelope)
	}{
		{"plain", func(*Envelope) {}},
		{"no subject", func(e *Envelope) { e.Subject = "" }},
		{"subject needing escapes", func(e *Envelope) { e.Subject = `a"b\c<d>e&f` }},
		{"subject non-ASCII", func(e *Envelope) { e.Subject = "ns/größe/名前" }},
		{"subject line separators", func(e *Envelope) { e.Subject = "a\u2028b\u2029c" }},
		{"subject invalid UTF-8", func(e *Envelope) { e.Subject = "a\xffb\xc3" }},
		{"time whole second", func(e *Envelope) { e.Time = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) }},
		{"time nanoseconds", func(e *Envelope) { e.Time = time.Date(2025, 1, 2, 3, 4, 5, 1, time.UTC) }},
		{"time with offset", func(e *Envelope) {
			e.Time = time.Date(2025, 1, 2, 3, 4, 5, 120000000, time.FixedZone("CEST", 2*3600))
		}},
		{"time year 0", func(e *Envelope) { e.Time = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"content type with parameter", func(e *Envelope) { e.DataContentType = "application/json; charset=utf-8" }},
		{"data string", func(e *Envelope) { e.Data = json.RawMessage(`"x"`) }},
		{"data number", func(e *Envelope) { e.Data = json.RawMessage(`-0.5`) }},
		{"data unicode", func(e *Envelope) { e.Data = json.RawMessage(`{"a":"é\u00e9"}`) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := testEnvelope()
			tt.edit(e)
			got, err := e.Encode()
			if err != nil {
				t.Fatal(err)
			}
			want, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Encode differs from encoding/json\n got %s\nwant %s", got, want)
			}
			back, err := DecodeEnvelope(got)
			if err != nil {
				t.Fatalf("decode what Encode wrote: %v", err)
			}
			var std Envelope
			if err := json.Unmarshal(got, &std); err != nil {
				t.Fatal(err)
			}
			if !sameEnvelope(back, &std) {
				t.Errorf("DecodeEnvelope and encoding/json disagree\n got %+v\nwant %+v", back, std)
			}
			if !strings.Contains(tt.name, "invalid UTF-8") && !sameEnvelope(back, e) {
				t.Errorf("round trip changed the envelope\n got %+v\nwant %+v", back, e)
			}
		})
	}
}

func TestEncodeKeepsDataVerbatim(t *testing.T) {
	e := testEnvelope()
	e.Data = json.RawMessage("{\n  \"a\": \"<b>\"\n}")
	got, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(got, []byte(`"data":`+string(e.Data)+`}`)) {
		t.Errorf("data was rewritten: %s", got)
	}
	if err := Validate(KindEnvelope, got); err == nil {
		t.Error("audit envelope with a non-audit payload validated")
	}
	e.Type = "com.example.other"
	got, _ = e.Encode()
	if err := Validate(KindEnvelope, got); err != nil {
		t.Errorf("envelope of a foreign type: %v", err)
	}
}

func TestAppendEncode(t *testing.T) {
	e := testEnvelope()
	buf := []byte("prefix:")
	out, err := e.AppendEncode(buf)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := e.Encode()
	if string(out) != "prefix:"+string(want) {
		t.Errorf("AppendEncode = %s", out)
	}
	e.ID = ""
	out, err = e.AppendEncode(buf)
	if err == nil || string(out) != "prefix:" {
		t.Errorf("AppendEncode of an invalid envelope = %q, %v", out, err)
	}
	if !strings.HasPrefix(err.Error(), "encode envelope: ") {
		t.Errorf("error %q does not name the operation", err)
	}
}

func TestEnvelopeValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Envelope)
		attr string
		want error
	}{
		{"missing specversion", func(e *Envelope) { e.SpecVersion = "" }, "specversion", ErrMissingAttribute},
		{"old specversion", func(e *Envelope) { e.SpecVersion = "0.3" }, "specversion", ErrInvalidAttribute},
		{"missing id", func(e *Envelope) { e.ID = "" }, "id", ErrMissingAttribute},
		{"id with space", func(e *Envelope) { e.ID = "a b" }, "id", ErrInvalidAttribute},
		{"id with newline", func(e *Envelope) { e.ID = "a\nNats-Msg-Id: b" }, "id", ErrInvalidAttribute},
		{"id too long", func(e *Envelope) { e.ID = strings.Repeat("x", MaxIDLength+1) }, "id", ErrInvalidAttribute},
		{"missing source", func(e *Envelope) { e.Source = "" }, "source", ErrMissingAttribute},
		{"source non-ASCII", func(e *Envelope) { e.Source = "/ä" }, "source", ErrInvalidAttribute},
		{"missing type", func(e *Envelope) { e.Type = "" }, "type", ErrMissingAttribute},
		{"subject control character", func(e *Envelope) { e.Subject = "a\x00" }, "subject", ErrInvalidAttribute},
		{"missing time", func(e *Envelope) { e.Time = time.Time{} }, "time", ErrMissingAttribute},
		{"time year 10000", func(e *Envelope) { e.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "time", ErrInvalidAttribute},
		{"missing datacontenttype", func(e *Envelope) { e.DataContentType = "" }, "datacontenttype", ErrMissingAttribute},
		{"xml", func(e *Envelope) { e.DataContentType = "application/xml" }, "datacontenttype", ErrInvalidAttribute},
		{"json lookalike", func(e *Envelope) { e.DataContentType = "application/jsonx" }, "datacontenttype", ErrInvalidAttribute},
		{"missing cluster", func(e *Envelope) { e.Cluster = "" }, "cluster", ErrMissingAttribute},
		{"cluster with dot", func(e *Envelope) { e.Cluster = "prod.eu" }, "cluster", ErrInvalidAttribute},
		{"cluster wildcard", func(e *Envelope) { e.Cluster = "*" }, "cluster", ErrInvalidAttribute},
		{"cluster with space", func(e *Envelope) { e.Cluster = "prod eu" }, "cluster", ErrInvalidAttribute},
		{"missing data", func(e *Envelope) { e.Data = nil }, "data", ErrMissingAttribute},
		{"null data", func(e *Envelope) { e.Data = json.RawMessage("null") }, "data", ErrMissingAttribute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := testEnvelope()
			tt.edit(e)
			err := e.Validate()
			var ae *AttributeError
			if !errors.As(err, &ae) {
				t.Fatalf("Validate() = %v, want an *AttributeError", err)
			}
			if ae.Attribute != tt.attr || !errors.Is(err, tt.want) {
				t.Errorf("Validate() = %v, want attribute %q and %v", err, tt.attr, tt.want)
			}
			if !strings.Contains(err.Error(), `"`+tt.attr+`"`) || !strings.HasPrefix(err.Error(), "validate envelope: ") {
				t.Errorf("message %q does not name the operation and attribute", err)
			}
			if _, err := e.Encode(); !errors.Is(err, tt.want) {
				t.Errorf("Encode() = %v, want %v", err, tt.want)
			}
		})
	}
	if err := testEnvelope().Validate(); err != nil {
		t.Errorf("valid envelope: %v", err)
	}
}

func TestDecodeEnvelope(t *testing.T) {
	const ok = `{"specversion":"1.0","id":"x1","source":"/s","type":"t","time":"2025-06-03T10:15:42Z","datacontenttype":"application/json","cluster":"c","data":{"a":1}}`
	// with replaces the first occurrence of old in ok.
	with := func(old, new string) string { return strings.Replace(ok, old, new, 1) }
	tests := []struct {
		name string
		in   string
		attr string // attribute the *AttributeError names, if any
		want error  // errors.Is target; nil means success
	}{
		{"valid", ok, "", nil},
		{"whitespace everywhere", " \n{ \"specversion\" : \"1.0\" ,\t\"id\":\"x1\",\"source\":\"/s\",\"type\":\"t\",\"time\":\"2025-06-03T10:15:42Z\",\"datacontenttype\":\"application/json\",\"cluster\":\"c\",\"data\": [ ] }\r\n", "", nil},
		{"unknown extension ignored", with(`"cluster"`, `"traceparent":"00-ab-cd-01","ext2":{"a":[1,{"b":null}]},"cluster"`), "", nil},
		{"escaped strings", with(`"id":"x1"`, `"id":"x\u0031"`), "", nil},
		{"escaped attribute name", with(`"id":`, `"i\u0064":`), "", nil},
		{"null optional subject", with(`"cluster"`, `"subject":null,"cluster"`), "", nil},
		{"empty", "", "", ErrSyntax},
		{"not an object", `[1]`, "", ErrSyntax},
		{"empty object", `{}`, "specversion", ErrMissingAttribute},
		{"trailing data", ok + `{}`, "", ErrSyntax},
		{"trailing comma", with(`{"a":1}}`, `{"a":1},}`), "", ErrSyntax},
		{"truncated", ok[:len(ok)-3], "", ErrSyntax},
		{"bad number in data", with(`{"a":1}`, `{"a":01}`), "", ErrSyntax},
		{"bad escape in data", with(`{"a":1}`, `{"a":"\x"}`), "", ErrSyntax},
		{"control character in data", with(`{"a":1}`, "{\"a\":\"\x01\"}"), "", ErrSyntax},
		{"bad literal in data", with(`{"a":1}`, `{"a":tru}`), "", ErrSyntax},
		{"missing colon in data", with(`{"a":1}`, `{"a" 1}`), "", ErrSyntax},
		{"unclosed data", with(`{"a":1}}`, `{"a":[1}}`), "", ErrSyntax},
		{"duplicate id", with(`"id":"x1"`, `"id":"x1","id":"x2"`), "id", ErrInvalidAttribute},
		{"uppercase name", with(`"id":"x1"`, `"id":"x1","ID":"x2"`), "ID", ErrInvalidAttribute},
		{"name with dash", with(`"id":"x1"`, `"id":"x1","trace-id":"x2"`), "trace-id", ErrInvalidAttribute},
		{"binary data", with(`"data":{"a":1}`, `"data_base64":"eyJhIjoxfQ=="`), "data_base64", ErrInvalidAttribute},
		{"id not a string", with(`"id":"x1"`, `"id":1`), "id", ErrInvalidAttribute},
		{"null id", with(`"id":"x1"`, `"id":null`), "id", ErrMissingAttribute},
		{"time not RFC 3339", with(`2025-06-03T10:15:42Z`, `2025-06-03 10:15:42`), "time", ErrInvalidAttribute},
		{"time a number", with(`"2025-06-03T10:15:42Z"`, `1748945742`), "time", ErrInvalidAttribute},
		{"missing data", with(`,"data":{"a":1}`, ``), "data", ErrMissingAttribute},
		{"null data", with(`{"a":1}`, `null`), "data", ErrMissingAttribute},
		{"cluster with dot", with(`"cluster":"c"`, `"cluster":"c.d"`), "cluster", ErrInvalidAttribute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := DecodeEnvelope([]byte(tt.in))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("DecodeEnvelope: %v", err)
				}
				var std Envelope
				if err := json.Unmarshal([]byte(tt.in), &std); err != nil {
					t.Fatal(err)
				}
				if !sameEnvelope(e, &std) {
					t.Errorf("disagrees with encoding/json\n got %+v\nwant %+v", e, std)
				}
				return
			}
			if e != nil || !errors.Is(err, tt.want) {
				t.Fatalf("DecodeEnvelope = %v, %v; want error %v", e, err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "decode envelope: ") {
				t.Errorf("message %q does not name the operation", err)
			}
			if tt.attr != "" {
				var ae *AttributeError
				if !errors.As(err, &ae) || ae.Attribute != tt.attr {
					t.Errorf("error %v does not name attribute %q", err, tt.attr)
				}
			}
		})
	}
}

func TestDecodeEnvelopeCopiesData(t *testing.T) {
	in, _ := testEnvelope().Encode()
	e, err := DecodeEnvelope(in)
	if err != nil {
		t.Fatal(err)
	}
	want := string(e.Data)
	for i := range in {
		in[i] = 'x'
	}
	if string(e.Data) != want {
		t.Error("Data aliases the input")
	}
}

func TestDecodeEnvelopeNesting(t *testing.T) {
	nest := func(depth int) []byte {
		data := strings.Repeat("[", depth) + strings.Repeat("]", depth)
		e := testEnvelope()
		e.Data = json.RawMessage(data)
		b, _ := e.Encode()
		return b
	}
	// The envelope object is one level; encoding/json allows 10000 in all.
	for _, depth := range []int{maxDepth - 1, maxDepth} {
		_, err := DecodeEnvelope(nest(depth))
		var v any
		stdErr := json.Unmarshal(nest(depth), &v)
		if (err == nil) != (stdErr == nil) {
			t.Errorf("depth %d: DecodeEnvelope %v, encoding/json %v", depth, err, stdErr)
		}
	}
	if _, err := DecodeEnvelope(nest(maxDepth)); !errors.Is(err, ErrSyntax) {
		t.Errorf("too deep: %v", err)
	}
}

func TestNewEnvelope(t *testing.T) {
	at := time.Date(2025, 6, 3, 12, 0, 0, 0, time.FixedZone("CEST", 2*3600))
	a := Attributes{ID: "abort-1", Source: "/cli", Type: TypeFaultAbort, Cluster: "dev", Time: at}
	abort := FaultAbort{ID: "abort-1", All: true, Reason: "test", IssuedAt: at.UTC()}
	e, err := NewEnvelope(a, abort)
	if err != nil {
		t.Fatal(err)
	}
	if e.Time.Location() != time.UTC || !e.Time.Equal(at) {
		t.Errorf("time %v not stored in UTC", e.Time)
	}
	b, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(KindEnvelope, b); err != nil {
		t.Errorf("NewEnvelope's output: %v", err)
	}

	if _, err := NewEnvelope(a, make(chan int)); err == nil || !strings.HasPrefix(err.Error(), "new envelope: marshal") {
		t.Errorf("unmarshalable payload: %v", err)
	}
	bad := a
	bad.Cluster = ""
	if _, err := NewEnvelope(bad, abort); !errors.Is(err, ErrMissingAttribute) {
		t.Errorf("missing cluster: %v", err)
	}
	raw := json.RawMessage(`{"x":1}`)
	e, err = NewEnvelopeRaw(a, raw)
	if err != nil {
		t.Fatal(err)
	}
	if &e.Data[0] != &raw[0] {
		t.Error("NewEnvelopeRaw copied the data")
	}
	if _, err := NewEnvelopeRaw(a, nil); !errors.Is(err, ErrMissingAttribute) {
		t.Errorf("NewEnvelopeRaw without data: %v", err)
	}
}

// auditSample is a realistic ~1.5 KB audit event for the benchmarks.
func auditSample(tb testing.TB) json.RawMessage {
	tb.Helper()
	b, err := os.ReadFile("testdata/audit-event/privileged-pod-request.good.json")
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func benchEnvelope(tb testing.TB) *Envelope {
	e := testEnvelope()
	e.Data = auditSample(tb)
	return e
}

// BenchmarkEnvelopeEncode is the publish hot path: wrap an audit event the
// collector already holds as JSON.
func BenchmarkEnvelopeEncode(b *testing.B) {
	e := benchEnvelope(b)
	out, _ := e.Encode()
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnvelopeAppendEncode reuses one buffer, as a publisher can.
func BenchmarkEnvelopeAppendEncode(b *testing.B) {
	e := benchEnvelope(b)
	buf, _ := e.Encode()
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = e.AppendEncode(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnvelopeEncodeStdlib is the same envelope through encoding/json,
// for comparison.
func BenchmarkEnvelopeEncodeStdlib(b *testing.B) {
	e := benchEnvelope(b)
	out, _ := json.Marshal(e)
	b.SetBytes(int64(len(out)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeEnvelope(b *testing.B) {
	in, _ := benchEnvelope(b).Encode()
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEnvelope(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeEnvelopeStdlib(b *testing.B) {
	in, _ := benchEnvelope(b).Encode()
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		var e Envelope
		if err := json.Unmarshal(in, &e); err != nil {
			b.Fatal(err)
		}
		if err := e.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}
