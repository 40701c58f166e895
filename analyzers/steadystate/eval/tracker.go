package eval

import (
	"fmt"
	"maps"
	"sync"

	"github.com/faultline/faultline/schemas"
)

// State is what a Tracker remembers between evaluations of one indicator.
// It is small and JSON-encodable, for the analyzer to keep in KV so that
// hysteresis and gaps survive a restart.
type State struct {
	// NonOK counts the evaluations in a row that were not ok (failing or
	// no-data), the latest included; it is Deviation.ConsecutiveFailures.
	NonOK int `json:"non_ok"`
	// Failing counts the failing evaluations since the last ok one. A
	// no-data evaluation neither adds to it nor resets it: unknown is not
	// healthy, so a gap does not wipe out failures before it.
	Failing int `json:"failing"`
	// NoData counts the no-data evaluations in a row; any evaluation with
	// data resets it.
	NoData int `json:"no_data"`
}

// Step is the outcome of one evaluation after hysteresis.
type Step struct {
	// Verdict is ok, failing, deviated (failing, and Failing reached the
	// hysteresis) or no-data.
	Verdict schemas.Verdict
	State
	// TelemetryGap is set when NoData reached the telemetry-gap intervals.
	TelemetryGap bool
}

// Tracker follows one indicator of one experiment run: fed the verdict of
// every evaluation (Judge's: ok, failing or no-data) in order, it applies
// the hysteresis and counts telemetry gaps.
//
//	ok        resets everything: Verdict ok.
//	failing   NonOK+1, Failing+1, NoData = 0: Verdict deviated once
//	          Failing ≥ Hysteresis, else failing.
//	no-data   NonOK+1, NoData+1 (Failing unchanged): Verdict no-data,
//	          TelemetryGap once NoData ≥ GapIntervals.
//
// A deviated indicator stays deviated while it keeps failing; the analyzer
// aborts on the first deviated step (abort_when.deviation).
type Tracker struct {
	// Hysteresis is how many failing evaluations make a deviation (≥ 1).
	Hysteresis int
	// GapIntervals is how many no-data evaluations in a row make a
	// telemetry gap (≥ 1).
	GapIntervals int
	State        State
}

// NewTracker is a tracker with an experiment's hysteresis and
// abort_when.telemetry_gap.intervals.
func NewTracker(e *schemas.Experiment) *Tracker {
	return &Tracker{Hysteresis: e.Hysteresis, GapIntervals: e.AbortWhen.TelemetryGap.Intervals}
}

// Observe records the verdict of the next evaluation. It refuses a verdict
// other than ok, failing or no-data, and a tracker whose hysteresis or gap
// intervals are below 1, leaving the state as it was.
func (t *Tracker) Observe(v schemas.Verdict) (Step, error) {
	if t.Hysteresis < 1 || t.GapIntervals < 1 {
		return Step{}, fmt.Errorf("tracker: hysteresis %d and gap intervals %d must be at least 1", t.Hysteresis, t.GapIntervals)
	}
	s := t.State
	switch v {
	case schemas.VerdictOK:
		s = State{}
	case schemas.VerdictFailing:
		s.NonOK++
		s.Failing++
		s.NoData = 0
		if s.Failing >= t.Hysteresis {
			v = schemas.VerdictDeviated
		}
	case schemas.VerdictNoData:
		s.NonOK++
		s.NoData++
	default:
		return Step{}, fmt.Errorf("tracker: cannot observe verdict %q: only ok, failing and no-data come from an evaluation", v)
	}
	t.State = s
	return Step{Verdict: v, State: s, TelemetryGap: v == schemas.VerdictNoData && s.NoData >= t.GapIntervals}, nil
}

// Abort applies an experiment's abort policy to a step of indicator: it
// returns whether the step aborts the run and why. A deviation aborts when
// abort_when.deviation is on; a telemetry gap always does (it cannot be
// turned off: unknown is not healthy).
func Abort(policy schemas.AbortWhen, indicator string, s Step) (bool, string) {
	switch {
	case s.Verdict == schemas.VerdictDeviated && policy.Deviation:
		return true, fmt.Sprintf("deviation: %s failed %d evaluations since it last held", indicator, s.Failing)
	case s.TelemetryGap:
		return true, fmt.Sprintf("telemetry gap: no data for %s for %d intervals", indicator, s.NoData)
	}
	return false, ""
}

// Key names one indicator of one experiment run.
type Key struct {
	ExperimentID string
	Indicator    string
}

// Trackers holds a Tracker per (experiment run, indicator); it is safe for
// concurrent use.
type Trackers struct {
	mu sync.Mutex
	m  map[Key]*Tracker
}

// NewTrackers returns an empty set.
func NewTrackers() *Trackers { return &Trackers{m: map[Key]*Tracker{}} }

// Observe records verdict v for k, creating its tracker with hysteresis and
// gapIntervals on first use (later calls keep the first settings).
func (ts *Trackers) Observe(k Key, hysteresis, gapIntervals int, v schemas.Verdict) (Step, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t := ts.m[k]
	if t == nil {
		t = &Tracker{Hysteresis: hysteresis, GapIntervals: gapIntervals}
	}
	s, err := t.Observe(v)
	if err != nil {
		return Step{}, err
	}
	ts.m[k] = t
	return s, nil
}

// States returns the state of every indicator of an experiment run, by
// indicator, to persist.
func (ts *Trackers) States(experimentID string) map[string]State {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	out := map[string]State{}
	for k, t := range ts.m {
		if k.ExperimentID == experimentID {
			out[k.Indicator] = t.State
		}
	}
	return out
}

// Restore sets the state of an experiment run's indicators, e.g. read back
// from KV after a restart, with the run's hysteresis and gap intervals.
func (ts *Trackers) Restore(experimentID string, hysteresis, gapIntervals int, states map[string]State) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for ind, s := range states {
		ts.m[Key{experimentID, ind}] = &Tracker{Hysteresis: hysteresis, GapIntervals: gapIntervals, State: s}
	}
}

// Forget drops every tracker of an experiment run (it ended).
func (ts *Trackers) Forget(experimentID string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	maps.DeleteFunc(ts.m, func(k Key, _ *Tracker) bool { return k.ExperimentID == experimentID })
}
