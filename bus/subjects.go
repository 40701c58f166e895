package bus

import "strings"

// Subject prefixes of the bus layout (see docs/bus.md).
const (
	PrefixAudit       = "fl.audit"
	PrefixKubeEvent   = "fl.kevent"
	PrefixMetric      = "fl.metric"
	PrefixFinding     = "fl.finding"
	PrefixDeviation   = "fl.deviation"
	PrefixFaultCmd    = "fl.fault.cmd"
	PrefixFaultStatus = "fl.fault.status"
	PrefixFaultAbort  = "fl.fault.abort"
	PrefixDeadLetter  = "fl.dlq"
)

// Token makes s safe as one subject token: NATS gives '.', '*', '>' and
// whitespace a meaning, so they become '_'. An empty value becomes "_" so a
// subject never has an empty token.
func Token(s string) string {
	if s == "" {
		return "_"
	}
	clean := true
	for i := 0; i < len(s); i++ {
		if !tokenByteOK(s[i]) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if !tokenByteOK(c) {
			b[i] = '_'
		}
	}
	return string(b)
}

func tokenByteOK(c byte) bool {
	switch c {
	case '.', '*', '>', ' ', '\t', '\r', '\n', 0:
		return false
	}
	return c > 0x20 && c < 0x7f
}

func join(parts ...string) string { return strings.Join(parts, ".") }

// AuditSubject is where audit events of a cluster are published.
func AuditSubject(cluster string) string { return join(PrefixAudit, Token(cluster)) }

// KubeEventSubject is where Kubernetes Events of a namespace are published.
func KubeEventSubject(cluster, namespace string) string {
	return join(PrefixKubeEvent, Token(cluster), Token(namespace))
}

// MetricSubject is where metric samples from one source are published.
func MetricSubject(cluster, source string) string {
	return join(PrefixMetric, Token(cluster), Token(source))
}

// FindingSubject is where an analyzer publishes its findings.
func FindingSubject(cluster, analyzer string) string {
	return join(PrefixFinding, Token(cluster), Token(analyzer))
}

// DeviationSubject is where steady-state deviations of an experiment go.
func DeviationSubject(cluster, experiment string) string {
	return join(PrefixDeviation, Token(cluster), Token(experiment))
}

// ExperimentReportSubject is where an experiment run's final report goes:
// beside its deviations, one token deeper so deviation subscribers
// (fl.deviation.<cluster>.*) do not get it.
func ExperimentReportSubject(cluster, experiment string) string {
	return join(PrefixDeviation, Token(cluster), Token(experiment), "report")
}

// FaultCommandSubject is where commands for one fault type are sent.
func FaultCommandSubject(cluster, fault string) string {
	return join(PrefixFaultCmd, Token(cluster), Token(fault))
}

// FaultStatusSubject carries every step of an experiment's faults.
func FaultStatusSubject(cluster, experiment string) string {
	return join(PrefixFaultStatus, Token(cluster), Token(experiment))
}

// FaultAbortSubject carries abort orders for a cluster.
func FaultAbortSubject(cluster string) string { return join(PrefixFaultAbort, Token(cluster)) }

// DeadLetterSubject is where a consumer puts messages it gave up on.
func DeadLetterSubject(stream, consumer string) string {
	return join(PrefixDeadLetter, Token(stream), Token(consumer))
}
