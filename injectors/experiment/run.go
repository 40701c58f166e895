// Package experiment runs an experiment file: it records the run for the
// steady-state analyzer, keeps its heartbeat (the injectors' dead-man
// switch), checks the steady state during a warmup before any fault,
// publishes the method's signed fault commands on schedule, follows the
// evaluations and the faults, stops at once when the run is aborted, and
// ends with a verdict and a report.
package experiment

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/faultline/faultline/analyzers/steadystate"
	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/injectors/runner"
	"github.com/faultline/faultline/injectors/signing"
	"github.com/faultline/faultline/schemas"
)

// Options configure a run.
type Options struct {
	Experiment *schemas.Experiment
	Bus        *bus.Bus
	Cluster    string
	Key        nkeys.KeyPair
	Log        *slog.Logger
	// Progress gets a line per step for people; nil discards.
	Progress io.Writer
	// RevertWait bounds the wait for the faults' reverts after an abort or
	// the method's end (default 30s).
	RevertWait time.Duration
}

// Run carries out the experiment and returns its report. The error is for
// what kept it from running at all (the report then says failed too);
// deviated and aborted runs return a report and no error. Cancelling ctx
// aborts the run: every fault is reverted before Run returns.
func Run(ctx context.Context, o Options) (*Report, error) {
	r, err := newRun(ctx, o)
	if err != nil {
		return nil, err
	}
	return r.run(ctx)
}

type run struct {
	o       Options
	exp     *schemas.Experiment
	id      string
	log     *slog.Logger
	out     io.Writer
	runs    *steadystate.Runs
	faults  *runner.Store
	report  *Report
	steps   map[string]*Fault // by command id
	latest  map[string]*schemas.Deviation
	devs    chan *schemas.Deviation
	stats   chan *schemas.FaultStatus
	finds   chan *schemas.Finding
	deviant string // the first indicator that deviated
}

func newRun(ctx context.Context, o Options) (*run, error) {
	e := o.Experiment
	if e.Cluster != o.Cluster {
		return nil, fmt.Errorf("experiment %s is for cluster %q, not %q", e.Name, e.Cluster, o.Cluster)
	}
	if o.RevertWait <= 0 {
		o.RevertWait = 30 * time.Second
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	runs, err := steadystate.OpenRuns(ctx, o.Bus, o.Cluster)
	if err != nil {
		return nil, err
	}
	faults, err := runner.OpenStore(ctx, o.Bus, o.Cluster)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	id := e.RunID(now)
	return &run{
		o: o, exp: e, id: id, log: o.Log.With("run", id), out: o.Progress, runs: runs, faults: faults,
		report: &Report{RunID: id, Experiment: e.Name, Cluster: o.Cluster, Started: now, Indicators: map[string][]Evaluation{}},
		steps:  map[string]*Fault{}, latest: map[string]*schemas.Deviation{},
		devs: make(chan *schemas.Deviation, 1024), stats: make(chan *schemas.FaultStatus, 1024),
		finds: make(chan *schemas.Finding, 256),
	}, nil
}

func (r *run) say(kind, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	now := time.Now().UTC()
	r.report.Timeline = append(r.report.Timeline, Event{Time: now, Kind: kind, Message: msg})
	fmt.Fprintf(r.out, "%s %-9s %s\n", now.Local().Format("15:04:05"), kind, msg)
}

func (r *run) run(ctx context.Context) (*Report, error) {
	e := r.exp
	nc := r.o.Bus.Conn()
	devSub, err := nc.Subscribe(bus.DeviationSubject(r.o.Cluster, r.id), r.onDeviation)
	if err != nil {
		return nil, fmt.Errorf("experiment %s: follow deviations: %w", r.id, err)
	}
	defer func() { _ = devSub.Unsubscribe() }()
	stSub, err := nc.Subscribe(bus.FaultStatusSubject(r.o.Cluster, r.id), r.onStatus)
	if err != nil {
		return nil, fmt.Errorf("experiment %s: follow fault statuses: %w", r.id, err)
	}
	defer func() { _ = stSub.Unsubscribe() }()
	fSub, err := nc.Subscribe(bus.PrefixFinding+"."+bus.Token(r.o.Cluster)+".>", r.onFinding)
	if err != nil {
		return nil, fmt.Errorf("experiment %s: follow findings: %w", r.id, err)
	}
	defer func() { _ = fSub.Unsubscribe() }()

	start := r.report.Started
	warmupEnd := start.Add(e.Warmup.Std())
	rec := &steadystate.Run{ID: r.id, Experiment: e, Phase: steadystate.PhaseWarmup, Started: start,
		Ends: warmupEnd.Add(e.MethodDuration()), Runner: "faultline experiment run"}
	if _, err := r.runs.Create(ctx, rec); err != nil {
		return nil, fmt.Errorf("experiment %s: %w", r.id, err)
	}
	defer func() {
		if err := r.runs.Delete(context.WithoutCancel(ctx), r.id); err != nil {
			r.log.Warn("experiment: delete run record", "err", err)
		}
	}()
	watch, err := r.runs.KV.Watch(ctx, r.runs.Key(r.id), jetstream.UpdatesOnly())
	if err != nil {
		return nil, fmt.Errorf("experiment %s: watch run: %w", r.id, err)
	}
	defer func() { _ = watch.Stop() }()

	hbKey := runner.ExperimentHeartbeatKey(r.o.Cluster, r.id)
	beat := func() {
		if err := runner.Heartbeat(context.WithoutCancel(ctx), r.faults.State, hbKey, time.Now()); err != nil {
			r.log.Warn("experiment: heartbeat", "err", err)
		}
	}
	beat()
	hb := time.NewTicker(max(e.HeartbeatTimeout.Std()/3, 100*time.Millisecond))
	defer hb.Stop()
	r.say("phase", "warmup of %v: checking the steady state before any fault (run %s)", e.Warmup.Std(), r.id)

	// The schedule: warmup end, then each step at its start.
	order := make([]int, len(e.Method))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return e.Method[order[a]].Start < e.Method[order[b]].Start })
	next := 0
	methodEnd := warmupEnd.Add(e.MethodDuration())
	running := false
	timer := time.NewTimer(time.Until(warmupEnd))
	defer timer.Stop()

	finish := func(phase steadystate.Phase, reason, indicator string) (*Report, error) {
		if phase != steadystate.PhasePassed {
			r.abortFaults(ctx, reason)
		} else {
			r.waitReverted(ctx)
		}
		if _, err := r.runs.End(context.WithoutCancel(ctx), r.id, phase, reason, indicator); err != nil {
			r.log.Warn("experiment: end run", "err", err)
		}
		return r.conclude(ctx, phase, reason, indicator), nil
	}

	for {
		select {
		case <-ctx.Done():
			r.say("abort", "interrupted: aborting the run")
			return finish(steadystate.PhaseAborted, "the experiment runner was interrupted", "")
		case <-hb.C:
			beat()
		case d := <-r.devs:
			r.recordDeviation(d)
			if d.Verdict == schemas.VerdictDeviated && r.deviant == "" {
				r.deviant = d.Indicator
			}
		case st := <-r.stats:
			if reason := r.recordStatus(st); reason != "" {
				return finish(steadystate.PhaseFailed, reason, "")
			}
		case f := <-r.finds:
			r.recordFinding(f)
		case u := <-watch.Updates():
			if u == nil || u.Operation() != jetstream.KeyValuePut {
				continue
			}
			var cur steadystate.Run
			if json.Unmarshal(u.Value(), &cur) != nil || cur.Phase.Active() {
				continue
			}
			// The analyzer ended the run: a deviation, a finding, a gap,
			// an indicator it cannot evaluate, or an abort by a person.
			r.drain()
			r.say("abort", "%s: %s", cur.Phase, cur.Reason)
			r.abortFaults(ctx, cur.Reason)
			return r.conclude(ctx, cur.Phase, cur.Reason, cur.Indicator), nil
		case <-timer.C:
			now := time.Now()
			if !running {
				r.drain()
				if reason := r.steady(); reason != "" {
					r.say("phase", "not steady: %s", reason)
					return finish(steadystate.PhaseFailed, "the system was not steady before the faults: "+reason, "")
				}
				if _, err := r.runs.Update(ctx, r.id, func(run *steadystate.Run) bool {
					if run.Phase != steadystate.PhaseWarmup {
						return false
					}
					run.Phase = steadystate.PhaseRunning
					return true
				}); err != nil {
					return finish(steadystate.PhaseFailed, "could not record the run's start: "+err.Error(), "")
				}
				running = true
				r.say("phase", "steady state holds; method of %d faults over %v", len(e.Method), e.MethodDuration())
			}
			for next < len(order) && !warmupEnd.Add(e.Method[order[next]].Start.Std()).After(now) {
				if err := r.issue(ctx, order[next]); err != nil {
					return finish(steadystate.PhaseFailed, err.Error(), "")
				}
				next++
			}
			switch {
			case next < len(order):
				timer.Reset(time.Until(warmupEnd.Add(e.Method[order[next]].Start.Std())))
			case now.Before(methodEnd):
				timer.Reset(time.Until(methodEnd))
			default:
				r.drain()
				if r.deviant != "" {
					reason := "indicator " + r.deviant + " deviated (abort_when.deviation is off, so the run went on)"
					return finish(steadystate.PhaseDeviated, reason, r.deviant)
				}
				return finish(steadystate.PhasePassed, "", "")
			}
		}
	}
}

// issue signs and publishes the command of method step i.
func (r *run) issue(ctx context.Context, i int) error {
	st := r.exp.Method[i]
	cmdID := schemas.DeriveID("cmd", r.id, st.Name)
	cmd, err := r.exp.Command(i, cmdID, r.id, time.Now())
	if err != nil {
		return err
	}
	if err := signing.Sign(cmd, r.o.Key); err != nil {
		return err
	}
	if err := runner.PublishCommand(ctx, r.o.Bus, r.o.Cluster, cmd); err != nil {
		return fmt.Errorf("step %s: %w", st.Name, err)
	}
	f := &Fault{Step: st.Name, CommandID: cmdID, Fault: st.Fault, Issued: cmd.IssuedAt}
	r.steps[cmdID] = f
	r.report.Faults = append(r.report.Faults, *f)
	r.say("fault", "step %s: %s for %v issued (%s)", st.Name, st.Fault, st.Duration.Std(), cmdID)
	return nil
}

func (r *run) onDeviation(m *nats.Msg) {
	env, err := schemas.DecodeEnvelope(m.Data)
	if err != nil || env.Type != schemas.TypeDeviation {
		return
	}
	var d schemas.Deviation
	if json.Unmarshal(env.Data, &d) != nil {
		return
	}
	select {
	case r.devs <- &d:
	default: // the report loses a point; the run record still decides
	}
}

func (r *run) onFinding(m *nats.Msg) {
	env, err := schemas.DecodeEnvelope(m.Data)
	if err != nil || env.Type != schemas.TypeFinding {
		return
	}
	var f schemas.Finding
	if json.Unmarshal(env.Data, &f) != nil || f.Orchestrator.Namespace != r.exp.Groups.Experimental.Namespace {
		return
	}
	select {
	case r.finds <- &f:
	default:
	}
}

func (r *run) recordFinding(f *schemas.Finding) {
	r.report.Findings = append(r.report.Findings, Finding{ID: f.Event.ID, Time: f.Timestamp, Rule: f.Rule.ID, Severity: f.Faultline.Severity, Message: f.Message})
	r.say("finding", "%s %s: %s", f.Faultline.Severity, f.Rule.ID, f.Message)
}

func (r *run) onStatus(m *nats.Msg) {
	env, err := schemas.DecodeEnvelope(m.Data)
	if err != nil || env.Type != schemas.TypeFaultStatus {
		return
	}
	var st schemas.FaultStatus
	if json.Unmarshal(env.Data, &st) != nil {
		return
	}
	select {
	case r.stats <- &st:
	default:
	}
}

// drain takes what the subscriptions delivered so far.
func (r *run) drain() {
	for {
		select {
		case d := <-r.devs:
			r.recordDeviation(d)
			if d.Verdict == schemas.VerdictDeviated && r.deviant == "" {
				r.deviant = d.Indicator
			}
		case st := <-r.stats:
			r.recordStatus(st)
		case f := <-r.finds:
			r.recordFinding(f)
		default:
			return
		}
	}
}

func (r *run) recordDeviation(d *schemas.Deviation) {
	r.report.Indicators[d.Indicator] = append(r.report.Indicators[d.Indicator], evaluation(d))
	prev := r.latest[d.Indicator]
	if prev == nil || !d.EvaluatedAt.Before(prev.EvaluatedAt) {
		r.latest[d.Indicator] = d
	}
	if prev == nil || prev.Verdict != d.Verdict {
		r.say("indicator", "%s %s: %s", d.Indicator, d.Verdict, d.Message)
	}
}

// recordStatus follows a fault; it returns a reason to end the run when a
// step could not be applied.
func (r *run) recordStatus(st *schemas.FaultStatus) string {
	f := r.steps[st.CommandID]
	if f == nil {
		return ""
	}
	t := st.Time
	switch st.Phase {
	case schemas.PhaseApplied:
		if f.Applied == nil {
			f.Applied, f.Affected = &t, st.Affected
			r.say("fault", "step %s applied: %s", f.Step, refs(st.Affected))
		}
	case schemas.PhaseReverted:
		f.Reverted, f.Reason = &t, st.Reason
		r.say("fault", "step %s reverted: %s", f.Step, st.Reason)
	case schemas.PhaseRefused, schemas.PhaseFailed:
		f.Refused = st.Reason
		r.say("fault", "step %s %s: %s", f.Step, st.Phase, st.Reason)
		r.sync()
		return fmt.Sprintf("step %s was %s: %s", f.Step, st.Phase, st.Reason)
	case schemas.PhaseRevertFailed:
		r.say("fault", "step %s revert failed (retrying): %s", f.Step, st.Reason)
	}
	r.sync()
	return ""
}

// sync copies the steps into the report in issue order.
func (r *run) sync() {
	for i := range r.report.Faults {
		if f := r.steps[r.report.Faults[i].CommandID]; f != nil {
			r.report.Faults[i] = *f
		}
	}
}

func refs(objs []schemas.ObjectRef) string {
	s := make([]string, len(objs))
	for i, o := range objs {
		s[i] = o.Kind + "/" + o.Name
	}
	return strings.Join(s, ", ")
}

// steady says why the steady state does not hold at the end of the warmup,
// or "" when every indicator's latest evaluation is ok.
func (r *run) steady() string {
	var bad []string
	for _, ind := range r.exp.SteadyState {
		d := r.latest[ind.Name]
		switch {
		case d == nil:
			bad = append(bad, fmt.Sprintf("no evaluation of %s arrived during the warmup: is the steady-state analyzer running (analyzers.steadystate.enabled) for cluster %s?", ind.Name, r.o.Cluster))
		case d.Verdict != schemas.VerdictOK:
			bad = append(bad, fmt.Sprintf("%s: %s", ind.Name, d.Message))
		}
	}
	return strings.Join(bad, "; ")
}

// abortFaults reverts every fault of the run (if any was issued) and waits
// for the reverts.
func (r *run) abortFaults(ctx context.Context, reason string) {
	if len(r.steps) == 0 {
		return
	}
	a := &schemas.FaultAbort{ID: schemas.DeriveID("abort", r.id, "runner"), ExperimentID: r.id, Reason: reason, IssuedAt: time.Now().UTC(), Issuer: "experiment-runner"}
	if err := runner.PublishAbort(context.WithoutCancel(ctx), r.o.Bus, r.faults, a); err != nil {
		r.log.Error("experiment: publish abort", "err", err)
	}
	r.waitReverted(ctx)
}

// waitReverted waits until no fault record of the run is left.
func (r *run) waitReverted(ctx context.Context) {
	if len(r.steps) == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.o.RevertWait)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	quiet := time.Now()
	for {
		entries, err := r.faults.List(wctx)
		left := 0
		for _, e := range entries {
			if e.Record.Command.ExperimentID == r.id {
				left++
			}
		}
		if err == nil && left == 0 {
			r.drain()
			// A record goes just before its reverted status is
			// published; give the statuses a moment to arrive.
			if r.unreported() == 0 {
				return
			}
			if time.Since(quiet) > 2*time.Second {
				return
			}
		} else {
			quiet = time.Now()
		}
		select {
		case <-wctx.Done():
			r.say("fault", "%d faults of the run still recorded after %v: see 'faultline fault list'", left, r.o.RevertWait)
			return
		case st := <-r.stats:
			r.recordStatus(st)
		case f := <-r.finds:
			r.recordFinding(f)
		case <-t.C:
		}
	}
}

// unreported counts the applied steps whose reverted status has not come.
func (r *run) unreported() int {
	n := 0
	for _, f := range r.steps {
		if f.Applied != nil && f.Reverted == nil {
			n++
		}
	}
	return n
}

// conclude writes the verdict and publishes the report.
func (r *run) conclude(ctx context.Context, phase steadystate.Phase, reason, indicator string) *Report {
	r.drain()
	rep := r.report
	rep.Ended = time.Now().UTC()
	rep.Reason, rep.Indicator = reason, indicator
	switch phase {
	case steadystate.PhasePassed:
		rep.Verdict = VerdictPassed
	case steadystate.PhaseDeviated:
		rep.Verdict = VerdictDeviated
	case steadystate.PhaseAborted:
		rep.Verdict = VerdictAborted
	default:
		rep.Verdict = VerdictFailed
	}
	r.sync()
	r.say("verdict", "%s%s", rep.Verdict, map[bool]string{true: ": " + reason, false: ""}[reason != ""])
	if err := PublishReport(context.WithoutCancel(ctx), r.o.Bus, rep); err != nil {
		r.log.Warn("experiment: publish report", "err", err)
	}
	return rep
}

// PublishReport sends a run's report on its subject.
func PublishReport(ctx context.Context, b *bus.Bus, rep *Report) error {
	env, err := schemas.NewEnvelope(schemas.Attributes{
		ID: schemas.DeriveID("report", rep.RunID), Source: "/faultline/experiment", Type: TypeReport,
		Subject: rep.Experiment, Cluster: rep.Cluster, Time: rep.Ended,
	}, rep)
	if err != nil {
		return fmt.Errorf("publish report: %w", err)
	}
	data, err := env.Encode()
	if err != nil {
		return fmt.Errorf("publish report: %w", err)
	}
	if _, err := b.Publish(ctx, bus.Message{Subject: bus.ExperimentReportSubject(rep.Cluster, rep.RunID), ID: env.ID, Data: data}); err != nil {
		return fmt.Errorf("publish report: %w", err)
	}
	return nil
}

// TypeReport is the CloudEvents type of experiment reports.
const TypeReport = "io.faultline.experiment.report.v1"
