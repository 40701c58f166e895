package schemas

import (
	"encoding/json"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FaultKind is a type of fault; it is also the last token of the command
// subject, so each injector subscribes to its own.
type FaultKind string

// Fault kinds.
const (
	FaultPodKill            FaultKind = "pod-kill"
	FaultNetworkPartition   FaultKind = "network-partition"
	FaultResourceStarvation FaultKind = "resource-starvation"
)

// ModeType is how many of the matching pods a fault takes.
type ModeType string

// Modes: one pod, Value pods, or Value percent of the matching pods.
const (
	ModeOne     ModeType = "one"
	ModeCount   ModeType = "count"
	ModePercent ModeType = "percent"
)

// Mode selects how many targets a fault affects; Value is the count (≥ 1)
// or the percentage (1–100) and absent for ModeOne.
type Mode struct {
	Type  ModeType `json:"type"`
	Value int      `json:"value,omitempty"`
}

// Target is the pods a fault may affect: a namespace and either a label
// selector or explicit pod names, never both.
type Target struct {
	Namespace string                `json:"namespace"`
	Selector  *metav1.LabelSelector `json:"selector,omitempty"`
	Names     []string              `json:"names,omitempty"`
}

// PodKillParams tune pod-kill. Pods are deleted with the grace period (0
// allowed: immediate); with an interval they are killed again every interval
// until the duration ends.
type PodKillParams struct {
	GracePeriodSeconds *int64   `json:"grace_period_seconds,omitempty"`
	Interval           Duration `json:"interval,omitempty"`
}

// Direction is which traffic a network partition cuts.
type Direction string

// Directions.
const (
	DirectionIngress Direction = "ingress"
	DirectionEgress  Direction = "egress"
	DirectionBoth    Direction = "both"
)

// NetworkPartitionParams tune network-partition, applied as NetworkPolicies.
// Without a peer the targets are cut from everything; with one, only from
// the peer's pods or networks.
type NetworkPartitionParams struct {
	Direction Direction    `json:"direction"`
	Peer      *NetworkPeer `json:"peer,omitempty"`
}

// NetworkPeer is the other side of a partition: pods by namespace and pod
// selector, and/or CIDRs (nodes or network segments).
type NetworkPeer struct {
	NamespaceSelector *metav1.LabelSelector `json:"namespace_selector,omitempty"`
	PodSelector       *metav1.LabelSelector `json:"pod_selector,omitempty"`
	CIDRs             []string              `json:"cidrs,omitempty"`
}

// ResourceStarvationParams tune resource-starvation: stress pods on the
// targets' nodes burning CPUWorkers CPUs and/or holding MemoryBytes. Image
// overrides the injector's configured stress image.
type ResourceStarvationParams struct {
	CPUWorkers  int    `json:"cpu_workers,omitempty"`
	MemoryBytes int64  `json:"memory_bytes,omitempty"`
	Image       string `json:"image,omitempty"`
}

// FaultCommand asks the injectors to apply one fault. It is signed by its
// issuer (see SigningPayload); injectors refuse unsigned, forged, expired or
// replayed commands with a refused FaultStatus.
type FaultCommand struct {
	// ID is unique per command (a replayed id is refused).
	ID string `json:"id"`
	// ExperimentID names the experiment run; it is a subject token.
	ExperimentID string    `json:"experiment_id"`
	Fault        FaultKind `json:"fault"`
	Target       Target    `json:"target"`
	Mode         Mode      `json:"mode"`
	// Duration is how long the fault lasts; it is reverted at
	// applied time + Duration at the latest.
	Duration Duration `json:"duration"`
	// Exactly the parameters of Fault may be set (pod-kill's are optional).
	PodKill            *PodKillParams            `json:"pod_kill,omitempty"`
	NetworkPartition   *NetworkPartitionParams   `json:"network_partition,omitempty"`
	ResourceStarvation *ResourceStarvationParams `json:"resource_starvation,omitempty"`
	// DryRun resolves targets and checks every guard but changes nothing.
	DryRun   bool      `json:"dry_run"`
	IssuedAt time.Time `json:"issued_at"`
	// ExpiresAt is when an unapplied command goes stale.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// HeartbeatTimeout arms the dead-man switch: the fault is reverted if
	// the experiment's heartbeat stops for this long.
	HeartbeatTimeout Duration `json:"heartbeat_timeout,omitempty"`
	// Issuer identifies the signing key (e.g. an NKey public key).
	Issuer string `json:"issuer"`
	// Signature is the base64url (unpadded) ed25519 signature of
	// SigningPayload.
	Signature string `json:"signature,omitempty"`
}

// SigningDomain prefixes every signed payload, so a signature over a command
// can never be passed off as one over anything else.
const SigningDomain = "faultline.fault.command.v1\n"

// SigningPayload is what the issuer signs and the injector verifies:
// SigningDomain followed by the command's JSON without its signature.
// encoding/json writes struct fields in declaration order and map keys
// sorted, and a command decoded from its JSON re-encodes to the same bytes,
// so signer and verifier compute the same payload from the struct.
func (c *FaultCommand) SigningPayload() ([]byte, error) {
	unsigned := *c
	unsigned.Signature = ""
	b, err := json.Marshal(&unsigned)
	if err != nil {
		return nil, fmt.Errorf("fault command signing payload: %w", err)
	}
	return append([]byte(SigningDomain), b...), nil
}

// FaultPhase is a step in a fault's life.
type FaultPhase string

// Phases, in the order a fault normally goes through them. Refused, Planned
// (the outcome of a dry run), Failed, RevertFailed and Expired end a fault
// early or abnormally.
const (
	PhaseAccepted     FaultPhase = "accepted"
	PhaseRefused      FaultPhase = "refused"
	PhasePlanned      FaultPhase = "planned"
	PhaseApplied      FaultPhase = "applied"
	PhaseReverted     FaultPhase = "reverted"
	PhaseRevertFailed FaultPhase = "revert-failed"
	PhaseFailed       FaultPhase = "failed"
	PhaseExpired      FaultPhase = "expired"
)

// ObjectRef names a Kubernetes object a fault touched.
type ObjectRef struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
	UID        string `json:"uid,omitempty"`
}

// String is "Kind namespace/name", for messages.
func (o ObjectRef) String() string {
	if o.Namespace == "" {
		return o.Kind + " " + o.Name
	}
	return o.Kind + " " + o.Namespace + "/" + o.Name
}

// FaultStatus reports one step of a command's fault.
type FaultStatus struct {
	ID           string     `json:"id"`
	CommandID    string     `json:"command_id"`
	ExperimentID string     `json:"experiment_id"`
	Fault        FaultKind  `json:"fault"`
	Phase        FaultPhase `json:"phase"`
	// Reason says why, for refused, failed, revert-failed and expired.
	Reason string `json:"reason,omitempty"`
	// ReasonCode is a short token for counting refusals by cause, e.g.
	// "unsigned" or "namespace-not-allowed".
	ReasonCode string `json:"reason_code,omitempty"`
	// Affected lists the objects the fault changed (or would, when planned):
	// killed pods, created NetworkPolicies or stress pods.
	Affected []ObjectRef `json:"affected,omitempty"`
	// RevertRef is the key of the fault's revert record in JetStream KV.
	RevertRef string `json:"revert_ref,omitempty"`
	// RevertSteps describe how the fault is (or would be) reverted.
	RevertSteps []string `json:"revert_steps,omitempty"`
	// Warnings are conditions that may make the fault weaker than asked,
	// e.g. another NetworkPolicy that already allows the traffic.
	Warnings []string `json:"warnings,omitempty"`
	// Injector is the injector replica that reports.
	Injector string `json:"injector,omitempty"`
	DryRun   bool   `json:"dry_run,omitempty"`
	// Deadline is when the fault will be reverted at the latest.
	Deadline *time.Time `json:"deadline,omitempty"`
	Time     time.Time  `json:"time"`
}

// IDPrefixFaultStatus prefixes fault status ids.
const IDPrefixFaultStatus = "fstatus"

// NewFaultStatus starts the status of cmd entering phase at time at. Its id
// derives from the command, phase and time, so re-publishing the same
// status is deduplicated.
func NewFaultStatus(cmd *FaultCommand, phase FaultPhase, at time.Time) *FaultStatus {
	at = at.UTC()
	return &FaultStatus{
		ID:           DeriveID(IDPrefixFaultStatus, cmd.ID, string(phase), at.Format(time.RFC3339Nano)),
		CommandID:    cmd.ID,
		ExperimentID: cmd.ExperimentID,
		Fault:        cmd.Fault,
		Phase:        phase,
		DryRun:       cmd.DryRun,
		Time:         at,
	}
}

// FaultAbort orders every injector to revert the faults of one experiment,
// or of all experiments, at once. Reverting is always safe, so an abort need
// not be signed; a signature, if present, covers the same fields.
type FaultAbort struct {
	ID string `json:"id"`
	// ExperimentID is the experiment to abort; empty when All is set.
	ExperimentID string    `json:"experiment_id,omitempty"`
	All          bool      `json:"all,omitempty"`
	Reason       string    `json:"reason"`
	IssuedAt     time.Time `json:"issued_at"`
	Issuer       string    `json:"issuer,omitempty"`
	Signature    string    `json:"signature,omitempty"`
}

// Matches reports whether the abort applies to faults of experimentID.
func (a *FaultAbort) Matches(experimentID string) bool {
	return a.All || (a.ExperimentID != "" && a.ExperimentID == experimentID)
}
