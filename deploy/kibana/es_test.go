package kibana

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"

	"github.com/faultline/faultline/analyzers"
	"github.com/faultline/faultline/analyzers/replay"
	"github.com/faultline/faultline/analyzers/rules"
	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/bus/bustest"
	"github.com/faultline/faultline/injectors/experiment"
	"github.com/faultline/faultline/internal/testes"
	"github.com/faultline/faultline/schemas"
	"github.com/faultline/faultline/sinks"
	es "github.com/faultline/faultline/sinks/elasticsearch"
)

// The saved searches against a real Elasticsearch: the real indexer writes
// recorded audit events of a real kube-apiserver (every file of
// analyzers/rules/testdata/recorded, the benign corpus included, and a few
// variants of them), the findings the default rules raise on them in an
// offline replay (with chaos awareness and an experiment), and experiment
// reports, deviations and a fault status. Then each saved search's KQL is
// translated to query DSL in both of the forms Kibana sends (match /
// match_phrase / query_string, and term / wildcard for keyword fields),
// run on the search's data view, and must return exactly the documents its
// expectation below picks out of the seeds, written from what the search
// is for, in Go, independently of the query.

const cluster = "test"

// seed is one document sent through the bus, with its parsed form for the
// expectations.
type seed struct {
	id, subject, ceType, dataset string
	body                         []byte

	audit     *auditv1.Event
	finding   *schemas.Finding
	report    *experiment.Report
	deviation *schemas.Deviation
	status    *schemas.FaultStatus
}

// recordedDir holds audit events a real kube-apiserver wrote.
const recordedDir = "../../analyzers/rules/testdata/recorded"

// secretReaders are the identities the secrets-read search leaves out: the
// default ruleset's lists.secret_readers (globs), and group system:nodes.
var secretReaders = []string{
	"system:apiserver", "system:kube-controller-manager", "system:kube-scheduler",
	"system:node:*", "system:serviceaccount:kube-system:*",
}

func decision(ev *auditv1.Event) string { return ev.Annotations["authorization.k8s.io/decision"] }

func code(ev *auditv1.Event) int32 {
	if ev.ResponseStatus == nil {
		return 0
	}
	return ev.ResponseStatus.Code
}

// succeeded is whether the request was allowed: by the authorization
// decision, else by the response code.
func succeeded(ev *auditv1.Event) bool {
	switch decision(ev) {
	case "allow":
		return true
	case "forbid":
		return false
	}
	c := code(ev)
	return c > 0 && c < 400
}

func resourceIs(ev *auditv1.Event, resource, subresource string) bool {
	return ev.ObjectRef != nil && ev.ObjectRef.Resource == resource && ev.ObjectRef.Subresource == subresource
}

// expectations: what each saved search (by id) must find among the seeds.
var expectations = map[string]func(s seed) bool{
	"faultline-high-critical-findings": func(s seed) bool {
		return s.finding != nil && s.finding.Faultline.Severity.AtLeast(schemas.SeverityHigh)
	},
	"faultline-exec-into-pods": func(s seed) bool {
		return s.audit != nil && resourceIs(s.audit, "pods", "exec")
	},
	"faultline-secrets-read": func(s seed) bool {
		ev := s.audit
		if ev == nil || !resourceIs(ev, "secrets", "") || !slices.Contains([]string{"get", "list", "watch"}, ev.Verb) || !succeeded(ev) {
			return false
		}
		for _, g := range secretReaders {
			if ok, _ := path.Match(g, ev.User.Username); ok {
				return false
			}
		}
		return !slices.Contains(ev.User.Groups, "system:nodes")
	},
	"faultline-findings-during-experiments": func(s seed) bool {
		return s.finding != nil && s.finding.Labels[schemas.LabelExperimentID] != ""
	},
	"faultline-experiments-deviated": func(s seed) bool {
		return (s.report != nil && s.report.Verdict == experiment.VerdictDeviated) ||
			(s.deviation != nil && s.deviation.Verdict == schemas.VerdictDeviated)
	},
	"faultline-anonymous-forbidden": func(s seed) bool {
		return s.audit != nil && (s.audit.User.Username == "system:anonymous" || code(s.audit) == 401 || code(s.audit) == 403)
	},
	"faultline-experiment-reports": func(s seed) bool { return s.report != nil },
}

// spotChecks name seeds each search must find (in) or must not (out), so
// that an expectation that went wrong together with its query is caught.
var spotChecks = map[string]struct{ in, out []string }{
	"faultline-exec-into-pods": {
		in:  []string{"audit-pod-exec.pos-1", "audit-pod-exec.pos-2", "audit-variant-injector-exec", "audit-variant-exec-forbidden"},
		out: []string{"audit-pod-exec.neg-1", "audit-pod-attach.pos-1"},
	},
	"faultline-secrets-read": {
		in: []string{"audit-secret-read.pos-1", "audit-variant-serviceaccount-secret-list"},
		out: []string{"audit-secret-read.neg-1", "audit-variant-node-secret-get", "audit-variant-kube-system-secret-get",
			"audit-variant-nodes-group-secret-get", "audit-variant-controller-secret-watch"},
	},
	"faultline-anonymous-forbidden": {
		in: []string{"audit-anonymous-allowed.pos-1", "audit-anonymous-write.neg-1", "audit-forbidden-burst.pos-1",
			"audit-variant-unauthenticated", "audit-variant-admission-forbidden", "audit-variant-exec-forbidden"},
		out: []string{"audit-pod-exec.pos-1", "audit-secret-read.pos-1"},
	},
	"faultline-experiments-deviated": {
		in:  []string{"report-deviated", "deviation-deviated"},
		out: []string{"report-passed", "report-aborted", "deviation-failing", "deviation-ok", "fault-status-applied"},
	},
	"faultline-experiment-reports": {
		in:  []string{"report-passed", "report-deviated", "report-aborted", "report-failed"},
		out: []string{"deviation-deviated", "fault-status-applied"},
	},
}

// findingSpotChecks: findings are named by rule (their ids are derived).
var findingSpotChecks = map[string]struct{ in, out []string }{
	"faultline-high-critical-findings":      {in: []string{"anonymous-write", "anonymous-allowed"}, out: []string{"pod-exec", "secret-read"}},
	"faultline-findings-during-experiments": {in: []string{"anonymous-write"}, out: []string{"secret-read"}},
}

func TestSavedSearchesOnElasticsearch(t *testing.T) {
	srv := testes.Start(t, testes.Options{})
	c := srv.Client(t)
	b, _ := bustest.Start(t)
	reg := prometheus.NewRegistry()

	cfg := es.DefaultConfig()
	cfg.URLs = []string{srv.URL}
	cfg.Replicas = 0 // one node
	cfg.FlushInterval = 50 * time.Millisecond
	cfg.Backoff = []time.Duration{200 * time.Millisecond}
	cfg.StartTimeout = 30 * time.Second
	runIndexer(t, b, cfg, reg)

	seeds := buildSeeds(t)
	for _, s := range seeds {
		publishSeed(t, b, s)
	}

	objs := loadObjects(t)
	views := map[string]string{} // data view id → title
	viewDataset := map[string]string{}
	for _, v := range objectsOfType(objs, "index-pattern") {
		title, _ := v.Attributes["title"].(string)
		views[v.ID] = title
		for _, ds := range es.Datasets() {
			if ok, _ := path.Match(title, es.DataStream(ds, cfg.Namespace)); ok {
				viewDataset[v.ID] = ds
			}
		}
	}
	want := map[string]int{} // data view title → documents
	for _, s := range seeds {
		for id, ds := range viewDataset {
			if ds == s.dataset {
				want[views[id]]++
			}
		}
	}
	bustest.WaitFor(t, 2*time.Minute, "every seed indexed", func() bool {
		for title, n := range want {
			if count(t, c, title) != n {
				return false
			}
		}
		return true
	})
	if n := counter(t, reg, "faultline_sink_documents_total", "dead_letter"); n != 0 {
		t.Fatalf("%v documents dead-lettered", n)
	}
	t.Logf("indexed: %v", want)

	caps := map[string]map[string]fieldCap{} // data view id → field → capability
	for id, title := range views {
		if want[title] > 0 {
			caps[id] = fieldCaps(t, c, title)
		}
	}

	bySeedID := map[string]seed{}
	for _, s := range seeds {
		bySeedID[s.id] = s
	}

	for _, s := range objectsOfType(objs, "search") {
		t.Run(s.ID, func(t *testing.T) {
			expect, ok := expectations[s.ID]
			if !ok {
				t.Fatalf("no expectation for saved search %s: add one", s.ID)
			}
			view := s.dataView()
			q, _ := s.query()
			n, err := parseKQL(q)
			if err != nil {
				t.Fatal(err)
			}
			cols, _ := s.Attributes["columns"].([]any)
			for _, f := range kqlFields(n) {
				if fc, ok := caps[view][f]; !ok || !fc.Searchable {
					t.Errorf("query field %s is not a searchable field of %s (%+v)", f, views[view], fc)
				}
			}
			for _, col := range cols {
				if _, ok := caps[view][col.(string)]; !ok {
					t.Errorf("column %s is not a field of %s", col, views[view])
				}
			}

			var wantIDs []string
			for _, sd := range seeds {
				if sd.dataset == viewDataset[view] && expect(sd) {
					wantIDs = append(wantIDs, sd.id)
				}
			}
			slices.Sort(wantIDs)
			if len(wantIDs) == 0 || len(wantIDs) == want[views[view]] {
				t.Fatalf("the expectation picks %d of %d documents: the test cannot fail", len(wantIDs), want[views[view]])
			}
			checkSpots(t, s.ID, wantIDs, seeds)
			for _, mode := range []dslMode{dslMatch, dslKeywordTerm} {
				got := runQuery(t, c, views[view], n, caps[view], mode)
				if !slices.Equal(got, wantIDs) {
					t.Errorf("%s (%s form): %s", q, mode, diffIDs(got, wantIDs, bySeedID))
				}
			}
			t.Logf("%q finds %d of %d documents", q, len(wantIDs), want[views[view]])
		})
	}

	// Lens: every column's field is in its data view with a type its
	// operation takes, and each query finds what the saved search of the
	// same query does (or everything when empty).
	for _, l := range objectsOfType(objs, "lens") {
		t.Run(l.ID, func(t *testing.T) {
			view := l.dataView()
			cols, _, err := lensLayers(l)
			if err != nil {
				t.Fatal(err)
			}
			for _, layer := range cols {
				for cid, col := range layer {
					field, _ := col["sourceField"].(string)
					if field == "___records___" {
						continue
					}
					fc, ok := caps[view][field]
					switch {
					case !ok:
						t.Errorf("column %s: field %s is not in %s", cid, field, views[view])
					case col["operationType"] == "date_histogram" && fc.Type != "date":
						t.Errorf("column %s: date_histogram on %s of type %s", cid, field, fc.Type)
					case col["operationType"] == "terms" && (!fc.Aggregatable || fc.Type != "keyword"):
						t.Errorf("column %s: terms on %s: %+v", cid, field, fc)
					}
				}
			}
			q, _ := l.query()
			n, err := parseKQL(q)
			if err != nil {
				t.Fatal(err)
			}
			expect := func(seed) bool { return true }
			if q != "" {
				var found bool
				for _, s := range objectsOfType(objs, "search") {
					if sq, _ := s.query(); sq == q && s.dataView() == view {
						expect, found = expectations[s.ID], true
					}
				}
				if !found {
					t.Fatalf("query %q is no saved search's on %s: add one, or an expectation here", q, view)
				}
			}
			var wantIDs []string
			for _, sd := range seeds {
				if sd.dataset == viewDataset[view] && expect(sd) {
					wantIDs = append(wantIDs, sd.id)
				}
			}
			slices.Sort(wantIDs)
			for _, mode := range []dslMode{dslMatch, dslKeywordTerm} {
				if got := runQuery(t, c, views[view], n, caps[view], mode); !slices.Equal(got, wantIDs) {
					t.Errorf("%q (%s form): %s", q, mode, diffIDs(got, wantIDs, bySeedID))
				}
			}
		})
	}
}

func checkSpots(t *testing.T, searchID string, wantIDs []string, seeds []seed) {
	t.Helper()
	sc := spotChecks[searchID]
	for _, id := range append(slices.Clone(sc.in), sc.out...) {
		if !slices.ContainsFunc(seeds, func(s seed) bool { return s.id == id }) {
			t.Errorf("spot check: no seed %s", id)
		}
	}
	for _, id := range sc.in {
		if !slices.Contains(wantIDs, id) {
			t.Errorf("expectation: %s should be found", id)
		}
	}
	for _, id := range sc.out {
		if slices.Contains(wantIDs, id) {
			t.Errorf("expectation: %s should not be found", id)
		}
	}
	fsc := findingSpotChecks[searchID]
	for _, rule := range append(slices.Clone(fsc.in), fsc.out...) {
		in := slices.Contains(fsc.in, rule)
		n := 0
		for _, s := range seeds {
			if s.finding != nil && s.finding.Rule.ID == rule {
				n++
				if slices.Contains(wantIDs, s.id) != in {
					t.Errorf("expectation: finding %s (rule %s) found: %v", s.id, rule, !in)
				}
			}
		}
		if n == 0 {
			t.Errorf("the replay raised no %s finding", rule)
		}
	}
}

func diffIDs(got, want []string, seeds map[string]seed) string {
	var b strings.Builder
	for _, id := range want {
		if !slices.Contains(got, id) {
			fmt.Fprintf(&b, "\n  missing %s: %s", id, describe(seeds[id]))
		}
	}
	for _, id := range got {
		if !slices.Contains(want, id) {
			fmt.Fprintf(&b, "\n  unexpected %s: %s", id, describe(seeds[id]))
		}
	}
	return fmt.Sprintf("%d found, %d expected:%s", len(got), len(want), b.String())
}

func describe(s seed) string {
	switch {
	case s.audit != nil:
		ev := s.audit
		ref := ""
		if ev.ObjectRef != nil {
			ref = ev.ObjectRef.Resource + "/" + ev.ObjectRef.Subresource
		}
		return fmt.Sprintf("%s %s by %s %v: %d %s", ev.Verb, ref, ev.User.Username, ev.User.Groups, code(ev), decision(ev))
	case s.finding != nil:
		return fmt.Sprintf("%s %s %v", s.finding.Rule.ID, s.finding.Faultline.Severity, s.finding.Labels)
	}
	return string(s.body)
}

// runIndexer runs the real indexer until the test ends.
func runIndexer(t *testing.T, b *bus.Bus, cfg es.Config, reg prometheus.Registerer) {
	t.Helper()
	ix, err := es.NewIndexer(cfg, es.Deps{Bus: b, Cluster: cluster, Log: bustest.Logger(), Metrics: reg})
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
}

func publishSeed(t *testing.T, b *bus.Bus, s seed) {
	t.Helper()
	env, err := schemas.NewEnvelopeRaw(schemas.Attributes{
		ID: s.id, Source: "/test/kibana", Type: s.ceType, Subject: "kibana", Cluster: cluster, Time: seedTime,
	}, s.body)
	if err != nil {
		t.Fatal(err)
	}
	data, err := env.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(t.Context(), bus.Message{Subject: s.subject, ID: s.id, Data: data}); err != nil {
		t.Fatal(err)
	}
}

var seedTime = time.Date(2026, 11, 22, 7, 0, 0, 0, time.UTC)

// buildSeeds returns the audit events, the findings the default rules
// raise on them, and experiment documents, each id once.
func buildSeeds(t *testing.T) []seed {
	t.Helper()
	audits := recordedAudits(t)
	audits = append(audits, auditVariants(t, audits)...)
	seeds := audits
	seeds = append(seeds, replayFindings(t, audits)...)
	seeds = append(seeds, experimentSeeds(t)...)
	ids := map[string]bool{}
	for _, s := range seeds {
		if ids[s.id] {
			t.Fatalf("seed id %s twice", s.id)
		}
		ids[s.id] = true
	}
	return seeds
}

func auditSeed(t *testing.T, id string, body []byte) seed {
	t.Helper()
	var ev auditv1.Event
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatalf("%s: %v", id, err)
	}
	return seed{id: id, subject: bus.AuditSubject(cluster), ceType: schemas.TypeAudit, dataset: es.DatasetAudit, body: body, audit: &ev}
}

// recordedAudits reads every recorded audit event, named
// audit-<file>-<line> (audit-pod-exec.pos-1).
func recordedAudits(t *testing.T) []seed {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(recordedDir, "*.jsonl*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recorded audit events in %s: %v", recordedDir, err)
	}
	var out []seed
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = fh
		if strings.HasSuffix(f, ".gz") {
			if r, err = gzip.NewReader(fh); err != nil {
				t.Fatal(err)
			}
		}
		stem := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(f), ".gz"), ".jsonl")
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 4<<20)
		for line := 1; sc.Scan(); line++ {
			out = append(out, auditSeed(t, fmt.Sprintf("audit-%s-%d", stem, line), bytes.Clone(sc.Bytes())))
		}
		if err := sc.Err(); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		fh.Close()
	}
	return out
}

// auditVariants are recorded events changed where the recordings have no
// example: who reads a secret, an unauthenticated request, a request
// admission refused, an exec refused, an exec by Faultline's injector.
func auditVariants(t *testing.T, recorded []seed) []seed {
	t.Helper()
	base := func(id string) map[string]any {
		for _, s := range recorded {
			if s.id == id {
				var m map[string]any
				if err := json.Unmarshal(s.body, &m); err != nil {
					t.Fatal(err)
				}
				return m
			}
		}
		t.Fatalf("no recorded event %s", id)
		return nil
	}
	var out []seed
	add := func(id string, m map[string]any) {
		m["auditID"] = "00000000-0000-4000-8000-" + fmt.Sprintf("%012x", len(out)+1) // its own event
		body, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, auditSeed(t, id, body))
	}
	secretBy := func(id, verb, user string, groups ...string) {
		m := base("audit-secret-read.pos-1")
		m["verb"] = verb
		m["user"] = map[string]any{"username": user, "groups": append(groups, "system:authenticated")}
		add(id, m)
	}
	secretBy("audit-variant-node-secret-get", "get", "system:node:node-a", "system:nodes")
	secretBy("audit-variant-kube-system-secret-get", "get", "system:serviceaccount:kube-system:generic-garbage-collector", "system:serviceaccounts")
	secretBy("audit-variant-nodes-group-secret-get", "get", "legacy-node-a", "system:nodes")
	secretBy("audit-variant-controller-secret-watch", "watch", "system:kube-controller-manager")
	secretBy("audit-variant-serviceaccount-secret-list", "list", "system:serviceaccount:payments:ci-bot", "system:serviceaccounts")

	// A bad token: the API server answers 401 and knows no user.
	m := base("audit-anonymous-allowed.pos-1")
	m["user"] = map[string]any{}
	m["sourceIPs"] = []string{"203.0.113.9"}
	m["userAgent"] = "curl/8.5.0"
	m["stage"] = "ResponseStarted"
	m["responseStatus"] = map[string]any{"metadata": map[string]any{}, "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
	delete(m, "annotations")
	delete(m, "objectRef")
	add("audit-variant-unauthenticated", m)

	// Allowed by RBAC, refused by admission (Pod Security).
	m = base("audit-privileged-pod.pos-1")
	m["responseStatus"] = map[string]any{"metadata": map[string]any{}, "status": "Failure", "reason": "Forbidden", "code": 403,
		"message": `pods "priv-init" is forbidden: violates PodSecurity "baseline:latest": privileged`}
	delete(m, "responseObject")
	add("audit-variant-admission-forbidden", m)

	// An exec RBAC refused.
	m = base("audit-pod-exec.pos-1")
	m["user"] = map[string]any{"username": "faultline-user", "groups": []string{"system:authenticated"}}
	m["responseStatus"] = map[string]any{"metadata": map[string]any{}, "status": "Failure", "reason": "Forbidden", "code": 403,
		"message": `pods "checkout" is forbidden: User "faultline-user" cannot create resource "pods/exec" in API group "" in the namespace "payments"`}
	m["annotations"] = map[string]any{"authorization.k8s.io/decision": "forbid", "authorization.k8s.io/reason": ""}
	delete(m, "responseObject")
	add("audit-variant-exec-forbidden", m)

	// Faultline's injector execs into a pod for an experiment.
	m = base("audit-pod-exec.pos-1")
	m["user"] = map[string]any{"username": "system:serviceaccount:faultline:faultline-injector", "groups": []string{"system:serviceaccounts", "system:authenticated"}}
	m["userAgent"] = "faultline-injector/0.1 faultline-experiment/checkout-chaos-20261122"
	add("audit-variant-injector-exec", m)
	return out
}

// replayFindings runs the default ruleset with chaos awareness over the
// audit events (the anon-open namespace is an experiment's blast radius)
// and returns the findings it raises, each id once.
func replayFindings(t *testing.T, audits []seed) []seed {
	t.Helper()
	eng, err := rules.Compile(rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var in bytes.Buffer
	for _, s := range audits {
		in.Write(s.body)
		in.WriteByte('\n')
	}
	var out, log bytes.Buffer
	chaos := analyzers.NewChaos(analyzers.DefaultChaosConfig(),
		analyzers.StaticExperiments{{ID: "anon-open-chaos-20261122", Namespaces: []string{"anon-open"}}}, nil)
	sum, err := replay.Run(t.Context(), replay.Options{
		Analyzers: []analyzers.Analyzer{rules.NewWithEngine(eng.Fresh())}, Cluster: cluster, Chaos: chaos, Out: &out, Log: &log,
	}, []replay.Input{{Name: "seeds", R: &in}})
	if err != nil || sum.Rejected != 0 {
		t.Fatalf("replay: %v, %d rejected\n%s", err, sum.Rejected, log.String())
	}
	var seeds []seed
	seen := map[string]bool{}
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var f schemas.Finding
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			t.Fatal(err)
		}
		if seen[f.Event.ID] {
			continue
		}
		seen[f.Event.ID] = true
		seeds = append(seeds, seed{
			id: f.Event.ID, subject: bus.FindingSubject(cluster, f.Faultline.Analyzer), ceType: schemas.TypeFinding,
			dataset: es.DatasetFindings, body: bytes.Clone(sc.Bytes()), finding: &f,
		})
	}
	t.Logf("replay: %d events, %d findings (%d distinct) by rule %v", sum.Events, sum.Findings, len(seeds), sum.ByRule)
	return seeds
}

// experimentSeeds are reports of four runs (one per verdict), deviations
// of each verdict that matters here, and a fault status.
func experimentSeeds(t *testing.T) []seed {
	t.Helper()
	at := time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)
	var out []seed
	add := func(id, subject, typ string, v any, set func(*seed)) {
		body, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		s := seed{id: id, subject: subject, ceType: typ, dataset: es.DatasetExperiments, body: body}
		set(&s)
		out = append(out, s)
	}
	for i, v := range []struct{ verdict, reason string }{
		{experiment.VerdictPassed, ""},
		{experiment.VerdictDeviated, "p99-latency of experimental (0.48) exceeds control (0.21) × 1.2 for 2 evaluations"},
		{experiment.VerdictAborted, "finding anonymous-write (critical) in the blast radius"},
		{experiment.VerdictFailed, "not steady at the start"},
	} {
		start := at.Add(time.Duration(i) * 10 * time.Minute)
		r := &experiment.Report{
			RunID: "checkout-pod-kill-" + v.verdict, Experiment: "checkout-pod-kill", Cluster: cluster,
			Verdict: v.verdict, Reason: v.reason, Started: start, Ended: start.Add(5 * time.Minute),
			Timeline:   []experiment.Event{{Time: start, Kind: "phase", Message: "warmup"}},
			Indicators: map[string][]experiment.Evaluation{},
			Faults:     []experiment.Fault{},
		}
		if v.verdict == experiment.VerdictDeviated {
			r.Indicator = "p99-latency"
		}
		add("report-"+v.verdict, bus.ExperimentReportSubject(cluster, r.RunID), sinks.TypeExperimentReport, r, func(s *seed) { s.report = r })
	}
	for i, verdict := range []schemas.Verdict{schemas.VerdictDeviated, schemas.VerdictFailing, schemas.VerdictOK} {
		when := at.Add(time.Duration(i) * time.Minute)
		experimental := schemas.SampleValue(0.48)
		control := schemas.SampleValue(0.21)
		factor := 1.2
		d := &schemas.Deviation{
			ID: schemas.DeviationID("checkout-pod-kill-deviated", "p99-latency", when), ExperimentID: "checkout-pod-kill-deviated",
			Indicator: "p99-latency",
			Groups: schemas.Groups{
				Control:      &schemas.GroupValue{Value: &control, Samples: 6},
				Experimental: schemas.GroupValue{Value: &experimental, Samples: 6},
			},
			Tolerance:           schemas.Tolerance{Kind: schemas.ToleranceRelative, Op: "<=", Factor: &factor, Expr: "experimental <= control * 1.2"},
			Verdict:             verdict,
			ConsecutiveFailures: 2 - i, Hysteresis: 2, Abort: verdict == schemas.VerdictDeviated,
			EvaluatedAt: when,
		}
		add("deviation-"+string(verdict), bus.DeviationSubject(cluster, d.ExperimentID), schemas.TypeDeviation, d, func(s *seed) { s.deviation = d })
	}
	st := &schemas.FaultStatus{
		ID: "fstatus-1", CommandID: "cmd-1", ExperimentID: "checkout-pod-kill-deviated", Fault: "pod-kill", Phase: schemas.PhaseApplied,
		Affected: []schemas.ObjectRef{{APIVersion: "v1", Kind: "Pod", Namespace: "shop", Name: "web-1", UID: "u-1"}},
		Time:     at,
	}
	add("fault-status-applied", bus.FaultStatusSubject(cluster, st.ExperimentID), schemas.TypeFaultStatus, st, func(s *seed) { s.status = st })
	return out
}

type fieldCap struct {
	Type                     string
	Searchable, Aggregatable bool
}

// fieldCaps returns the fields of a data view as Kibana sees them
// (_field_caps); a field of several types is a conflict and fails.
func fieldCaps(t *testing.T, c *testes.Client, pattern string) map[string]fieldCap {
	t.Helper()
	var r struct {
		Fields map[string]map[string]fieldCap `json:"fields"`
	}
	if err := c.DoOK(http.MethodGet, "/"+pattern+"/_field_caps?fields=*", nil).JSON(&r); err != nil {
		t.Fatal(err)
	}
	out := map[string]fieldCap{}
	for name, byType := range r.Fields {
		if len(byType) != 1 {
			t.Errorf("%s: field %s has types %v", pattern, name, byType)
			continue
		}
		for typ, fc := range byType {
			fc.Type = typ
			out[name] = fc
		}
	}
	return out
}

// runQuery runs a parsed KQL query on a data view as Kibana's Discover
// would (the query in a bool filter) and returns the ids found.
func runQuery(t *testing.T, c *testes.Client, pattern string, n kqlNode, caps map[string]fieldCap, mode dslMode) []string {
	t.Helper()
	types := map[string]string{}
	for f, fc := range caps {
		types[f] = fc.Type
	}
	q, err := kqlToDSL(n, types, mode)
	if err != nil {
		t.Fatal(err)
	}
	resp := c.Do(http.MethodPost, "/"+pattern+"/_search", map[string]any{
		"query": map[string]any{"bool": map[string]any{"filter": []any{q}}},
		"size":  10000, "_source": false, "track_total_hits": true,
		"sort": []any{map[string]any{"@timestamp": "desc"}},
	})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s (%s): %s", kqlString(n), mode, resp)
	}
	var h struct {
		Hits struct {
			Hits []struct {
				ID string `json:"_id"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := resp.JSON(&h); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, len(h.Hits.Hits))
	for _, x := range h.Hits.Hits {
		ids = append(ids, x.ID)
	}
	slices.Sort(ids)
	return ids
}

// count is the number of documents in a data view, -1 while its shards
// are not there yet (a data stream just created by its first document).
func count(t *testing.T, c *testes.Client, pattern string) int {
	t.Helper()
	if r := c.Do(http.MethodPost, "/"+pattern+"/_refresh", nil); r.StatusCode != http.StatusOK {
		return -1
	}
	r := c.Do(http.MethodGet, "/"+pattern+"/_count", nil)
	if r.StatusCode != http.StatusOK {
		return -1
	}
	var n struct {
		Count int `json:"count"`
	}
	if err := r.JSON(&n); err != nil {
		t.Fatal(err)
	}
	return n.Count
}

// counter sums a sink counter's series with the given result.
func counter(t *testing.T, reg *prometheus.Registry, name, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}
