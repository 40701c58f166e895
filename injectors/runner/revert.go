package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/faultline/faultline/injectors"
	"github.com/faultline/faultline/schemas"
)

// Causes of a revert, the label of the reverts counter.
const (
	causeDeadline     = "deadline"
	causeAbort        = "abort"
	causeShutdown     = "shutdown"
	causeTakeover     = "takeover"
	causeHeartbeat    = "experiment-heartbeat"
	causeApplyFailed  = "apply-failed"
	causeRevertFailed = "retry"
)

// errBusy means another goroutine of this process is on the record.
var errBusy = errors.New("record is being worked on")

// revertOnce makes one attempt to revert the fault recorded at key and, once
// the API server confirms it, deletes the record and publishes reverted. A
// record that is already gone counts as reverted (by someone else). Several
// replicas may revert the same fault at once: Revert is idempotent and only
// the one whose compare-and-delete succeeds reports it.
func (r *Runner) revertOnce(ctx context.Context, key, cause, reason string) error {
	if !r.claim(key) {
		if cause != causeAbort {
			return errBusy
		}
		// An abort waits for an apply in progress to finish, then reverts.
		if err := r.claimWait(ctx, key); err != nil {
			return err
		}
	}
	defer r.release(key)
	r.undrive(key)
	for {
		e, err := r.store.Get(ctx, key)
		if err != nil {
			return err
		}
		if e == nil {
			return nil
		}
		rec := e.Record
		inj := r.inj[rec.Command.Fault]
		if inj == nil {
			return fmt.Errorf("revert %s: this injector does not run fault type %q", key, rec.Command.Fault)
		}
		rec.State, rec.Reason, rec.Owner = StateReverting, reason, r.id
		rev, err := r.store.update(ctx, key, &rec, e.Revision)
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue // changed under us: read it again
		}
		if err != nil {
			return err
		}
		start := time.Now()
		actx, cancel := context.WithTimeout(injectors.WithRevert(injectors.WithExperiment(ctx, rec.Command.ExperimentID)), r.cfg.RevertTimeout)
		err = inj.Revert(actx, &rec.Revert)
		cancel()
		r.m.revertSeconds.Observe(time.Since(start).Seconds())
		if err != nil {
			r.m.reverts.WithLabelValues(cause, "failed").Inc()
			rec.State, rec.Attempts, rec.LastError = StateRevertFailed, rec.Attempts+1, err.Error()
			if _, uerr := r.store.update(ctx, key, &rec, rev); uerr != nil {
				r.log.Warn("injector: record revert failure", "fault", key, "err", uerr)
			}
			st := r.status(&rec.Command, schemas.PhaseRevertFailed, rec.Affected, &rec.Deadline)
			st.Reason = fmt.Sprintf("%s; revert attempt %d failed: %v", reason, rec.Attempts, err)
			st.RevertRef = key
			r.publish(ctx, st)
			return fmt.Errorf("revert %s: %w", key, err)
		}
		if err := r.store.remove(ctx, key, rev); err != nil {
			if e2, gerr := r.store.Get(ctx, key); gerr == nil && e2 == nil {
				return nil // another replica finished it and reported it
			} else if gerr == nil {
				// Another replica touched the record while we reverted;
				// the fault is reverted, so the record goes.
				if err := r.store.remove(ctx, key, e2.Revision); err != nil {
					return err
				}
			} else {
				return err
			}
		}
		r.m.reverts.WithLabelValues(cause, "ok").Inc()
		st := r.status(&rec.Command, schemas.PhaseReverted, rec.Affected, &rec.Deadline)
		st.Reason = reason
		st.RevertRef = key
		st.RevertSteps = rec.Revert.Steps
		r.publish(ctx, st)
		r.log.Info("injector: fault reverted", "fault", key, "cause", cause, "reason", reason)
		return nil
	}
}

// revertUntilDone retries a failing revert with backoff until it succeeds,
// ctx ends or another goroutine of this process takes the record over.
func (r *Runner) revertUntilDone(ctx context.Context, key, cause, reason string) {
	wait := time.Second
	for {
		err := r.revertOnce(context.WithoutCancel(ctx), key, cause, reason)
		if err == nil || errors.Is(err, errBusy) {
			return
		}
		r.log.Error("injector: revert failed; retrying", "fault", key, "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, r.cfg.RevertBackoffMax)
		cause = causeRevertFailed
	}
}

// revertInBackground reverts key in a goroutine the runner waits for at
// shutdown; retries stop at shutdown and are left to the reconciler of
// whichever replica takes the record over.
func (r *Runner) revertInBackground(key, cause, reason string) {
	r.mu.Lock()
	if r.stopping || r.retrying[key] {
		r.mu.Unlock()
		return
	}
	r.retrying[key] = true
	r.work.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.work.Done()
		defer r.unretry(key)
		r.revertUntilDone(r.life, key, cause, reason)
	}()
}

func (r *Runner) unretry(key string) {
	r.mu.Lock()
	delete(r.retrying, key)
	r.mu.Unlock()
}

// onAbort runs on the NATS subscription: it only queues.
func (r *Runner) onAbort(m *nats.Msg) {
	env, err := schemas.DecodeEnvelope(m.Data)
	if err == nil && env.Type != schemas.TypeFaultAbort {
		err = fmt.Errorf("envelope type %q is not %s", env.Type, schemas.TypeFaultAbort)
	}
	if err == nil {
		err = schemas.Validate(schemas.KindFaultAbort, env.Data)
	}
	var a schemas.FaultAbort
	if err == nil {
		err = json.Unmarshal(env.Data, &a)
	}
	if err != nil {
		r.log.Warn("injector: malformed abort ignored", "err", err)
		return
	}
	a.IssuedAt = a.IssuedAt.UTC()
	select {
	case r.aborts <- abortMsg{abort: a, arrived: time.Now()}:
	default:
		r.m.abortsDropped.Inc()
		r.log.Warn("injector: abort queue full; the reconciler applies the recorded abort", "abort", a.ID)
	}
}
