package steadystate

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/faultline/faultline/analyzers/steadystate/eval"
	"github.com/faultline/faultline/schemas"
)

type point struct {
	at    time.Time
	value float64
}

// history keeps each indicator's values per group for its window.
type history map[string]map[schemas.GroupName][]point

func (h history) add(ind string, g schemas.GroupName, p point, window time.Duration) []float64 {
	if h[ind] == nil {
		h[ind] = map[schemas.GroupName][]point{}
	}
	pts := append(h[ind][g], p)
	return h.trim(ind, g, pts, p.at, window)
}

// trim keeps the points newer than at − window and returns their values.
func (h history) trim(ind string, g schemas.GroupName, pts []point, at time.Time, window time.Duration) []float64 {
	keep := pts[:0]
	for _, p := range pts {
		if p.at.After(at.Add(-window)) {
			keep = append(keep, p)
		}
	}
	if h[ind] == nil {
		h[ind] = map[schemas.GroupName][]point{}
	}
	h[ind][g] = keep
	vals := make([]float64, len(keep))
	for i, p := range keep {
		vals[i] = p.value
	}
	return vals
}

// evaluate runs a run's evaluations, one every interval from its start,
// until the run ends (or is long past its end: a runner that vanished).
func (a *Analyzer) evaluate(ctx context.Context, id string) {
	run := a.current(id)
	if run == nil {
		return
	}
	exp := run.Experiment
	interval := exp.Interval.Std()
	st := a.loadState(ctx, id)
	hist := history{}
	log := a.log.With("run", id)
	log.Info("steadystate: evaluating experiment run", "indicators", len(exp.SteadyState), "interval", interval, "from", st.Next)
	for k := st.Next; ; k++ {
		at := run.Started.Add(time.Duration(k) * interval)
		if at.After(run.Ends.Add(2 * interval)) {
			log.Info("steadystate: run is past its end; evaluation stops")
			return
		}
		if !sleepUntil(ctx, at) {
			return
		}
		if run = a.current(id); run == nil {
			return
		}
		for i := range exp.SteadyState {
			if a.indicator(ctx, run, &exp.SteadyState[i], at, hist, &st) {
				a.saveState(context.WithoutCancel(ctx), id, st)
				return // aborted
			}
		}
		st.Next = k + 1
		a.saveState(ctx, id, st)
	}
}

// indicator evaluates one indicator at time at; it returns true when that
// aborted the run.
func (a *Analyzer) indicator(ctx context.Context, run *Run, ind *schemas.Indicator, at time.Time, hist history, st *trackerState) bool {
	exp := run.Experiment
	tol := ind.ParsedTolerance
	groups := []schemas.GroupName{schemas.GroupExperimental}
	if tol.NeedsControl() {
		groups = append(groups, schemas.GroupControl)
	}
	values := map[schemas.GroupName][]float64{}
	var gaps []string
	for _, g := range groups {
		v, why := a.sample(ctx, run, ind, g, at)
		if why != "" {
			gaps = append(gaps, string(g)+": "+why)
			values[g] = hist.trim(ind.Name, g, hist[ind.Name][g], at, ind.Window.Std())
			continue
		}
		values[g] = hist.add(ind.Name, g, point{at, v}, ind.Window.Std())
	}
	res, err := eval.Judge(tol, values[schemas.GroupExperimental], values[schemas.GroupControl])
	if err != nil {
		res = eval.Result{Verdict: schemas.VerdictNoData, Message: err.Error()}
	}
	if res.Verdict == schemas.VerdictNoData && len(gaps) > 0 {
		res.Message = strings.Join(gaps, "; ")
	}
	tr := eval.NewTracker(exp)
	tr.State = st.Trackers[ind.Name]
	step, err := tr.Observe(res.Verdict)
	if err != nil {
		a.log.Error("steadystate: tracker", "run", run.ID, "indicator", ind.Name, "err", err)
		return false
	}
	st.Trackers[ind.Name] = tr.State
	dev := &schemas.Deviation{
		ID: schemas.DeviationID(run.ID, ind.Name, at), ExperimentID: run.ID, Indicator: ind.Name,
		Groups: res.Groups, Tolerance: tol, Verdict: step.Verdict, PValue: res.PValue,
		ConsecutiveFailures: step.NonOK, Hysteresis: exp.Hysteresis, EvaluatedAt: at.UTC(), Message: res.Message,
	}
	if step.Verdict == schemas.VerdictFailing || step.Verdict == schemas.VerdictDeviated {
		dev.Message += fmt.Sprintf(" (%d of %d failing evaluations)", step.Failing, exp.Hysteresis)
	}
	a.m.evaluations.WithLabelValues(string(step.Verdict)).Inc()

	var cause, reason string
	phase := PhaseDeviated
	if abort, _ := eval.Abort(exp.AbortWhen, ind.Name, step); abort && run.Phase == PhaseRunning {
		if step.TelemetryGap {
			cause, phase = "telemetry-gap", PhaseAborted
			reason = fmt.Sprintf("indicator %s had no data for %d intervals in a row (%s): unknown is not healthy", ind.Name, step.NoData, dev.Message)
		} else {
			cause = "deviation"
			reason = fmt.Sprintf("indicator %s deviated: %s", ind.Name, dev.Message)
		}
	}
	dev.Abort = cause != ""
	a.publishDeviation(ctx, dev)
	if cause == "" {
		return false
	}
	a.abort(ctx, run.ID, phase, cause, ind.Name, reason)
	return true
}

// query runs one instant query; it returns the value or why there is none.
func (a *Analyzer) query(ctx context.Context, q string, at time.Time) (float64, string) {
	qctx, cancel := context.WithTimeout(ctx, a.cfg.QueryTimeout)
	defer cancel()
	val, _, _, err := a.d.Prometheus.Query(qctx, q, at)
	if err != nil {
		a.m.queryErrors.Inc()
		return 0, "query failed: " + err.Error()
	}
	var v float64
	switch r := val.(type) {
	case model.Vector:
		switch len(r) {
		case 0:
			return 0, "the query returned no series"
		case 1:
			v = float64(r[0].Value)
		default:
			return 0, fmt.Sprintf("the query returned %d series; aggregate them into one (sum, avg, max)", len(r))
		}
	case *model.Scalar:
		v = float64(r.Value)
	default:
		return 0, fmt.Sprintf("the query returned a %s, not one number", val.Type())
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Sprintf("the query returned %g", v)
	}
	return v, ""
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
