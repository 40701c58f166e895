package netpartition

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/faultline/faultline/schemas"
)

// policyPrefix starts the name of every partition NetworkPolicy.
const policyPrefix = "faultline-partition-"

// PolicyName is the name of the NetworkPolicy of command id: the prefix and
// the id when that makes a DNS label of at most 63 characters, else the
// prefix and 24 hex digits of the id's SHA-256. It is a function of the id
// alone, so the revert record written before Apply names it.
func PolicyName(commandID string) string {
	if n := policyPrefix + commandID; len(validation.IsDNS1123Label(n)) == 0 && commandID != "" {
		return n
	}
	sum := sha256.Sum256([]byte(commandID))
	return policyPrefix + hex.EncodeToString(sum[:12])
}

// namespaceNameLabel is set by the API server on every namespace to its
// name (since Kubernetes 1.21).
const namespaceNameLabel = corev1.LabelMetadataName

// checkParams validates network-partition parameters.
func checkParams(p *schemas.NetworkPartitionParams) error {
	if p == nil {
		return errors.New("network_partition: parameters are required")
	}
	var errs []error
	switch p.Direction {
	case schemas.DirectionIngress, schemas.DirectionEgress, schemas.DirectionBoth:
	default:
		errs = append(errs, fmt.Errorf("direction: %q is not ingress, egress or both", p.Direction))
	}
	if p.Peer != nil {
		errs = append(errs, checkPeer(p.Peer)...)
	}
	return errors.Join(errs...)
}

func checkPeer(peer *schemas.NetworkPeer) []error {
	var errs []error
	selectors := peer.NamespaceSelector != nil || peer.PodSelector != nil
	switch {
	case !selectors && len(peer.CIDRs) == 0:
		errs = append(errs, errors.New("peer: set namespace_selector and/or pod_selector, or cidrs (or leave the peer out to cut the targets from everything)"))
	case selectors && len(peer.CIDRs) > 0:
		// NetworkPolicy rules add up: "everything outside the CIDRs" as an
		// ipBlock would allow the peer pods again wherever the CNI matches
		// pod IPs with ipBlocks, so the two cannot be combined in one cut.
		errs = append(errs, errors.New("peer: set either selectors or cidrs, not both: NetworkPolicy allows add up, so the two cannot be cut together; issue one command per peer"))
	}
	for name, sel := range map[string]*metav1.LabelSelector{"peer.namespace_selector": peer.NamespaceSelector, "peer.pod_selector": peer.PodSelector} {
		if sel == nil {
			continue
		}
		if _, err := metav1.LabelSelectorAsSelector(sel); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	for i, c := range peer.CIDRs {
		if _, err := parseCIDR(c); err != nil {
			errs = append(errs, fmt.Errorf("peer.cidrs[%d]: %w", i, err))
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errs
}

// parseCIDR accepts a canonical IPv4 or IPv6 prefix that is not the whole
// address space.
func parseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return p, fmt.Errorf("%q is not a CIDR: %w", s, err)
	}
	if p.Addr().Is4In6() {
		return p, fmt.Errorf("%q is an IPv4-mapped IPv6 prefix: write the IPv4 prefix", s)
	}
	if p.Masked() != p {
		return p, fmt.Errorf("%q has host bits set: did you mean %s?", s, p.Masked())
	}
	if p.Bits() == 0 {
		return p, fmt.Errorf("%q is every address: leave the peer out to cut the targets from everything", s)
	}
	return p, nil
}

// policy builds the NetworkPolicy of a partition: it selects the pods
// labelled key=value and, for each direction cut, either allows nothing
// (no peer) or everything except the peer.
func policy(name, ns, key, value string, labels map[string]string, p *schemas.NetworkPartitionParams) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{key: value}},
		},
	}
	ingress := p.Direction == schemas.DirectionIngress || p.Direction == schemas.DirectionBoth
	egress := p.Direction == schemas.DirectionEgress || p.Direction == schemas.DirectionBoth
	var allowed []networkingv1.NetworkPolicyPeer
	if p.Peer != nil {
		allowed = allExcept(ns, p.Peer)
	}
	if ingress {
		np.Spec.PolicyTypes = append(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress)
		if len(allowed) > 0 {
			np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: allowed}}
		}
	}
	if egress {
		np.Spec.PolicyTypes = append(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
		if len(allowed) > 0 {
			np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{To: allowed}}
		}
	}
	return np
}

// allExcept lists NetworkPolicy peers that together allow everything but
// peer, as seen from a policy in namespace ns. For CIDRs: every address
// except them, per family. For selectors: every pod that is not a peer pod,
// by negating the selectors (NOT (a AND b) = NOT a OR NOT b, one
// NetworkPolicyPeer per negated requirement). Nothing outside the cluster
// is allowed then: ipBlocks matching pod IPs is implementation-defined.
func allExcept(ns string, peer *schemas.NetworkPeer) []networkingv1.NetworkPolicyPeer {
	if len(peer.CIDRs) > 0 {
		var v4, v6 []string
		for _, c := range peer.CIDRs {
			p, err := parseCIDR(c)
			if err != nil {
				continue // Check refused it
			}
			if p.Addr().Is4() {
				v4 = append(v4, p.String())
			} else {
				v6 = append(v6, p.String())
			}
		}
		return []networkingv1.NetworkPolicyPeer{
			{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: v4}},
			{IPBlock: &networkingv1.IPBlock{CIDR: "::/0", Except: v6}},
		}
	}
	var out []networkingv1.NetworkPolicyPeer
	nsSel := peer.NamespaceSelector
	if nsSel == nil {
		// The peer pods are in the policy's namespace: every pod of the
		// other namespaces is allowed.
		nsSel = &metav1.LabelSelector{MatchLabels: map[string]string{namespaceNameLabel: ns}}
	}
	for _, n := range negate(nsSel) {
		out = append(out, networkingv1.NetworkPolicyPeer{NamespaceSelector: n})
	}
	if peer.PodSelector != nil {
		for _, n := range negate(peer.PodSelector) {
			q := networkingv1.NetworkPolicyPeer{PodSelector: n}
			if peer.NamespaceSelector != nil {
				q.NamespaceSelector = peer.NamespaceSelector.DeepCopy()
			}
			out = append(out, q)
		}
	}
	return out
}

// negate returns selectors whose union is the complement of sel: one per
// requirement of sel, selecting what fails it. An empty selector (every
// object) has no complement: nil.
func negate(sel *metav1.LabelSelector) []*metav1.LabelSelector {
	var out []*metav1.LabelSelector
	one := func(r metav1.LabelSelectorRequirement) {
		out = append(out, &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{r}})
	}
	keys := make([]string, 0, len(sel.MatchLabels))
	for k := range sel.MatchLabels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		one(metav1.LabelSelectorRequirement{Key: k, Operator: metav1.LabelSelectorOpNotIn, Values: []string{sel.MatchLabels[k]}})
	}
	for _, r := range sel.MatchExpressions {
		n := metav1.LabelSelectorRequirement{Key: r.Key, Values: slices.Clone(r.Values)}
		switch r.Operator {
		case metav1.LabelSelectorOpIn:
			n.Operator = metav1.LabelSelectorOpNotIn
		case metav1.LabelSelectorOpNotIn:
			n.Operator = metav1.LabelSelectorOpIn
		case metav1.LabelSelectorOpExists:
			n.Operator = metav1.LabelSelectorOpDoesNotExist
		case metav1.LabelSelectorOpDoesNotExist:
			n.Operator = metav1.LabelSelectorOpExists
		default:
			continue // Check refused it
		}
		one(n)
	}
	return out
}

// describe says in words what the policy does to the targets.
func describe(p *schemas.NetworkPartitionParams) string {
	var dir string
	switch p.Direction {
	case schemas.DirectionIngress:
		dir = "ingress (traffic to the targets)"
	case schemas.DirectionEgress:
		dir = "egress (traffic from the targets, DNS included)"
	default:
		dir = "ingress and egress"
	}
	if p.Peer == nil {
		return "deny all " + dir
	}
	if len(p.Peer.CIDRs) > 0 {
		return fmt.Sprintf("cut %s with %s, allow every other address", dir, strings.Join(p.Peer.CIDRs, ", "))
	}
	var who string
	switch ps, ns := p.Peer.PodSelector, p.Peer.NamespaceSelector; {
	case ps != nil && ns != nil:
		who = fmt.Sprintf("pods matching %s in namespaces matching %s", selString(ps), selString(ns))
	case ps != nil:
		who = fmt.Sprintf("pods matching %s in the targets' namespace", selString(ps))
	default:
		who = fmt.Sprintf("every pod in namespaces matching %s", selString(ns))
	}
	return fmt.Sprintf("cut %s with %s, allow every other pod of the cluster; traffic with addresses outside the cluster is cut too", dir, who)
}

func selString(s *metav1.LabelSelector) string {
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return "(invalid selector)"
	}
	if sel.Empty() {
		return "{} (everything)"
	}
	return "{" + sel.String() + "}"
}
