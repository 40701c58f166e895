package metrics

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/faultline/faultline/bus/bustest"
	"github.com/faultline/faultline/collectors"
	"github.com/faultline/faultline/internal/testkube"
	"github.com/faultline/faultline/schemas"
)

// Pods annotated prometheus.io/scrape are found through a real API server
// and scraped with their labels; a deleted pod's target is dropped.
func TestPodDiscovery(t *testing.T) {
	cluster := testkube.StartT(t, testkube.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kc, err := kubernetes.NewForConfig(cluster.Admin.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	ns := fmt.Sprintf("shop-%d", time.Now().UnixNano()%1e6)
	if _, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// No controller-manager here: create the ServiceAccount pods need.
	if _, err := kc.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	exp := startShopExporter(t)
	_, port, _ := net.SplitHostPort(exp.Addr)
	// The exporter stands in for the pods' containers: the pods get its
	// address as their IP (no kubelet runs here, so the test sets the
	// status as a kubelet would).
	makePod := func(name string, labels, annotations map[string]string, ip string) {
		t.Helper()
		f := false
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, Annotations: annotations},
			Spec: corev1.PodSpec{
				AutomountServiceAccountToken: &f,
				Containers: []corev1.Container{{Name: "web", Image: "shop:1",
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}},
			},
		}
		p, err := kc.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ip == "" {
			return
		}
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
		if _, err := kc.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	scrape := map[string]string{annotationScrape: "true", annotationPort: port, annotationPath: "/metrics"}
	makePod("web-control", map[string]string{"app": "shop", "group": "control"}, scrape, "127.0.0.1")
	makePod("web-experimental", map[string]string{"app": "shop", "group": "experimental"}, scrape, "127.0.0.1")
	makePod("not-annotated", map[string]string{"app": "shop"}, nil, "127.0.0.1")
	makePod("no-ip-yet", map[string]string{"app": "shop"}, scrape, "")
	makePod("other-app", map[string]string{"app": "db"}, scrape, "127.0.0.1")

	b, _ := bustest.Start(t)
	sink := watchBus(t, b)
	cfg := testConfig()
	cfg.Scrape.Pods = Pods{Enabled: true, Namespaces: []string{ns}, LabelSelector: "app=shop", CopyPodLabels: true, Format: FormatAuto}
	r := startCollector(t, b, cfg, func(d *collectors.Deps) { d.Kube = cluster.Admin.RESTConfig() })

	target := "http://" + net.JoinHostPort("127.0.0.1", port) + "/metrics"
	for _, group := range []string{"control", "experimental"} {
		pod := "web-" + group
		got := sink.waitFor(t, 30*time.Second, "samples of "+pod, 1, sampleIs(target, "shop_in_flight", map[string]string{"pod": pod}))
		s := got[0]
		want := map[string]string{"namespace": ns, "pod": pod, "app": "shop", "group": group, "instance": exp.Addr}
		for k, v := range want {
			if s.Labels[k] != v {
				t.Errorf("%s: label %s = %q, want %q (labels %v)", pod, k, s.Labels[k], v, s.Labels)
			}
		}
		// The series' own group label (control) is displaced by the pod's
		// when they differ.
		wantExported := map[string]string{"control": "", "experimental": "control"}[group]
		if s.Labels["exported_group"] != wantExported || s.Value != 12 {
			t.Errorf("%s: %+v", pod, s)
		}
	}
	if err := r.c.ready(ctx); err != nil {
		t.Errorf("not ready after the pods were listed: %v", err)
	}
	if n := r.metric(t, "faultline_metrics_pod_targets", nil); n != 2 {
		t.Errorf("pod_targets = %v, want 2 (not annotated, no IP and other app are not scraped)", n)
	}
	for _, pod := range []string{"not-annotated", "no-ip-yet", "other-app"} {
		if n := len(sink.match(func(s schemas.MetricSample) bool { return s.Labels["pod"] == pod })); n != 0 {
			t.Errorf("%d samples from %s", n, pod)
		}
	}

	// A pod that gets its IP later is picked up.
	p, err := kc.CoreV1().Pods(ns).Get(ctx, "no-ip-yet", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "127.0.0.1", PodIPs: []corev1.PodIP{{IP: "127.0.0.1"}}}
	if _, err := kc.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	sink.waitFor(t, 30*time.Second, "samples of the pod that got its IP", 1, sampleIs(target, "shop_in_flight", map[string]string{"pod": "no-ip-yet"}))

	// A deleted pod is no longer scraped.
	if err := kc.CoreV1().Pods(ns).Delete(ctx, "web-control", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	bustest.WaitFor(t, 30*time.Second, "the deleted pod's target dropped", func() bool {
		return r.metric(t, "faultline_metrics_pod_targets", nil) == 2
	})
	deleted := time.Now()
	sink.waitFor(t, 10*time.Second, "more scrapes of the remaining pods", 3, func(s schemas.MetricSample) bool {
		return sampleIs(target, "shop_in_flight", map[string]string{"pod": "web-experimental"})(s) && s.Timestamp.After(deleted)
	})
	if n := len(sink.match(func(s schemas.MetricSample) bool {
		return s.Labels["pod"] == "web-control" && s.Timestamp.After(deleted.Add(cfg.Interval))
	})); n != 0 {
		t.Errorf("%d samples of the deleted pod after it was dropped", n)
	}
	if n := r.metric(t, "faultline_metrics_targets", map[string]string{"source": "scrape", "state": "up"}); n != 2 {
		t.Errorf("targets{state=up} = %v, want 2", n)
	}
}

func TestTargetOf(t *testing.T) {
	d := &podDiscovery{c: &Collector{log: bustest.Logger()}, cfg: Pods{CopyPodLabels: true}}
	base := func() *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1", Labels: map[string]string{"app": "shop"},
				Annotations: map[string]string{annotationScrape: "true"}},
			Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{
				{Name: "sidecar", Ports: []corev1.ContainerPort{{ContainerPort: 53, Protocol: corev1.ProtocolUDP}}},
				{Name: "web", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}},
			}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.7"},
		}
	}
	tests := []struct {
		name string
		edit func(*corev1.Pod)
		url  string // "" means not scraped
	}{
		{"first TCP container port, default path", func(*corev1.Pod) {}, "http://10.0.0.7:8080/metrics"},
		{"annotations", func(p *corev1.Pod) {
			p.Annotations[annotationPort] = "9102"
			p.Annotations[annotationPath] = "/custom/metrics?format=prometheus"
			p.Annotations[annotationScheme] = "https"
		}, "https://10.0.0.7:9102/custom/metrics?format=prometheus"},
		{"IPv6", func(p *corev1.Pod) { p.Status.PodIP = "fd00::7" }, "http://[fd00::7]:8080/metrics"},
		{"scrape false", func(p *corev1.Pod) { p.Annotations[annotationScrape] = "false" }, ""},
		{"no IP", func(p *corev1.Pod) { p.Status.PodIP = "" }, ""},
		{"succeeded", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }, ""},
		{"failed", func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed }, ""},
		{"bad port", func(p *corev1.Pod) { p.Annotations[annotationPort] = "http" }, ""},
		{"port out of range", func(p *corev1.Pod) { p.Annotations[annotationPort] = "70000" }, ""},
		{"no port at all", func(p *corev1.Pod) { p.Spec.Containers = nil }, ""},
		{"bad scheme", func(p *corev1.Pod) { p.Annotations[annotationScheme] = "ftp" }, ""},
		{"relative path", func(p *corev1.Pod) { p.Annotations[annotationPath] = "metrics" }, ""},
		{"path with a host", func(p *corev1.Pod) { p.Annotations[annotationPath] = "http://evil/metrics" }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := base()
			tc.edit(p)
			got, ok := d.targetOf(p)
			if tc.url == "" {
				if ok {
					t.Fatalf("scraped at %s", got.url)
				}
				return
			}
			if !ok || got.url != tc.url {
				t.Fatalf("target %q (%v), want %q", got.url, ok, tc.url)
			}
			for k, v := range map[string]string{"namespace": "ns", "pod": "p", "node": "node-1", "app": "shop"} {
				if got.labels[k] != v {
					t.Errorf("label %s = %q, want %q", k, got.labels[k], v)
				}
			}
		})
	}
	stripped, err := stripPod(base())
	if err != nil {
		t.Fatal(err)
	}
	sp := stripped.(*corev1.Pod)
	if got, ok := d.targetOf(sp); !ok || got.url != "http://10.0.0.7:8080/metrics" {
		t.Errorf("a stripped pod gives another target: %v %v", got, ok)
	}
}
