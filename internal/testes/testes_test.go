package testes

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var es = NewShared(Options{})

func TestMain(m *testing.M) {
	code := m.Run()
	if err := es.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

// TestDataStream is the path Faultline's indexer takes: a component
// template and a composable index template with a data stream, documents
// created (op create, own _id) into logs-test-default, which makes the data
// stream on first write, then searched back by keyword, ip and date.
func TestDataStream(t *testing.T) {
	t.Parallel()
	c := es.Get(t).Client(t)

	c.DoOK(http.MethodPut, "/_component_template/faultline-test-mappings", map[string]any{
		"template": map[string]any{
			"mappings": map[string]any{
				"properties": map[string]any{
					"@timestamp": map[string]any{"type": "date"},
					"message":    map[string]any{"type": "text"},
					"event":      map[string]any{"properties": map[string]any{"action": map[string]any{"type": "keyword"}}},
					"source":     map[string]any{"properties": map[string]any{"ip": map[string]any{"type": "ip"}}},
					"labels":     map[string]any{"type": "flattened"},
					"privileged": map[string]any{"type": "boolean"},
				},
			},
		},
	})
	// Priority above 100 also wins over the logs-*-* template a full
	// distribution installs (this one has none).
	c.DoOK(http.MethodPut, "/_index_template/faultline-test-logs", map[string]any{
		"index_patterns": []string{"logs-test-*"},
		"data_stream":    map[string]any{},
		"priority":       200,
		"composed_of":    []string{"faultline-test-mappings"},
		"template": map[string]any{
			// One node: a replica could never be assigned (yellow).
			"settings": map[string]any{"number_of_shards": 1, "number_of_replicas": 0},
		},
	})

	doc := map[string]any{
		"@timestamp": "2026-03-01T12:00:00Z",
		"message":    "pod exec into payments/api-0",
		"event":      map[string]any{"action": "create"},
		"source":     map[string]any{"ip": "10.1.2.3"},
		"labels":     map[string]any{"team": "payments"},
		"privileged": true,
	}
	r := c.DoOK(http.MethodPut, "/logs-test-default/_create/doc-1?refresh=true", doc)
	var created struct {
		Index  string `json:"_index"`
		Result string `json:"result"`
	}
	if err := r.JSON(&created); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(created.Index, ".ds-logs-test-default-") || created.Result != "created" {
		t.Fatalf("create: %s", r)
	}
	// Creating the same _id again is a conflict, not a second document.
	if r := c.Do(http.MethodPut, "/logs-test-default/_create/doc-1?refresh=true", doc); r.StatusCode != http.StatusConflict {
		t.Fatalf("second create of doc-1: want 409, got %s", r)
	}
	bulk := `{"create":{"_id":"doc-2"}}
{"@timestamp":"2026-03-01T12:00:01Z","message":"secret read","event":{"action":"get"},"source":{"ip":"10.9.9.9"}}
{"create":{"_id":"doc-1"}}
{"@timestamp":"2026-03-01T12:00:02Z","message":"again","event":{"action":"create"}}
`
	r = c.DoOK(http.MethodPost, "/logs-test-default/_bulk?refresh=true", bulk)
	var br struct {
		Errors bool `json:"errors"`
		Items  []map[string]struct {
			Status int `json:"status"`
		} `json:"items"`
	}
	if err := r.JSON(&br); err != nil {
		t.Fatal(err)
	}
	if !br.Errors || len(br.Items) != 2 || br.Items[0]["create"].Status != 201 || br.Items[1]["create"].Status != 409 {
		t.Fatalf("bulk: want errors with items 201 and 409, got %s", r)
	}

	search := func(query map[string]any) []string {
		t.Helper()
		r := c.DoOK(http.MethodPost, "/logs-test-default/_search", map[string]any{"query": query, "sort": []string{"@timestamp"}})
		var sr struct {
			Hits struct {
				Hits []struct {
					ID string `json:"_id"`
				} `json:"hits"`
			} `json:"hits"`
		}
		if err := r.JSON(&sr); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, h := range sr.Hits.Hits {
			ids = append(ids, h.ID)
		}
		return ids
	}
	for _, q := range []struct {
		query map[string]any
		want  string
	}{
		{map[string]any{"term": map[string]any{"event.action": "create"}}, "doc-1"},
		{map[string]any{"term": map[string]any{"source.ip": "10.0.0.0/8"}}, "doc-1,doc-2"},
		{map[string]any{"term": map[string]any{"labels.team": "payments"}}, "doc-1"},
		{map[string]any{"term": map[string]any{"privileged": true}}, "doc-1"},
		{map[string]any{"match": map[string]any{"message": "secret"}}, "doc-2"},
		{map[string]any{"range": map[string]any{"@timestamp": map[string]any{"gt": "2026-03-01T12:00:00Z"}}}, "doc-2"},
	} {
		if got := strings.Join(search(q.query), ","); got != q.want {
			t.Errorf("search %v: got [%s], want [%s]", q.query, got, q.want)
		}
	}
}

// TestWhatTheDistributionHolds pins what docs/testing.md says of the
// integration-test distribution, so that a new version that changes it is
// noticed here.
func TestWhatTheDistributionHolds(t *testing.T) {
	t.Parallel()
	c := es.Get(t).Client(t)

	r := c.DoOK(http.MethodGet, "/_cluster/health", nil)
	// go-elasticsearch checks this header on the first response.
	if got := r.Header.Get("X-Elastic-Product"); got != "Elasticsearch" {
		t.Errorf("X-Elastic-Product = %q", got)
	}
	c.DoOK(http.MethodGet, "/_license", nil)
	c.DoOK(http.MethodGet, "/_cat/indices", nil)

	absent := []struct {
		what, method, path string
		body               any
		status             int
		says               string
	}{
		{"GET / (rest-root module)", http.MethodGet, "/", nil, 405, "Incorrect HTTP method"},
		{"the data-stream API (data-streams module)", http.MethodGet, "/_data_stream/logs-test-default", nil, 405, "Incorrect HTTP method"},
		{"ILM", http.MethodGet, "/_ilm/policy", nil, 405, "Incorrect HTTP method"},
		{"ingest processors (ingest-common)", http.MethodPut, "/_ingest/pipeline/faultline-test",
			map[string]any{"processors": []any{map[string]any{"set": map[string]any{"field": "a", "value": "b"}}}},
			400, "No processor type exists with name [set]"},
		{"match_only_text (mapper-extras)", http.MethodPut, "/faultline-test-match-only-text",
			map[string]any{"mappings": map[string]any{"properties": map[string]any{"m": map[string]any{"type": "match_only_text"}}}},
			400, "[match_only_text] declared on field [m] does not exist"},
		{"constant_keyword", http.MethodPut, "/faultline-test-constant-keyword",
			map[string]any{"mappings": map[string]any{"properties": map[string]any{"m": map[string]any{"type": "constant_keyword"}}}},
			400, "does not exist"},
		{"wildcard", http.MethodPut, "/faultline-test-wildcard",
			map[string]any{"mappings": map[string]any{"properties": map[string]any{"m": map[string]any{"type": "wildcard"}}}},
			400, "does not exist"},
		{"painless", http.MethodPost, "/_search",
			map[string]any{"query": map[string]any{"script": map[string]any{"script": "true"}}},
			400, "painless"},
	}
	for _, a := range absent {
		r := c.Do(a.method, a.path, a.body)
		if r.StatusCode != a.status || !strings.Contains(string(r.Body), a.says) {
			t.Errorf("%s: want %d saying %q, got %s (update docs/testing.md if the distribution changed)", a.what, a.status, a.says, r)
		}
	}
}

// TestSecurityAndRestart proves basic authentication against a server with
// security on (401 without or with wrong credentials, 200 with, 403 for a
// user whose role does not allow the action), then halts the server and
// restarts it on the same port with its data.
func TestSecurityAndRestart(t *testing.T) {
	t.Parallel()
	srv := Start(t, Options{
		Security: true,
		Users:    []User{{Name: "reader", Password: "reader-password", Roles: []string{"viewer"}}},
	})
	if srv.Username != Superuser || srv.Password == "" {
		t.Fatalf("credentials: %q %q", srv.Username, srv.Password)
	}
	c := srv.Client(t)

	if r := c.WithoutAuth().Do(http.MethodGet, "/_cluster/health", nil); r.StatusCode != http.StatusUnauthorized ||
		!strings.Contains(r.Header.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("without credentials: want 401 asking for Basic, got %s (WWW-Authenticate %q)", r, r.Header.Get("WWW-Authenticate"))
	}
	if r := c.WithBasicAuth(Superuser, "not-"+srv.Password).Do(http.MethodGet, "/_cluster/health", nil); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: want 401, got %s", r)
	}
	r := c.DoOK(http.MethodGet, "/_security/_authenticate", nil)
	var who struct {
		Username string   `json:"username"`
		Roles    []string `json:"roles"`
	}
	if err := r.JSON(&who); err != nil {
		t.Fatal(err)
	}
	if who.Username != Superuser || strings.Join(who.Roles, ",") != "superuser" {
		t.Fatalf("authenticate: %s", r)
	}
	c.DoOK(http.MethodPut, "/faultline-test/_doc/1?refresh=true", map[string]any{"n": 1})

	reader := c.WithBasicAuth("reader", "reader-password")
	reader.DoOK(http.MethodGet, "/faultline-test/_doc/1", nil)
	if r := reader.Do(http.MethodPut, "/faultline-test/_doc/2", map[string]any{"n": 2}); r.StatusCode != http.StatusForbidden {
		t.Fatalf("viewer writing: want 403, got %s", r)
	}

	if err := srv.Halt(); err != nil {
		t.Fatalf("halt: %v", err)
	}
	if srv.Running() {
		t.Fatal("running after Halt")
	}
	if _, err := c.Request(t.Context(), http.MethodGet, "/_cluster/health", nil); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("halted: want connection refused, got %v", err)
	}
	began := time.Now()
	if err := srv.Restart(t.Context()); err != nil {
		t.Fatalf("restart: %v", err)
	}
	t.Logf("restarted in %s", time.Since(began).Round(100*time.Millisecond))
	r = c.DoOK(http.MethodGet, "/faultline-test/_doc/1", nil)
	if !strings.Contains(string(r.Body), `"found":true`) {
		t.Fatalf("after restart: %s", r)
	}
	if r := c.WithoutAuth().Do(http.MethodGet, "/faultline-test/_doc/1", nil); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after restart without credentials: want 401, got %s", r)
	}
}

func TestVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		less bool
	}{
		{"8.19.2", "8.19.21", true},
		{"8.9.0", "8.19.0", true},
		{"9.0.0", "8.19.21", false},
		{"8.19", "8.19.0", true},
		{"x", "8.0.0", true},
		{"8.0.0", "x", false},
	} {
		if got := versionLess(c.a, c.b); got != c.less {
			t.Errorf("versionLess(%q, %q) = %v", c.a, c.b, got)
		}
	}
	if minJava("8.19.21") != 17 || minJava("9.1.0") != 21 {
		t.Errorf("minJava: %d %d", minJava("8.19.21"), minJava("9.1.0"))
	}
	// The cache lookup prefers Version: it must be what es-fetch.sh fetches.
	script, err := os.ReadFile("../../scripts/es-fetch.sh")
	if err != nil {
		t.Fatal(err)
	}
	if want := `version="${FAULTLINE_ES_VERSION:-` + Version + `}"`; !strings.Contains(string(script), want) {
		t.Errorf("scripts/es-fetch.sh does not fetch testes.Version %s (no line %s)", Version, want)
	}
}

func TestFindJava(t *testing.T) {
	jdk := func(version string) string {
		d := t.TempDir()
		if err := os.MkdirAll(filepath.Join(d, "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "bin", "java"), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if version != "" {
			if err := os.WriteFile(filepath.Join(d, "release"), []byte("IMPLEMENTOR=\"x\"\nJAVA_VERSION=\""+version+"\"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	ok := func(string) error { return nil }
	j21, j11 := jdk("21.0.4"), jdk("11.0.2")
	for _, k := range []string{EnvJavaHome, "ES_JAVA_HOME", "JAVA_HOME"} {
		t.Setenv(k, "")
	}

	t.Setenv(EnvJavaHome, j21)
	if got, err := findJava("", 17, ok); err != nil || got != j21 {
		t.Errorf("%s=Java 21, need 17: got %q, %v", EnvJavaHome, got, err)
	}
	if got, err := findJava("", 25, ok); err == nil || errors.Is(err, ErrUnavailable) {
		t.Errorf("%s=Java 21, need 25: want an error that fails the test (not a skip), got %q, %v", EnvJavaHome, got, err)
	}
	t.Setenv(EnvJavaHome, "")

	// JAVA_HOME too old is passed over for the next candidate.
	t.Setenv("JAVA_HOME", j11)
	got, err := findJava("", 17, ok)
	if got == j11 {
		t.Errorf("JAVA_HOME=Java 11 chosen for a need of 17")
	}
	if err != nil && !strings.Contains(err.Error(), "it is Java 11, needs 17") {
		t.Errorf("error does not say why JAVA_HOME was passed over: %v", err)
	}

	if got, err := findJava(j11, 17, ok); err == nil {
		t.Errorf("Options.JavaHome=Java 11: want an error, got %q", got)
	}
	if m, err := javaMajor(jdk("")); err == nil {
		t.Errorf("JDK without a release file: got %d, want an error", m)
	}
}
