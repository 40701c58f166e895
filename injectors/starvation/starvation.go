// Package starvation is the resource-starvation fault: one stress pod per
// node of the target pods, pinned there with spec.nodeName, burns CPU
// (stress-ng --cpu) and/or holds memory (--vm) beside the targets. Revert
// deletes the stress pods.
package starvation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/faultline/faultline/injectors"
	"github.com/faultline/faultline/schemas"
)

// Name is the fault type.
const Name = schemas.FaultResourceStarvation

// Limits of one command's parameters.
const (
	MaxCPUWorkers  = 256
	MaxMemoryBytes = 1 << 40 // 1TiB
)

// Injector runs stress pods.
type Injector struct {
	kube    kubernetes.Interface
	log     *slog.Logger
	cfg     Config
	memCPU  resource.Quantity
	confirm time.Duration
}

var _ injectors.Injector = (*Injector)(nil)

// New returns a resource-starvation injector.
func New(d injectors.Deps, c Config) (*Injector, error) {
	log, err := d.Check(Name, c.Validate())
	if err != nil {
		return nil, err
	}
	return &Injector{
		kube:    d.Kube,
		log:     log,
		cfg:     c,
		memCPU:  resource.MustParse(c.MemoryOnlyCPU),
		confirm: 20 * time.Millisecond,
	}, nil
}

// Fault returns resource-starvation.
func (*Injector) Fault() schemas.FaultKind { return Name }

// Check validates the workers, the bytes and the image.
func (i *Injector) Check(cmd *schemas.FaultCommand) error {
	if cmd.Fault != Name {
		return fmt.Errorf("resource-starvation: command is for %q", cmd.Fault)
	}
	if cmd.PodKill != nil || cmd.NetworkPartition != nil {
		return errors.New("resource-starvation: command carries the parameters of another fault type")
	}
	if cmd.Duration < schemas.Duration(time.Second) {
		return fmt.Errorf("resource-starvation: duration must be at least 1s (got %s)", cmd.Duration)
	}
	p := cmd.ResourceStarvation
	if p == nil {
		return errors.New("resource-starvation: resource_starvation parameters are required")
	}
	var errs []error
	if p.CPUWorkers < 0 || p.CPUWorkers > MaxCPUWorkers {
		errs = append(errs, fmt.Errorf("cpu_workers: must be between 0 and %d (got %d)", MaxCPUWorkers, p.CPUWorkers))
	}
	if p.MemoryBytes < 0 || p.MemoryBytes > MaxMemoryBytes {
		errs = append(errs, fmt.Errorf("memory_bytes: must be between 0 and %d (got %d)", int64(MaxMemoryBytes), p.MemoryBytes))
	}
	if p.CPUWorkers == 0 && p.MemoryBytes == 0 {
		errs = append(errs, errors.New("cpu_workers, memory_bytes: set at least one"))
	}
	if p.Image != "" {
		if err := checkImage(p.Image); err != nil {
			errs = append(errs, fmt.Errorf("image: %w", err))
		} else if !i.cfg.imageAllowed(p.Image) {
			errs = append(errs, fmt.Errorf("image: %q is neither the configured image nor in allowed_images", p.Image))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("resource-starvation: %w", errors.Join(errs...))
	}
	return nil
}

// podPrefix starts the name of every stress pod.
const podPrefix = "faultline-stress-"

// PodName is the name of the stress pod of command id on the node with the
// given index (nodes sorted by name): the prefix, the id and the index when
// that makes a DNS label of at most 63 characters for any index up to 9999,
// else the prefix, 20 hex digits of the id's SHA-256 and the index. It is a
// function of the id and index alone, so the revert record written before
// Apply names every stress pod.
func PodName(commandID string, node int) string {
	base := podPrefix + commandID
	if commandID == "" || len(base)+5 > validation.DNS1123LabelMaxLength || len(validation.IsDNS1123Label(base)) > 0 {
		sum := sha256.Sum256([]byte(commandID))
		base = podPrefix + hex.EncodeToString(sum[:10])
	}
	return base + "-" + strconv.Itoa(node)
}

// StressPod is one stress pod of a plan.
type StressPod struct {
	Name string `json:"name"`
	Node string `json:"node"`
}

// RevertData is the Data of a resource-starvation revert record.
type RevertData struct {
	Pods []StressPod `json:"pods"`
}

// Plan places one stress pod on each node running a target. Targets not
// bound to a node yet are skipped (with a warning); none bound is an error.
func (i *Injector) Plan(_ context.Context, cmd *schemas.FaultCommand, targets []corev1.Pod) (*injectors.Plan, error) {
	if err := i.Check(cmd); err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		return nil, errors.New("resource-starvation: no target pods")
	}
	ns := cmd.Target.Namespace
	p := &injectors.Plan{Command: cmd}
	byNode := map[string][]string{}
	for k := range targets {
		t := &targets[k]
		if t.Namespace != ns {
			return nil, fmt.Errorf("resource-starvation: target pod %s/%s is outside the command's namespace %q", t.Namespace, t.Name, ns)
		}
		p.Targets = append(p.Targets, injectors.PodRef(t))
		if t.Spec.NodeName == "" {
			p.Warnings = append(p.Warnings, fmt.Sprintf("pod %s/%s is not bound to a node yet: skipped", t.Namespace, t.Name))
			continue
		}
		byNode[t.Spec.NodeName] = append(byNode[t.Spec.NodeName], t.Name)
	}
	if len(byNode) == 0 {
		return nil, errors.New("resource-starvation: no target pod is bound to a node")
	}
	var data RevertData
	for k, node := range slices.Sorted(maps.Keys(byNode)) {
		sp := StressPod{Name: PodName(cmd.ID, k), Node: node}
		data.Pods = append(data.Pods, sp)
		ref := schemas.ObjectRef{APIVersion: "v1", Kind: "Pod", Namespace: ns, Name: sp.Name}
		p.Affected = append(p.Affected, ref)
		pod := i.pod(cmd, sp)
		c := &pod.Spec.Containers[0]
		p.Steps = append(p.Steps, fmt.Sprintf("create pod %s/%s on node %s (beside %s) running %s %s with requests = limits cpu %s, memory %s; activeDeadlineSeconds %d",
			ns, sp.Name, node, strings.Join(byNode[node], ", "), c.Image, strings.Join(c.Args, " "),
			c.Resources.Limits.Cpu(), c.Resources.Limits.Memory(), *pod.Spec.ActiveDeadlineSeconds))
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("resource-starvation: %w", err)
	}
	p.Revert = injectors.Revert{
		Fault:     Name,
		CommandID: cmd.ID,
		Objects:   slices.Clone(p.Affected),
		Data:      raw,
	}
	for _, sp := range data.Pods {
		p.Revert.Steps = append(p.Revert.Steps, fmt.Sprintf("delete pod %s/%s with grace period 0s and confirm it is gone", ns, sp.Name))
	}
	return p, nil
}

// seconds rounds d up to whole seconds.
func seconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// args are stress-ng's arguments for p over d.
func args(p *schemas.ResourceStarvationParams, d time.Duration) []string {
	var a []string
	if p.CPUWorkers > 0 {
		a = append(a, "--cpu", strconv.Itoa(p.CPUWorkers))
	}
	if p.MemoryBytes > 0 {
		a = append(a, "--vm", "1", "--vm-bytes", strconv.FormatInt(p.MemoryBytes, 10), "--vm-keep")
	}
	return append(a, "--timeout", strconv.FormatInt(seconds(d), 10)+"s", "--temp-path", "/tmp", "--metrics-brief")
}

// pod is the stress pod sp of cmd.
func (i *Injector) pod(cmd *schemas.FaultCommand, sp StressPod) *corev1.Pod {
	p := cmd.ResourceStarvation
	image := i.cfg.Image
	if p.Image != "" {
		image = p.Image
	}
	cpu := i.memCPU.DeepCopy()
	if p.CPUWorkers > 0 {
		cpu = *resource.NewQuantity(int64(p.CPUWorkers), resource.DecimalSI)
	}
	mem := *resource.NewQuantity(p.MemoryBytes+int64(i.cfg.MemoryOverhead), resource.BinarySI)
	res := corev1.ResourceList{corev1.ResourceCPU: cpu, corev1.ResourceMemory: mem}
	uid := i.cfg.RunAsUser
	return &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      sp.Name,
			Namespace: cmd.Target.Namespace,
			Labels:    injectors.ObjectLabels(cmd),
		},
		Spec: corev1.PodSpec{
			NodeName:                      sp.Node,
			RestartPolicy:                 corev1.RestartPolicyNever,
			ActiveDeadlineSeconds:         new(seconds(cmd.Duration.Std()) + seconds(i.cfg.DeadlineSlack)),
			TerminationGracePeriodSeconds: new(int64(0)),
			AutomountServiceAccountToken:  new(false),
			EnableServiceLinks:            new(false),
			PriorityClassName:             i.cfg.PriorityClassName,
			Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   new(true),
				RunAsUser:      new(uid),
				RunAsGroup:     new(uid),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name:            "stress",
				Image:           image,
				ImagePullPolicy: corev1.PullPolicy(i.cfg.ImagePullPolicy),
				Command:         slices.Clone(i.cfg.Command),
				Args:            args(p, cmd.Duration.Std()),
				Resources:       corev1.ResourceRequirements{Requests: res, Limits: res.DeepCopy()},
				SecurityContext: &corev1.SecurityContext{
					RunAsNonRoot:             new(true),
					AllowPrivilegeEscalation: new(false),
					ReadOnlyRootFilesystem:   new(true),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
				VolumeMounts:             []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}},
				TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
			}},
			Volumes: []corev1.Volume{{
				Name:         "tmp",
				VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: new(resource.MustParse("16Mi"))}},
			}},
		},
	}
}

func revertData(r *injectors.Revert) (RevertData, error) {
	var d RevertData
	if len(r.Data) == 0 {
		return d, errors.New("resource-starvation: revert record has no data")
	}
	if err := json.Unmarshal(r.Data, &d); err != nil {
		return d, fmt.Errorf("resource-starvation: revert data: %w", err)
	}
	return d, nil
}

// Apply creates the stress pods. A pod of the same name made for the same
// command (a retried Apply) is kept; one made for anything else is an
// error.
func (i *Injector) Apply(ctx context.Context, p *injectors.Plan) error {
	if p == nil || p.Command == nil || p.Command.ResourceStarvation == nil {
		return errors.New("resource-starvation: plan without a resource-starvation command")
	}
	data, err := revertData(&p.Revert)
	if err != nil {
		return err
	}
	cmd := p.Command
	err = injectors.ForEach(ctx, data.Pods, parallelism, func(ctx context.Context, sp StressPod) error {
		pod := i.pod(cmd, sp)
		_, err := i.kube.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			got, gerr := i.kube.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
			switch {
			case gerr != nil:
				return fmt.Errorf("pod %s/%s exists: %w", pod.Namespace, pod.Name, gerr)
			case !i.ours(got, cmd.ID):
				return fmt.Errorf("pod %s/%s exists and is not this command's", pod.Namespace, pod.Name)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("create pod %s/%s on node %s: %w", pod.Namespace, pod.Name, sp.Node, err)
		}
		i.log.Info("stress pod created", "pod", pod.Namespace+"/"+pod.Name, "node", sp.Node)
		return nil
	})
	if err != nil {
		return fmt.Errorf("resource-starvation: %w", err)
	}
	return nil
}

func (*Injector) ours(p *corev1.Pod, commandID string) bool {
	return p.Labels[injectors.LabelManagedBy] == injectors.ManagedBy && p.Labels[injectors.LabelCommand] == injectors.LabelValue(commandID)
}

// Revert deletes every stress pod of the record with grace period 0 and
// returns once the API server no longer has them. A pod already gone is
// fine; a pod of that name that is not this command's is left alone.
func (i *Injector) Revert(ctx context.Context, r *injectors.Revert) error {
	if r == nil {
		return errors.New("resource-starvation: no revert record")
	}
	if r.Fault != "" && r.Fault != Name {
		return fmt.Errorf("resource-starvation: revert record is for %q", r.Fault)
	}
	var refs []schemas.ObjectRef
	for _, o := range r.Objects {
		if o.Kind == "Pod" {
			refs = append(refs, o)
		}
	}
	err := injectors.ForEach(ctx, refs, parallelism, func(ctx context.Context, o schemas.ObjectRef) error { return i.remove(ctx, o, r.CommandID) })
	if err != nil {
		return fmt.Errorf("resource-starvation: revert %s: %w", r.CommandID, err)
	}
	return nil
}

func (i *Injector) remove(ctx context.Context, o schemas.ObjectRef, commandID string) error {
	pods := i.kube.CoreV1().Pods(o.Namespace)
	got, err := pods.Get(ctx, o.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("pod %s/%s: %w", o.Namespace, o.Name, err)
	case !i.ours(got, commandID):
		i.log.Warn("a pod with a stress pod's name is not this command's: left alone", "pod", o.Namespace+"/"+o.Name, "command", commandID)
		return nil
	}
	uid := got.UID
	err = pods.Delete(ctx, o.Name, metav1.DeleteOptions{
		GracePeriodSeconds: new(int64(0)),
		Preconditions:      &metav1.Preconditions{UID: &uid},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete pod %s/%s: %w", o.Namespace, o.Name, err)
	}
	err = wait.PollUntilContextCancel(ctx, i.confirm, true, func(ctx context.Context) (bool, error) {
		p, err := pods.Get(ctx, o.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		return p.UID != uid, nil
	})
	if err != nil {
		return fmt.Errorf("confirm pod %s/%s is gone: %w", o.Namespace, o.Name, err)
	}
	i.log.Info("stress pod deleted", "pod", o.Namespace+"/"+o.Name)
	return nil
}

// parallelism bounds the API requests of one command; a command has one
// stress pod per node.
const parallelism = 10
