package schemas

import (
	"fmt"
	"regexp"
	"time"
)

var keyTokenRE = regexp.MustCompile(`^[A-Za-z0-9_=-]{1,256}$`)

// ValidKeyToken reports whether s is a keyToken: 1–256 of [A-Za-z0-9_=-],
// valid as a subject token and a JetStream KV key (command and experiment
// ids are).
func ValidKeyToken(s string) bool { return keyTokenRE.MatchString(s) }

// Command builds the unsigned fault command of method step i: the step's
// fault, mode, duration and parameters, aimed at the experimental group
// (its namespace; its selector ANDed with the step's), with the
// experiment's heartbeat timeout. id and experimentID must be keyTokens;
// the caller sets ExpiresAt and DryRun if it wants them, and signs the
// command (which sets Issuer and Signature). Nothing in the returned
// command aliases the experiment.
func (e *Experiment) Command(i int, id, experimentID string, issuedAt time.Time) (*FaultCommand, error) {
	if i < 0 || i >= len(e.Method) {
		return nil, fmt.Errorf("experiment %s: no method step %d (it has %d)", e.Name, i, len(e.Method))
	}
	if !ValidKeyToken(id) {
		return nil, fmt.Errorf("experiment %s: command id %q is not a key token ([A-Za-z0-9_=-], 1-256)", e.Name, id)
	}
	if !ValidKeyToken(experimentID) {
		return nil, fmt.Errorf("experiment %s: experiment id %q is not a key token ([A-Za-z0-9_=-], 1-256)", e.Name, experimentID)
	}
	st := &e.Method[i]
	sel, err := narrowSelector(e.Groups.Experimental.Selector, st.Selector)
	if err != nil {
		return nil, fmt.Errorf("experiment %s: method[%d].selector: %w", e.Name, i, err)
	}
	mode := st.Mode
	if mode.Type == "" {
		mode.Type = ModeOne
	}
	cmd := &FaultCommand{
		ID:               id,
		ExperimentID:     experimentID,
		Fault:            st.Fault,
		Target:           Target{Namespace: e.Groups.Experimental.Namespace, Selector: sel},
		Mode:             mode,
		Duration:         st.Duration,
		IssuedAt:         issuedAt.UTC(),
		HeartbeatTimeout: e.HeartbeatTimeout,
	}
	switch st.Fault {
	case FaultPodKill:
		if st.PodKill != nil {
			pk := *st.PodKill
			if pk.GracePeriodSeconds != nil {
				g := *pk.GracePeriodSeconds
				pk.GracePeriodSeconds = &g
			}
			cmd.PodKill = &pk
		}
	case FaultNetworkPartition:
		if st.NetworkPartition != nil {
			np := *st.NetworkPartition
			if p := np.Peer; p != nil {
				peer := NetworkPeer{
					NamespaceSelector: p.NamespaceSelector.DeepCopy(),
					PodSelector:       p.PodSelector.DeepCopy(),
				}
				if p.CIDRs != nil {
					peer.CIDRs = append([]string(nil), p.CIDRs...)
				}
				np.Peer = &peer
			}
			cmd.NetworkPartition = &np
		}
	case FaultResourceStarvation:
		if st.ResourceStarvation != nil {
			rs := *st.ResourceStarvation
			cmd.ResourceStarvation = &rs
		}
	}
	return cmd, nil
}
