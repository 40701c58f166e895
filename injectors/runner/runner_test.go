package runner

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/faultline/faultline/bus/bustest"
	"github.com/faultline/faultline/injectors/guard"
	"github.com/faultline/faultline/injectors/signing"
	"github.com/faultline/faultline/schemas"
)

// A fault goes accepted → applied → reverted at its deadline; its record
// exists from before the change until the revert is confirmed.
func TestLifecycleRevertsAtDeadline(t *testing.T) {
	e := newEnv(t, 4)
	rep := e.start(nil)
	c := e.command(2, 1500*time.Millisecond, nil)
	e.publish(c)
	acc := e.waitStatus(c.ID, schemas.PhaseAccepted)
	if acc.RevertRef != FaultKey(e.cluster, c.ID) || acc.Deadline == nil || len(acc.RevertSteps) != 2 {
		t.Errorf("accepted status: %+v", acc)
	}
	app := e.waitStatus(c.ID, schemas.PhaseApplied)
	if len(app.Affected) != 2 || app.Injector != rep.r.ID() {
		t.Errorf("applied status: %+v", app)
	}
	if n := e.markers(c.ID); n != 2 {
		t.Fatalf("%d marker objects after applied, want 2", n)
	}
	rec, err := e.store().Get(context.Background(), FaultKey(e.cluster, c.ID))
	if err != nil || rec == nil || rec.Record.State != StateApplied || rec.Record.Owner != rep.r.ID() {
		t.Fatalf("record after applied: %+v, %v", rec, err)
	}
	rev := e.waitStatus(c.ID, schemas.PhaseReverted)
	if !strings.Contains(rev.Reason, "deadline") {
		t.Errorf("reverted for %q, want the deadline", rev.Reason)
	}
	if rev.Time.Before(*app.Deadline) {
		t.Errorf("reverted at %v, before its deadline %v", rev.Time, *app.Deadline)
	}
	if n := e.markers(c.ID); n != 0 {
		t.Fatalf("%d marker objects after reverted", n)
	}
	e.waitNoRecord(c.ID)
	if got := testutil.ToFloat64(rep.r.m.reverts.WithLabelValues(causeDeadline, "ok")); got != 1 {
		t.Errorf("deadline reverts counted %v", got)
	}
}

// Every guard refuses with its reason code, changes nothing and is counted.
func TestRefusals(t *testing.T) {
	e := newEnv(t, 4)
	rep := e.start(func(rc *Config, gc *guard.Config) { gc.MaxShare = 0.5 })
	stranger, _ := signing.NewKey()
	other := e.command(1, time.Minute, nil)
	notOptedNS := func() string {
		e.t.Helper()
		return "default"
	}()
	cases := []struct {
		name string
		cmd  func() *schemas.FaultCommand
		code string
	}{
		{"unsigned", func() *schemas.FaultCommand {
			c := e.command(1, time.Minute, nil)
			c.Signature = ""
			return c
		}, guard.CodeUnsigned},
		{"forged: target changed after signing", func() *schemas.FaultCommand {
			c := e.command(1, time.Minute, nil)
			c.Target.Names = e.work.Names()[:3]
			return c
		}, guard.CodeForged},
		{"untrusted key", func() *schemas.FaultCommand {
			c := e.command(1, time.Minute, nil)
			if err := signing.Sign(c, stranger); err != nil {
				t.Fatal(err)
			}
			return c
		}, guard.CodeUntrusted},
		{"expired", func() *schemas.FaultCommand {
			return e.command(1, time.Minute, func(c *schemas.FaultCommand) { c.IssuedAt = time.Now().Add(-time.Hour).UTC() })
		}, guard.CodeExpired},
		{"namespace not allowed", func() *schemas.FaultCommand {
			return e.command(1, time.Minute, func(c *schemas.FaultCommand) { c.Target.Namespace = notOptedNS })
		}, guard.CodeNamespace},
		{"protected namespace", func() *schemas.FaultCommand {
			return e.command(1, time.Minute, func(c *schemas.FaultCommand) { c.Target.Namespace = "kube-system" })
		}, guard.CodeProtected},
		{"blast radius: 3 of 4 ready pods", func() *schemas.FaultCommand { return e.command(3, time.Minute, nil) }, guard.CodeBlastRadius},
		{"no such pod", func() *schemas.FaultCommand {
			return e.command(1, time.Minute, func(c *schemas.FaultCommand) { c.Target.Names = []string{"nope"} })
		}, guard.CodeNoTargets},
		{"too long", func() *schemas.FaultCommand {
			return e.command(1, 2*time.Hour, nil)
		}, guard.CodeTooLong},
		{"replayed", func() *schemas.FaultCommand {
			// The same signed command again, as an attacker would resend
			// it: a new message id so JetStream's de-duplication does not
			// hide it.
			c := *other
			return &c
		}, guard.CodeReplayed},
	}
	e.publish(other)
	e.waitStatus(other.ID, schemas.PhaseApplied)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cmd()
			before := testutil.ToFloat64(rep.r.m.refusals.WithLabelValues(tc.code))
			if tc.code == guard.CodeReplayed {
				publishRaw(t, e, c, "replay-"+c.ID)
			} else {
				e.publish(c)
			}
			st := e.waitStatus(c.ID, schemas.PhaseRefused)
			if st.ReasonCode != tc.code || st.Reason == "" {
				t.Fatalf("refused with %q (%s), want %q", st.ReasonCode, st.Reason, tc.code)
			}
			if got := testutil.ToFloat64(rep.r.m.refusals.WithLabelValues(tc.code)); got != before+1 {
				t.Errorf("refusals{%s} = %v, want %v", tc.code, got, before+1)
			}
			if tc.code != guard.CodeReplayed && e.markers(c.ID) != 0 {
				t.Error("a refused command changed the cluster")
			}
		})
	}
	if got := rep.fault.applies.Load(); got != 1 {
		t.Errorf("%d applies, want only the one accepted command", got)
	}
}

func publishRaw(t *testing.T, e *env, c *schemas.FaultCommand, msgID string) {
	t.Helper()
	env, err := schemas.NewEnvelope(schemas.Attributes{ID: msgID, Source: "/test", Type: schemas.TypeFaultCommand, Cluster: e.cluster, Time: c.IssuedAt}, c)
	if err != nil {
		t.Fatal(err)
	}
	data, err := env.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.bus.Conn().Publish("fl.fault.cmd."+e.cluster+"."+string(c.Fault), data); err != nil {
		t.Fatal(err)
	}
}

// The opt-in label: pods of a namespace without it are refused unless the
// pod carries it.
func TestOptIn(t *testing.T) {
	e := newEnv(t, 2)
	e.start(nil)
	if _, err := e.kube.CoreV1().Namespaces().Patch(context.Background(), e.ns, "application/merge-patch+json",
		[]byte(`{"metadata":{"labels":{"faultline.io/chaos":null}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	c := e.command(1, time.Minute, nil)
	e.publish(c)
	if st := e.waitStatus(c.ID, schemas.PhaseRefused); st.ReasonCode != guard.CodeNotOptedIn {
		t.Fatalf("refused %s: %s", st.ReasonCode, st.Reason)
	}
	pod := e.work.Pods[0]
	if _, err := e.kube.CoreV1().Pods(e.ns).Patch(context.Background(), pod.Name, "application/merge-patch+json",
		[]byte(`{"metadata":{"labels":{"faultline.io/chaos":"enabled"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	c2 := e.command(1, time.Minute, nil)
	e.publish(c2)
	e.waitStatus(c2.ID, schemas.PhaseApplied)
}

// A dry run reports its targets and revert steps and changes nothing.
func TestDryRun(t *testing.T) {
	e := newEnv(t, 4)
	rep := e.start(nil)
	c := e.command(2, time.Minute, func(c *schemas.FaultCommand) { c.DryRun = true })
	e.publish(c)
	st := e.waitStatus(c.ID, schemas.PhasePlanned)
	if !st.DryRun || len(st.Affected) != 2 || len(st.RevertSteps) != 2 {
		t.Fatalf("planned status: %+v", st)
	}
	if !strings.Contains(strings.Join(st.Warnings, " "), "ReplicaSet/shop 2/4") {
		t.Errorf("plan does not state the blast radius: %v", st.Warnings)
	}
	if e.markers(c.ID) != 0 || rep.fault.applies.Load() != 0 {
		t.Fatal("a dry run changed the cluster")
	}
	if r, _ := e.store().Get(context.Background(), FaultKey(e.cluster, c.ID)); r != nil {
		t.Fatal("a dry run left a fault record")
	}
}

// An abort reverts every fault of its experiment across replicas and
// leaves the others; a later command of the aborted experiment is refused.
func TestAbortAcrossReplicas(t *testing.T) {
	e := newEnv(t, 10)
	e.start(func(rc *Config, gc *guard.Config) { rc.Concurrency = 2 })
	e.start(nil)
	exp := "exp-abort"
	var cmds []*schemas.FaultCommand
	for i := range 4 {
		c := e.command(1, time.Minute, func(c *schemas.FaultCommand) {
			c.ExperimentID = exp
			c.Target.Names = []string{e.work.Pods[i].Name}
		})
		cmds = append(cmds, c)
		e.publish(c)
	}
	keep := e.command(1, time.Minute, func(c *schemas.FaultCommand) { c.Target.Names = []string{e.work.Pods[9].Name} })
	e.publish(keep)
	for _, c := range append(cmds, keep) {
		e.waitStatus(c.ID, schemas.PhaseApplied)
	}
	a := &schemas.FaultAbort{ID: "abort-1", ExperimentID: exp, Reason: "steady state deviated", IssuedAt: time.Now().UTC()}
	start := time.Now()
	if err := PublishAbort(context.Background(), e.bus, e.store(), a); err != nil {
		t.Fatal(err)
	}
	bustest.WaitFor(t, 10*time.Second, "every fault of the experiment reverted", func() bool {
		for _, c := range cmds {
			if e.markers(c.ID) != 0 {
				return false
			}
		}
		return true
	})
	t.Logf("abort of 4 faults confirmed by the API server after %v", time.Since(start))
	for _, c := range cmds {
		st := e.waitStatus(c.ID, schemas.PhaseReverted)
		if !strings.Contains(st.Reason, "steady state deviated") {
			t.Errorf("reverted for %q", st.Reason)
		}
		e.waitNoRecord(c.ID)
		if n := e.count(c.ID, schemas.PhaseReverted); n != 1 {
			t.Errorf("%s reported reverted %d times", c.ID, n)
		}
	}
	if e.markers(keep.ID) != 1 {
		t.Error("the abort reverted a fault of another experiment")
	}
	late := e.command(1, time.Minute, func(c *schemas.FaultCommand) {
		c.ExperimentID = exp
		c.IssuedAt = a.IssuedAt.Add(-time.Second)
		c.Target.Names = []string{e.work.Pods[5].Name}
	})
	e.publish(late)
	if st := e.waitStatus(late.ID, schemas.PhaseRefused); st.ReasonCode != guard.CodeAborted {
		t.Errorf("late command of the aborted experiment: %s %s", st.ReasonCode, st.Reason)
	}
}

// A fault whose owner stopped heartbeating (a crashed replica) is taken
// over by a live replica and reverted by its deadline.
func TestTakeoverOfDeadReplicasFault(t *testing.T) {
	e := newEnv(t, 2)
	c := e.command(1, 2*time.Second, nil)
	// The dead replica's fault: applied (the marker exists) and recorded
	// with an owner that never heartbeats again.
	f := &markerFault{kube: e.kube}
	plan, err := f.Plan(context.Background(), c, []corev1.Pod{e.work.Pods[0]})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Apply(context.Background(), plan); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	s := e.store()
	applied := now
	if _, err := s.create(context.Background(), FaultKey(e.cluster, c.ID), &Record{
		Command: *c, State: StateApplied, Owner: "crashed-replica", Deadline: now.Add(2 * time.Second),
		Created: now, Applied: &applied, Affected: plan.Affected, Revert: plan.Revert, Updated: now,
	}); err != nil {
		t.Fatal(err)
	}
	rep := e.start(nil)
	st := e.waitStatus(c.ID, schemas.PhaseReverted)
	if st.Injector != rep.r.ID() || !strings.Contains(st.Reason, "deadline") {
		t.Errorf("reverted by %s for %q", st.Injector, st.Reason)
	}
	if e.markers(c.ID) != 0 {
		t.Fatal("the taken-over fault is still in the cluster")
	}
	if got := testutil.ToFloat64(rep.r.m.takeovers); got != 1 {
		t.Errorf("takeovers = %v", got)
	}
	// A record left half-way ("applying") is reverted at once, not at its
	// deadline: nobody knows how far Apply got.
	c2 := e.command(1, time.Hour, nil)
	if _, err := s.create(context.Background(), FaultKey(e.cluster, c2.ID), &Record{
		Command: *c2, State: StateApplying, Owner: "crashed-replica", Deadline: now.Add(time.Hour),
		Created: now, Revert: plan.Revert, Updated: now,
	}); err != nil {
		t.Fatal(err)
	}
	if st := e.waitStatus(c2.ID, schemas.PhaseReverted); !strings.Contains(st.Reason, "applying") {
		t.Errorf("half-applied fault reverted for %q", st.Reason)
	}
}

// The dead-man switch: when the experiment stops heartbeating, its faults
// are reverted long before their deadline.
func TestExperimentHeartbeatLost(t *testing.T) {
	e := newEnv(t, 2)
	e.start(nil)
	c := e.command(1, time.Hour, func(c *schemas.FaultCommand) { c.HeartbeatTimeout = schemas.Duration(time.Second) })
	s := e.store()
	if err := Heartbeat(context.Background(), s.State, ExperimentHeartbeatKey(e.cluster, c.ExperimentID), time.Now()); err != nil {
		t.Fatal(err)
	}
	e.publish(c)
	e.waitStatus(c.ID, schemas.PhaseApplied)
	st := e.waitStatus(c.ID, schemas.PhaseReverted)
	if !strings.Contains(st.Reason, "stopped heartbeating") {
		t.Errorf("reverted for %q", st.Reason)
	}
	if st.Time.After(st.Deadline.Add(-50 * time.Minute)) {
		t.Errorf("reverted at %v: not by the dead-man switch", st.Time)
	}
}

// A failed apply is reported and what it did is reverted.
func TestApplyFailureIsReverted(t *testing.T) {
	e := newEnv(t, 4)
	rep := e.start(nil)
	rep.fault.failApply.Store(true)
	c := e.command(2, time.Hour, nil)
	e.publish(c)
	if st := e.waitStatus(c.ID, schemas.PhaseFailed); !strings.Contains(st.Reason, "injected apply failure") {
		t.Errorf("failed status: %q", st.Reason)
	}
	e.waitStatus(c.ID, schemas.PhaseReverted)
	if e.markers(c.ID) != 0 {
		t.Fatal("a half-applied fault was left in the cluster")
	}
	e.waitNoRecord(c.ID)
}

// Stopping a replica reverts the faults it drives.
func TestShutdownReverts(t *testing.T) {
	e := newEnv(t, 2)
	rep := e.start(nil)
	c := e.command(1, time.Hour, nil)
	e.publish(c)
	e.waitStatus(c.ID, schemas.PhaseApplied)
	rep.stop(t)
	// The status was published before the replica stopped; it reaches this
	// test's subscription a moment later.
	if st := e.waitStatus(c.ID, schemas.PhaseReverted); !strings.Contains(st.Reason, "shutting down") {
		t.Fatalf("after stop: %+v", st)
	}
	if e.markers(c.ID) != 0 {
		t.Fatal("fault left in the cluster after shutdown")
	}
}

// The cap on concurrent faults counts every recorded fault in the cluster.
func TestTooManyFaults(t *testing.T) {
	e := newEnv(t, 4)
	e.start(func(rc *Config, gc *guard.Config) { gc.MaxConcurrentFaults = 1 })
	first := e.command(1, time.Minute, nil)
	e.publish(first)
	e.waitStatus(first.ID, schemas.PhaseApplied)
	second := e.command(1, time.Minute, func(c *schemas.FaultCommand) { c.Target.Names = []string{e.work.Pods[1].Name} })
	e.publish(second)
	if st := e.waitStatus(second.ID, schemas.PhaseRefused); st.ReasonCode != guard.CodeTooManyFaults {
		t.Fatalf("refused %s: %s", st.ReasonCode, st.Reason)
	}
	if e.markers(second.ID) != 0 {
		t.Fatal("a refused command changed the cluster")
	}
}
