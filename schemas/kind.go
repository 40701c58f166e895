package schemas

// CloudEvents types of the payloads. The version suffix changes only with an
// incompatible payload change, so consumers can route on it.
const (
	TypeAudit        = "io.faultline.audit.v1"
	TypeKubeEvent    = "io.faultline.kevent.v1"
	TypeMetric       = "io.faultline.metric.v1"
	TypeFinding      = "io.faultline.finding.v1"
	TypeDeviation    = "io.faultline.deviation.v1"
	TypeFaultCommand = "io.faultline.fault.command.v1"
	TypeFaultStatus  = "io.faultline.fault.status.v1"
	TypeFaultAbort   = "io.faultline.fault.abort.v1"
)

// Kind names one of the documents this package has a JSON Schema for; it is
// also the schema's file name (jsonschema/<kind>.schema.json) and the folder
// of its samples (testdata/<kind>/).
type Kind string

// The kinds with a JSON Schema.
const (
	KindEnvelope     Kind = "envelope"
	KindAuditEvent   Kind = "audit-event"
	KindKubeEvent    Kind = "kube-event"
	KindMetricSample Kind = "metric-sample"
	KindFinding      Kind = "finding"
	KindDeviation    Kind = "deviation"
	KindFaultCommand Kind = "fault-command"
	KindFaultStatus  Kind = "fault-status"
	KindFaultAbort   Kind = "fault-abort"
)

// kinds lists every kind with the CloudEvents type of its payload; the
// envelope has none.
var kinds = []struct {
	kind Kind
	typ  string
}{
	{KindEnvelope, ""},
	{KindAuditEvent, TypeAudit},
	{KindKubeEvent, TypeKubeEvent},
	{KindMetricSample, TypeMetric},
	{KindFinding, TypeFinding},
	{KindDeviation, TypeDeviation},
	{KindFaultCommand, TypeFaultCommand},
	{KindFaultStatus, TypeFaultStatus},
	{KindFaultAbort, TypeFaultAbort},
}

// Kinds returns every kind, the envelope first.
func Kinds() []Kind {
	out := make([]Kind, len(kinds))
	for i, k := range kinds {
		out[i] = k.kind
	}
	return out
}

// EventType is the CloudEvents type of the payload kind, or "" for the
// envelope and unknown kinds.
func (k Kind) EventType() string {
	for _, e := range kinds {
		if e.kind == k {
			return e.typ
		}
	}
	return ""
}

// KindOf returns the payload kind carried by envelopes of CloudEvents type
// typ, and false for a type Faultline does not define.
func KindOf(typ string) (Kind, bool) {
	if typ == "" {
		return "", false
	}
	for _, e := range kinds {
		if e.typ == typ {
			return e.kind, true
		}
	}
	return "", false
}
