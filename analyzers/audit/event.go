// Package audit is a lazy, read-only view of one Kubernetes audit event for
// the analyzers. Parse scans the raw JSON once, decodes the small fields
// every analyzer reads (verb, user, objectRef, source IPs, response code,
// ...), checks the event the way schemas.ParseAuditEvent does, and leaves
// the large parts (requestObject, responseObject, annotations) as raw bytes
// until someone asks for them. An analyzer never pays for the full
// encoding/json decode into the upstream type.
package audit

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"

	"github.com/faultline/faultline/internal/jsonscan"
	"github.com/faultline/faultline/schemas"
)

// User is the authenticated (or impersonated) identity of a request.
type User struct {
	Username string
	UID      string
	Groups   []string
	extra    []byte // raw, decoded by Extra
}

// Extra decodes the user's extra attributes; values that are not lists of
// strings are left out.
func (u *User) Extra() map[string][]string {
	if len(u.extra) == 0 {
		return nil
	}
	out := map[string][]string{}
	each(u.extra, func(k string, v []byte) {
		if l, ok := strList(v); ok {
			out[k] = l
		}
	})
	return out
}

// ObjectRef is the object a request is about.
type ObjectRef struct {
	Resource    string
	Namespace   string
	Name        string
	UID         string
	APIGroup    string
	APIVersion  string
	Subresource string
}

// Event is one parsed audit event. The exported fields are decoded by Parse;
// the methods decode the rest on first use. An Event is safe for concurrent
// readers.
type Event struct {
	Raw []byte

	AuditID    string
	Stage      string
	Level      string
	Verb       string
	RequestURI string
	UserAgent  string
	User       User
	// Impersonated is nil unless the request impersonated someone.
	Impersonated *User
	SourceIPs    []string
	// HasObjectRef tells whether the event names an object (resource
	// requests do, non-resource URLs such as /metrics do not).
	HasObjectRef bool
	ObjectRef    ObjectRef
	// Code is responseStatus.code, 0 when absent.
	Code int

	requestReceived, stageTime string
	reqObj, respObj, annot     []byte
	kind, apiVersion           string
	// tail is where parsing stopped (the request or response object), -1
	// when the whole event is read.
	tail    int
	tailErr error
	trusted bool // the input's syntax was checked before Parse
	// lists holds SourceIPs and the users' groups when they fit: one
	// allocation fewer each.
	lists     [6]string
	listsUsed int
	// rank is the order (see order) of the last known field read;
	// unordered tells that a field came after one that follows it in the
	// API server's order.
	rank      int8
	unordered bool

	once struct {
		req, resp, annot, times, query, tail sync.Once
	}
	reqVal, respVal  any
	reqErr, respErr  error
	annotations      map[string]string
	received, staged time.Time
	query            url.Values
}

// ErrNotAuditEvent is schemas.ErrNotAuditEvent: every Parse error wraps it.
var ErrNotAuditEvent = schemas.ErrNotAuditEvent

// errEventList is Parse's error for an EventList.
var errEventList = errors.New(`kind is "EventList", want Event`)

// Parse reads one audit event (audit.k8s.io/v1 or v1beta1). raw is kept, not
// copied: the caller must not change it while the Event is in use. The error
// wraps ErrNotAuditEvent and says what is wrong.
func Parse(raw []byte) (*Event, error) {
	return parse(raw, false)
}

// ParseValid is Parse for input already known to be valid JSON (the data of
// an envelope from schemas.DecodeEnvelope, an item from
// schemas.SplitAuditEvents): the values it does not read are skipped
// without being checked again, which is most of an event's bytes.
func ParseValid(raw []byte) (*Event, error) {
	return parse(raw, true)
}

func parse(raw []byte, trusted bool) (*Event, error) {
	ev := new(Event)
	if err := ev.reparse(raw, trusted); err != nil {
		return nil, err
	}
	return ev, nil
}

// reparse makes ev the event in raw (a reader that reuses its memory
// reuses its events too).
func (ev *Event) reparse(raw []byte, trusted bool) error {
	*ev = Event{Raw: raw, tail: -1, trusted: trusted}
	if err := ev.parse(trusted); err != nil {
		return fmt.Errorf("%w: %w", ErrNotAuditEvent, err)
	}
	return nil
}

func (ev *Event) parse(trusted bool) error {
	b := ev.Raw
	start := jsonscan.SkipSpace(b, 0)
	if start >= len(b) || b[start] != '{' {
		return errors.New("not a JSON object")
	}
	// With trusted input, the request and response objects (most of an
	// event, which most rules never look at) and what follows them are
	// left for later (completeTail). The API server writes every field
	// read eagerly before them; an event whose members came in another
	// order (keys sorted by some tool) is read whole, since its user or
	// objectRef may follow them.
	end, stoppedAt, err := ev.members(start+1, trusted, trusted)
	if err != nil {
		return err
	}
	if stoppedAt >= 0 {
		ev.tail = stoppedAt
	} else if err := jsonscan.Trailing(b, end); err != nil {
		return err
	}
	if err := ev.checkHead(); err != nil {
		return err
	}
	if ev.tail < 0 {
		return ev.checkTail()
	}
	return nil
}

// members reads the event's members from b[i:] (just after '{' or a
// ',') in one pass: each value is checked (unless valid) as it is
// decoded. With mayStop it stops before the request or response object
// when the members so far came in the API server's order, up to the user
// at least (every event has one), and returns stoppedAt, where a later
// call resumes.
func (ev *Event) members(i int, valid, mayStop bool) (end, stoppedAt int, err error) {
	s := scanner{b: ev.Raw, valid: valid, ev: ev}
	b := s.b
	if i = s.space(i); i < len(b) && b[i] == '}' {
		return i + 1, -1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, -1, jsonscan.Errorf(i, "expected object key")
		}
		kend, escaped, err := jsonscan.String(b, i)
		if err != nil {
			return 0, -1, err
		}
		name := s.name(i, kend, escaped)
		if mayStop && !ev.unordered && ev.rank >= rUser && (string(name) == "requestObject" || string(name) == "responseObject") {
			return 0, i, nil
		}
		j := s.space(kend)
		if j >= len(b) || b[j] != ':' {
			return 0, -1, jsonscan.Errorf(j, "expected ':' after object key")
		}
		if j, err = ev.value(s, name, s.space(j+1)); err != nil {
			return 0, -1, err
		}
		switch i = s.space(j); {
		case i >= len(b):
			return 0, -1, jsonscan.Errorf(i, "unexpected end of object")
		case b[i] == '}':
			return i + 1, -1, nil
		case b[i] == ',':
			i = s.space(i + 1)
		default:
			return 0, -1, jsonscan.Errorf(i, "expected ',' or '}' in object")
		}
	}
}

// The known top-level fields, numbered in the API server's member order
// (the field order of auditv1.Event).
const (
	rKind int8 = iota + 1
	rAPIVersion
	rLevel
	rAuditID
	rStage
	rRequestURI
	rVerb
	rUser
	rImpersonatedUser
	rSourceIPs
	rUserAgent
	rObjectRef
	rResponseStatus
	rRequestObject
	rResponseObject
	rRequestReceivedTimestamp
	rStageTimestamp
	rAnnotations
)

// order is the number of a known field, 0 for another.
func order(name string) int8 {
	switch name {
	case "kind":
		return rKind
	case "apiVersion":
		return rAPIVersion
	case "level":
		return rLevel
	case "auditID":
		return rAuditID
	case "stage":
		return rStage
	case "requestURI":
		return rRequestURI
	case "verb":
		return rVerb
	case "user":
		return rUser
	case "impersonatedUser":
		return rImpersonatedUser
	case "sourceIPs":
		return rSourceIPs
	case "userAgent":
		return rUserAgent
	case "objectRef":
		return rObjectRef
	case "responseStatus":
		return rResponseStatus
	case "requestObject":
		return rRequestObject
	case "responseObject":
		return rResponseObject
	case "requestReceivedTimestamp":
		return rRequestReceivedTimestamp
	case "stageTimestamp":
		return rStageTimestamp
	case "annotations":
		return rAnnotations
	}
	return 0
}

// value reads the value of the top-level member name at b[i:] and returns
// its end.
func (ev *Event) value(s scanner, name []byte, i int) (int, error) {
	r := order(string(name))
	if r > 0 {
		if ev.tail >= 0 && r < rRequestObject {
			// Read after the event was handed out (completeTail): the
			// fields before the objects were read then and stay as they
			// are (the event is not changed under its readers).
			return s.skip(i, 1)
		}
		if r <= ev.rank {
			ev.unordered = true
		}
		ev.rank = r
	}
	switch r {
	case rKind:
		end, err := s.str(i, "kind", &ev.kind)
		if err == nil && ev.kind == "EventList" {
			// Not an event: stop here (a reader splits it instead).
			return 0, errEventList
		}
		return end, err
	case rAPIVersion:
		return s.str(i, "apiVersion", &ev.apiVersion)
	case rAuditID:
		return s.str(i, "auditID", &ev.AuditID)
	case rStage:
		return s.str(i, "stage", &ev.Stage)
	case rLevel:
		return s.str(i, "level", &ev.Level)
	case rVerb:
		return s.str(i, "verb", &ev.Verb)
	case rRequestURI:
		return s.str(i, "requestURI", &ev.RequestURI)
	case rUserAgent:
		return s.str(i, "userAgent", &ev.UserAgent)
	case rRequestReceivedTimestamp:
		return s.str(i, "requestReceivedTimestamp", &ev.requestReceived)
	case rStageTimestamp:
		return s.str(i, "stageTimestamp", &ev.stageTime)
	case rSourceIPs:
		return s.strList(i, 2, "sourceIPs", &ev.SourceIPs)
	case rUser:
		return s.user(i, &ev.User, &userField)
	case rImpersonatedUser:
		if s.null(i) {
			return s.skip(i, 1)
		}
		ev.Impersonated = &User{}
		return s.user(i, ev.Impersonated, &impersonatedField)
	case rObjectRef:
		if s.null(i) {
			return s.skip(i, 1)
		}
		ev.HasObjectRef = true
		return s.objectRef(i, &ev.ObjectRef)
	case rResponseStatus:
		if s.null(i) {
			return s.skip(i, 1)
		}
		return s.status(i, &ev.Code)
	}
	end, err := s.skip(i, 1)
	if err != nil {
		return 0, err
	}
	v := s.b[i:end]
	switch r {
	case rRequestObject:
		ev.reqObj = nullable(v)
	case rResponseObject:
		ev.respObj = nullable(v)
	case rAnnotations:
		if !isNull(v) && v[0] != '{' {
			return 0, errors.New("annotations is not an object")
		}
		ev.annot = nullable(v)
	}
	return end, nil
}

// checkHead checks what every event has before its request object.
func (ev *Event) checkHead() error {
	switch {
	case ev.kind != "" && ev.kind != "Event":
		return fmt.Errorf("kind is %q, want Event", ev.kind)
	case ev.apiVersion != "" && ev.apiVersion != schemas.AuditAPIVersion && ev.apiVersion != schemas.AuditAPIVersionV1beta1:
		return fmt.Errorf("apiVersion is %q, want %s or %s", ev.apiVersion, schemas.AuditAPIVersion, schemas.AuditAPIVersionV1beta1)
	case ev.AuditID == "":
		return errors.New("missing auditID")
	case ev.Stage == "":
		return errors.New("missing stage")
	case !knownStage(ev.Stage):
		return fmt.Errorf("stage %q is not RequestReceived, ResponseStarted, ResponseComplete or Panic", ev.Stage)
	case ev.Level == "":
		return errors.New("missing level")
	case !knownLevel(ev.Level):
		return fmt.Errorf("level %q is not None, Metadata, Request or RequestResponse", ev.Level)
	case ev.Verb == "":
		return errors.New("missing verb")
	case ev.RequestURI == "":
		return errors.New("missing requestURI")
	}
	return nil
}

// checkTail checks the fields that may follow the request object.
func (ev *Event) checkTail() error {
	switch {
	case ev.requestReceived == "":
		return errors.New("missing requestReceivedTimestamp")
	case ev.stageTime == "":
		return errors.New("missing stageTimestamp")
	}
	return nil
}

// completeTail reads the members Parse left for later (ParseValid stops at
// the request or response object).
func (ev *Event) completeTail() error {
	ev.once.tail.Do(func() {
		if ev.tail < 0 {
			return
		}
		end, _, err := ev.members(ev.tail, true, false)
		if err == nil {
			err = jsonscan.Trailing(ev.Raw, end)
		}
		if err == nil {
			err = ev.checkTail()
		}
		if err != nil {
			ev.tailErr = fmt.Errorf("%w: %v", ErrNotAuditEvent, err)
		}
		ev.tail = -1
	})
	return ev.tailErr
}

// Complete reads and checks the whole event: after ParseValid, an event
// may lack fields that follow its request object (the timestamps), which
// only this tells. The error wraps ErrNotAuditEvent.
func (ev *Event) Complete() error { return ev.completeTail() }

func clip(v []byte) string {
	if len(v) > 40 {
		return string(v[:40]) + "…"
	}
	return string(v)
}

func nullable(v []byte) []byte {
	if isNull(v) {
		return nil
	}
	return v
}

func knownStage(s string) bool {
	switch auditv1.Stage(s) {
	case auditv1.StageRequestReceived, auditv1.StageResponseStarted, auditv1.StageResponseComplete, auditv1.StagePanic:
		return true
	}
	return false
}

func knownLevel(l string) bool {
	switch auditv1.Level(l) {
	case auditv1.LevelNone, auditv1.LevelMetadata, auditv1.LevelRequest, auditv1.LevelRequestResponse:
		return true
	}
	return false
}

// ID is the event's envelope id, schemas.AuditEventID(auditID, stage).
func (ev *Event) ID() string { return schemas.AuditEventID(ev.AuditID, ev.Stage) }

// Resource is "resource" or "resource/subresource", "" for non-resource
// requests.
func (ev *Event) Resource() string {
	if ev.ObjectRef.Subresource == "" {
		return ev.ObjectRef.Resource
	}
	return ev.ObjectRef.Resource + "/" + ev.ObjectRef.Subresource
}

// RequestObject is requestObject decoded into generic JSON values
// (map[string]any, []any, string, float64, bool, nil); nil when absent.
func (ev *Event) RequestObject() (any, error) {
	if err := ev.completeTail(); err != nil {
		return nil, err
	}
	ev.once.req.Do(func() { ev.reqVal, ev.reqErr = decodeAny(ev.reqObj, "requestObject") })
	return ev.reqVal, ev.reqErr
}

// ResponseObject is responseObject decoded like RequestObject.
func (ev *Event) ResponseObject() (any, error) {
	if err := ev.completeTail(); err != nil {
		return nil, err
	}
	ev.once.resp.Do(func() { ev.respVal, ev.respErr = decodeAny(ev.respObj, "responseObject") })
	return ev.respVal, ev.respErr
}

// HasRequestObject tells whether the event carries a request body.
func (ev *Event) HasRequestObject() bool { _ = ev.completeTail(); return len(ev.reqObj) > 0 }

func decodeAny(raw []byte, name string) (any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	v, end, err := jsonscan.Value(raw, 0, true)
	if err == nil {
		err = jsonscan.Trailing(raw, end)
	}
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", name, err)
	}
	return v, nil
}

// Annotations are the event's annotations (never nil); values that are not
// strings are left out.
func (ev *Event) Annotations() map[string]string {
	_ = ev.completeTail()
	ev.once.annot.Do(func() {
		ev.annotations = map[string]string{}
		if len(ev.annot) == 0 {
			return
		}
		each(ev.annot, func(k string, v []byte) {
			if s, ok := str(v); ok {
				ev.annotations[k] = s
			}
		})
	})
	return ev.annotations
}

func (ev *Event) parseTimes() {
	_ = ev.completeTail()
	ev.once.times.Do(func() {
		ev.received, _ = time.Parse(time.RFC3339Nano, ev.requestReceived)
		ev.staged, _ = time.Parse(time.RFC3339Nano, ev.stageTime)
	})
}

// ReceivedAt is requestReceivedTimestamp (zero if unparsable).
func (ev *Event) ReceivedAt() time.Time { ev.parseTimes(); return ev.received }

// StageAt is stageTimestamp (zero if unparsable).
func (ev *Event) StageAt() time.Time { ev.parseTimes(); return ev.staged }

// Time is when the request happened: requestReceivedTimestamp, else
// stageTimestamp.
func (ev *Event) Time() time.Time {
	if t := ev.ReceivedAt(); !t.IsZero() {
		return t
	}
	return ev.StageAt()
}

// Query is the requestURI's query (exec's command, container, ...).
func (ev *Event) Query() url.Values {
	ev.once.query.Do(func() {
		if _, q, ok := strings.Cut(ev.RequestURI, "?"); ok {
			ev.query, _ = url.ParseQuery(q)
		}
		if ev.query == nil {
			ev.query = url.Values{}
		}
	})
	return ev.query
}

// Upstream returns the fields analyzers copy into findings as the upstream
// type (without request and response objects), for
// schemas.Finding.SetAuditContext.
func (ev *Event) Upstream() *auditv1.Event {
	out := &auditv1.Event{
		TypeMeta:   metav1.TypeMeta{APIVersion: schemas.AuditAPIVersion, Kind: "Event"},
		Level:      auditv1.Level(ev.Level),
		AuditID:    typesUID(ev.AuditID),
		Stage:      auditv1.Stage(ev.Stage),
		RequestURI: ev.RequestURI,
		Verb:       ev.Verb,
		User:       toUserInfo(ev.User),
		SourceIPs:  ev.SourceIPs,
		UserAgent:  ev.UserAgent,
	}
	if ev.Impersonated != nil {
		u := toUserInfo(*ev.Impersonated)
		out.ImpersonatedUser = &u
	}
	if ev.HasObjectRef {
		r := ev.ObjectRef
		out.ObjectRef = &auditv1.ObjectReference{
			Resource: r.Resource, Namespace: r.Namespace, Name: r.Name, UID: typesUID(r.UID),
			APIGroup: r.APIGroup, APIVersion: r.APIVersion, Subresource: r.Subresource,
		}
	}
	if ev.Code != 0 {
		out.ResponseStatus = &metav1.Status{Code: int32(ev.Code)}
	}
	out.RequestReceivedTimestamp = metav1.NewMicroTime(ev.ReceivedAt())
	out.StageTimestamp = metav1.NewMicroTime(ev.StageAt())
	return out
}

func typesUID(s string) types.UID { return types.UID(s) }

func toUserInfo(u User) authnv1.UserInfo {
	info := authnv1.UserInfo{Username: u.Username, UID: u.UID, Groups: u.Groups}
	if extra := u.Extra(); len(extra) > 0 {
		info.Extra = make(map[string]authnv1.ExtraValue, len(extra))
		for k, v := range extra {
			info.Extra[k] = v
		}
	}
	return info
}
