package schemas

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Converting a core/v1 Event gives what the events API serves for it; the
// expected documents are the kube-event good samples.
func TestKubeEventFromCore(t *testing.T) {
	tests := []struct{ core, want string }{
		{"core-event/scaling.json", "kube-event/converted-from-core.good.json"},
		{"core-event/series.json", "kube-event/backoff-series.good.json"},
	}
	for _, tt := range tests {
		t.Run(tt.core, func(t *testing.T) {
			var core corev1.Event
			if err := json.Unmarshal(readDoc(t, tt.core), &core); err != nil {
				t.Fatal(err)
			}
			ev := KubeEventFromCore(&core)
			got, err := json.Marshal(&ev)
			if err != nil {
				t.Fatal(err)
			}
			if err := Validate(KindKubeEvent, got); err != nil {
				t.Fatalf("converted event: %v\n%s", err, got)
			}
			var g, w map[string]any
			_ = json.Unmarshal(got, &g)
			_ = json.Unmarshal(readDoc(t, tt.want), &w)
			if !reflect.DeepEqual(g, w) {
				t.Errorf("converted\n%v\nwant\n%v", g, w)
			}
			if core.Count != ev.DeprecatedCount || (core.Series != nil && ev.Series.Count != core.Series.Count) {
				t.Error("count or series lost")
			}
			// ParseKubeEvent takes the core form directly.
			parsed, err := ParseKubeEvent(readDoc(t, tt.core))
			if err != nil {
				t.Fatal(err)
			}
			if KubeEventIDOf(&parsed) != KubeEventIDOf(&ev) {
				t.Error("ParseKubeEvent and KubeEventFromCore disagree")
			}
		})
	}
	// The conversion does not share mutable parts with its input.
	core := corev1.Event{Related: &corev1.ObjectReference{Name: "a"}, ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"k": "v"}}}
	ev := KubeEventFromCore(&core)
	ev.Related.Name = "b"
	ev.Labels["k"] = "w"
	if core.Related.Name != "a" || core.Labels["k"] != "v" {
		t.Error("KubeEventFromCore aliases its input")
	}
}

func TestParseKubeEvent(t *testing.T) {
	good := string(readDoc(t, "kube-event/backoff-series.good.json"))
	tests := []struct {
		name string
		in   string
		want string // error fragment; "" for success
	}{
		{"events v1", good, ""},
		{"events v1beta1", strings.Replace(good, `"events.k8s.io/v1"`, `"events.k8s.io/v1beta1"`, 1), ""},
		{"not JSON", `{`, "data not recognized"},
		{"kind number", `{"kind":0}`, "data not recognized"},
		{"kind Pod", `{"kind":"Pod","apiVersion":"v1"}`, `kind is "Pod"`},
		{"audit event", `{"kind":"Event","apiVersion":"audit.k8s.io/v1"}`, `apiVersion is "audit.k8s.io/v1"`},
		{"no uid", strings.Replace(good, `"uid": "c0ffee00-1234-4abc-8def-0123456789ab",`, ``, 1), "missing metadata.uid"},
		{"no resourceVersion", strings.Replace(good, `"resourceVersion": "48213",`, ``, 1), "missing metadata.resourceVersion"},
		{"no name", strings.Replace(good, `"name": "web-7d9c5b6f4-x2kqp.184a1b2c3d4e5f60",`, ``, 1), "missing metadata.name"},
		{"bad field type", strings.Replace(good, `"count": 7`, `"count": "7"`, 1), "data not recognized"},
		{"bad core field type", `{"kind":"Event","apiVersion":"v1","count":"x"}`, "data not recognized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := ParseKubeEvent([]byte(tt.in))
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if ev.APIVersion != KubeEventAPIVersion {
					t.Errorf("apiVersion %q", ev.APIVersion)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrNotKubeEvent) {
				t.Errorf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestKubeEventTime(t *testing.T) {
	t1 := time.Date(2025, 1, 1, 1, 0, 0, 0, time.UTC)
	t2, t3, t4, t5 := t1.Add(time.Minute), t1.Add(2*time.Minute), t1.Add(3*time.Minute), t1.Add(4*time.Minute)
	ev := eventsv1.Event{
		ObjectMeta:               metav1.ObjectMeta{CreationTimestamp: metav1.NewTime(t1)},
		DeprecatedFirstTimestamp: metav1.NewTime(t2),
		DeprecatedLastTimestamp:  metav1.NewTime(t3),
		EventTime:                metav1.NewMicroTime(t4),
		Series:                   &eventsv1.EventSeries{LastObservedTime: metav1.NewMicroTime(t5)},
	}
	steps := []struct {
		want time.Time
		drop func()
	}{
		{t5, func() { ev.Series = nil }},
		{t4, func() { ev.EventTime = metav1.MicroTime{} }},
		{t3, func() { ev.DeprecatedLastTimestamp = metav1.Time{} }},
		{t2, func() { ev.DeprecatedFirstTimestamp = metav1.Time{} }},
		{t1, func() { ev.CreationTimestamp = metav1.Time{} }},
		{time.Time{}, func() {}},
	}
	for i, s := range steps {
		if got := KubeEventTime(&ev); !got.Equal(s.want) {
			t.Errorf("step %d: %v, want %v", i, got, s.want)
		}
		s.drop()
	}
}
