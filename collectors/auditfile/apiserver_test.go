package auditfile

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/bus/bustest"
	"github.com/faultline/faultline/internal/testkube"
	"github.com/faultline/faultline/schemas"
)

// bulkyPolicy logs ConfigMaps with their objects, so that a little traffic
// makes the API server rotate its 1 MB log files, and Secrets with theirs,
// which the collector must redact.
const bulkyPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages:
  - RequestReceived
rules:
  - level: None
    nonResourceURLs: ["/healthz*", "/livez*", "/readyz*"]
  - level: RequestResponse
    resources:
      - group: ""
        resources: ["configmaps", "secrets"]
  - level: Request
    verbs: ["create", "update", "patch", "delete"]
  - level: Metadata
`

// TestRealAPIServerAuditLog follows the audit log of a real kube-apiserver
// that rotates it (1 MB files, compressed) while client-go works against
// it as an admin and as a user without rights; the collector is restarted
// half-way. Every audit event the API server wrote is on the bus exactly
// once.
func TestRealAPIServerAuditLog(t *testing.T) {
	c := testkube.StartT(t, testkube.Options{
		AuditPolicy:   bulkyPolicy,
		APIServerArgs: []string{"--audit-log-maxsize=1", "--audit-log-maxbackup=50", "--audit-log-compress"},
	})
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	admin, err := kubernetes.NewForConfig(c.Admin.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	user, err := kubernetes.NewForConfig(c.User.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := bustest.Start(t)
	cfg := testConfig(c.AuditLogPath)
	cfg.PollInterval = 50 * time.Millisecond
	r := start(t, b, cfg)

	traffic(ctx, t, admin, user, "round-1", 60)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	traffic(ctx, t, admin, user, "round-2", 60) // written while it is down
	r2 := start(t, b, cfg)
	traffic(ctx, t, admin, user, "round-3", 60)

	// Let the API server finish compressing, then read what it wrote.
	dir := filepath.Dir(c.AuditLogPath)
	bustest.WaitFor(t, 30*time.Second, "rotated files compressed", func() bool {
		plain, gz := countRotated(t, dir)
		return plain == 0 && gz >= 2
	})
	want := auditIDsInLogs(t, dir)
	if len(want) < 500 {
		t.Fatalf("only %d audit events in the API server's logs", len(want))
	}
	stored := map[string]int{}
	var missing []string
	deadline := time.Now().Add(60 * time.Second)
	for {
		clear(stored)
		for _, id := range streamIDs(t, b, bus.StreamAudit) {
			stored[id]++
		}
		missing = missing[:0]
		for id := range want {
			if stored[id] == 0 {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			for file, ids := range auditIDsByFile(t, dir) {
				n := 0
				for _, id := range missing {
					if ids[id] {
						n++
					}
				}
				t.Logf("%s: %d events, %d of them missing", file, len(ids), n)
			}
			t.Fatalf("after 60s, %d of the %d audit events of the API server's logs are not on the bus, e.g. %v",
				len(missing), len(want), missing[:min(5, len(missing))])
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := r2.stop(); err != nil {
		t.Fatal(err)
	}
	for id, n := range stored {
		if n != 1 {
			t.Errorf("%s stored %d times", id, n)
		}
	}
	if d := r.duplicates() + r2.duplicates(); d != 0 {
		t.Errorf("%v events were sent twice", d)
	}
	if n := r.rejected(reasonInvalid) + r2.rejected(reasonInvalid) + r.rejected(reasonUnterminated) + r2.rejected(reasonUnterminated); n != 0 {
		t.Errorf("%v lines of the API server's log were rejected", n)
	}
	if !logsContain(t, dir, "aHVudGVyMg==") {
		t.Fatal("the API server's logs hold no secret value: the redaction check below would prove nothing")
	}
	for seq, data := range streamData(t, b, bus.StreamAudit) {
		for _, secret := range []string{"hunter2", "aHVudGVyMg=="} {
			if strings.Contains(data, secret) {
				t.Fatalf("message %d holds the secret value %q: %s", seq, secret, data)
			}
		}
	}
	if n := value(r.c.m.redacted) + value(r2.c.m.redacted); n < 18 {
		t.Errorf("%v events redacted, want at least 18 (Secret creations and reads)", n)
	}
	if m := value(r.c.m.checkpointMiss) + value(r2.c.m.checkpointMiss); m != 0 {
		t.Errorf("the collector lost track of a file %v times", m)
	}
	plain, gz := countRotated(t, dir)
	t.Logf("%d audit events in %d rotated files (+%d plain) and the active one; %d messages on the bus", len(want), gz, plain, len(stored))
}

// traffic makes n rounds of requests: ConfigMaps with 8 KiB of data
// (created, read, updated, deleted), Secrets, RBAC objects, Events, pods
// (refused: no service account without the controllers), and reads the user
// may not do.
func traffic(ctx context.Context, t *testing.T, admin, user kubernetes.Interface, prefix string, n int) {
	t.Helper()
	ns, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: prefix + "-" + randomHex()}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data := map[string]string{"blob": strings.Repeat("x", 8<<10)}
	for i := range n {
		name := fmt.Sprintf("cm-%d", i)
		cm, err := admin.CoreV1().ConfigMaps(ns.Name).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: data}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cm.Data["more"] = "y"
		if _, err := admin.CoreV1().ConfigMaps(ns.Name).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		_, _ = admin.CoreV1().ConfigMaps(ns.Name).Get(ctx, name, metav1.GetOptions{})
		if i%2 == 0 {
			_ = admin.CoreV1().ConfigMaps(ns.Name).Delete(ctx, name, metav1.DeleteOptions{})
		}
		if i%10 == 0 {
			s := fmt.Sprintf("secret-%d", i)
			_, _ = admin.CoreV1().Secrets(ns.Name).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: s},
				StringData: map[string]string{"password": "hunter2"}}, metav1.CreateOptions{})
			_, _ = admin.CoreV1().Secrets(ns.Name).Get(ctx, s, metav1.GetOptions{})
			_, _ = user.CoreV1().Secrets(ns.Name).Get(ctx, s, metav1.GetOptions{}) // forbidden
			_, _ = user.CoreV1().Pods(ns.Name).List(ctx, metav1.ListOptions{})     // forbidden
			_, _ = admin.RbacV1().Roles(ns.Name).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("r-%d", i)},
				Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}}}, metav1.CreateOptions{})
			_, _ = admin.CoreV1().Events(ns.Name).Create(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{GenerateName: "ev-"},
				InvolvedObject: corev1.ObjectReference{Kind: "ConfigMap", Namespace: ns.Name, Name: name}, Reason: "Test"}, metav1.CreateOptions{})
			_, _ = admin.CoreV1().Pods(ns.Name).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%d", i)},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}, metav1.CreateOptions{})
		}
	}
}

func randomHex() string { return fmt.Sprintf("%x", time.Now().UnixNano()&0xffffff) }

// countRotated counts the rotated files next to the audit log.
func countRotated(t testing.TB, dir string) (plain, gz int) {
	t.Helper()
	cs, err := newFileSet(filepath.Join(dir, "audit.log")).rotated()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.gz {
			gz++
		} else {
			plain++
		}
	}
	return plain, gz
}

// auditIDsInLogs reads every audit event id in the log directory, rotated
// (and compressed) files included, with a decoder independent of the
// collector's.
func auditIDsInLogs(t testing.TB, dir string) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	for _, m := range auditIDsByFile(t, dir) {
		for id := range m {
			ids[id] = true
		}
	}
	return ids
}

// auditIDsByFile reads the ids of each log file.
func auditIDsByFile(t testing.TB, dir string) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{}
	matches, err := filepath.Glob(filepath.Join(dir, "audit*.log*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range matches {
		ids := map[string]bool{}
		out[filepath.Base(path)] = ids
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = f
		if strings.HasSuffix(path, ".gz") {
			zr, err := gzip.NewReader(f)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			r = zr
		}
		br := bufio.NewReader(r)
		for {
			line, err := br.ReadBytes('\n')
			if err == io.EOF {
				break // a last line without '\n' is still being written
			}
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			var ev struct {
				AuditID string `json:"auditID"`
				Stage   string `json:"stage"`
			}
			if err := json.Unmarshal(line, &ev); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			ids[schemas.AuditEventID(ev.AuditID, ev.Stage)] = true
		}
		f.Close()
	}
	return out
}

// streamData returns the data of every message of stream by sequence.
func streamData(t testing.TB, b *bus.Bus, stream string) map[uint64]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := b.JetStream().Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64]string{}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		out[seq] = string(m.Data)
	}
	return out
}

// logsContain tells whether any audit log file in dir holds needle.
func logsContain(t testing.TB, dir, needle string) bool {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, "audit*.log*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range matches {
		c := candidate{path: path, gz: strings.HasSuffix(path, ".gz")}
		r, err := openContent(c)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), needle) {
			return true
		}
	}
	return false
}
