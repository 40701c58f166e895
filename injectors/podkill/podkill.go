// Package podkill is the pod-kill fault: it deletes the target pods, once
// or again every interval until the fault's duration ends. There is nothing
// to restore: the pods' controllers recreate them.
package podkill

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/faultline/faultline/injectors"
	"github.com/faultline/faultline/schemas"
)

// Name is the fault type.
const Name = schemas.FaultPodKill

// Injector deletes pods.
type Injector struct {
	kube kubernetes.Interface
	log  *slog.Logger
	cfg  Config
}

var (
	_ injectors.Injector = (*Injector)(nil)
	_ injectors.Repeater = (*Injector)(nil)
)

// New returns a pod-kill injector.
func New(d injectors.Deps, c Config) (*Injector, error) {
	log, err := d.Check(Name, c.Validate())
	if err != nil {
		return nil, err
	}
	return &Injector{kube: d.Kube, log: log, cfg: c}, nil
}

// Fault returns pod-kill.
func (*Injector) Fault() schemas.FaultKind { return Name }

// Check validates the command's pod-kill parameters: a grace period not
// below 0, and an interval that is 0 (kill once) or at least min_interval
// and shorter than the duration.
func (i *Injector) Check(cmd *schemas.FaultCommand) error {
	if cmd.Fault != Name {
		return fmt.Errorf("pod-kill: command is for %q", cmd.Fault)
	}
	if cmd.NetworkPartition != nil || cmd.ResourceStarvation != nil {
		return errors.New("pod-kill: command carries the parameters of another fault type")
	}
	if cmd.Duration <= 0 {
		return fmt.Errorf("pod-kill: duration must be positive (got %s)", cmd.Duration)
	}
	p := cmd.PodKill
	if p == nil {
		return nil
	}
	var errs []error
	if p.GracePeriodSeconds != nil && *p.GracePeriodSeconds < 0 {
		errs = append(errs, fmt.Errorf("grace_period_seconds: must not be negative (got %d)", *p.GracePeriodSeconds))
	}
	switch iv := p.Interval.Std(); {
	case iv == 0:
	case iv < i.cfg.MinInterval:
		errs = append(errs, fmt.Errorf("interval: %s is shorter than the minimum %s", iv, i.cfg.MinInterval))
	case iv >= cmd.Duration.Std():
		errs = append(errs, fmt.Errorf("interval: %s is not shorter than the duration %s", iv, cmd.Duration))
	}
	if len(errs) > 0 {
		return fmt.Errorf("pod-kill: %w", errors.Join(errs...))
	}
	return nil
}

// Interval is the command's interval between kills; 0 kills once.
func (*Injector) Interval(cmd *schemas.FaultCommand) time.Duration {
	if cmd.PodKill == nil {
		return 0
	}
	return cmd.PodKill.Interval.Std()
}

// grace is the command's grace period, else the configured default.
func (i *Injector) grace(cmd *schemas.FaultCommand) int64 {
	if cmd.PodKill != nil && cmd.PodKill.GracePeriodSeconds != nil {
		return *cmd.PodKill.GracePeriodSeconds
	}
	return i.cfg.DefaultGracePeriodSeconds
}

// Plan lists the pods to delete. Its revert has no objects: a deleted pod
// cannot be restored, its controller recreates it.
func (i *Injector) Plan(_ context.Context, cmd *schemas.FaultCommand, targets []corev1.Pod) (*injectors.Plan, error) {
	if err := i.Check(cmd); err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		return nil, errors.New("pod-kill: no target pods")
	}
	grace := i.grace(cmd)
	p := &injectors.Plan{Command: cmd}
	for k := range targets {
		pod := &targets[k]
		ref := injectors.PodRef(pod)
		p.Targets = append(p.Targets, ref)
		p.Affected = append(p.Affected, ref)
		step := fmt.Sprintf("delete pod %s/%s (uid %s) with grace period %ds", pod.Namespace, pod.Name, pod.UID, grace)
		if grace > 0 {
			step += fmt.Sprintf(": it is Terminating until its kubelet confirms its containers stopped (at most %ds after SIGTERM)", grace)
		}
		p.Steps = append(p.Steps, step)
		if metav1.GetControllerOf(pod) == nil {
			p.Warnings = append(p.Warnings, fmt.Sprintf("pod %s/%s has no controller: nothing will recreate it", pod.Namespace, pod.Name))
		}
		if pod.DeletionTimestamp != nil {
			p.Warnings = append(p.Warnings, fmt.Sprintf("pod %s/%s is already terminating", pod.Namespace, pod.Name))
		}
	}
	if iv := i.Interval(cmd); iv > 0 {
		p.Steps = append(p.Steps, fmt.Sprintf("repeat every %s until the duration %s ends, with the targets selected again each time", iv, cmd.Duration))
	}
	p.Revert = injectors.Revert{
		Fault:     Name,
		CommandID: cmd.ID,
		Steps:     []string{"nothing to restore: deleted pods are recreated by their controllers; reverting stops the repeated kills"},
	}
	return p, nil
}

// Apply deletes the plan's pods, at most parallelism at once, each with the
// grace period and a precondition on its UID, so a replacement pod that
// took the name since the plan is never killed. A pod already gone (or
// replaced) counts as done. The error names every pod that could not be
// deleted.
func (i *Injector) Apply(ctx context.Context, p *injectors.Plan) error {
	if p == nil || p.Command == nil {
		return errors.New("pod-kill: plan without a command")
	}
	grace := i.grace(p.Command)
	var pods []schemas.ObjectRef
	for _, ref := range p.Affected {
		if ref.Kind == "Pod" {
			pods = append(pods, ref)
		}
	}
	err := injectors.ForEach(ctx, pods, i.cfg.Parallelism, func(ctx context.Context, ref schemas.ObjectRef) error {
		return i.kill(ctx, ref, grace)
	})
	if err == nil {
		return nil
	}
	failed := len(err.(interface{ Unwrap() []error }).Unwrap())
	return fmt.Errorf("pod-kill: %d of %d pods not deleted: %w", failed, len(pods), err)
}

// kill deletes one pod.
func (i *Injector) kill(ctx context.Context, ref schemas.ObjectRef, grace int64) error {
	opts := metav1.DeleteOptions{GracePeriodSeconds: &grace}
	if ref.UID != "" {
		opts.Preconditions = &metav1.Preconditions{UID: (*types.UID)(&ref.UID)}
	}
	err := i.kube.CoreV1().Pods(ref.Namespace).Delete(ctx, ref.Name, opts)
	switch {
	case err == nil:
		if grace > 0 {
			i.log.Info("pod deleted; terminating within its grace period", "pod", ref.Namespace+"/"+ref.Name, "uid", ref.UID, "grace_period_seconds", grace)
		} else {
			i.log.Info("pod deleted", "pod", ref.Namespace+"/"+ref.Name, "uid", ref.UID)
		}
		return nil
	case apierrors.IsNotFound(err):
		i.log.Info("pod already gone", "pod", ref.Namespace+"/"+ref.Name, "uid", ref.UID)
		return nil
	case apierrors.IsConflict(err) && ref.UID != "":
		// The UID precondition failed: the name now belongs to a
		// replacement, and the target itself is gone.
		i.log.Info("pod already replaced; the replacement is left alone", "pod", ref.Namespace+"/"+ref.Name, "uid", ref.UID)
		return nil
	default:
		return fmt.Errorf("pod %s/%s: %w", ref.Namespace, ref.Name, err)
	}
}

// Revert has nothing to restore and succeeds; the runner stops repeating
// the kills of a reverted fault.
func (*Injector) Revert(_ context.Context, r *injectors.Revert) error {
	if r != nil && r.Fault != "" && r.Fault != Name {
		return fmt.Errorf("pod-kill: revert record is for %q", r.Fault)
	}
	return nil
}
