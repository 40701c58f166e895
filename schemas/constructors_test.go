package schemas

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
)

// mustValidate checks that v, as JSON, is a valid kind document and, wrapped
// by NewEnvelope with the kind's type, a valid envelope.
func mustValidate(t *testing.T, kind Kind, id string, at time.Time, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(kind, b); err != nil {
		t.Fatalf("%s: %v\n%s", kind, err, b)
	}
	e, err := NewEnvelope(Attributes{ID: id, Source: "/faultline/test", Type: kind.EventType(), Cluster: "dev", Time: at}, v)
	if err != nil {
		t.Fatal(err)
	}
	wire, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(KindEnvelope, wire); err != nil {
		t.Fatalf("%s envelope: %v\n%s", kind, err, wire)
	}
	back, err := DecodeEnvelope(wire)
	if err != nil || back.ID != id {
		t.Fatalf("decode: %v", err)
	}
}

func TestConstructorsValidate(t *testing.T) {
	ev, err := ParseAuditEvent(readDoc(t, "audit-event/privileged-pod-request.good.json"))
	if err != nil {
		t.Fatal(err)
	}
	at := ev.StageTimestamp.Time
	sourceID := AuditEventIDOf(&ev)
	mustValidate(t, KindAuditEvent, sourceID, at, ev)

	t.Run("finding from an audit event", func(t *testing.T) {
		rule := Rule{ID: "privileged-pod", Name: "Privileged pod created", Ruleset: "faultline-default"}
		f := NewFinding("rules", rule, SeverityHigh, sourceID, at)
		f.SetAuditContext(&ev)
		f.Threat = NewMITREThreat([]string{"T1610", "T1611"}, []string{"Deploy Container", "Escape to Host"})
		f.Orchestrator.Cluster.Name = "dev"
		f.Message = "mallory created privileged pod shop/debug"
		f.Labels = map[string]string{LabelExperimentID: "exp-1"}
		if f.Event.ID != FindingID("privileged-pod", sourceID) || f.Faultline.SourceEventType != TypeAudit {
			t.Errorf("ids: %+v %+v", f.Event, f.Faultline)
		}
		if f.User.Name != "mallory" || f.User.Effective.Name != "system:admin" || f.Source.IP != "2001:db8::17" ||
			f.Orchestrator.Resource.Type != "pods" || f.Kubernetes.Audit.ObjectRef.Name != "debug" {
			t.Errorf("audit context: %+v %+v %+v", f.User, f.Source, f.Orchestrator)
		}
		for _, s := range []Severity{SeverityInfo, SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical} {
			f.SetSeverity(s)
			mustValidate(t, KindFinding, f.Event.ID, at, f)
		}
		// A minimal finding, as from a Kubernetes Event, validates too.
		g := NewFinding("baseline", Rule{ID: "baseline-rate-spike", Name: "Rate spike"}, SeverityLow, KubeEventID("u", "1"), at)
		g.Orchestrator.Cluster.Name = "dev"
		g.Message = "spike"
		mustValidate(t, KindFinding, g.Event.ID, at, g)
	})

	t.Run("kube event", func(t *testing.T) {
		kev, err := ParseKubeEvent(readDoc(t, "core-event/series.json"))
		if err != nil {
			t.Fatal(err)
		}
		mustValidate(t, KindKubeEvent, KubeEventIDOf(&kev), KubeEventTime(&kev), kev)
		var informer eventsv1.Event // informers leave TypeMeta empty
		kev.DeepCopyInto(&informer)
		informer.APIVersion, informer.Kind = "", ""
		NormalizeKubeEvent(&informer)
		mustValidate(t, KindKubeEvent, KubeEventIDOf(&informer), KubeEventTime(&informer), informer)
	})

	t.Run("metric samples", func(t *testing.T) {
		last := at.Add(-time.Minute)
		for _, s := range []MetricSample{
			NewTargetHealthSample("scrape", "http://x:8080/metrics", at, TargetHealth{Up: true, LastSuccess: &at}),
			NewTargetHealthSample("scrape", "http://x:8080/metrics", at, TargetHealth{Error: "connection refused", ConsecutiveFailures: 2, LastSuccess: &last}),
			{Name: "ratio", Value: SampleValue(math.NaN()), Timestamp: at, Source: "prometheus", Target: "http://p:9090", Kind: MetricUntyped, Query: "a/b"},
		} {
			mustValidate(t, KindMetricSample, s.ID(), at, s)
		}
	})

	t.Run("deviation", func(t *testing.T) {
		v, c, factor := SampleValue(0.5), SampleValue(0.2), 1.2
		d := Deviation{
			ID:                  DeviationID("exp-1", "latency", at),
			ExperimentID:        "exp-1",
			Indicator:           "latency",
			Groups:              Groups{Control: &GroupValue{Value: &c, Samples: 3}, Experimental: GroupValue{Value: &v, Samples: 3}},
			Tolerance:           Tolerance{Kind: ToleranceRelative, Op: "<=", Factor: &factor},
			Verdict:             VerdictDeviated,
			ConsecutiveFailures: 2,
			Hysteresis:          2,
			Abort:               true,
			EvaluatedAt:         at,
		}
		mustValidate(t, KindDeviation, d.ID, at, d)
	})

	t.Run("fault command and abort", func(t *testing.T) {
		cmd := testCommand()
		mustValidate(t, KindFaultCommand, cmd.ID, cmd.IssuedAt, cmd)
		abort := FaultAbort{ID: "abort-1", ExperimentID: cmd.ExperimentID, Reason: "deviation", IssuedAt: at}
		mustValidate(t, KindFaultAbort, abort.ID, at, abort)
	})
}
