package podkill_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/faultline/faultline/injectors"
	"github.com/faultline/faultline/injectors/podkill"
	"github.com/faultline/faultline/schemas"
)

// newUnit is an injector for the tests of pure logic (Check, Plan), which
// never call the API server.
func newUnit(t *testing.T) *podkill.Injector {
	t.Helper()
	inj, err := podkill.New(injectors.Deps{Kube: fake.NewClientset()}, podkill.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return inj
}

func cmdWith(p *schemas.PodKillParams, d time.Duration) *schemas.FaultCommand {
	c := &schemas.FaultCommand{ID: "cmd-1", ExperimentID: "exp-1", Fault: podkill.Name, Duration: schemas.Duration(d), PodKill: p}
	return c
}

func TestNew(t *testing.T) {
	if _, err := podkill.New(injectors.Deps{}, podkill.DefaultConfig()); err == nil {
		t.Error("New without a client succeeded")
	}
	bad := podkill.DefaultConfig()
	bad.Parallelism = 0
	if _, err := podkill.New(injectors.Deps{Kube: fake.NewClientset()}, bad); err == nil || !strings.Contains(err.Error(), "parallelism") {
		t.Errorf("New with a bad config: %v", err)
	}
}

func TestCheck(t *testing.T) {
	inj := newUnit(t)
	for _, tc := range []struct {
		name string
		cmd  *schemas.FaultCommand
		want string // substring of the error, "" for none
	}{
		{"no params", cmdWith(nil, time.Minute), ""},
		{"grace 0", cmdWith(&schemas.PodKillParams{GracePeriodSeconds: new(int64(0))}, time.Minute), ""},
		{"grace 30", cmdWith(&schemas.PodKillParams{GracePeriodSeconds: new(int64(30))}, time.Minute), ""},
		{"negative grace", cmdWith(&schemas.PodKillParams{GracePeriodSeconds: new(int64(-1))}, time.Minute), "grace_period_seconds"},
		{"interval 1s", cmdWith(&schemas.PodKillParams{Interval: schemas.Duration(time.Second)}, time.Minute), ""},
		{"interval below 1s", cmdWith(&schemas.PodKillParams{Interval: schemas.Duration(999 * time.Millisecond)}, time.Minute), "interval: 999ms is shorter"},
		{"interval = duration", cmdWith(&schemas.PodKillParams{Interval: schemas.Duration(time.Minute)}, time.Minute), "not shorter than the duration"},
		{"interval > duration", cmdWith(&schemas.PodKillParams{Interval: schemas.Duration(2 * time.Minute)}, time.Minute), "not shorter than the duration"},
		{"both bad", cmdWith(&schemas.PodKillParams{GracePeriodSeconds: new(int64(-1)), Interval: schemas.Duration(time.Millisecond)}, time.Minute), "grace_period_seconds: must not be negative (got -1)\ninterval"},
		{"no duration", cmdWith(nil, 0), "duration must be positive"},
		{"other fault", &schemas.FaultCommand{Fault: schemas.FaultNetworkPartition, Duration: schemas.Duration(time.Minute)}, "command is for"},
		{"other params", func() *schemas.FaultCommand {
			c := cmdWith(nil, time.Minute)
			c.NetworkPartition = &schemas.NetworkPartitionParams{Direction: schemas.DirectionBoth}
			return c
		}(), "parameters of another fault"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := inj.Check(tc.cmd)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestInterval(t *testing.T) {
	inj := newUnit(t)
	if got := inj.Interval(cmdWith(nil, time.Minute)); got != 0 {
		t.Errorf("interval without params %s, want 0", got)
	}
	if got := inj.Interval(cmdWith(&schemas.PodKillParams{Interval: schemas.Duration(5 * time.Second)}, time.Minute)); got != 5*time.Second {
		t.Errorf("interval %s, want 5s", got)
	}
}

func pod(name string, owned bool) corev1.Pod {
	p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, UID: types.UID("uid-" + name)}}
	if owned {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", UID: "rs-uid", Controller: new(true)}}
	}
	return p
}

func TestPlan(t *testing.T) {
	inj := newUnit(t)
	for _, tc := range []struct {
		name     string
		params   *schemas.PodKillParams
		pods     []corev1.Pod
		steps    []string
		warnings []string
		err      string
	}{
		{
			name: "default grace", pods: []corev1.Pod{pod("a", true), pod("b", true)},
			steps: []string{"delete pod shop/a (uid uid-a) with grace period 0s", "delete pod shop/b (uid uid-b) with grace period 0s"},
		},
		{
			name: "grace and interval", params: &schemas.PodKillParams{GracePeriodSeconds: new(int64(10)), Interval: schemas.Duration(10 * time.Second)},
			pods: []corev1.Pod{pod("a", true)},
			steps: []string{
				"delete pod shop/a (uid uid-a) with grace period 10s: it is Terminating until its kubelet confirms its containers stopped (at most 10s after SIGTERM)",
				"repeat every 10s until the duration 1m0s ends, with the targets selected again each time",
			},
		},
		{
			name: "bare pod", pods: []corev1.Pod{pod("a", false)},
			steps:    []string{"delete pod shop/a (uid uid-a) with grace period 0s"},
			warnings: []string{"pod shop/a has no controller: nothing will recreate it"},
		},
		{name: "no targets", err: "no target pods"},
		{name: "bad params", params: &schemas.PodKillParams{GracePeriodSeconds: new(int64(-3))}, pods: []corev1.Pod{pod("a", true)}, err: "grace_period_seconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := cmdWith(tc.params, time.Minute)
			p, err := inj.Plan(context.Background(), cmd, tc.pods)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Command != cmd {
				t.Error("plan does not carry its command")
			}
			if len(p.Targets) != len(tc.pods) || len(p.Affected) != len(tc.pods) {
				t.Fatalf("targets %v affected %v, want %d each", p.Targets, p.Affected, len(tc.pods))
			}
			for i, pd := range tc.pods {
				want := schemas.ObjectRef{APIVersion: "v1", Kind: "Pod", Namespace: "shop", Name: pd.Name, UID: string(pd.UID)}
				if p.Affected[i] != want || p.Targets[i] != want {
					t.Errorf("affected[%d] %+v target %+v, want %+v", i, p.Affected[i], p.Targets[i], want)
				}
			}
			if strings.Join(p.Steps, "\n") != strings.Join(tc.steps, "\n") {
				t.Errorf("steps\n%s\nwant\n%s", strings.Join(p.Steps, "\n"), strings.Join(tc.steps, "\n"))
			}
			if strings.Join(p.Warnings, "\n") != strings.Join(tc.warnings, "\n") {
				t.Errorf("warnings %q, want %q", p.Warnings, tc.warnings)
			}
			r := p.Revert
			if r.Fault != podkill.Name || r.CommandID != cmd.ID || len(r.Objects) != 0 || len(r.Steps) != 1 || !strings.HasPrefix(r.Steps[0], "nothing to restore") {
				t.Errorf("revert %+v", r)
			}
		})
	}
}

func TestRevertOtherFault(t *testing.T) {
	inj := newUnit(t)
	if err := inj.Revert(context.Background(), &injectors.Revert{Fault: schemas.FaultNetworkPartition}); err == nil {
		t.Error("revert of a network-partition record succeeded")
	}
}
