package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// MetricKind is the Prometheus metric type of a sample, or target-health.
type MetricKind string

// Metric kinds. PromQL results carry no type and are untyped.
const (
	MetricCounter        MetricKind = "counter"
	MetricGauge          MetricKind = "gauge"
	MetricHistogram      MetricKind = "histogram"
	MetricGaugeHistogram MetricKind = "gaugehistogram"
	MetricSummary        MetricKind = "summary"
	MetricUntyped        MetricKind = "untyped"
	// MetricTargetHealth marks a sample about the source itself: whether the
	// last scrape or query of Target succeeded. Without it a dead target
	// would look like a quiet one; with it the steady-state analyzer sees a
	// telemetry gap.
	MetricTargetHealth MetricKind = "target-health"
)

// TargetHealthName is the Name of target-health samples; the value is 1 when
// the target answered and 0 when it did not, like Prometheus' up.
const TargetHealthName = "up"

// MetricSample is one value of one series at one time, from a scrape or a
// PromQL query. Histograms and summaries arrive as their component series
// (_bucket with le, _sum, _count), as in the Prometheus text format.
type MetricSample struct {
	Name      string            `json:"name"`
	Labels    map[string]string `json:"labels,omitempty"`
	Value     SampleValue       `json:"value"`
	Timestamp time.Time         `json:"timestamp"`
	// Source is the collector source that produced the sample (e.g.
	// "scrape" or a configured PromQL source); it is the last token of the
	// metric subject.
	Source string `json:"source"`
	// Target is what was read: the scrape URL or the Prometheus server URL.
	Target string     `json:"target"`
	Kind   MetricKind `json:"kind"`
	// Query is the PromQL expression (or its configured name) a sample of a
	// query source answers.
	Query string `json:"query,omitempty"`
	// Health is set on target-health samples only.
	Health *TargetHealth `json:"health,omitempty"`
}

// TargetHealth says how reading a target went.
type TargetHealth struct {
	Up bool `json:"up"`
	// Error is why the last attempt failed.
	Error string `json:"error,omitempty"`
	// ConsecutiveFailures counts failed attempts since the last success.
	ConsecutiveFailures int `json:"consecutive_failures"`
	// LastSuccess is when the target last answered, if ever.
	LastSuccess *time.Time `json:"last_success,omitempty"`
	// NextAttempt is when the collector will retry (after backoff).
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
}

// NewTargetHealthSample is the target-health sample for target of source at
// time at.
func NewTargetHealthSample(source, target string, at time.Time, h TargetHealth) MetricSample {
	v := SampleValue(0)
	if h.Up {
		v = 1
	}
	return MetricSample{
		Name:      TargetHealthName,
		Value:     v,
		Timestamp: at.UTC(),
		Source:    source,
		Target:    target,
		Kind:      MetricTargetHealth,
		Health:    &h,
	}
}

// ID is the sample's deterministic id: the same series at the same time from
// the same source and target always gets the same id, so a re-published
// batch is deduplicated.
func (s *MetricSample) ID() string {
	parts := make([]string, 0, 6+2*len(s.Labels))
	parts = append(parts, s.Source, s.Target, string(s.Kind), s.Query, s.Name,
		strconv.FormatInt(s.Timestamp.UnixNano(), 10))
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		parts = append(parts, k, s.Labels[k])
	}
	return DeriveID(IDPrefixMetric, parts...)
}

// SampleValue is a sample's value. Prometheus values may be NaN or ±Inf,
// which JSON numbers cannot express, so those are written as the strings
// "NaN", "+Inf" and "-Inf" (Prometheus' own spelling); finite values are
// plain numbers.
type SampleValue float64

// MarshalJSON writes a number, or one of the three strings.
func (v SampleValue) MarshalJSON() ([]byte, error) {
	f := float64(v)
	switch {
	case math.IsNaN(f):
		return []byte(`"NaN"`), nil
	case math.IsInf(f, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(f, -1):
		return []byte(`"-Inf"`), nil
	}
	return json.Marshal(f)
}

// UnmarshalJSON reads a number, or "NaN", "+Inf", "Inf" or "-Inf".
func (v *SampleValue) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("sample value: %w", err)
		}
		switch s {
		case "NaN":
			*v = SampleValue(math.NaN())
		case "+Inf", "Inf":
			*v = SampleValue(math.Inf(1))
		case "-Inf":
			*v = SampleValue(math.Inf(-1))
		default:
			return fmt.Errorf("sample value: string %q is not NaN, +Inf or -Inf", s)
		}
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("sample value: %w", err)
	}
	*v = SampleValue(f)
	return nil
}
