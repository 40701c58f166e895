package schemas

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
)

// KubeEventAPIVersion is the API version of the Kubernetes Events Faultline
// publishes; core/v1 and events.k8s.io/v1beta1 Events are converted to it.
const KubeEventAPIVersion = "events.k8s.io/v1"

// ErrNotKubeEvent is wrapped by ParseKubeEvent's errors about JSON that is
// not a Kubernetes Event.
var ErrNotKubeEvent = errors.New("data not recognized as a Kubernetes Event")

// KubeEventFromCore converts a core/v1 Event to events.k8s.io/v1 the way the
// API server serves one through the events API: message becomes note,
// involvedObject regarding, and count, source and first/last timestamps move
// to the deprecated* fields; series is kept. Nothing is lost, so a
// recurrence (a raised count) stays visible.
func KubeEventFromCore(ev *corev1.Event) eventsv1.Event {
	out := eventsv1.Event{
		ObjectMeta:               *ev.ObjectMeta.DeepCopy(),
		EventTime:                ev.EventTime,
		ReportingController:      ev.ReportingController,
		ReportingInstance:        ev.ReportingInstance,
		Action:                   ev.Action,
		Reason:                   ev.Reason,
		Regarding:                ev.InvolvedObject,
		Note:                     ev.Message,
		Type:                     ev.Type,
		DeprecatedSource:         ev.Source,
		DeprecatedFirstTimestamp: ev.FirstTimestamp,
		DeprecatedLastTimestamp:  ev.LastTimestamp,
		DeprecatedCount:          ev.Count,
	}
	out.APIVersion = KubeEventAPIVersion
	out.Kind = "Event"
	if ev.Related != nil {
		r := *ev.Related
		out.Related = &r
	}
	if ev.Series != nil {
		out.Series = &eventsv1.EventSeries{Count: ev.Series.Count, LastObservedTime: ev.Series.LastObservedTime}
	}
	return out
}

// ParseKubeEvent decodes one Kubernetes Event of apiVersion
// events.k8s.io/v1, events.k8s.io/v1beta1 (same JSON shape) or core v1
// (converted with KubeEventFromCore). The result has apiVersion
// events.k8s.io/v1. An Event needs a uid and a resourceVersion: they make
// its id.
func ParseKubeEvent(data []byte) (eventsv1.Event, error) {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return eventsv1.Event{}, fmt.Errorf("parse kube event: %w: %v", ErrNotKubeEvent, err)
	}
	if head.Kind != "Event" {
		return eventsv1.Event{}, fmt.Errorf("parse kube event: %w: kind is %q, want Event", ErrNotKubeEvent, head.Kind)
	}
	var ev eventsv1.Event
	switch head.APIVersion {
	case KubeEventAPIVersion, "events.k8s.io/v1beta1":
		if err := json.Unmarshal(data, &ev); err != nil {
			return eventsv1.Event{}, fmt.Errorf("parse kube event: %w: %v", ErrNotKubeEvent, err)
		}
		ev.APIVersion = KubeEventAPIVersion
	case "v1":
		var core corev1.Event
		if err := json.Unmarshal(data, &core); err != nil {
			return eventsv1.Event{}, fmt.Errorf("parse kube event: %w: %v", ErrNotKubeEvent, err)
		}
		ev = KubeEventFromCore(&core)
	default:
		return eventsv1.Event{}, fmt.Errorf("parse kube event: %w: apiVersion is %q, want %s or v1", ErrNotKubeEvent, head.APIVersion, KubeEventAPIVersion)
	}
	switch {
	case ev.UID == "":
		return eventsv1.Event{}, fmt.Errorf("parse kube event: %w: missing metadata.uid", ErrNotKubeEvent)
	case ev.ResourceVersion == "":
		return eventsv1.Event{}, fmt.Errorf("parse kube event: %w: missing metadata.resourceVersion", ErrNotKubeEvent)
	case ev.Name == "":
		return eventsv1.Event{}, fmt.Errorf("parse kube event: %w: missing metadata.name", ErrNotKubeEvent)
	}
	return ev, nil
}

// KubeEventIDOf is KubeEventID of an Event.
func KubeEventIDOf(ev *eventsv1.Event) string {
	return KubeEventID(string(ev.UID), ev.ResourceVersion)
}

// KubeEventTime is when the latest occurrence of ev happened, for the
// envelope time: the series' last observation, else eventTime, else the
// deprecated last/first timestamps (core Events from old reporters have only
// those), else the object's creation.
func KubeEventTime(ev *eventsv1.Event) time.Time {
	for _, t := range []time.Time{
		seriesTime(ev.Series),
		ev.EventTime.Time,
		ev.DeprecatedLastTimestamp.Time,
		ev.DeprecatedFirstTimestamp.Time,
		ev.CreationTimestamp.Time,
	} {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

func seriesTime(s *eventsv1.EventSeries) time.Time {
	if s == nil {
		return time.Time{}
	}
	return s.LastObservedTime.Time
}

// NormalizeKubeEvent sets apiVersion and kind, which objects from client-go
// informers leave empty, so the published JSON says what it is.
func NormalizeKubeEvent(ev *eventsv1.Event) {
	ev.APIVersion = KubeEventAPIVersion
	ev.Kind = "Event"
}
