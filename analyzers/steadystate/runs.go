package steadystate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/schemas"
)

// Phase is where an experiment run is.
type Phase string

// Phases of a run. Warmup and Running are active: the analyzer evaluates
// them. The others are final.
const (
	PhaseWarmup   Phase = "warmup"
	PhaseRunning  Phase = "running"
	PhasePassed   Phase = "passed"
	PhaseDeviated Phase = "deviated"
	PhaseAborted  Phase = "aborted"
	PhaseFailed   Phase = "failed"
)

// Active tells whether the analyzer evaluates a run in this phase.
func (p Phase) Active() bool { return p == PhaseWarmup || p == PhaseRunning }

// Run is an experiment run in progress, as recorded in the experiments KV
// bucket by its runner and read (and, on an abort, ended) by the
// steady-state analyzer.
type Run struct {
	ID         string              `json:"id"`
	Experiment *schemas.Experiment `json:"experiment"`
	Phase      Phase               `json:"phase"`
	// Started is when the warmup began; evaluations happen every interval
	// after it.
	Started time.Time `json:"started"`
	// Ends is when the method ends (warmup + method duration): the
	// analyzer stops evaluating a run past Ends plus two intervals even if
	// its runner vanished.
	Ends time.Time `json:"ends"`
	// Runner names the process running it.
	Runner string `json:"runner"`
	// Reason says why the run ended early (deviated, aborted, failed).
	Reason string `json:"reason,omitempty"`
	// Indicator is the indicator that deviated, if one did.
	Indicator string    `json:"indicator,omitempty"`
	Updated   time.Time `json:"updated"`
}

// Runs is the experiments bucket.
type Runs struct {
	Cluster string
	KV      jetstream.KeyValue
}

// OpenRuns opens the bucket (created at start by the runtime).
func OpenRuns(ctx context.Context, b *bus.Bus, cluster string) (*Runs, error) {
	kv, err := b.KV(ctx, bus.BucketExperiments)
	if err != nil {
		return nil, err
	}
	return &Runs{Cluster: cluster, KV: kv}, nil
}

// Key is a run's key: <cluster>.<run id>.
func (r *Runs) Key(id string) string { return bus.Token(r.Cluster) + "." + id }

// Create records a new run.
func (r *Runs) Create(ctx context.Context, run *Run) (uint64, error) {
	run.Updated = time.Now().UTC()
	b, err := json.Marshal(run)
	if err != nil {
		return 0, fmt.Errorf("experiment run %s: %w", run.ID, err)
	}
	rev, err := r.KV.Create(ctx, r.Key(run.ID), b)
	if err != nil {
		return 0, fmt.Errorf("experiment run %s: record: %w", run.ID, err)
	}
	return rev, nil
}

// Get reads a run; (nil, 0, nil) when there is none.
func (r *Runs) Get(ctx context.Context, id string) (*Run, uint64, error) {
	e, err := r.KV.Get(ctx, r.Key(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("experiment run %s: %w", id, err)
	}
	run, err := decodeRun(e.Value())
	if err != nil {
		return nil, 0, fmt.Errorf("experiment run %s: %w", id, err)
	}
	return run, e.Revision(), nil
}

func decodeRun(b []byte) (*Run, error) {
	var run Run
	if err := json.Unmarshal(b, &run); err != nil {
		return nil, err
	}
	if run.Experiment == nil {
		return nil, errors.New("no experiment")
	}
	// Parsed tolerances are not serialised; derive them again.
	run.Experiment.ApplyDefaults()
	return &run, nil
}

// Update changes a run with f, retrying on concurrent changes; f returns
// false to leave the run as it is.
func (r *Runs) Update(ctx context.Context, id string, f func(*Run) bool) (*Run, error) {
	for range 10 {
		run, rev, err := r.Get(ctx, id)
		if err != nil || run == nil {
			return nil, err
		}
		if !f(run) {
			return run, nil
		}
		run.Updated = time.Now().UTC()
		b, err := json.Marshal(run)
		if err != nil {
			return nil, err
		}
		if _, err := r.KV.Update(ctx, r.Key(id), b, rev); err == nil {
			return run, nil
		} else if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("experiment run %s: update: %w", id, err)
		}
	}
	return nil, fmt.Errorf("experiment run %s: update: too many concurrent changes", id)
}

// End moves an active run to a final phase, once: it returns false when the
// run had already ended (someone else decided first).
func (r *Runs) End(ctx context.Context, id string, phase Phase, reason, indicator string) (bool, error) {
	ended := false
	_, err := r.Update(ctx, id, func(run *Run) bool {
		if !run.Phase.Active() {
			return false
		}
		run.Phase, run.Reason, run.Indicator = phase, reason, indicator
		ended = true
		return true
	})
	return ended, err
}

// Delete removes a run's record (its runner does, at the end).
func (r *Runs) Delete(ctx context.Context, id string) error {
	if err := r.KV.Delete(ctx, r.Key(id)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("experiment run %s: delete: %w", id, err)
	}
	return nil
}

// List reads every run of the cluster.
func (r *Runs) List(ctx context.Context) ([]*Run, error) {
	w, err := r.KV.WatchFiltered(ctx, []string{bus.Token(r.Cluster) + ".*"}, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("list experiment runs: %w", err)
	}
	defer func() { _ = w.Stop() }()
	var out []*Run
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e := <-w.Updates():
			if e == nil {
				return out, nil
			}
			run, err := decodeRun(e.Value())
			if err != nil {
				continue
			}
			out = append(out, run)
		}
	}
}
