package eval

import (
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/faultline/faultline/schemas"
)

const (
	ok   = schemas.VerdictOK
	fail = schemas.VerdictFailing
	dev  = schemas.VerdictDeviated
	none = schemas.VerdictNoData
)

func TestTracker(t *testing.T) {
	type want struct {
		v      schemas.Verdict
		nonOK  int
		failed int
		noData int
		gap    bool
	}
	cases := []struct {
		name       string
		hysteresis int
		gap        int
		in         []schemas.Verdict
		want       []want
	}{
		{"healthy", 2, 3, []schemas.Verdict{ok, ok},
			[]want{{ok, 0, 0, 0, false}, {ok, 0, 0, 0, false}}},
		{"one noisy sample does not deviate", 2, 3, []schemas.Verdict{fail, ok, fail, ok},
			[]want{{fail, 1, 1, 0, false}, {ok, 0, 0, 0, false}, {fail, 1, 1, 0, false}, {ok, 0, 0, 0, false}}},
		{"two in a row deviate", 2, 3, []schemas.Verdict{ok, fail, fail, fail, ok},
			[]want{{ok, 0, 0, 0, false}, {fail, 1, 1, 0, false}, {dev, 2, 2, 0, false}, {dev, 3, 3, 0, false}, {ok, 0, 0, 0, false}}},
		{"hysteresis 1 deviates at once", 1, 3, []schemas.Verdict{fail},
			[]want{{dev, 1, 1, 0, false}}},
		{"hysteresis 3", 3, 3, []schemas.Verdict{fail, fail, fail},
			[]want{{fail, 1, 1, 0, false}, {fail, 2, 2, 0, false}, {dev, 3, 3, 0, false}}},
		{"a gap pauses the failure count", 2, 3, []schemas.Verdict{fail, none, fail},
			[]want{{fail, 1, 1, 0, false}, {none, 2, 1, 1, false}, {dev, 3, 2, 0, false}}},
		{"a gap after a deviation", 2, 3, []schemas.Verdict{fail, fail, none, fail},
			[]want{{fail, 1, 1, 0, false}, {dev, 2, 2, 0, false}, {none, 3, 2, 1, false}, {dev, 4, 3, 0, false}}},
		{"telemetry gap after 3 intervals", 2, 3, []schemas.Verdict{none, none, none, none, ok},
			[]want{{none, 1, 0, 1, false}, {none, 2, 0, 2, false}, {none, 3, 0, 3, true}, {none, 4, 0, 4, true}, {ok, 0, 0, 0, false}}},
		{"data in between restarts the gap count", 2, 2, []schemas.Verdict{none, fail, none, none},
			[]want{{none, 1, 0, 1, false}, {fail, 2, 1, 0, false}, {none, 3, 1, 1, false}, {none, 4, 1, 2, true}}},
		{"gap of 1", 5, 1, []schemas.Verdict{none},
			[]want{{none, 1, 0, 1, true}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := &Tracker{Hysteresis: tc.hysteresis, GapIntervals: tc.gap}
			for i, v := range tc.in {
				s, err := tr.Observe(v)
				if err != nil {
					t.Fatal(err)
				}
				got := want{s.Verdict, s.NonOK, s.Failing, s.NoData, s.TelemetryGap}
				if got != tc.want[i] {
					t.Fatalf("evaluation %d (%s): %+v, want %+v", i, v, got, tc.want[i])
				}
				if tr.State != s.State {
					t.Fatalf("tracker state %+v, step state %+v", tr.State, s.State)
				}
				// Deviation's rule: consecutive_failures is 0 exactly
				// when the verdict is ok.
				if (s.Verdict == ok) != (s.NonOK == 0) {
					t.Fatalf("verdict %s with %d consecutive failures", s.Verdict, s.NonOK)
				}
			}
		})
	}
}

func TestTrackerRefuses(t *testing.T) {
	tr := &Tracker{Hysteresis: 2, GapIntervals: 3, State: State{NonOK: 1, Failing: 1}}
	for _, v := range []schemas.Verdict{dev, "", "maybe"} {
		if _, err := tr.Observe(v); err == nil {
			t.Errorf("observed %q", v)
		}
	}
	if tr.State != (State{NonOK: 1, Failing: 1}) {
		t.Errorf("a refused verdict changed the state: %+v", tr.State)
	}
	for _, bad := range []Tracker{{Hysteresis: 0, GapIntervals: 3}, {Hysteresis: 2, GapIntervals: 0}} {
		if _, err := bad.Observe(ok); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

func TestNewTracker(t *testing.T) {
	e := schemas.NewExperiment()
	e.Hysteresis = 4
	e.AbortWhen.TelemetryGap.Intervals = 7
	if tr := NewTracker(e); tr.Hysteresis != 4 || tr.GapIntervals != 7 || tr.State != (State{}) {
		t.Errorf("%+v", tr)
	}
}

func TestAbort(t *testing.T) {
	on := schemas.AbortWhen{Deviation: true}
	off := schemas.AbortWhen{Deviation: false}
	for _, tc := range []struct {
		policy schemas.AbortWhen
		step   Step
		abort  bool
		reason string
	}{
		{on, Step{Verdict: ok}, false, ""},
		{on, Step{Verdict: fail, State: State{NonOK: 1, Failing: 1}}, false, ""},
		{on, Step{Verdict: dev, State: State{NonOK: 2, Failing: 2}}, true, "deviation: error-ratio failed 2 evaluations"},
		{off, Step{Verdict: dev, State: State{NonOK: 2, Failing: 2}}, false, ""},
		{on, Step{Verdict: none, State: State{NonOK: 2, NoData: 2}}, false, ""},
		{off, Step{Verdict: none, State: State{NonOK: 3, NoData: 3}, TelemetryGap: true}, true, "telemetry gap: no data for error-ratio for 3 intervals"},
	} {
		abort, reason := Abort(tc.policy, "error-ratio", tc.step)
		if abort != tc.abort || !strings.Contains(reason, tc.reason) || (tc.reason == "") != (reason == "") {
			t.Errorf("%+v under %+v: %v %q, want %v %q", tc.step, tc.policy, abort, reason, tc.abort, tc.reason)
		}
	}
}

func TestTrackers(t *testing.T) {
	ts := NewTrackers()
	a, b := Key{"run-1", "errors"}, Key{"run-1", "latency"}
	other := Key{"run-2", "errors"}
	mustObserve := func(k Key, v schemas.Verdict) Step {
		t.Helper()
		s, err := ts.Observe(k, 2, 3, v)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	mustObserve(a, fail)
	if s := mustObserve(a, fail); s.Verdict != dev {
		t.Errorf("second failure: %s", s.Verdict)
	}
	mustObserve(b, none)
	mustObserve(other, fail)
	got := ts.States("run-1")
	want := map[string]State{"errors": {NonOK: 2, Failing: 2}, "latency": {NonOK: 1, NoData: 1}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("states %+v, want %+v", got, want)
	}

	// The states survive a round trip through JSON (KV) and a new set.
	raw, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]State
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	restored := NewTrackers()
	restored.Restore("run-1", 2, 3, back)
	if s, _ := restored.Observe(b, 2, 3, none); s.NoData != 2 || s.NonOK != 2 {
		t.Errorf("after restore: %+v", s)
	}
	if s, _ := restored.Observe(a, 2, 3, fail); s.Verdict != dev || s.Failing != 3 {
		t.Errorf("after restore: %+v", s)
	}

	ts.Forget("run-1")
	if len(ts.States("run-1")) != 0 || len(ts.States("run-2")) != 1 {
		t.Errorf("forget: %v %v", ts.States("run-1"), ts.States("run-2"))
	}
	if s := mustObserve(a, fail); s.Failing != 1 {
		t.Errorf("a forgotten run starts over: %+v", s)
	}
	if _, err := ts.Observe(Key{"run-3", "x"}, 0, 3, fail); err == nil {
		t.Error("hysteresis 0 accepted")
	}
	if len(ts.States("run-3")) != 0 {
		t.Error("a refused tracker was kept")
	}

	// Concurrent use (run with -race).
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := Key{"run-c", string(rune('a' + i%2))}
			for range 100 {
				if _, err := ts.Observe(k, 2, 3, fail); err != nil {
					t.Error(err)
					return
				}
				ts.States("run-c")
			}
		}()
	}
	wg.Wait()
	if s := ts.States("run-c"); s["a"].Failing != 400 || s["b"].Failing != 400 {
		t.Errorf("concurrent observations lost: %+v", s)
	}
}
