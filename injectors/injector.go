// Package injectors defines the seam every fault type implements. Each fault
// (pod-kill, network-partition, resource-starvation) lives in its own
// package, registered in internal/roles; the guard rails every injector
// shares (allow-list, opt-in label, blast radius, signatures) and the
// crash-safe lifecycle (intent record in JetStream KV before the fault,
// revert at deadline, abort or restart) belong to the runner, not to each
// fault, so a fault type cannot skip them.
package injectors

import (
	"context"
	"encoding/json"

	"github.com/faultline/faultline/schemas"
)

// Injector applies one fault type to the cluster and reverts it.
type Injector interface {
	// Fault is the fault type handled, also the last token of its command
	// subject fl.fault.cmd.<cluster>.<fault>.
	Fault() schemas.FaultKind
	// Plan resolves the command's targets against the live cluster and
	// returns what Apply would change and how to undo it, changing nothing.
	// A dry run stops here.
	Plan(ctx context.Context, cmd *schemas.FaultCommand) (*Plan, error)
	// Apply makes the plan's changes. The runner calls it only after the
	// plan's Revert is durable in KV.
	Apply(ctx context.Context, p *Plan) error
	// Revert undoes a recorded fault. It must be idempotent: reverting what
	// is already reverted (or was never applied) succeeds.
	Revert(ctx context.Context, r *Revert) error
}

// Plan is what a command will do.
type Plan struct {
	Command *schemas.FaultCommand
	// Targets are the objects the fault affects.
	Targets []schemas.ObjectRef
	// Revert is recorded before Apply runs.
	Revert Revert
}

// Revert is the recorded way to undo one fault, kept in the faults KV
// bucket until the fault is reverted.
type Revert struct {
	Fault     schemas.FaultKind `json:"fault"`
	CommandID string            `json:"command_id"`
	// Objects created or changed by the fault.
	Objects []schemas.ObjectRef `json:"objects"`
	// Data holds what the fault type needs beyond the objects.
	Data json.RawMessage `json:"data,omitempty"`
}
