package schemas

import (
	"fmt"
	"strings"
)

// Severity ranks findings. The order matters: an experiment aborts on a
// finding "at or above" a severity.
type Severity int8

// Severities, lowest first. SeverityInfo is for what is recorded but not an
// attack, such as requests made by Faultline's own injector.
const (
	SeverityInfo Severity = iota
	SeverityLow
	SeverityMedium
	SeverityHigh
	SeverityCritical
)

var severityNames = [...]string{"info", "low", "medium", "high", "critical"}

// riskScores follow Elastic Security's mapping of severities to risk scores,
// so analysts can sort Faultline's findings next to Elastic's own alerts.
var riskScores = [...]float64{0, 21, 47, 73, 99}

// ParseSeverity reads a severity name, ignoring case and surrounding space.
func ParseSeverity(s string) (Severity, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	for i, n := range severityNames {
		if n == name {
			return Severity(i), nil
		}
	}
	return 0, fmt.Errorf("parse severity: %q is not one of %s", s, strings.Join(severityNames[:], ", "))
}

// Valid reports whether s is one of the defined severities.
func (s Severity) Valid() bool { return s >= SeverityInfo && s <= SeverityCritical }

// String is the severity's name, e.g. "high".
func (s Severity) String() string {
	if !s.Valid() {
		return fmt.Sprintf("Severity(%d)", int8(s))
	}
	return severityNames[s]
}

// RiskScore is the ECS event.risk_score for s: info 0, low 21, medium 47,
// high 73, critical 99.
func (s Severity) RiskScore() float64 {
	if !s.Valid() {
		return 0
	}
	return riskScores[s]
}

// Compare returns -1, 0 or +1 as s is lower than, equal to or higher than o.
func (s Severity) Compare(o Severity) int {
	switch {
	case s < o:
		return -1
	case s > o:
		return 1
	}
	return 0
}

// AtLeast reports whether s is min or higher.
func (s Severity) AtLeast(min Severity) bool { return s >= min }

// MarshalText writes the name, so severities read well in JSON and YAML
// (rule files, configuration, faultline.severity of a finding).
func (s Severity) MarshalText() ([]byte, error) {
	if !s.Valid() {
		return nil, fmt.Errorf("marshal severity: %d is not a defined severity", int8(s))
	}
	return []byte(severityNames[s]), nil
}

// UnmarshalText reads a name as ParseSeverity does.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}
