// Package runner is the injector's crash-safe lifecycle around the fault
// types: it takes signed fault commands from the bus, runs them through the
// guard rails, records each fault's intent and revert in JetStream KV before
// touching the cluster, applies it, and reverts it at its deadline, on an
// abort, at shutdown, when its experiment stops heartbeating, or — through
// the reconciler every replica runs — after the replica that applied it
// died. Every step is published as a FaultStatus.
package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/injectors"
	"github.com/faultline/faultline/injectors/guard"
	"github.com/faultline/faultline/schemas"
)

// Name is the component's name.
const Name = "injector"

// Options build a Runner.
type Options struct {
	Config    Config
	Guard     *guard.Guard
	Injectors []injectors.Injector
	Bus       *bus.Bus
	Cluster   string
	Log       *slog.Logger
	Metrics   prometheus.Registerer
	// Consumer carries the retry policy; stream, name and filters are set
	// here.
	Consumer bus.ConsumerSpec
}

// Runner is one injector replica.
type Runner struct {
	cfg      Config
	id       string
	cluster  string
	bus      *bus.Bus
	guard    *guard.Guard
	inj      map[schemas.FaultKind]injectors.Injector
	log      *slog.Logger
	m        *metrics
	consumer bus.ConsumerSpec
	now      func() time.Time

	store *Store

	// aborts is the bounded queue between the abort subscription and its
	// worker. Overflow policy: drop and count; the reconciler applies the
	// recorded abort within reconcile_interval anyway.
	aborts chan abortMsg
	// life ends when Run is asked to stop; background retries end with it.
	life context.Context

	mu sync.Mutex
	// drivers are the faults this replica drives to their deadline.
	drivers map[string]context.CancelFunc
	// busy marks records this process is applying or reverting now, so
	// the reconciler leaves them alone.
	busy map[string]bool
	// retrying marks records with a background revert loop.
	retrying map[string]bool
	// stopping is set at shutdown; no new drivers start after it.
	stopping bool
	work     sync.WaitGroup // drivers and background reverts
}

// New builds a replica.
func New(o Options) (*Runner, error) {
	if errs := o.Config.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("injector: %w", errors.Join(errs...))
	}
	if o.Guard == nil || o.Bus == nil || len(o.Injectors) == 0 {
		return nil, errors.New("injector: guard, bus and at least one fault type are required")
	}
	m, err := newMetrics(o.Metrics)
	if err != nil {
		return nil, fmt.Errorf("injector: metrics: %w", err)
	}
	id := o.Config.ID
	if id == "" {
		id = defaultID()
	}
	id = bus.Token(strings.ReplaceAll(id, "/", "_"))
	r := &Runner{
		cfg: o.Config, id: id, cluster: o.Cluster, bus: o.Bus, guard: o.Guard,
		inj: map[schemas.FaultKind]injectors.Injector{}, m: m, consumer: o.Consumer,
		now:      time.Now,
		aborts:   make(chan abortMsg, 64),
		retrying: map[string]bool{},
		drivers:  map[string]context.CancelFunc{},
		busy:     map[string]bool{},
	}
	r.log = o.Log
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.log = r.log.With("injector", id)
	var faults []string
	for _, i := range o.Injectors {
		r.inj[i.Fault()] = i
		faults = append(faults, string(i.Fault()))
	}
	r.consumer.Stream = bus.StreamFault
	r.consumer.Durable = "injector-" + bus.Token(o.Cluster)
	r.consumer.FilterSubjects = nil
	for _, f := range faults {
		r.consumer.FilterSubjects = append(r.consumer.FilterSubjects, bus.FaultCommandSubject(o.Cluster, f))
	}
	r.consumer.Concurrency = o.Config.Concurrency
	// A command older than the consumer is stale anyway (max_command_age):
	// a new deployment must not replay history as a flood of refusals.
	r.consumer.DeliverNew = true
	return r, nil
}

func defaultID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "injector"
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}

// Name implements app.Component.
func (r *Runner) Name() string { return Name }

// ID is this replica's name in records and statuses.
func (r *Runner) ID() string { return r.id }

// Run serves fault commands and aborts until ctx ends, then reverts the
// faults this replica drives and stops.
func (r *Runner) Run(ctx context.Context) error {
	store, err := OpenStore(ctx, r.bus, r.cluster)
	if err != nil {
		return fmt.Errorf("injector: %w", err)
	}
	r.store = store
	r.life = ctx
	if err := Heartbeat(ctx, store.State, heartbeatKey(r.cluster, r.id), r.now()); err != nil {
		return fmt.Errorf("injector: %w", err)
	}
	sub, err := r.bus.Conn().Subscribe(bus.FaultAbortSubject(r.cluster), r.onAbort)
	if err != nil {
		return fmt.Errorf("injector: subscribe to aborts: %w", err)
	}
	if r.guard.Config().AllowedNamespaces == nil {
		r.log.Warn("injector: allowed_namespaces is empty; every fault command will be refused")
	}
	r.log.Info("injector started", "faults", len(r.inj), "trusted_keys", r.guard.TrustedKeys(),
		"allowed_namespaces", r.guard.Config().AllowedNamespaces)

	loops, stopLoops := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); r.heartbeatLoop(loops) }()
	go func() { defer wg.Done(); r.reconcileLoop(loops) }()
	go func() { defer wg.Done(); r.abortLoop(loops) }()

	err = r.bus.Consume(ctx, r.consumer, r.handle)

	_ = sub.Unsubscribe()
	stopLoops()
	wg.Wait()
	r.shutdown()
	if err != nil {
		return fmt.Errorf("injector: %w", err)
	}
	return nil
}

// shutdown reverts every fault this replica drives, then deletes its
// heartbeat so another replica takes over at once whatever could not be
// reverted.
func (r *Runner) shutdown() {
	r.mu.Lock()
	r.stopping = true
	keys := make([]string, 0, len(r.drivers))
	for k, cancel := range r.drivers {
		cancel()
		keys = append(keys, k)
	}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.RevertTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.revertOnce(ctx, k, causeShutdown, "the injector replica is shutting down"); err != nil {
				r.log.Error("injector: revert at shutdown failed; another replica takes it over", "fault", k, "err", err)
			}
		}()
	}
	wg.Wait()
	r.work.Wait()
	if err := r.store.State.Delete(ctx, heartbeatKey(r.cluster, r.id)); err != nil {
		r.log.Warn("injector: delete heartbeat", "err", err)
	}
	r.log.Info("injector stopped", "reverted_at_shutdown", len(keys))
}

func (r *Runner) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(r.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := Heartbeat(ctx, r.store.State, heartbeatKey(r.cluster, r.id), r.now()); err != nil && ctx.Err() == nil {
				r.log.Warn("injector: heartbeat", "err", err)
			}
		}
	}
}

// handle takes one fault command from the bus to applied (or refused,
// planned, failed). It returns an error only for what a redelivery can fix.
func (r *Runner) handle(ctx context.Context, m *bus.Msg) error {
	env, err := schemas.DecodeEnvelope(m.Data)
	if err != nil {
		r.m.commands.WithLabelValues("unknown", "invalid").Inc()
		return bus.Permanent(fmt.Errorf("fault command: %w", err))
	}
	if env.Type != schemas.TypeFaultCommand {
		r.m.commands.WithLabelValues("unknown", "invalid").Inc()
		return bus.Permanent(fmt.Errorf("fault command: envelope type %q is not %s", env.Type, schemas.TypeFaultCommand))
	}
	var cmd schemas.FaultCommand
	if verr := schemas.Validate(schemas.KindFaultCommand, env.Data); verr != nil {
		// Refuse with a status when the ids needed for one are readable;
		// otherwise only the dead letters can say what happened.
		if json.Unmarshal(env.Data, &cmd) == nil && schemas.Validate(schemas.KindFaultStatus, mustStatus(&cmd)) == nil {
			r.refuse(ctx, &cmd, guard.Refuse(guard.CodeInvalid, "%v", verr))
			return nil
		}
		r.m.commands.WithLabelValues("unknown", "invalid").Inc()
		return bus.Permanent(fmt.Errorf("fault command: %w", verr))
	}
	if err := json.Unmarshal(env.Data, &cmd); err != nil {
		return bus.Permanent(fmt.Errorf("fault command: %w", err))
	}
	log := r.log.With("command", cmd.ID, "experiment", cmd.ExperimentID, "fault", cmd.Fault)
	ctx = injectors.WithExperiment(ctx, cmd.ExperimentID)
	if tok := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]; tok != string(cmd.Fault) {
		r.refuse(ctx, &cmd, guard.Refuse(guard.CodeInvalid, "fault %q arrived on the subject of %q", cmd.Fault, tok))
		return nil
	}
	inj := r.inj[cmd.Fault]
	if inj == nil {
		r.refuse(ctx, &cmd, guard.Refuse(guard.CodeNoInjector, "this injector does not run fault type %q", cmd.Fault))
		return nil
	}
	if cmd.ExperimentID == allExperiments {
		r.refuse(ctx, &cmd, guard.Refuse(guard.CodeInvalid, "experiment id %q is reserved", allExperiments))
		return nil
	}
	now := r.now()
	if err := r.guard.Authenticate(&cmd, now); err != nil {
		log.Warn("injector: command refused", "err", err)
		r.refuse(ctx, &cmd, err)
		return nil
	}
	aborts, err := r.store.aborts(ctx)
	if err != nil {
		return err
	}
	if a := abortedBy(aborts, &cmd); a != nil {
		r.refuse(ctx, &cmd, guard.Refuse(guard.CodeAborted, "experiment %s was aborted at %s: %s", cmd.ExperimentID, a.IssuedAt.UTC().Format(time.RFC3339), a.Reason))
		return nil
	}
	key := FaultKey(r.cluster, cmd.ID)
	if m.Deliveries > 1 {
		// JetStream delivers this message again (a replica died or timed
		// out handling it). If it got as far as the record, the record and
		// the reconciler own the fault. A replay is a new message and is
		// refused below by its id.
		if existing, err := r.store.Get(ctx, key); err != nil {
			return err
		} else if existing != nil {
			log.Info("injector: redelivered command already recorded; leaving it to its record", "state", existing.Record.State)
			return nil
		}
	}
	if err := inj.Check(&cmd); err != nil {
		r.refuse(ctx, &cmd, guard.Refuse(guard.CodeInvalid, "%v", err))
		return nil
	}
	entries, err := r.store.List(ctx)
	if err != nil {
		return err
	}
	sel, err := r.guard.Select(ctx, &cmd, len(entries))
	if err != nil {
		if _, ok := guard.AsRefusal(err); ok {
			log.Warn("injector: command refused", "err", err)
			r.refuse(ctx, &cmd, err)
			return nil
		}
		return err // the API server; a redelivery retries
	}
	plan, err := inj.Plan(ctx, &cmd, sel.Pods)
	if err != nil {
		if _, ok := guard.AsRefusal(err); ok {
			r.refuse(ctx, &cmd, err)
			return nil
		}
		r.m.commands.WithLabelValues(string(cmd.Fault), "failed").Inc()
		st := schemas.NewFaultStatus(&cmd, schemas.PhaseFailed, r.now())
		st.Reason = "plan: " + err.Error()
		r.publish(ctx, st)
		return nil
	}
	if cmd.DryRun {
		st := r.status(&cmd, schemas.PhasePlanned, plan.Affected, nil)
		st.RevertSteps = plan.Revert.Steps
		st.Warnings = append(plan.Warnings, workloadNote(sel))
		r.publish(ctx, st)
		r.m.commands.WithLabelValues(string(cmd.Fault), "planned").Inc()
		log.Info("injector: dry run planned", "affected", len(plan.Affected))
		return nil
	}
	fresh, err := r.store.markCommand(ctx, &cmd, r.id)
	if err != nil {
		return err
	}
	if !fresh {
		r.refuse(ctx, &cmd, guard.Refuse(guard.CodeReplayed, "command id %s was already received; a command is applied at most once", cmd.ID))
		return nil
	}
	return r.apply(ctx, log, inj, &cmd, plan, key)
}

func (r *Runner) apply(ctx context.Context, log *slog.Logger, inj injectors.Injector, cmd *schemas.FaultCommand, plan *injectors.Plan, key string) error {
	if !r.claim(key) {
		return nil
	}
	then, err := r.applyClaimed(ctx, log, inj, cmd, plan, key)
	r.release(key)
	if then != nil {
		then()
	}
	return err
}

// applyClaimed records, applies and reports; what it returns to do next
// runs after the claim on key is released.
func (r *Runner) applyClaimed(ctx context.Context, log *slog.Logger, inj injectors.Injector, cmd *schemas.FaultCommand, plan *injectors.Plan, key string) (then func(), err error) {
	now := r.now().UTC()
	rec := Record{
		Command: *cmd, State: StateApplying, Owner: r.id,
		Deadline: now.Add(cmd.Duration.Std()), Created: now, Updated: now,
		Targets: plan.Targets, Affected: plan.Affected, Revert: plan.Revert,
	}
	rev, err := r.store.create(ctx, key, &rec)
	if err != nil {
		// Without the record nothing may be applied; let the command be
		// delivered again, this time without its replay mark.
		_ = r.store.Commands.Delete(ctx, replayKey(r.cluster, cmd.ID))
		return nil, err
	}
	accepted := r.status(cmd, schemas.PhaseAccepted, plan.Affected, &rec.Deadline)
	accepted.RevertRef = key
	accepted.RevertSteps = plan.Revert.Steps
	accepted.Warnings = plan.Warnings
	r.publish(ctx, accepted)

	if err := inj.Apply(ctx, plan); err != nil {
		log.Error("injector: apply failed; reverting what was done", "err", err)
		r.m.commands.WithLabelValues(string(cmd.Fault), "failed").Inc()
		st := r.status(cmd, schemas.PhaseFailed, plan.Affected, &rec.Deadline)
		st.Reason = "apply: " + err.Error()
		r.publish(ctx, st)
		return func() { r.revertInBackground(key, causeApplyFailed, "apply failed: "+err.Error()) }, nil
	}
	applied := r.now().UTC()
	rec.State, rec.Applied = StateApplied, &applied
	if _, err := r.store.update(ctx, key, &rec, rev); err != nil {
		// Only a revert changes a record we are applying: it is handled.
		log.Info("injector: record changed while applying", "err", err)
		return nil, nil
	}
	st := r.status(cmd, schemas.PhaseApplied, plan.Affected, &rec.Deadline)
	st.RevertRef = key
	st.RevertSteps = plan.Revert.Steps
	r.publish(ctx, st)
	r.m.commands.WithLabelValues(string(cmd.Fault), "applied").Inc()
	log.Info("injector: fault applied", "affected", len(plan.Affected), "deadline", rec.Deadline)
	// An abort that arrived while Apply ran waited for the claim; one
	// recorded by a replica that found nothing to revert yet is caught here.
	if aborts, err := r.store.aborts(ctx); err == nil {
		if a := abortedBy(aborts, cmd); a != nil {
			return func() { r.revertInBackground(key, causeAbort, "aborted: "+a.Reason) }, nil
		}
	}
	return func() { r.drive(key, cmd, rec.Deadline) }, nil
}

func workloadNote(sel *guard.Selection) string {
	parts := make([]string, 0, len(sel.Workloads))
	for w, share := range sel.Workloads {
		parts = append(parts, w+" "+share)
	}
	return fmt.Sprintf("blast radius: %d of %d eligible pods; chosen/ready per workload: %s", len(sel.Pods), sel.Eligible, strings.Join(parts, ", "))
}

// claim marks key as being worked on by this process; false if it already is.
func (r *Runner) claim(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.busy[key] {
		return false
	}
	r.busy[key] = true
	return true
}

func (r *Runner) release(key string) {
	r.mu.Lock()
	delete(r.busy, key)
	r.mu.Unlock()
}

// drive keeps an applied fault until its deadline: repeating it when its
// type repeats, then reverting it.
func (r *Runner) drive(key string, cmd *schemas.FaultCommand, deadline time.Time) {
	r.mu.Lock()
	if r.stopping || r.drivers[key] != nil {
		r.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(injectors.WithExperiment(context.Background(), cmd.ExperimentID))
	r.drivers[key] = cancel
	r.work.Add(1)
	r.mu.Unlock()
	r.m.active.Inc()
	var interval time.Duration
	if rep, ok := r.inj[cmd.Fault].(injectors.Repeater); ok {
		interval = rep.Interval(cmd)
	}
	go func() {
		defer r.work.Done()
		defer r.m.active.Dec()
		timer := time.NewTimer(time.Until(deadline))
		defer timer.Stop()
		var tick <-chan time.Time
		if interval > 0 {
			t := time.NewTicker(interval)
			defer t.Stop()
			tick = t.C
		}
		for {
			select {
			case <-ctx.Done():
				return // reverted by whoever cancelled
			case <-tick:
				r.repeat(ctx, key, cmd)
			case <-timer.C:
				r.undrive(key)
				r.revertUntilDone(ctx, key, causeDeadline, "the fault reached its deadline")
				return
			}
		}
	}()
}

// undrive forgets key's driver, cancelling it.
func (r *Runner) undrive(key string) {
	r.mu.Lock()
	if cancel := r.drivers[key]; cancel != nil {
		cancel()
		delete(r.drivers, key)
	}
	r.mu.Unlock()
}

// repeat applies a repeating fault again on freshly selected targets,
// through every guard rail, and records what it touched.
func (r *Runner) repeat(ctx context.Context, key string, cmd *schemas.FaultCommand) {
	inj := r.inj[cmd.Fault]
	entries, err := r.store.List(ctx)
	if err != nil {
		r.log.Warn("injector: repeat: list faults", "err", err)
		return
	}
	// This fault is one of the active ones; it does not count against
	// itself.
	sel, err := r.guard.Select(ctx, cmd, len(entries)-1)
	if err != nil {
		r.log.Warn("injector: repeat skipped", "command", cmd.ID, "err", err)
		return
	}
	plan, err := inj.Plan(ctx, cmd, sel.Pods)
	if err != nil {
		r.log.Warn("injector: repeat plan", "command", cmd.ID, "err", err)
		return
	}
	if ctx.Err() != nil {
		return
	}
	if err := inj.Apply(ctx, plan); err != nil {
		r.log.Warn("injector: repeat apply", "command", cmd.ID, "err", err)
		return
	}
	e, err := r.store.Get(ctx, key)
	if err != nil || e == nil || e.Record.State != StateApplied {
		return
	}
	e.Record.Affected = append(e.Record.Affected, plan.Affected...)
	if _, err := r.store.update(ctx, key, &e.Record, e.Revision); err != nil {
		r.log.Warn("injector: repeat: update record", "err", err)
	}
	st := r.status(cmd, schemas.PhaseApplied, plan.Affected, &e.Record.Deadline)
	st.RevertRef = key
	r.publish(ctx, st)
}
