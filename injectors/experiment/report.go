package experiment

import (
	"time"

	"github.com/faultline/faultline/schemas"
)

// Verdicts of a run.
const (
	// VerdictPassed: the hypothesis held, every indicator stayed within
	// its tolerance for the whole run.
	VerdictPassed = "passed"
	// VerdictDeviated: the hypothesis was disproved by an indicator.
	VerdictDeviated = "deviated"
	// VerdictAborted: stopped early for another reason (a finding, a
	// telemetry gap, a person).
	VerdictAborted = "aborted"
	// VerdictFailed: the run could not be carried out (not steady at the
	// start, a fault refused, no analyzer).
	VerdictFailed = "failed"
)

// Report is the outcome of a run, written as JSON at its end and published
// on fl.deviation.<cluster>.<run>.report.
type Report struct {
	RunID      string    `json:"run_id"`
	Experiment string    `json:"experiment"`
	Cluster    string    `json:"cluster"`
	Verdict    string    `json:"verdict"`
	Reason     string    `json:"reason,omitempty"`
	Indicator  string    `json:"indicator,omitempty"`
	Started    time.Time `json:"started"`
	Ended      time.Time `json:"ended"`
	// Timeline lists what happened, in order.
	Timeline []Event `json:"timeline"`
	// Indicators holds every evaluation of each indicator.
	Indicators map[string][]Evaluation `json:"indicators"`
	Faults     []Fault                 `json:"faults"`
	// Findings are the security findings in the experimental group's
	// namespace during the run, the injector's own (info) included.
	Findings []Finding `json:"findings,omitempty"`
}

// Finding is a security finding seen in the blast radius during a run.
type Finding struct {
	ID       string           `json:"id"`
	Time     time.Time        `json:"time"`
	Rule     string           `json:"rule"`
	Severity schemas.Severity `json:"severity"`
	Message  string           `json:"message"`
}

// Event is one entry of a run's timeline.
type Event struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"` // phase, fault, deviation, abort
	Message string    `json:"message"`
}

// Evaluation is one evaluation of an indicator.
type Evaluation struct {
	At           time.Time       `json:"at"`
	Verdict      schemas.Verdict `json:"verdict"`
	Experimental *float64        `json:"experimental,omitempty"`
	Control      *float64        `json:"control,omitempty"`
	PValue       *float64        `json:"p_value,omitempty"`
	Message      string          `json:"message,omitempty"`
}

// Fault is one method step's fault.
type Fault struct {
	Step      string              `json:"step"`
	CommandID string              `json:"command_id"`
	Fault     schemas.FaultKind   `json:"fault"`
	Issued    time.Time           `json:"issued"`
	Applied   *time.Time          `json:"applied,omitempty"`
	Reverted  *time.Time          `json:"reverted,omitempty"`
	Refused   string              `json:"refused,omitempty"`
	Affected  []schemas.ObjectRef `json:"affected,omitempty"`
	Reason    string              `json:"reason,omitempty"`
}

func evaluation(d *schemas.Deviation) Evaluation {
	ev := Evaluation{At: d.EvaluatedAt, Verdict: d.Verdict, PValue: d.PValue, Message: d.Message}
	if v := d.Groups.Experimental.Value; v != nil {
		f := float64(*v)
		ev.Experimental = &f
	}
	if d.Groups.Control != nil && d.Groups.Control.Value != nil {
		f := float64(*d.Groups.Control.Value)
		ev.Control = &f
	}
	return ev
}
