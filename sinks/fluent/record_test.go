package fluent

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/faultline/faultline/injectors/experiment"
	"github.com/faultline/faultline/schemas"
	"github.com/faultline/faultline/sinks"
)

var envTime = time.Date(2026, 11, 22, 9, 30, 15, 250_000_000, time.UTC)

func doc(typ, body string) sinks.Document {
	return sinks.Document{ID: "id-1", Type: typ, Subject: "s", Cluster: "c", Time: envTime, Body: json.RawMessage(body)}
}

// decodeRecord reads a msgpack record back as Go values.
func decodeRecord(t *testing.T, rec []byte) map[string]any {
	t.Helper()
	v, rest, err := msgp.ReadIntfBytes(rec)
	if err != nil {
		t.Fatalf("record is not msgpack: %v", err)
	}
	if len(rest) != 0 {
		t.Fatalf("%d bytes after the record", len(rest))
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("record is a %T, not a map", v)
	}
	return m
}

func TestEncodeValues(t *testing.T) {
	e := newEncoder(Config{TagPrefix: "faultline", EnvelopeKey: "envelope"})
	for _, tc := range []struct {
		name string
		body string
		want map[string]any
	}{
		{"scalars", `{"s":"x","t":true,"f":false,"n":null,"i":-42,"z":0,"fl":1.5,"e":1e3}`,
			map[string]any{"s": "x", "t": true, "f": false, "n": nil, "i": int64(-42), "z": int64(0), "fl": 1.5, "e": 1000.0}},
		{"integers at the edges", `{"max":9223372036854775807,"min":-9223372036854775808,"u":18446744073709551615,"big":18446744073709551616}`,
			map[string]any{"max": int64(math.MaxInt64), "min": int64(math.MinInt64), "u": uint64(math.MaxUint64), "big": 18446744073709551616.0}},
		{"escapes and unicode", `{"q":"a\"b\\c\n\u00e9\ud83d\ude00","k\u00e9y":"v"}`,
			map[string]any{"q": "a\"b\\c\né😀", "kéy": "v"}},
		{"nested", "{\n  \"a\": {\"b\": [1, \"two\", [3.25], {\"c\": null}]},\n  \"empty\": {}, \"none\": []\n}",
			map[string]any{"a": map[string]any{"b": []any{int64(1), "two", []any{3.25}, map[string]any{"c": nil}}}, "empty": map[string]any{}, "none": []any{}}},
		{"a member named like the envelope is replaced", `{"envelope":"mine","x":1}`,
			map[string]any{"x": int64(1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := doc(schemas.TypeFinding, tc.body)
			r, err := e.encode(nil, &d)
			if err != nil {
				t.Fatal(err)
			}
			got := decodeRecord(t, r.rec)
			env, _ := got["envelope"].(map[string]any)
			delete(got, "envelope")
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("record\n got %#v\nwant %#v", got, tc.want)
			}
			wantEnv := map[string]any{"id": "id-1", "type": schemas.TypeFinding, "subject": "s", "cluster": "c", "time": "2026-11-22T09:30:15.25Z"}
			if !reflect.DeepEqual(env, wantEnv) {
				t.Errorf("envelope %#v", env)
			}
			if r.tag != "faultline.finding" || r.kind != KindFinding {
				t.Errorf("tag %q kind %q", r.tag, r.kind)
			}
		})
	}
}

// Every member of real documents survives: decoding the record gives what
// decoding the JSON gives (numbers compared as numbers).
func TestEncodeTestdata(t *testing.T) {
	e := newEncoder(Config{TagPrefix: "fl", EnvelopeKey: ""})
	for file, typ := range map[string]string{
		"finding": schemas.TypeFinding, "deviation": schemas.TypeDeviation, "fault-status": schemas.TypeFaultStatus,
		"report": sinks.TypeExperimentReport, "kevent": schemas.TypeKubeEvent, "audit": schemas.TypeAudit,
	} {
		body, err := os.ReadFile("testdata/in/" + file + ".json")
		if err != nil {
			t.Fatal(err)
		}
		d := doc(typ, string(body))
		r, err := e.encode(nil, &d)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		var want map[string]any
		if err := json.Unmarshal(body, &want); err != nil {
			t.Fatal(err)
		}
		if got := numbersAsFloats(decodeRecord(t, r.rec)); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: record differs from the document\n got %v\nwant %v", file, got, want)
		}
		kind, _ := sinks.KindOf(typ)
		if r.tag != "fl."+kind {
			t.Errorf("%s: tag %q", file, r.tag)
		}
	}
}

// numbersAsFloats turns msgpack integers into float64, as encoding/json
// decodes numbers.
func numbersAsFloats(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = numbersAsFloats(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = numbersAsFloats(e)
		}
		return x
	case int64:
		return float64(x)
	case uint64:
		return float64(x)
	}
	return v
}

func TestEventTime(t *testing.T) {
	e := newEncoder(DefaultConfig())
	for _, tc := range []struct {
		name string
		body string
		env  time.Time
		want time.Time
	}{
		{"@timestamp to the nanosecond", `{"@timestamp":"2025-06-03T10:15:42.123456789Z"}`, envTime, time.Date(2025, 6, 3, 10, 15, 42, 123456789, time.UTC)},
		{"@timestamp with an offset", `{"@timestamp":"2025-06-03T12:15:42+02:00"}`, envTime, time.Date(2025, 6, 3, 10, 15, 42, 0, time.UTC)},
		{"no @timestamp: the envelope's time", `{"a":1}`, envTime, envTime},
		{"@timestamp not a date: the envelope's time", `{"@timestamp":1717409742}`, envTime, envTime},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := doc(schemas.TypeFinding, tc.body)
			d.Time = tc.env
			r, err := e.encode(nil, &d)
			if err != nil {
				t.Fatal(err)
			}
			if !r.time.Equal(tc.want) {
				t.Errorf("time %s, want %s", r.time, tc.want)
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	e := newEncoder(DefaultConfig())
	deep := strings.Repeat(`{"a":`, maxDepth+1) + "1" + strings.Repeat("}", maxDepth+1)
	for _, tc := range []struct {
		name, typ, body, want string
		env                   time.Time
	}{
		{"unknown type", "io.faultline.metric.v1", `{}`, "no record kind", envTime},
		{"array", schemas.TypeFinding, `[1]`, "not a JSON object", envTime},
		{"empty", schemas.TypeFinding, ``, "not a JSON object", envTime},
		{"truncated", schemas.TypeFinding, `{"a":`, "invalid JSON", envTime},
		{"trailing", schemas.TypeFinding, `{"a":1} x`, "invalid JSON", envTime},
		{"bad value", schemas.TypeFinding, `{"a":tru}`, "invalid JSON", envTime},
		{"no time at all", schemas.TypeFinding, `{"a":1}`, "no @timestamp and no envelope time", time.Time{}},
		{"too deep", schemas.TypeFinding, deep, "nested deeper", envTime},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := doc(tc.typ, tc.body)
			d.Time = tc.env
			_, err := e.encode(nil, &d)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if tc.name == "unknown type" && !errors.Is(err, ErrNoKind) {
				t.Errorf("%v does not wrap ErrNoKind", err)
			}
		})
	}
}

func TestTags(t *testing.T) {
	for _, tc := range []struct{ prefix, kind, want string }{
		{"faultline", KindFinding, "faultline.finding"},
		{"prod.eu-1.faultline", KindExperimentReport, "prod.eu-1.faultline.experiment_report"},
		{"", KindAudit, "audit"},
	} {
		if got := Tag(tc.prefix, tc.kind); got != tc.want {
			t.Errorf("Tag(%q, %q) = %q, want %q", tc.prefix, tc.kind, got, tc.want)
		}
	}
	for _, k := range sinks.Kinds() {
		found := false
		for _, typ := range []string{schemas.TypeAudit, schemas.TypeKubeEvent, schemas.TypeFinding, schemas.TypeDeviation, sinks.TypeExperimentReport, schemas.TypeFaultStatus} {
			if got, _ := sinks.KindOf(typ); got == k {
				found = true
			}
		}
		if !found {
			t.Errorf("kind %s has no type", k)
		}
	}
}

func TestReportTypeMatchesTheRunner(t *testing.T) {
	if sinks.TypeExperimentReport != experiment.TypeReport {
		t.Fatalf("sinks.TypeExperimentReport %q, the runner publishes %q", sinks.TypeExperimentReport, experiment.TypeReport)
	}
}

func BenchmarkEncodeFinding(b *testing.B) {
	body, err := os.ReadFile("testdata/in/finding.json")
	if err != nil {
		b.Fatal(err)
	}
	e := newEncoder(DefaultConfig())
	d := doc(schemas.TypeFinding, string(body))
	var buf []byte
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		r, err := e.encode(buf[:0], &d)
		if err != nil {
			b.Fatal(err)
		}
		buf = r.rec[:0]
	}
}
