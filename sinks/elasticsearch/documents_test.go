package elasticsearch

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/faultline/faultline/schemas"
	"github.com/faultline/faultline/sinks"
)

// recordedDir holds audit events recorded from a real API server (the
// rules analyzer's test corpus).
const recordedDir = "../../analyzers/rules/testdata/recorded"

// recorded returns the audit event on line (1-based) of a recorded file.
func recorded(t testing.TB, file string, line int) []byte {
	t.Helper()
	events := recordedFile(t, filepath.Join(recordedDir, file))
	if line < 1 || line > len(events) {
		t.Fatalf("%s has %d events, not line %d", file, len(events), line)
	}
	return events[line-1]
}

func recordedFile(t testing.TB, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 {
			out = append(out, append([]byte(nil), line...))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// allRecorded returns every recorded audit event (the .jsonl files) as
// documents.
func allRecorded(t testing.TB, cluster string) []sinks.Document {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(recordedDir, "*.jsonl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recorded audit events in %s: %v", recordedDir, err)
	}
	var docs []sinks.Document
	for _, f := range files {
		for _, line := range recordedFile(t, f) {
			docs = append(docs, auditDocument(t, cluster, line))
		}
	}
	return docs
}

func auditDocument(t testing.TB, cluster string, line []byte) sinks.Document {
	t.Helper()
	ev, err := schemas.ParseAuditEvent(line)
	if err != nil {
		t.Fatal(err)
	}
	return sinks.Document{
		ID: schemas.AuditEventID(string(ev.AuditID), string(ev.Stage)), Type: schemas.TypeAudit,
		Subject: "audit", Cluster: cluster, Time: ev.StageTimestamp.Time, Body: line,
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var envTime = time.Date(2026, 11, 22, 6, 30, 0, 123456789, time.UTC)

// TestGolden writes each kind of document and compares it with
// testdata/golden (FAULTLINE_UPDATE_GOLDEN=1 rewrites them).
func TestGolden(t *testing.T) {
	tr := newTransformer("faultline")
	for _, tc := range []struct {
		name, typ string
		body      []byte
		stream    string
	}{
		{"audit-pod-exec", schemas.TypeAudit, recorded(t, "pod-exec.pos.jsonl", 1), "logs-kubernetes.audit_logs-faultline"},
		{"audit-privileged-pod", schemas.TypeAudit, recorded(t, "privileged-pod.pos.jsonl", 1), "logs-kubernetes.audit_logs-faultline"},
		{"audit-impersonation", schemas.TypeAudit, recorded(t, "impersonation-privileged.pos.jsonl", 1), "logs-kubernetes.audit_logs-faultline"},
		{"audit-forbidden", schemas.TypeAudit, recorded(t, "forbidden-burst.pos.jsonl", 1), "logs-kubernetes.audit_logs-faultline"},
		{"finding", schemas.TypeFinding, readFile(t, "testdata/in/finding.json"), "logs-faultline.findings-faultline"},
		{"deviation", schemas.TypeDeviation, readFile(t, "testdata/in/deviation.json"), "logs-faultline.experiments-faultline"},
		{"fault-status", schemas.TypeFaultStatus, readFile(t, "testdata/in/fault-status.json"), "logs-faultline.experiments-faultline"},
		{"experiment-report", sinks.TypeExperimentReport, readFile(t, "testdata/in/report.json"), "logs-faultline.experiments-faultline"},
		{"kevent", schemas.TypeKubeEvent, readFile(t, "testdata/in/kevent.json"), "logs-faultline.kevents-faultline"},
		{"kevent-informer", schemas.TypeKubeEvent, readFile(t, "testdata/in/kevent-informer.json"), "logs-faultline.kevents-faultline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The inputs are what Faultline publishes.
			if k, ok := schemas.KindOf(tc.typ); ok {
				if err := schemas.Validate(k, tc.body); err != nil {
					t.Fatalf("the input is not a valid %s: %v", k, err)
				}
			}
			d := sinks.Document{ID: "id-1", Type: tc.typ, Cluster: "prod-eu-1", Time: envTime, Body: tc.body}
			out, stream, err := tr.appendDocument([]byte("prefix"), &d)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(out, []byte("prefix")) {
				t.Fatal("dst was not appended to")
			}
			out = out[len("prefix"):]
			if stream != tc.stream {
				t.Errorf("data stream %s, want %s", stream, tc.stream)
			}
			if bytes.ContainsAny(out, "\r\n") {
				t.Error("document spans lines: it would break the _bulk body")
			}
			if !json.Valid(out) {
				t.Fatalf("not JSON: %s", out)
			}
			checkNoDuplicateKeys(t, out)
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, out, "", "  "); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			golden := filepath.Join("testdata", "golden", tc.name+".json")
			if os.Getenv("FAULTLINE_UPDATE_GOLDEN") == "1" {
				if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if want := readFile(t, golden); !bytes.Equal(pretty.Bytes(), want) {
				t.Errorf("%s differs (FAULTLINE_UPDATE_GOLDEN=1 rewrites it); got:\n%s", golden, pretty.Bytes())
			}
		})
	}
}

// checkNoDuplicateKeys fails when an object of doc has a name twice
// (Elasticsearch refuses such a document).
func checkNoDuplicateKeys(t *testing.T, doc []byte) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(doc))
	type frame struct {
		obj  bool
		key  bool // the next token is a key
		seen map[string]bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.obj && top.key {
			if k, ok := tok.(string); ok {
				if top.seen[k] {
					t.Errorf("duplicate key %q", k)
				}
				top.seen[k] = true
				top.key = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{obj: true, key: true, seen: map[string]bool{}})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 && stack[len(stack)-1].obj {
			stack[len(stack)-1].key = true
		}
	}
}

// Every recorded audit event becomes a document whose kubernetes.audit is
// the event itself (annotation names de-dotted, nothing else changed) and
// whose ECS fields are derived from it as Elastic's integration does.
func TestAuditRecorded(t *testing.T) {
	tr := newTransformer("ns1")
	docs := allRecorded(t, "prod-eu-1")
	if len(docs) < 100 {
		t.Fatalf("only %d recorded events", len(docs))
	}
	outcomes := map[string]int{}
	for _, d := range docs {
		out, stream, err := tr.appendDocument(nil, &d)
		if err != nil {
			t.Fatalf("%s: %v", d.ID, err)
		}
		if stream != "logs-kubernetes.audit_logs-ns1" {
			t.Fatalf("%s: data stream %s", d.ID, stream)
		}
		var in, got map[string]any
		if err := json.Unmarshal(d.Body, &in); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%s: %v: %s", d.ID, err, out)
		}
		audit := got["kubernetes"].(map[string]any)["audit"].(map[string]any)
		want := map[string]any{}
		for k, v := range in {
			want[k] = v
		}
		if ann, ok := in["annotations"].(map[string]any); ok {
			dd := map[string]any{}
			for k, v := range ann {
				dd[strings.ReplaceAll(k, ".", "_")] = v
			}
			want["annotations"] = dd
		}
		if !reflect.DeepEqual(audit, want) {
			t.Errorf("%s: kubernetes.audit is not the event with de-dotted annotations", d.ID)
		}
		field := func(path string) any {
			var v any = got
			for _, p := range strings.Split(path, ".") {
				m, ok := v.(map[string]any)
				if !ok {
					return nil
				}
				v = m[p]
			}
			return v
		}
		user := in["user"].(map[string]any)
		for path, want := range map[string]any{
			"@timestamp":                in["stageTimestamp"],
			"event.kind":                "event",
			"event.dataset":             "kubernetes.audit_logs",
			"event.action":              in["verb"],
			"user.name":                 user["username"],
			"user_agent.original":       in["userAgent"],
			"orchestrator.cluster.name": "prod-eu-1",
			"orchestrator.type":         "kubernetes",
			"data_stream.type":          "logs",
			"data_stream.dataset":       "kubernetes.audit_logs",
			"data_stream.namespace":     "ns1",
		} {
			if g := field(path); !reflect.DeepEqual(g, want) {
				t.Errorf("%s: %s = %v, want %v", d.ID, path, g, want)
			}
		}
		if ips, ok := in["sourceIPs"].([]any); ok && len(ips) > 0 {
			if g := field("source.ip"); g != ips[0] {
				t.Errorf("%s: source.ip = %v, want %v", d.ID, g, ips[0])
			}
		}
		if ref, ok := in["objectRef"].(map[string]any); ok {
			if g := field("orchestrator.resource.type"); g != ref["resource"] {
				t.Errorf("%s: orchestrator.resource.type = %v, want %v", d.ID, g, ref["resource"])
			}
		}
		outcome, _ := field("event.outcome").(string)
		outcomes[outcome]++
		decision, _ := field("kubernetes.audit.annotations.authorization_k8s_io/decision").(string)
		switch {
		case decision == "allow" && outcome != "success", decision == "forbid" && outcome != "failure":
			t.Errorf("%s: decision %s, outcome %s", d.ID, decision, outcome)
		}
	}
	if outcomes["success"] == 0 || outcomes["failure"] == 0 {
		t.Errorf("outcomes %v: the corpus has allowed and forbidden requests", outcomes)
	}
}

func TestAuditOutcome(t *testing.T) {
	for _, tc := range []struct {
		decision, code, want string
	}{
		{"allow", "500", "success"},
		{"forbid", "200", "failure"},
		{"", "200", "success"},
		{"", "201", "success"},
		{"", "304", "success"},
		{"", "403", "failure"},
		{"", "500", "failure"},
		{"", "", "unknown"},
		{"", "2000", "unknown"},
		{"", `"200"`, "unknown"},
		{"maybe", "", "unknown"},
	} {
		if got := auditOutcome(tc.decision, []byte(tc.code)); got != tc.want {
			t.Errorf("auditOutcome(%q, %q) = %q, want %q", tc.decision, tc.code, got, tc.want)
		}
	}
}

func TestAuditEdgeCases(t *testing.T) {
	tr := newTransformer("faultline")
	for _, tc := range []struct {
		name string
		body string
		want []string // substrings of the document
		not  []string
	}{
		{
			name: "escaped annotation names are decoded, de-dotted and re-encoded",
			body: `{"verb":"get","annotations":{"authorization\u002ek8s.io/decision":"forbid","a.b\"c":"x"},"stageTimestamp":"2026-01-01T00:00:00Z"}`,
			want: []string{`"authorization_k8s_io/decision":"forbid"`, `"a_b\"c":"x"`, `"outcome":"failure"`},
		},
		{
			name: "source.ip is the first of sourceIPs, only when an IP",
			body: `{"verb":"get","sourceIPs":["::ffff:10.0.0.1","10.0.0.2"],"stageTimestamp":"2026-01-01T00:00:00Z"}`,
			want: []string{`"source":{"ip":"10.0.0.1"}`},
		},
		{
			name: "a zone is dropped from an IPv6 address",
			body: `{"verb":"get","sourceIPs":["fe80::1%eth0"],"stageTimestamp":"2026-01-01T00:00:00Z"}`,
			want: []string{`"source":{"ip":"fe80::1"}`},
		},
		{
			name: "no source.ip for something else",
			body: `{"verb":"get","sourceIPs":["localhost"],"stageTimestamp":"2026-01-01T00:00:00Z"}`,
			not:  []string{`"source"`},
		},
		{
			name: "the envelope time when the event has no timestamps",
			body: `{"verb":"get"}`,
			want: []string{`"@timestamp":"2026-11-22T06:30:00.123456789Z"`, `"outcome":"unknown"`},
		},
		{
			name: "requestReceivedTimestamp without stageTimestamp",
			body: `{"verb":"get","requestReceivedTimestamp":"2026-01-01T00:00:01Z"}`,
			want: []string{`"@timestamp":"2026-01-01T00:00:01Z"`},
		},
		{
			name: "impersonation",
			body: `{"verb":"get","user":{"username":"alice","uid":"u1"},"impersonatedUser":{"username":"system:admin"}}`,
			want: []string{`"user":{"name":"alice","id":"u1","effective":{"name":"system:admin"}}`},
		},
		{
			name: "white space and newlines are removed",
			body: "{\n  \"verb\": \"list\",\n  \"annotations\": {\"a.b\": \"c\"}\n}\n",
			want: []string{`"verb":"list"`, `"annotations":{"a_b":"c"}`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := sinks.Document{ID: "x", Type: schemas.TypeAudit, Cluster: "c", Time: envTime, Body: []byte(tc.body)}
			out, _, err := tr.appendDocument(nil, &d)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(out) || bytes.ContainsAny(out, "\n\r") {
				t.Fatalf("not one line of JSON: %s", out)
			}
			for _, w := range tc.want {
				if !bytes.Contains(out, []byte(w)) {
					t.Errorf("no %s in %s", w, out)
				}
			}
			for _, w := range tc.not {
				if bytes.Contains(out, []byte(w)) {
					t.Errorf("%s in %s", w, out)
				}
			}
		})
	}
}

func TestTransformErrors(t *testing.T) {
	tr := newTransformer("faultline")
	for _, tc := range []struct {
		typ, body, want string
	}{
		{"io.faultline.metric.v1", `{}`, "no Elasticsearch document layout"},
		{schemas.TypeFaultCommand, `{}`, "no Elasticsearch document layout"},
		{schemas.TypeAudit, `[1,2]`, "not a JSON object"},
		{schemas.TypeFinding, `"x"`, "not a JSON object"},
		{schemas.TypeAudit, `{"verb":}`, "audit document"},
		{schemas.TypeFinding, `{"a":1,}`, "finding document"},
		{schemas.TypeDeviation, "{\"a\":\n}", "deviation document"},
	} {
		d := sinks.Document{ID: "x", Type: tc.typ, Cluster: "c", Time: envTime, Body: []byte(tc.body)}
		out, _, err := tr.appendDocument([]byte("keep"), &d)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %s: error %v, want %q", tc.typ, tc.body, err, tc.want)
		}
		if string(out) != "keep" {
			t.Errorf("%s %s: dst changed to %q on error", tc.typ, tc.body, out)
		}
	}
	// No time anywhere.
	d := sinks.Document{ID: "x", Type: schemas.TypeKubeEvent, Cluster: "c", Body: []byte(`{}`)}
	if _, _, err := tr.appendDocument(nil, &d); err == nil {
		t.Error("a Kubernetes Event without envelope time was accepted")
	}
}

// A finding keeps its own @timestamp and loses a data_stream it should
// not have carried; one without @timestamp gets the envelope's.
func TestFindingTimestampAndDataStream(t *testing.T) {
	tr := newTransformer("faultline")
	d := sinks.Document{ID: "x", Type: schemas.TypeFinding, Cluster: "c", Time: envTime,
		Body: []byte(`{"data_stream":{"namespace":"other"},"message":"m"}`)}
	out, _, err := tr.appendDocument(nil, &d)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"message":"m","@timestamp":"2026-11-22T06:30:00.123456789Z","data_stream":{"type":"logs","dataset":"faultline.findings","namespace":"faultline"}}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
}

func TestKindsAndDatasets(t *testing.T) {
	for _, k := range sinks.Kinds() {
		found := false
		for _, typ := range []string{schemas.TypeAudit, schemas.TypeKubeEvent, schemas.TypeFinding, schemas.TypeDeviation, sinks.TypeExperimentReport, schemas.TypeFaultStatus} {
			if kk, ok := sinks.KindOf(typ); ok && kk == k {
				found = true
			}
		}
		if !found {
			t.Errorf("kind %s has no envelope type", k)
		}
	}
	want := map[string]string{
		KindAudit: DatasetAudit, KindKubeEvent: DatasetKubeEvents, KindFinding: DatasetFindings,
		KindDeviation: DatasetExperiments, KindExperimentReport: DatasetExperiments, KindFaultStatus: DatasetExperiments,
	}
	for k, ds := range want {
		if got := DatasetOf(k); got != ds {
			t.Errorf("DatasetOf(%s) = %s, want %s", k, got, ds)
		}
	}
	if got := DataStream(DatasetAudit, "faultline"); got != "logs-kubernetes.audit_logs-faultline" {
		t.Errorf("audit data stream %s", got)
	}
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", `quote " backslash \ `, "ctl \x00\x01\x1f\t\n\r", "<&>", "é ü 日本", "bad \xff utf8", "\u2028"} {
		got := appendString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Errorf("%q → %s: %v", s, got, err)
			continue
		}
		want := strings.ToValidUTF8(s, "\uFFFD")
		if back != want {
			t.Errorf("%q → %s → %q", s, got, back)
		}
	}
}

func BenchmarkTransformAudit(b *testing.B) {
	tr := newTransformer("faultline")
	docs := allRecorded(b, "prod-eu-1")
	var size int
	for _, d := range docs {
		size += len(d.Body)
	}
	b.SetBytes(int64(size / len(docs)))
	b.ReportAllocs()
	var buf []byte
	b.ResetTimer()
	for i := range b.N {
		d := &docs[i%len(docs)]
		var err error
		buf, _, err = tr.appendDocument(buf[:0], d)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func ExampleDataStream() {
	for _, ds := range Datasets() {
		fmt.Println(DataStream(ds, "faultline"))
	}
	// Output:
	// logs-kubernetes.audit_logs-faultline
	// logs-faultline.findings-faultline
	// logs-faultline.experiments-faultline
	// logs-faultline.kevents-faultline
}
