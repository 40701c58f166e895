package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/injectors/guard"
	"github.com/faultline/faultline/schemas"
)

func (r *Runner) status(cmd *schemas.FaultCommand, phase schemas.FaultPhase, affected []schemas.ObjectRef, deadline *time.Time) *schemas.FaultStatus {
	st := schemas.NewFaultStatus(cmd, phase, r.now())
	st.Affected = affected
	st.Injector = r.id
	st.Deadline = deadline
	return st
}

// refuse publishes a refused status with err's reason code and counts it.
func (r *Runner) refuse(ctx context.Context, cmd *schemas.FaultCommand, err error) {
	ref, ok := guard.AsRefusal(err)
	if !ok {
		ref = guard.Refuse(guard.CodeInvalid, "%v", err)
	}
	r.m.refusals.WithLabelValues(ref.Code).Inc()
	fault := string(cmd.Fault)
	if _, known := r.inj[cmd.Fault]; !known {
		fault = "unknown"
	}
	r.m.commands.WithLabelValues(fault, "refused").Inc()
	st := r.status(cmd, schemas.PhaseRefused, nil, nil)
	st.Reason, st.ReasonCode = ref.Reason, ref.Code
	r.publish(ctx, st)
}

// publish sends a status; a failure is logged and counted but does not
// change the fault's course: the record in KV is the truth.
func (r *Runner) publish(ctx context.Context, st *schemas.FaultStatus) {
	data, err := EncodeStatus(st, r.cluster)
	if err == nil {
		_, err = r.bus.Publish(ctx, bus.Message{Subject: bus.FaultStatusSubject(r.cluster, st.ExperimentID), ID: st.ID, Data: data})
	}
	if err != nil {
		r.m.statusErrors.Inc()
		r.log.Warn("injector: publish fault status", "command", st.CommandID, "phase", st.Phase, "err", err)
	}
}

// mustStatus is a refused status for cmd as JSON, to check whether cmd has
// what a status needs.
func mustStatus(cmd *schemas.FaultCommand) []byte {
	st := schemas.NewFaultStatus(cmd, schemas.PhaseRefused, time.Now())
	st.Reason = "x"
	b, _ := json.Marshal(st)
	return b
}

// EncodeStatus wraps a status in its envelope.
func EncodeStatus(st *schemas.FaultStatus, cluster string) ([]byte, error) {
	env, err := schemas.NewEnvelope(schemas.Attributes{
		ID: st.ID, Source: "/faultline/injector", Type: schemas.TypeFaultStatus,
		Subject: st.CommandID, Cluster: cluster, Time: st.Time,
	}, st)
	if err != nil {
		return nil, fmt.Errorf("encode fault status: %w", err)
	}
	return env.Encode()
}

// PublishCommand publishes a (signed) command on its fault's subject.
func PublishCommand(ctx context.Context, b *bus.Bus, cluster string, cmd *schemas.FaultCommand) error {
	env, err := schemas.NewEnvelope(schemas.Attributes{
		ID: cmd.ID, Source: "/faultline/issuer/" + cmd.Issuer, Type: schemas.TypeFaultCommand,
		Subject: cmd.ExperimentID, Cluster: cluster, Time: cmd.IssuedAt,
	}, cmd)
	if err != nil {
		return fmt.Errorf("publish fault command: %w", err)
	}
	data, err := env.Encode()
	if err != nil {
		return fmt.Errorf("publish fault command: %w", err)
	}
	if _, err := b.Publish(ctx, bus.Message{Subject: bus.FaultCommandSubject(cluster, string(cmd.Fault)), ID: cmd.ID, Data: data}); err != nil {
		return fmt.Errorf("publish fault command %s: %w", cmd.ID, err)
	}
	return nil
}

// PublishAbort records the abort in KV (so every replica honours it, even
// one that misses the message) and then publishes it to every replica.
func PublishAbort(ctx context.Context, b *bus.Bus, store *Store, a *schemas.FaultAbort) error {
	if err := store.RecordAbort(ctx, a); err != nil {
		return err
	}
	env, err := schemas.NewEnvelope(schemas.Attributes{
		ID: a.ID, Source: "/faultline/abort", Type: schemas.TypeFaultAbort,
		Subject: a.ExperimentID, Cluster: store.Cluster, Time: a.IssuedAt,
	}, a)
	if err != nil {
		return fmt.Errorf("publish abort: %w", err)
	}
	data, err := env.Encode()
	if err != nil {
		return fmt.Errorf("publish abort: %w", err)
	}
	if _, err := b.Publish(ctx, bus.Message{Subject: bus.FaultAbortSubject(store.Cluster), ID: a.ID, Data: data}); err != nil {
		return fmt.Errorf("publish abort %s: %w", a.ID, err)
	}
	return nil
}
