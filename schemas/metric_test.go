package schemas

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

func TestSampleValueJSON(t *testing.T) {
	tests := []struct {
		v    float64
		json string
	}{
		{0, `0`},
		{12, `12`},
		{-0.0042, `-0.0042`},
		{1e21, `1e+21`},
		{math.NaN(), `"NaN"`},
		{math.Inf(1), `"+Inf"`},
		{math.Inf(-1), `"-Inf"`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(SampleValue(tt.v))
		if err != nil || string(b) != tt.json {
			t.Errorf("marshal %v = %s, %v; want %s", tt.v, b, err, tt.json)
		}
		var back SampleValue
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if f := float64(back); f != tt.v && !(math.IsNaN(f) && math.IsNaN(tt.v)) {
			t.Errorf("round trip of %v gave %v", tt.v, f)
		}
	}
	var v SampleValue
	if err := json.Unmarshal([]byte(`"Inf"`), &v); err != nil || !math.IsInf(float64(v), 1) {
		t.Errorf(`"Inf" = %v, %v`, v, err)
	}
	for _, bad := range []string{`"nan"`, `"12"`, `true`, `"\q"`, `{}`} {
		if err := json.Unmarshal([]byte(bad), &v); err == nil {
			t.Errorf("unmarshal %s succeeded", bad)
		}
	}
}

func TestMetricSampleID(t *testing.T) {
	at := time.Date(2025, 6, 3, 10, 40, 0, 0, time.UTC)
	s := MetricSample{Name: "x", Labels: map[string]string{"a": "1", "b": "2"}, Value: 1, Timestamp: at, Source: "scrape", Target: "t", Kind: MetricGauge}
	id := s.ID()
	same := s
	same.Labels = map[string]string{"b": "2", "a": "1"}
	same.Value = 7 // the value is not part of the identity of a sample
	if same.ID() != id {
		t.Error("id depends on map order or value")
	}
	for name, edit := range map[string]func(*MetricSample){
		"time":   func(m *MetricSample) { m.Timestamp = at.Add(time.Nanosecond) },
		"label":  func(m *MetricSample) { m.Labels = map[string]string{"a": "1", "b": "3"} },
		"labels": func(m *MetricSample) { m.Labels = map[string]string{"a": "1b", "": "2"} },
		"target": func(m *MetricSample) { m.Target = "u" },
		"kind":   func(m *MetricSample) { m.Kind = MetricCounter },
	} {
		other := s
		edit(&other)
		if other.ID() == id {
			t.Errorf("changing the %s kept the id", name)
		}
	}
	if !idCharset.MatchString(id) {
		t.Errorf("id %q", id)
	}
}
