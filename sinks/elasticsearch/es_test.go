package elasticsearch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/bus/bustest"
	"github.com/faultline/faultline/internal/testes"
	"github.com/faultline/faultline/schemas"
	"github.com/faultline/faultline/sinks"
)

// es is one real Elasticsearch for the package's tests; each test writes
// to data streams of its own namespace.
var es = testes.NewShared(testes.Options{})

func TestMain(m *testing.M) {
	code := m.Run()
	if err := es.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

func esConfig(srv *testes.Server, namespace string) Config {
	c := DefaultConfig()
	c.URLs = []string{srv.URL}
	c.Namespace = namespace
	c.Replicas = 0 // one node
	c.FlushInterval = 50 * time.Millisecond
	c.Backoff = []time.Duration{200 * time.Millisecond}
	c.StartTimeout = 30 * time.Second
	return c
}

// initSink builds and initialises a sink.
func initSink(t *testing.T, c Config, reg prometheus.Registerer) *Sink {
	t.Helper()
	s, err := New(c, Options{Log: bustest.Logger(), Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	if err := s.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

// runIndexer runs an indexer until the test ends.
func runIndexer(t *testing.T, b *bus.Bus, c Config, reg prometheus.Registerer) *Indexer {
	t.Helper()
	ix, err := NewIndexer(c, Deps{Bus: b, Cluster: "test", Log: bustest.Logger(), Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ix.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("indexer: %v", err)
		}
	})
	bustest.WaitFor(t, 60*time.Second, "the indexer initialised", func() bool { return ix.Ready(ctx) == nil })
	return ix
}

type hits struct {
	Hits struct {
		Total struct {
			Value int `json:"value"`
		} `json:"total"`
		Hits []struct {
			ID     string          `json:"_id"`
			Index  string          `json:"_index"`
			Source json.RawMessage `json:"_source"`
		} `json:"hits"`
	} `json:"hits"`
}

// search returns the ids of the documents of index matching query.
func search(t *testing.T, c *testes.Client, index string, query any) []string {
	t.Helper()
	c.DoOK(http.MethodPost, "/"+index+"/_refresh", nil)
	r := c.DoOK(http.MethodPost, "/"+index+"/_search", map[string]any{"query": query, "size": 1000, "_source": false})
	var h hits
	if err := r.JSON(&h); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, len(h.Hits.Hits))
	for _, x := range h.Hits.Hits {
		ids = append(ids, x.ID)
	}
	slices.Sort(ids)
	return ids
}

// fieldType is the mapped type of a field in index, "" when unmapped.
func fieldType(t *testing.T, c *testes.Client, index, field string) string {
	t.Helper()
	r := c.DoOK(http.MethodGet, "/"+index+"/_mapping/field/"+url.PathEscape(field), nil)
	var m map[string]struct {
		Mappings map[string]struct {
			Mapping map[string]struct {
				Type string `json:"type"`
			} `json:"mapping"`
		} `json:"mappings"`
	}
	if err := r.JSON(&m); err != nil {
		t.Fatal(err)
	}
	for _, idx := range m {
		for _, f := range idx.Mappings {
			for _, def := range f.Mapping {
				return def.Type
			}
		}
	}
	return ""
}

type published struct {
	id, subject, typ, stream string
	body                     []byte
}

func publish(t *testing.T, b *bus.Bus, p published, msgID string) {
	t.Helper()
	env, err := schemas.NewEnvelopeRaw(schemas.Attributes{
		ID: p.id, Source: "/test", Type: p.typ, Subject: "test", Cluster: "test", Time: envTime,
	}, p.body)
	if err != nil {
		t.Fatal(err)
	}
	data, err := env.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(t.Context(), bus.Message{Subject: p.subject, ID: msgID, Data: data}); err != nil {
		t.Fatal(err)
	}
}

// Every kind of document goes from the bus into its data stream once,
// with the mapping the templates give; a redelivered message (published
// again under another message id) is acknowledged without a second
// document; a second Init leaves the installed templates as they are.
func TestIndexEveryKind(t *testing.T) {
	t.Parallel()
	srv := es.Get(t)
	c := srv.Client(t)
	b, _ := bustest.Start(t)
	reg := prometheus.NewRegistry()
	cfg := esConfig(srv, "every")
	runIndexer(t, b, cfg, reg)

	audit := recorded(t, "privileged-pod.pos.jsonl", 1)
	docs := []published{
		{"it-audit", bus.AuditSubject("test"), schemas.TypeAudit, "logs-kubernetes.audit_logs-every", audit},
		{"it-kevent", bus.KubeEventSubject("test", "payments"), schemas.TypeKubeEvent, "logs-faultline.kevents-every", readFile(t, "testdata/in/kevent-informer.json")},
		{"it-finding", bus.FindingSubject("test", "rules"), schemas.TypeFinding, "logs-faultline.findings-every", readFile(t, "testdata/in/finding.json")},
		{"it-deviation", bus.DeviationSubject("test", "run-1"), schemas.TypeDeviation, "logs-faultline.experiments-every", readFile(t, "testdata/in/deviation.json")},
		{"it-report", bus.ExperimentReportSubject("test", "run-1"), sinks.TypeExperimentReport, "logs-faultline.experiments-every", readFile(t, "testdata/in/report.json")},
		{"it-status", bus.FaultStatusSubject("test", "run-1"), schemas.TypeFaultStatus, "logs-faultline.experiments-every", readFile(t, "testdata/in/fault-status.json")},
	}
	for _, d := range docs {
		publish(t, b, d, d.id)
	}
	stored := func() float64 {
		return sinksDocs(t, reg, "stored")
	}
	bustest.WaitFor(t, 60*time.Second, "six documents stored", func() bool { return stored() >= 6 })
	for _, d := range docs {
		if ids := search(t, c, d.stream, map[string]any{"ids": map[string]any{"values": []string{d.id}}}); len(ids) != 1 {
			t.Errorf("%s: %d documents in %s", d.id, len(ids), d.stream)
		}
	}
	// Each data stream holds its own documents only.
	for stream, n := range map[string]int{
		"logs-kubernetes.audit_logs-every": 1, "logs-faultline.kevents-every": 1,
		"logs-faultline.findings-every": 1, "logs-faultline.experiments-every": 3,
	} {
		if ids := search(t, c, stream, map[string]any{"match_all": map[string]any{}}); len(ids) != n {
			t.Errorf("%s holds %v, want %d documents", stream, ids, n)
		}
	}

	for _, f := range []struct{ stream, field, want string }{
		{"logs-kubernetes.audit_logs-every", "@timestamp", "date"},
		{"logs-kubernetes.audit_logs-every", "kubernetes.audit.verb", "keyword"},
		{"logs-kubernetes.audit_logs-every", "kubernetes.audit.stageTimestamp", "date"},
		{"logs-kubernetes.audit_logs-every", "kubernetes.audit.requestObject.spec.containers.securityContext.privileged", "boolean"},
		{"logs-kubernetes.audit_logs-every", "kubernetes.audit.annotations.authorization_k8s_io/decision", "keyword"},
		{"logs-kubernetes.audit_logs-every", "source.ip", "ip"},
		{"logs-kubernetes.audit_logs-every", "kubernetes.audit.requestObject.metadata.managedFields", ""},
		{"logs-faultline.findings-every", "source.ip", "ip"},
		{"logs-faultline.findings-every", "event.severity", "long"},
		{"logs-faultline.findings-every", "rule.id", "keyword"},
		{"logs-faultline.findings-every", "threat.technique.id", "keyword"},
		{"logs-faultline.findings-every", "labels.experiment_id", "keyword"},
		{"logs-faultline.findings-every", "message", "text"},
		{"logs-faultline.experiments-every", "faultline.deviation.groups.control.value", "double"},
		{"logs-faultline.experiments-every", "faultline.deviation.evaluated_at", "date"},
		{"logs-faultline.experiments-every", "faultline.deviation.abort", "boolean"},
		{"logs-faultline.experiments-every", "faultline.fault_status.deadline", "date"},
		{"logs-faultline.experiments-every", "faultline.experiment_report.verdict", "keyword"},
		{"logs-faultline.experiments-every", "faultline.experiment_report.indicators", "flattened"},
		{"logs-faultline.experiments-every", "labels.experiment_id", "keyword"},
		{"logs-faultline.kevents-every", "kubernetes.event.note", "text"},
		{"logs-faultline.kevents-every", "kubernetes.event.metadata.labels", "flattened"},
		{"logs-faultline.kevents-every", "kubernetes.event.deprecatedLastTimestamp", "date"},
		{"logs-faultline.kevents-every", "event.reason", "keyword"},
	} {
		if got := fieldType(t, c, f.stream, f.field); got != f.want {
			t.Errorf("%s: %s is %q, want %q", f.stream, f.field, got, f.want)
		}
	}
	// The three kinds of the experiments stream, told apart, and linked to
	// their experiment as findings are.
	for _, q := range []struct {
		query any
		want  string
	}{
		{map[string]any{"term": map[string]any{"faultline.type": schemas.TypeDeviation}}, "it-deviation"},
		{map[string]any{"term": map[string]any{"faultline.type": sinks.TypeExperimentReport}}, "it-report"},
		{map[string]any{"term": map[string]any{"faultline.fault_status.phase": "applied"}}, "it-status"},
		{map[string]any{"term": map[string]any{"labels.experiment_id": "checkout-pod-kill-20250603"}}, "it-deviation,it-status"},
		{map[string]any{"term": map[string]any{"labels.experiment_id": "checkout-pod-kill-20261122t062300"}}, "it-report"},
		{map[string]any{"term": map[string]any{"faultline.experiment_report.indicators.p99-latency.verdict": "deviated"}}, "it-report"},
		{map[string]any{"match": map[string]any{"message": "exceeds"}}, "it-deviation,it-report"},
	} {
		got := search(t, c, "logs-faultline.experiments-every", q.query)
		if strings.Join(got, ",") != q.want {
			t.Errorf("%v: %v, want %s", q.query, got, q.want)
		}
	}

	// Redelivery: the same envelopes again, under new message ids so that
	// JetStream stores them again.
	for _, d := range docs {
		publish(t, b, d, d.id+"-again")
	}
	bustest.WaitFor(t, 60*time.Second, "the redelivered documents acknowledged", func() bool { return stored() >= 12 })
	for _, d := range docs {
		if ids := search(t, c, d.stream, map[string]any{"ids": map[string]any{"values": []string{d.id}}}); len(ids) != 1 {
			t.Errorf("%s: %d documents after redelivery", d.id, len(ids))
		}
	}
	dup, created := 0.0, 0.0
	for _, ds := range Datasets() {
		dup += esDocs(t, reg, ds, "duplicate")
		created += esDocs(t, reg, ds, "created")
	}
	if dup != 6 || created != 6 {
		t.Errorf("counted %v created and %v duplicates, want 6 and 6", created, dup)
	}
	if n := counterSum(t, reg, "faultline_elasticsearch_bulk_requests_total", map[string]string{"result": "ok"}); n < 2 {
		t.Errorf("%v bulk requests counted", n)
	}

	// A second indexer start finds the templates current.
	before := templateVersions(t, c, cfg)
	s := initSink(t, cfg, nil)
	if !s.Ready() || s.Version() != srv.Version {
		t.Errorf("second Init: ready %v, version %q (server %q)", s.Ready(), s.Version(), srv.Version)
	}
	if after := templateVersions(t, c, cfg); !slices.Equal(before, after) {
		t.Errorf("templates changed by a second Init: %v → %v", before, after)
	}
}

// templateVersions reads the version and hash of every template of cfg.
func templateVersions(t *testing.T, c *testes.Client, cfg Config) []string {
	t.Helper()
	var out []string
	names := []string{"_component_template/" + commonMappingsName}
	for _, ds := range Datasets() {
		names = append(names, "_component_template/"+mappingsName(ds), "_index_template/"+IndexTemplateName(ds, cfg.Namespace))
	}
	for _, n := range names {
		r := c.DoOK(http.MethodGet, "/"+n, nil)
		var got struct {
			C []struct {
				T installed `json:"component_template"`
			} `json:"component_templates"`
			I []struct {
				T installed `json:"index_template"`
			} `json:"index_templates"`
		}
		if err := r.JSON(&got); err != nil {
			t.Fatal(err)
		}
		var in installed
		if len(got.C) > 0 {
			in = got.C[0].T
		} else if len(got.I) > 0 {
			in = got.I[0].T
		}
		if in.Version != TemplateVersion || in.Meta.Hash == "" {
			t.Errorf("%s: version %d hash %q", n, in.Version, in.Meta.Hash)
		}
		out = append(out, fmt.Sprintf("%s@%d:%s", n, in.Version, in.Meta.Hash))
	}
	return out
}

func sinksDocs(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	return counterSum(t, reg, "faultline_sink_documents_total", map[string]string{"sink": Name, "result": result})
}

func esDocs(t *testing.T, reg *prometheus.Registry, dataset, result string) float64 {
	t.Helper()
	return counterSum(t, reg, "faultline_elasticsearch_documents_total", map[string]string{"dataset": dataset, "result": result})
}

// counterSum sums the series of a counter whose labels include labels.
func counterSum(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	sum := 0.0
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := 0
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v == l.GetValue() {
					match++
				}
			}
			if match == len(labels) {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// One bulk with a document the mapping rejects: that one fails for good
// with Elasticsearch's reason, the others are indexed; through the bus,
// the rejected one is in the dead letters with that reason.
func TestBulkRejectsOne(t *testing.T) {
	t.Parallel()
	srv := es.Get(t)
	c := srv.Client(t)
	cfg := esConfig(srv, "reject")
	reg := prometheus.NewRegistry()
	s := initSink(t, cfg, reg)

	finding := readFile(t, "testdata/in/finding.json")
	var bad map[string]any
	if err := json.Unmarshal(finding, &bad); err != nil {
		t.Fatal(err)
	}
	bad["rule"].(map[string]any)["name"] = map[string]any{"not": "a keyword"}
	badBody, _ := json.Marshal(bad)
	var docs []sinks.Document
	for i := range 5 {
		body := finding
		if i == 2 {
			body = badBody
		}
		docs = append(docs, sinks.Document{ID: fmt.Sprintf("reject-%d", i), Type: schemas.TypeFinding, Cluster: "test", Time: envTime, Body: body})
	}
	res := s.Write(t.Context(), docs)
	for i, r := range res {
		switch {
		case i == 2 && (r.Err == nil || r.Retryable):
			t.Errorf("the rejected document: %+v", r)
		case i == 2 && !strings.Contains(r.Err.Error(), "document_parsing_exception") && !strings.Contains(r.Err.Error(), "mapper_parsing_exception"):
			t.Errorf("the rejection does not carry Elasticsearch's reason: %v", r.Err)
		case i == 2 && !strings.Contains(r.Err.Error(), "rule.name"):
			t.Errorf("the rejection does not name the field: %v", r.Err)
		case i != 2 && r.Err != nil:
			t.Errorf("document %d: %v", i, r.Err)
		}
	}
	ids := search(t, c, "logs-faultline.findings-reject", map[string]any{"match_all": map[string]any{}})
	if strings.Join(ids, ",") != "reject-0,reject-1,reject-3,reject-4" {
		t.Errorf("indexed %v", ids)
	}
	if got := esDocs(t, reg, DatasetFindings, "rejected"); got != 1 {
		t.Errorf("rejected counted %v", got)
	}

	// Through the bus: the runner dead-letters it with the reason.
	b, _ := bustest.Start(t)
	cfg.Namespace = "reject_bus"
	cfg.Documents = []string{KindFinding}
	runIndexer(t, b, cfg, prometheus.NewRegistry())
	for i, d := range docs {
		publish(t, b, published{d.ID, bus.FindingSubject("test", "rules"), schemas.TypeFinding, "", d.Body}, fmt.Sprint(i))
	}
	bustest.WaitFor(t, 60*time.Second, "the rejected finding dead-lettered", func() bool {
		st, err := b.JetStream().Stream(t.Context(), bus.StreamDeadLetter)
		if err != nil {
			return false
		}
		m, err := st.GetLastMsgForSubject(t.Context(), bus.DeadLetterSubject(bus.StreamFinding, "index-test-finding"))
		if err != nil {
			return false
		}
		reason := m.Header.Get(bus.HeaderDLQReason)
		return strings.Contains(reason, "reject-2") && strings.Contains(reason, "rule.name")
	})
	bustest.WaitFor(t, 30*time.Second, "the other four indexed", func() bool {
		return len(search(t, c, "logs-faultline.findings-reject_bus", map[string]any{"match_all": map[string]any{}})) == 4
	})
}

// decoded returns the recorded audit events decoded, by document id.
func decoded(t *testing.T, docs []sinks.Document) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, d := range docs {
		var m map[string]any
		if err := json.Unmarshal(d.Body, &m); err != nil {
			t.Fatal(err)
		}
		out[d.ID] = m
	}
	return out
}

// get follows a path through maps and arrays (any element), as a term
// query does: it returns every value found.
func get(v any, path ...string) []any {
	if len(path) == 0 {
		if arr, ok := v.([]any); ok {
			return arr
		}
		return []any{v}
	}
	switch x := v.(type) {
	case map[string]any:
		if next, ok := x[path[0]]; ok {
			return get(next, path[1:]...)
		}
	case []any:
		var out []any
		for _, e := range x {
			out = append(out, get(e, path...)...)
		}
		return out
	}
	return nil
}

// For each field the issue names, a term or exists query on the indexed
// recorded audit events finds exactly the events that have it (computed
// here from the events themselves), among them a known example.
func TestAuditFieldQueries(t *testing.T) {
	t.Parallel()
	srv := es.Get(t)
	c := srv.Client(t)
	s := initSink(t, esConfig(srv, "fields"), nil)
	// No recorded event creates a pod with a privileged container (only
	// a privileged init container): this one is the recorded
	// privileged-pod event with its init container's securityContext on
	// the container.
	derived := bytes.TrimSpace(readFile(t, "testdata/in/audit-privileged-container.jsonl"))
	docs := append(allRecorded(t, "test"), auditDocument(t, "test", derived))
	for i, r := range s.Write(t.Context(), docs) {
		if r.Err != nil {
			t.Fatalf("%s: %v", docs[i].ID, r.Err)
		}
	}
	events := decoded(t, docs)
	byFile := func(file string) string {
		if file == "derived" {
			return auditDocument(t, "test", derived).ID
		}
		return auditDocument(t, "test", recorded(t, file, 1)).ID
	}
	has := func(path string, want any) func(map[string]any) bool {
		parts := strings.Split(path, ".")
		return func(ev map[string]any) bool {
			vals := get(ev, parts...)
			if want == nil {
				return len(vals) > 0
			}
			return slices.Contains(vals, want)
		}
	}
	decision := func(want string) func(map[string]any) bool {
		return func(ev map[string]any) bool {
			a, _ := ev["annotations"].(map[string]any)
			return a["authorization.k8s.io/decision"] == want
		}
	}
	firstIP := func(want string) func(map[string]any) bool {
		return func(ev map[string]any) bool {
			ips, _ := ev["sourceIPs"].([]any)
			return len(ips) > 0 && ips[0] == want
		}
	}
	const exec = "pod-exec.pos.jsonl"
	for _, q := range []struct {
		field   string
		value   any // nil: exists
		example string
		match   func(map[string]any) bool
	}{
		{"kubernetes.audit.verb", "create", exec, has("verb", "create")},
		{"kubernetes.audit.objectRef.resource", "secrets", "secret-read.pos.jsonl", has("objectRef.resource", "secrets")},
		{"kubernetes.audit.objectRef.subresource", "exec", exec, has("objectRef.subresource", "exec")},
		{"kubernetes.audit.user.username", "system:anonymous", "anonymous-allowed.pos.jsonl", has("user.username", "system:anonymous")},
		{"kubernetes.audit.annotations.authorization_k8s_io/decision", "forbid", "forbidden-burst.pos.jsonl", decision("forbid")},
		{"kubernetes.audit.requestObject.spec.hostNetwork", true, "host-network-pod.pos.jsonl", has("requestObject.spec.hostNetwork", true)},
		{"kubernetes.audit.requestObject.spec.hostPID", true, "host-pid-pod.pos.jsonl", has("requestObject.spec.hostPID", true)},
		{"kubernetes.audit.requestObject.spec.hostIPC", true, "host-ipc-pod.pos.jsonl", has("requestObject.spec.hostIPC", true)},
		{"kubernetes.audit.requestObject.spec.containers.securityContext.privileged", true, "derived",
			has("requestObject.spec.containers.securityContext.privileged", true)},
		{"kubernetes.audit.requestObject.spec.initContainers.securityContext.privileged", true, "privileged-pod.pos.jsonl",
			has("requestObject.spec.initContainers.securityContext.privileged", true)},
		{"kubernetes.audit.requestObject.spec.volumes.hostPath.path", "/var/run/docker.sock", "sensitive-hostpath-pod.pos.jsonl", has("requestObject.spec.volumes.hostPath.path", "/var/run/docker.sock")},
		{"kubernetes.audit.requestObject.roleRef.name", "cluster-admin", "cluster-admin-binding.pos.jsonl", has("requestObject.roleRef.name", "cluster-admin")},
		{"event.action", "deletecollection", "events-deleted.pos.jsonl", has("verb", "deletecollection")},
		{"event.outcome", "failure", "forbidden-burst.pos.jsonl", decision("forbid")},
		{"event.outcome", "success", exec, decision("allow")},
		{"user.name", "system:anonymous", "anonymous-allowed.pos.jsonl", has("user.username", "system:anonymous")},
		{"source.ip", "127.0.0.1", exec, firstIP("127.0.0.1")},
		{"source.ip", nil, exec, func(ev map[string]any) bool { ips, _ := ev["sourceIPs"].([]any); return len(ips) > 0 }},
		{"user_agent.original", "kubectl/v1.33.13 (linux/amd64) kubernetes/8adc0f0", exec, has("userAgent", "kubectl/v1.33.13 (linux/amd64) kubernetes/8adc0f0")},
		{"user_agent.original", nil, exec, has("userAgent", nil)},
		{"kubernetes.audit.impersonatedUser.username", nil, "impersonation-privileged.pos.jsonl", has("impersonatedUser.username", nil)},
	} {
		name := q.field + "=" + fmt.Sprint(q.value)
		t.Run(name, func(t *testing.T) {
			var want []string
			for id, ev := range events {
				if q.match(ev) {
					want = append(want, id)
				}
			}
			slices.Sort(want)
			if ex := byFile(q.example); !slices.Contains(want, ex) {
				t.Fatalf("the example %s (%s) does not match the condition", q.example, ex)
			}
			query := map[string]any{"exists": map[string]any{"field": q.field}}
			if q.value != nil {
				query = map[string]any{"term": map[string]any{q.field: q.value}}
			}
			got := search(t, c, "logs-kubernetes.audit_logs-fields", query)
			if !slices.Equal(got, want) {
				t.Errorf("%v found %d documents, want %d\n got %v\nwant %v", query, len(got), len(want), got, want)
			}
		})
	}
	// Elastic's prebuilt rules select by data set.
	if got := search(t, c, "logs-kubernetes.*-fields", map[string]any{"term": map[string]any{"event.dataset": "kubernetes.audit_logs"}}); len(got) != len(docs) {
		t.Errorf("event.dataset kubernetes.audit_logs: %d of %d documents", len(got), len(docs))
	}
}

// With security on, the indexer authenticates with username and
// password_file; a wrong password stops it at start with a clear message.
func TestBasicAuthentication(t *testing.T) {
	t.Parallel()
	srv := testes.Start(t, testes.Options{
		Security: true,
		Users:    []testes.User{{Name: "faultline-indexer", Password: "indexer-password", Roles: []string{"faultline_indexer"}}},
		Roles: `faultline_indexer:
  cluster: [monitor, manage_index_templates]
  indices:
    - names: ["logs-kubernetes.audit_logs-*", "logs-faultline.*"]
      privileges: [create_doc, auto_configure]
`,
	})
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte("indexer-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := esConfig(srv, "secure")
	cfg.Username, cfg.PasswordFile = "faultline-indexer", pw
	s := initSink(t, cfg, nil)
	docs := allRecorded(t, "test")[:20]
	for i, r := range s.Write(t.Context(), docs) {
		if r.Err != nil {
			t.Fatalf("%s: %v", docs[i].ID, r.Err)
		}
	}
	if got := search(t, srv.Client(t), "logs-kubernetes.audit_logs-secure", map[string]any{"match_all": map[string]any{}}); len(got) != 20 {
		t.Errorf("indexed %d of 20", len(got))
	}

	wrong := filepath.Join(dir, "wrong")
	if err := os.WriteFile(wrong, []byte("not-the-password"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.PasswordFile = wrong
	bad, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close(context.Background())
	err = bad.Init(t.Context())
	if err == nil || !strings.Contains(err.Error(), "refused the credentials") || strings.Contains(err.Error(), "not-the-password") {
		t.Fatalf("Init with a wrong password: %v", err)
	}
}

// Templates are versioned: an older index template is replaced and its data
// stream rolled over, so the next document lands in a backing index with
// the new mappings; a newer one (a newer Faultline's) is left alone.
func TestTemplateUpgrade(t *testing.T) {
	t.Parallel()
	srv := es.Get(t)
	c := srv.Client(t)
	cfg := esConfig(srv, "upgrade")
	cfg.Documents = []string{KindFinding, KindAudit}
	s := initSink(t, cfg, nil)

	// An older Faultline's template for findings, a newer one's for audit.
	older := indexTemplate(cfg, s.features, DatasetFindings)
	older.Body["version"] = TemplateVersion - 1
	older.Body["_meta"] = obj{"managed_by": "faultline", "hash": "older"}
	c.DoOK(http.MethodPut, "/_index_template/"+older.Name, older.Body)
	newer := indexTemplate(cfg, s.features, DatasetAudit)
	newer.Body["version"] = TemplateVersion + 1
	newer.Body["_meta"] = obj{"managed_by": "faultline", "hash": "newer"}
	c.DoOK(http.MethodPut, "/_index_template/"+newer.Name, newer.Body)

	write := func(id string) string {
		t.Helper()
		r := s.Write(t.Context(), []sinks.Document{{ID: id, Type: schemas.TypeFinding, Cluster: "test", Time: envTime, Body: readFile(t, "testdata/in/finding.json")}})
		if r[0].Err != nil {
			t.Fatal(r[0].Err)
		}
		c.DoOK(http.MethodPost, "/logs-faultline.findings-upgrade/_refresh", nil)
		resp := c.DoOK(http.MethodPost, "/logs-faultline.findings-upgrade/_search", map[string]any{"query": map[string]any{"ids": map[string]any{"values": []string{id}}}})
		var h hits
		if err := resp.JSON(&h); err != nil || len(h.Hits.Hits) != 1 {
			t.Fatalf("%s: %v %s", id, err, resp)
		}
		return h.Hits.Hits[0].Index
	}
	first := write("upgrade-1")

	if err := s.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	if v := templateVersion(t, c, "_index_template/"+older.Name); v != TemplateVersion {
		t.Errorf("the older template is at version %d after Init", v)
	}
	if v := templateVersion(t, c, "_index_template/"+newer.Name); v != TemplateVersion+1 {
		t.Errorf("the newer template was replaced (version %d)", v)
	}
	if second := write("upgrade-2"); second == first || !strings.HasSuffix(second, "-000002") {
		t.Errorf("after the upgrade a document went to %s (the first to %s): no rollover", second, first)
	}
}

func templateVersion(t *testing.T, c *testes.Client, path string) int {
	t.Helper()
	var got struct {
		I []struct {
			T installed `json:"index_template"`
		} `json:"index_templates"`
	}
	if err := c.DoOK(http.MethodGet, "/"+path, nil).JSON(&got); err != nil || len(got.I) != 1 {
		t.Fatalf("%s: %v", path, err)
	}
	return got.I[0].T.Version
}
