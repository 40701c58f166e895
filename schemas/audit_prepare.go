package schemas

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/faultline/faultline/internal/jsonscan"
)

// AuditAnnotationRedacted is "true" on an audit event from which a
// collector removed secret values (see AuditPreparer).
const AuditAnnotationRedacted = "faultline.io/redacted"

// RedactedValue replaces every secret value a collector removes.
const RedactedValue = "[REDACTED]"

// PreparedAuditEvent describes one event AuditPreparer.Prepare produced.
type PreparedAuditEvent struct {
	// ID is AuditEventID(AuditID, Stage): the envelope id and Nats-Msg-Id.
	ID      string
	AuditID string
	Stage   string
	// Time is the stageTimestamp in UTC: when this stage of the request
	// happened, the envelope time.
	Time time.Time
	// Subject names the object of the request for the envelope subject,
	// "[<namespace>/]<resource>[.<group>][/<name>][/<subresource>]", or ""
	// for a request without objectRef (a non-resource URL).
	Subject string
	// Redacted tells that secret values were replaced by RedactedValue.
	Redacted bool
	// Truncated tells that the event exceeded the size limit and its
	// request and response objects (and, if still too large, more) were
	// dropped; OriginalSize is then its size before truncation.
	Truncated    bool
	OriginalSize int
}

// AuditPreparer turns raw audit events, as the API server sends them, into
// what collectors publish, in one pass over each event and without decoding
// it into the Go type (which costs an order of magnitude more):
//
//   - it checks the event as ParseAuditEvent does: every field Faultline
//     relies on present and valid, every known field of the right JSON type.
//     It is stricter in two ways: a known field may not appear twice, and a
//     field name must be spelled exactly (encoding/json would also match
//     "AuditID" to "auditID"). Whatever it accepts, ParseAuditEvent accepts;
//   - it redacts secrets in requestObject and responseObject: the values of
//     data and stringData of Secrets (found by objectRef — core secrets,
//     including patches and lists — or by kind Secret/SecretList anywhere,
//     e.g. in Table rows), the status.token of TokenRequests, the spec.token
//     of TokenReviews, and the same inside the
//     kubectl.kubernetes.io/last-applied-configuration annotation. Keys stay.
//     A redacted event carries the annotation faultline.io/redacted: "true";
//   - it labels the event kind Event, apiVersion audit.k8s.io/v1 (v1beta1
//     has the same shape for every v1 field; its extra fields are kept);
//   - above MaxEventSize it drops requestObject and responseObject and, if
//     still too large, everything but a bounded summary of the fields
//     analyzers need, and sets faultline.io/truncated and
//     faultline.io/original-size. An event is never dropped for its size.
//
// The output is compact where the input was (only edited spans change).
// An AuditPreparer reuses its buffers: use one per goroutine.
type AuditPreparer struct {
	// MaxEventSize is the largest event published whole, in bytes; 0 means
	// no limit. Values below MinAuditEventLimit are raised to it, because
	// the truncated summary must fit.
	MaxEventSize int
	// Validated says every item is known to be valid JSON (an item of
	// SplitAuditEvents, which checked the whole document): the top-level
	// pass then skips values without checking their syntax again. Prepare's
	// verdicts are the same either way for valid JSON.
	Validated bool

	r       redactor
	members []member
}

// MinAuditEventLimit is the smallest MaxEventSize: the truncated summary of
// any event fits in it.
const MinAuditEventLimit = 64 << 10

// Caps on the fields of a truncated summary, in bytes of JSON.
const (
	capShortString = 1 << 10 // auditID, userAgent, verb, username
	capURI         = 4 << 10
	capObject      = 4 << 10 // user, impersonatedUser, sourceIPs, objectRef, responseStatus
	capAnnotations = 8 << 10
)

type auditField uint8

const (
	fKind auditField = iota
	fAPIVersion
	fLevel
	fAuditID
	fStage
	fRequestURI
	fVerb
	fUser
	fImpersonatedUser
	fSourceIPs
	fUserAgent
	fObjectRef
	fResponseStatus
	fRequestObject
	fResponseObject
	fRequestReceivedTimestamp
	fStageTimestamp
	fAnnotations
	nAuditFields
	fUnknown = nAuditFields
)

var auditFieldNames = [nAuditFields]string{
	"kind", "apiVersion", "level", "auditID", "stage", "requestURI", "verb", "user", "impersonatedUser",
	"sourceIPs", "userAgent", "objectRef", "responseStatus", "requestObject", "responseObject",
	"requestReceivedTimestamp", "stageTimestamp", "annotations",
}

func auditFieldOf(name []byte) auditField {
	switch string(name) {
	case "kind":
		return fKind
	case "apiVersion":
		return fAPIVersion
	case "level":
		return fLevel
	case "auditID":
		return fAuditID
	case "stage":
		return fStage
	case "requestURI":
		return fRequestURI
	case "verb":
		return fVerb
	case "user":
		return fUser
	case "impersonatedUser":
		return fImpersonatedUser
	case "sourceIPs":
		return fSourceIPs
	case "userAgent":
		return fUserAgent
	case "objectRef":
		return fObjectRef
	case "responseStatus":
		return fResponseStatus
	case "requestObject":
		return fRequestObject
	case "responseObject":
		return fResponseObject
	case "requestReceivedTimestamp":
		return fRequestReceivedTimestamp
	case "stageTimestamp":
		return fStageTimestamp
	case "annotations":
		return fAnnotations
	}
	return fUnknown
}

// member is one top-level member of the event: the key starts at keyStart
// (its quote), the value spans [valStart, valEnd).
type member struct {
	field                      auditField
	keyStart, valStart, valEnd int
}

// scanned is what the top-level pass found.
type scanned struct {
	open, close int // offsets of the event's '{' and '}'
	at          [nAuditFields]int
	present     [nAuditFields]bool
	val         [nAuditFields][2]int
	// received and stageTime are the decoded timestamps (zero when absent
	// or null).
	received, stageTime time.Time
}

func (s *scanned) raw(item []byte, f auditField) []byte {
	if !s.present[f] {
		return nil
	}
	return item[s.val[f][0]:s.val[f][1]]
}

func notAudit(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrNotAuditEvent, fmt.Sprintf(format, args...))
}

// Prepare checks, redacts and labels one raw audit event (an item from
// SplitAuditEvents or one line of an audit log) and appends the result to
// dst. An error wraps ErrNotAuditEvent (or ErrSyntax) and says what
// disqualifies the item; dst is then returned unchanged.
func (p *AuditPreparer) Prepare(dst, item []byte) ([]byte, PreparedAuditEvent, error) {
	var ev PreparedAuditEvent
	var s scanned
	if err := p.scan(item, &s); err != nil {
		return dst, ev, err
	}
	str := func(f auditField) (string, error) {
		raw := s.raw(item, f)
		if raw == nil || isNull(raw) {
			return "", nil
		}
		return internedAuditValue(raw)
	}
	kind, err := str(fKind)
	if err != nil {
		return dst, ev, notAudit("kind: %v", err)
	}
	apiVersion, err := str(fAPIVersion)
	if err != nil {
		return dst, ev, notAudit("apiVersion: %v", err)
	}
	level, err := str(fLevel)
	if err != nil {
		return dst, ev, notAudit("level: %v", err)
	}
	if ev.AuditID, err = str(fAuditID); err != nil {
		return dst, ev, notAudit("auditID: %v", err)
	}
	if ev.Stage, err = str(fStage); err != nil {
		return dst, ev, notAudit("stage: %v", err)
	}
	verb, err := str(fVerb)
	if err != nil {
		return dst, ev, notAudit("verb: %v", err)
	}
	uri := s.raw(item, fRequestURI)
	received := s.received
	ev.Time = s.stageTime
	// The same checks, in the same order, as checkAuditEvent.
	switch {
	case kind != "" && kind != "Event":
		return dst, ev, notAudit("kind is %q, want Event", kind)
	case apiVersion != "" && apiVersion != AuditAPIVersion && apiVersion != AuditAPIVersionV1beta1:
		return dst, ev, notAudit("apiVersion is %q, want %s or %s", apiVersion, AuditAPIVersion, AuditAPIVersionV1beta1)
	case ev.AuditID == "":
		return dst, ev, notAudit("missing auditID")
	case ev.Stage == "":
		return dst, ev, notAudit("missing stage")
	case !knownStageString(ev.Stage):
		return dst, ev, notAudit("stage %q is not RequestReceived, ResponseStarted, ResponseComplete or Panic", ev.Stage)
	case level == "":
		return dst, ev, notAudit("missing level")
	case !knownLevelString(level):
		return dst, ev, notAudit("level %q is not None, Metadata, Request or RequestResponse", level)
	case verb == "":
		return dst, ev, notAudit("missing verb")
	case uri == nil || isNull(uri) || len(uri) == 2:
		return dst, ev, notAudit("missing requestURI")
	case received.IsZero():
		return dst, ev, notAudit("missing requestReceivedTimestamp")
	case ev.Time.IsZero():
		return dst, ev, notAudit("missing stageTimestamp")
	}
	ev.ID = AuditEventID(ev.AuditID, ev.Stage)
	ev.Time = ev.Time.UTC()

	ref := objectRefOf(item, &s)
	ev.Subject = ref.subject()

	// Edits: labels, redactions, annotations.
	r := &p.r
	r.reset(item)
	switch {
	case !s.present[fKind]:
		r.add(s.open+1, s.open+1, `"kind":"Event",`)
	case kind == "":
		r.add(s.val[fKind][0], s.val[fKind][1], `"Event"`)
	}
	switch {
	case !s.present[fAPIVersion]:
		r.add(s.open+1, s.open+1, `"apiVersion":"`+AuditAPIVersion+`",`)
	case apiVersion != AuditAPIVersion:
		r.add(s.val[fAPIVersion][0], s.val[fAPIVersion][1], `"`+AuditAPIVersion+`"`)
	}
	labels := len(r.edits)
	ctx := ref.context()
	for _, f := range []auditField{fRequestObject, fResponseObject} {
		if !s.present[f] {
			continue
		}
		v := s.val[f]
		if ctx == ctxNone && !mayHoldSecret(item[v[0]:v[1]]) {
			continue
		}
		if _, err := r.walk(v[0], 1, ctx); err != nil {
			return dst, ev, fmt.Errorf("%w: %s: %w", ErrNotAuditEvent, auditFieldNames[f], err)
		}
	}
	ev.Redacted = r.redactions() > 0
	if ev.Redacted {
		p.annotate(&s, item, r, `"`+AuditAnnotationRedacted+`":"true"`)
	}

	size := r.outputSize()
	if p.MaxEventSize <= 0 || size <= max(p.MaxEventSize, MinAuditEventLimit) {
		return r.apply(dst), ev, nil
	}

	// Too large: drop the request and response objects.
	limit := max(p.MaxEventSize, MinAuditEventLimit)
	ev.Truncated, ev.OriginalSize, ev.Redacted = true, len(item), false
	r.edits = r.edits[:labels]
	for _, m := range p.members {
		if m.field == fRequestObject || m.field == fResponseObject {
			p.dropMember(r, item, &s, m)
		}
	}
	p.annotate(&s, item, r, truncationAnnotations(len(item)))
	if r.outputSize() <= limit {
		return r.apply(dst), ev, nil
	}
	return appendAuditSummary(dst, item, &s, len(item)), ev, nil
}

// scan reads the top-level members of the event, checking the JSON type of
// each known field (and of the fields inside the small ones) as
// encoding/json would when decoding into auditv1.Event.
func (p *AuditPreparer) scan(item []byte, s *scanned) error {
	p.members = p.members[:0]
	i := skipSpace(item, 0)
	if i >= len(item) || item[i] != '{' {
		if i < len(item) {
			return notAudit("the event is a JSON %s, not an object", jsonKind(item[i]))
		}
		return fmt.Errorf("%w: %w: empty event", ErrNotAuditEvent, ErrSyntax)
	}
	s.open = i
	end, err := jsonscan.Members(item, i, p.Validated, func(m jsonscan.Member) error {
		key := m.Name(item)
		f := auditFieldOf(key)
		if f == fUnknown {
			if g, ok := foldMatch(key, auditFieldNames[:]); ok {
				return notAudit("field %q must be spelled %q", key, auditFieldNames[g])
			}
		}
		v := item[m.Val:m.ValEnd]
		if f != fUnknown {
			if s.present[f] {
				return notAudit("field %q appears more than once", auditFieldNames[f])
			}
			s.present[f] = true
			s.at[f] = m.Key
			s.val[f] = [2]int{m.Val, m.ValEnd}
			switch f {
			case fRequestReceivedTimestamp, fStageTimestamp:
				t, err := microTime(v)
				if err != nil {
					return notAudit("%s: %v", auditFieldNames[f], err)
				}
				if f == fStageTimestamp {
					s.stageTime = t
				} else {
					s.received = t
				}
			default:
				if err := checkAuditField(f, v); err != nil {
					return notAudit("%s: %v", auditFieldNames[f], err)
				}
			}
		}
		p.members = append(p.members, member{field: f, keyStart: m.Key, valStart: m.Val, valEnd: m.ValEnd})
		return nil
	})
	if err != nil {
		return err
	}
	s.close = end - 1
	return trailing(item, end)
}

// foldMatch reports whether name equals one of names under Unicode case
// folding (the way encoding/json matches field names) without equalling it.
func foldMatch(name []byte, names []string) (int, bool) {
	for i, n := range names {
		if bytes.EqualFold(name, []byte(n)) {
			return i, true
		}
	}
	return 0, false
}

// JSON types of the fields auditv1.Event and its small parts declare.
type jsonType uint8

const (
	jString     jsonType = iota // string
	jStrings                    // []string
	jStringMap                  // map[string]string
	jStringsMap                 // map[string][]string
	jInt32                      // int32
	jInt64                      // *int64
	jObject                     // a struct: the fields in sub
	jObjects                    // a slice of structs
	jTime                       // metav1.MicroTime
	jAny                        // runtime.Unknown: any JSON
)

type fieldSpec struct {
	name string
	typ  jsonType
	sub  []fieldSpec
}

var (
	userInfoSpec  = []fieldSpec{{name: "username"}, {name: "uid"}, {name: "groups", typ: jStrings}, {name: "extra", typ: jStringsMap}}
	objectRefSpec = []fieldSpec{{name: "resource"}, {name: "namespace"}, {name: "name"}, {name: "uid"},
		{name: "apiGroup"}, {name: "apiVersion"}, {name: "resourceVersion"}, {name: "subresource"}}
	statusCauseSpec   = []fieldSpec{{name: "reason"}, {name: "message"}, {name: "field"}}
	statusDetailsSpec = []fieldSpec{{name: "name"}, {name: "group"}, {name: "kind"}, {name: "uid"},
		{name: "causes", typ: jObjects, sub: statusCauseSpec}, {name: "retryAfterSeconds", typ: jInt32}}
	listMetaSpec = []fieldSpec{{name: "selfLink"}, {name: "resourceVersion"}, {name: "continue"},
		{name: "remainingItemCount", typ: jInt64}}
	statusSpec = []fieldSpec{{name: "kind"}, {name: "apiVersion"}, {name: "metadata", typ: jObject, sub: listMetaSpec},
		{name: "status"}, {name: "message"}, {name: "reason"}, {name: "details", typ: jObject, sub: statusDetailsSpec},
		{name: "code", typ: jInt32}}
)

var auditFieldTypes = [nAuditFields]fieldSpec{
	fKind: {}, fAPIVersion: {}, fLevel: {}, fAuditID: {}, fStage: {}, fRequestURI: {}, fVerb: {},
	fUser:             {typ: jObject, sub: userInfoSpec},
	fImpersonatedUser: {typ: jObject, sub: userInfoSpec},
	fSourceIPs:        {typ: jStrings},
	fUserAgent:        {},
	fObjectRef:        {typ: jObject, sub: objectRefSpec},
	fResponseStatus:   {typ: jObject, sub: statusSpec},
	fRequestObject:    {typ: jAny}, fResponseObject: {typ: jAny},
	fRequestReceivedTimestamp: {typ: jTime}, fStageTimestamp: {typ: jTime},
	fAnnotations: {typ: jStringMap},
}

func checkAuditField(f auditField, raw []byte) error {
	spec := auditFieldTypes[f]
	return checkType(raw, spec.typ, spec.sub, 0)
}

// maxCheckDepth bounds recursion in checkType; the specs nest three deep.
const maxCheckDepth = 8

// checkType reports whether raw (a syntactically valid JSON value) decodes
// into the Go type described by typ and sub under encoding/json. null
// decodes into anything.
func checkType(raw []byte, typ jsonType, sub []fieldSpec, depth int) error {
	if isNull(raw) || typ == jAny {
		return nil
	}
	if depth > maxCheckDepth {
		return fmt.Errorf("nested too deep")
	}
	c := raw[0]
	switch typ {
	case jString:
		if c != '"' {
			return fmt.Errorf("a JSON %s, want a string", jsonKind(c))
		}
		return nil
	case jTime:
		_, err := microTime(raw)
		return err
	case jInt32, jInt64:
		if c != '-' && (c < '0' || c > '9') {
			return fmt.Errorf("a JSON %s, want an integer", jsonKind(c))
		}
		bits := 32
		if typ == jInt64 {
			bits = 64
		}
		if _, err := strconv.ParseInt(string(raw), 10, bits); err != nil {
			return fmt.Errorf("%s is not a %d-bit integer", raw, bits)
		}
		return nil
	case jStrings, jObjects:
		if c != '[' {
			return fmt.Errorf("a JSON %s, want an array", jsonKind(c))
		}
		elem, elemSub := jString, []fieldSpec(nil)
		if typ == jObjects {
			elem, elemSub = jObject, sub
		}
		return eachElement(raw, func(v []byte) error { return checkType(v, elem, elemSub, depth+1) })
	case jStringMap, jStringsMap:
		if c != '{' {
			return fmt.Errorf("a JSON %s, want an object", jsonKind(c))
		}
		elem := jString
		if typ == jStringsMap {
			elem = jStrings
		}
		return eachMember(raw, func(_, v []byte) error { return checkType(v, elem, nil, depth+1) })
	case jObject:
		if c != '{' {
			return fmt.Errorf("a JSON %s, want an object", jsonKind(c))
		}
		var seen uint32
		return eachMember(raw, func(key, v []byte) error {
			for i, fs := range sub {
				if string(key) == fs.name {
					if seen&(1<<i) != 0 {
						return fmt.Errorf("field %q appears more than once", fs.name)
					}
					seen |= 1 << i
					if err := checkType(v, fs.typ, fs.sub, depth+1); err != nil {
						return fmt.Errorf("%s: %w", fs.name, err)
					}
					return nil
				}
			}
			for _, fs := range sub {
				if bytes.EqualFold(key, []byte(fs.name)) {
					return fmt.Errorf("field %q must be spelled %q", key, fs.name)
				}
			}
			return nil
		})
	}
	return nil
}

// eachElement calls fn with every element of the array raw, which must be
// valid JSON (every caller's input was checked by an earlier pass): values
// are skipped without checking them again.
func eachElement(raw []byte, fn func(v []byte) error) error {
	_, err := jsonscan.Elements(raw, 0, true, func(vs, ve int) error { return fn(raw[vs:ve]) })
	return err
}

// eachMember calls fn with the decoded key and the raw value of every
// member of the object raw, which must be valid JSON (see eachElement). The
// key must not be kept.
func eachMember(raw []byte, fn func(key, v []byte) error) error {
	return eachMemberAt(raw, 0, func(key []byte, vs, ve int) error { return fn(key, raw[vs:ve]) })
}

// eachMemberAt is eachMember with value offsets relative to raw, for the
// object at raw[open].
func eachMemberAt(raw []byte, open int, fn func(key []byte, vs, ve int) error) error {
	_, err := jsonscan.Members(raw, open, true, func(m jsonscan.Member) error { return fn(m.Name(raw), m.Val, m.ValEnd) })
	return err
}

// microTime decodes a metav1.MicroTime exactly as its UnmarshalJSON does;
// null is the zero time.
func microTime(raw []byte) (time.Time, error) {
	if raw == nil || isNull(raw) {
		return time.Time{}, nil
	}
	if raw[0] != '"' {
		return time.Time{}, fmt.Errorf("a JSON %s, want a time string", jsonKind(raw[0]))
	}
	if t, ok := canonicalMicroTime(raw); ok {
		return t, nil
	}
	s, err := stringValue(raw)
	if err != nil {
		return time.Time{}, err
	}
	t, err := time.Parse(rfc3339Micro, s)
	if err != nil {
		return time.Time{}, err
	}
	return t, nil
}

// rfc3339Micro is metav1.RFC3339Micro, the layout of audit timestamps.
const rfc3339Micro = "2006-01-02T15:04:05.000000Z07:00"

// canonicalMicroTime parses the form the API server writes,
// "2006-01-02T15:04:05.000000Z" in quotes, without allocating. Anything
// else is left to time.Parse (ok false); what it accepts, time.Parse
// accepts with the same instant.
func canonicalMicroTime(tok []byte) (time.Time, bool) {
	if len(tok) != 29 || tok[0] != '"' || tok[28] != '"' || tok[27] != 'Z' ||
		tok[5] != '-' || tok[8] != '-' || tok[11] != 'T' || tok[14] != ':' || tok[17] != ':' || tok[20] != '.' {
		return time.Time{}, false
	}
	num := func(from, to int) (int, bool) {
		n := 0
		for _, c := range tok[from:to] {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	year, ok1 := num(1, 5)
	month, ok2 := num(6, 8)
	day, ok3 := num(9, 11)
	hour, ok4 := num(12, 14)
	minute, ok5 := num(15, 17)
	sec, ok6 := num(18, 20)
	micro, ok7 := num(21, 27)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) || month < 1 || month > 12 || day < 1 ||
		day > daysIn(time.Month(month), year) || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, micro*1000, time.UTC), true
}

func daysIn(m time.Month, year int) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// internedAuditValue decodes a JSON string, returning the constants of audit
// events without allocating.
func internedAuditValue(tok []byte) (string, error) {
	if tok[0] != '"' {
		return "", fmt.Errorf("a JSON %s, want a string", jsonKind(tok[0]))
	}
	switch string(tok[1 : len(tok)-1]) {
	case "Event":
		return "Event", nil
	case AuditAPIVersion:
		return AuditAPIVersion, nil
	case AuditAPIVersionV1beta1:
		return AuditAPIVersionV1beta1, nil
	case "RequestReceived":
		return "RequestReceived", nil
	case "ResponseStarted":
		return "ResponseStarted", nil
	case "ResponseComplete":
		return "ResponseComplete", nil
	case "Panic":
		return "Panic", nil
	case "None":
		return "None", nil
	case "Metadata":
		return "Metadata", nil
	case "Request":
		return "Request", nil
	case "RequestResponse":
		return "RequestResponse", nil
	case "get":
		return "get", nil
	case "list":
		return "list", nil
	case "watch":
		return "watch", nil
	case "create":
		return "create", nil
	case "update":
		return "update", nil
	case "patch":
		return "patch", nil
	case "delete":
		return "delete", nil
	}
	return stringValue(tok)
}

func knownStageString(s string) bool {
	switch s {
	case "RequestReceived", "ResponseStarted", "ResponseComplete", "Panic":
		return true
	}
	return false
}

func knownLevelString(s string) bool {
	switch s {
	case "None", "Metadata", "Request", "RequestResponse":
		return true
	}
	return false
}

// objectRef holds the decoded fields of an event's objectRef.
type objectRef struct {
	resource, subresource, group, namespace, name string
}

func objectRefOf(item []byte, s *scanned) objectRef {
	var ref objectRef
	raw := s.raw(item, fObjectRef)
	if raw == nil || raw[0] != '{' {
		return ref
	}
	_ = eachMember(raw, func(key, v []byte) error {
		if v[0] != '"' {
			return nil
		}
		var dst *string
		switch string(key) {
		case "resource":
			dst = &ref.resource
		case "subresource":
			dst = &ref.subresource
		case "apiGroup":
			dst = &ref.group
		case "namespace":
			dst = &ref.namespace
		case "name":
			dst = &ref.name
		default:
			return nil
		}
		if str, err := stringValue(v); err == nil {
			*dst = str
		}
		return nil
	})
	return ref
}

func (r objectRef) subject() string {
	if r.resource == "" {
		return ""
	}
	n := len(r.namespace) + len(r.resource) + len(r.group) + len(r.name) + len(r.subresource) + 4
	b := make([]byte, 0, n)
	if r.namespace != "" {
		b = append(append(b, r.namespace...), '/')
	}
	b = append(b, r.resource...)
	if r.group != "" {
		b = append(append(b, '.'), r.group...)
	}
	if r.name != "" {
		b = append(append(b, '/'), r.name...)
	}
	if r.subresource != "" {
		b = append(append(b, '/'), r.subresource...)
	}
	// The envelope refuses control characters in a subject; names from the
	// API server have none, but objectRef is only as clean as its input.
	for i, c := range b {
		if c < 0x20 || c == 0x7f {
			b[i] = '_'
		}
	}
	if len(b) > maxSubject {
		cut := maxSubject
		for cut > 0 && b[cut]&0xc0 == 0x80 {
			cut--
		}
		b = b[:cut]
	}
	return string(b)
}

// maxSubject caps an envelope subject built from an objectRef.
const maxSubject = 1024

// context tells what the request and response objects of the event are.
func (r objectRef) context() redactCtx {
	switch {
	case r.resource == "secrets" && r.group == "":
		return ctxSecret
	case r.resource == "serviceaccounts" && r.subresource == "token" && r.group == "":
		return ctxTokenRequest
	case r.resource == "tokenreviews" && r.group == "authentication.k8s.io":
		return ctxTokenReview
	}
	return ctxNone
}

// mayHoldSecret is a cheap pre-check: an object without these bytes has
// no kind Secret, SecretList, TokenRequest or TokenReview anywhere, also not
// inside a last-applied-configuration annotation (escapes are \u sequences).
func mayHoldSecret(obj []byte) bool {
	return bytes.Contains(obj, []byte("Secret")) || bytes.Contains(obj, []byte("Token")) ||
		bytes.Contains(obj, []byte(`\u`))
}

// annotate adds members to the event's annotations (creating them when
// absent or null). They go last, so they win over a member of the same name
// under encoding/json's last-one-wins rule.
func (p *AuditPreparer) annotate(s *scanned, item []byte, r *redactor, members string) {
	if !s.present[fAnnotations] {
		sep := ","
		if len(p.members) == 0 {
			sep = ""
		}
		r.add(s.close, s.close, sep+`"annotations":{`+members+`}`)
		return
	}
	v := s.val[fAnnotations]
	if isNull(item[v[0]:v[1]]) {
		r.add(v[0], v[1], "{"+members+"}")
		return
	}
	closing := v[1] - 1 // the annotations object's '}'
	if skipSpace(item, v[0]+1) == closing {
		r.add(closing, closing, members)
	} else {
		r.add(closing, closing, ","+members)
	}
}

func truncationAnnotations(size int) string {
	return `"` + AuditAnnotationTruncated + `":"true","` + AuditAnnotationOriginalSize + `":"` + strconv.Itoa(size) + `"`
}

// dropMember removes m and one comma next to it.
func (p *AuditPreparer) dropMember(r *redactor, item []byte, s *scanned, m member) {
	idx := slices.Index(p.members, m)
	start, end := m.keyStart, m.valEnd
	if idx+1 < len(p.members) {
		end = p.members[idx+1].keyStart
	} else if idx > 0 {
		start = p.members[idx-1].valEnd
	} else {
		end = s.close
	}
	r.drop(start, end)
	r.add(start, end, "")
}

// appendAuditSummary writes the bounded summary of an event that is too
// large even without its request and response objects: the fields analyzers
// need, long strings cut, large parts left out.
func appendAuditSummary(dst, item []byte, s *scanned, size int) []byte {
	dst = append(dst, `{"kind":"Event","apiVersion":"`+AuditAPIVersion+`"`...)
	put := func(f auditField, raw []byte) {
		dst = append(dst, ',', '"')
		dst = append(dst, auditFieldNames[f]...)
		dst = append(dst, '"', ':')
		dst = append(dst, raw...)
	}
	for _, f := range []auditField{fLevel, fAuditID, fStage, fRequestURI, fVerb, fUser, fImpersonatedUser,
		fSourceIPs, fUserAgent, fObjectRef, fResponseStatus, fRequestReceivedTimestamp, fStageTimestamp} {
		raw := s.raw(item, f)
		if raw == nil || isNull(raw) {
			continue
		}
		switch f {
		case fRequestURI:
			put(f, cutString(raw, capURI))
		case fLevel, fAuditID, fStage, fVerb, fUserAgent:
			put(f, cutString(raw, capShortString))
		case fUser:
			if len(raw) <= capObject {
				put(f, raw)
				break
			}
			// Keep who it was: the user name, cut.
			var name []byte
			_ = eachMember(raw, func(key, v []byte) error {
				if string(key) == "username" && v[0] == '"' {
					name = v
				}
				return nil
			})
			dst = append(dst, `,"user":{`...)
			if name != nil {
				dst = append(dst, `"username":`...)
				dst = append(dst, cutString(name, capShortString)...)
			}
			dst = append(dst, '}')
		default:
			if len(raw) <= capObject {
				put(f, raw)
			}
		}
	}
	dst = append(dst, `,"annotations":{`...)
	if raw := s.raw(item, fAnnotations); raw != nil && len(raw) <= capAnnotations && raw[0] == '{' {
		if body := bytes.TrimSpace(raw[1 : len(raw)-1]); len(body) > 0 {
			dst = append(dst, body...)
			dst = append(dst, ',')
		}
	}
	dst = append(dst, truncationAnnotations(size)...)
	return append(dst, '}', '}')
}

// cutString returns the JSON string token tok cut to at most n bytes of
// JSON, at an escape and UTF-8 boundary, still a valid JSON string.
func cutString(tok []byte, n int) []byte {
	if len(tok) <= n || tok[0] != '"' {
		return tok
	}
	limit := n - 1 // room for the closing quote
	cut := 1
	for i := 1; i < len(tok)-1; {
		w := 1
		if tok[i] == '\\' {
			w = 2
			if i+1 < len(tok) && tok[i+1] == 'u' {
				w = 6
			}
		} else if tok[i] >= 0x80 {
			for w < 4 && i+w < len(tok)-1 && tok[i+w]&0xc0 == 0x80 {
				w++
			}
		}
		if i+w > limit {
			break
		}
		i += w
		cut = i
	}
	out := make([]byte, 0, cut+1)
	out = append(out, tok[:cut]...)
	return append(out, '"')
}
