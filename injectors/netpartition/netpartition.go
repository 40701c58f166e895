// Package netpartition is the network-partition fault: a NetworkPolicy cuts
// the target pods' ingress, egress or both, from everything or from a peer
// (pods by namespace and pod selector, or CIDRs). NetworkPolicies select
// pods by label only, so the targets are labelled first; revert deletes the
// policy and removes the labels.
package netpartition

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/faultline/faultline/injectors"
	"github.com/faultline/faultline/schemas"
)

// Name is the fault type.
const Name = schemas.FaultNetworkPartition

// Injector partitions pods with NetworkPolicies.
type Injector struct {
	kube kubernetes.Interface
	log  *slog.Logger
	cfg  Config
}

var _ injectors.Injector = (*Injector)(nil)

// New returns a network-partition injector.
func New(d injectors.Deps, c Config) (*Injector, error) {
	log, err := d.Check(Name, c.Validate())
	if err != nil {
		return nil, err
	}
	return &Injector{kube: d.Kube, log: log, cfg: c}, nil
}

// Fault returns network-partition.
func (*Injector) Fault() schemas.FaultKind { return Name }

// Check validates the direction and the peer.
func (*Injector) Check(cmd *schemas.FaultCommand) error {
	if cmd.Fault != Name {
		return fmt.Errorf("network-partition: command is for %q", cmd.Fault)
	}
	if cmd.PodKill != nil || cmd.ResourceStarvation != nil {
		return errors.New("network-partition: command carries the parameters of another fault type")
	}
	if cmd.Duration <= 0 {
		return fmt.Errorf("network-partition: duration must be positive (got %s)", cmd.Duration)
	}
	if err := checkParams(cmd.NetworkPartition); err != nil {
		return fmt.Errorf("network-partition: %w", err)
	}
	return nil
}

// RevertData is the Data of a network-partition revert record: the label
// Apply puts on the target pods.
type RevertData struct {
	LabelKey   string `json:"label_key"`
	LabelValue string `json:"label_value"`
}

// Plan names the NetworkPolicy and the pods to label, and warns about
// NetworkPolicies that already allow the targets' traffic. It refuses
// targets outside the command's namespace or already partitioned by another
// command.
func (i *Injector) Plan(ctx context.Context, cmd *schemas.FaultCommand, targets []corev1.Pod) (*injectors.Plan, error) {
	if err := i.Check(cmd); err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		return nil, errors.New("network-partition: no target pods")
	}
	ns := cmd.Target.Namespace
	key, value := i.cfg.LabelKey, injectors.LabelValue(cmd.ID)
	params := cmd.NetworkPartition
	name := PolicyName(cmd.ID)
	policyRef := schemas.ObjectRef{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy", Namespace: ns, Name: name}

	p := &injectors.Plan{Command: cmd}
	p.Affected = append(p.Affected, policyRef)
	var labelSteps, unlabelSteps []string
	for k := range targets {
		pod := &targets[k]
		if pod.Namespace != ns {
			return nil, fmt.Errorf("network-partition: target pod %s/%s is outside the command's namespace %q", pod.Namespace, pod.Name, ns)
		}
		if v, ok := pod.Labels[key]; ok && v != value {
			return nil, fmt.Errorf("network-partition: pod %s/%s is already partitioned (%s=%s): revert that fault first", pod.Namespace, pod.Name, key, v)
		}
		ref := injectors.PodRef(pod)
		p.Targets = append(p.Targets, ref)
		p.Affected = append(p.Affected, ref)
		labelSteps = append(labelSteps, fmt.Sprintf("label pod %s/%s %s=%s", ns, pod.Name, key, value))
		unlabelSteps = append(unlabelSteps, fmt.Sprintf("remove label %s from pod %s/%s if it still carries %s", key, ns, pod.Name, value))
	}
	p.Steps = append(labelSteps, fmt.Sprintf("create NetworkPolicy %s/%s selecting %s=%s: %s", ns, name, key, value, describe(params)))

	warnings, err := i.overlapping(ctx, ns, targets, params)
	if err != nil {
		return nil, err
	}
	p.Warnings = warnings

	data, err := json.Marshal(RevertData{LabelKey: key, LabelValue: value})
	if err != nil {
		return nil, fmt.Errorf("network-partition: %w", err)
	}
	p.Revert = injectors.Revert{
		Fault:     Name,
		CommandID: cmd.ID,
		Objects:   slices.Clone(p.Affected),
		Steps: append([]string{fmt.Sprintf("delete NetworkPolicy %s/%s and confirm it is gone", ns, name)},
			unlabelSteps...),
		Data: data,
	}
	return p, nil
}

// overlapping warns about the NetworkPolicies of ns, other than
// Faultline's, that select a target and allow traffic in a direction the
// partition cuts: NetworkPolicies add up, so what they allow keeps flowing.
func (i *Injector) overlapping(ctx context.Context, ns string, targets []corev1.Pod, params *schemas.NetworkPartitionParams) ([]string, error) {
	list, err := i.kube.NetworkingV1().NetworkPolicies(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("network-partition: list NetworkPolicies in %s: %w", ns, err)
	}
	cutIn := params.Direction != schemas.DirectionEgress
	cutOut := params.Direction != schemas.DirectionIngress
	var out []string
	for _, np := range list.Items {
		if np.Labels[injectors.LabelManagedBy] == injectors.ManagedBy && np.Labels[injectors.LabelFault] == string(Name) {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil {
			continue
		}
		var selected []string
		for _, t := range targets {
			if sel.Matches(labels.Set(t.Labels)) {
				selected = append(selected, t.Name)
			}
		}
		if len(selected) == 0 {
			continue
		}
		var allows []string
		if cutIn && hasType(&np, networkingv1.PolicyTypeIngress) && len(np.Spec.Ingress) > 0 {
			allows = append(allows, "ingress")
		}
		if cutOut && hasType(&np, networkingv1.PolicyTypeEgress) && len(np.Spec.Egress) > 0 {
			allows = append(allows, "egress")
		}
		if len(allows) == 0 {
			continue
		}
		out = append(out, fmt.Sprintf("NetworkPolicy %s/%s selects target pods %s and allows %s: NetworkPolicies add up, so the traffic it allows is not cut",
			ns, np.Name, strings.Join(selected, ", "), strings.Join(allows, " and ")))
	}
	slices.Sort(out)
	return out, nil
}

// hasType reports whether np governs traffic of type t. Without
// policyTypes, a policy governs ingress, and egress when it has egress
// rules.
func hasType(np *networkingv1.NetworkPolicy, t networkingv1.PolicyType) bool {
	if len(np.Spec.PolicyTypes) == 0 {
		return t == networkingv1.PolicyTypeIngress || len(np.Spec.Egress) > 0
	}
	return slices.Contains(np.Spec.PolicyTypes, t)
}

// Apply labels the target pods, then creates the NetworkPolicy selecting
// them, so the cut starts for every target at once. A policy of the same
// name made by the same command (a retried Apply) is kept.
func (i *Injector) Apply(ctx context.Context, p *injectors.Plan) error {
	if p == nil || p.Command == nil || p.Command.NetworkPartition == nil {
		return errors.New("network-partition: plan without a network-partition command")
	}
	cmd := p.Command
	data, err := revertData(&p.Revert, i.cfg.LabelKey)
	if err != nil {
		return err
	}
	var pods []schemas.ObjectRef
	var policyRef *schemas.ObjectRef
	for k, o := range p.Affected {
		switch o.Kind {
		case "Pod":
			pods = append(pods, o)
		case "NetworkPolicy":
			policyRef = &p.Affected[k]
		}
	}
	if policyRef == nil {
		return errors.New("network-partition: plan names no NetworkPolicy")
	}
	if err := i.forEach(ctx, pods, func(ctx context.Context, o schemas.ObjectRef) error {
		return i.label(ctx, o, data)
	}); err != nil {
		return fmt.Errorf("network-partition: label pods: %w", err)
	}
	np := policy(policyRef.Name, policyRef.Namespace, data.LabelKey, data.LabelValue, injectors.ObjectLabels(cmd), cmd.NetworkPartition)
	_, err = i.kube.NetworkingV1().NetworkPolicies(np.Namespace).Create(ctx, np, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		got, gerr := i.kube.NetworkingV1().NetworkPolicies(np.Namespace).Get(ctx, np.Name, metav1.GetOptions{})
		if gerr != nil {
			return fmt.Errorf("network-partition: NetworkPolicy %s/%s exists: %w", np.Namespace, np.Name, gerr)
		}
		if got.Labels[injectors.LabelCommand] != injectors.LabelValue(cmd.ID) {
			return fmt.Errorf("network-partition: NetworkPolicy %s/%s exists and is not this command's", np.Namespace, np.Name)
		}
		err = nil
	}
	if err != nil {
		return fmt.Errorf("network-partition: create NetworkPolicy %s/%s: %w", np.Namespace, np.Name, err)
	}
	i.log.Info("partition applied", "policy", np.Namespace+"/"+np.Name, "pods", len(pods), "direction", cmd.NetworkPartition.Direction)
	return nil
}

// label puts the partition label on one pod. It reads the pod first and
// patches with its resourceVersion and UID, so the label goes only on the
// target itself (not a replacement of the same name) and never replaces
// another command's partition label put since the plan. A pod that is gone
// or replaced is skipped: it cannot be partitioned and needs no revert.
func (i *Injector) label(ctx context.Context, o schemas.ObjectRef, d RevertData) error {
	pods := i.kube.CoreV1().Pods(o.Namespace)
	for attempt := 0; ; attempt++ {
		cur, err := pods.Get(ctx, o.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			i.log.Info("target pod gone before it was labelled", "pod", o.Namespace+"/"+o.Name)
			return nil
		case err != nil:
			return fmt.Errorf("pod %s/%s: %w", o.Namespace, o.Name, err)
		case o.UID != "" && string(cur.UID) != o.UID:
			i.log.Info("target pod replaced before it was labelled; the replacement is left alone", "pod", o.Namespace+"/"+o.Name)
			return nil
		}
		switch v, ok := cur.Labels[d.LabelKey]; {
		case ok && v == d.LabelValue:
			return nil
		case ok:
			return fmt.Errorf("pod %s/%s: already partitioned (%s=%s)", o.Namespace, o.Name, d.LabelKey, v)
		}
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
			"uid":             cur.UID,
			"resourceVersion": cur.ResourceVersion,
			"labels":          map[string]string{d.LabelKey: d.LabelValue},
		}})
		if err != nil {
			return err
		}
		_, err = pods.Patch(ctx, o.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		switch {
		case err == nil:
			return nil
		case (apierrors.IsConflict(err) || apierrors.IsNotFound(err)) && attempt < 5:
			continue // changed or deleted since the Get: look again
		}
		return fmt.Errorf("pod %s/%s: %w", o.Namespace, o.Name, err)
	}
}

// Revert deletes the NetworkPolicy, waits until the API server no longer
// has it, then removes the partition label from every pod that still
// carries this fault's value. Missing objects are fine, so reverting twice
// or reverting a fault never applied succeeds.
func (i *Injector) Revert(ctx context.Context, r *injectors.Revert) error {
	if r == nil {
		return errors.New("network-partition: no revert record")
	}
	if r.Fault != "" && r.Fault != Name {
		return fmt.Errorf("network-partition: revert record is for %q", r.Fault)
	}
	data, err := revertData(r, i.cfg.LabelKey)
	if err != nil {
		return err
	}
	var pods []schemas.ObjectRef
	var errs []error
	for _, o := range r.Objects {
		switch o.Kind {
		case "Pod":
			pods = append(pods, o)
		case "NetworkPolicy":
			if err := i.deletePolicy(ctx, o); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := i.forEach(ctx, pods, func(ctx context.Context, o schemas.ObjectRef) error {
		return i.unlabel(ctx, o, data)
	}); err != nil {
		errs = append(errs, fmt.Errorf("remove labels: %w", err))
	}
	if len(errs) > 0 {
		return fmt.Errorf("network-partition: revert %s: %w", r.CommandID, errors.Join(errs...))
	}
	return nil
}

// revertData is the label of a record, derived from the command id for a
// record without data.
func revertData(r *injectors.Revert, key string) (RevertData, error) {
	d := RevertData{LabelKey: key, LabelValue: injectors.LabelValue(r.CommandID)}
	if len(r.Data) > 0 {
		if err := json.Unmarshal(r.Data, &d); err != nil {
			return d, fmt.Errorf("network-partition: revert data: %w", err)
		}
	}
	return d, nil
}

// confirmInterval is how often Revert looks whether the policy is gone.
const confirmInterval = 20 * time.Millisecond

func (i *Injector) deletePolicy(ctx context.Context, o schemas.ObjectRef) error {
	nps := i.kube.NetworkingV1().NetworkPolicies(o.Namespace)
	err := nps.Delete(ctx, o.Name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete NetworkPolicy %s/%s: %w", o.Namespace, o.Name, err)
	}
	// Confirm: a finalizer put by someone else would keep it.
	err = wait.PollUntilContextCancel(ctx, confirmInterval, true, func(ctx context.Context) (bool, error) {
		_, err := nps.Get(ctx, o.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	if err != nil {
		return fmt.Errorf("confirm NetworkPolicy %s/%s is gone: %w", o.Namespace, o.Name, err)
	}
	i.log.Info("partition policy deleted", "policy", o.Namespace+"/"+o.Name)
	return nil
}

// unlabel removes the partition label from one pod if it carries this
// fault's value. The JSON patch tests the value first, so a label another
// command put meanwhile is never removed.
func (i *Injector) unlabel(ctx context.Context, o schemas.ObjectRef, d RevertData) error {
	pods := i.kube.CoreV1().Pods(o.Namespace)
	path := "/metadata/labels/" + escapeJSONPointer(d.LabelKey)
	patch, err := json.Marshal([]map[string]any{
		{"op": "test", "path": path, "value": d.LabelValue},
		{"op": "remove", "path": path},
	})
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		pod, err := pods.Get(ctx, o.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("pod %s/%s: %w", o.Namespace, o.Name, err)
		}
		if pod.Labels[d.LabelKey] != d.LabelValue {
			return nil // never labelled, already unlabelled, or someone else's
		}
		_, err = pods.Patch(ctx, o.Name, types.JSONPatchType, patch, metav1.PatchOptions{})
		switch {
		case err == nil, apierrors.IsNotFound(err):
			return nil
		case attempt < 3:
			// The test failed (the label changed since the Get) or a
			// transient error: look again.
			continue
		}
		return fmt.Errorf("pod %s/%s: %w", o.Namespace, o.Name, err)
	}
}

func escapeJSONPointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// forEach runs f for each object, parallelism at once.
func (i *Injector) forEach(ctx context.Context, objs []schemas.ObjectRef, f func(context.Context, schemas.ObjectRef) error) error {
	return injectors.ForEach(ctx, objs, i.cfg.Parallelism, f)
}
