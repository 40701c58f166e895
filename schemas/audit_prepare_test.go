package schemas

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/runtime"
)

// marker is the secret value every redaction test plants; it must not
// survive in any form.
const marker = "FAULTLINE-MARKER-s3cr3t"

var markerB64 = base64.StdEncoding.EncodeToString([]byte(marker))

// auditEvent builds a compact audit event around objectRef and the request
// and response objects (raw JSON, "" to leave out).
func auditEvent(objectRef, requestObject, responseObject string) []byte {
	var b strings.Builder
	b.WriteString(`{"level":"RequestResponse","auditID":"0a4c9e0e-61d9-4a43-9f0e-3b0c2c1e8d11","stage":"ResponseComplete",` +
		`"requestURI":"/api/v1/namespaces/shop/secrets","verb":"create",` +
		`"user":{"username":"alice","groups":["system:authenticated"]},"sourceIPs":["10.0.0.1"],"userAgent":"kubectl/v1.33.1"`)
	if objectRef != "" {
		b.WriteString(`,"objectRef":` + objectRef)
	}
	b.WriteString(`,"responseStatus":{"metadata":{},"code":201}`)
	if requestObject != "" {
		b.WriteString(`,"requestObject":` + requestObject)
	}
	if responseObject != "" {
		b.WriteString(`,"responseObject":` + responseObject)
	}
	b.WriteString(`,"requestReceivedTimestamp":"2026-11-22T05:30:00.120000Z","stageTimestamp":"2026-11-22T05:30:00.123456Z",` +
		`"annotations":{"authorization.k8s.io/decision":"allow"}}`)
	return []byte(b.String())
}

// lastApplied returns obj as the JSON string kubectl stores in the
// annotation.
func lastApplied(obj string) string {
	b, _ := json.Marshal(obj)
	return string(b)
}

// leaks reports whether the marker survives in out, raw, base64-encoded or
// behind JSON escapes (also inside JSON held in strings).
func leaks(out []byte) bool {
	if bytes.Contains(out, []byte(marker)) || bytes.Contains(out, []byte(markerB64)) {
		return true
	}
	var v any
	if err := json.Unmarshal(out, &v); err != nil {
		return false
	}
	var walk func(v any) bool
	walk = func(v any) bool {
		switch x := v.(type) {
		case string:
			if strings.Contains(x, marker) || strings.Contains(x, markerB64) {
				return true
			}
			var inner any
			if json.Unmarshal([]byte(x), &inner) == nil {
				if _, ok := inner.(string); !ok {
					return walk(inner)
				}
			}
		case map[string]any:
			for k, e := range x {
				if strings.Contains(k, marker) || walk(e) {
					return true
				}
			}
		case []any:
			for _, e := range x {
				if walk(e) {
					return true
				}
			}
		}
		return false
	}
	return walk(v)
}

// at follows a path of map keys and array indexes in decoded JSON.
func at(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

func TestPrepareRedaction(t *testing.T) {
	secretRef := `{"resource":"secrets","namespace":"shop","name":"db","apiVersion":"v1"}`
	secret := `{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db","namespace":"shop","annotations":{"kubectl.kubernetes.io/last-applied-configuration":` +
		lastApplied(`{"apiVersion":"v1","data":{"password":"`+markerB64+`"},"kind":"Secret","metadata":{"annotations":{},"name":"db","namespace":"shop"},"stringData":{"token":"`+marker+`"},"type":"Opaque"}`+"\n") +
		`,"team":"payments"}},"data":{"password":"` + markerB64 + `","user":"YWRtaW4="},"stringData":{"token":"` + marker + `"},"type":"Opaque"}`
	tests := []struct {
		name      string
		event     []byte
		redacted  bool
		keep      [][]any // paths that must still exist (keys stay) or hold the same value
		unchanged bool    // the event must come out byte for byte (apart from the labels)
	}{
		{
			name:     "Secret create, request and response",
			event:    auditEvent(secretRef, secret, secret),
			redacted: true,
			keep: [][]any{{"requestObject", "data", "password"}, {"requestObject", "data", "user"}, {"requestObject", "stringData", "token"},
				{"responseObject", "data", "password"}, {"requestObject", "type"}, {"requestObject", "metadata", "annotations", "team"}},
		},
		{
			name: "SecretList response of a list",
			event: auditEvent(`{"resource":"secrets","namespace":"shop","apiVersion":"v1"}`, "",
				`{"kind":"SecretList","apiVersion":"v1","metadata":{"resourceVersion":"42"},"items":[{"metadata":{"name":"a"},"data":{"k":"`+markerB64+`"},"type":"Opaque"},{"metadata":{"name":"b"},"data":null}]}`),
			redacted: true,
			keep:     [][]any{{"responseObject", "items", 0, "data", "k"}, {"responseObject", "items", 1, "metadata", "name"}},
		},
		{
			name: "SecretList found by kind alone (no objectRef)",
			event: auditEvent("", "",
				`{"kind":"SecretList","items":[{"data":{"k":"`+markerB64+`"}}]}`),
			redacted: true,
			keep:     [][]any{{"responseObject", "items", 0, "data", "k"}},
		},
		{
			name: "merge patch of a Secret with the last-applied annotation",
			event: auditEvent(secretRef,
				`{"data":{"password":"`+markerB64+`"},"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":`+
					lastApplied(`{"apiVersion":"v1","data":{"password":"`+markerB64+`"},"kind":"Secret","metadata":{"name":"db"}}`)+`}}}`, secret),
			redacted: true,
			keep:     [][]any{{"requestObject", "data", "password"}, {"requestObject", "metadata", "annotations", "kubectl.kubernetes.io/last-applied-configuration"}},
		},
		{
			name: "last-applied without kind in a Secret's patch",
			event: auditEvent(secretRef,
				`{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":`+lastApplied(`{"data":{"password":"`+markerB64+`"}}`)+`}}}`, ""),
			redacted: true,
		},
		{
			name: "last-applied of a Secret that is not JSON",
			event: auditEvent(secretRef,
				`{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"password: `+marker+`"}}}`, ""),
			redacted: true,
		},
		{
			name: "JSON patch of a Secret",
			event: auditEvent(secretRef,
				`[{"op":"replace","path":"/data/password","value":"`+markerB64+`"},{"op":"add","path":"/stringData","value":{"t":"`+marker+`"}},`+
					`{"op":"test","path":"/data/password","value":"`+markerB64+`"},{"op":"add","path":"/metadata/labels/tier","value":"db"},`+
					`{"op":"add","path":"/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration","value":"`+marker+`"},`+
					`{"op":"replace","path":"","value":{"data":{"k":"`+markerB64+`"},"type":"Opaque"}},`+
					`{"op":"add","path":"/metadata","value":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{`+marker+`"}}},`+
					`{"op":"remove","path":"/data/old"}]`, ""),
			redacted: true,
			keep:     [][]any{{"requestObject", 3, "value"}, {"requestObject", 5, "value", "type"}, {"requestObject", 7, "path"}},
		},
		{
			name:     "escaped key in a Secret patch",
			event:    auditEvent(secretRef, `{"d\u0061ta":{"k":"`+markerB64+`"}}`, ""),
			redacted: true,
		},
		{
			name:     "escaped kind outside a Secret context",
			event:    auditEvent("", "", `{"kind":"\u0053ecret","data":{"k":"`+markerB64+`"}}`),
			redacted: true,
		},
		{
			name: "Secret in a Table row",
			event: auditEvent(`{"resource":"secrets","namespace":"shop","apiVersion":"v1"}`, "",
				`{"kind":"Table","apiVersion":"meta.k8s.io/v1","columnDefinitions":[{"name":"Name","type":"string"}],`+
					`"rows":[{"cells":["db","Opaque",2,"5m"],"object":`+secret+`}]}`),
			redacted: true,
			keep:     [][]any{{"responseObject", "rows", 0, "cells", 0}, {"responseObject", "rows", 0, "object", "data", "password"}},
		},
		{
			name: "TokenRequest response",
			event: auditEvent(`{"resource":"serviceaccounts","namespace":"shop","name":"builder","apiVersion":"v1","subresource":"token"}`,
				`{"kind":"TokenRequest","apiVersion":"authentication.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":{"audiences":["https://kubernetes.default.svc"],"expirationSeconds":3600},"status":{"token":"","expirationTimestamp":null}}`,
				`{"kind":"TokenRequest","apiVersion":"authentication.k8s.io/v1","metadata":{"name":"builder"},"spec":{"audiences":["https://kubernetes.default.svc"]},"status":{"token":"`+marker+`","expirationTimestamp":"2026-11-22T06:30:00Z"}}`),
			redacted: true,
			keep:     [][]any{{"responseObject", "status", "token"}, {"responseObject", "status", "expirationTimestamp"}, {"responseObject", "spec", "audiences", 0}},
		},
		{
			name: "TokenRequest found by kind in a v1beta1-less context",
			event: auditEvent("", "",
				`{"kind":"TokenRequest","status":{"token":"`+marker+`"}}`),
			redacted: true,
		},
		{
			name: "TokenReview request and response",
			event: auditEvent(`{"resource":"tokenreviews","name":"","apiGroup":"authentication.k8s.io","apiVersion":"v1"}`,
				`{"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1","spec":{"token":"`+marker+`"}}`,
				`{"kind":"TokenReview","apiVersion":"authentication.k8s.io/v1","spec":{"token":"`+marker+`"},"status":{"authenticated":true,"user":{"username":"system:serviceaccount:shop:builder"}}}`),
			redacted: true,
			keep:     [][]any{{"requestObject", "spec", "token"}, {"responseObject", "status", "user", "username"}},
		},
		{
			name: "Secret nested too deep to walk",
			event: auditEvent(`{"resource":"widgets","apiGroup":"example.com"}`,
				`{"kind":"Widget","x":`+strings.Repeat(`[`, 200)+`{"kind":"Secret","data":{"k":"`+markerB64+`"}}`+strings.Repeat(`]`, 200)+`}`, ""),
			redacted: true,
			keep:     [][]any{{"requestObject", "kind"}},
		},
		{
			name: "deep nesting without secrets stays",
			event: auditEvent(`{"resource":"widgets","apiGroup":"example.com"}`,
				`{"kind":"Widget","x":`+strings.Repeat(`[`, 200)+`"deep"`+strings.Repeat(`]`, 200)+`}`, ""),
			unchanged: true,
		},
		{
			name: "ConfigMap values stay",
			event: auditEvent(`{"resource":"configmaps","namespace":"shop","name":"cfg","apiVersion":"v1"}`,
				`{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cfg","annotations":{"kubectl.kubernetes.io/last-applied-configuration":`+
					lastApplied(`{"apiVersion":"v1","data":{"LOG_LEVEL":"debug"},"kind":"ConfigMap","metadata":{"name":"cfg"}}`)+`}},"data":{"LOG_LEVEL":"debug"}}`, ""),
			unchanged: true,
		},
		{
			name: "Pod with Secret volumes and env stays",
			event: auditEvent(`{"resource":"pods","namespace":"shop","name":"web","apiVersion":"v1"}`,
				`{"kind":"Pod","apiVersion":"v1","metadata":{"name":"web"},"spec":{"volumes":[{"name":"creds","secret":{"secretName":"db"}}],`+
					`"containers":[{"name":"web","image":"nginx","env":[{"name":"PASSWORD","valueFrom":{"secretKeyRef":{"name":"db","key":"password"}}}]}],"automountServiceAccountToken":false}}`, ""),
			unchanged: true,
		},
		{
			name:      "a key named data outside a Secret stays",
			event:     auditEvent(`{"resource":"widgets","apiGroup":"example.com","apiVersion":"v1"}`, `{"kind":"Widget","data":{"token":"visible"},"spec":{"token":"visible"}}`, ""),
			unchanged: true,
		},
	}
	p := &AuditPreparer{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]byte(nil), tc.event...)
			out, ev, err := p.Prepare(nil, tc.event)
			if err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			if !bytes.Equal(in, tc.event) {
				t.Fatal("Prepare changed its input")
			}
			if ev.Redacted != tc.redacted {
				t.Errorf("Redacted = %v, want %v", ev.Redacted, tc.redacted)
			}
			if leaks(out) {
				t.Errorf("secret survives:\n%s", out)
			}
			parsed, err := ParseAuditEvent(out)
			if err != nil {
				t.Fatalf("output is not an audit event: %v\n%s", err, out)
			}
			if got := parsed.Annotations[AuditAnnotationRedacted]; (got == "true") != tc.redacted {
				t.Errorf("annotation %s = %q", AuditAnnotationRedacted, got)
			}
			if parsed.Annotations["authorization.k8s.io/decision"] != "allow" {
				t.Errorf("the event's own annotations were lost: %v", parsed.Annotations)
			}
			var orig, got any
			if err := json.Unmarshal(tc.event, &orig); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			for _, path := range tc.keep {
				if at(got, path...) == nil {
					t.Errorf("%v is gone", path)
				}
			}
			if tc.unchanged {
				want := append([]byte(`{"kind":"Event","apiVersion":"audit.k8s.io/v1",`), tc.event[1:]...)
				if !bytes.Equal(out, want) {
					t.Errorf("changed an event without secrets:\n got %s\nwant %s", out, want)
				}
			}
		})
	}
}

// TestPrepareAgreesWithParse runs every audit sample and document through
// both parsers: Prepare accepts exactly the items ParseAuditEvent accepts,
// and what it outputs decodes to the same event.
func TestPrepareAgreesWithParse(t *testing.T) {
	var items [][]byte
	files, _ := filepath.Glob(filepath.Join("testdata", "audit-event", "*.json"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, b)
	}
	docs, _ := filepath.Glob(filepath.Join("testdata", "audit-docs", "*.json"))
	for _, f := range docs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		split, err := SplitAuditEvents(b)
		if err != nil {
			continue
		}
		for _, it := range split {
			items = append(items, it)
		}
	}
	if len(items) < 20 {
		t.Fatalf("only %d samples", len(items))
	}
	p := &AuditPreparer{}
	accepted := 0
	for i, item := range items {
		want, werr := ParseAuditEvent(item)
		out, ev, err := p.Prepare(nil, item)
		if (err == nil) != (werr == nil) {
			t.Errorf("sample %d: Prepare error %v, ParseAuditEvent error %v\n%s", i, err, werr, item)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrNotAuditEvent) {
				t.Errorf("sample %d: error does not wrap ErrNotAuditEvent: %v", i, err)
			}
			continue
		}
		accepted++
		got, err := ParseAuditEvent(out)
		if err != nil {
			t.Errorf("sample %d: output does not parse: %v", i, err)
			continue
		}
		if ev.ID != AuditEventIDOf(&want) || !ev.Time.Equal(want.StageTimestamp.Time) {
			t.Errorf("sample %d: id %s time %s, want %s %s", i, ev.ID, ev.Time, AuditEventIDOf(&want), want.StageTimestamp.Time)
		}
		if ev.Redacted {
			continue
		}
		wj, _ := json.Marshal(want)
		gj, _ := json.Marshal(got)
		if !bytes.Equal(wj, gj) {
			t.Errorf("sample %d: output decodes differently\n got %s\nwant %s", i, gj, wj)
		}
	}
	if accepted == 0 {
		t.Fatal("no sample accepted")
	}
}

func TestPrepareRejects(t *testing.T) {
	valid := string(auditEvent(`{"resource":"pods"}`, "", ""))
	with := func(from, to string) string {
		if !strings.Contains(valid, from) {
			panic(from)
		}
		return strings.Replace(valid, from, to, 1)
	}
	tests := []struct {
		name, in, want string
	}{
		{"kind number", `{"kind": 0}`, "kind"},
		{"not an object", `[1]`, "not an object"},
		{"null", `null`, "not an object"},
		{"other kind", with(`{"level"`, `{"kind":"Pod","level"`), `kind is "Pod"`},
		{"other apiVersion", with(`{"level"`, `{"apiVersion":"audit.k8s.io/v1alpha1","level"`), "apiVersion"},
		{"no auditID", with(`"auditID":"0a4c9e0e-61d9-4a43-9f0e-3b0c2c1e8d11",`, ""), "missing auditID"},
		{"unknown stage", with(`"ResponseComplete"`, `"Done"`), "stage"},
		{"unknown level", with(`"RequestResponse"`, `"All"`), "level"},
		{"empty verb", with(`"verb":"create"`, `"verb":""`), "missing verb"},
		{"requestURI null", with(`"requestURI":"/api/v1/namespaces/shop/secrets"`, `"requestURI":null`), "missing requestURI"},
		{"timestamp without microseconds", with(`"2026-11-22T05:30:00.123456Z"`, `"2026-11-22T05:30:00Z"`), "stageTimestamp"},
		{"timestamp number", with(`"2026-11-22T05:30:00.123456Z"`, `1`), "stageTimestamp"},
		{"user a string", with(`{"username":"alice","groups":["system:authenticated"]}`, `"alice"`), "user"},
		{"groups a string", with(`["system:authenticated"]`, `"system:authenticated"`), "groups"},
		{"sourceIPs not strings", with(`["10.0.0.1"]`, `[1]`), "sourceIPs"},
		{"code not an integer", with(`"code":201`, `"code":201.5`), "code"},
		{"code out of int32", with(`"code":201`, `"code":4294967296`), "code"},
		{"annotation not a string", with(`"allow"`, `true`), "annotations"},
		{"field spelled differently", with(`"auditID"`, `"AuditID"`), "spelled"},
		{"nested field spelled differently", with(`"username"`, `"UserName"`), "spelled"},
		{"repeated field", with(`"verb":"create"`, `"verb":"create","verb":"get"`), "more than once"},
	}
	p := &AuditPreparer{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := p.Prepare(nil, []byte(tc.in))
			if err == nil {
				t.Fatalf("accepted %s", tc.in)
			}
			if !errors.Is(err, ErrNotAuditEvent) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want ErrNotAuditEvent mentioning %q", err, tc.want)
			}
		})
	}
}

func TestPrepareLabelsAndSubject(t *testing.T) {
	p := &AuditPreparer{}
	v1beta1 := []byte(`{"kind":"Event","apiVersion":"audit.k8s.io/v1beta1","metadata":{"creationTimestamp":"2026-11-22T05:30:00Z"},"level":"Metadata","timestamp":"2026-11-22T05:30:00Z",` +
		`"auditID":"a\/b c","stage":"ResponseComplete","requestURI":"/apis/apps/v1/namespaces/shop/deployments/web/scale","verb":"update","user":{"username":"bob"},` +
		`"objectRef":{"resource":"deployments","namespace":"shop","name":"web","apiGroup":"apps","apiVersion":"v1","subresource":"scale"},` +
		`"requestReceivedTimestamp":"2026-11-22T05:30:00.000001+02:00","stageTimestamp":"2026-11-22T05:30:00.000002+02:00","annotations":null}`)
	out, ev, err := p.Prepare(nil, v1beta1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte(`"apiVersion":"audit.k8s.io/v1",`)) || bytes.Contains(out, []byte("v1beta1")) {
		t.Errorf("not relabelled v1: %s", out)
	}
	if ev.Subject != "shop/deployments.apps/web/scale" {
		t.Errorf("subject %q", ev.Subject)
	}
	if ev.AuditID != "a/b c" || ev.ID != AuditEventID("a/b c", "ResponseComplete") {
		t.Errorf("auditID %q id %q", ev.AuditID, ev.ID)
	}
	if want := time.Date(2026, 11, 22, 3, 30, 0, 2000, time.UTC); !ev.Time.Equal(want) || ev.Time.Location() != time.UTC {
		t.Errorf("time %v, want %v in UTC", ev.Time, want)
	}
	if ev.Redacted || ev.Truncated {
		t.Errorf("flags %+v", ev)
	}
	if _, err := ParseAuditEvent(out); err != nil {
		t.Errorf("output: %v", err)
	}
	// Control characters and excess length do not reach the subject.
	_, ev, err = p.Prepare(nil, auditEvent(`{"resource":"pods","namespace":"a\nb","name":"`+strings.Repeat("é", 600)+`"}`, "", ""))
	if err != nil || strings.ContainsRune(ev.Subject, '\n') || len(ev.Subject) > 1024 || !utf8.ValidString(ev.Subject) {
		t.Errorf("subject %q (%d bytes), err %v", ev.Subject, len(ev.Subject), err)
	}
	// A non-resource request has no subject.
	_, ev, err = p.Prepare(nil, auditEvent("", "", ""))
	if err != nil || ev.Subject != "" {
		t.Errorf("subject %q, err %v", ev.Subject, err)
	}
}

func TestPrepareTruncation(t *testing.T) {
	const limit = MinAuditEventLimit
	big := strings.Repeat("x", limit)
	secretRef := `{"resource":"secrets","namespace":"shop","name":"db"}`
	tests := []struct {
		name    string
		event   []byte
		summary bool // even without objects too large: the bounded summary
	}{
		{
			name:  "large request object",
			event: auditEvent(secretRef, `{"kind":"Secret","metadata":{"labels":{"pad":"`+big+`"}},"data":{"k":"`+markerB64+`"}}`, `{"kind":"Status"}`),
		},
		{
			name:    "large annotations and requestURI",
			event:   bytes.Replace(auditEvent(`{"resource":"pods"}`, `{"a":1}`, ""), []byte(`"allow"}`), []byte(`"allow","pad":"`+big+`"}`), 1),
			summary: true,
		},
		{
			name: "huge requestURI with escapes and multi-byte runes",
			event: bytes.Replace(auditEvent(`{"resource":"pods"}`, "", ""), []byte(`"/api/v1/namespaces/shop/secrets"`),
				[]byte(`"/api?q=`+strings.Repeat(`\u00e9é\"`, limit/4)+`"`), 1),
			summary: true,
		},
		{
			name: "huge user",
			event: bytes.Replace(auditEvent(`{"resource":"pods"}`, "", ""), []byte(`"groups":["system:authenticated"]`),
				[]byte(`"groups":["`+big+`"]`), 1),
			summary: true,
		},
	}
	p := &AuditPreparer{MaxEventSize: limit}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, ev, err := p.Prepare([]byte("prefix"), tc.event)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(out, []byte("prefix")) {
				t.Fatal("dst not appended to")
			}
			out = out[len("prefix"):]
			if !ev.Truncated || ev.OriginalSize != len(tc.event) {
				t.Errorf("Truncated %v OriginalSize %d, want true %d", ev.Truncated, ev.OriginalSize, len(tc.event))
			}
			if len(out) > limit {
				t.Errorf("output %d bytes, over the %d limit", len(out), limit)
			}
			if leaks(out) {
				t.Error("secret survives truncation")
			}
			got, err := ParseAuditEvent(out)
			if err != nil {
				t.Fatalf("truncated output is not an audit event: %v\n%.500s", err, out)
			}
			if err := Validate(KindAuditEvent, out); err != nil {
				t.Errorf("truncated output fails the schema: %v", err)
			}
			if got.RequestObject != nil || got.ResponseObject != nil {
				t.Error("request or response object kept")
			}
			if got.Annotations[AuditAnnotationTruncated] != "true" || got.Annotations[AuditAnnotationOriginalSize] != fmt.Sprint(len(tc.event)) {
				t.Errorf("annotations %v", got.Annotations)
			}
			if AuditEventIDOf(&got) != ev.ID || got.Verb != "create" || got.User.Username != "alice" {
				t.Errorf("summary lost identity: id %s verb %q user %q", AuditEventIDOf(&got), got.Verb, got.User.Username)
			}
			orig, err := ParseAuditEvent(tc.event)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(orig.RequestURI, got.RequestURI) || (!tc.summary && got.RequestURI != orig.RequestURI) {
				t.Errorf("requestURI %.80q is not the original's (prefix)", got.RequestURI)
			}
			if _, padded := got.Annotations["pad"]; padded {
				t.Error("oversize annotations kept in the summary")
			}
		})
	}

	// At the limit exactly: published whole.
	ev := auditEvent(`{"resource":"pods"}`, `{"pad":""}`, "")
	pad := limit - len(ev) - len(`"kind":"Event","apiVersion":"audit.k8s.io/v1",`)
	ev = bytes.Replace(ev, []byte(`{"pad":""}`), []byte(`{"pad":"`+strings.Repeat("y", pad)+`"}`), 1)
	out, pe, err := p.Prepare(nil, ev)
	if err != nil || pe.Truncated || len(out) != limit {
		t.Errorf("event at the limit: truncated %v, %d bytes, err %v", pe.Truncated, len(out), err)
	}
}

func TestRedactRejectedAuditItem(t *testing.T) {
	for _, in := range []string{
		`{"kind":0,"requestObject":{"kind":"Secret","data":{"k":"` + markerB64 + `"}}}`,
		`{"stage":"x","responseObject":{"status":{"token":"` + marker + `"}},"n":[{"stringData":{"a":"` + marker + `"}}]}`,
		`{"x":{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"v\":\"` + marker + `\"}"}}}}`,
		`[{"data":"` + marker + `"}]`,
		`not json ` + marker,
	} {
		out := RedactRejectedAuditItem([]byte(in))
		if leaks(out) {
			t.Errorf("secret survives in %s", out)
		}
		if !json.Valid(out) {
			t.Errorf("not JSON: %s", out)
		}
	}
	if out := RedactRejectedAuditItem([]byte(`{"kind":0,"note":"kept"}`)); string(out) != `{"kind":0,"note":"kept"}` {
		t.Errorf("changed an item without secrets: %s", out)
	}
}

func BenchmarkAuditPreparer(b *testing.B) {
	items, err := SplitAuditEvents(readDocB(b, "audit-docs/eventlist-v1.json"))
	if err != nil {
		b.Fatal(err)
	}
	secret := auditEvent(`{"resource":"secrets","namespace":"shop","name":"db"}`,
		`{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db"},"data":{"password":"`+markerB64+`"}}`, "")
	items = append(items, secret)
	var compact [][]byte
	size := 0
	for _, it := range items {
		var buf bytes.Buffer
		if err := json.Compact(&buf, it); err != nil {
			b.Fatal(err)
		}
		compact = append(compact, buf.Bytes())
		size += buf.Len()
	}
	for _, validated := range []bool{false, true} {
		b.Run(fmt.Sprintf("validated=%v", validated), func(b *testing.B) {
			p := &AuditPreparer{MaxEventSize: 256 << 10, Validated: validated}
			var dst []byte
			b.SetBytes(int64(size / len(compact)))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				var err error
				dst, _, err = p.Prepare(dst[:0], compact[i%len(compact)])
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func readDocB(b *testing.B, name string) []byte {
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// FuzzAuditPreparer checks Prepare against ParseAuditEvent: it never
// panics, accepts only what ParseAuditEvent accepts (and refuses only what
// it refuses, apart from its two documented strictnesses), outputs an event
// with the same id, time and — unless it redacted or truncated — the same
// content, and leaves no value in the data of a core Secret.
func FuzzAuditPreparer(f *testing.F) {
	addSeeds(f, "audit-event/*.json")
	f.Add(auditEvent(`{"resource":"secrets","name":"db"}`,
		`{"kind":"Secret","data":{"k":"`+markerB64+`"},"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":`+
			lastApplied(`{"kind":"Secret","data":{"k":"x"}}`)+`}}}`, `[{"op":"add","path":"/data/k","value":"x"}]`))
	f.Add(auditEvent(`{"resource":"serviceaccounts","subresource":"token"}`, "", `{"status":{"token":"abc"}}`))
	f.Add(auditEvent("", `{"kind":"SecretList","items":[{"data":{"a":"b"}}]}`, `{"rows":[{"object":{"kind":"Secret","stringData":{"a":"b"}}}]}`))
	f.Add([]byte(`{"kind":0}`))
	p := &AuditPreparer{MaxEventSize: MinAuditEventLimit}
	pv := &AuditPreparer{MaxEventSize: MinAuditEventLimit, Validated: true}
	f.Fuzz(func(t *testing.T, in []byte) {
		if !json.Valid(in) {
			// Prepare gets items SplitAuditEvents checked; it must still
			// not panic on anything else.
			_, _, _ = p.Prepare(nil, in)
			_ = RedactRejectedAuditItem(in)
			return
		}
		if out := RedactRejectedAuditItem(in); !json.Valid(out) {
			t.Fatalf("RedactRejectedAuditItem wrote invalid JSON: %s", out)
		}
		want, werr := ParseAuditEvent(in)
		out, ev, err := p.Prepare([]byte("x"), in)
		vout, vev, verr := pv.Prepare(nil, in)
		if (err == nil) != (verr == nil) || (err == nil && (!bytes.Equal(out[1:], vout) || ev != vev)) {
			t.Fatalf("Validated changes the result: %v / %v", err, verr)
		}
		if err != nil {
			if len(out) != 1 {
				t.Fatal("dst changed on error")
			}
			if !errors.Is(err, ErrNotAuditEvent) {
				t.Fatalf("error does not wrap ErrNotAuditEvent: %v", err)
			}
			if werr == nil && !strings.Contains(err.Error(), "must be spelled") && !strings.Contains(err.Error(), "more than once") {
				t.Fatalf("refused what ParseAuditEvent accepts: %v", err)
			}
			return
		}
		if werr != nil {
			t.Fatalf("accepted what ParseAuditEvent refuses (%v)", werr)
		}
		out = out[1:]
		got, err := ParseAuditEvent(out)
		if err != nil {
			t.Fatalf("output is not an audit event: %v\n%s", err, out)
		}
		if ev.ID != AuditEventIDOf(&want) || AuditEventIDOf(&got) != ev.ID || !ev.Time.Equal(want.StageTimestamp.Time) {
			t.Fatalf("id %s / %s, want %s; time %s, want %s", ev.ID, AuditEventIDOf(&got), AuditEventIDOf(&want), ev.Time, want.StageTimestamp.Time)
		}
		if len(out) > MinAuditEventLimit {
			t.Fatalf("output of %d bytes over the limit", len(out))
		}
		if ref := got.ObjectRef; ref != nil && ref.Resource == "secrets" && ref.APIGroup == "" {
			for _, obj := range [][]byte{rawOf(got.RequestObject), rawOf(got.ResponseObject)} {
				var s struct{ Data, StringData map[string]*string }
				if json.Unmarshal(obj, &s) != nil {
					continue
				}
				for k, v := range s.Data {
					if v != nil && *v != RedactedValue {
						t.Fatalf("data %q of a Secret kept: %q", k, *v)
					}
				}
				for k, v := range s.StringData {
					if v != nil && *v != RedactedValue {
						t.Fatalf("stringData %q of a Secret kept: %q", k, *v)
					}
				}
			}
		}
		if ev.Redacted || ev.Truncated {
			return
		}
		wj, _ := json.Marshal(&want)
		gj, _ := json.Marshal(&got)
		if !bytes.Equal(wj, gj) {
			t.Fatalf("output decodes differently\n got %s\nwant %s", gj, wj)
		}
	})
}

func rawOf(u *runtime.Unknown) []byte {
	if u == nil {
		return nil
	}
	return u.Raw
}

// TestPrepareNestingIsLinear guards against re-walking nested values: each
// level of these would double the work of a walker that visits a value
// again once it learns the object's kind.
func TestPrepareNestingIsLinear(t *testing.T) {
	const depth = 100
	var secretLists, patches, lastApplied strings.Builder
	for range depth {
		secretLists.WriteString(`{"kind":"SecretList","items":[`)
		patches.WriteString(`[{"op":"replace","path":"","value":`)
		lastApplied.WriteString(`{"kind":"Secret","metadata":{"annotations":{"x":`)
	}
	secretLists.WriteString(`{"data":{"k":"` + markerB64 + `"}}`)
	patches.WriteString(`{"data":{"k":"` + markerB64 + `"}}`)
	lastApplied.WriteString(`1`)
	for range depth {
		secretLists.WriteString(`]}`)
		patches.WriteString(`}]`)
		lastApplied.WriteString(`}}}`)
	}
	p := &AuditPreparer{}
	for _, tc := range []struct{ ref, obj string }{
		{`{"resource":"widgets"}`, secretLists.String()},
		{`{"resource":"secrets"}`, patches.String()},
		{`{"resource":"secrets"}`, lastApplied.String()},
	} {
		start := time.Now()
		out, _, err := p.Prepare(nil, auditEvent(tc.ref, tc.obj, tc.obj))
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("%d levels took %s", depth, took)
		}
		if leaks(out) {
			t.Errorf("secret survives %.100s", tc.obj)
		}
	}
}
