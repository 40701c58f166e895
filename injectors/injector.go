// Package injectors defines the seam every fault type implements. Each fault
// (pod-kill, network-partition, resource-starvation) lives in its own
// package, registered in internal/roles; the guard rails every injector
// shares (allow-list, opt-in label, blast radius, signatures; package
// injectors/guard) and the crash-safe lifecycle (intent record in JetStream
// KV before the fault, revert at deadline, abort or restart; package
// injectors/runner) belong to the runner, not to each fault, so a fault type
// cannot skip them.
package injectors

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

	"github.com/faultline/faultline/schemas"
)

// Injector applies one fault type to the cluster and reverts it.
type Injector interface {
	// Fault is the fault type handled, also the last token of its command
	// subject fl.fault.cmd.<cluster>.<fault>.
	Fault() schemas.FaultKind
	// Check validates the command's fault parameters without the cluster,
	// so a malformed command is refused before anything is resolved.
	Check(cmd *schemas.FaultCommand) error
	// Plan decides what Apply will change on targets (the pods the guard
	// rails selected) and how to undo it, changing nothing. A dry run stops
	// here. The plan's Revert must name every object Apply may create, so a
	// crash in the middle of Apply is still reverted.
	Plan(ctx context.Context, cmd *schemas.FaultCommand, targets []corev1.Pod) (*Plan, error)
	// Apply makes the plan's changes. The runner calls it only after the
	// plan's Revert is durable in KV. On error the runner reverts the plan.
	Apply(ctx context.Context, p *Plan) error
	// Revert undoes a recorded fault and returns once the API server
	// confirms it (objects gone, labels removed). It must be idempotent:
	// reverting what is already reverted, or was never applied, succeeds.
	Revert(ctx context.Context, r *Revert) error
}

// Repeater is implemented by faults that act again during their duration
// (pod-kill with an interval). The runner re-selects targets through the
// guard rails and calls Plan and Apply again every Interval until the
// deadline.
type Repeater interface {
	Interval(cmd *schemas.FaultCommand) time.Duration
}

// Deps is what every injector gets from the runtime.
type Deps struct {
	// Kube talks to the watched cluster's API server as the injector's
	// identity.
	Kube kubernetes.Interface
	Log  *slog.Logger
}

// Plan is what a command will do.
type Plan struct {
	Command *schemas.FaultCommand
	// Targets are the pods the fault acts on.
	Targets []schemas.ObjectRef
	// Affected are the objects Apply changes: killed pods, created
	// NetworkPolicies or stress pods, relabelled pods.
	Affected []schemas.ObjectRef
	// Steps say in words what Apply does, for dry runs and statuses.
	Steps []string
	// Warnings are conditions that may make the fault less effective than
	// asked, e.g. another NetworkPolicy already allowing the traffic.
	Warnings []string
	// Revert is recorded before Apply runs.
	Revert Revert
}

// Revert is the recorded way to undo one fault, kept in the faults KV
// bucket until the fault is reverted.
type Revert struct {
	Fault     schemas.FaultKind `json:"fault"`
	CommandID string            `json:"command_id"`
	// Objects created or changed by the fault.
	Objects []schemas.ObjectRef `json:"objects,omitempty"`
	// Steps say in words what Revert does.
	Steps []string `json:"steps,omitempty"`
	// Data holds what the fault type needs beyond the objects.
	Data json.RawMessage `json:"data,omitempty"`
}

// PodRef names a pod for plans and statuses.
func PodRef(p *corev1.Pod) schemas.ObjectRef {
	return schemas.ObjectRef{APIVersion: "v1", Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: string(p.UID)}
}

// Labels Faultline puts on what it creates, so people and the reconciler
// can find every object of a fault.
const (
	// LabelManagedBy is app.kubernetes.io/managed-by=faultline.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedBy      = "faultline"
	// LabelCommand holds the fault command id.
	LabelCommand = "faultline.io/fault-command"
	// LabelExperiment holds the experiment id.
	LabelExperiment = "faultline.io/experiment"
	// LabelFault holds the fault type.
	LabelFault = "faultline.io/fault"
)

// ObjectLabels are the labels of an object created for cmd.
func ObjectLabels(cmd *schemas.FaultCommand) map[string]string {
	return map[string]string{
		LabelManagedBy:  ManagedBy,
		LabelCommand:    LabelValue(cmd.ID),
		LabelExperiment: LabelValue(cmd.ExperimentID),
		LabelFault:      string(cmd.Fault),
	}
}

// LabelValue makes s usable as a label value (at most 63 characters of
// [A-Za-z0-9_.-], starting and ending alphanumeric): s itself when it is,
// else "h" followed by 40 hex digits of its SHA-256, so a long or unusual
// command id still yields a stable, unique value.
func LabelValue(s string) string {
	if len(validation.IsValidLabelValue(s)) == 0 && s != "" {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return "h" + hex.EncodeToString(sum[:20])
}

type experimentKey struct{}

// WithExperiment marks ctx as acting for an experiment; the injector's API
// client adds "faultline-experiment/<id>" to the User-Agent of requests made
// with it, so the analyzers know which experiment a request belongs to
// (chaos awareness) and the audit log says so too.
func WithExperiment(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, experimentKey{}, id)
}

// ExperimentFrom returns the experiment ctx acts for, if any.
func ExperimentFrom(ctx context.Context) string {
	id, _ := ctx.Value(experimentKey{}).(string)
	return id
}

// UserAgentMarker precedes the experiment id in the User-Agent; it is the
// analyzers' default experiment_user_agent_marker.
const UserAgentMarker = "faultline-experiment/"

// ExperimentTransport wraps an API client's transport to add the
// experiment of each request's context to its User-Agent.
func ExperimentTransport(rt http.RoundTripper) http.RoundTripper {
	return experimentRT{rt}
}

type experimentRT struct{ next http.RoundTripper }

func (e experimentRT) RoundTrip(req *http.Request) (*http.Response, error) {
	id := ExperimentFrom(req.Context())
	if id == "" {
		return e.next.RoundTrip(req)
	}
	req = req.Clone(req.Context())
	req.Header.Set("User-Agent", strings.TrimSpace(req.Header.Get("User-Agent")+" "+UserAgentMarker+id))
	return e.next.RoundTrip(req)
}

// Check is the start of every fault type's New: it refuses a configuration
// with problems (each from the type's Config.Validate) and deps without an
// API client, and returns the logger the fault type logs with.
func (d Deps) Check(fault schemas.FaultKind, problems []error) (*slog.Logger, error) {
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s config: %w", fault, errors.Join(problems...))
	}
	if d.Kube == nil {
		return nil, fmt.Errorf("%s: no Kubernetes client", fault)
	}
	log := d.Log
	if log == nil {
		log = slog.Default()
	}
	return log.With("fault", string(fault)), nil
}
