package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/bus/bustest"
	"github.com/faultline/faultline/injectors"
	"github.com/faultline/faultline/injectors/injectortest"
	"github.com/faultline/faultline/internal/testkube"
	"github.com/faultline/faultline/schemas"
)

// chaosWorld is a real API server with an opted-in namespace and a
// four-pod workload, a 'faultline run' process hosting the bus on a
// loopback port, a signing key made with 'fault keygen', and a watcher of
// the fault statuses.
type chaosWorld struct {
	t        *testing.T
	bus      *bus.Bus
	dir      string
	cluster  *testkube.Cluster
	kube     kubernetes.Interface
	ns       string
	work     *injectortest.Workload
	busURL   string
	keyFile  string
	pub      string
	statuses chan *schemas.FaultStatus
}

func newChaosWorld(t *testing.T) *chaosWorld {
	t.Helper()
	return newChaosWorldWith(t)
}

// newChaosWorldWith passes runArgs to the 'faultline run' bus host.
func newChaosWorldWith(t *testing.T, runArgs ...string) *chaosWorld {
	t.Helper()
	w := &chaosWorld{t: t, dir: t.TempDir(), statuses: make(chan *schemas.FaultStatus, 100)}
	w.cluster = testkube.StartT(t, injectortest.Options())
	w.kube = injectortest.Admin(t, w.cluster)
	w.ns = injectortest.Namespace(t, w.kube, injectortest.NamespaceOptions{OptIn: true})
	nodes := injectortest.Nodes(t, w.kube, injectortest.Name("node-"))
	w.work = injectortest.NewWorkload(t, w.kube, w.ns, injectortest.WorkloadOptions{Name: "shop", Replicas: 4, Nodes: nodes})

	w.keyFile = filepath.Join(w.dir, "issuer.nk")
	out, err := exec.Command(binary, "fault", "keygen", "--out", w.keyFile).Output()
	if err != nil {
		t.Fatalf("fault keygen: %v", err)
	}
	w.pub = strings.TrimSpace(string(out))
	if !strings.HasPrefix(w.pub, "U") {
		t.Fatalf("keygen printed %q, want a public user NKey", w.pub)
	}
	if err := exec.Command(binary, "fault", "keygen", "--out", w.keyFile).Run(); err == nil {
		t.Fatal("keygen overwrote an existing key file")
	}

	port := freePort(t)
	w.busURL = fmt.Sprintf("nats://127.0.0.1:%d", port)
	host, _ := startProcess(t, 60*time.Second, "faultline running", "bus", append([]string{"run", "--cluster", "e2e",
		"--data-dir", filepath.Join(w.dir, "data"), "--bus.embedded.listen", fmt.Sprintf("127.0.0.1:%d", port), "--http.listen", ""}, runArgs...)...)
	t.Cleanup(func() { host.stop(t, 30*time.Second) })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, bus.Options{URLs: []string{w.busURL}, Logger: bustest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	w.bus = b
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	sub, err := b.Conn().Subscribe(bus.PrefixFaultStatus+".e2e.>", func(m *nats.Msg) {
		env, err := schemas.DecodeEnvelope(m.Data)
		if err != nil {
			return
		}
		var st schemas.FaultStatus
		if json.Unmarshal(env.Data, &st) == nil {
			w.statuses <- &st
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return w
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (w *chaosWorld) common() []string {
	return []string{"--cluster", "e2e", "--bus.urls", w.busURL, "--log-level", "warn"}
}

// startInjector runs 'faultline injector' with fast heartbeats and returns
// the process and its replica id.
func (w *chaosWorld) startInjector() (*process, string) {
	w.t.Helper()
	args := append([]string{"injector", "--http.listen", "", "--kubeconfig", w.cluster.Admin.Kubeconfig,
		"--injectors.guard.allowed-namespaces", w.ns, "--injectors.guard.trusted-keys", w.pub,
		"--injectors.lifecycle.heartbeat-interval", "200ms", "--injectors.lifecycle.heartbeat-timeout", "1s",
		"--injectors.lifecycle.reconcile-interval", "200ms"}, w.common()...)
	args = append(args[:len(args)-2], "--log-level", "info")
	p, id := startProcess(w.t, 60*time.Second, "injector started", "injector", args...)
	// Its command consumer delivers only what is published after it
	// exists, a moment after that log line.
	bustest.WaitFor(w.t, 30*time.Second, "the injector's consumer", func() bool {
		_, err := w.bus.JetStream().Consumer(context.Background(), bus.StreamFault, "injector-e2e")
		return err == nil
	})
	return p, id
}

// inject runs 'faultline inject' to completion.
func (w *chaosWorld) inject(args ...string) (stdout, stderr string, err error) {
	cmd := exec.Command(binary, append(append([]string{"inject"}, args...), append([]string{"--key", w.keyFile}, w.common()...)...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// waitPhase waits for a status of phase (of any command when cmdID is "").
func (w *chaosWorld) waitPhase(cmdID string, phase schemas.FaultPhase, within time.Duration) *schemas.FaultStatus {
	w.t.Helper()
	deadline := time.After(within)
	for {
		select {
		case st := <-w.statuses:
			if st.Phase == phase && (cmdID == "" || st.CommandID == cmdID) {
				return st
			}
		case <-deadline:
			w.t.Fatalf("no %s status within %v", phase, within)
			return nil
		}
	}
}

func (w *chaosWorld) policies() int {
	w.t.Helper()
	l, err := w.kube.NetworkingV1().NetworkPolicies(w.ns).List(context.Background(), metav1.ListOptions{LabelSelector: injectors.LabelManagedBy + "=" + injectors.ManagedBy})
	if err != nil {
		w.t.Fatal(err)
	}
	return len(l.Items)
}

// An injector killed with SIGKILL right after applying a fault leaves it in
// the cluster; the restarted injector takes it over and reverts it by its
// deadline.
func TestInjectorSIGKILLFaultRevertedByDeadline(t *testing.T) {
	w := newChaosWorld(t)
	inj, id := w.startInjector()

	_, stderr, err := w.inject("network-partition", "-n", w.ns, "-l", "app=shop", "--direction", "ingress",
		"--duration", "10s", "--experiment", "sigkill", "--no-follow")
	if err != nil {
		t.Fatalf("inject: %v\n%s", err, stderr)
	}
	applied := w.waitPhase("", schemas.PhaseApplied, 30*time.Second)
	if applied.Injector != id {
		t.Fatalf("applied by %s, want %s", applied.Injector, id)
	}
	if err := inj.cmd.Process.Kill(); err != nil { // SIGKILL: no revert at shutdown
		t.Fatal(err)
	}
	_ = inj.cmd.Wait()
	if n := w.policies(); n != 1 {
		t.Fatalf("%d NetworkPolicies after the kill, want the fault's 1", n)
	}
	out, err := exec.Command(binary, append([]string{"fault", "list"}, w.common()...)...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), applied.CommandID) || !strings.Contains(string(out), "applied") {
		t.Fatalf("fault list while orphaned: %v\n%s", err, out)
	}

	_, id2 := w.startInjector()
	reverted := w.waitPhase(applied.CommandID, schemas.PhaseReverted, 30*time.Second)
	if reverted.Injector != id2 {
		t.Errorf("reverted by %s, want the restarted injector %s", reverted.Injector, id2)
	}
	if late := reverted.Time.Sub(*applied.Deadline); late > 3*time.Second {
		t.Errorf("reverted %v after the deadline", late)
	}
	if n := w.policies(); n != 0 {
		t.Fatalf("%d NetworkPolicies left after the revert", n)
	}
	pods, err := w.kube.CoreV1().Pods(w.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "faultline.io/partition"})
	if err != nil || len(pods.Items) != 0 {
		t.Fatalf("pods still labelled for the partition: %d (%v)", len(pods.Items), err)
	}
	out, err = exec.Command(binary, append([]string{"fault", "list"}, w.common()...)...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "no active faults") {
		t.Fatalf("fault list after the revert: %v\n%s", err, out)
	}
}

// inject follows its fault; 'fault abort' reverts it and reports when every
// revert is confirmed; a dry run changes nothing; a refusal exits 1 with
// its reason.
func TestInjectFollowAbortDryRun(t *testing.T) {
	w := newChaosWorld(t)
	inj, _ := w.startInjector()
	t.Cleanup(func() { inj.stop(t, 30*time.Second) })

	stdout, stderr, err := w.inject("network-partition", "-n", w.ns, "--names", w.work.Pods[0].Name, "--direction", "both", "--dry-run")
	if err != nil {
		t.Fatalf("dry run: %v\n%s", err, stderr)
	}
	if !strings.Contains(stdout, `"phase":"planned"`) || !strings.Contains(stderr, "revert:") {
		t.Errorf("dry run output:\n%s\n%s", stdout, stderr)
	}
	if w.policies() != 0 {
		t.Fatal("a dry run created a NetworkPolicy")
	}

	_, stderr, err = w.inject("pod-kill", "-n", w.ns, "-l", "app=shop", "--count", "3")
	var ee *exec.ExitError
	if err == nil || !asExit(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(stderr, "blast-radius") {
		t.Fatalf("a command over the blast radius: %v\n%s", err, stderr)
	}

	cmd := exec.Command(binary, append([]string{"inject", "network-partition", "-n", w.ns, "--names", w.work.Pods[1].Name,
		"--duration", "5m", "--experiment", "abort-me", "--key", w.keyFile}, w.common()...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	w.waitPhase("", schemas.PhaseApplied, 30*time.Second)
	abort, err := exec.Command(binary, append([]string{"fault", "abort", "--experiment", "abort-me", "--reason", "test"}, w.common()...)...).CombinedOutput()
	if err != nil || !strings.Contains(string(abort), "every fault of experiment abort-me is reverted") {
		t.Fatalf("fault abort: %v\n%s", err, abort)
	}
	if w.policies() != 0 {
		t.Fatal("NetworkPolicy left after the abort")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("inject after the abort: %v\n%s", err, errb.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("inject did not end after its fault was reverted")
	}
	for _, phase := range []string{"accepted", "applied", "reverted"} {
		if !strings.Contains(errb.String(), phase) {
			t.Errorf("inject progress lacks %s:\n%s", phase, errb.String())
		}
	}
}

func asExit(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	*target = e
	return ok
}
