package sinks

import (
	"slices"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/schemas"
)

// Document kinds a sink can write, as named in its configuration's
// documents list. Every sink reads the same kinds from the same subjects.
const (
	KindAudit            = "audit"
	KindKubeEvent        = "kevent"
	KindFinding          = "finding"
	KindDeviation        = "deviation"
	KindExperimentReport = "experiment_report"
	KindFaultStatus      = "fault_status"
)

// Kinds lists every document kind, in the order consumers are made.
func Kinds() []string {
	return []string{KindAudit, KindKubeEvent, KindFinding, KindDeviation, KindExperimentReport, KindFaultStatus}
}

// TypeExperimentReport is the CloudEvents type of an experiment run's
// report (injectors/experiment.TypeReport, which imports too much to be
// imported here).
const TypeExperimentReport = "io.faultline.experiment.report.v1"

// KindOf returns the document kind of an envelope type.
func KindOf(ceType string) (string, bool) {
	switch ceType {
	case schemas.TypeAudit:
		return KindAudit, true
	case schemas.TypeKubeEvent:
		return KindKubeEvent, true
	case schemas.TypeFinding:
		return KindFinding, true
	case schemas.TypeDeviation:
		return KindDeviation, true
	case TypeExperimentReport:
		return KindExperimentReport, true
	case schemas.TypeFaultStatus:
		return KindFaultStatus, true
	}
	return "", false
}

// Consumers returns the durable consumers that read kinds for cluster: one
// per bus stream, named <prefix>-<cluster>-<stream>, so the replicas of a
// sink share each stream (a consumer group). Every consumer gets base's
// delivery settings (MaxDeliver, Backoff, AckWait, MaxAckPending).
func Consumers(prefix, cluster string, kinds []string, base bus.ConsumerSpec) []bus.ConsumerSpec {
	cl := bus.Token(cluster)
	has := func(k string) bool { return slices.Contains(kinds, k) }
	spec := func(stream, name string, filters ...string) bus.ConsumerSpec {
		s := base
		s.Stream, s.Durable, s.FilterSubjects = stream, prefix+"-"+cl+"-"+name, filters
		return s
	}
	var out []bus.ConsumerSpec
	if has(KindAudit) {
		out = append(out, spec(bus.StreamAudit, "audit", bus.AuditSubject(cluster)))
	}
	if has(KindKubeEvent) {
		out = append(out, spec(bus.StreamKubeEvent, "kevent", bus.PrefixKubeEvent+"."+cl+".>"))
	}
	if has(KindFinding) {
		out = append(out, spec(bus.StreamFinding, "finding", bus.PrefixFinding+"."+cl+".>"))
	}
	// Deviations are fl.deviation.<cluster>.<run>, reports one token deeper.
	switch dev, rep := has(KindDeviation), has(KindExperimentReport); {
	case dev && rep:
		out = append(out, spec(bus.StreamDeviation, "deviation", bus.PrefixDeviation+"."+cl+".>"))
	case dev:
		out = append(out, spec(bus.StreamDeviation, "deviation", bus.PrefixDeviation+"."+cl+".*"))
	case rep:
		out = append(out, spec(bus.StreamDeviation, "deviation", bus.PrefixDeviation+"."+cl+".*.report"))
	}
	if has(KindFaultStatus) {
		out = append(out, spec(bus.StreamFault, "fault_status", bus.PrefixFaultStatus+"."+cl+".>"))
	}
	return out
}
