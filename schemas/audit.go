package schemas

import (
	"encoding/json"
	"errors"
	"fmt"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"

	"github.com/faultline/faultline/internal/jsonscan"
)

// API versions of audit events. v1beta1 has the same JSON shape for every
// field v1 has (it adds metadata and timestamp, which v1 dropped), so it is
// read with the v1 type and relabelled.
const (
	AuditAPIVersion        = "audit.k8s.io/v1"
	AuditAPIVersionV1beta1 = "audit.k8s.io/v1beta1"
)

// Annotations a collector adds to an audit event it had to change.
const (
	// AuditAnnotationTruncated is "true" on an event whose request and
	// response objects were dropped because the event exceeded the
	// collector's per-event size limit.
	AuditAnnotationTruncated = "faultline.io/truncated"
	// AuditAnnotationOriginalSize is the size in bytes of the event before
	// truncation, as a decimal string.
	AuditAnnotationOriginalSize = "faultline.io/original-size"
)

// ErrNotAuditEvent is wrapped by every error about input that is JSON but
// not a Kubernetes audit event (or list of them).
var ErrNotAuditEvent = errors.New("data not recognized as a Kubernetes audit event")

// ParseError is one item of a document that is not an audit event. The
// other items of the document are still parsed.
type ParseError struct {
	// Index is the item's position in the EventList items or the JSON array,
	// from 0; a document holding a single event is item 0.
	Index int
	// Err wraps ErrNotAuditEvent and says what is wrong.
	Err error
}

func (e ParseError) Error() string { return fmt.Sprintf("item %d: %v", e.Index, e.Err) }

func (e ParseError) Unwrap() error { return e.Err }

// ParseAuditEvents reads audit events from an audit.k8s.io/v1 or v1beta1
// EventList, a JSON array of events, or a single event — the forms the API
// server's webhook backend and people's tools produce. Valid items are
// returned with apiVersion audit.k8s.io/v1 and kind Event, in order; each
// item that is not an audit event becomes a ParseError in rejects. err is
// set only when the document as a whole is unusable: malformed JSON, or JSON
// that is none of the three forms.
func ParseAuditEvents(data []byte) (events []auditv1.Event, rejects []ParseError, err error) {
	items, err := SplitAuditEvents(data)
	if err != nil {
		return nil, nil, fmt.Errorf("parse audit events: %w", err)
	}
	events = make([]auditv1.Event, 0, len(items))
	for i, item := range items {
		ev, err := ParseAuditEvent(item)
		if err != nil {
			rejects = append(rejects, ParseError{Index: i, Err: err})
			continue
		}
		events = append(events, ev)
	}
	return events, rejects, nil
}

// SplitAuditEvents returns the raw items of an EventList, a JSON array or a
// single event (see ParseAuditEvents) without decoding them, for callers
// that decode lazily. The whole document is checked for JSON syntax in one
// pass. The items alias data.
func SplitAuditEvents(data []byte) ([]json.RawMessage, error) {
	i := skipSpace(data, 0)
	if i >= len(data) {
		// Not JSON either, so both sentinels apply.
		return nil, fmt.Errorf("%w: %w: empty document", ErrNotAuditEvent, ErrSyntax)
	}
	switch data[i] {
	case '[':
		items, end, err := splitArray(data, i, 0)
		if err != nil {
			return nil, err
		}
		if err := trailing(data, end); err != nil {
			return nil, err
		}
		return items, nil
	case '{':
		return splitObject(data, i)
	default:
		end, err := skipValue(data, i, 0)
		if err != nil {
			return nil, err
		}
		if err := trailing(data, end); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: the document is a JSON %s, not an object or array", ErrNotAuditEvent, jsonKind(data[i]))
	}
}

// splitArray returns the elements of the array starting at data[i].
func splitArray(data []byte, i, depth int) ([]json.RawMessage, int, error) {
	var items []json.RawMessage
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == ']' {
		return items, i + 1, nil
	}
	for {
		start := skipSpace(data, i)
		end, err := skipValue(data, start, depth+1)
		if err != nil {
			return nil, end, err
		}
		items = append(items, json.RawMessage(data[start:end:end]))
		i = skipSpace(data, end)
		if i >= len(data) {
			return nil, i, syntaxErr(i, "unexpected end of array")
		}
		switch data[i] {
		case ',':
			i++
		case ']':
			return items, i + 1, nil
		default:
			return nil, i, syntaxErr(i, "expected ',' or ']' in array")
		}
	}
}

// splitObject handles a top-level object: an EventList (kind EventList) or
// else a single event. It checks the syntax and splits the items in the same
// pass. Kubernetes reads JSON keys case-sensitively, so only "kind",
// "apiVersion" and "items" count; for a repeated key the last one wins, as in
// Kubernetes.
func splitObject(data []byte, i int) ([]json.RawMessage, error) {
	var kind, apiVersion string
	var items []json.RawMessage
	var itemsStart byte // first byte of the items value, 0 if absent
	j := skipSpace(data, i+1)
	end := 0
	if j < len(data) && data[j] == '}' {
		end = j + 1
	}
	for end == 0 {
		if j >= len(data) || data[j] != '"' {
			return nil, syntaxErr(j, "expected object key")
		}
		keyEnd, err := scanString(data, j)
		if err != nil {
			return nil, err
		}
		key, err := rawName(data[j:keyEnd])
		if err != nil {
			return nil, syntaxErr(j, "%v", err)
		}
		j = skipSpace(data, keyEnd)
		if j >= len(data) || data[j] != ':' {
			return nil, syntaxErr(j, "expected ':' after object key")
		}
		j = skipSpace(data, j+1)
		var vEnd int
		if string(key) == "items" && j < len(data) && data[j] == '[' {
			items, vEnd, err = splitArray(data, j, 1)
		} else {
			vEnd, err = skipValue(data, j, 1)
		}
		if err != nil {
			return nil, err
		}
		switch string(key) {
		case "kind":
			kind, _ = jsonString(data[j:vEnd])
		case "apiVersion":
			apiVersion, _ = jsonString(data[j:vEnd])
		case "items":
			if itemsStart = data[j]; itemsStart != '[' {
				items = nil
			}
		}
		j = skipSpace(data, vEnd)
		if j >= len(data) {
			return nil, syntaxErr(j, "unexpected end of object")
		}
		switch data[j] {
		case ',':
			j = skipSpace(data, j+1)
		case '}':
			end = j + 1
		default:
			return nil, syntaxErr(j, "expected ',' or '}' in object")
		}
	}
	if err := trailing(data, end); err != nil {
		return nil, err
	}
	if kind != "EventList" {
		return []json.RawMessage{data[i:end:end]}, nil
	}
	if apiVersion != "" && apiVersion != AuditAPIVersion && apiVersion != AuditAPIVersionV1beta1 {
		return nil, fmt.Errorf("%w: an EventList of apiVersion %q", ErrNotAuditEvent, apiVersion)
	}
	if itemsStart != 0 && itemsStart != '[' && itemsStart != 'n' {
		return nil, fmt.Errorf("%w: EventList items is a JSON %s, not an array", ErrNotAuditEvent, jsonKind(itemsStart))
	}
	return items, nil
}

// jsonString decodes a JSON string token; ok is false for any other value.
func jsonString(tok []byte) (string, bool) {
	if len(tok) < 2 || tok[0] != '"' {
		return "", false
	}
	s, err := stringValue(tok)
	return s, err == nil
}

func jsonKind(c byte) string { return jsonscan.Kind(c) }

// ParseAuditEvent decodes one audit event (v1 or v1beta1) and checks that it
// has what every event the API server writes has. The error wraps
// ErrNotAuditEvent and says what is missing or wrong.
func ParseAuditEvent(item []byte) (auditv1.Event, error) {
	var ev auditv1.Event
	if err := json.Unmarshal(item, &ev); err != nil {
		return auditv1.Event{}, fmt.Errorf("%w: %v", ErrNotAuditEvent, err)
	}
	if err := checkAuditEvent(&ev); err != "" {
		return auditv1.Event{}, fmt.Errorf("%w: %s", ErrNotAuditEvent, err)
	}
	ev.APIVersion = AuditAPIVersion
	ev.Kind = "Event"
	return ev, nil
}

// checkAuditEvent returns what disqualifies ev, or "".
func checkAuditEvent(ev *auditv1.Event) string {
	switch {
	case ev.Kind != "" && ev.Kind != "Event":
		return fmt.Sprintf("kind is %q, want Event", ev.Kind)
	case ev.APIVersion != "" && ev.APIVersion != AuditAPIVersion && ev.APIVersion != AuditAPIVersionV1beta1:
		return fmt.Sprintf("apiVersion is %q, want %s or %s", ev.APIVersion, AuditAPIVersion, AuditAPIVersionV1beta1)
	case ev.AuditID == "":
		return "missing auditID"
	case ev.Stage == "":
		return "missing stage"
	case !knownStage(ev.Stage):
		return fmt.Sprintf("stage %q is not RequestReceived, ResponseStarted, ResponseComplete or Panic", ev.Stage)
	case ev.Level == "":
		return "missing level"
	case !knownLevel(ev.Level):
		return fmt.Sprintf("level %q is not None, Metadata, Request or RequestResponse", ev.Level)
	case ev.Verb == "":
		return "missing verb"
	case ev.RequestURI == "":
		return "missing requestURI"
	case ev.RequestReceivedTimestamp.IsZero():
		return "missing requestReceivedTimestamp"
	case ev.StageTimestamp.IsZero():
		return "missing stageTimestamp"
	}
	return ""
}

func knownStage(s auditv1.Stage) bool {
	switch s {
	case auditv1.StageRequestReceived, auditv1.StageResponseStarted, auditv1.StageResponseComplete, auditv1.StagePanic:
		return true
	}
	return false
}

func knownLevel(l auditv1.Level) bool {
	switch l {
	case auditv1.LevelNone, auditv1.LevelMetadata, auditv1.LevelRequest, auditv1.LevelRequestResponse:
		return true
	}
	return false
}

// AuditEventIDOf is AuditEventID of a parsed event.
func AuditEventIDOf(ev *auditv1.Event) string {
	return AuditEventID(string(ev.AuditID), string(ev.Stage))
}
