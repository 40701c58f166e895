package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/faultline/faultline/internal/testprom"
	"github.com/faultline/faultline/schemas"
)

// The dead-man switch with real processes: 'faultline experiment run' is
// killed with SIGKILL while its fault is applied; the injector (another
// process) reverts the fault once the run's heartbeat is older than the
// file's heartbeat_timeout, long before the fault's own 60s.
func TestExperimentRunnerSIGKILLDeadManSwitch(t *testing.T) {
	testprom.Require(t)
	// A healthy service for the steady-state hypothesis.
	reg := prometheus.NewRegistry()
	ratio := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "shop_error_ratio", Help: "Share of failing requests."}, []string{"namespace", "app"})
	reg.MustRegister(ratio)
	exporter := testprom.StartExporter(t, reg)
	prom := testprom.Start(t, testprom.Options{Targets: []string{exporter.Addr}, ScrapeInterval: 500 * time.Millisecond})

	w := newChaosWorldWith(t, "--collectors.metrics.promql.url", prom.URL)
	ratio.WithLabelValues(w.ns, "shop").Set(0)
	prom.WaitForSeries(t, fmt.Sprintf(`shop_error_ratio{namespace=%q}`, w.ns), 30*time.Second)
	inj, _ := w.startInjector()
	t.Cleanup(func() { inj.stop(t, 30*time.Second) })

	file := filepath.Join(w.dir, "deadman.yaml")
	doc := fmt.Sprintf(`name: deadman
cluster: e2e
groups:
  control: {namespace: %s, selector: {matchLabels: {app: shop, track: control}}}
  experimental: {namespace: %s, selector: {matchLabels: {app: shop}, matchExpressions: [{key: track, operator: DoesNotExist}]}}
interval: 1s
warmup: 2s
heartbeat_timeout: 2s
steady_state:
  - name: errors
    promql: max(shop_error_ratio{namespace="{{.Namespace}}"})
    tolerance: "< 0.1"
method:
  - fault: network-partition
    duration: 60s
    network_partition: {direction: both}
`, w.ns, w.ns)
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	run := exec.Command(binary, append([]string{"experiment", "run", file, "--key", w.keyFile}, w.common()...)...)
	var out bytes.Buffer
	run.Stdout, run.Stderr = &out, &out
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = run.Process.Kill() })
	applied := w.waitPhase("", schemas.PhaseApplied, 60*time.Second)
	if n := w.policies(); n != 1 {
		t.Fatalf("%d NetworkPolicies while the experiment runs, want 1\n%s", n, out.String())
	}
	if err := run.Process.Kill(); err != nil { // SIGKILL: no abort, no heartbeat any more
		t.Fatal(err)
	}
	_ = run.Wait()
	killed := time.Now()
	reverted := w.waitPhase(applied.CommandID, schemas.PhaseReverted, 30*time.Second)
	if !strings.Contains(reverted.Reason, "stopped heartbeating") {
		t.Errorf("reverted for %q, want the experiment's heartbeat", reverted.Reason)
	}
	if w.policies() != 0 {
		t.Fatal("the NetworkPolicy outlived the dead runner")
	}
	if reverted.Time.After(applied.Deadline.Add(-30 * time.Second)) {
		t.Errorf("reverted at %v, not long before the fault's deadline %v", reverted.Time, *applied.Deadline)
	}
	t.Logf("fault reverted %v after the runner was killed (heartbeat_timeout 2s)", time.Since(killed).Round(time.Millisecond))
}
