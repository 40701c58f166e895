package schemas

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

// fill sets every field reachable from v (pointers allocated, slices and
// maps given two elements) to values taken from seed, so that a field
// added to Finding or to the types in it shows up in encoding/json's
// output and must be written by AppendJSON too.
func fill(v reflect.Value, seed *int) {
	*seed++
	strs := []string{"plain", "<tag> & \"quotes\" \\ \u2028 \n\t\x01 é 😀 \xff", "", "ünïcödé"}
	switch v.Kind() {
	case reflect.String:
		v.SetString(strs[*seed%len(strs)] + "-" + string(rune('a'+*seed%26)))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if v.Type() == reflect.TypeOf(Severity(0)) {
			v.SetInt(int64(*seed % 5))
			return
		}
		v.SetInt(int64(*seed))
	case reflect.Float64:
		v.SetFloat(float64(*seed) * 1.5)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), seed)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(s.Index(i), seed)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for range 2 {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(k, seed)
			fill(e, seed)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2026, 11, 22, 6, 0, *seed, 123456789, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), seed)
			}
		}
	}
}

func TestFindingAppendJSON(t *testing.T) {
	full := func(seed int) *Finding {
		var f Finding
		fill(reflect.ValueOf(&f).Elem(), &seed)
		return &f
	}
	minimal := NewFinding("rules", Rule{ID: "r", Name: "R"}, SeverityHigh, "audit_a_ResponseComplete", time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC))
	ctx := NewFinding("rules", Rule{ID: "r", Name: "R"}, SeverityLow, "s", time.Now())
	ctx.SetAuditContext(&auditv1.Event{AuditID: "a", Stage: "ResponseComplete", Verb: "get", RequestURI: "/api?x=1&y=<2>",
		ObjectRef: &auditv1.ObjectReference{Resource: "pods", Namespace: "shop", Name: "web"}})
	zeroThreat := *minimal
	zeroThreat.Threat = &Threat{Tactic: &ThreatTactic{}}
	zeroThreat.Kubernetes = &Kubernetes{}
	zeroThreat.Labels = map[string]string{}
	zeroThreat.Event.RiskScore = 1e-7
	big := *minimal
	big.Event.RiskScore = 1e21
	emptyRef := *ctx
	emptyRef.Kubernetes = &Kubernetes{Audit: &KubernetesAudit{ObjectRef: &auditv1.ObjectReference{}}}
	tests := []struct {
		name string
		f    *Finding
	}{
		{"every field", full(0)},
		{"every field, other values", full(3)},
		{"a new finding", minimal},
		{"with audit context", ctx},
		{"empty optional objects, tiny float", &zeroThreat},
		{"large float", &big},
		{"empty objectRef", &emptyRef},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, html := range []bool{true, false} {
				var want bytes.Buffer
				enc := json.NewEncoder(&want)
				enc.SetEscapeHTML(html)
				if err := enc.Encode(tc.f); err != nil {
					t.Fatal(err)
				}
				got, err := tc.f.AppendJSON([]byte("prefix"), html)
				if err != nil {
					t.Fatal(err)
				}
				if w := "prefix" + string(bytes.TrimSuffix(want.Bytes(), []byte("\n"))); string(got) != w {
					t.Errorf("html=%v:\n got %s\nwant %s", html, got, w)
				}
			}
		})
	}
	// What encoding/json refuses, AppendJSON refuses.
	for _, mut := range []func(f *Finding){
		func(f *Finding) { f.Event.RiskScore = math.NaN() },
		func(f *Finding) { f.Timestamp = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		func(f *Finding) { f.Faultline.Severity = 42 },
	} {
		f := *minimal
		mut(&f)
		_, jerr := json.Marshal(&f)
		b, err := f.AppendJSON([]byte("x"), true)
		if jerr == nil || err == nil || string(b) != "x" {
			t.Errorf("%+v: encoding/json %v, AppendJSON %v (%q)", f, jerr, err, b)
		}
	}
}

func BenchmarkFindingJSON(b *testing.B) {
	f := NewFinding("rules", Rule{ID: "pod-exec", Name: "Command executed in a pod", Description: "Someone ran a command in a container.", Ruleset: "faultline-default"},
		SeverityMedium, "audit_9a93f38f-4a92-41b1-b3f4-c9376edac7db_ResponseComplete", time.Now())
	f.Threat = NewMITREThreat([]string{"T1609"}, []string{"Container Administration Command"})
	f.SetAuditContext(&auditv1.Event{AuditID: "9a93f38f-4a92-41b1-b3f4-c9376edac7db", Stage: "ResponseComplete", Verb: "create",
		RequestURI: "/api/v1/namespaces/shop/pods/web/exec?command=sh&command=-c&command=id&container=web&stdin=true",
		ObjectRef:  &auditv1.ObjectReference{Resource: "pods", Namespace: "shop", Name: "web", APIVersion: "v1", Subresource: "exec"}})
	f.Message = `alice ran "sh -c id" in pod shop/web`
	b.Run("AppendJSON", func(b *testing.B) {
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			buf, _ = f.AppendJSON(buf[:0], false)
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		b.ReportAllocs()
		for b.Loop() {
			buf.Reset()
			_ = enc.Encode(f)
		}
	})
}
