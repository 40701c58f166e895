package testkube_test

import (
	"context"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// eventRecorder keeps the Events an informer delivers, by reason.
type eventRecorder struct {
	mu       sync.Mutex
	byReason map[string][]*corev1.Event
}

func (r *eventRecorder) add(obj any) {
	e, ok := obj.(*corev1.Event)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byReason[e.Reason] = append(r.byReason[e.Reason], e)
}

func (r *eventRecorder) get(reason string) []*corev1.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*corev1.Event(nil), r.byReason[reason]...)
}

// watchEvents runs an Event informer on namespace until the test ends.
func watchEvents(ctx context.Context, t *testing.T, client kubernetes.Interface, namespace string) *eventRecorder {
	t.Helper()
	rec := &eventRecorder{byReason: map[string][]*corev1.Event{}}
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(namespace))
	inf := factory.Core().V1().Events().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    rec.add,
		UpdateFunc: func(_, obj any) { rec.add(obj) },
	}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	factory.Start(stop)
	t.Cleanup(func() {
		close(stop)
		factory.Shutdown() // waits for the informer's goroutines
	})
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			t.Fatalf("informer for %v did not sync", typ)
		}
	}
	return rec
}

func TestDeploymentYieldsReplicaSetPodsAndEvents(t *testing.T) {
	c := kube.Get(t)
	ctx := testContext(t, 90*time.Second)
	admin, _ := clients(t, c)
	ns := newNamespace(ctx, t, c, admin, "deploy-")
	events := watchEvents(ctx, t, admin, ns)

	replicas := int32(2)
	labels := map[string]string{"app": "web"}
	_, err := admin.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "registry.invalid/web:1"}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create deployment: %v", err)
	}

	var rs appsv1.ReplicaSet
	poll(ctx, t, "a ReplicaSet owned by deployment web", func(ctx context.Context) (bool, error) {
		list, err := admin.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, r := range list.Items {
			if owner := metav1.GetControllerOf(&r); owner != nil && owner.Kind == "Deployment" && owner.Name == "web" {
				rs = r
				return true, nil
			}
		}
		return false, nil
	})
	poll(ctx, t, "2 pods owned by ReplicaSet "+rs.Name, func(ctx context.Context) (bool, error) {
		list, err := admin.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		n := 0
		for _, p := range list.Items {
			if owner := metav1.GetControllerOf(&p); owner != nil && owner.UID == rs.UID {
				n++
			}
		}
		return n == int(replicas), nil
	})

	// Each controller reports on the object it acted on.
	wants := []struct{ reason, kind, name, component string }{
		{"ScalingReplicaSet", "Deployment", "web", "deployment-controller"},
		{"SuccessfulCreate", "ReplicaSet", rs.Name, "replicaset-controller"},
		{"FailedScheduling", "Pod", "", "default-scheduler"}, // no nodes
	}
	for _, w := range wants {
		poll(ctx, t, "a "+w.reason+" Event from the informer", func(context.Context) (bool, error) {
			for _, e := range events.get(w.reason) {
				component := e.Source.Component
				if component == "" {
					component = e.ReportingController
				}
				if e.InvolvedObject.Kind == w.kind && (w.name == "" || e.InvolvedObject.Name == w.name) && component == w.component {
					return true, nil
				}
			}
			return false, nil
		})
	}
}

// poll calls cond every 100ms until it returns true, failing the test when
// it errs or ctx ends.
func poll(ctx context.Context, t *testing.T, what string, cond wait.ConditionWithContextFunc) {
	t.Helper()
	if err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}
