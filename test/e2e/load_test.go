package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const recorded = "../../analyzers/rules/testdata/recorded"

// corpus is the events the load driver sends: real audit events recorded
// from the harness' API server — the benign background and the positive
// samples of every rule — each sent with a fresh audit ID so every one is a
// new event.
type corpus struct {
	templates []map[string]any
	run       string // hex prefix of this run's audit IDs
	// raw is each template encoded once, with its audit ID at idAt[i], so
	// making an event is a copy and 36 bytes: the driver must not be what
	// limits the rate.
	raw  [][]byte
	idAt []int
}

func loadCorpus(t testing.TB) *corpus {
	t.Helper()
	c := &corpus{run: randHex(4)}
	add := func(r io.Reader, name string) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			if len(bytes.TrimSpace(sc.Bytes())) == 0 {
				continue
			}
			var ev map[string]any
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			c.templates = append(c.templates, ev)
		}
		if err := sc.Err(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	f, err := os.Open(filepath.Join(recorded, "benign.jsonl.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	add(zr, "benign.jsonl.gz")
	pos, _ := filepath.Glob(filepath.Join(recorded, "*.pos.jsonl"))
	sort.Strings(pos)
	for _, p := range pos {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		add(bytes.NewReader(b), p)
	}
	if len(c.templates) < 100 {
		t.Fatalf("only %d recorded events", len(c.templates))
	}
	const placeholder = "00000000-0000-4000-8000-000000000000"
	for _, tpl := range c.templates {
		ev := make(map[string]any, len(tpl))
		for k, v := range tpl {
			ev[k] = v
		}
		ev["auditID"] = placeholder
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		at := bytes.Index(b, []byte(`"auditID":"`+placeholder+`"`))
		if at < 0 {
			t.Fatalf("encoded event without its audit ID: %.200s", b)
		}
		c.raw = append(c.raw, b)
		c.idAt = append(c.idAt, at+len(`"auditID":"`))
	}
	return c
}

// id is the audit ID of the run's event seq, shaped like a UUID.
func (c *corpus) id(seq int) string {
	return fmt.Sprintf("%s-%04x-4000-8000-%012x", c.run, (seq>>48)&0xffff, seq&0xffffffffffff)
}

// event is the run's event seq: a recorded event with its audit ID.
func (c *corpus) event(seq int) []byte {
	return c.appendEvent(nil, seq)
}

func (c *corpus) appendEvent(dst []byte, seq int) []byte {
	i := seq % len(c.raw)
	start := len(dst)
	dst = append(dst, c.raw[i]...)
	copy(dst[start+c.idAt[i]:], c.id(seq))
	return dst
}

// windowRules are the default rules that count over a window: their
// findings depend on what else arrived within it, so the suite checks
// the stateless rules' findings one for one and the windowed ones only for
// duplicates.
func windowRules(t testing.TB) map[string]bool {
	t.Helper()
	files, _ := filepath.Glob("../../analyzers/rules/default/*.yaml")
	out := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Rules []struct {
				ID     string `yaml:"id"`
				Window any    `yaml:"window"`
			} `yaml:"rules"`
		}
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, r := range doc.Rules {
			if r.Window != nil {
				out[r.ID] = true
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no windowed rule found: has the rules layout changed?")
	}
	return out
}

// driver posts the corpus to the webhook at a fixed rate, as the API
// server's batch backend does, and retries a batch until it is accepted
// (200 means JetStream stored every event of it). What it counts as sent is
// what the webhook accepted.
type driver struct {
	p      *pipeline
	c      *corpus
	rate   int // events per second
	batch  int
	sender int

	next     atomic.Int64 // next sequence number
	accepted atomic.Int64
	retries  atomic.Int64
	failures sync.Map // error text → count, for the report

	mu    sync.Mutex
	sent  map[string]time.Time // audit ID → first attempt
	ackAt map[string]time.Time // audit ID → accepted
	codes map[int]int
}

func newDriver(p *pipeline, c *corpus, rate int) *driver {
	b := max(1, min(100, rate/20))
	if rate <= 0 {
		b = 100
	}
	return &driver{p: p, c: c, rate: rate, batch: b, sender: max(8, min(16, rate/1000)), // the webhook processes 16 requests at once by default
		sent: map[string]time.Time{}, ackAt: map[string]time.Time{}, codes: map[int]int{}}
}

// run sends until ctx ends, then finishes the batches in flight (retrying
// them for up to drain).
func (d *driver) run(ctx context.Context, drain time.Duration) {
	batches := make(chan []int, d.sender)
	var wg sync.WaitGroup
	for range d.sender {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seqs := range batches {
				d.post(seqs, drain)
			}
		}()
	}
	// rate 0: as fast as the senders are answered.
	var tick <-chan time.Time
	if d.rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) * float64(d.batch) / float64(d.rate)))
		defer t.Stop()
		tick = t.C
	}
	defer func() {
		close(batches)
		wg.Wait()
	}()
	for {
		if tick != nil {
			select {
			case <-ctx.Done():
				return
			case <-tick:
			}
		}
		seqs := make([]int, d.batch)
		for i := range seqs {
			seqs[i] = int(d.next.Add(1) - 1)
		}
		select {
		case batches <- seqs:
		case <-ctx.Done():
			return
		}
	}
}

func (d *driver) post(seqs []int, drain time.Duration) {
	body := make([]byte, 0, len(seqs)*2048)
	body = append(body, `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[`...)
	for i, s := range seqs {
		if i > 0 {
			body = append(body, ',')
		}
		body = d.c.appendEvent(body, s)
	}
	body = append(body, "]}"...)
	now := time.Now()
	d.mu.Lock()
	for _, s := range seqs {
		d.sent[d.c.id(s)] = now
	}
	d.mu.Unlock()
	deadline := time.Now().Add(drain)
	wait := 100 * time.Millisecond
	for {
		code, err := d.once(body)
		d.mu.Lock()
		d.codes[code]++
		d.mu.Unlock()
		if err == nil {
			at := time.Now()
			d.mu.Lock()
			for _, s := range seqs {
				d.ackAt[d.c.id(s)] = at
			}
			d.mu.Unlock()
			d.accepted.Add(int64(len(seqs)))
			return
		}
		key := err.Error()
		if i := strings.IndexAny(key, "0123456789"); i > 40 {
			key = key[:i]
		}
		n, _ := d.failures.LoadOrStore(key, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		if time.Now().After(deadline) {
			return
		}
		d.retries.Add(1)
		time.Sleep(wait)
		wait = min(2*wait, 2*time.Second)
	}
}

func (d *driver) once(body []byte) (int, error) {
	req, err := http.NewRequest(http.MethodPost, d.p.webhookURL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+d.p.token)
	resp, err := d.p.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("webhook answered %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
	}
	return resp.StatusCode, nil
}

// acceptedIDs are the audit IDs the webhook accepted.
func (d *driver) acceptedIDs() map[string]time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]time.Time, len(d.ackAt))
	for id := range d.ackAt {
		out[id] = d.sent[id]
	}
	return out
}

// events writes the accepted events as JSON lines, for `faultline replay`.
func (d *driver) writeAccepted(t testing.TB, path string) int {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	n := int(d.next.Load())
	d.mu.Lock()
	defer d.mu.Unlock()
	written := 0
	for s := range n {
		if _, ok := d.ackAt[d.c.id(s)]; !ok {
			continue
		}
		w.Write(d.c.event(s))
		w.WriteByte('\n')
		written++
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return written
}

func (d *driver) failureSummary() string {
	var parts []string
	d.failures.Range(func(k, v any) bool {
		parts = append(parts, fmt.Sprintf("%dx %s", v.(*atomic.Int64).Load(), k))
		return true
	})
	sort.Strings(parts)
	d.mu.Lock()
	defer d.mu.Unlock()
	return fmt.Sprintf("answers %v; failures: %s", d.codes, strings.Join(parts, "; "))
}
