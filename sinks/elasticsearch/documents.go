package elasticsearch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"

	"github.com/faultline/faultline/internal/jsonscan"
	"github.com/faultline/faultline/sinks"
)

// Data sets of the data streams the indexer writes: the data stream of a
// data set is logs-<dataset>-<namespace>.
const (
	// DatasetAudit is Elastic's Kubernetes integration's, so Elastic's
	// prebuilt Kubernetes detection rules (index logs-kubernetes.*,
	// event.dataset kubernetes.audit_logs) find Faultline's audit events.
	DatasetAudit       = "kubernetes.audit_logs"
	DatasetFindings    = "faultline.findings"
	DatasetExperiments = "faultline.experiments"
	DatasetKubeEvents  = "faultline.kevents"
)

// Datasets lists the data sets, in template order.
func Datasets() []string {
	return []string{DatasetAudit, DatasetFindings, DatasetExperiments, DatasetKubeEvents}
}

// DataStream is the name of a data set's data stream in a namespace.
func DataStream(dataset, namespace string) string { return "logs-" + dataset + "-" + namespace }

// DatasetOf returns the data set a kind of document goes to.
func DatasetOf(kind string) string {
	switch kind {
	case KindAudit:
		return DatasetAudit
	case KindFinding:
		return DatasetFindings
	case KindKubeEvent:
		return DatasetKubeEvents
	default:
		return DatasetExperiments
	}
}

// ErrNoLayout is wrapped when a document's type has no layout in
// Elasticsearch (a permanent failure).
var ErrNoLayout = errors.New("no Elasticsearch document layout for this type")

// transformer makes the Elasticsearch document of a bus document. It is
// safe for concurrent use.
type transformer struct {
	namespace string
	// streams and tails are per data set: the data stream's name, and the
	// document's closing data_stream member.
	streams map[string]string
	tails   map[string][]byte
}

func newTransformer(namespace string) *transformer {
	t := &transformer{namespace: namespace, streams: map[string]string{}, tails: map[string][]byte{}}
	for _, ds := range Datasets() {
		t.streams[ds] = DataStream(ds, namespace)
		tail := []byte(`"data_stream":{"type":"logs","dataset":`)
		tail = appendString(tail, ds)
		tail = append(tail, `,"namespace":`...)
		tail = appendString(tail, namespace)
		tail = append(tail, "}}"...)
		t.tails[ds] = tail
	}
	return t
}

// appendDocument appends the Elasticsearch document of d to dst and
// returns it with the name of its data stream. An error is permanent: the
// same document can never be written.
func (t *transformer) appendDocument(dst []byte, d *sinks.Document) ([]byte, string, error) {
	kind, ok := sinks.KindOf(d.Type)
	if !ok {
		return dst, "", fmt.Errorf("type %q: %w", d.Type, ErrNoLayout)
	}
	body := bytes.TrimSpace(d.Body)
	// A _bulk body is one document per line: JSON white space between
	// tokens (strings cannot hold a raw newline) is removed.
	if bytes.IndexByte(body, '\n') >= 0 || bytes.IndexByte(body, '\r') >= 0 {
		var c bytes.Buffer
		if err := json.Compact(&c, body); err != nil {
			return dst, "", fmt.Errorf("%s document: %w", kind, err)
		}
		body = c.Bytes()
	}
	if !isObject(body) {
		return dst, "", fmt.Errorf("%s document: data is not a JSON object", kind)
	}
	ds := DatasetOf(kind)
	start := len(dst)
	var err error
	switch kind {
	case KindAudit:
		dst, err = t.appendAudit(dst, d, body)
	case KindFinding:
		dst, err = t.appendFinding(dst, d, body)
	case KindKubeEvent:
		dst, err = t.appendKubeEvent(dst, d, body)
	default:
		dst, err = t.appendExperiment(dst, d, kind, body)
	}
	if err != nil {
		return dst[:start], "", fmt.Errorf("%s document: %w", kind, err)
	}
	dst = append(dst, t.tails[ds]...)
	return dst, t.streams[ds], nil
}

// members returns the raw values of the named members of the object body
// (the last of a repeated name).
func members(body []byte, names ...string) ([][]byte, error) {
	out := make([][]byte, len(names))
	_, err := jsonscan.Members(body, 0, false, func(m jsonscan.Member) error {
		name := m.Name(body)
		for i, n := range names {
			if string(name) == n {
				out[i] = m.Value(body)
			}
		}
		return nil
	})
	return out, err
}

// member returns the raw value of one member of an object value, nil when
// absent or when v is not an object. v must be valid JSON.
func member(v []byte, name string) []byte {
	if !isObject(v) {
		return nil
	}
	var out []byte
	_, _ = jsonscan.Members(v, 0, true, func(m jsonscan.Member) error {
		if string(m.Name(v)) == name {
			out = m.Value(v)
		}
		return nil
	})
	return out
}

// str decodes a string token; "" for anything else.
func str(v []byte) string {
	if !isString(v) {
		return ""
	}
	s, _ := jsonscan.Unquote(v)
	return s
}

// appendFinding writes the ECS alert as it is, less any data_stream member
// (the tail adds it), with @timestamp from the envelope when it has none.
func (t *transformer) appendFinding(dst []byte, d *sinks.Document, body []byte) ([]byte, error) {
	dst = append(dst, '{')
	hasTime := false
	_, err := jsonscan.Members(body, 0, false, func(m jsonscan.Member) error {
		switch string(m.Name(body)) {
		case "data_stream":
			return nil
		case "@timestamp":
			hasTime = true
		}
		dst = append(dst, body[m.Key:m.KeyEnd]...)
		dst = append(dst, ':')
		dst = append(dst, m.Value(body)...)
		dst = append(dst, ',')
		return nil
	})
	if err != nil {
		return dst, err
	}
	if !hasTime {
		if d.Time.IsZero() {
			return dst, errors.New("no @timestamp and no envelope time")
		}
		dst = append(dst, `"@timestamp":`...)
		dst = appendTime(dst, d.Time)
		dst = append(dst, ',')
	}
	return dst, nil
}

// appendCommon writes the members every Faultline document (but findings
// and audit events) shares: event kind and data set, the cluster, and the
// envelope's type in faultline.type.
func appendCommon(dst []byte, d *sinks.Document, dataset string) []byte {
	dst = append(dst, `"event":{"kind":"event","dataset":`...)
	dst = appendString(dst, dataset)
	dst = append(dst, `},"orchestrator":{"type":"kubernetes","cluster":{"name":`...)
	dst = appendString(dst, d.Cluster)
	return append(dst, "}},"...)
}

// appendTimestamp writes @timestamp: the raw date string v when it is one,
// else the envelope time.
func appendTimestamp(dst []byte, v []byte, d *sinks.Document) ([]byte, error) {
	dst = append(dst, `"@timestamp":`...)
	switch {
	case isString(v) && len(v) > 2:
		dst = append(dst, v...)
	case !d.Time.IsZero():
		dst = appendTime(dst, d.Time)
	default:
		return dst, errors.New("no time in the document or its envelope")
	}
	return append(dst, ','), nil
}

// appendExperiment writes a deviation, fault status or experiment report
// under faultline.<kind>, with labels.experiment_id (as findings in an
// experiment's blast radius carry it) and a message.
func (t *transformer) appendExperiment(dst []byte, d *sinks.Document, kind string, body []byte) ([]byte, error) {
	var timeField, idField string
	switch kind {
	case KindDeviation:
		timeField, idField = "evaluated_at", "experiment_id"
	case KindFaultStatus:
		timeField, idField = "time", "experiment_id"
	default:
		timeField, idField = "ended", "run_id"
	}
	v, err := members(body, timeField, idField, "message", "indicator", "verdict", "fault", "phase", "reason", "experiment")
	if err != nil {
		return dst, err
	}
	at, id, message, indicator, verdict, fault, phase, reason, experiment := v[0], v[1], str(v[2]), str(v[3]), str(v[4]), str(v[5]), str(v[6]), str(v[7]), str(v[8])
	switch kind {
	case KindDeviation:
		if message == "" {
			message = indicator + ": " + verdict
		}
	case KindFaultStatus:
		message = fault + " " + phase
		if reason != "" {
			message += ": " + reason
		}
	default:
		message = "experiment " + experiment + " (" + str(id) + "): " + verdict
		if reason != "" {
			message += ": " + reason
		}
	}
	dst = append(dst, '{')
	if dst, err = appendTimestamp(dst, at, d); err != nil {
		return dst, err
	}
	dst = appendCommon(dst, d, DatasetExperiments)
	dst = append(dst, `"message":`...)
	dst = appendString(dst, message)
	if isString(id) {
		dst = append(dst, `,"labels":{"experiment_id":`...)
		dst = append(dst, id...)
		dst = append(dst, '}')
	}
	dst = append(dst, `,"faultline":{"type":`...)
	dst = appendString(dst, d.Type)
	dst = append(dst, ',', '"')
	dst = append(dst, kind...)
	dst = append(dst, '"', ':')
	dst = append(dst, body...)
	return append(dst, "},"...), nil
}

// appendKubeEvent writes a Kubernetes Event under kubernetes.event, its
// note as message, its reason and action in event.*, and the object it is
// about in orchestrator.*.
func (t *transformer) appendKubeEvent(dst []byte, d *sinks.Document, body []byte) ([]byte, error) {
	v, err := members(body, "note", "reason", "action", "regarding")
	if err != nil {
		return dst, err
	}
	note, reason, action, regarding := v[0], v[1], v[2], v[3]
	dst = append(dst, '{')
	if dst, err = appendTimestamp(dst, nil, d); err != nil {
		return dst, err
	}
	dst = append(dst, `"event":{"kind":"event","dataset":"`+DatasetKubeEvents+`"`...)
	if isString(reason) {
		dst = append(dst, `,"reason":`...)
		dst = append(dst, reason...)
	}
	if isString(action) {
		dst = append(dst, `,"action":`...)
		dst = append(dst, action...)
	}
	dst = append(dst, `},"orchestrator":{"type":"kubernetes","cluster":{"name":`...)
	dst = appendString(dst, d.Cluster)
	dst = append(dst, '}')
	if ns := member(regarding, "namespace"); isString(ns) && len(ns) > 2 {
		dst = append(dst, `,"namespace":`...)
		dst = append(dst, ns...)
	}
	if name := member(regarding, "name"); isString(name) && len(name) > 2 {
		dst = append(dst, `,"resource":{"name":`...)
		dst = append(dst, name...)
		dst = append(dst, '}')
	}
	dst = append(dst, "},"...)
	if isString(note) {
		dst = append(dst, `"message":`...)
		dst = append(dst, note...)
		dst = append(dst, ',')
	}
	dst = append(dst, `"faultline":{"type":`...)
	dst = appendString(dst, d.Type)
	dst = append(dst, `},"kubernetes":{"event":`...)
	dst = append(dst, body...)
	return append(dst, "},"...), nil
}

// appendAudit writes an audit event in the layout of Elastic's Kubernetes
// integration (data set kubernetes.audit_logs): the event under
// kubernetes.audit with its annotations' names de-dotted
// (authorization.k8s.io/decision → authorization_k8s_io/decision), and the
// ECS fields its pipeline sets — event.kind, event.action (the verb),
// event.outcome (from the authorization decision, else the response code),
// user.name, user.id, source.ip, user_agent.original — plus
// user.effective.name (the impersonated user), @timestamp (the stage
// timestamp), event.dataset and orchestrator.* as findings have them.
func (t *transformer) appendAudit(dst []byte, d *sinks.Document, body []byte) ([]byte, error) {
	var verb, user, impersonated, sourceIPs, userAgent, objectRef, status, stageTS, receivedTS, decision []byte
	dst = append(dst, `{"kubernetes":{"audit":{`...)
	first := true
	_, err := jsonscan.Members(body, 0, false, func(m jsonscan.Member) error {
		val := m.Value(body)
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, body[m.Key:m.KeyEnd]...)
		dst = append(dst, ':')
		switch string(m.Name(body)) {
		case "annotations":
			if isObject(val) {
				dst, decision = appendDedotted(dst, val)
				return nil
			}
		case "verb":
			verb = val
		case "user":
			user = val
		case "impersonatedUser":
			impersonated = val
		case "sourceIPs":
			sourceIPs = val
		case "userAgent":
			userAgent = val
		case "objectRef":
			objectRef = val
		case "responseStatus":
			status = val
		case "stageTimestamp":
			stageTS = val
		case "requestReceivedTimestamp":
			receivedTS = val
		}
		dst = append(dst, val...)
		return nil
	})
	if err != nil {
		return dst, err
	}
	dst = append(dst, "}},"...)
	if !isString(stageTS) {
		stageTS = receivedTS
	}
	if dst, err = appendTimestamp(dst, stageTS, d); err != nil {
		return dst, err
	}

	dst = append(dst, `"event":{"kind":"event","dataset":"`+DatasetAudit+`"`...)
	if isString(verb) {
		dst = append(dst, `,"action":`...)
		dst = append(dst, verb...)
	}
	dst = append(dst, `,"outcome":"`...)
	dst = append(dst, auditOutcome(str(decision), member(status, "code"))...)
	dst = append(dst, `"},`...)

	name, uid := member(user, "username"), member(user, "uid")
	effective := member(impersonated, "username")
	if isString(name) || isString(uid) || isString(effective) {
		dst = append(dst, `"user":{`...)
		sep := ""
		if isString(name) {
			dst = append(dst, `"name":`...)
			dst = append(dst, name...)
			sep = ","
		}
		if isString(uid) {
			dst = append(dst, sep+`"id":`...)
			dst = append(dst, uid...)
			sep = ","
		}
		if isString(effective) {
			dst = append(dst, sep+`"effective":{"name":`...)
			dst = append(dst, effective...)
			dst = append(dst, '}')
		}
		dst = append(dst, "},"...)
	}
	if ip, ok := firstIP(sourceIPs); ok {
		dst = append(dst, `"source":{"ip":"`...)
		dst = ip.AppendTo(dst)
		dst = append(dst, `"},`...)
	}
	if isString(userAgent) {
		dst = append(dst, `"user_agent":{"original":`...)
		dst = append(dst, userAgent...)
		dst = append(dst, "},"...)
	}

	dst = append(dst, `"orchestrator":{"type":"kubernetes","cluster":{"name":`...)
	dst = appendString(dst, d.Cluster)
	dst = append(dst, '}')
	if ns := member(objectRef, "namespace"); isString(ns) && len(ns) > 2 {
		dst = append(dst, `,"namespace":`...)
		dst = append(dst, ns...)
	}
	res, rname := member(objectRef, "resource"), member(objectRef, "name")
	if isString(res) || isString(rname) {
		dst = append(dst, `,"resource":{`...)
		if isString(res) {
			dst = append(dst, `"type":`...)
			dst = append(dst, res...)
			if isString(rname) {
				dst = append(dst, ',')
			}
		}
		if isString(rname) {
			dst = append(dst, `"name":`...)
			dst = append(dst, rname...)
		}
		dst = append(dst, '}')
	}
	return append(dst, "},"...), nil
}

// appendDedotted writes the annotations object with '.' in names replaced
// by '_' (Elasticsearch would read a dotted name as a path of objects), and
// returns the value of authorization.k8s.io/decision.
func appendDedotted(dst, obj []byte) ([]byte, []byte) {
	var decision []byte
	dst = append(dst, '{')
	first := true
	_, _ = jsonscan.Members(obj, 0, true, func(m jsonscan.Member) error {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		key := obj[m.Key:m.KeyEnd]
		if m.Escaped {
			name := string(m.Name(obj))
			if name == "authorization.k8s.io/decision" {
				decision = m.Value(obj)
			}
			dst = appendString(dst, dedot(name))
		} else {
			if string(key) == `"authorization.k8s.io/decision"` {
				decision = m.Value(obj)
			}
			for _, c := range key {
				if c == '.' {
					c = '_'
				}
				dst = append(dst, c)
			}
		}
		dst = append(dst, ':')
		dst = append(dst, m.Value(obj)...)
		return nil
	})
	return append(dst, '}'), decision
}

func dedot(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '.' {
			b[i] = '_'
		}
	}
	return string(b)
}

// auditOutcome is event.outcome: the authorizer's decision (allow →
// success, forbid → failure), else the response code (below 400 →
// success), else unknown.
func auditOutcome(decision string, code []byte) string {
	switch decision {
	case "allow":
		return "success"
	case "forbid":
		return "failure"
	}
	if len(code) == 3 && code[0] >= '1' && code[0] <= '5' && code[1] >= '0' && code[1] <= '9' && code[2] >= '0' && code[2] <= '9' {
		if code[0] >= '4' {
			return "failure"
		}
		return "success"
	}
	return "unknown"
}

// firstIP is the first of sourceIPs (the client; the others are proxies)
// when it is an IP address.
func firstIP(v []byte) (netip.Addr, bool) {
	if len(v) == 0 || v[0] != '[' {
		return netip.Addr{}, false
	}
	var first []byte
	_, err := jsonscan.Elements(v, 0, true, func(vs, ve int) error {
		if first == nil {
			first = v[vs:ve]
		}
		return nil
	})
	if err != nil || !isString(first) {
		return netip.Addr{}, false
	}
	ip, err := netip.ParseAddr(str(first))
	if err != nil {
		return netip.Addr{}, false
	}
	return ip.Unmap().WithZone(""), true
}
