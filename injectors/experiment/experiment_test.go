package experiment

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/faultline/faultline/schemas"
)

// A fault that does not touch the error ratio (a CPU stress pod beside the
// canary) keeps the hypothesis: the run passes and its fault is reverted.
func TestHealthyExperimentPasses(t *testing.T) {
	w := newWorld(t)
	e := w.experiment("healthy", "< 0.1", `  - fault: resource-starvation
    duration: 3s
    resource_starvation: {cpu_workers: 1}
`)
	rep := w.runExperiment(context.Background(), e)
	if rep.Verdict != VerdictPassed {
		t.Fatalf("verdict %s: %s", rep.Verdict, rep.Reason)
	}
	if len(rep.Faults) != 1 || rep.Faults[0].Applied == nil || rep.Faults[0].Reverted == nil {
		t.Fatalf("faults in the report: %+v", rep.Faults)
	}
	if n := len(rep.Indicators["error-ratio"]); n < 5 {
		t.Errorf("%d evaluations in the report, want one per interval (≥ 5)", n)
	}
	if n := w.leftovers(rep.RunID); n != 0 {
		t.Errorf("%d objects or records left", n)
	}
}

// A partition of one canary pod of two raises the canary's error ratio to
// 0.5: after the hysteresis the analyzer aborts the run, the partition is
// reverted long before its 60s, and the report says deviated with the
// indicator.
func TestDeviationAbortsAndReverts(t *testing.T) {
	w := newWorld(t)
	e := w.experiment("partition", "< 0.1", `  - fault: network-partition
    duration: 60s
    network_partition: {direction: both}
`)
	start := time.Now()
	rep := w.runExperiment(context.Background(), e)
	if rep.Verdict != VerdictDeviated || rep.Indicator != "error-ratio" {
		t.Fatalf("verdict %s (%s): %s", rep.Verdict, rep.Indicator, rep.Reason)
	}
	if took := time.Since(start); took > 40*time.Second {
		t.Errorf("the run took %v: the abort did not cut the 60s fault short", took)
	}
	if len(rep.Faults) != 1 || rep.Faults[0].Applied == nil || rep.Faults[0].Reverted == nil {
		t.Fatalf("faults in the report: %+v", rep.Faults)
	}
	if n := w.leftovers(rep.RunID); n != 0 {
		t.Errorf("%d objects or records left after the abort", n)
	}
	failing := 0
	for _, ev := range rep.Indicators["error-ratio"] {
		if ev.Experimental != nil && *ev.Experimental >= 0.5 {
			failing++
		}
	}
	if failing < 2 {
		t.Errorf("%d evaluations saw the canary failing; the hysteresis of 2 needs at least 2", failing)
	}
}

// When the metric source stops, the indicator has no data; after three
// intervals of it the run is aborted: unknown is not healthy.
func TestTelemetryGapAborts(t *testing.T) {
	w := newWorld(t)
	e := w.experiment("gap", "< 0.1", `  - fault: resource-starvation
    duration: 60s
    resource_starvation: {cpu_workers: 1}
`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan *Report, 1)
	go func() { done <- w.runExperiment(ctx, e) }()
	// Stop the service once the fault is on.
	deadline := time.Now().Add(30 * time.Second)
	for w.stressPods() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the fault was never applied")
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.exporter.Stop()
	var rep *Report
	select {
	case rep = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the run did not end after the metric source stopped")
	}
	if rep.Verdict != VerdictAborted || !strings.Contains(rep.Reason, "no data") {
		t.Fatalf("verdict %s: %s", rep.Verdict, rep.Reason)
	}
	if n := w.leftovers(rep.RunID); n != 0 {
		t.Errorf("%d objects or records left", n)
	}
}

func (w *world) stressPods() int {
	l, err := w.kube.CoreV1().Pods(w.ns).List(context.Background(), metav1ListFault())
	if err != nil {
		return 0
	}
	return len(l.Items)
}

// A high-severity finding in the experimental group's namespace — the rules
// analyzer's privileged-pod, from an audit event recorded from the real API
// server and replayed into this namespace — aborts the run.
func TestFindingInBlastRadiusAborts(t *testing.T) {
	w := newWorld(t)
	w.startRules()
	e := w.experiment("finding", "< 0.1", `  - fault: resource-starvation
    duration: 60s
    resource_starvation: {cpu_workers: 1}
`)
	done := make(chan *Report, 1)
	go func() { done <- w.runExperiment(context.Background(), e) }()
	deadline := time.Now().Add(30 * time.Second)
	for w.stressPods() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the fault was never applied")
		}
		time.Sleep(100 * time.Millisecond)
	}
	w.publishAudit("../../analyzers/rules/testdata/recorded/privileged-pod.pos.jsonl", "payments")
	var rep *Report
	select {
	case rep = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the run did not end after the finding")
	}
	if rep.Verdict != VerdictAborted || !strings.Contains(rep.Reason, "privileged-pod") {
		t.Fatalf("verdict %s: %s", rep.Verdict, rep.Reason)
	}
	found := false
	for _, f := range rep.Findings {
		found = found || f.Rule == "privileged-pod"
	}
	if !found {
		t.Errorf("the report's findings in the blast radius lack privileged-pod: %+v", rep.Findings)
	}
	if n := w.leftovers(rep.RunID); n != 0 {
		t.Errorf("%d objects or records left", n)
	}
}

// A dry run asks the injectors for each step's plan and changes nothing; a
// step the guard rails refuse comes back refused with the reason.
func TestDryRun(t *testing.T) {
	w := newWorld(t)
	e := w.experiment("dry", "< 0.1", `  - fault: network-partition
    duration: 60s
    network_partition: {direction: ingress}
  - fault: pod-kill
    duration: 10s
    mode: {type: count, value: 2}
`)
	ready := func() int {
		pods, err := w.kube.CoreV1().Pods(w.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "track=canary"})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, p := range pods.Items {
			if servesTraffic(&p) {
				n++
			}
		}
		return n
	}
	before := ready()
	plans, err := DryRun(context.Background(), Options{Experiment: e, Bus: w.bus, Cluster: testCluster, Key: w.key}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(plans) != 2 || plans[0].Phase != schemas.PhasePlanned || len(plans[0].Affected) == 0 || len(plans[0].RevertSteps) == 0 {
		t.Fatalf("step 0: %+v", plans[0])
	}
	// Both canary pods are 100% of their workload's ready pods.
	if plans[1].Phase != schemas.PhaseRefused || plans[1].ReasonCode != "blast-radius" {
		t.Fatalf("step 1: %+v", plans[1])
	}
	nps, err := w.kube.NetworkingV1().NetworkPolicies(w.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil || len(nps.Items) != 0 {
		t.Errorf("a dry run left %d NetworkPolicies (%v)", len(nps.Items), err)
	}
	if after := ready(); after != before || before != 2 {
		t.Errorf("%d canary pods serve traffic after the dry run, %d before; want 2 untouched", after, before)
	}
}
