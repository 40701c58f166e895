package experiment

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/schemas"
)

// BenchmarkAbortAfterDeviation runs experiments whose partition of one
// canary pod raises its error ratio, and measures until every fault is
// reverted as the API server and KV confirm (the runner returns only then,
// and the test checks nothing is left): from the first failing evaluation
// reaching the bus (hysteresis included), and from the evaluation that
// established the deviation. Run it with -benchtime=Nx.
func BenchmarkAbortAfterDeviation(b *testing.B) {
	w := newWorld(b)
	var mu sync.Mutex
	firstFailing := map[string]time.Time{}
	deviated := map[string]time.Time{}
	sub, err := w.bus.Conn().Subscribe(bus.PrefixDeviation+"."+testCluster+".*", func(m *nats.Msg) {
		env, err := schemas.DecodeEnvelope(m.Data)
		if err != nil {
			return
		}
		var d schemas.Deviation
		if json.Unmarshal(env.Data, &d) != nil {
			return
		}
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		switch d.Verdict {
		case schemas.VerdictFailing:
			if _, ok := firstFailing[d.ExperimentID]; !ok {
				firstFailing[d.ExperimentID] = now
			}
		case schemas.VerdictDeviated:
			if _, ok := deviated[d.ExperimentID]; !ok {
				deviated[d.ExperimentID] = now
			}
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	var fromFailing, fromDeviated []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		e := w.experiment(fmt.Sprintf("bench-%d", i), "< 0.1", `  - fault: network-partition
    duration: 60s
    network_partition: {direction: both}
`)
		rep := w.runExperiment(context.Background(), e)
		done := time.Now()
		if rep.Verdict != VerdictDeviated {
			b.Fatalf("run %d: verdict %s: %s", i, rep.Verdict, rep.Reason)
		}
		if n := w.leftovers(rep.RunID); n != 0 {
			b.Fatalf("run %d: %d objects or records left", i, n)
		}
		mu.Lock()
		fromFailing = append(fromFailing, done.Sub(firstFailing[rep.RunID]))
		fromDeviated = append(fromDeviated, done.Sub(deviated[rep.RunID]))
		mu.Unlock()
	}
	b.StopTimer()
	report := func(name string, d []time.Duration) {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		p := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
		b.ReportMetric(float64(p(0.5).Microseconds())/1000, name+"-p50-ms")
		b.ReportMetric(float64(p(0.99).Microseconds())/1000, name+"-p99-ms")
		b.Logf("%s: p50 %v, p99 %v over %d runs", name, p(0.5), p(0.99), len(d))
	}
	report("from-first-failing", fromFailing)
	report("from-deviated", fromDeviated)
	b.ReportMetric(0, "ns/op")
}

// BenchmarkAbortAfterFinding measures from a high-severity finding reaching
// the bus (the rules analyzer's privileged-pod on a replayed audit event in
// the experimental namespace) to every fault of the run reverted as the API
// server and KV confirm.
func BenchmarkAbortAfterFinding(b *testing.B) {
	w := newWorld(b)
	w.startRules()
	var mu sync.Mutex
	var found time.Time
	sub, err := w.bus.Conn().Subscribe(bus.PrefixFinding+"."+testCluster+".>", func(*nats.Msg) {
		mu.Lock()
		if found.IsZero() {
			found = time.Now()
		}
		mu.Unlock()
	})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	var took []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		e := w.experiment(fmt.Sprintf("finding-bench-%d", i), "< 0.1", `  - fault: resource-starvation
    duration: 60s
    resource_starvation: {cpu_workers: 1}
`)
		done := make(chan *Report, 1)
		go func() { done <- w.runExperiment(context.Background(), e) }()
		deadline := time.Now().Add(30 * time.Second)
		for w.stressPods() == 0 {
			if time.Now().After(deadline) {
				b.Fatal("the fault was never applied")
			}
			time.Sleep(20 * time.Millisecond)
		}
		mu.Lock()
		found = time.Time{}
		mu.Unlock()
		w.publishAudit("../../analyzers/rules/testdata/recorded/privileged-pod.pos.jsonl", "payments")
		rep := <-done
		end := time.Now()
		if rep.Verdict != VerdictAborted || w.leftovers(rep.RunID) != 0 {
			b.Fatalf("run %d: verdict %s, %d left: %s", i, rep.Verdict, w.leftovers(rep.RunID), rep.Reason)
		}
		mu.Lock()
		took = append(took, end.Sub(found))
		mu.Unlock()
	}
	b.StopTimer()
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	p := func(q float64) time.Duration { return took[min(len(took)-1, int(q*float64(len(took))))] }
	b.ReportMetric(float64(p(0.5).Microseconds())/1000, "from-finding-p50-ms")
	b.ReportMetric(float64(p(0.99).Microseconds())/1000, "from-finding-p99-ms")
	b.ReportMetric(0, "ns/op")
	b.Logf("from the finding on the bus to every fault reverted: p50 %v, p99 %v over %d runs", p(0.5), p(0.99), len(took))
}
