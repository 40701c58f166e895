package steadystate

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/faultline/faultline/analyzers"
	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/schemas"
)

// followFindings watches new findings: one at or above a running
// experiment's severity in its experimental group's namespace aborts it (a
// chaos run must never mask or cause a security incident). The injector's
// own requests give info findings, below every threshold.
func (a *Analyzer) followFindings(ctx context.Context) (jetstream.ConsumeContext, error) {
	cons, err := a.d.Bus.JetStream().OrderedConsumer(ctx, bus.StreamFinding, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{bus.PrefixFinding + "." + bus.Token(a.d.Cluster) + ".>"},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("steadystate: follow findings: %w", err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { a.onFinding(ctx, m.Data()) })
	if err != nil {
		return nil, fmt.Errorf("steadystate: follow findings: %w", err)
	}
	return cc, nil
}

func (a *Analyzer) onFinding(ctx context.Context, data []byte) {
	env, err := schemas.DecodeEnvelope(data)
	if err != nil || env.Type != schemas.TypeFinding {
		return
	}
	var f schemas.Finding
	if json.Unmarshal(env.Data, &f) != nil {
		return
	}
	if f.Labels[analyzers.LabelChaos] == analyzers.ChaosInjector {
		return
	}
	ns := f.Orchestrator.Namespace
	a.mu.Lock()
	var hit []*Run
	for _, t := range a.active {
		r := t.run
		if r.Phase == PhaseRunning && ns != "" && ns == r.Experiment.Groups.Experimental.Namespace &&
			f.Faultline.Severity.AtLeast(r.Experiment.AbortWhen.Finding.MinSeverity) {
			hit = append(hit, r)
		}
	}
	a.mu.Unlock()
	for _, r := range hit {
		reason := fmt.Sprintf("%s finding %s (%s) in the experimental group's namespace %s: %s",
			f.Faultline.Severity, f.Rule.ID, f.Event.ID, ns, f.Message)
		a.abort(ctx, r.ID, PhaseAborted, "finding", "", reason)
	}
}
