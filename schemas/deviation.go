package schemas

import (
	"strconv"
	"time"
)

// Verdict is the outcome of one evaluation of a steady-state indicator.
type Verdict string

// Verdicts. Failing becomes Deviated once ConsecutiveFailures reaches the
// experiment's hysteresis, so one noisy sample does not abort. NoData is a
// telemetry gap: unknown is not healthy.
const (
	VerdictOK       Verdict = "ok"
	VerdictFailing  Verdict = "failing"
	VerdictDeviated Verdict = "deviated"
	VerdictNoData   Verdict = "no-data"
)

// ToleranceKind is how an indicator's values are judged.
type ToleranceKind string

// Tolerance kinds:
//   - absolute: experimental Op Value (e.g. < 0.01);
//   - range: Min ≤ experimental ≤ Max;
//   - relative: experimental Op control × Factor (e.g. ≤ control × 1.2);
//   - statistical: Test finds no difference between the groups' samples at
//     significance P.
const (
	ToleranceAbsolute    ToleranceKind = "absolute"
	ToleranceRange       ToleranceKind = "range"
	ToleranceRelative    ToleranceKind = "relative"
	ToleranceStatistical ToleranceKind = "statistical"
)

// TestMannWhitneyU is the statistical test Faultline implements.
const TestMannWhitneyU = "mann-whitney-u"

// Tolerance is an indicator's bound, as evaluated; Expr is the bound as the
// experiment file wrote it, for people.
type Tolerance struct {
	Kind   ToleranceKind `json:"kind"`
	Op     string        `json:"op,omitempty"` // <, <=, >, >= (absolute, relative)
	Value  *float64      `json:"value,omitempty"`
	Min    *float64      `json:"min,omitempty"`
	Max    *float64      `json:"max,omitempty"`
	Factor *float64      `json:"factor,omitempty"`
	Test   string        `json:"test,omitempty"`
	P      *float64      `json:"p,omitempty"`
	Expr   string        `json:"expr,omitempty"`
}

// GroupValue is what an indicator measured in one group.
type GroupValue struct {
	// Value is absent when the group had no data.
	Value *SampleValue `json:"value,omitempty"`
	// Samples is how many samples went into Value.
	Samples int `json:"samples"`
}

// Groups holds the indicator per group: experimental (where faults go) and,
// for relative and statistical tolerances, control.
type Groups struct {
	Control      *GroupValue `json:"control,omitempty"`
	Experimental GroupValue  `json:"experimental"`
}

// Deviation is one evaluation of one steady-state indicator of a running
// experiment, published whether it held or not so the runner can draw the
// series; Verdict deviated (with Abort) is what stops the experiment.
type Deviation struct {
	ID           string    `json:"id"`
	ExperimentID string    `json:"experiment_id"`
	Indicator    string    `json:"indicator"`
	Groups       Groups    `json:"groups"`
	Tolerance    Tolerance `json:"tolerance"`
	Verdict      Verdict   `json:"verdict"`
	// PValue is the statistical test's p-value, if one was run.
	PValue *float64 `json:"p_value,omitempty"`
	// ConsecutiveFailures counts failing (or no-data) evaluations in a row,
	// this one included; Hysteresis is how many make a deviation.
	ConsecutiveFailures int  `json:"consecutive_failures"`
	Hysteresis          int  `json:"hysteresis"`
	Abort               bool `json:"abort"`
	// Message explains the verdict for people.
	Message     string    `json:"message,omitempty"`
	EvaluatedAt time.Time `json:"evaluated_at"`
}

// DeviationID is the id of the evaluation of indicator in experimentID at
// time at: one evaluation, one id, however often it is re-published.
func DeviationID(experimentID, indicator string, at time.Time) string {
	return DeriveID(IDPrefixDeviation, experimentID, indicator, strconv.FormatInt(at.UnixNano(), 10))
}
