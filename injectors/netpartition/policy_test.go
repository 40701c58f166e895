package netpartition

import (
	"reflect"
	"strings"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/faultline/faultline/schemas"
)

func TestPolicyName(t *testing.T) {
	long := strings.Repeat("a", 44)
	for _, tc := range []struct {
		id, want string
	}{
		{"cmd-1", "faultline-partition-cmd-1"},
		{"0190c3f4-7a51-7b39-9d0f-2f1d6c6d2a11", "faultline-partition-0190c3f4-7a51-7b39-9d0f-2f1d6c6d2a11"},
		{long[:43], "faultline-partition-" + long[:43]},
		{long, ""},                           // 64 characters: hashed
		{"Cmd_01", ""},                       // not a DNS label: hashed
		{"", ""},                             // hashed
		{"cmd.1", ""},                        // dots are not in DNS labels
		{"-cmd", "faultline-partition--cmd"}, // must start alphanumeric
	} {
		got := PolicyName(tc.id)
		if len(validation.IsDNS1123Label(got)) > 0 {
			t.Errorf("PolicyName(%q) = %q is not a DNS label", tc.id, got)
		}
		if tc.want != "" && got != tc.want {
			t.Errorf("PolicyName(%q) = %q, want %q", tc.id, got, tc.want)
		}
		if tc.want == "" && len(got) != len(policyPrefix)+24 {
			t.Errorf("PolicyName(%q) = %q, want the prefix and 24 hex digits", tc.id, got)
		}
		if PolicyName(tc.id) != got {
			t.Errorf("PolicyName(%q) is not stable", tc.id)
		}
	}
	if PolicyName("Cmd_01") == PolicyName("Cmd_02") {
		t.Error("two ids hash to the same name")
	}
}

func sel(ml map[string]string, exprs ...metav1.LabelSelectorRequirement) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: ml, MatchExpressions: exprs}
}

func req(k string, op metav1.LabelSelectorOperator, v ...string) metav1.LabelSelectorRequirement {
	return metav1.LabelSelectorRequirement{Key: k, Operator: op, Values: v}
}

func TestCheckParams(t *testing.T) {
	both := schemas.DirectionBoth
	for _, tc := range []struct {
		name string
		p    *schemas.NetworkPartitionParams
		want []string // substrings of the error, none for no error
	}{
		{"missing", nil, []string{"parameters are required"}},
		{"ingress", &schemas.NetworkPartitionParams{Direction: schemas.DirectionIngress}, nil},
		{"egress", &schemas.NetworkPartitionParams{Direction: schemas.DirectionEgress}, nil},
		{"both", &schemas.NetworkPartitionParams{Direction: both}, nil},
		{"no direction", &schemas.NetworkPartitionParams{}, []string{`direction: "" is not`}},
		{"bad direction", &schemas.NetworkPartitionParams{Direction: "sideways"}, []string{`direction: "sideways"`}},
		{"empty peer", &schemas.NetworkPartitionParams{Direction: both, Peer: &schemas.NetworkPeer{}}, []string{"peer: set namespace_selector"}},
		{"pod peer", &schemas.NetworkPartitionParams{Direction: both, Peer: &schemas.NetworkPeer{PodSelector: sel(map[string]string{"app": "db"})}}, nil},
		{"empty pod selector", &schemas.NetworkPartitionParams{Direction: both, Peer: &schemas.NetworkPeer{PodSelector: sel(nil)}}, nil},
		{"namespace peer", &schemas.NetworkPartitionParams{Direction: both, Peer: &schemas.NetworkPeer{NamespaceSelector: sel(nil, req("env", metav1.LabelSelectorOpIn, "prod"))}}, nil},
		{"bad operator", &schemas.NetworkPartitionParams{Direction: both, Peer: &schemas.NetworkPeer{PodSelector: sel(nil, req("app", "Like", "db"))}}, []string{"peer.pod_selector: "}},
		{"In without values", &schemas.NetworkPartitionParams{Direction: both, Peer: &schemas.NetworkPeer{NamespaceSelector: sel(nil, req("env", metav1.LabelSelectorOpIn))}}, []string{"peer.namespace_selector: "}},
		{"bad label", &schemas.NetworkPartitionParams{Direction: both, Peer: &schemas.NetworkPeer{PodSelector: sel(map[string]string{"a b": "c"})}}, []string{"peer.pod_selector: "}},
		{"cidrs", &schemas.NetworkPartitionParams{Direction: both, Peer: &schemas.NetworkPeer{CIDRs: []string{"10.0.0.0/8", "192.168.1.7/32", "fd00::/8"}}}, nil},
		{"host bits", &schemas.NetworkPartitionParams{Direction: both, Peer: &schemas.NetworkPeer{CIDRs: []string{"10.0.0.1/8"}}}, []string{"peer.cidrs[0]: ", "did you mean 10.0.0.0/8"}},
		{"not a cidr", &schemas.NetworkPartitionParams{Direction: both, Peer: &schemas.NetworkPeer{CIDRs: []string{"10.0.0.0/8", "10.0.0.0"}}}, []string{"peer.cidrs[1]: "}},
		{"whole v4", &schemas.NetworkPartitionParams{Direction: both, Peer: &schemas.NetworkPeer{CIDRs: []string{"0.0.0.0/0"}}}, []string{"every address"}},
		{"whole v6", &schemas.NetworkPartitionParams{Direction: both, Peer: &schemas.NetworkPeer{CIDRs: []string{"::/0"}}}, []string{"every address"}},
		{"4in6", &schemas.NetworkPartitionParams{Direction: both, Peer: &schemas.NetworkPeer{CIDRs: []string{"::ffff:10.0.0.0/104"}}}, []string{"IPv4-mapped"}},
		{"selectors and cidrs", &schemas.NetworkPartitionParams{Direction: both, Peer: &schemas.NetworkPeer{PodSelector: sel(map[string]string{"app": "db"}), CIDRs: []string{"10.0.0.0/8"}}}, []string{"not both"}},
		{"every error", &schemas.NetworkPartitionParams{Direction: "x", Peer: &schemas.NetworkPeer{PodSelector: sel(nil, req("a", "Like")), CIDRs: []string{"nope"}}},
			[]string{"direction: ", "peer.pod_selector: ", "peer.cidrs[0]: ", "not both"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkParams(tc.p)
			if len(tc.want) == 0 {
				if err != nil {
					t.Errorf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestNegate(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   *metav1.LabelSelector
		want []*metav1.LabelSelector
	}{
		{"empty", sel(nil), nil},
		{"match labels, sorted", sel(map[string]string{"tier": "db", "app": "shop"}), []*metav1.LabelSelector{
			sel(nil, req("app", metav1.LabelSelectorOpNotIn, "shop")),
			sel(nil, req("tier", metav1.LabelSelectorOpNotIn, "db")),
		}},
		{"every operator", sel(nil,
			req("a", metav1.LabelSelectorOpIn, "1", "2"),
			req("b", metav1.LabelSelectorOpNotIn, "3"),
			req("c", metav1.LabelSelectorOpExists),
			req("d", metav1.LabelSelectorOpDoesNotExist),
		), []*metav1.LabelSelector{
			sel(nil, req("a", metav1.LabelSelectorOpNotIn, "1", "2")),
			sel(nil, req("b", metav1.LabelSelectorOpIn, "3")),
			sel(nil, req("c", metav1.LabelSelectorOpDoesNotExist)),
			sel(nil, req("d", metav1.LabelSelectorOpExists)),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := negate(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("negate = %v, want %v", got, tc.want)
			}
		})
	}
}

// A small cluster to evaluate NetworkPolicy peers on.
type testPod struct {
	ns     string
	labels map[string]string
}

var (
	testNamespaces = map[string]map[string]string{
		"own":    {namespaceNameLabel: "own", "env": "prod", "team": "a"},
		"prod-b": {namespaceNameLabel: "prod-b", "env": "prod", "team": "b"},
		"dev":    {namespaceNameLabel: "dev", "env": "dev"},
		"bare":   {namespaceNameLabel: "bare"},
	}
	podLabelSets = []map[string]string{
		{}, {"app": "db"}, {"app": "web"}, {"app": "db", "tier": "x"}, {"tier": "x"}, {"app": "cache", "tier": "y"},
	}
)

func testPods() []testPod {
	var out []testPod
	for ns := range testNamespaces {
		for _, l := range podLabelSets {
			out = append(out, testPod{ns: ns, labels: l})
		}
	}
	return out
}

func matches(t *testing.T, s *metav1.LabelSelector, l map[string]string) bool {
	t.Helper()
	ls, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		t.Fatalf("selector %v: %v", s, err)
	}
	return ls.Matches(labels.Set(l))
}

// selectedBy evaluates a NetworkPolicyPeer (without ipBlock) as the
// NetworkPolicy API defines it, for a policy in namespace ns.
func selectedBy(t *testing.T, ns string, q networkingv1.NetworkPolicyPeer, p testPod) bool {
	switch {
	case q.NamespaceSelector == nil:
		return p.ns == ns && matches(t, q.PodSelector, p.labels)
	case q.PodSelector == nil:
		return matches(t, q.NamespaceSelector, testNamespaces[p.ns])
	default:
		return matches(t, q.NamespaceSelector, testNamespaces[p.ns]) && matches(t, q.PodSelector, p.labels)
	}
}

// inPeer evaluates a partition peer: pods matching the pod selector (all
// when absent) in namespaces matching the namespace selector (the
// policy's own when absent).
func inPeer(t *testing.T, ns string, peer *schemas.NetworkPeer, p testPod) bool {
	if peer.NamespaceSelector == nil {
		if p.ns != ns {
			return false
		}
	} else if !matches(t, peer.NamespaceSelector, testNamespaces[p.ns]) {
		return false
	}
	return peer.PodSelector == nil || matches(t, peer.PodSelector, p.labels)
}

// The peers allExcept returns allow exactly the pods outside the peer, for
// every combination of selectors over a small cluster.
func TestAllExceptIsTheComplement(t *testing.T) {
	selectors := []*metav1.LabelSelector{
		nil,
		sel(nil),
		sel(map[string]string{"app": "db"}),
		sel(map[string]string{"app": "db", "tier": "x"}),
		sel(nil, req("app", metav1.LabelSelectorOpIn, "db", "web")),
		sel(nil, req("app", metav1.LabelSelectorOpNotIn, "db")),
		sel(nil, req("tier", metav1.LabelSelectorOpExists)),
		sel(nil, req("tier", metav1.LabelSelectorOpDoesNotExist)),
		sel(map[string]string{"app": "cache"}, req("tier", metav1.LabelSelectorOpNotIn, "x")),
	}
	nsSelectors := []*metav1.LabelSelector{
		nil,
		sel(nil),
		sel(map[string]string{"env": "prod"}),
		sel(map[string]string{"env": "prod", "team": "b"}),
		sel(nil, req("env", metav1.LabelSelectorOpNotIn, "dev")),
		sel(nil, req("env", metav1.LabelSelectorOpDoesNotExist)),
		sel(nil, req(namespaceNameLabel, metav1.LabelSelectorOpIn, "dev", "bare")),
	}
	pods := testPods()
	cases := 0
	for _, nsSel := range nsSelectors {
		for _, podSel := range selectors {
			if nsSel == nil && podSel == nil {
				continue // not a peer: Check refuses it
			}
			peer := &schemas.NetworkPeer{NamespaceSelector: nsSel, PodSelector: podSel}
			allowed := allExcept("own", peer)
			for _, q := range allowed {
				if q.IPBlock != nil {
					t.Fatalf("peer %v: ipBlock %v in a selector partition", peer, q.IPBlock)
				}
			}
			for _, p := range pods {
				cases++
				want := !inPeer(t, "own", peer, p)
				got := false
				for _, q := range allowed {
					if selectedBy(t, "own", q, p) {
						got = true
						break
					}
				}
				if got != want {
					t.Errorf("peer ns=%v pod=%v: pod %s %v allowed=%v, want %v (peers %v)",
						selString2(nsSel), selString2(podSel), p.ns, p.labels, got, want, allowed)
				}
			}
		}
	}
	t.Logf("%d pod/peer combinations", cases)
}

func selString2(s *metav1.LabelSelector) string {
	if s == nil {
		return "nil"
	}
	return selString(s)
}

func TestPolicy(t *testing.T) {
	labels := map[string]string{"app.kubernetes.io/managed-by": "faultline"}
	base := func(types ...networkingv1.PolicyType) *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{
			TypeMeta:   metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy"},
			ObjectMeta: metav1.ObjectMeta{Name: "np", Namespace: "own", Labels: labels},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"k": "v"}},
				PolicyTypes: types,
			},
		}
	}
	cidrPeers := []networkingv1.NetworkPolicyPeer{
		{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: []string{"10.0.0.0/8", "192.168.1.7/32"}}},
		{IPBlock: &networkingv1.IPBlock{CIDR: "::/0", Except: []string{"fd00::/8"}}},
	}
	podPeers := []networkingv1.NetworkPolicyPeer{
		{NamespaceSelector: sel(nil, req(namespaceNameLabel, metav1.LabelSelectorOpNotIn, "own"))},
		{PodSelector: sel(nil, req("app", metav1.LabelSelectorOpNotIn, "db"))},
	}
	for _, tc := range []struct {
		name string
		p    schemas.NetworkPartitionParams
		want func() *networkingv1.NetworkPolicy
	}{
		{"deny ingress", schemas.NetworkPartitionParams{Direction: schemas.DirectionIngress}, func() *networkingv1.NetworkPolicy {
			return base(networkingv1.PolicyTypeIngress)
		}},
		{"deny egress", schemas.NetworkPartitionParams{Direction: schemas.DirectionEgress}, func() *networkingv1.NetworkPolicy {
			return base(networkingv1.PolicyTypeEgress)
		}},
		{"deny both", schemas.NetworkPartitionParams{Direction: schemas.DirectionBoth}, func() *networkingv1.NetworkPolicy {
			return base(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress)
		}},
		{"cut cidrs both ways", schemas.NetworkPartitionParams{Direction: schemas.DirectionBoth, Peer: &schemas.NetworkPeer{CIDRs: []string{"10.0.0.0/8", "fd00::/8", "192.168.1.7/32"}}}, func() *networkingv1.NetworkPolicy {
			np := base(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress)
			np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: cidrPeers}}
			np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{To: cidrPeers}}
			return np
		}},
		{"cut v4 only", schemas.NetworkPartitionParams{Direction: schemas.DirectionEgress, Peer: &schemas.NetworkPeer{CIDRs: []string{"10.1.0.0/16"}}}, func() *networkingv1.NetworkPolicy {
			np := base(networkingv1.PolicyTypeEgress)
			np.Spec.Egress = []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{
				{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: []string{"10.1.0.0/16"}}},
				{IPBlock: &networkingv1.IPBlock{CIDR: "::/0"}},
			}}}
			return np
		}},
		{"cut pods ingress", schemas.NetworkPartitionParams{Direction: schemas.DirectionIngress, Peer: &schemas.NetworkPeer{PodSelector: sel(map[string]string{"app": "db"})}}, func() *networkingv1.NetworkPolicy {
			np := base(networkingv1.PolicyTypeIngress)
			np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: podPeers}}
			return np
		}},
		{"cut namespaces and pods", schemas.NetworkPartitionParams{Direction: schemas.DirectionIngress, Peer: &schemas.NetworkPeer{
			NamespaceSelector: sel(map[string]string{"env": "prod"}), PodSelector: sel(map[string]string{"app": "db"})}}, func() *networkingv1.NetworkPolicy {
			np := base(networkingv1.PolicyTypeIngress)
			np.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
				{NamespaceSelector: sel(nil, req("env", metav1.LabelSelectorOpNotIn, "prod"))},
				{NamespaceSelector: sel(map[string]string{"env": "prod"}), PodSelector: sel(nil, req("app", metav1.LabelSelectorOpNotIn, "db"))},
			}}}
			return np
		}},
		{"cut every pod: deny", schemas.NetworkPartitionParams{Direction: schemas.DirectionIngress, Peer: &schemas.NetworkPeer{NamespaceSelector: sel(nil)}}, func() *networkingv1.NetworkPolicy {
			return base(networkingv1.PolicyTypeIngress)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := policy("np", "own", "k", "v", labels, &tc.p)
			if want := tc.want(); !reflect.DeepEqual(got, want) {
				t.Errorf("policy\n got %+v\nwant %+v", got.Spec, want.Spec)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		p    schemas.NetworkPartitionParams
		want string
	}{
		{schemas.NetworkPartitionParams{Direction: schemas.DirectionIngress}, "deny all ingress (traffic to the targets)"},
		{schemas.NetworkPartitionParams{Direction: schemas.DirectionEgress}, "deny all egress (traffic from the targets, DNS included)"},
		{schemas.NetworkPartitionParams{Direction: schemas.DirectionBoth, Peer: &schemas.NetworkPeer{CIDRs: []string{"10.0.0.0/8"}}}, "cut ingress and egress with 10.0.0.0/8, allow every other address"},
		{schemas.NetworkPartitionParams{Direction: schemas.DirectionBoth, Peer: &schemas.NetworkPeer{PodSelector: sel(map[string]string{"app": "db"})}},
			"cut ingress and egress with pods matching {app=db} in the targets' namespace, allow every other pod of the cluster; traffic with addresses outside the cluster is cut too"},
		{schemas.NetworkPartitionParams{Direction: schemas.DirectionIngress, Peer: &schemas.NetworkPeer{NamespaceSelector: sel(map[string]string{"env": "dev"})}},
			"cut ingress (traffic to the targets) with every pod in namespaces matching {env=dev}, allow every other pod of the cluster; traffic with addresses outside the cluster is cut too"},
	} {
		if got := describe(&tc.p); got != tc.want {
			t.Errorf("describe(%+v)\n got %q\nwant %q", tc.p, got, tc.want)
		}
	}
}
