package experiment

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/injectors/runner"
	"github.com/faultline/faultline/injectors/signing"
	"github.com/faultline/faultline/schemas"
)

// DryRun sends every method step as a signed dry-run command and returns
// the injectors' answers in step order: planned (targets, revert steps,
// blast radius) or refused (why). Nothing in the cluster changes and no run
// is recorded.
func DryRun(ctx context.Context, o Options, wait time.Duration) ([]*schemas.FaultStatus, error) {
	e := o.Experiment
	if e.Cluster != o.Cluster {
		return nil, fmt.Errorf("experiment %s is for cluster %q, not %q", e.Name, e.Cluster, o.Cluster)
	}
	id := e.RunID(time.Now()) + "-dry"
	got := make(chan *schemas.FaultStatus, 64)
	sub, err := o.Bus.Conn().Subscribe(bus.FaultStatusSubject(o.Cluster, id), func(m *nats.Msg) {
		env, err := schemas.DecodeEnvelope(m.Data)
		if err != nil {
			return
		}
		var st schemas.FaultStatus
		if json.Unmarshal(env.Data, &st) == nil && (st.Phase == schemas.PhasePlanned || st.Phase == schemas.PhaseRefused) {
			got <- &st
		}
	})
	if err != nil {
		return nil, fmt.Errorf("dry run: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	ids := make([]string, len(e.Method))
	for i, st := range e.Method {
		ids[i] = schemas.DeriveID("cmd", id, st.Name)
		cmd, err := e.Command(i, ids[i], id, time.Now())
		if err != nil {
			return nil, err
		}
		cmd.DryRun = true
		if err := signing.Sign(cmd, o.Key); err != nil {
			return nil, err
		}
		if err := runner.PublishCommand(ctx, o.Bus, o.Cluster, cmd); err != nil {
			return nil, err
		}
	}
	answers := map[string]*schemas.FaultStatus{}
	timeout := time.After(wait)
	for len(answers) < len(ids) {
		select {
		case st := <-got:
			answers[st.CommandID] = st
		case <-timeout:
			return nil, fmt.Errorf("dry run: %d of %d steps unanswered after %v: is an injector running for cluster %s?", len(ids)-len(answers), len(ids), wait, o.Cluster)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	out := make([]*schemas.FaultStatus, len(ids))
	for i, id := range ids {
		out[i] = answers[id]
	}
	return out, nil
}
