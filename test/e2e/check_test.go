package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/faultline/faultline/internal/testes"
	"github.com/faultline/faultline/schemas"
)

const (
	auditStream    = "logs-kubernetes.audit_logs-e2e"
	findingsStream = "logs-faultline.findings-e2e"
)

// es is a client that returns errors instead of failing the test, for
// polling through outages.
func (p *pipeline) esc() *testes.Client { return p.es.Client(p.t) }

func (p *pipeline) esRequest(ctx context.Context, method, path string, body any) (*testes.Response, error) {
	r, err := p.esc().Request(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	if r.StatusCode/100 != 2 {
		return r, fmt.Errorf("elasticsearch %s %s: %s", method, path, r)
	}
	return r, nil
}

// docs returns every document of index matching query (its _id and the
// fields asked for), through a scroll: sorting by a field could skip
// documents with equal values across pages, which a duplicate has.
func (p *pipeline) docs(ctx context.Context, index string, query any, fields ...string) ([]map[string]any, error) {
	if _, err := p.esRequest(ctx, http.MethodPost, "/"+index+"/_refresh", nil); err != nil {
		return nil, err
	}
	type page struct {
		ScrollID string `json:"_scroll_id"`
		Hits     struct {
			Hits []struct {
				ID     string         `json:"_id"`
				Source map[string]any `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	var out []map[string]any
	body := map[string]any{"size": 5000, "query": query, "sort": []string{"_doc"}}
	if len(fields) > 0 {
		body["_source"] = fields
	}
	r, err := p.esRequest(ctx, http.MethodPost, "/"+index+"/_search?scroll=1m", body)
	for {
		if err != nil {
			return nil, err
		}
		var pg page
		if err := r.JSON(&pg); err != nil {
			return nil, err
		}
		for _, h := range pg.Hits.Hits {
			if h.Source == nil {
				h.Source = map[string]any{}
			}
			h.Source["_id"] = h.ID
			out = append(out, h.Source)
		}
		if len(pg.Hits.Hits) == 0 {
			_, _ = p.esRequest(ctx, http.MethodDelete, "/_search/scroll", map[string]any{"scroll_id": pg.ScrollID})
			return out, nil
		}
		r, err = p.esRequest(ctx, http.MethodPost, "/_search/scroll", map[string]any{"scroll": "1m", "scroll_id": pg.ScrollID})
	}
}

// field reads a dotted path from a document's _source.
func field(doc map[string]any, path ...string) any {
	var v any = doc
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// auditCounts counts the indexed documents of this run per audit ID.
func (p *pipeline) auditCounts(ctx context.Context, run string) (map[string]int, error) {
	docs, err := p.docs(ctx, auditStream, map[string]any{"prefix": map[string]any{"kubernetes.audit.auditID": run}},
		"kubernetes.audit.auditID")
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(docs))
	for _, d := range docs {
		id, _ := field(d, "kubernetes", "audit", "auditID").(string)
		out[id]++
	}
	return out, nil
}

// finding is what the suite compares of a finding.
type finding struct {
	ID, Rule, AuditID string
}

func findingOf(doc map[string]any) finding {
	s := func(path ...string) string { v, _ := field(doc, path...).(string); return v }
	return finding{ID: s("event", "id"), Rule: s("rule", "id"), AuditID: s("kubernetes", "audit", "auditID")}
}

// indexedFindings are the findings in Elasticsearch whose source event is
// of this run, with how many documents each has.
func (p *pipeline) indexedFindings(ctx context.Context, run string) (map[finding]int, error) {
	docs, err := p.docs(ctx, findingsStream, map[string]any{"prefix": map[string]any{"kubernetes.audit.auditID": run}},
		"event.id", "rule.id", "kubernetes.audit.auditID")
	if err != nil {
		return nil, err
	}
	out := map[finding]int{}
	for _, d := range docs {
		out[findingOf(d)]++
	}
	return out, nil
}

// findingWatch records when each finding first appeared on the bus.
type findingWatch struct {
	mu    sync.Mutex
	first map[string]time.Time // finding id → arrival
	audit map[string]string    // finding id → source audit ID
	count map[string]int       // finding id → deliveries seen
	bad   []string
}

func (p *pipeline) watchFindings(t testing.TB) *findingWatch {
	t.Helper()
	w := &findingWatch{first: map[string]time.Time{}, audit: map[string]string{}, count: map[string]int{}}
	nc, err := nats.Connect(p.natsURL, nats.Token(p.natsToken), nats.MaxReconnects(-1), nats.ReconnectWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	_, err = nc.Subscribe("fl.finding."+cluster+".>", func(m *nats.Msg) {
		at := time.Now()
		env, err := schemas.DecodeEnvelope(m.Data)
		var doc map[string]any
		if err == nil {
			err = json.Unmarshal(env.Data, &doc)
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if err != nil {
			w.bad = append(w.bad, err.Error())
			return
		}
		f := findingOf(doc)
		if _, ok := w.first[f.ID]; !ok {
			w.first[f.ID] = at
			w.audit[f.ID] = f.AuditID
		}
		w.count[f.ID]++
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return w
}

// latencies are the delays from each accepted event's first post to its
// finding's first arrival on the bus.
func (w *findingWatch) latencies(sent map[string]time.Time) []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []time.Duration
	for id, at := range w.first {
		if s, ok := sent[w.audit[id]]; ok {
			out = append(out, at.Sub(s))
		}
	}
	return out
}

// esProbe measures, about once a second, how long an accepted event takes
// to be searchable in Elasticsearch (the refresh interval, 1 s, included).
type esProbe struct {
	mu  sync.Mutex
	lat []time.Duration
}

func (p *pipeline) probeES(ctx context.Context, d *driver) *esProbe {
	pr := &esProbe{}
	go func() {
		for ctx.Err() == nil {
			id, sentAt := d.newest()
			if id == "" {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for ctx.Err() == nil {
				r, err := p.esc().Request(ctx, http.MethodPost, "/"+auditStream+"/_search",
					map[string]any{"size": 0, "query": map[string]any{"term": map[string]any{"kubernetes.audit.auditID": id}}})
				if err == nil && r.StatusCode == 200 && bytes.Contains(r.Body, []byte(`"total":{"value":1`)) {
					pr.mu.Lock()
					pr.lat = append(pr.lat, time.Since(sentAt))
					pr.mu.Unlock()
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(time.Second)
		}
	}()
	return pr
}

func (pr *esProbe) samples() []time.Duration {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return append([]time.Duration(nil), pr.lat...)
}

// newest is the most recently accepted event.
func (d *driver) newest() (string, time.Time) {
	n := int(d.next.Load())
	d.mu.Lock()
	defer d.mu.Unlock()
	for s := n - 1; s >= 0 && s >= n-5000; s-- {
		id := d.c.id(s)
		if _, ok := d.ackAt[id]; ok {
			return id, d.sent[id]
		}
	}
	return "", time.Time{}
}

func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// busContains reports the subjects of the messages on any stream whose
// bytes contain marker.
func (p *pipeline) busContains(ctx context.Context, marker string) ([]string, int, error) {
	nc, err := nats.Connect(p.natsURL, nats.Token(p.natsToken))
	if err != nil {
		return nil, 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, 0, err
	}
	var hits []string
	scanned := 0
	names := js.StreamNames(ctx)
	for name := range names.Name() {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return nil, 0, err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return nil, 0, err
		}
		if info.State.Msgs == 0 {
			continue
		}
		c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
		if err != nil {
			return nil, 0, err
		}
		for left := info.State.Msgs; left > 0; {
			batch, err := c.FetchNoWait(int(min(left, 1000)))
			if err != nil {
				return nil, 0, err
			}
			got := 0
			for m := range batch.Messages() {
				got++
				scanned++
				if bytes.Contains(m.Data(), []byte(marker)) {
					hits = append(hits, m.Subject())
				}
			}
			if got == 0 {
				// FetchNoWait returns what is ready; wait for the rest.
				b2, err := c.Fetch(int(min(left, 1000)), jetstream.FetchMaxWait(2*time.Second))
				if err != nil {
					return nil, 0, err
				}
				for m := range b2.Messages() {
					got++
					scanned++
					if bytes.Contains(m.Data(), []byte(marker)) {
						hits = append(hits, m.Subject())
					}
				}
				if got == 0 {
					break
				}
			}
			left -= uint64(got)
		}
	}
	return hits, scanned, names.Err()
}

// esContains scans every document of every Faultline data stream, as raw
// bytes, for marker; it returns how many documents it read and the ids of
// those holding it.
func (p *pipeline) esContains(ctx context.Context, marker string) (int, []string, error) {
	if _, err := p.esRequest(ctx, http.MethodPost, "/logs-*/_refresh", nil); err != nil {
		return 0, nil, err
	}
	type page struct {
		ScrollID string `json:"_scroll_id"`
		Hits     struct {
			Hits []json.RawMessage `json:"hits"`
		} `json:"hits"`
	}
	scanned := 0
	var hits []string
	r, err := p.esRequest(ctx, http.MethodPost, "/logs-*/_search?scroll=1m", map[string]any{"size": 5000, "sort": []string{"_doc"}})
	for {
		if err != nil {
			return scanned, hits, err
		}
		var pg page
		if err := r.JSON(&pg); err != nil {
			return scanned, hits, err
		}
		for _, h := range pg.Hits.Hits {
			scanned++
			if bytes.Contains(h, []byte(marker)) {
				var id struct {
					ID string `json:"_id"`
				}
				_ = json.Unmarshal(h, &id)
				hits = append(hits, id.ID)
			}
		}
		if len(pg.Hits.Hits) == 0 {
			_, _ = p.esRequest(ctx, http.MethodDelete, "/_search/scroll", map[string]any{"scroll_id": pg.ScrollID})
			return scanned, hits, nil
		}
		r, err = p.esRequest(ctx, http.MethodPost, "/_search/scroll", map[string]any{"scroll": "1m", "scroll_id": pg.ScrollID})
	}
}
