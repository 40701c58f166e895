package runner

import (
	"context"
	"time"

	"github.com/faultline/faultline/injectors"
	"github.com/faultline/faultline/schemas"
)

type abortMsg struct {
	abort   schemas.FaultAbort
	arrived time.Time
}

// claimWait waits until key is free in this process and claims it.
func (r *Runner) claimWait(ctx context.Context, key string) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for !r.claim(key) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

func (r *Runner) isBusy(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.busy[key] || r.retrying[key]
}

func (r *Runner) driving(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.drivers[key] != nil
}

func (r *Runner) abortLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-r.aborts:
			r.abort(ctx, m)
		}
	}
}

// abort reverts, in parallel, every recorded fault the abort covers,
// whichever replica applied it.
func (r *Runner) abort(ctx context.Context, m abortMsg) {
	a := &m.abort
	log := r.log.With("abort", a.ID, "experiment", a.ExperimentID, "all", a.All)
	// Recording is idempotent; it covers aborts published without
	// PublishAbort, and commands still in flight.
	if err := r.store.RecordAbort(ctx, a); err != nil {
		log.Warn("injector: record abort", "err", err)
	}
	entries, err := r.store.List(ctx)
	if err != nil {
		log.Error("injector: abort: list faults; the reconciler retries", "err", err)
		return
	}
	exp := a.ExperimentID
	if a.All {
		exp = allExperiments
	}
	only := map[string]*schemas.FaultAbort{exp: a}
	var matching []*Entry
	for _, e := range entries {
		if abortedBy(only, &e.Record.Command) != nil {
			matching = append(matching, e)
		}
	}
	n := len(matching)
	// Failures are retried in the background, so the joined error has
	// nothing left to say.
	_ = injectors.ForEach(ctx, matching, r.cfg.AbortParallelism, func(ctx context.Context, e *Entry) error {
		if err := r.revertOnce(ctx, e.Key, causeAbort, "aborted: "+a.Reason); err != nil {
			log.Error("injector: abort revert failed; retrying in the background", "fault", e.Key, "err", err)
			r.revertInBackground(e.Key, causeRevertFailed, "aborted: "+a.Reason)
		}
		return nil
	})
	r.m.abortSeconds.Observe(time.Since(m.arrived).Seconds())
	log.Info("injector: abort handled", "faults", n, "took", time.Since(m.arrived))
}

func (r *Runner) reconcileLoop(ctx context.Context) {
	b := newBeats(r.store.State)
	t := time.NewTicker(r.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.reconcile(ctx, b); err != nil && ctx.Err() == nil {
				r.log.Warn("injector: reconcile", "err", err)
			}
		}
	}
}

// reconcile is the safety net every replica runs: it reverts recorded
// faults that are aborted, past their deadline or whose experiment stopped
// heartbeating, and takes over the faults of replicas that stopped
// heartbeating (including this process's predecessor after a crash).
func (r *Runner) reconcile(ctx context.Context, b *beats) error {
	entries, err := r.store.List(ctx)
	if err != nil {
		return err
	}
	aborts, err := r.store.aborts(ctx)
	if err != nil {
		return err
	}
	now := r.now()
	keep := map[string]bool{}
	for _, e := range entries {
		rec := &e.Record
		cmd := &rec.Command
		mine := rec.Owner == r.id
		ownerDead := false
		if !mine {
			k := heartbeatKey(r.cluster, rec.Owner)
			keep[k] = true
			stale, gone, err := b.stale(ctx, k, r.cfg.HeartbeatTimeout, now)
			if err != nil {
				return err
			}
			ownerDead = stale || gone
		}
		var cause, reason string
		switch a := abortedBy(aborts, cmd); {
		case a != nil:
			cause, reason = causeAbort, "aborted: "+a.Reason
		case !now.Before(rec.Deadline):
			cause, reason = causeDeadline, "the fault reached its deadline"
			// A live owner's timer handles its deadline; step in only if
			// it is late.
			if (!mine && !ownerDead || mine && r.driving(e.Key)) && now.Before(rec.Deadline.Add(r.cfg.ReconcileInterval+r.cfg.HeartbeatInterval)) {
				cause = ""
			}
		case cmd.HeartbeatTimeout > 0:
			k := ExperimentHeartbeatKey(r.cluster, cmd.ExperimentID)
			keep[k] = true
			stale, _, err := b.stale(ctx, k, cmd.HeartbeatTimeout.Std(), now)
			if err != nil {
				return err
			}
			if stale {
				cause, reason = causeHeartbeat, "experiment "+cmd.ExperimentID+" stopped heartbeating for "+cmd.HeartbeatTimeout.Std().String()
			}
		}
		if cause != "" {
			r.revertInBackground(e.Key, cause, reason)
			continue
		}
		if r.isBusy(e.Key) {
			continue
		}
		switch {
		case mine && rec.State == StateApplied:
			r.drive(e.Key, cmd, rec.Deadline)
		case mine:
			// Applying, reverting or revert-failed with nobody in this
			// process on it: left over, or a failed revert to retry. The
			// list may predate an apply that has finished since (it was
			// busy then, not now): act only on a record unchanged since.
			if cur, err := r.store.Get(ctx, e.Key); err != nil || cur == nil || cur.Revision != e.Revision {
				continue
			}
			r.revertInBackground(e.Key, causeRevertFailed, "retrying the revert ("+string(rec.State)+")")
		case ownerDead:
			r.takeOver(ctx, e)
		}
	}
	b.retain(keep)
	return nil
}

// takeOver makes this replica the owner of a dead replica's fault: an
// applied fault is driven to its deadline; anything caught half-way is
// reverted now, since nobody knows how far it got.
func (r *Runner) takeOver(ctx context.Context, e *Entry) {
	rec := e.Record
	prev := rec.Owner
	rec.Owner = r.id
	if _, err := r.store.update(ctx, e.Key, &rec, e.Revision); err != nil {
		return // another replica took it first
	}
	r.m.takeovers.Inc()
	r.log.Warn("injector: took over the fault of a replica that stopped heartbeating", "fault", e.Key, "from", prev, "state", rec.State, "deadline", rec.Deadline)
	if rec.State == StateApplied {
		r.drive(e.Key, &rec.Command, rec.Deadline)
		return
	}
	r.revertInBackground(e.Key, causeTakeover, "taken over from injector "+prev+" that stopped while the fault was "+string(rec.State))
}
