package schemas

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// AppendJSON appends the finding as encoding/json writes it (json.Marshal
// with escapeHTML, a json.Encoder with SetEscapeHTML(false) without), byte
// for byte, but without reflection: replay writes every finding this way,
// and the analyzers' runner every finding it publishes.
// TestFindingAppendJSON fills every field of Finding by reflection and
// compares, so a field added to the document must be added here too.
func (f *Finding) AppendJSON(dst []byte, escapeHTML bool) ([]byte, error) {
	w := jsonWriter{b: dst, html: escapeHTML}
	w.raw(`{"@timestamp":`)
	if err := w.time(f.Timestamp); err != nil {
		return dst, err
	}
	w.raw(`,"event":{"id":`)
	w.str(f.Event.ID)
	w.raw(`,"kind":`)
	w.str(f.Event.Kind)
	w.raw(`,"severity":`)
	w.b = strconv.AppendInt(w.b, int64(f.Event.Severity), 10)
	w.raw(`,"risk_score":`)
	if err := w.float(f.Event.RiskScore); err != nil {
		return dst, err
	}
	w.raw(`},"faultline":{"severity":`)
	sev, err := f.Faultline.Severity.MarshalText()
	if err != nil {
		return dst, fmt.Errorf("json: error calling MarshalText for type schemas.Severity: %w", err)
	}
	w.str(string(sev))
	w.raw(`,"analyzer":`)
	w.str(f.Faultline.Analyzer)
	w.raw(`,"source_event_id":`)
	w.str(f.Faultline.SourceEventID)
	w.opt(`,"source_event_type":`, f.Faultline.SourceEventType)
	w.raw(`},"rule":{"id":`)
	w.str(f.Rule.ID)
	w.raw(`,"name":`)
	w.str(f.Rule.Name)
	w.opt(`,"description":`, f.Rule.Description)
	w.opt(`,"ruleset":`, f.Rule.Ruleset)
	w.raw(`}`)
	if t := f.Threat; t != nil {
		w.raw(`,"threat":{"framework":`)
		w.str(t.Framework)
		w.raw(`,"technique":{"id":`)
		w.list(t.Technique.ID)
		if len(t.Technique.Name) > 0 {
			w.raw(`,"name":`)
			w.list(t.Technique.Name)
		}
		w.raw(`}`)
		if ta := t.Tactic; ta != nil {
			w.raw(`,"tactic":{`)
			sep := ""
			if len(ta.ID) > 0 {
				w.raw(`"id":`)
				w.list(ta.ID)
				sep = ","
			}
			if len(ta.Name) > 0 {
				w.raw(sep + `"name":`)
				w.list(ta.Name)
			}
			w.raw(`}`)
		}
		w.raw(`}`)
	}
	if u := f.User; u != nil {
		w.raw(`,"user":{"name":`)
		w.str(u.Name)
		if e := u.Effective; e != nil {
			w.raw(`,"effective":{"name":`)
			w.str(e.Name)
			w.raw(`}`)
		}
		w.raw(`}`)
	}
	if s := f.Source; s != nil {
		w.raw(`,"source":{"ip":`)
		w.str(s.IP)
		w.raw(`}`)
	}
	if ua := f.UserAgent; ua != nil {
		w.raw(`,"user_agent":{"original":`)
		w.str(ua.Original)
		w.raw(`}`)
	}
	o := &f.Orchestrator
	w.raw(`,"orchestrator":{"type":`)
	w.str(o.Type)
	w.raw(`,"cluster":{"name":`)
	w.str(o.Cluster.Name)
	w.raw(`}`)
	w.opt(`,"namespace":`, o.Namespace)
	if r := o.Resource; r != nil {
		w.raw(`,"resource":{"type":`)
		w.str(r.Type)
		w.opt(`,"name":`, r.Name)
		w.raw(`}`)
	}
	w.raw(`}`)
	if k := f.Kubernetes; k != nil {
		w.raw(`,"kubernetes":{`)
		if a := k.Audit; a != nil {
			w.raw(`"audit":{"auditID":`)
			w.str(a.AuditID)
			w.opt(`,"stage":`, a.Stage)
			w.opt(`,"verb":`, a.Verb)
			w.opt(`,"requestURI":`, a.RequestURI)
			if r := a.ObjectRef; r != nil {
				w.raw(`,"objectRef":{`)
				n := len(w.b)
				w.opt(`,"resource":`, r.Resource)
				w.opt(`,"namespace":`, r.Namespace)
				w.opt(`,"name":`, r.Name)
				w.opt(`,"uid":`, string(r.UID))
				w.opt(`,"apiGroup":`, r.APIGroup)
				w.opt(`,"apiVersion":`, r.APIVersion)
				w.opt(`,"resourceVersion":`, r.ResourceVersion)
				w.opt(`,"subresource":`, r.Subresource)
				if len(w.b) > n {
					w.b = append(w.b[:n], w.b[n+1:]...) // the first member's comma
				}
				w.raw(`}`)
			}
			w.raw(`}`)
		}
		w.raw(`}`)
	}
	if len(f.Labels) > 0 {
		w.raw(`,"labels":{`)
		keys := make([]string, 0, len(f.Labels))
		for k := range f.Labels {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				w.raw(`,`)
			}
			w.str(k)
			w.raw(`:`)
			w.str(f.Labels[k])
		}
		w.raw(`}`)
	}
	w.raw(`,"message":`)
	w.str(f.Message)
	w.raw(`}`)
	return w.b, nil
}

// jsonWriter appends JSON as encoding/json writes it.
type jsonWriter struct {
	b    []byte
	html bool
}

func (w *jsonWriter) raw(s string) { w.b = append(w.b, s...) }

func (w *jsonWriter) str(s string) { w.b = appendJSONStringHTML(w.b, s, w.html) }

// opt writes a member with omitempty: not at all when s is empty.
func (w *jsonWriter) opt(member, s string) {
	if s != "" {
		w.raw(member)
		w.str(s)
	}
}

// list writes a []string: null when nil.
func (w *jsonWriter) list(l []string) {
	if l == nil {
		w.raw("null")
		return
	}
	w.raw("[")
	for i, s := range l {
		if i > 0 {
			w.raw(",")
		}
		w.str(s)
	}
	w.raw("]")
}

// time writes t with its MarshalJSON, as encoding/json does.
func (w *jsonWriter) time(t time.Time) error {
	b, err := t.MarshalJSON()
	if err != nil {
		return fmt.Errorf("json: error calling MarshalJSON for type time.Time: %w", err)
	}
	w.b = append(w.b, b...)
	return nil
}

// float writes a float64 as encoding/json does.
func (w *jsonWriter) float(f float64) error {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return fmt.Errorf("json: unsupported value: %s", strconv.FormatFloat(f, 'g', -1, 64))
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	w.b = strconv.AppendFloat(w.b, f, format, -1, 64)
	if format == 'e' {
		// e-09 to e-9
		if n := len(w.b); n >= 4 && w.b[n-4] == 'e' && w.b[n-3] == '-' && w.b[n-2] == '0' {
			w.b[n-2] = w.b[n-1]
			w.b = w.b[:n-1]
		}
	}
	return nil
}
