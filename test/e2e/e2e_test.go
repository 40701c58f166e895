// Package e2e runs the whole pipeline on real parts, each in its own
// process, under load and faults, and counts what arrived: see
// docs/e2e.md. The short suite runs in the README test command; the long
// one by hand:
//
//	go test ./test/e2e -run TestPipelineUnderFaults -v -timeout 60m -e2e.long
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/faultline/faultline/schemas"
)

var (
	flagLong = flag.Bool("e2e.long", false, "the long suite: a longer load, and the outages (NATS 30 s, Elasticsearch 60 s, webhook 20 s) and the burst")
	flagRate = flag.Int("e2e.rate", 0, "events per second the load driver sends (default 300, 1000 with -e2e.long)")
	flagFor  = flag.Duration("e2e.duration", 0, "how long the load runs (default 45s, 4m with -e2e.long)")
)

var bins struct{ faultline, nats string }

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "faultline-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.faultline = filepath.Join(dir, "faultline")
	bins.nats = filepath.Join(dir, "nats-server")
	// The NATS server is the one of go.mod, built as its own binary so the
	// suite can kill and restart it.
	for _, b := range [][]string{
		{"build", "-o", bins.faultline, "../../cmd/faultline"},
		{"build", "-o", bins.nats, "github.com/nats-io/nats-server/v2"},
	} {
		if out, err := exec.Command("go", b...).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go %s: %v\n%s", strings.Join(b, " "), err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// TestPipelineUnderFaults drives the audit webhook at a fixed rate while
// the suite SIGKILLs the collector, the analyzer and the indexer, and
// restarts the NATS server (the long suite adds the outages), then counts:
// every audit ID the webhook accepted is in Elasticsearch exactly once,
// every finding the offline replay of the same events yields is there
// exactly once, and a secret's value the API server saw appears on no bus
// subject and in no document.
func TestPipelineUnderFaults(t *testing.T) {
	rate, dur := 300, 45*time.Second
	if *flagLong {
		rate, dur = 1000, 4*time.Minute
	}
	if *flagRate > 0 {
		rate = *flagRate
	}
	if *flagFor > 0 {
		dur = *flagFor
	}
	p := startPipeline(t, pipelineOptions{Kube: true})
	c := loadCorpus(t)
	d := newDriver(p, c, rate)
	watch := p.watchFindings(t)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loadDone := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(loadDone)
		d.run(ctx, 5*time.Minute)
	}()
	probe := p.probeES(ctx, d)
	rssMax := p.sampleRSS(ctx)

	// The faults, spread over the load.
	type fault struct {
		name string
		do   func()
	}
	restart := func(pr *proc) func() {
		return func() {
			pr.kill(t)
			pr.start(t)
		}
	}
	var chaosCmds []*schemas.FaultCommand
	faults := []fault{
		{"SIGKILL the audit collector", restart(p.collector)},
		{"SIGKILL the analyzer", restart(p.analyzer)},
		{"SIGKILL the indexer", restart(p.indexer)},
		{"restart the NATS server (SIGKILL)", restart(p.nats)},
		{"bad input on every endpoint", func() { p.badInput(t) }},
		{"SIGKILL the injector with 3 active faults", func() {
			chaosCmds = p.chaos.activeFaults(t, 3, 20*time.Second)
			p.chaos.forged(t, p.opsAddr["injector"])
			p.injector.kill(t)
			p.injector.start(t)
		}},
	}
	if *flagLong {
		faults = append(faults,
			fault{"NATS outage of 30 s", func() {
				p.nats.kill(t)
				time.Sleep(30 * time.Second)
				p.nats.start(t)
			}},
			fault{"Elasticsearch outage of 60 s", func() {
				if err := p.es.Halt(); err != nil {
					t.Fatal(err)
				}
				time.Sleep(60 * time.Second)
				if err := p.es.Restart(context.Background()); err != nil {
					t.Fatal(err)
				}
			}},
			fault{"webhook unreachable for 20 s", func() {
				p.collector.kill(t)
				time.Sleep(20 * time.Second)
				p.collector.start(t)
			}},
			fault{"burst of twice the rate for 30 s", func() {
				// A second sender loop on the same driver doubles the rate.
				bctx, bcancel := context.WithTimeout(ctx, 30*time.Second)
				defer bcancel()
				d.run(bctx, 5*time.Minute)
			}},
		)
	}
	gap := dur / time.Duration(len(faults)+1)
	for i, f := range faults {
		at := start.Add(time.Duration(i+1) * gap)
		time.Sleep(time.Until(at))
		t.Logf("%6.1fs fault: %s (accepted so far %d)", time.Since(start).Seconds(), f.name, d.accepted.Load())
		f.do()
		t.Logf("%6.1fs recovered from: %s", time.Since(start).Seconds(), f.name)
	}
	time.Sleep(time.Until(start.Add(dur)))
	cancel()
	<-loadDone
	loadTime := time.Since(start)
	loadEnd := time.Now()
	accepted := d.acceptedIDs()
	t.Logf("load: %d events accepted in %.1fs (%.0f/s, target %d/s), %d retried posts; %s",
		len(accepted), loadTime.Seconds(), float64(len(accepted))/loadTime.Seconds(), rate, d.retries.Load(), d.failureSummary())
	if sent := int(d.next.Load()); len(accepted) != sent {
		t.Errorf("%d of %d events were never accepted by the webhook (retried for 5 min each)", sent-len(accepted), sent)
	}

	// The faults of the killed injector: reverted by its restart.
	p.chaos.allReverted(t, chaosCmds, 2*time.Minute)

	// The API server's own events: a secret with a marker value, read
	// back, after the faults.
	ns := p.kubeActions(t)

	// Every accepted event in Elasticsearch exactly once.
	var counts map[string]int
	drain := waitFor(t, 5*time.Minute, "every accepted event indexed", func() (bool, error) {
		var err error
		counts, err = p.auditCounts(context.Background(), c.run)
		return err == nil && len(counts) >= len(accepted), err
	})
	missing, dup := 0, 0
	for id := range accepted {
		switch counts[id] {
		case 0:
			missing++
		case 1:
		default:
			dup++
		}
	}
	if missing != 0 || dup != 0 || len(counts) != len(accepted) {
		t.Errorf("audit events: %d accepted, %d indexed, %d missing, %d with more than one document", len(accepted), len(counts), missing, dup)
	}

	t.Logf("every accepted event indexed %v after the load ended (the last check took %v)", time.Since(loadEnd).Round(100*time.Millisecond), drain.Round(100*time.Millisecond))

	// Findings: the offline replay of the accepted events is the truth.
	want := p.replay(t, d)
	windowed := windowRules(t)
	var got map[finding]int
	waitFor(t, 3*time.Minute, "every expected finding indexed", func() (bool, error) {
		var err error
		got, err = p.indexedFindings(context.Background(), c.run)
		if err != nil {
			return false, err
		}
		for f := range want {
			if !windowed[f.Rule] && got[f] == 0 {
				return false, nil
			}
		}
		return true, nil
	})
	checked, extra := 0, 0
	for f := range want {
		if windowed[f.Rule] {
			continue
		}
		checked++
		if got[f] != 1 {
			t.Errorf("finding %s (%s on %s): %d documents", f.ID, f.Rule, f.AuditID, got[f])
		}
	}
	for f, n := range got {
		if n > 1 {
			t.Errorf("finding %s (%s): %d documents", f.ID, f.Rule, n)
		}
		if _, ok := want[f]; !ok && !windowed[f.Rule] {
			extra++
			if extra <= 5 {
				t.Errorf("finding %s (%s on %s) is not in the replay's findings", f.ID, f.Rule, f.AuditID)
			}
		}
	}
	if checked == 0 {
		t.Fatal("the replay found no finding of a stateless rule: the corpus does not exercise the analyzer")
	}

	// The API server's events of the test's namespace, and the marker.
	p.checkKubeEvents(t, ns)
	hits, scanned, err := p.busContains(context.Background(), p.marker)
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) > 0 {
		t.Errorf("the secret's value is on the bus: %v", hits)
	}
	docs, esHits, err := p.esContains(context.Background(), p.marker)
	if err != nil {
		t.Fatal(err)
	}
	if len(esHits) > 0 {
		t.Errorf("the secret's value is in Elasticsearch documents %v", esHits)
	}

	lat := watch.latencies(accepted)
	esLat := probe.samples()
	t.Logf("findings: %d expected of stateless rules, all indexed once; %d of windowed rules indexed; %d extra", checked, len(got)-checked, extra)
	t.Logf("latency webhook → finding on the bus: p50 %v p99 %v (%d findings)", percentile(lat, .5).Round(time.Millisecond), percentile(lat, .99).Round(time.Millisecond), len(lat))
	t.Logf("latency webhook → searchable in Elasticsearch: p50 %v p99 %v (%d probes, refresh interval 1 s included)", percentile(esLat, .5).Round(time.Millisecond), percentile(esLat, .99).Round(time.Millisecond), len(esLat))
	t.Logf("secret's value: %d bus messages and %d Elasticsearch documents scanned, %d and %d hits", scanned, docs, len(hits), len(esHits))
	for _, pr := range p.roles() {
		t.Logf("%-10s CPU %.1f%% of one core, peak RSS %d MiB", pr.name, 100*pr.cpuTotal().Seconds()/time.Since(start).Seconds(), rssMax.get(pr.name)>>20)
	}
}

// replay runs `faultline replay` over the accepted events.
func (p *pipeline) replay(t testing.TB, d *driver) map[finding]bool {
	t.Helper()
	in := filepath.Join(p.dir, "accepted.jsonl")
	n := d.writeAccepted(t, in)
	cmd := exec.Command(bins.faultline, "replay", "--audit", in, "--cluster", cluster, "--quiet")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("replay of %d events: %v", n, err)
	}
	want := map[finding]bool{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var doc map[string]any
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
			t.Fatalf("replay output: %v", err)
		}
		want[findingOf(doc)] = true
	}
	return want
}

// kubeActions makes the API server write, read and delete a secret whose
// value is the marker, in a namespace of its own.
func (p *pipeline) kubeActions(t testing.TB) string {
	t.Helper()
	k, err := kubernetes.NewForConfig(p.kube.Admin.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ns := "e2e-" + randHex(4)
	if _, err := k.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db"}, StringData: map[string]string{"password": p.marker}}
	if _, err := k.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := k.CoreV1().Secrets(ns).Get(ctx, "db", metav1.GetOptions{})
	if err != nil || string(got.Data["password"]) != p.marker {
		t.Fatalf("secret read back: %v", err)
	}
	if _, err := k.CoreV1().Secrets(ns).Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := k.CoreV1().Secrets(ns).Delete(ctx, "db", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	return ns
}

// checkKubeEvents compares the API server's audit log, for the namespace
// of kubeActions, with what is indexed: every event once, no marker.
func (p *pipeline) checkKubeEvents(t testing.TB, ns string) {
	t.Helper()
	logged := map[string]bool{} // auditID/stage
	waitFor(t, time.Minute, "the API server's audit log has the secret's events", func() (bool, error) {
		f, err := os.Open(p.kube.AuditLogPath)
		if err != nil {
			return false, err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			var ev struct {
				AuditID   string `json:"auditID"`
				Stage     string `json:"stage"`
				ObjectRef struct {
					Namespace string `json:"namespace"`
					Resource  string `json:"resource"`
				} `json:"objectRef"`
				Verb string `json:"verb"`
			}
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.ObjectRef.Namespace == ns {
				logged[ev.AuditID+"/"+ev.Stage] = true
			}
		}
		return len(logged) >= 4, sc.Err()
	})
	var docs []map[string]any
	waitFor(t, 2*time.Minute, "the API server's events indexed", func() (bool, error) {
		var err error
		docs, err = p.docs(context.Background(), auditStream, map[string]any{"term": map[string]any{"kubernetes.audit.objectRef.namespace": ns}})
		return err == nil && len(docs) >= len(logged), err
	})
	indexed := map[string]int{}
	for _, d := range docs {
		raw, _ := json.Marshal(d)
		if strings.Contains(string(raw), p.marker) {
			t.Errorf("an indexed audit event holds the secret's value: %s", raw)
		}
		id, _ := field(d, "kubernetes", "audit", "auditID").(string)
		stage, _ := field(d, "kubernetes", "audit", "stage").(string)
		indexed[id+"/"+stage]++
	}
	var missing []string
	for k := range logged {
		if indexed[k] != 1 {
			missing = append(missing, fmt.Sprintf("%s: %d", k, indexed[k]))
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("API server events of %s not indexed exactly once: %v", ns, missing)
	}
	t.Logf("API server: %d audit events of namespace %s logged, each indexed once, none with the secret's value", len(logged), ns)
}

// peaks are each role's peak resident memory.
type peaks struct {
	mu sync.Mutex
	m  map[string]int64
}

func (pk *peaks) get(name string) int64 {
	pk.mu.Lock()
	defer pk.mu.Unlock()
	return pk.m[name]
}

// sampleRSS records each role's peak resident memory every 500 ms until ctx
// ends.
func (p *pipeline) sampleRSS(ctx context.Context) *peaks {
	pk := &peaks{m: map[string]int64{}}
	go func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			pk.mu.Lock()
			for _, pr := range p.roles() {
				pk.m[pr.name] = max(pk.m[pr.name], pr.rss())
			}
			pk.mu.Unlock()
		}
	}()
	return pk
}
