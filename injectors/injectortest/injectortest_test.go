package injectortest_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/faultline/faultline/injectors/injectortest"
)

var kube = injectortest.NewShared()

func TestMain(m *testing.M) { injectortest.Main(m, kube) }

// A workload's pods are bound, owned by their ReplicaSet and ready; and
// the harness deletes a bound pod as a cluster without kubelet does: at
// once with grace 0, never (Terminating) with grace > 0.
func TestWorkloadAndDeletion(t *testing.T) {
	admin := injectortest.Admin(t, kube.Get(t))
	ns := injectortest.Namespace(t, admin, injectortest.NamespaceOptions{OptIn: true})
	got, err := admin.CoreV1().Namespaces().Get(t.Context(), ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Labels[injectortest.OptInLabelKey] != injectortest.OptInLabelValue {
		t.Errorf("namespace labels %v: no opt-in label", got.Labels)
	}
	nodes := injectortest.Nodes(t, admin, injectortest.Name("node-a-"), injectortest.Name("node-b-"))
	w := injectortest.NewWorkload(t, admin, ns, injectortest.WorkloadOptions{Name: "shop", Replicas: 3, Nodes: nodes})
	if len(w.Pods) != 3 {
		t.Fatalf("%d pods, want 3", len(w.Pods))
	}
	for i, p := range w.Pods {
		if p.Spec.NodeName != nodes[i%2] {
			t.Errorf("pod %s on node %q, want %q", p.Name, p.Spec.NodeName, nodes[i%2])
		}
		ref := metav1.GetControllerOf(&p)
		if ref == nil || ref.UID != w.ReplicaSet.UID {
			t.Errorf("pod %s: controller %v, want the ReplicaSet %s", p.Name, ref, w.ReplicaSet.UID)
		}
		if !ready(&p) || p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
			t.Errorf("pod %s is not running and ready: %+v", p.Name, p.Status)
		}
	}

	pods := admin.CoreV1().Pods(ns)
	if err := pods.Delete(t.Context(), w.Pods[0].Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))}); err != nil {
		t.Fatal(err)
	}
	injectortest.WaitPodGone(t, admin, ns, w.Pods[0].Name, w.Pods[0].UID)

	if err := pods.Delete(t.Context(), w.Pods[1].Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(5))}); err != nil {
		t.Fatal(err)
	}
	injectortest.WaitPodState(t, admin, ns, w.Pods[1].Name, w.Pods[1].UID, injectortest.PodTerminating)
	if err := injectortest.ForceDelete(t.Context(), admin, ns, w.Pods[1].Name); err != nil {
		t.Fatal(err)
	}
	injectortest.WaitPodGone(t, admin, ns, w.Pods[1].Name, w.Pods[1].UID)
	if err := injectortest.ForceDelete(t.Context(), admin, ns, w.Pods[1].Name); err != nil {
		t.Errorf("second force delete: %v", err)
	}
	injectortest.WaitGone(t, "pod "+w.Pods[1].Name, func(ctx context.Context) error {
		_, err := pods.Get(ctx, w.Pods[1].Name, metav1.GetOptions{})
		return err
	})

	unbound := injectortest.NewWorkload(t, admin, ns, injectortest.WorkloadOptions{Name: "pending"})
	if p := unbound.Pods[0]; p.Spec.NodeName != "" || ready(&p) {
		t.Errorf("unbound pod %s: node %q, ready %v", p.Name, p.Spec.NodeName, ready(&p))
	}
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
