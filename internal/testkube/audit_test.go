package testkube_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"

	"github.com/faultline/faultline/internal/testkube"
)

// wantAudit is one request the test makes and expects to see audited.
type wantAudit struct {
	user, verb, resource string
	name                 string // empty: any
	code                 int32
}

func (w wantAudit) matches(e auditv1.Event, namespace string) bool {
	return e.Stage == auditv1.StageResponseComplete &&
		e.User.Username == w.user && e.Verb == w.verb &&
		e.ObjectRef != nil && e.ObjectRef.Resource == w.resource &&
		e.ObjectRef.Namespace == namespace && (w.name == "" || e.ObjectRef.Name == w.name) &&
		e.ResponseStatus != nil && e.ResponseStatus.Code == w.code
}

func TestAuditWebhookAndLog(t *testing.T) {
	c := kube.Get(t)
	ctx := testContext(t, 90*time.Second)
	admin, user := clients(t, c)
	ns := newNamespace(ctx, t, c, admin, "audit-")

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.invalid/web:1"}}},
	}
	if _, err := admin.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod: %v", err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db"}, StringData: map[string]string{"password": "hunter2"}}
	if _, err := admin.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create secret: %v", err)
	}
	if _, err := admin.CoreV1().Secrets(ns).Get(ctx, "db", metav1.GetOptions{}); err != nil {
		t.Fatalf("get secret: %v", err)
	}
	event := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "web.audit-test"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "web", APIVersion: "v1"},
		Reason:         "AuditTest",
		Message:        "made by TestAuditWebhookAndLog",
		Type:           corev1.EventTypeNormal,
		Source:         corev1.EventSource{Component: "testkube"},
		FirstTimestamp: metav1.Now(),
		LastTimestamp:  metav1.Now(),
		Count:          1,
	}
	if _, err := admin.CoreV1().Events(ns).Create(ctx, event, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create event: %v", err)
	}
	if err := admin.CoreV1().Pods(ns).Delete(ctx, "web", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatalf("delete pod: %v", err)
	}
	_, err := user.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("low-privilege user listing secrets: got %v, want 403 Forbidden", err)
	}

	wants := []wantAudit{
		{testkube.AdminUser, "create", "pods", "", 201},
		{testkube.AdminUser, "create", "secrets", "", 201},
		{testkube.AdminUser, "get", "secrets", "db", 200},
		{testkube.AdminUser, "create", "events", "", 201},
		{testkube.AdminUser, "delete", "pods", "web", 200},
		{testkube.LowPrivUser, "list", "secrets", "", 403},
	}
	found := make([]auditv1.Event, len(wants))
	t.Cleanup(func() {
		for i, w := range wants {
			if found[i].AuditID == "" {
				t.Logf("never received: %+v", w)
			}
		}
	})
	receiver.waitFor(ctx, t, "the test's requests at the audit webhook", func(events []auditv1.Event) bool {
		missing := false
		for i, w := range wants {
			if found[i].AuditID != "" {
				continue
			}
			for _, e := range events {
				if w.matches(e, ns) {
					found[i] = e
					break
				}
			}
			missing = missing || found[i].AuditID == ""
		}
		return !missing
	})

	forbidden := found[len(found)-1]
	if got := forbidden.Annotations["authorization.k8s.io/decision"]; got != "forbid" {
		t.Errorf("403 event: annotation authorization.k8s.io/decision = %q, want forbid (annotations %v)", got, forbidden.Annotations)
	}
	if got := found[2].Annotations["authorization.k8s.io/decision"]; got != "allow" {
		t.Errorf("admin's get secret: annotation authorization.k8s.io/decision = %q, want allow", got)
	}
	// The default policy keeps secrets at Metadata: no value may leak.
	if found[1].RequestObject != nil || found[1].Level != auditv1.LevelMetadata {
		t.Errorf("create secret audited at %s with a request object; want Metadata without", found[1].Level)
	}
	if found[0].RequestObject == nil || found[0].Level != auditv1.LevelRequest {
		t.Errorf("create pod audited at %s, request object %v; want Request with the pod", found[0].Level, found[0].RequestObject != nil)
	}

	// The audit log holds the same audit IDs; it is written before each
	// response, but wait for it all the same rather than assume.
	want := map[string]bool{}
	for _, e := range found {
		want[string(e.AuditID)] = true
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		missing, err := missingFromLog(c.AuditLogPath, want)
		if err != nil {
			t.Fatal(err)
		}
		if len(missing) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("audit log %s lacks audit IDs %v", c.AuditLogPath, missing)
		case <-tick.C:
		}
	}
}

// missingFromLog returns the audit IDs of want that have no ResponseComplete
// event in the audit log at path.
func missingFromLog(path string, want map[string]bool) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	have := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		var e auditv1.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("audit log %s: %w", path, err)
		}
		if e.APIVersion != "audit.k8s.io/v1" || e.Kind != "Event" {
			return nil, fmt.Errorf("audit log %s: line of apiVersion %q kind %q, want audit.k8s.io/v1 Event", path, e.APIVersion, e.Kind)
		}
		if e.Stage == auditv1.StageResponseComplete {
			have[string(e.AuditID)] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	var missing []string
	for id := range want {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	return missing, nil
}
