package schemas

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Fixed values of the envelope profile Faultline uses.
const (
	// SpecVersion is the only CloudEvents version Faultline speaks.
	SpecVersion = "1.0"
	// ContentTypeJSON is the datacontenttype of every Faultline payload.
	ContentTypeJSON = "application/json"
	// MaxIDLength bounds an envelope id: it becomes Elasticsearch's _id,
	// which may not exceed 512 bytes.
	MaxIDLength = 512
)

// Envelope is a CloudEvents 1.0 event in structured JSON mode. Every message
// on the bus is one. Data holds the payload as raw JSON so routing and
// deduplication never pay for decoding it.
//
// Faultline's profile is stricter than CloudEvents: time, datacontenttype,
// cluster and data are required (see Validate).
type Envelope struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	Subject         string    `json:"subject,omitempty"`
	Time            time.Time `json:"time"`
	DataContentType string    `json:"datacontenttype"`
	// Cluster is a CloudEvents extension attribute: the name of the
	// Kubernetes cluster the event is about. It is also a bus subject token.
	Cluster string          `json:"cluster"`
	Data    json.RawMessage `json:"data"`
}

// Attributes are the context attributes a producer chooses; NewEnvelope fills
// in the fixed ones.
type Attributes struct {
	ID      string
	Source  string
	Type    string
	Subject string
	Cluster string
	// Time is when the occurrence happened (not when it was published).
	Time time.Time
}

// Errors an *AttributeError wraps, for errors.Is.
var (
	ErrMissingAttribute = errors.New("missing required attribute")
	ErrInvalidAttribute = errors.New("invalid attribute")
)

// AttributeError names the envelope attribute that is missing or bad.
type AttributeError struct {
	Attribute string // the JSON name, e.g. "id"
	Err       error  // ErrMissingAttribute or ErrInvalidAttribute
	Detail    string // what is wrong with the value, if it is present
}

func (e *AttributeError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("attribute %q: %v", e.Attribute, e.Err)
	}
	return fmt.Sprintf("attribute %q: %v: %s", e.Attribute, e.Err, e.Detail)
}

func (e *AttributeError) Unwrap() error { return e.Err }

func missing(attr string) *AttributeError {
	return &AttributeError{Attribute: attr, Err: ErrMissingAttribute}
}

func invalid(attr, format string, args ...any) *AttributeError {
	return &AttributeError{Attribute: attr, Err: ErrInvalidAttribute, Detail: fmt.Sprintf(format, args...)}
}

// NewEnvelope marshals payload with encoding/json and wraps it. The time is
// stored in UTC.
func NewEnvelope(a Attributes, payload any) (*Envelope, error) {
	data, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("new envelope: marshal %s payload: %w", a.Type, err)
	}
	e := newEnvelope(a, data)
	if err := e.check(); err != nil {
		return nil, fmt.Errorf("new envelope: %w", err)
	}
	return e, nil
}

// NewEnvelopeRaw wraps a payload that is already JSON (a collector forwarding
// what it received). data is neither copied nor re-encoded nor re-scanned: it
// must be one valid JSON value, which the caller has checked when parsing it.
func NewEnvelopeRaw(a Attributes, data json.RawMessage) (*Envelope, error) {
	e := newEnvelope(a, data)
	if err := e.check(); err != nil {
		return nil, fmt.Errorf("new envelope: %w", err)
	}
	return e, nil
}

func newEnvelope(a Attributes, data json.RawMessage) *Envelope {
	return &Envelope{
		SpecVersion:     SpecVersion,
		ID:              a.ID,
		Source:          a.Source,
		Type:            a.Type,
		Subject:         a.Subject,
		Time:            a.Time.UTC(),
		DataContentType: ContentTypeJSON,
		Cluster:         a.Cluster,
		Data:            data,
	}
}

// Validate checks the required attributes and their form; the error is an
// *AttributeError naming the first bad attribute. It does not look inside
// data: that is the payload schema's job (Validate(kind, doc)).
func (e *Envelope) Validate() error {
	if err := e.check(); err != nil {
		return fmt.Errorf("validate envelope: %w", err)
	}
	return nil
}

// check is Validate without the operation prefix, so Encode and Decode can
// name their own operation.
func (e *Envelope) check() *AttributeError {
	switch {
	case e.SpecVersion == "":
		return missing("specversion")
	case e.SpecVersion != SpecVersion:
		return invalid("specversion", "%q is not supported, want %q", e.SpecVersion, SpecVersion)
	}
	if err := checkToken("id", e.ID, MaxIDLength); err != nil {
		return err
	}
	if err := checkToken("source", e.Source, 0); err != nil {
		return err
	}
	if err := checkToken("type", e.Type, 0); err != nil {
		return err
	}
	for i := 0; i < len(e.Subject); i++ {
		if c := e.Subject[i]; c < 0x20 || c == 0x7f {
			return invalid("subject", "control character at byte %d", i)
		}
	}
	if e.Time.IsZero() {
		return missing("time")
	}
	if y := e.Time.Year(); y < 0 || y > 9999 {
		// RFC 3339 has four-digit years; encoding/json refuses others too.
		return invalid("time", "year %d outside 0000-9999", y)
	}
	switch {
	case e.DataContentType == "":
		return missing("datacontenttype")
	case !isJSONContentType(e.DataContentType):
		return invalid("datacontenttype", "%q is not JSON, want %q", e.DataContentType, ContentTypeJSON)
	}
	if err := checkToken("cluster", e.Cluster, 0); err != nil {
		return err
	}
	for i := 0; i < len(e.Cluster); i++ {
		// The cluster is a subject token, so NATS' wildcards and separator
		// would route the message somewhere else.
		if c := e.Cluster[i]; c == '.' || c == '*' || c == '>' {
			return invalid("cluster", "%q contains %q, which NATS subjects reserve", e.Cluster, c)
		}
	}
	if len(e.Data) == 0 || string(e.Data) == "null" {
		return missing("data")
	}
	return nil
}

// checkToken requires a non-empty value of printable ASCII without spaces:
// ids travel in NATS headers and URLs where anything else needs escaping or
// breaks framing. max 0 means no length limit.
func checkToken(attr, v string, max int) *AttributeError {
	if v == "" {
		return missing(attr)
	}
	if max > 0 && len(v) > max {
		return invalid(attr, "%d bytes, at most %d allowed", len(v), max)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= 0x20 || c >= 0x7f {
			return invalid(attr, "byte %d is %q; only printable ASCII without spaces is allowed", i, c)
		}
	}
	return nil
}

// isJSONContentType accepts application/json with optional parameters.
func isJSONContentType(ct string) bool {
	const base = ContentTypeJSON
	if len(ct) < len(base) || ct[:len(base)] != base {
		return false
	}
	rest := ct[len(base):]
	for i := 0; i < len(rest); i++ {
		switch rest[i] {
		case ' ', '\t':
			continue
		case ';':
			return true
		default:
			return false
		}
	}
	return true
}
