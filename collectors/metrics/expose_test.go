package metrics

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/faultline/faultline/schemas"
)

const (
	ctText        = "text/plain; version=0.0.4; charset=utf-8"
	ctOpenMetrics = "application/openmetrics-text; version=1.0.0; charset=utf-8"
	ctProtobuf    = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
)

var testAt = time.Date(2025, 6, 3, 10, 40, 0, 125e6, time.UTC)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decode is the whole exposition path of a scrape after the HTTP response.
func decode(body []byte, contentType string, limit int) ([]schemas.MetricSample, error) {
	fams, expo, err := decodeFamilies(body, contentType)
	if err != nil {
		return nil, err
	}
	return toSamples(fams, expo, testAt, limit, seriesBase{
		Source: "scrape", Target: "http://10.0.1.17:8080/metrics",
		Labels: map[string]string{"instance": "10.0.1.17:8080", "job": "shop"},
	})
}

// key identifies a sample in the tests: name and labels.
func key(s schemas.MetricSample) string {
	var b strings.Builder
	b.WriteString(s.Name)
	for _, k := range sortedKeys(s.Labels) {
		b.WriteString("," + k + "=" + s.Labels[k])
	}
	return b.String()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func toProtobuf(t testing.TB, text []byte) []byte {
	t.Helper()
	fams, _, err := decodeFamilies(text, ctText)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeProtoDelim))
	for _, f := range fams {
		if err := enc.Encode(f); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

type wantSample struct {
	value float64
	kind  schemas.MetricKind
}

func TestDecodeExposition(t *testing.T) {
	text := readFixture(t, "text.prom")
	common := map[string]wantSample{
		"shop_requests_total,code=200,handler=/checkout,instance=10.0.1.17:8080,job=shop": {1027, schemas.MetricCounter},
		"shop_requests_total,code=500,handler=/checkout,instance=10.0.1.17:8080,job=shop": {3, schemas.MetricCounter},
		"shop_in_flight,instance=10.0.1.17:8080,job=shop":                                 {12, schemas.MetricGauge},
		"shop_latency_seconds_bucket,instance=10.0.1.17:8080,job=shop,le=0.1":             {900, schemas.MetricHistogram},
		"shop_latency_seconds_bucket,instance=10.0.1.17:8080,job=shop,le=+Inf":            {1030, schemas.MetricHistogram},
		"shop_latency_seconds_sum,instance=10.0.1.17:8080,job=shop":                       {51.5, schemas.MetricHistogram},
		"shop_latency_seconds_count,instance=10.0.1.17:8080,job=shop":                     {1030, schemas.MetricHistogram},
	}
	full := map[string]wantSample{
		"shop_rpc_seconds,instance=10.0.1.17:8080,job=shop,quantile=0.99": {0.3, schemas.MetricSummary},
		"shop_rpc_seconds_count,instance=10.0.1.17:8080,job=shop":         {200, schemas.MetricSummary},
		// The series' own instance label is displaced by the target's.
		"shop_untyped,exported_instance=self,instance=10.0.1.17:8080,job=shop": {math.NaN(), schemas.MetricUntyped},
	}
	for k, v := range common {
		full[k] = v
	}
	tests := []struct {
		name        string
		body        []byte
		contentType string
		limit       int
		want        map[string]wantSample
		count       int
		wantErr     error
		errText     string
	}{
		{name: "text", body: text, contentType: ctText, limit: 100, want: full, count: 13},
		{name: "no content type reads as text", body: text, contentType: "", limit: 100, want: full, count: 13},
		{name: "protobuf", body: toProtobuf(t, text), contentType: ctProtobuf, limit: 100, want: full, count: 13},
		{name: "openmetrics counters keep their kind", body: readFixture(t, "openmetrics.txt"), contentType: ctOpenMetrics, limit: 100, want: common, count: 8},
		{name: "exactly at the limit", body: text, contentType: ctText, limit: 13, count: 13},
		{name: "over the limit", body: text, contentType: ctText, limit: 12, wantErr: ErrSampleLimit, errText: "13 samples, the limit is 12"},
		{name: "malformed value", body: readFixture(t, "malformed.prom"), contentType: ctText, limit: 100, wantErr: ErrParse, errText: `line 3: expected float as value, got "twelve"`},
		{name: "second TYPE line", body: readFixture(t, "duplicate-type.prom"), contentType: ctText, limit: 100, wantErr: ErrParse, errText: "second TYPE line"},
		{name: "openmetrics exemplar is refused", body: readFixture(t, "exemplar.openmetrics.txt"), contentType: ctOpenMetrics, limit: 100, wantErr: ErrParse, errText: "OpenMetrics"},
		{name: "openmetrics 2.0", body: readFixture(t, "openmetrics.txt"), contentType: "application/openmetrics-text; version=2.0.0; charset=utf-8", limit: 100, wantErr: ErrParse, errText: "version \"2.0.0\""},
		{name: "protobuf frame claiming more than was sent", body: []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2}, contentType: ctProtobuf, limit: 100, wantErr: ErrParse, errText: "claims 4294967295 bytes, only 2 follow"},
		{name: "protobuf garbage", body: []byte{3, 0xff, 0xff, 0xff}, contentType: ctProtobuf, limit: 100, wantErr: ErrParse},
		{name: "protobuf of another message", body: text, contentType: "application/vnd.google.protobuf; proto=other.Message; encoding=delimited", limit: 100, wantErr: ErrParse},
		{name: "empty body", body: nil, contentType: ctText, limit: 100, count: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decode(tc.body, tc.contentType, tc.limit)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.errText) {
					t.Errorf("error %q does not say %q", err, tc.errText)
				}
				if got != nil {
					t.Errorf("samples returned with the error: %d", len(got))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.count {
				t.Errorf("%d samples, want %d", len(got), tc.count)
			}
			byKey := map[string]schemas.MetricSample{}
			for _, s := range got {
				byKey[key(s)] = s
				if s.Source != "scrape" || s.Target != "http://10.0.1.17:8080/metrics" {
					t.Errorf("%s: source %q target %q", key(s), s.Source, s.Target)
				}
				if key(s) == "shop_untyped,exported_instance=self,instance=10.0.1.17:8080,job=shop" {
					if want := time.UnixMilli(1748947200000).UTC(); !s.Timestamp.Equal(want) {
						t.Errorf("explicit timestamp lost: %v", s.Timestamp)
					}
				} else if !s.Timestamp.Equal(testAt) {
					t.Errorf("%s: timestamp %v, want the scrape time", key(s), s.Timestamp)
				}
			}
			for k, w := range tc.want {
				s, ok := byKey[k]
				if !ok {
					t.Errorf("missing %s; have %v", k, keysOf(byKey))
					continue
				}
				v := float64(s.Value)
				if v != w.value && !(math.IsNaN(v) && math.IsNaN(w.value)) {
					t.Errorf("%s = %v, want %v", k, v, w.value)
				}
				if s.Kind != w.kind {
					t.Errorf("%s kind %s, want %s", k, s.Kind, w.kind)
				}
			}
		})
	}
}

func keysOf(m map[string]schemas.MetricSample) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Every sample the decoder produces is a valid metric-sample document.
func TestDecodedSamplesMatchSchema(t *testing.T) {
	got, err := decode(readFixture(t, "text.prom"), ctText, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range got {
		data, err := encode("dev", s.ID(), &s)
		if err != nil {
			t.Fatal(err)
		}
		env, err := schemas.DecodeEnvelope(data)
		if err != nil {
			t.Fatal(err)
		}
		if err := schemas.Validate(schemas.KindMetricSample, env.Data); err != nil {
			t.Errorf("%s: %v", key(s), err)
		}
	}
}

func TestMergeLabels(t *testing.T) {
	tests := []struct {
		name   string
		series map[string]string
		target map[string]string
		want   map[string]string
	}{
		{"none", nil, nil, nil},
		{"target only", nil, map[string]string{"job": "a"}, map[string]string{"job": "a"}},
		{"disjoint", map[string]string{"code": "200"}, map[string]string{"job": "a"}, map[string]string{"code": "200", "job": "a"}},
		{"target wins, series kept as exported_", map[string]string{"job": "b"}, map[string]string{"job": "a"}, map[string]string{"job": "a", "exported_job": "b"}},
		{"same value", map[string]string{"job": "a"}, map[string]string{"job": "a"}, map[string]string{"job": "a"}},
		{"empty values and the name dropped", map[string]string{"__name__": "x", "e": ""}, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := map[string]string{}
			for k, v := range tc.series {
				m[k] = v
			}
			got := mergeLabels(metricOf(m), tc.target)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestFormatOf(t *testing.T) {
	tests := []struct {
		ct   string
		want exposition
		err  bool
	}{
		{ctText, expoText, false},
		{"text/plain", expoText, false},
		{ctOpenMetrics, expoOpenMetrics, false},
		{"application/openmetrics-text; version=0.0.1", expoOpenMetrics, false},
		{"application/openmetrics-text; version=2.0.0", "", true},
		{ctProtobuf, expoProtobuf, false},
		{"application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=text", "", true},
		{"application/json", expoText, false},
		{"garbage;;", expoText, false},
	}
	for _, tc := range tests {
		got, _, err := formatOf(tc.ct)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("formatOf(%q) = %q, %v; want %q, error %v", tc.ct, got, err, tc.want, tc.err)
		}
	}
}

func TestCheckDelimitedFrames(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"empty", nil, true},
		{"one frame", []byte{2, 'a', 'b'}, true},
		{"two frames", []byte{1, 'a', 0}, true},
		{"short frame", []byte{3, 'a'}, false},
		{"truncated varint", []byte{0x80}, false},
		{"huge claim", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, false},
	} {
		if err := checkDelimitedFrames(tc.b); (err == nil) != tc.ok {
			t.Errorf("%s: error %v", tc.name, err)
		}
	}
}

// FuzzExposition feeds arbitrary bodies through the whole decoding path in
// each format. It must never panic, never return more samples than the
// limit, and every sample it returns must be a valid metric-sample
// document.
func FuzzExposition(f *testing.F) {
	for _, name := range []string{"text.prom", "openmetrics.txt", "malformed.prom", "duplicate-type.prom", "exemplar.openmetrics.txt"} {
		b := readFixture(f, name)
		f.Add(b, uint8(0))
		f.Add(b, uint8(1))
	}
	f.Add(toProtobuf(f, readFixture(f, "text.prom")), uint8(2))
	f.Add([]byte("a{b=\"c\"} 1\n"), uint8(0))
	f.Add([]byte("# TYPE x histogram\nx_bucket{le=\"1\"} 1\nx_count 1\n"), uint8(0))
	contentTypes := []string{ctText, ctOpenMetrics, ctProtobuf}
	f.Fuzz(func(t *testing.T, body []byte, format uint8) {
		ct := contentTypes[int(format)%len(contentTypes)]
		const limit = 50
		got, err := decode(body, ct, limit)
		if err != nil {
			if !errors.Is(err, ErrParse) && !errors.Is(err, ErrSampleLimit) {
				t.Fatalf("error of no known kind: %v", err)
			}
			return
		}
		if len(got) > limit {
			t.Fatalf("%d samples over the limit %d", len(got), limit)
		}
		for _, s := range got {
			data, err := encode("fuzz", s.ID(), &s)
			if err != nil {
				t.Fatalf("sample %+v does not encode: %v", s, err)
			}
			env, err := schemas.DecodeEnvelope(data)
			if err != nil {
				t.Fatalf("envelope of %+v does not decode: %v", s, err)
			}
			if err := schemas.Validate(schemas.KindMetricSample, env.Data); err != nil {
				t.Fatalf("sample %s invalid: %v", env.Data, err)
			}
		}
	})
}

func metricOf(m map[string]string) model.Metric {
	out := model.Metric{}
	for k, v := range m {
		out[model.LabelName(k)] = model.LabelValue(v)
	}
	return out
}
