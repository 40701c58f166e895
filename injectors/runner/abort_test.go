package runner

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/faultline/faultline/injectors"
	"github.com/faultline/faultline/injectors/guard"
	"github.com/faultline/faultline/injectors/injectortest"
	"github.com/faultline/faultline/injectors/netpartition"
	"github.com/faultline/faultline/injectors/podkill"
	"github.com/faultline/faultline/injectors/starvation"
	"github.com/faultline/faultline/schemas"
)

// realFaults are the three fault types with their default settings, on a
// client rate-limited like the injector's by default (kubernetes.qps 20,
// kubernetes.burst 40, reverts exempt), so latencies are what a default
// install gets.
func (e *env) realFaults() []injectors.Injector {
	rc := cluster.Get(e.t).Admin.RESTConfig()
	rc.QPS, rc.Burst = 20, 40
	rc.RateLimiter = injectors.NewRateLimiter(rc.QPS, rc.Burst)
	kc, err := kubernetes.NewForConfig(rc)
	if err != nil {
		e.t.Fatal(err)
	}
	d := injectors.Deps{Kube: kc, Log: injectortest.Logger()}
	pk, err := podkill.New(d, podkill.DefaultConfig())
	if err != nil {
		e.t.Fatal(err)
	}
	np, err := netpartition.New(d, netpartition.DefaultConfig())
	if err != nil {
		e.t.Fatal(err)
	}
	st, err := starvation.New(d, starvation.DefaultConfig())
	if err != nil {
		e.t.Fatal(err)
	}
	return []injectors.Injector{pk, np, st}
}

// twentyFaults applies 20 faults of experiment exp, one pod each: 7
// pod-kills, 7 network partitions and 6 resource starvations.
func (e *env) twentyFaults(exp string, pods []corev1.Pod) []*schemas.FaultCommand {
	e.t.Helper()
	kinds := []schemas.FaultKind{schemas.FaultPodKill, schemas.FaultNetworkPartition, schemas.FaultResourceStarvation}
	var cmds []*schemas.FaultCommand
	for i := range 20 {
		kind := kinds[i%3]
		c := injectortest.Command(kind, e.ns, pods[i:i+1], 10*time.Minute)
		c.ExperimentID = exp
		switch kind {
		case schemas.FaultNetworkPartition:
			c.NetworkPartition = &schemas.NetworkPartitionParams{Direction: schemas.DirectionBoth}
		case schemas.FaultResourceStarvation:
			c.ResourceStarvation = &schemas.ResourceStarvationParams{CPUWorkers: 1}
		}
		c = e.sign(c)
		cmds = append(cmds, c)
		e.publish(c)
	}
	for _, c := range cmds {
		e.waitStatus(c.ID, schemas.PhaseApplied)
	}
	return cmds
}

// leftovers counts what the faults of exp still have in the cluster and in
// KV: fault records, NetworkPolicies, stress pods and partition labels.
func (e *env) leftovers(ctx context.Context, exp string) (int, error) {
	entries, err := e.store().List(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, en := range entries {
		if en.Record.Command.ExperimentID == exp {
			n++
		}
	}
	sel := metav1.ListOptions{LabelSelector: injectors.LabelExperiment + "=" + injectors.LabelValue(exp)}
	nps, err := e.kube.NetworkingV1().NetworkPolicies(e.ns).List(ctx, sel)
	if err != nil {
		return 0, err
	}
	stress, err := e.kube.CoreV1().Pods(e.ns).List(ctx, sel)
	if err != nil {
		return 0, err
	}
	labelled, err := e.kube.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: netpartition.DefaultLabelKey})
	if err != nil {
		return 0, err
	}
	return n + len(nps.Items) + len(stress.Items) + len(labelled.Items), nil
}

// abortAndWait aborts exp and returns how long it took until the API
// server shows none of its faults and KV holds none of their records.
func (e *env) abortAndWait(exp string) time.Duration {
	e.t.Helper()
	ctx := injectortest.Context(e.t, 60*time.Second)
	if n, err := e.leftovers(ctx, exp); err != nil || n == 0 {
		e.t.Fatalf("before the abort: %d objects and records (%v)", n, err)
	}
	a := &schemas.FaultAbort{ID: injectortest.Name("abort-"), ExperimentID: exp, Reason: "benchmark", IssuedAt: time.Now().UTC()}
	start := time.Now()
	if err := PublishAbort(ctx, e.bus, e.store(), a); err != nil {
		e.t.Fatal(err)
	}
	for {
		n, err := e.leftovers(ctx, exp)
		if err != nil {
			e.t.Fatal(err)
		}
		if n == 0 {
			return time.Since(start)
		}
		if ctx.Err() != nil {
			e.t.Fatalf("%d objects and records of %s left 60s after the abort", n, exp)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (e *env) sign(c *schemas.FaultCommand) *schemas.FaultCommand {
	e.t.Helper()
	c.Issuer = ""
	if err := signCommand(c, e); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// Twenty active faults of three types held by two replicas: one abort
// reverts them all, each once.
func TestAbortTwentyFaultsAcrossTypes(t *testing.T) {
	e := newEnvOn(t, 20, 4)
	e.faults = e.realFaults
	e.start(func(rc *Config, gc *guard.Config) { gc.MaxShare = 1 })
	e.start(func(rc *Config, gc *guard.Config) { gc.MaxShare = 1 })
	cmds := e.twentyFaults("abort-20", e.work.Pods)
	took := e.abortAndWait("abort-20")
	t.Logf("20 faults reverted, confirmed by the API server, %v after the abort", took)
	for _, c := range cmds {
		e.waitStatus(c.ID, schemas.PhaseReverted)
		if n := e.count(c.ID, schemas.PhaseReverted); n != 1 {
			t.Errorf("%s (%s) reported reverted %d times", c.ID, c.Fault, n)
		}
	}
}

// BenchmarkAbort measures abort latency with 20 active faults across the
// three types on two replicas, from the abort's publication to the API
// server showing every fault reverted. Run it with -benchtime=Nx.
func BenchmarkAbort(b *testing.B) {
	e := newEnvOn(b, 1, 4)
	e.faults = e.realFaults
	e.start(func(rc *Config, gc *guard.Config) { gc.MaxShare = 1 })
	e.start(func(rc *Config, gc *guard.Config) { gc.MaxShare = 1 })
	nodes := map[string]bool{}
	for _, p := range e.work.Pods {
		nodes[p.Spec.NodeName] = true
	}
	var names []string
	for n := range nodes {
		names = append(names, n)
	}
	names = append(names, injectortest.Nodes(b, e.kube, injectortest.Name("node-"), injectortest.Name("node-"), injectortest.Name("node-"))...)
	var took []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		w := injectortest.NewWorkload(b, e.kube, e.ns, injectortest.WorkloadOptions{Name: fmt.Sprintf("bench%d", i), Replicas: 20, Nodes: names})
		exp := fmt.Sprintf("bench-%d", i)
		e.twentyFaults(exp, w.Pods)
		b.StartTimer()
		took = append(took, e.abortAndWait(exp))
	}
	b.StopTimer()
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	pct := func(p float64) time.Duration { return took[min(len(took)-1, int(p*float64(len(took))))] }
	b.ReportMetric(float64(pct(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(0, "ns/op")
	b.Logf("abort of 20 faults over %d runs: p50 %v, p99 %v, max %v", len(took), pct(0.5), pct(0.99), took[len(took)-1])
}
