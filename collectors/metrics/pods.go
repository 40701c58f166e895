package metrics

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// The usual Prometheus pod annotations.
const (
	annotationScrape = "prometheus.io/scrape"
	annotationPort   = "prometheus.io/port"
	annotationPath   = "prometheus.io/path"
	annotationScheme = "prometheus.io/scheme"
)

// podDiscovery keeps one scrape job per annotated pod: informers watch the
// pods (cached, stripped to what discovery needs), and every change
// recomputes the target set; jobs of pods that went away are stopped, new
// ones started.
type podDiscovery struct {
	c      *Collector
	client kubernetes.Interface
	cfg    Pods
	http   *http.Client
	synced atomic.Bool
	// changed signals a change to recompute. Bounded (1) with a coalescing
	// overflow policy: a signal already pending covers later changes;
	// faultline_metrics_pod_discovery_refreshes_total counts recomputations.
	changed chan struct{}
}

// podTarget is one pod's scrape target.
type podTarget struct {
	key    string // pod UID and URL
	url    string
	labels map[string]string
}

func newPodDiscovery(c *Collector, kube *rest.Config) (*podDiscovery, error) {
	cs, err := kubernetes.NewForConfig(kube)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	p := c.cfg.Scrape.Pods
	hc, err := newHTTPClient(httpOptions{CAFile: p.CAFile, BearerTokenFile: p.BearerTokenFile, MaxConns: 2})
	if err != nil {
		return nil, err
	}
	return &podDiscovery{c: c, client: cs, cfg: p, http: hc, changed: make(chan struct{}, 1)}, nil
}

func (d *podDiscovery) notify() {
	select {
	case d.changed <- struct{}{}:
	default: // coalesced with the pending signal
	}
}

type runningJob struct {
	target podTarget
	cancel context.CancelFunc
}

// run watches pods until ctx ends, starting and stopping jobs in wg.
func (d *podDiscovery) run(ctx context.Context, wg *sync.WaitGroup) error {
	namespaces := d.cfg.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	var factories []informers.SharedInformerFactory
	var stores []cache.Store
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { d.notify() },
		UpdateFunc: func(any, any) { d.notify() },
		DeleteFunc: func(any) { d.notify() },
	}
	for _, ns := range namespaces {
		f := informers.NewSharedInformerFactoryWithOptions(d.client, 0,
			informers.WithNamespace(ns),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = d.cfg.LabelSelector }),
			informers.WithTransform(stripPod))
		inf := f.Core().V1().Pods().Informer()
		if _, err := inf.AddEventHandler(handler); err != nil {
			return fmt.Errorf("pod discovery: add event handler: %w", err)
		}
		factories = append(factories, f)
		stores = append(stores, inf.GetStore())
	}
	for _, f := range factories {
		f.Start(ctx.Done())
	}
	defer func() {
		for _, f := range factories {
			f.Shutdown() // waits for the informers' goroutines
		}
	}()
	for _, f := range factories {
		for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("pod discovery: %v cache did not sync", typ)
			}
		}
	}
	d.synced.Store(true)
	d.c.log.Info("metrics: pod discovery synced", "namespaces", d.cfg.Namespaces, "label_selector", d.cfg.LabelSelector)

	running := map[string]runningJob{}
	defer func() {
		for _, r := range running {
			r.cancel()
		}
		d.c.metrics.discoveredPods.Set(0)
	}()
	d.notify()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.changed:
		}
		d.c.metrics.podRefreshes.Inc()
		want := map[string]podTarget{}
		for _, s := range stores {
			for _, obj := range s.List() {
				pod, ok := obj.(*corev1.Pod)
				if !ok {
					continue
				}
				if t, ok := d.targetOf(pod); ok {
					want[t.key] = t
				}
			}
		}
		for key, r := range running {
			if t, ok := want[key]; !ok || !maps.Equal(t.labels, r.target.labels) {
				r.cancel()
				delete(running, key)
			}
		}
		for key, t := range want {
			if _, ok := running[key]; ok {
				continue
			}
			jctx, cancel := context.WithCancel(ctx)
			running[key] = runningJob{target: t, cancel: cancel}
			interval, timeout := d.c.cfg.schedule(d.cfg.Interval, d.cfg.Timeout)
			j := d.c.scrapeJob("pod|"+key, t.url, t.labels, interval, timeout, d.cfg.Format, d.http)
			wg.Go(func() { d.c.runJob(jctx, j) })
		}
		d.c.metrics.discoveredPods.Set(float64(len(running)))
	}
}

// targetOf is the scrape target of an annotated, running pod with an IP.
func (d *podDiscovery) targetOf(pod *corev1.Pod) (podTarget, bool) {
	a := pod.Annotations
	if a[annotationScrape] != "true" || pod.Status.PodIP == "" ||
		pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return podTarget{}, false
	}
	log := d.c.log.With("namespace", pod.Namespace, "pod", pod.Name)
	port := 0
	if p := a[annotationPort]; p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			log.Warn("metrics: pod not scraped: bad "+annotationPort+" annotation", "value", p)
			return podTarget{}, false
		}
		port = n
	} else {
	find:
		for _, c := range pod.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Protocol == "" || cp.Protocol == corev1.ProtocolTCP {
					port = int(cp.ContainerPort)
					break find
				}
			}
		}
		if port == 0 {
			log.Warn("metrics: pod not scraped: no " + annotationPort + " annotation and no TCP container port")
			return podTarget{}, false
		}
	}
	scheme := a[annotationScheme]
	switch scheme {
	case "":
		scheme = "http"
	case "http", "https":
	default:
		log.Warn("metrics: pod not scraped: "+annotationScheme+" is neither http nor https", "value", scheme)
		return podTarget{}, false
	}
	path := a[annotationPath]
	if path == "" {
		path = "/metrics"
	}
	ref, err := url.Parse(path)
	if err != nil || ref.Scheme != "" || ref.Host != "" || !strings.HasPrefix(ref.Path, "/") {
		log.Warn("metrics: pod not scraped: "+annotationPath+" is not an absolute path", "value", path)
		return podTarget{}, false
	}
	host := net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(port))
	u := url.URL{Scheme: scheme, Host: host, Path: ref.Path, RawQuery: ref.RawQuery}
	labels := map[string]string{}
	if d.cfg.CopyPodLabels {
		maps.Copy(labels, pod.Labels)
	}
	labels["namespace"] = pod.Namespace
	labels["pod"] = pod.Name
	labels["instance"] = host
	if pod.Spec.NodeName != "" {
		labels["node"] = pod.Spec.NodeName
	}
	return podTarget{key: string(pod.UID) + "|" + u.String(), url: u.String(), labels: labels}, true
}

// stripPod keeps only what discovery reads, so the informer cache of a big
// cluster stays small.
func stripPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil // e.g. cache.DeletedFinalStateUnknown
	}
	keep := map[string]string{}
	for _, k := range []string{annotationScrape, annotationPort, annotationPath, annotationScheme} {
		if v, ok := pod.Annotations[k]; ok {
			keep[k] = v
		}
	}
	var containers []corev1.Container
	for _, c := range pod.Spec.Containers {
		containers = append(containers, corev1.Container{Name: c.Name, Ports: slices.Clone(c.Ports)})
	}
	return &corev1.Pod{
		TypeMeta: pod.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID,
			ResourceVersion: pod.ResourceVersion, Labels: pod.Labels, Annotations: keep,
		},
		Spec:   corev1.PodSpec{NodeName: pod.Spec.NodeName, Containers: containers},
		Status: corev1.PodStatus{Phase: pod.Status.Phase, PodIP: pod.Status.PodIP},
	}, nil
}
