package elasticsearch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esutil"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/injectors/experiment"

	"github.com/faultline/faultline/sinks"
)

func item(status int, typ, reason, causeType, causeReason string) esutil.BulkIndexerResponseItem {
	var it esutil.BulkIndexerResponseItem
	it.Status = status
	it.Error.Type, it.Error.Reason = typ, reason
	it.Error.Cause.Type, it.Error.Cause.Reason = causeType, causeReason
	return it
}

func TestClassifyItem(t *testing.T) {
	for _, tc := range []struct {
		name      string
		item      esutil.BulkIndexerResponseItem
		stored    bool
		retryable bool
		result    string
		reason    string
		msg       []string
	}{
		{"conflict on create: already indexed", item(409, "version_conflict_engine_exception", "[x]: version conflict, document already exists", "", ""),
			true, false, "duplicate", "", nil},
		{"mapping", item(400, "document_parsing_exception", "[1:54] failed to parse field [source.ip] of type [ip]", "illegal_argument_exception", "'nope' is not an IP string literal."),
			false, false, "rejected", "document_parsing_exception",
			[]string{"400 document_parsing_exception: [1:54] failed to parse field [source.ip]", "caused by illegal_argument_exception: 'nope' is not an IP string literal."}},
		{"older mapper error", item(400, "mapper_parsing_exception", "failed to parse", "", ""), false, false, "rejected", "mapper_parsing_exception", []string{"mapper_parsing_exception"}},
		{"illegal argument", item(400, "illegal_argument_exception", "data stream timestamp field [@timestamp] is missing", "", ""), false, false, "rejected", "illegal_argument_exception", []string{"@timestamp"}},
		{"too large", item(413, "", "", "", ""), false, false, "rejected", "http_413", []string{"413 Request Entity Too Large"}},
		{"overload", item(429, "es_rejected_execution_exception", "rejected execution of coordinating operation", "", ""), false, true, "retry", "es_rejected_execution_exception", []string{"429"}},
		{"shard unavailable", item(503, "unavailable_shards_exception", "primary shard is not active", "", ""), false, true, "retry", "unavailable_shards_exception", nil},
		{"server error", item(500, "", "", "", ""), false, true, "retry", "http_500", nil},
		{"privileges", item(403, "security_exception", "action [indices:data/write/bulk[s]] is unauthorized", "", ""), false, true, "retry", "security_exception", nil},
		{"no index, no auto-create", item(404, "index_not_found_exception", "no such index", "", ""), false, true, "retry", "index_not_found_exception", nil},
		{"no status at all", item(0, "", "", "", ""), false, true, "retry", "http_0", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, result, reason := classifyItem(tc.item)
			if (r.Err == nil) != tc.stored || r.Retryable != tc.retryable || result != tc.result || reason != tc.reason {
				t.Fatalf("got err=%v retryable=%v result=%s reason=%s", r.Err, r.Retryable, result, reason)
			}
			for _, m := range tc.msg {
				if !strings.Contains(r.Err.Error(), m) {
					t.Errorf("%q does not say %q", r.Err, m)
				}
			}
		})
	}
}

func TestClassifyError(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		retryable bool
		reason    string
	}{
		{"connection refused", fmt.Errorf("flush: %w", &net.OpError{Op: "dial", Err: errors.New("connection refused")}), true, "transport"},
		{"deadline", fmt.Errorf("flush: %w", context.DeadlineExceeded), true, "timeout"},
		{"whole request overloaded", fmt.Errorf("flush: %w", &esError{Status: 429, Type: "circuit_breaking_exception", Reason: "[parent] Data too large"}), true, "circuit_breaking_exception"},
		{"unavailable", fmt.Errorf("flush: %w", &esError{Status: 503}), true, "http_503"},
		{"credentials", fmt.Errorf("flush: %w", &esError{Status: 401, Type: "security_exception", Reason: "unable to authenticate user"}), true, "security_exception"},
		{"whole request too large", fmt.Errorf("flush: %w", &esError{Status: 413}), false, "http_413"},
		{"malformed request", fmt.Errorf("flush: %w", &esError{Status: 400, Type: "illegal_argument_exception", Reason: "Malformed action/metadata line"}), false, "illegal_argument_exception"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _, reason := classifyError(tc.err)
			if r.Err == nil || r.Retryable != tc.retryable || reason != tc.reason {
				t.Fatalf("got err=%v retryable=%v reason=%s", r.Err, r.Retryable, reason)
			}
		})
	}
}

func TestSupportedVersion(t *testing.T) {
	for v, ok := range map[string]bool{
		"8.0.0": true, "8.19.21": true, "9.0.0": true, "9.1.0-SNAPSHOT": true, "8.11.0": true,
		"7.17.25": false, "10.0.0": false, "6.8.0": false, "": false, "eight": false, "8": false,
	} {
		_, _, err := supportedVersion(v)
		if (err == nil) != ok {
			t.Errorf("%q: err %v", v, err)
		}
		if err != nil && v == "7.17.25" && !strings.Contains(err.Error(), "needs 8.x or 9.x") {
			t.Errorf("%q: unclear message %v", v, err)
		}
	}
	if !versionLess("8.9.0", "8.10.1") || versionLess("9.0.0", "8.19.0") {
		t.Error("versionLess")
	}
}

func TestConsumers(t *testing.T) {
	c := DefaultConfig()
	specs := Consumers("prod-eu-1", c, 100)
	got := map[string]string{}
	for _, s := range specs {
		got[s.Durable] = s.Stream + " " + strings.Join(s.FilterSubjects, ",")
		if s.MaxDeliver != c.MaxDeliver || !slices.Equal(s.Backoff, c.Backoff) {
			t.Errorf("%s: retry policy %d %v", s.Durable, s.MaxDeliver, s.Backoff)
		}
		if s.MaxAckPending < 2*c.BatchSize {
			t.Errorf("%s: max ack pending %d below two batches", s.Durable, s.MaxAckPending)
		}
		if s.AckWait <= 2*c.writeTimeout() {
			t.Errorf("%s: ack wait %s does not cover a batch waiting for the one before", s.Durable, s.AckWait)
		}
	}
	want := map[string]string{
		"index-prod-eu-1-audit":        bus.StreamAudit + " fl.audit.prod-eu-1",
		"index-prod-eu-1-kevent":       bus.StreamKubeEvent + " fl.kevent.prod-eu-1.>",
		"index-prod-eu-1-finding":      bus.StreamFinding + " fl.finding.prod-eu-1.>",
		"index-prod-eu-1-deviation":    bus.StreamDeviation + " fl.deviation.prod-eu-1.>",
		"index-prod-eu-1-fault_status": bus.StreamFault + " fl.fault.status.prod-eu-1.>",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("consumers\n got %v\nwant %v", got, want)
	}
	for docs, filter := range map[string]string{
		"deviation":         "fl.deviation.c.*",
		"experiment_report": "fl.deviation.c.*.report",
	} {
		c.Documents = []string{docs}
		specs := Consumers("c", c, 1000)
		if len(specs) != 1 || specs[0].FilterSubjects[0] != filter || specs[0].MaxAckPending != 1000 {
			t.Errorf("%s: %+v", docs, specs)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if errs := DefaultConfig().Validate(); len(errs) != 0 {
		t.Fatalf("defaults: %v", errs)
	}
	if DefaultConfig().Enabled() {
		t.Fatal("enabled without urls")
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"scheme", func(c *Config) { c.URLs = []string{"ftp://es:9200"} }, `urls[0]: scheme "ftp"`},
		{"credentials in URL", func(c *Config) { c.URLs = []string{"https://u:p@es:9200"} }, "holds credentials"},
		{"no host", func(c *Config) { c.URLs = []string{"http://"} }, "has no host"},
		{"both auth methods", func(c *Config) { c.APIKeyFile, c.Username, c.PasswordFile = "/dev/null", "u", "/dev/null" }, "api_key_file: set either"},
		{"user without password", func(c *Config) { c.Username = "u" }, "username: username and password_file"},
		{"cert without key", func(c *Config) { c.CertFile = "/dev/null" }, "cert_file: cert_file and key_file"},
		{"missing file", func(c *Config) { c.CAFile = "/nonexistent/ca.crt" }, "ca_file: cannot read"},
		{"namespace with dash", func(c *Config) { c.Namespace = "prod-eu" }, `namespace: "prod-eu"`},
		{"namespace upper", func(c *Config) { c.Namespace = "Prod" }, "namespace"},
		{"no documents", func(c *Config) { c.Documents = nil }, "documents: must list"},
		{"unknown document", func(c *Config) { c.Documents = []string{"audit", "metric"} }, `documents[1]: "metric"`},
		{"twice", func(c *Config) { c.Documents = []string{"audit", "audit"} }, `documents[1]: "audit" is listed twice`},
		{"batch", func(c *Config) { c.BatchSize = 0 }, "batch_size"},
		{"flush bytes", func(c *Config) { c.FlushBytes = 1 }, "flush_bytes"},
		{"workers", func(c *Config) { c.Workers = 0 }, "workers"},
		{"timeout", func(c *Config) { c.RequestTimeout = time.Millisecond }, "request_timeout"},
		{"max deliver", func(c *Config) { c.MaxDeliver = 0 }, "max_deliver"},
		{"backoff", func(c *Config) { c.Backoff = []time.Duration{time.Second, 0} }, "backoff[1]"},
		{"replicas", func(c *Config) { c.Replicas = -1 }, "replicas"},
		{"policy", func(c *Config) { c.ILMPolicy = "a policy" }, "ilm_policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.URLs = []string{"http://127.0.0.1:9200"}
			tc.mod(&c)
			errs := c.Validate()
			if len(errs) == 0 || !strings.Contains(errors.Join(errs...).Error(), tc.want) {
				t.Errorf("errors %v, want %q", errs, tc.want)
			}
		})
	}
}

// walkMappings calls fn with every field mapping (path and definition).
func walkMappings(prefix string, props map[string]any, fn func(path string, def map[string]any)) {
	for name, v := range props {
		def := v.(map[string]any)
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		fn(path, def)
		if sub, ok := def["properties"].(map[string]any); ok {
			walkMappings(path, sub, fn)
		}
		if fields, ok := def["fields"].(map[string]any); ok {
			walkMappings(path, fields, fn)
		}
	}
}

func decode(t *testing.T, v any) map[string]any {
	t.Helper()
	var out map[string]any
	if err := json.Unmarshal(mustJSON(v), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// Templates use only field types the integration-test distribution has
// (no constant_keyword, wildcard, match_only_text), flattened only when
// the cluster has it, and name Faultline's data streams exactly.
func TestTemplates(t *testing.T) {
	allowed := map[string]bool{"keyword": true, "text": true, "date": true, "ip": true, "boolean": true,
		"long": true, "double": true, "float": true, "object": true, "flattened": true}
	for _, flattened := range []bool{true, false} {
		f := features{flattened: flattened}
		seen := map[string]bool{}
		hashes := map[string]bool{}
		for _, ct := range componentTemplates(f) {
			body := decode(t, ct.Body)
			if body["version"] != float64(TemplateVersion) {
				t.Errorf("%s: version %v", ct.Name, body["version"])
			}
			meta := body["_meta"].(map[string]any)
			if meta["managed_by"] != "faultline" || meta["hash"] == "" {
				t.Errorf("%s: _meta %v", ct.Name, meta)
			}
			hashes[meta["hash"].(string)] = true
			mappings := body["template"].(map[string]any)["mappings"].(map[string]any)
			walkMappings("", mappings["properties"].(map[string]any), func(path string, def map[string]any) {
				typ, _ := def["type"].(string)
				if typ != "" && !allowed[typ] {
					t.Errorf("%s: %s has type %s", ct.Name, path, typ)
				}
				if typ == "flattened" && !flattened {
					t.Errorf("%s: %s is flattened on a cluster without it", ct.Name, path)
				}
				seen[path+":"+typ] = true
			})
		}
		if len(hashes) != len(componentTemplates(f)) {
			t.Error("two templates share a hash")
		}
		for _, want := range []string{
			"kubernetes.audit.verb:keyword", "kubernetes.audit.stage:keyword",
			"kubernetes.audit.objectRef.resource:keyword", "kubernetes.audit.objectRef.subresource:keyword",
			"kubernetes.audit.user.username:keyword", "kubernetes.audit.annotations:object",
			"kubernetes.audit.requestObject.spec.hostNetwork:boolean", "kubernetes.audit.requestObject.spec.hostPID:boolean",
			"kubernetes.audit.requestObject.spec.hostIPC:boolean",
			"kubernetes.audit.requestObject.spec.containers.securityContext.privileged:boolean",
			"kubernetes.audit.requestObject.spec.volumes.hostPath.path:keyword",
			"kubernetes.audit.requestObject.roleRef.name:keyword",
			"kubernetes.audit.stageTimestamp:date", "kubernetes.audit.sourceIPs:ip",
			"@timestamp:date", "source.ip:ip", "event.action:keyword", "event.outcome:keyword",
			"user.name:keyword", "user_agent.original:keyword",
			"faultline.deviation.evaluated_at:date", "faultline.deviation.groups.control.value:double",
			"kubernetes.event.note:text",
		} {
			if !seen[want] {
				t.Errorf("flattened=%v: no mapping %s", flattened, want)
			}
		}
	}

	c := DefaultConfig()
	c.Namespace = "prod"
	for _, ds := range Datasets() {
		it := indexTemplate(c, features{ignoreDynamicBeyondLimit: true}, ds)
		body := decode(t, it.Body)
		if p := body["index_patterns"].([]any); len(p) != 1 || p[0] != DataStream(ds, "prod") {
			t.Errorf("%s: patterns %v", it.Name, p)
		}
		if body["priority"].(float64) <= 200 {
			t.Errorf("%s: priority %v does not win over Elastic's integration templates", it.Name, body["priority"])
		}
		settings := body["template"].(map[string]any)["settings"].(map[string]any)
		if settings["index.mapping.total_fields.ignore_dynamic_beyond_limit"] != true || settings["index.lifecycle.name"] != nil {
			t.Errorf("%s: settings %v", it.Name, settings)
		}
	}
	// A changed setting changes the hash, so the template is rewritten.
	c.ILMPolicy = "logs"
	a := indexTemplate(c, features{}, DatasetAudit)
	c.Replicas = 0
	b := indexTemplate(c, features{}, DatasetAudit)
	if a.Body["_meta"].(obj)["hash"] == b.Body["_meta"].(obj)["hash"] {
		t.Error("replicas changed, hash did not")
	}
	if decode(t, a.Body)["template"].(map[string]any)["settings"].(map[string]any)["index.lifecycle.name"] != "logs" {
		t.Error("ilm_policy not set")
	}
}

func TestReportTypeMatchesTheRunner(t *testing.T) {
	if sinks.TypeExperimentReport != experiment.TypeReport {
		t.Fatalf("sinks.TypeExperimentReport %q, the runner publishes %q", sinks.TypeExperimentReport, experiment.TypeReport)
	}
}

// An indexer whose cluster never answers refuses to start, naming it.
func TestInitUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c := DefaultConfig()
	c.URLs = []string{"http://" + addr}
	c.StartTimeout = 500 * time.Millisecond
	s, err := New(c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = s.Init(t.Context())
	if err == nil || !strings.Contains(err.Error(), "http://"+addr+" is unreachable") {
		t.Fatalf("Init: %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("took %s", time.Since(start))
	}
	// Not initialised: nothing is written, everything is retried.
	res := s.Write(t.Context(), allRecorded(t, "c")[:2])
	if len(res) != 2 || res[0].Err == nil || !res[0].Retryable {
		t.Errorf("write before Init: %+v", res)
	}
}
