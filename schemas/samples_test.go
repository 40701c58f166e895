package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// badSamples lists every testdata/<kind>/<name>.bad.json with a fragment of
// the error the schema must report, so each file fails for the reason its
// name gives and not by accident.
var badSamples = []struct {
	kind Kind
	name string
	want string
}{
	{"envelope", "missing-id", "missing property 'id'"},
	{"envelope", "specversion-0.3", "at '/specversion'"},
	{"envelope", "cluster-with-dot", "at '/cluster'"},
	{"envelope", "time-not-rfc3339", "at '/time'"},
	{"envelope", "data-null", "at '/data'"},
	{"envelope", "uppercase-attribute", "invalid propertyName 'ID'"},
	{"envelope", "data-not-an-audit-event", "at '/data'"},
	{"envelope", "datacontenttype-xml", "at '/datacontenttype'"},
	{"envelope", "id-too-long", "at '/id'"},
	{"envelope", "id-with-space", "at '/id'"},
	{"envelope", "data-base64", "missing property 'data'"},
	{"audit-event", "missing-auditid", "missing property 'auditID'"},
	{"audit-event", "missing-stage", "missing property 'stage'"},
	{"audit-event", "unknown-stage", "at '/stage'"},
	{"audit-event", "kind-number", "at '/kind'"},
	{"audit-event", "unknown-level", "at '/level'"},
	{"audit-event", "apiversion-v1alpha1", "at '/apiVersion'"},
	{"audit-event", "timestamp-not-a-date", "at '/stageTimestamp'"},
	{"audit-event", "user-not-an-object", "at '/user'"},
	{"audit-event", "empty-verb", "at '/verb'"},
	{"audit-event", "sourceips-not-array", "at '/sourceIPs'"},
	{"kube-event", "missing-uid", "missing property 'uid'"},
	{"kube-event", "missing-resourceversion", "missing property 'resourceVersion'"},
	{"kube-event", "core-v1-unconverted", "at '/apiVersion'"},
	{"kube-event", "series-count-negative", "at '/series/count'"},
	{"kube-event", "regarding-not-object", "at '/regarding'"},
	{"kube-event", "eventtime-not-a-date", "at '/eventTime'"},
	{"kube-event", "missing-regarding", "missing property 'regarding'"},
	{"metric-sample", "missing-timestamp", "missing property 'timestamp'"},
	{"metric-sample", "value-bad-string", "at '/value'"},
	{"metric-sample", "value-null", "at '/value'"},
	{"metric-sample", "health-on-gauge", "'not' failed"},
	{"metric-sample", "target-health-without-health", "missing property 'health'"},
	{"metric-sample", "target-health-value-2", "at '/value'"},
	{"metric-sample", "unknown-kind", "at '/kind'"},
	{"metric-sample", "source-with-dot", "at '/source'"},
	{"metric-sample", "label-value-number", "at '/labels/instance'"},
	{"metric-sample", "name-label", "invalid propertyName '__name__'"},
	{"metric-sample", "unknown-field", "additional properties 'unit' not allowed"},
	{"finding", "severity-mismatch", "at '/event/severity'"},
	{"finding", "risk-score-mismatch", "at '/event/risk_score'"},
	{"finding", "risk-score-off-scale", "at '/event/risk_score'"},
	{"finding", "unknown-severity-name", "at '/faultline/severity'"},
	{"finding", "event-kind-not-alert", "at '/event/kind'"},
	{"finding", "source-ip-not-an-ip", "at '/source/ip'"},
	{"finding", "technique-id-malformed", "at '/threat/technique/id/0'"},
	{"finding", "threat-framework-other", "at '/threat/framework'"},
	{"finding", "label-key-with-dot", "invalid propertyName 'experiment.id'"},
	{"finding", "missing-message", "missing property 'message'"},
	{"finding", "missing-source-event-id", "missing property 'source_event_id'"},
	{"finding", "unknown-top-level-field", "additional properties 'host' not allowed"},
	{"finding", "cluster-missing", "missing property 'cluster'"},
	{"finding", "timestamp-epoch-number", "at '/@timestamp'"},
	{"deviation", "unknown-verdict", "at '/verdict'"},
	{"deviation", "ok-with-failures", "at '/consecutive_failures'"},
	{"deviation", "deviated-without-failures", "at '/consecutive_failures'"},
	{"deviation", "relative-without-control", "missing property 'control'"},
	{"deviation", "absolute-without-value", "missing property 'value'"},
	{"deviation", "statistical-without-p", "missing property 'p'"},
	{"deviation", "hysteresis-zero", "at '/hysteresis'"},
	{"deviation", "p-value-above-one", "at '/p_value'"},
	{"deviation", "unknown-op", "at '/tolerance/op'"},
	{"deviation", "experiment-id-with-dot", "at '/experiment_id'"},
	{"fault-command", "selector-and-names", "at '/target'"},
	{"fault-command", "neither-selector-nor-names", "at '/target'"},
	{"fault-command", "percent-over-100", "at '/mode/value'"},
	{"fault-command", "count-zero", "at '/mode/value'"},
	{"fault-command", "one-with-value", "at '/mode'"},
	{"fault-command", "duration-zero", "at '/duration'"},
	{"fault-command", "duration-negative", "at '/duration'"},
	{"fault-command", "duration-number", "at '/duration'"},
	{"fault-command", "unknown-fault", "at '/fault'"},
	{"fault-command", "partition-without-params", "missing property 'network_partition'"},
	{"fault-command", "pod-kill-with-starvation-params", "at '/resource_starvation'"},
	{"fault-command", "namespace-uppercase", "at '/target/namespace'"},
	{"fault-command", "signature-wrong-length", "at '/signature'"},
	{"fault-command", "starvation-without-resources", "at '/resource_starvation'"},
	{"fault-command", "unknown-direction", "at '/network_partition/direction'"},
	{"fault-command", "missing-issued-at", "missing property 'issued_at'"},
	{"fault-command", "negative-grace-period", "at '/pod_kill/grace_period_seconds'"},
	{"fault-command", "selector-bad-operator", "at '/target/selector/matchExpressions/0/operator'"},
	{"fault-command", "cidr-malformed", "at '/network_partition/peer/cidrs/0'"},
	{"fault-status", "unknown-phase", "at '/phase'"},
	{"fault-status", "refused-without-reason", "missing property 'reason'"},
	{"fault-status", "applied-without-affected", "missing property 'affected'"},
	{"fault-status", "applied-without-revert-ref", "missing property 'revert_ref'"},
	{"fault-status", "planned-not-dry-run", "at '/dry_run'"},
	{"fault-status", "missing-command-id", "missing property 'command_id'"},
	{"fault-status", "affected-without-name", "missing property 'name'"},
	{"fault-status", "reason-code-with-spaces", "at '/reason_code'"},
	{"fault-abort", "experiment-and-all", "at '/all': value must be false"},
	{"fault-abort", "neither-experiment-nor-all", "missing property 'all'"},
	{"fault-abort", "all-false", "at '/all': value must be true"},
	{"fault-abort", "missing-reason", "missing property 'reason'"},
}

// decodeAs decodes a good sample with the package's own reader for kind and
// encodes it back, the way producers and consumers do.
func decodeAs(kind Kind, doc []byte) ([]byte, error) {
	switch kind {
	case KindEnvelope:
		e, err := DecodeEnvelope(doc)
		if err != nil {
			return nil, err
		}
		return e.Encode()
	case KindAuditEvent:
		ev, err := ParseAuditEvent(doc)
		if err != nil {
			return nil, err
		}
		return json.Marshal(&ev)
	case KindKubeEvent:
		ev, err := ParseKubeEvent(doc)
		if err != nil {
			return nil, err
		}
		return json.Marshal(&ev)
	}
	var v any
	switch kind {
	case KindMetricSample:
		v = new(MetricSample)
	case KindFinding:
		v = new(Finding)
	case KindDeviation:
		v = new(Deviation)
	case KindFaultCommand:
		v = new(FaultCommand)
	case KindFaultStatus:
		v = new(FaultStatus)
	case KindFaultAbort:
		v = new(FaultAbort)
	default:
		return nil, errors.New("no Go type for kind " + string(kind))
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	// A field the Go type lacks would be dropped silently on the way
	// through Faultline; the samples must not have any.
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// normalized is what a good sample must look like after the round trip:
// itself, except that v1beta1 audit events come back as v1 without the
// fields v1 dropped.
func normalized(kind Kind, doc map[string]any) map[string]any {
	if kind == KindAuditEvent && doc["apiVersion"] == AuditAPIVersionV1beta1 {
		doc["apiVersion"] = AuditAPIVersion
		delete(doc, "metadata")
		delete(doc, "timestamp")
	}
	return doc
}

func samples(t *testing.T, kind Kind, suffix string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", string(kind), "*"+suffix))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestGoodSamples(t *testing.T) {
	for _, kind := range Kinds() {
		files := samples(t, kind, ".good.json")
		if len(files) == 0 {
			t.Errorf("%s: no good samples", kind)
		}
		for _, file := range files {
			t.Run(string(kind)+"/"+filepath.Base(file), func(t *testing.T) {
				doc, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				if err := Validate(kind, doc); err != nil {
					t.Fatalf("schema refuses a good sample: %v", err)
				}
				again, err := decodeAs(kind, doc)
				if err != nil {
					t.Fatalf("Go type refuses a good sample: %v", err)
				}
				if err := Validate(kind, again); err != nil {
					t.Fatalf("schema refuses the Go type's encoding: %v\n%s", err, again)
				}
				var want, got map[string]any
				if err := json.Unmarshal(doc, &want); err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal(again, &got); err != nil {
					t.Fatal(err)
				}
				if want = normalized(kind, want); !reflect.DeepEqual(want, got) {
					t.Errorf("round trip through the Go type changed the document\nwant %v\n got %v", want, got)
				}
			})
		}
	}
}

func TestBadSamples(t *testing.T) {
	listed := map[string]bool{}
	for _, tc := range badSamples {
		file := filepath.Join("testdata", string(tc.kind), tc.name+".bad.json")
		listed[file] = true
		t.Run(string(tc.kind)+"/"+tc.name, func(t *testing.T) {
			doc, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			err = Validate(tc.kind, doc)
			if err == nil {
				t.Fatal("schema accepts a bad sample")
			}
			var verr *jsonschema.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("error is not a validation error: %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not mention %q:\n%v", tc.want, err)
			}
		})
	}
	for _, kind := range Kinds() {
		files := samples(t, kind, ".bad.json")
		if len(files) < 3 {
			t.Errorf("%s: %d bad samples, want several", kind, len(files))
		}
		for _, f := range files {
			if !listed[f] {
				t.Errorf("%s is not in badSamples", f)
			}
		}
	}
}

func TestSchemasWellFormed(t *testing.T) {
	for _, kind := range Kinds() {
		raw, err := SchemaJSON(kind)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Schema string `json:"$schema"`
			ID     string `json:"$id"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		if doc.Schema != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $schema %q, want draft 2020-12", kind, doc.Schema)
		}
		if want := schemaURL(string(kind)); doc.ID != want {
			t.Errorf("%s: $id %q, want %q", kind, doc.ID, want)
		}
	}
	if _, err := SchemaJSON("nope"); err == nil {
		t.Error("SchemaJSON of an unknown kind: no error")
	}
	if err := Validate("nope", []byte(`{}`)); err == nil {
		t.Error("Validate of an unknown kind: no error")
	}
	if err := Validate(KindFinding, []byte(`{"a":`)); !errors.Is(err, ErrSyntax) {
		t.Errorf("Validate of malformed JSON: %v, want ErrSyntax", err)
	}
	if err := Validate(KindFinding, []byte(`{} {}`)); !errors.Is(err, ErrSyntax) {
		t.Errorf("Validate of two documents: %v, want ErrSyntax", err)
	}
}

func TestKinds(t *testing.T) {
	ks := Kinds()
	if ks[0] != KindEnvelope || len(ks) != 9 {
		t.Fatalf("Kinds() = %v", ks)
	}
	for _, k := range ks[1:] {
		typ := k.EventType()
		if !strings.HasPrefix(typ, "io.faultline.") || !strings.HasSuffix(typ, ".v1") {
			t.Errorf("%s: type %q", k, typ)
		}
		if back, ok := KindOf(typ); !ok || back != k {
			t.Errorf("KindOf(%q) = %q, %v", typ, back, ok)
		}
	}
	if KindEnvelope.EventType() != "" || Kind("x").EventType() != "" {
		t.Error("EventType of the envelope or an unknown kind is not empty")
	}
	for _, typ := range []string{"", "io.faultline.nope.v1"} {
		if _, ok := KindOf(typ); ok {
			t.Errorf("KindOf(%q) ok", typ)
		}
	}
	if !slices.Contains(ks, KindFaultAbort) {
		t.Error("fault-abort missing")
	}
}
