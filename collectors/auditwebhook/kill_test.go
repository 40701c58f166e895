package auditwebhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/bus/bustest"
	"github.com/faultline/faultline/internal/testkube"
)

// TestKillDuringDelivery runs the receiver as a process of its own, lets a
// real API server send it a steady stream of audit events, kills it with
// SIGKILL twice while it is receiving and restarts it at once. Afterwards the
// bus must hold every event of the API server's own audit log, none twice:
// events acknowledged before a kill are not lost, and the batches the API
// server retries after a kill are not stored again.
func TestKillDuringDelivery(t *testing.T) {
	p := newPKI(t)
	srv := bustest.StartServer(t)
	b := bustest.Connect(t, srv, bus.Options{})
	cfg := p.testConfig()
	cfg.Listen = "127.0.0.1:" + freePort(t)
	url := "https://" + cfg.Listen + cfg.Path
	spec, err := json.Marshal(childSpec{NATS: srv.ClientURL(), Cluster: testCluster, Config: cfg})
	must(t, err)
	logDir := t.TempDir()

	var runs int
	var child *exec.Cmd
	startChild := func() {
		t.Helper()
		runs++
		logf, err := os.Create(filepath.Join(logDir, fmt.Sprintf("receiver-%d.log", runs)))
		must(t, err)
		defer logf.Close()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
		cmd.Stdout, cmd.Stderr = logf, logf
		must(t, cmd.Start())
		child = cmd
		client := p.client()
		defer client.CloseIdleConnections()
		deadline := time.Now().Add(20 * time.Second)
		for {
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Header.Set("Authorization", "Bearer "+p.token)
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusMethodNotAllowed {
					return
				}
			}
			if time.Now().After(deadline) {
				log, _ := os.ReadFile(logf.Name())
				t.Fatalf("receiver %d not answering within 20s:\n%s", runs, log)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	kill := func() {
		t.Helper()
		must(t, child.Process.Signal(syscall.SIGKILL))
		_ = child.Wait()
	}
	startChild()
	t.Cleanup(func() {
		if child.ProcessState == nil {
			_ = child.Process.Signal(syscall.SIGTERM)
			_ = child.Wait()
		}
	})

	c := testkube.StartT(t, testkube.Options{
		AuditPolicy: everythingPolicy,
		AuditWebhook: &testkube.AuditWebhook{
			URL: url, CAPEM: p.ca.CertPEM, Token: p.token,
			ClientCertPEM: p.clientCertPEM, ClientKeyPEM: p.clientKeyPEM,
			BatchMaxWait: 50 * time.Millisecond,
			// The API server retries a failed batch after 1s, 1.5s, 2.25s
			// and 3.4s, then drops it: the restart must fit in that.
			InitialBackoff: time.Second,
		},
	})
	admin, err := kubernetes.NewForConfig(c.Admin.RESTConfig())
	must(t, err)

	// A steady stream of requests, owned by this test.
	loadCtx, stopLoad := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var requests atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; loadCtx.Err() == nil; i++ {
			name := "cm-" + strconv.Itoa(i)
			_, err := admin.CoreV1().ConfigMaps("default").Create(loadCtx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"i": strconv.Itoa(i)}}, metav1.CreateOptions{})
			if err == nil && i%2 == 0 {
				err = admin.CoreV1().ConfigMaps("default").Delete(loadCtx, name, metav1.DeleteOptions{})
			}
			if err != nil && loadCtx.Err() == nil {
				t.Errorf("load: %v", err)
				return
			}
			requests.Add(1)
		}
	}()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			stopLoad()
			wg.Wait()
		}
	}
	defer stop()

	stored := func() uint64 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := b.JetStream().Stream(ctx, bus.StreamAudit)
		must(t, err)
		info, err := s.Info(ctx)
		must(t, err)
		return info.State.Msgs
	}
	for round := 1; round <= 2; round++ {
		base := stored()
		bustest.WaitFor(t, 60*time.Second, "audit events flowing to the receiver", func() bool { return stored() >= base+200 })
		kill()
		t.Logf("kill %d: receiver killed with %d events stored and %d requests made", round, stored(), requests.Load())
		startChild()
	}
	base := stored()
	bustest.WaitFor(t, 60*time.Second, "audit events flowing after the last restart", func() bool { return stored() >= base+200 })
	stop()

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	logIDs := auditLogIDs(t, c.AuditLogPath)
	var onBus map[string]int
	waitUntil(ctx, t, "every audit log event on the bus", func() bool {
		onBus = auditIDs(t, readStream(t, b, bus.StreamAudit, ""))
		return len(missing(logIDs, onBus)) == 0
	}, func() string {
		return fmt.Sprintf("%d of %d missing, e.g. %v", len(missing(logIDs, onBus)), len(logIDs), first(missing(logIDs, onBus), 5))
	})
	twice := 0
	for id, n := range onBus {
		if n != 1 {
			twice++
			t.Errorf("event %s stored %d times", id, n)
		}
	}
	t.Logf("%d requests, %d audit log events, %d on the bus, %d stored more than once, %d receiver runs",
		requests.Load(), len(logIDs), len(onBus), twice, runs)
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	must(t, err)
	return port
}
