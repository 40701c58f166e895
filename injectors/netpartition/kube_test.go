package netpartition_test

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/faultline/faultline/injectors"
	"github.com/faultline/faultline/injectors/injectortest"
	"github.com/faultline/faultline/injectors/netpartition"
	"github.com/faultline/faultline/schemas"
)

// The integration tests share one API server, each in a namespace of its
// own. The API server validates and stores NetworkPolicies; no CNI enforces
// them here, so the tests check the objects, not the traffic.
var kube = injectortest.NewShared()

func TestMain(m *testing.M) { injectortest.Main(m, kube) }

const key = netpartition.DefaultLabelKey

type env struct {
	admin kubernetes.Interface
	ns    string
	w     *injectortest.Workload
	inj   *netpartition.Injector
}

func setup(t *testing.T, replicas int) env {
	t.Helper()
	admin := injectortest.Admin(t, kube.Get(t))
	ns := injectortest.Namespace(t, admin, injectortest.NamespaceOptions{OptIn: true})
	nodes := injectortest.Nodes(t, admin, injectortest.Name("np-node-"))
	w := injectortest.NewWorkload(t, admin, ns, injectortest.WorkloadOptions{Name: "shop", Replicas: replicas, Nodes: nodes})
	inj, err := netpartition.New(injectortest.Deps(admin), netpartition.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return env{admin: admin, ns: ns, w: w, inj: inj}
}

func command(ns string, targets []corev1.Pod, p schemas.NetworkPartitionParams) *schemas.FaultCommand {
	cmd := injectortest.Command(netpartition.Name, ns, targets, time.Minute)
	cmd.NetworkPartition = &p
	return cmd
}

func (e env) plan(t *testing.T, cmd *schemas.FaultCommand, targets []corev1.Pod) *injectors.Plan {
	t.Helper()
	p, err := e.inj.Plan(injectortest.Context(t, injectortest.Timeout), cmd, targets)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	return p
}

func (e env) policy(t *testing.T, name string) *networkingv1.NetworkPolicy {
	t.Helper()
	np, err := e.admin.NetworkingV1().NetworkPolicies(e.ns).Get(injectortest.Context(t, injectortest.Timeout), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get NetworkPolicy %s: %v", name, err)
	}
	return np
}

// labels returns the partition label of each workload pod ("" when absent).
func (e env) labels(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, p := range e.w.Pods {
		got, err := e.admin.CoreV1().Pods(e.ns).Get(injectortest.Context(t, injectortest.Timeout), p.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get pod %s: %v", p.Name, err)
		}
		out = append(out, got.Labels[key])
	}
	return out
}

func (e env) revert(t *testing.T, r *injectors.Revert) {
	t.Helper()
	if err := e.inj.Revert(injectortest.Context(t, injectortest.Timeout), r); err != nil {
		t.Fatalf("revert: %v", err)
	}
}

// A full partition: the targets are labelled, the policy selects them and
// denies both directions; revert deletes it and removes the labels, and
// succeeds again, and for a plan never applied.
func TestApplyRevertDenyAll(t *testing.T) {
	e := setup(t, 3)
	ctx := injectortest.Context(t, injectortest.Timeout)
	targets := e.w.Pods[:2]
	cmd := command(e.ns, targets, schemas.NetworkPartitionParams{Direction: schemas.DirectionBoth})
	p := e.plan(t, cmd, targets)
	name := netpartition.PolicyName(cmd.ID)
	value := injectors.LabelValue(cmd.ID)

	wantObjects := []schemas.ObjectRef{{APIVersion: "networking.k8s.io/v1", Kind: "NetworkPolicy", Namespace: e.ns, Name: name}}
	for _, pd := range targets {
		wantObjects = append(wantObjects, injectors.PodRef(&pd))
	}
	if !reflect.DeepEqual(p.Affected, wantObjects) || !reflect.DeepEqual(p.Revert.Objects, wantObjects) {
		t.Errorf("affected %v\nrevert objects %v\nwant %v", p.Affected, p.Revert.Objects, wantObjects)
	}
	if len(p.Warnings) != 0 {
		t.Errorf("warnings %q in an empty namespace", p.Warnings)
	}
	var data netpartition.RevertData
	if err := json.Unmarshal(p.Revert.Data, &data); err != nil || data != (netpartition.RevertData{LabelKey: key, LabelValue: value}) {
		t.Errorf("revert data %s (%v)", p.Revert.Data, err)
	}
	// Planning changes nothing.
	if got := e.labels(t); !slices.Equal(got, []string{"", "", ""}) {
		t.Errorf("labels after plan %q", got)
	}
	if _, err := e.admin.NetworkingV1().NetworkPolicies(e.ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
		t.Error("policy exists after plan")
	}

	if err := e.inj.Apply(ctx, p); err != nil {
		t.Fatalf("apply: %v", err)
	}
	np := e.policy(t, name)
	if !reflect.DeepEqual(np.Labels, injectors.ObjectLabels(cmd)) {
		t.Errorf("policy labels %v, want %v", np.Labels, injectors.ObjectLabels(cmd))
	}
	if want := (metav1.LabelSelector{MatchLabels: map[string]string{key: value}}); !reflect.DeepEqual(np.Spec.PodSelector, want) {
		t.Errorf("podSelector %v, want %v", np.Spec.PodSelector, want)
	}
	if want := []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}; !slices.Equal(np.Spec.PolicyTypes, want) {
		t.Errorf("policyTypes %v, want %v", np.Spec.PolicyTypes, want)
	}
	if len(np.Spec.Ingress) != 0 || len(np.Spec.Egress) != 0 {
		t.Errorf("rules %v %v, want none (deny all)", np.Spec.Ingress, np.Spec.Egress)
	}
	if got := e.labels(t); !slices.Equal(got, []string{value, value, ""}) {
		t.Errorf("labels after apply %q", got)
	}
	// A retried Apply keeps the policy.
	if err := e.inj.Apply(ctx, p); err != nil {
		t.Errorf("second apply: %v", err)
	}

	e.revert(t, &p.Revert)
	if _, err := e.admin.NetworkingV1().NetworkPolicies(e.ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
		t.Error("policy still exists after revert")
	}
	if got := e.labels(t); !slices.Equal(got, []string{"", "", ""}) {
		t.Errorf("labels after revert %q", got)
	}
	// Other labels are untouched.
	got, err := e.admin.CoreV1().Pods(e.ns).Get(ctx, targets[0].Name, metav1.GetOptions{})
	if err != nil || got.Labels["app"] != "shop" {
		t.Errorf("pod labels after revert %v (%v)", got.Labels, err)
	}
	e.revert(t, &p.Revert)

	never := e.plan(t, command(e.ns, e.w.Pods, schemas.NetworkPartitionParams{Direction: schemas.DirectionIngress}), e.w.Pods)
	e.revert(t, &never.Revert)
}

// With a peer the policy allows everything but the peer; the API server
// accepts the negated selectors and the ipBlocks with their exceptions.
func TestApplyWithPeer(t *testing.T) {
	e := setup(t, 2)
	for _, tc := range []struct {
		name   string
		params schemas.NetworkPartitionParams
		check  func(t *testing.T, np *networkingv1.NetworkPolicy)
	}{
		{"pods in the namespace, ingress", schemas.NetworkPartitionParams{Direction: schemas.DirectionIngress, Peer: &schemas.NetworkPeer{
			PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
		}}, func(t *testing.T, np *networkingv1.NetworkPolicy) {
			want := []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
				{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{e.ns}}}}},
				{PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"db"}}}}},
			}}}
			if !reflect.DeepEqual(np.Spec.Ingress, want) || len(np.Spec.Egress) != 0 || !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
				t.Errorf("spec %+v, want ingress %+v", np.Spec, want)
			}
		}},
		{"pods in other namespaces, both", schemas.NetworkPartitionParams{Direction: schemas.DirectionBoth, Peer: &schemas.NetworkPeer{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}},
			PodSelector:       &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpExists}}},
		}}, func(t *testing.T, np *networkingv1.NetworkPolicy) {
			peers := []networkingv1.NetworkPolicyPeer{
				{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"prod"}}}}},
				{
					NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}},
					PodSelector:       &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpDoesNotExist}}},
				},
			}
			if !reflect.DeepEqual(np.Spec.Ingress, []networkingv1.NetworkPolicyIngressRule{{From: peers}}) ||
				!reflect.DeepEqual(np.Spec.Egress, []networkingv1.NetworkPolicyEgressRule{{To: peers}}) {
				t.Errorf("spec %+v, want both ways %+v", np.Spec, peers)
			}
		}},
		{"networks, egress", schemas.NetworkPartitionParams{Direction: schemas.DirectionEgress, Peer: &schemas.NetworkPeer{
			CIDRs: []string{"10.20.0.0/16", "2001:db8::/32", "192.0.2.7/32"},
		}}, func(t *testing.T, np *networkingv1.NetworkPolicy) {
			want := []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{
				{IPBlock: &networkingv1.IPBlock{CIDR: "0.0.0.0/0", Except: []string{"10.20.0.0/16", "192.0.2.7/32"}}},
				{IPBlock: &networkingv1.IPBlock{CIDR: "::/0", Except: []string{"2001:db8::/32"}}},
			}}}
			if !reflect.DeepEqual(np.Spec.Egress, want) || len(np.Spec.Ingress) != 0 {
				t.Errorf("spec %+v, want egress %+v", np.Spec, want)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := injectortest.Context(t, injectortest.Timeout)
			cmd := command(e.ns, e.w.Pods, tc.params)
			p := e.plan(t, cmd, e.w.Pods)
			if err := e.inj.Apply(ctx, p); err != nil {
				t.Fatalf("apply: %v", err)
			}
			tc.check(t, e.policy(t, netpartition.PolicyName(cmd.ID)))
			e.revert(t, &p.Revert)
			if got := e.labels(t); !slices.Equal(got, []string{"", ""}) {
				t.Errorf("labels after revert %q", got)
			}
		})
	}
}

// Plan warns about NetworkPolicies that select a target and allow traffic
// in a direction the partition cuts, and about no other.
func TestPlanWarnsAboutPoliciesThatAllow(t *testing.T) {
	e := setup(t, 2)
	ctx := injectortest.Context(t, injectortest.Timeout)
	create := func(name string, spec networkingv1.NetworkPolicySpec) {
		t.Helper()
		if _, err := e.admin.NetworkingV1().NetworkPolicies(e.ns).Create(ctx, &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec,
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	shop := metav1.LabelSelector{MatchLabels: map[string]string{"app": "shop"}}
	create("allow-web", networkingv1.NetworkPolicySpec{PodSelector: shop, Ingress: []networkingv1.NetworkPolicyIngressRule{{}}})
	create("allow-egress", networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{}, PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}, Egress: []networkingv1.NetworkPolicyEgressRule{{}}})
	create("deny-ingress", networkingv1.NetworkPolicySpec{PodSelector: shop, PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}})
	create("other-app", networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}, Ingress: []networkingv1.NetworkPolicyIngressRule{{}}})

	for _, tc := range []struct {
		dir  schemas.Direction
		want []string // policies warned about
	}{
		{schemas.DirectionIngress, []string{"allow-web"}},
		{schemas.DirectionEgress, []string{"allow-egress"}},
		{schemas.DirectionBoth, []string{"allow-egress", "allow-web"}},
	} {
		p := e.plan(t, command(e.ns, e.w.Pods[:1], schemas.NetworkPartitionParams{Direction: tc.dir}), e.w.Pods[:1])
		if len(p.Warnings) != len(tc.want) {
			t.Errorf("%s: warnings %q, want about %v", tc.dir, p.Warnings, tc.want)
			continue
		}
		for i, w := range tc.want {
			if !strings.Contains(p.Warnings[i], "NetworkPolicy "+e.ns+"/"+w+" selects target pods shop-0") {
				t.Errorf("%s: warning %q, want one about %s", tc.dir, p.Warnings[i], w)
			}
		}
	}

	// An active partition's own policy is not warned about.
	cmd := command(e.ns, e.w.Pods[1:], schemas.NetworkPartitionParams{Direction: schemas.DirectionIngress})
	p := e.plan(t, cmd, e.w.Pods[1:])
	if err := e.inj.Apply(ctx, p); err != nil {
		t.Fatal(err)
	}
	defer e.revert(t, &p.Revert)
	again := e.plan(t, cmd, e.w.Pods[1:])
	if len(again.Warnings) != 1 || !strings.Contains(again.Warnings[0], "/allow-web ") {
		t.Errorf("warnings %q, want only allow-web", again.Warnings)
	}
}

// A pod partitioned by another command is refused; revert removes only its
// own label value.
func TestOnePartitionPerPod(t *testing.T) {
	e := setup(t, 2)
	ctx := injectortest.Context(t, injectortest.Timeout)
	first := command(e.ns, e.w.Pods, schemas.NetworkPartitionParams{Direction: schemas.DirectionBoth})
	p := e.plan(t, first, e.w.Pods)
	if err := e.inj.Apply(ctx, p); err != nil {
		t.Fatal(err)
	}
	pods, err := e.admin.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(pods.Items, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	second := command(e.ns, pods.Items, schemas.NetworkPartitionParams{Direction: schemas.DirectionIngress})
	if _, err := e.inj.Plan(ctx, second, pods.Items); err == nil || !strings.Contains(err.Error(), "already partitioned") {
		t.Errorf("plan over a partitioned pod: %v", err)
	}

	// Someone relabels shop-1 meanwhile: revert leaves that label alone.
	if _, err := e.admin.CoreV1().Pods(e.ns).Patch(ctx, "shop-1", types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"`+key+`":"someone-else"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	e.revert(t, &p.Revert)
	if got := e.labels(t); !slices.Equal(got, []string{"", "someone-else"}) {
		t.Errorf("labels after revert %q", got)
	}
}

// A target deleted (or replaced) between plan and apply, or before the
// revert, is no error.
func TestTargetsThatGo(t *testing.T) {
	e := setup(t, 3)
	ctx := injectortest.Context(t, injectortest.Timeout)
	cmd := command(e.ns, e.w.Pods, schemas.NetworkPartitionParams{Direction: schemas.DirectionIngress})
	p := e.plan(t, cmd, e.w.Pods)
	value := injectors.LabelValue(cmd.ID)

	// shop-0 is gone; shop-1 is replaced by a pod of the same name.
	if err := injectortest.ForceDelete(ctx, e.admin, e.ns, "shop-0"); err != nil {
		t.Fatal(err)
	}
	if err := injectortest.ForceDelete(ctx, e.admin, e.ns, "shop-1"); err != nil {
		t.Fatal(err)
	}
	injectortest.WaitPodGone(t, e.admin, e.ns, "shop-1", e.w.Pods[1].UID)
	repl := e.w.Pods[1].DeepCopy()
	repl.ResourceVersion, repl.UID, repl.Status = "", "", corev1.PodStatus{}
	if _, err := injectortest.CreatePod(ctx, e.admin, repl); err != nil {
		t.Fatal(err)
	}

	if err := e.inj.Apply(ctx, p); err != nil {
		t.Fatalf("apply: %v", err)
	}
	got, err := e.admin.CoreV1().Pods(e.ns).Get(ctx, "shop-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := got.Labels[key]; ok {
		t.Errorf("the replacement of shop-1 was labelled %s=%s", key, v)
	}
	got, err = e.admin.CoreV1().Pods(e.ns).Get(ctx, "shop-2", metav1.GetOptions{})
	if err != nil || got.Labels[key] != value {
		t.Errorf("shop-2 labels %v (%v), want %s=%s", got.Labels, err, key, value)
	}

	if err := injectortest.ForceDelete(ctx, e.admin, e.ns, "shop-2"); err != nil {
		t.Fatal(err)
	}
	e.revert(t, &p.Revert)
	if _, err := e.admin.NetworkingV1().NetworkPolicies(e.ns).Get(ctx, netpartition.PolicyName(cmd.ID), metav1.GetOptions{}); err == nil {
		t.Error("policy still exists after revert")
	}
}

// A record without Data (or with another label key configured now) is
// still reverted: the data names the key used at apply time.
func TestRevertUsesRecordedLabel(t *testing.T) {
	e := setup(t, 1)
	ctx := injectortest.Context(t, injectortest.Timeout)
	cmd := command(e.ns, e.w.Pods, schemas.NetworkPartitionParams{Direction: schemas.DirectionEgress})
	p := e.plan(t, cmd, e.w.Pods)
	if err := e.inj.Apply(ctx, p); err != nil {
		t.Fatal(err)
	}
	cfg := netpartition.DefaultConfig()
	cfg.LabelKey = "example.com/other"
	other, err := netpartition.New(injectortest.Deps(e.admin), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Revert(ctx, &p.Revert); err != nil {
		t.Fatal(err)
	}
	if got := e.labels(t); !slices.Equal(got, []string{""}) {
		t.Errorf("labels after revert %q", got)
	}
}

func TestNewAndCheck(t *testing.T) {
	if _, err := netpartition.New(injectors.Deps{}, netpartition.DefaultConfig()); err == nil {
		t.Error("New without a client succeeded")
	}
	inj, err := netpartition.New(injectors.Deps{Kube: fake.NewClientset()}, netpartition.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	ok := command("shop", nil, schemas.NetworkPartitionParams{Direction: schemas.DirectionBoth})
	for _, tc := range []struct {
		name string
		edit func(c *schemas.FaultCommand)
		want string
	}{
		{"valid", func(*schemas.FaultCommand) {}, ""},
		{"no params", func(c *schemas.FaultCommand) { c.NetworkPartition = nil }, "parameters are required"},
		{"bad direction", func(c *schemas.FaultCommand) { c.NetworkPartition = &schemas.NetworkPartitionParams{Direction: "up"} }, "direction"},
		{"other fault", func(c *schemas.FaultCommand) { c.Fault = schemas.FaultPodKill }, "command is for"},
		{"other params", func(c *schemas.FaultCommand) { c.PodKill = &schemas.PodKillParams{} }, "parameters of another fault"},
		{"no duration", func(c *schemas.FaultCommand) { c.Duration = 0 }, "duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := *ok
			tc.edit(&c)
			err := inj.Check(&c)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := inj.Plan(context.Background(), ok, nil); err == nil {
		t.Error("plan without targets succeeded")
	}
	elsewhere := []corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "x"}}}
	if _, err := inj.Plan(context.Background(), ok, elsewhere); err == nil || !strings.Contains(err.Error(), "outside the command's namespace") {
		t.Errorf("plan of a pod in another namespace: %v", err)
	}
	if err := inj.Revert(context.Background(), &injectors.Revert{Fault: schemas.FaultPodKill}); err == nil {
		t.Error("revert of a pod-kill record succeeded")
	}
}

// Another partition labelling a target between plan and apply makes Apply
// fail for that pod (its label is never replaced), and the revert that
// follows leaves it alone.
func TestApplyKeepsALabelPutSincePlan(t *testing.T) {
	e := setup(t, 2)
	ctx := injectortest.Context(t, injectortest.Timeout)
	cmd := command(e.ns, e.w.Pods, schemas.NetworkPartitionParams{Direction: schemas.DirectionBoth})
	p := e.plan(t, cmd, e.w.Pods)
	if _, err := e.admin.CoreV1().Pods(e.ns).Patch(ctx, "shop-1", types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"`+key+`":"other-command"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	err := e.inj.Apply(ctx, p)
	if err == nil || !strings.Contains(err.Error(), "pod "+e.ns+"/shop-1: already partitioned ("+key+"=other-command)") {
		t.Fatalf("apply: %v", err)
	}
	if _, err := e.admin.NetworkingV1().NetworkPolicies(e.ns).Get(ctx, netpartition.PolicyName(cmd.ID), metav1.GetOptions{}); err == nil {
		t.Error("the policy was created although labelling failed")
	}
	e.revert(t, &p.Revert)
	if got := e.labels(t); !slices.Equal(got, []string{"", "other-command"}) {
		t.Errorf("labels after revert %q", got)
	}
}
