package schemas

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
)

func readDoc(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseAuditEvents(t *testing.T) {
	type reject struct {
		index  int
		detail string
	}
	tests := []struct {
		name     string
		file     string // under testdata/, or
		in       string // inline input
		auditIDs []string
		rejects  []reject
		err      error // errors.Is target for the whole-document error
	}{
		{
			name:     "EventList v1",
			file:     "audit-docs/eventlist-v1.json",
			auditIDs: []string{"6b0b6a3e-4f3c-4f07-9a49-3d1b2a7f0c11", "0f1e2d3c-4b5a-4968-8776-655443322110", "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"},
		},
		{
			name:     "EventList v1beta1",
			file:     "audit-docs/eventlist-v1beta1.json",
			auditIDs: []string{"6b0b6a3e-4f3c-4f07-9a49-3d1b2a7f0c11", "0f1e2d3c-4b5a-4968-8776-655443322110", "11111111-2222-4333-8444-555555555555"},
		},
		{
			name:     "JSON array",
			file:     "audit-docs/array.json",
			auditIDs: []string{"f0e1d2c3-b4a5-4697-8889-7a6b5c4d3e2f", "6b0b6a3e-4f3c-4f07-9a49-3d1b2a7f0c11"},
		},
		{
			name:     "single event",
			file:     "audit-event/pod-exec.good.json",
			auditIDs: []string{"6b0b6a3e-4f3c-4f07-9a49-3d1b2a7f0c11"},
		},
		{
			name:     "single v1beta1 event",
			file:     "audit-event/v1beta1.good.json",
			auditIDs: []string{"11111111-2222-4333-8444-555555555555"},
		},
		{
			name:     "malformed items among valid ones",
			file:     "audit-docs/mixed.json",
			auditIDs: []string{"6b0b6a3e-4f3c-4f07-9a49-3d1b2a7f0c11", "0f1e2d3c-4b5a-4968-8776-655443322110", "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"},
			rejects: []reject{
				{1, "cannot unmarshal number"},
				{3, "missing stage"},
				{4, "cannot unmarshal number"},
				{5, "missing auditID"},
				{6, `apiVersion is "v1"`},
				{7, "missing auditID"},
				{8, "later"},
				{9, `apiVersion is "audit.k8s.io/v1alpha1"`},
			},
		},
		{name: "kind 0 alone", file: "audit-docs/kind-zero.json", rejects: []reject{{0, "cannot unmarshal number"}}},
		{name: "empty EventList", file: "audit-docs/empty-eventlist.json"},
		{name: "empty array", in: ` [ ] `},
		{name: "EventList without items", in: `{"kind":"EventList","apiVersion":"audit.k8s.io/v1"}`},
		{name: "EventList with null items", in: `{"kind":"EventList","items":null}`},
		{name: "empty object", in: `{}`, rejects: []reject{{0, "missing auditID"}}},
		{name: "unknown stage", in: `{"auditID":"a","stage":"Later","level":"None","verb":"get","requestURI":"/"}`, rejects: []reject{{0, `stage "Later"`}}},
		{name: "unknown level", in: `{"auditID":"a","stage":"Panic","level":"All","verb":"get","requestURI":"/"}`, rejects: []reject{{0, `level "All"`}}},
		{name: "missing level", in: `{"auditID":"a","stage":"Panic"}`, rejects: []reject{{0, "missing level"}}},
		{name: "missing verb", in: `{"auditID":"a","stage":"Panic","level":"None"}`, rejects: []reject{{0, "missing verb"}}},
		{name: "missing requestURI", in: `{"auditID":"a","stage":"Panic","level":"None","verb":"get"}`, rejects: []reject{{0, "missing requestURI"}}},
		{name: "missing timestamps", in: `{"auditID":"a","stage":"Panic","level":"None","verb":"get","requestURI":"/"}`, rejects: []reject{{0, "missing requestReceivedTimestamp"}}},
		{name: "kind Pod", in: `{"kind":"Pod","auditID":"a"}`, rejects: []reject{{0, `kind is "Pod"`}}},
		{name: "core EventList", file: "audit-docs/core-eventlist.json", err: ErrNotAuditEvent},
		{name: "EventList items not an array", in: `{"kind":"EventList","items":{"a":1}}`, err: ErrNotAuditEvent},
		{name: "string", in: `"audit"`, err: ErrNotAuditEvent},
		{name: "number", in: `42`, err: ErrNotAuditEvent},
		{name: "null", in: `null`, err: ErrNotAuditEvent},
		{name: "empty", in: ``, err: ErrNotAuditEvent},
		{name: "blank", in: " \n\t", err: ErrNotAuditEvent},
		{name: "truncated", file: "audit-docs/truncated.json", err: ErrSyntax},
		{name: "trailing comma", in: `[{"auditID":"a"},]`, err: ErrSyntax},
		{name: "two documents", in: `[] []`, err: ErrSyntax},
		{name: "garbage", in: `{kind: EventList}`, err: ErrSyntax},
		{name: "bad string in item", in: `[{"auditID":"a\q"}]`, err: ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			if tt.file != "" {
				in = readDoc(t, tt.file)
			}
			events, rejects, err := ParseAuditEvents(in)
			if tt.err != nil {
				if !errors.Is(err, tt.err) || events != nil || rejects != nil {
					t.Fatalf("ParseAuditEvents = %d events, %v, %v; want error %v", len(events), rejects, err, tt.err)
				}
				if !strings.HasPrefix(err.Error(), "parse audit events: ") {
					t.Errorf("error %q does not name the operation", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseAuditEvents: %v", err)
			}
			var ids []string
			for _, ev := range events {
				ids = append(ids, string(ev.AuditID))
				if ev.APIVersion != AuditAPIVersion || ev.Kind != "Event" {
					t.Errorf("event %s not normalised: %s %s", ev.AuditID, ev.APIVersion, ev.Kind)
				}
			}
			if strings.Join(ids, ",") != strings.Join(tt.auditIDs, ",") {
				t.Errorf("audit IDs %v, want %v", ids, tt.auditIDs)
			}
			if len(rejects) != len(tt.rejects) {
				t.Fatalf("rejects %v, want %d", rejects, len(tt.rejects))
			}
			for i, r := range rejects {
				want := tt.rejects[i]
				msg := r.Error()
				if r.Index != want.index || !errors.Is(r, ErrNotAuditEvent) ||
					!strings.Contains(msg, "data not recognized as a Kubernetes audit event") ||
					!strings.Contains(msg, want.detail) {
					t.Errorf("reject %d = %q (index %d), want index %d mentioning %q", i, msg, r.Index, want.index, want.detail)
				}
			}
		})
	}
}

func TestParseAuditEventKeepsObjects(t *testing.T) {
	ev, err := ParseAuditEvent(readDoc(t, "audit-event/privileged-pod-request.good.json"))
	if err != nil {
		t.Fatal(err)
	}
	if ev.RequestObject == nil || !json.Valid(ev.RequestObject.Raw) || !strings.Contains(string(ev.RequestObject.Raw), `"privileged": true`) {
		t.Errorf("request object lost: %v", ev.RequestObject)
	}
	if ev.ImpersonatedUser == nil || ev.ImpersonatedUser.Username != "system:admin" {
		t.Errorf("impersonated user lost: %v", ev.ImpersonatedUser)
	}
	if ev.Level != auditv1.LevelRequest || ev.Stage != auditv1.StageResponseComplete {
		t.Errorf("level/stage %s/%s", ev.Level, ev.Stage)
	}
	if got, want := AuditEventIDOf(&ev), "audit_a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d_ResponseComplete"; got != want {
		t.Errorf("AuditEventIDOf = %q, want %q", got, want)
	}
}

func TestSplitAuditEventsAliases(t *testing.T) {
	in := readDoc(t, "audit-docs/eventlist-v1.json")
	items, err := SplitAuditEvents(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 {
		t.Fatalf("%d items", len(items))
	}
	for i, it := range items {
		if !json.Valid(it) || it[0] != '{' || it[len(it)-1] != '}' {
			t.Errorf("item %d is not one object: %.40s", i, it)
		}
		if cap(it) != len(it) {
			t.Errorf("item %d can be appended into the next one", i)
		}
	}
}

func BenchmarkParseAuditEvents(b *testing.B) {
	one, err := os.ReadFile("testdata/audit-event/privileged-pod-request.good.json")
	if err != nil {
		b.Fatal(err)
	}
	list := []byte(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[` +
		strings.TrimSuffix(strings.Repeat(string(one)+",", 100), ",") + `]}`)
	b.SetBytes(int64(len(list)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseAuditEvents(list); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSplitAuditEvents(b *testing.B) {
	one, err := os.ReadFile("testdata/audit-event/privileged-pod-request.good.json")
	if err != nil {
		b.Fatal(err)
	}
	list := []byte(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[` +
		strings.TrimSuffix(strings.Repeat(string(one)+",", 400), ",") + `]}`)
	b.SetBytes(int64(len(list)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SplitAuditEvents(list); err != nil {
			b.Fatal(err)
		}
	}
}
