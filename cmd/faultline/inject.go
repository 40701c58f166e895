package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/injectors/runner"
	"github.com/faultline/faultline/injectors/signing"
	"github.com/faultline/faultline/internal/config"
	"github.com/faultline/faultline/internal/units"
	"github.com/faultline/faultline/schemas"
)

// injectOptions are the flags every fault shares.
type injectOptions struct {
	flags            *config.Flags
	namespace        string
	selector         string
	names            []string
	count, percent   int
	duration         time.Duration
	experiment       string
	keyFile          string
	dryRun           bool
	heartbeatTimeout time.Duration
	answerTimeout    time.Duration
	noFollow         bool
}

func newInjectCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inject",
		Short: "Build, sign and publish a fault command, then follow it until it is reverted",
		Long: `inject builds a fault command from flags, signs it with your NKey seed
(--key, or FAULTLINE_SIGNING_KEY_FILE; create one with 'faultline fault
keygen'), publishes it on fl.fault.cmd.<cluster>.<fault>, and follows its
statuses: accepted, applied, reverted — or refused with the reason. Each
status is printed as a JSON line on stdout and as a progress line on stderr.

Interrupting inject (Ctrl-C) while the fault is active aborts its experiment,
so a fault never outlives the person who started it by surprise. With
--heartbeat-timeout, inject also keeps the experiment's heartbeat: if inject
dies, the injectors revert the fault after that timeout (dead-man switch).

Exit status: 0 when the fault was applied and reverted (or planned, with
--dry-run), 1 when it was refused or failed, 2 for bad flags.`,
		Example: `  faultline inject pod-kill -n shop -l app=cart --percent 50 --duration 2m --key issuer.nk --bus.urls nats://127.0.0.1:4222
  faultline inject network-partition -n shop -l app=cart --direction ingress --peer-selector app=frontend --duration 1m --dry-run
  faultline inject resource-starvation -n shop --names cart-0 --cpu-workers 2 --memory 512MiB --duration 5m`,
	}
	cmd.AddCommand(newInjectPodKill(), newInjectNetworkPartition(), newInjectResourceStarvation())
	return cmd
}

func bindInjectFlags(cmd *cobra.Command, o *injectOptions) {
	f := cmd.Flags()
	f.StringVarP(&o.namespace, "namespace", "n", "", "namespace of the target pods (required)")
	f.StringVarP(&o.selector, "selector", "l", "", "label selector of the target pods, e.g. app=cart,tier in (web)")
	f.StringSliceVar(&o.names, "names", nil, "target pods by name instead of --selector")
	f.IntVar(&o.count, "count", 0, "affect N of the matching pods (default: one)")
	f.IntVar(&o.percent, "percent", 0, "affect P% of the matching pods (rounded down, at least one)")
	f.DurationVar(&o.duration, "duration", time.Minute, "how long the fault lasts before it is reverted")
	f.StringVar(&o.experiment, "experiment", "", "experiment id (default: manual-<random>)")
	f.StringVar(&o.keyFile, "key", os.Getenv("FAULTLINE_SIGNING_KEY_FILE"), "NKey seed file to sign with ($FAULTLINE_SIGNING_KEY_FILE)")
	f.BoolVar(&o.dryRun, "dry-run", false, "resolve targets and check every guard rail, report the plan, change nothing")
	f.DurationVar(&o.heartbeatTimeout, "heartbeat-timeout", 0, "arm the dead-man switch: revert if this command stops heartbeating for this long (0: off)")
	f.DurationVar(&o.answerTimeout, "answer-timeout", 15*time.Second, "how long to wait for an injector's first answer")
	f.BoolVar(&o.noFollow, "no-follow", false, "publish and exit without following the statuses")
	o.flags = config.BindFlags(f)
}

// build turns the shared flags into a command (parameters are the fault's).
func (o *injectOptions) build(fault schemas.FaultKind) (*schemas.FaultCommand, error) {
	if o.namespace == "" {
		return nil, errors.New("--namespace is required")
	}
	if (o.selector == "") == (len(o.names) == 0) {
		return nil, errors.New("give exactly one of --selector and --names")
	}
	if o.count != 0 && o.percent != 0 {
		return nil, errors.New("give at most one of --count and --percent")
	}
	c := &schemas.FaultCommand{
		ID: "cmd-" + randomHex(16), ExperimentID: o.experiment, Fault: fault,
		Target:   schemas.Target{Namespace: o.namespace, Names: o.names},
		Mode:     schemas.Mode{Type: schemas.ModeOne},
		Duration: schemas.Duration(o.duration), DryRun: o.dryRun,
		IssuedAt: time.Now().UTC(), HeartbeatTimeout: schemas.Duration(o.heartbeatTimeout),
	}
	if c.ExperimentID == "" {
		c.ExperimentID = "manual-" + randomHex(8)
	}
	if o.selector != "" {
		sel, err := metav1.ParseToLabelSelector(o.selector)
		if err != nil {
			return nil, fmt.Errorf("--selector: %w", err)
		}
		c.Target.Selector = sel
	}
	switch {
	case o.count != 0:
		c.Mode = schemas.Mode{Type: schemas.ModeCount, Value: o.count}
	case o.percent != 0:
		c.Mode = schemas.Mode{Type: schemas.ModePercent, Value: o.percent}
	}
	return c, nil
}

func newInjectPodKill() *cobra.Command {
	var o injectOptions
	var grace int64
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "pod-kill",
		Short: "Delete target pods (again every --interval until --duration ends)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd, schemas.FaultPodKill, func(c *schemas.FaultCommand) error {
				p := &schemas.PodKillParams{Interval: schemas.Duration(interval)}
				if cmd.Flags().Changed("grace-period") {
					p.GracePeriodSeconds = &grace
				}
				c.PodKill = p
				return nil
			})
		},
	}
	cmd.Flags().Int64Var(&grace, "grace-period", 0, "seconds the pods get to stop (0: at once; default: the injector's)")
	cmd.Flags().DurationVar(&interval, "interval", 0, "kill matching pods again every interval during the duration (0: once)")
	bindInjectFlags(cmd, &o)
	return cmd
}

func newInjectNetworkPartition() *cobra.Command {
	var o injectOptions
	var direction, peerSel, peerNS string
	var cidrs []string
	cmd := &cobra.Command{
		Use:   "network-partition",
		Short: "Cut the target pods' traffic with a NetworkPolicy (needs a CNI that enforces NetworkPolicy)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd, schemas.FaultNetworkPartition, func(c *schemas.FaultCommand) error {
				p := &schemas.NetworkPartitionParams{Direction: schemas.Direction(direction)}
				if peerSel != "" || peerNS != "" || len(cidrs) > 0 {
					p.Peer = &schemas.NetworkPeer{CIDRs: cidrs}
					var err error
					if peerSel != "" {
						if p.Peer.PodSelector, err = metav1.ParseToLabelSelector(peerSel); err != nil {
							return fmt.Errorf("--peer-selector: %w", err)
						}
					}
					if peerNS != "" {
						if p.Peer.NamespaceSelector, err = metav1.ParseToLabelSelector(peerNS); err != nil {
							return fmt.Errorf("--peer-namespace-selector: %w", err)
						}
					}
				}
				c.NetworkPartition = p
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&direction, "direction", "both", "ingress, egress or both")
	cmd.Flags().StringVar(&peerSel, "peer-selector", "", "cut only from pods with these labels")
	cmd.Flags().StringVar(&peerNS, "peer-namespace-selector", "", "cut only from pods in namespaces with these labels")
	cmd.Flags().StringSliceVar(&cidrs, "peer-cidr", nil, "cut only from these networks (repeatable)")
	bindInjectFlags(cmd, &o)
	return cmd
}

func newInjectResourceStarvation() *cobra.Command {
	var o injectOptions
	var workers int
	var memory units.ByteSize
	var image string
	cmd := &cobra.Command{
		Use:   "resource-starvation",
		Short: "Run stress pods on the target pods' nodes that burn CPU and/or hold memory",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd, schemas.FaultResourceStarvation, func(c *schemas.FaultCommand) error {
				c.ResourceStarvation = &schemas.ResourceStarvationParams{CPUWorkers: workers, MemoryBytes: int64(memory), Image: image}
				return nil
			})
		},
	}
	cmd.Flags().IntVar(&workers, "cpu-workers", 0, "CPUs to keep busy on each node")
	cmd.Flags().Var(&memory, "memory", "memory to hold on each node, e.g. 512MiB")
	cmd.Flags().StringVar(&image, "image", "", "stress image (default: the injector's)")
	bindInjectFlags(cmd, &o)
	return cmd
}

// run builds, signs, publishes and follows one command.
func (o *injectOptions) run(cmd *cobra.Command, fault schemas.FaultKind, params func(*schemas.FaultCommand) error) error {
	c, err := o.build(fault)
	if err == nil {
		err = params(c)
	}
	if err == nil && o.keyFile == "" {
		err = errors.New("--key (or FAULTLINE_SIGNING_KEY_FILE) is required: injectors accept only signed commands; create a key with 'faultline fault keygen'")
	}
	if err != nil {
		return exitError{code: 2, err: fmt.Errorf("inject %s: %w", fault, err)}
	}
	kp, err := signing.LoadSeed(o.keyFile)
	if err != nil {
		return exitError{code: 2, err: fmt.Errorf("inject %s: %w", fault, err)}
	}
	if err := signing.Sign(c, kp); err != nil {
		return err
	}
	if wire, _ := json.Marshal(c); schemas.Validate(schemas.KindFaultCommand, wire) != nil {
		return exitError{code: 2, err: fmt.Errorf("inject %s: %w", fault, schemas.Validate(schemas.KindFaultCommand, wire))}
	}
	b, store, cfg, err := faultClient(cmd, o.flags, "inject")
	if err != nil {
		return err
	}
	defer closeBus(b)
	f := &follower{out: cmd.OutOrStdout(), errw: cmd.ErrOrStderr(), statuses: make(chan *schemas.FaultStatus, 256)}
	if !o.noFollow {
		sub, err := b.Conn().Subscribe(bus.FaultStatusSubject(cfg.Cluster, c.ExperimentID), f.onStatus(c.ID))
		if err != nil {
			return fmt.Errorf("inject: follow statuses: %w", err)
		}
		defer func() { _ = sub.Unsubscribe() }()
	}
	if o.heartbeatTimeout > 0 {
		if err := runner.Heartbeat(cmd.Context(), store.State, runner.ExperimentHeartbeatKey(cfg.Cluster, c.ExperimentID), time.Now()); err != nil {
			return err
		}
	}
	if err := runner.PublishCommand(cmd.Context(), b, cfg.Cluster, c); err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "published %s %s (experiment %s) on cluster %s\n", fault, c.ID, c.ExperimentID, cfg.Cluster)
	if o.noFollow {
		return nil
	}
	return f.follow(cmd.Context(), o, c, func(ctx context.Context) error {
		a := &schemas.FaultAbort{ID: "abort-" + randomHex(8), ExperimentID: c.ExperimentID, Reason: "inject interrupted", IssuedAt: time.Now().UTC(), Issuer: "cli"}
		return runner.PublishAbort(ctx, b, store, a)
	}, func(ctx context.Context) error {
		return runner.Heartbeat(ctx, store.State, runner.ExperimentHeartbeatKey(cfg.Cluster, c.ExperimentID), time.Now())
	})
}

type follower struct {
	out, errw io.Writer
	statuses  chan *schemas.FaultStatus
}

func (f *follower) onStatus(commandID string) nats.MsgHandler {
	return func(m *nats.Msg) {
		env, err := schemas.DecodeEnvelope(m.Data)
		if err != nil {
			return
		}
		var st schemas.FaultStatus
		if json.Unmarshal(env.Data, &st) != nil || st.CommandID != commandID {
			return
		}
		select {
		case f.statuses <- &st:
		default: // a follower that cannot keep up loses progress lines, never the fault
		}
	}
}

// follow prints statuses until the command ends; on interruption it aborts
// the experiment and waits for the revert.
func (f *follower) follow(ctx context.Context, o *injectOptions, c *schemas.FaultCommand, abort, beat func(context.Context) error) error {
	answer := time.NewTimer(o.answerTimeout)
	defer answer.Stop()
	var beatC <-chan time.Time
	if o.heartbeatTimeout > 0 {
		t := time.NewTicker(max(o.heartbeatTimeout/3, 100*time.Millisecond))
		defer t.Stop()
		beatC = t.C
	}
	enc := json.NewEncoder(f.out)
	active, failed := false, false
	for {
		select {
		case <-answer.C:
			return fmt.Errorf("inject: no injector answered within %v: is one running for this cluster, with the fault type %s?", o.answerTimeout, c.Fault)
		case <-beatC:
			if err := beat(context.WithoutCancel(ctx)); err != nil {
				fmt.Fprintf(f.errw, "heartbeat: %v\n", err)
			}
		case <-ctx.Done():
			if !active {
				return ctx.Err()
			}
			fmt.Fprintf(f.errw, "interrupted: aborting experiment %s\n", c.ExperimentID)
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := abort(actx); err != nil {
				return fmt.Errorf("inject: abort after interrupt: %w", err)
			}
			for {
				select {
				case st := <-f.statuses:
					_ = enc.Encode(st)
					f.progress(st)
					if st.Phase == schemas.PhaseReverted {
						return errors.New("inject: interrupted; the fault was reverted")
					}
				case <-actx.Done():
					return errors.New("inject: interrupted; the abort is published but the revert was not confirmed within 10s: see 'faultline fault list'")
				}
			}
		case st := <-f.statuses:
			answer.Stop()
			_ = enc.Encode(st)
			f.progress(st)
			switch st.Phase {
			case schemas.PhaseRefused:
				return exitError{code: 1, err: fmt.Errorf("inject: refused (%s): %s", st.ReasonCode, st.Reason)}
			case schemas.PhasePlanned:
				return nil
			case schemas.PhaseAccepted, schemas.PhaseApplied:
				active = true
			case schemas.PhaseFailed:
				failed = true
			case schemas.PhaseReverted:
				if failed {
					return exitError{code: 1, err: errors.New("inject: the fault failed and what it did was reverted")}
				}
				return nil
			}
		}
	}
}

func (f *follower) progress(st *schemas.FaultStatus) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-13s", st.Time.Local().Format("15:04:05.000"), st.Phase)
	if len(st.Affected) > 0 {
		names := make([]string, len(st.Affected))
		for i, a := range st.Affected {
			names[i] = a.Kind + "/" + a.Name
		}
		fmt.Fprintf(&b, " %s", strings.Join(names, ", "))
	}
	if st.Deadline != nil && (st.Phase == schemas.PhaseApplied || st.Phase == schemas.PhaseAccepted) {
		fmt.Fprintf(&b, " until %s", st.Deadline.Local().Format(time.TimeOnly))
	}
	if st.Reason != "" {
		fmt.Fprintf(&b, " — %s", st.Reason)
	}
	for _, s := range st.RevertSteps {
		if st.Phase == schemas.PhasePlanned {
			fmt.Fprintf(&b, "\n    revert: %s", s)
		}
	}
	for _, w := range st.Warnings {
		fmt.Fprintf(&b, "\n    note: %s", w)
	}
	fmt.Fprintln(f.errw, b.String())
}
