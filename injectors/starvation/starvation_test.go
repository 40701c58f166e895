package starvation_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/faultline/faultline/injectors"
	"github.com/faultline/faultline/injectors/starvation"
	"github.com/faultline/faultline/schemas"
)

func newUnit(t *testing.T, c starvation.Config) *starvation.Injector {
	t.Helper()
	inj, err := starvation.New(injectors.Deps{Kube: fake.NewClientset()}, c)
	if err != nil {
		t.Fatal(err)
	}
	return inj
}

func cmdWith(p *schemas.ResourceStarvationParams, d time.Duration) *schemas.FaultCommand {
	return &schemas.FaultCommand{
		ID: "cmd-1", ExperimentID: "exp-1", Fault: starvation.Name, Duration: schemas.Duration(d),
		Target: schemas.Target{Namespace: "shop"}, ResourceStarvation: p,
	}
}

func TestNew(t *testing.T) {
	if _, err := starvation.New(injectors.Deps{}, starvation.DefaultConfig()); err == nil {
		t.Error("New without a client succeeded")
	}
	bad := starvation.DefaultConfig()
	bad.RunAsUser = 0
	if _, err := starvation.New(injectors.Deps{Kube: fake.NewClientset()}, bad); err == nil || !strings.Contains(err.Error(), "run_as_user") {
		t.Errorf("New with a bad config: %v", err)
	}
}

func TestCheck(t *testing.T) {
	cfg := starvation.DefaultConfig()
	cfg.AllowedImages = []string{"registry.example.com/tools/*"}
	inj := newUnit(t, cfg)
	for _, tc := range []struct {
		name string
		cmd  *schemas.FaultCommand
		want string // substring of the error, "" for none
	}{
		{"cpu", cmdWith(&schemas.ResourceStarvationParams{CPUWorkers: 2}, time.Minute), ""},
		{"memory", cmdWith(&schemas.ResourceStarvationParams{MemoryBytes: 256 << 20}, time.Minute), ""},
		{"both", cmdWith(&schemas.ResourceStarvationParams{CPUWorkers: 1, MemoryBytes: 1 << 30}, time.Minute), ""},
		{"configured image", cmdWith(&schemas.ResourceStarvationParams{CPUWorkers: 1, Image: starvation.DefaultImage}, time.Minute), ""},
		{"allowed image", cmdWith(&schemas.ResourceStarvationParams{CPUWorkers: 1, Image: "registry.example.com/tools/stress-ng:0.18"}, time.Minute), ""},
		{"other image", cmdWith(&schemas.ResourceStarvationParams{CPUWorkers: 1, Image: "docker.io/evil/miner:latest"}, time.Minute), "neither the configured image nor in allowed_images"},
		{"glob does not cross /", cmdWith(&schemas.ResourceStarvationParams{CPUWorkers: 1, Image: "registry.example.com/tools/x/y"}, time.Minute), "allowed_images"},
		{"bad image", cmdWith(&schemas.ResourceStarvationParams{CPUWorkers: 1, Image: "a b"}, time.Minute), "white space"},
		{"nothing", cmdWith(&schemas.ResourceStarvationParams{}, time.Minute), "set at least one"},
		{"negative cpu", cmdWith(&schemas.ResourceStarvationParams{CPUWorkers: -1, MemoryBytes: 1}, time.Minute), "cpu_workers: must be between 0 and 256"},
		{"too many workers", cmdWith(&schemas.ResourceStarvationParams{CPUWorkers: 257}, time.Minute), "cpu_workers"},
		{"negative memory", cmdWith(&schemas.ResourceStarvationParams{CPUWorkers: 1, MemoryBytes: -5}, time.Minute), "memory_bytes"},
		{"too much memory", cmdWith(&schemas.ResourceStarvationParams{MemoryBytes: 1<<40 + 1}, time.Minute), "memory_bytes"},
		{"no params", cmdWith(nil, time.Minute), "parameters are required"},
		{"short", cmdWith(&schemas.ResourceStarvationParams{CPUWorkers: 1}, 500*time.Millisecond), "at least 1s"},
		{"other fault", &schemas.FaultCommand{Fault: schemas.FaultPodKill, Duration: schemas.Duration(time.Minute)}, "command is for"},
		{"other params", func() *schemas.FaultCommand {
			c := cmdWith(&schemas.ResourceStarvationParams{CPUWorkers: 1}, time.Minute)
			c.PodKill = &schemas.PodKillParams{}
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

func TestPodName(t *testing.T) {
	for _, tc := range []struct {
		id   string
		node int
		want string // "" for hashed
	}{
		{"cmd-1", 0, "faultline-stress-cmd-1-0"},
		{"0190c3f4-7a51-7b39-9d0f-2f1d6c6d2a11", 3, "faultline-stress-0190c3f4-7a51-7b39-9d0f-2f1d6c6d2a11-3"},
		{strings.Repeat("a", 41), 9999, "faultline-stress-" + strings.Repeat("a", 41) + "-9999"},
		{strings.Repeat("a", 42), 1, ""},
		{"Cmd_1", 0, ""},
		{"", 0, ""},
	} {
		got := starvation.PodName(tc.id, tc.node)
		if len(validation.IsDNS1123Label(got)) > 0 {
			t.Errorf("PodName(%q, %d) = %q is not a DNS label", tc.id, tc.node, got)
		}
		if tc.want != "" && got != tc.want {
			t.Errorf("PodName(%q, %d) = %q, want %q", tc.id, tc.node, got, tc.want)
		}
		if tc.want == "" && !strings.HasPrefix(got, "faultline-stress-") || len(got) > 63 {
			t.Errorf("PodName(%q, %d) = %q", tc.id, tc.node, got)
		}
	}
	if starvation.PodName("Cmd_1", 0) == starvation.PodName("Cmd_2", 0) || starvation.PodName("Cmd_1", 0) == starvation.PodName("Cmd_1", 1) {
		t.Error("names collide")
	}
}

func target(name, node string) corev1.Pod {
	return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, UID: "uid-" + "x"}, Spec: corev1.PodSpec{NodeName: node}}
}

func TestPlan(t *testing.T) {
	inj := newUnit(t, starvation.DefaultConfig())
	for _, tc := range []struct {
		name     string
		params   schemas.ResourceStarvationParams
		duration time.Duration
		pods     []corev1.Pod
		steps    []string
		warnings []string
		err      string
	}{
		{
			name: "cpu and memory on two nodes", params: schemas.ResourceStarvationParams{CPUWorkers: 2, MemoryBytes: 512 << 20}, duration: time.Minute,
			pods: []corev1.Pod{target("a", "node-b"), target("b", "node-a"), target("c", "node-b"), target("d", "")},
			steps: []string{
				"create pod shop/faultline-stress-cmd-1-0 on node node-a (beside b) running " + starvation.DefaultImage +
					" --cpu 2 --vm 1 --vm-bytes 536870912 --vm-keep --timeout 60s --temp-path /tmp --metrics-brief with requests = limits cpu 2, memory 576Mi; activeDeadlineSeconds 90",
				"create pod shop/faultline-stress-cmd-1-1 on node node-b (beside a, c) running " + starvation.DefaultImage +
					" --cpu 2 --vm 1 --vm-bytes 536870912 --vm-keep --timeout 60s --temp-path /tmp --metrics-brief with requests = limits cpu 2, memory 576Mi; activeDeadlineSeconds 90",
			},
			warnings: []string{"pod shop/d is not bound to a node yet: skipped"},
		},
		{
			name: "cpu only, duration rounded up", params: schemas.ResourceStarvationParams{CPUWorkers: 1}, duration: 90*time.Second + time.Millisecond,
			pods: []corev1.Pod{target("a", "n1")},
			steps: []string{"create pod shop/faultline-stress-cmd-1-0 on node n1 (beside a) running " + starvation.DefaultImage +
				" --cpu 1 --timeout 91s --temp-path /tmp --metrics-brief with requests = limits cpu 1, memory 64Mi; activeDeadlineSeconds 121"},
		},
		{
			name: "memory only, own image", params: schemas.ResourceStarvationParams{MemoryBytes: 1 << 30, Image: starvation.DefaultImage}, duration: time.Minute,
			pods: []corev1.Pod{target("a", "n1")},
			steps: []string{"create pod shop/faultline-stress-cmd-1-0 on node n1 (beside a) running " + starvation.DefaultImage +
				" --vm 1 --vm-bytes 1073741824 --vm-keep --timeout 60s --temp-path /tmp --metrics-brief with requests = limits cpu 100m, memory 1088Mi; activeDeadlineSeconds 90"},
		},
		{name: "none bound", params: schemas.ResourceStarvationParams{CPUWorkers: 1}, duration: time.Minute, pods: []corev1.Pod{target("a", "")}, err: "no target pod is bound to a node"},
		{name: "no targets", params: schemas.ResourceStarvationParams{CPUWorkers: 1}, duration: time.Minute, err: "no target pods"},
		{name: "other namespace", params: schemas.ResourceStarvationParams{CPUWorkers: 1}, duration: time.Minute,
			pods: []corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "x"}, Spec: corev1.PodSpec{NodeName: "n"}}}, err: "outside the command's namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := cmdWith(&tc.params, tc.duration)
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
			if got := strings.Join(p.Steps, "\n"); got != strings.Join(tc.steps, "\n") {
				t.Errorf("steps\n%s\nwant\n%s", got, strings.Join(tc.steps, "\n"))
			}
			if got := strings.Join(p.Warnings, "\n"); got != strings.Join(tc.warnings, "\n") {
				t.Errorf("warnings %q, want %q", p.Warnings, tc.warnings)
			}
			if len(p.Targets) != len(tc.pods) || len(p.Affected) != len(tc.steps) || len(p.Revert.Objects) != len(tc.steps) || len(p.Revert.Steps) != len(tc.steps) {
				t.Errorf("targets %v affected %v revert %+v", p.Targets, p.Affected, p.Revert)
			}
			for k, o := range p.Revert.Objects {
				want := schemas.ObjectRef{APIVersion: "v1", Kind: "Pod", Namespace: "shop", Name: starvation.PodName(cmd.ID, k)}
				if o != want || p.Affected[k] != want {
					t.Errorf("object %d %+v, want %+v", k, o, want)
				}
			}
		})
	}
}

func TestRevertOtherFault(t *testing.T) {
	inj := newUnit(t, starvation.DefaultConfig())
	if err := inj.Revert(context.Background(), &injectors.Revert{Fault: schemas.FaultPodKill}); err == nil {
		t.Error("revert of a pod-kill record succeeded")
	}
}
