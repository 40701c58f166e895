package rules_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/faultline/faultline/analyzers"
	"github.com/faultline/faultline/analyzers/rules"
	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/bus/bustest"
	"github.com/faultline/faultline/schemas"
)

// TestKVWindowStoreCompareAndSet: updates of one window from two stores
// (two replicas) and several goroutines each are all applied, none lost or
// applied twice: 40 events of a count-10 window fire exactly 4 times.
func TestKVWindowStoreCompareAndSet(t *testing.T) {
	b, _ := bustest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kv, err := b.KV(ctx, bus.BucketState)
	if err != nil {
		t.Fatal(err)
	}
	stores := []*rules.KVWindowStore{
		rules.NewKVWindowStore(b.JetStream(), kv, "prod"),
		rules.NewKVWindowStore(b.JetStream(), kv, "prod"),
	}
	ref := rules.WindowRef{Rule: "burst", Duration: time.Minute, Key: "k1"}
	at := time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	fired := 0
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[g%2]
			for i := range 5 {
				id := uint64(g*100 + i + 1)
				var f bool
				err := s.Update(ctx, ref, func(st *rules.WindowState) {
					// add is unexported: the same counting, by hand.
					f = false
					st.Entries = append(st.Entries, rules.WindowEntry{At: at.UnixNano(), ID: id})
					if len(st.Entries) >= 10 {
						st.Entries, st.FiredBy, st.FiredN, f = nil, id, 10, true
					}
				})
				if err != nil {
					t.Error(err)
					return
				}
				if f {
					mu.Lock()
					fired++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if fired != 4 {
		t.Errorf("fired %d times for 40 events of a count-10 window, want 4", fired)
	}
	var st rules.WindowState
	e, err := kv.Get(ctx, "rules.window.prod.burst.k1")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(e.Value(), &st); err != nil || len(st.Entries) != 0 {
		t.Errorf("state after 40 events: %+v, %v", st, err)
	}
	t.Logf("compare-and-set conflicts retried: %d", stores[0].Conflicts()+stores[1].Conflicts())
}

// TestKVWindowStoreSweep: idle windows are purged without leaving delete
// markers, a rule keeps at most the limit of keys, and a purged window
// starts afresh.
func TestKVWindowStoreSweep(t *testing.T) {
	b, _ := bustest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kv, err := b.KV(ctx, bus.BucketState)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "baseline.prod.other", []byte("{}")); err != nil { // not a window: never swept
		t.Fatal(err)
	}
	s := rules.NewKVWindowStore(b.JetStream(), kv, "prod")
	add := func(rule, key string) {
		t.Helper()
		err := s.Update(ctx, rules.WindowRef{Rule: rule, Duration: time.Minute, Key: key}, func(st *rules.WindowState) {
			st.Entries = append(st.Entries, rules.WindowEntry{At: 1, ID: uint64(len(st.Entries) + 1)})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		add("a", fmt.Sprint("k", i))
	}
	add("b", "k0")
	keys := func() []string {
		t.Helper()
		l, err := kv.ListKeys(ctx)
		if err != nil {
			if errors.Is(err, jetstream.ErrNoKeysFound) {
				return nil
			}
			t.Fatal(err)
		}
		var out []string
		for k := range l.Keys() {
			out = append(out, k)
		}
		return out
	}
	tests := []struct {
		name     string
		idle     time.Duration
		limit    int
		wantKeys int // of the bucket, the baseline key included
		evicted  uint64
	}{
		{"nothing idle, no limit", time.Hour, 0, 7, 0},
		{"at most 2 keys per rule", time.Hour, 2, 4, 3},
		{"everything idle", -time.Second, 0, 1, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Sweep(ctx, tc.idle, tc.limit); err != nil {
				t.Fatal(err)
			}
			if got := keys(); len(got) != tc.wantKeys {
				t.Errorf("keys %v, want %d", got, tc.wantKeys)
			}
			if s.Evictions() != tc.evicted {
				t.Errorf("%d evictions, want %d", s.Evictions(), tc.evicted)
			}
		})
	}
	st, err := b.JetStream().Stream(ctx, "KV_"+bus.BucketState)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter("$KV."+bus.BucketState+".rules.>"))
	if err != nil {
		t.Fatal(err)
	}
	if len(info.State.Subjects) != 0 {
		t.Errorf("purged windows left messages (delete markers?): %v", info.State.Subjects)
	}
	add("a", "k0")
	e, err := kv.Get(ctx, "rules.window.prod.a.k0")
	if err != nil {
		t.Fatal(err)
	}
	var ws rules.WindowState
	if err := json.Unmarshal(e.Value(), &ws); err != nil || len(ws.Entries) != 1 {
		t.Errorf("a purged window did not start afresh: %s", e.Value())
	}
}

// forbiddenBurst is the recorded burst of refused requests (12 by one
// user within a minute: forbidden-burst fires once), each event as a map
// so a test can change its user and audit id.
func forbiddenBurst(t *testing.T) []map[string]any {
	t.Helper()
	f, err := os.Open("testdata/recorded/forbidden-burst.pos.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	if len(out) != 12 {
		t.Fatalf("%d recorded events, want 12", len(out))
	}
	return out
}

// countingAnalyzer records which replica analysed each user's events.
type countingAnalyzer struct {
	analyzers.Analyzer
	replica string
	seen    *seenBy
}

type seenBy struct {
	mu sync.Mutex
	m  map[string]map[string]int // user -> replica -> events
	n  int
}

func (s *seenBy) add(user, replica string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[user] == nil {
		s.m[user] = map[string]int{}
	}
	s.m[user][replica]++
	s.n++
}

func (s *seenBy) total() int { s.mu.Lock(); defer s.mu.Unlock(); return s.n }

func (s *seenBy) replicas(user string) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.m[user] {
		out[k] = v
	}
	return out
}

func (c *countingAnalyzer) Analyze(ctx context.Context, in *analyzers.Input) ([]*schemas.Finding, error) {
	fs, err := c.Analyzer.Analyze(ctx, in)
	if err == nil {
		c.seen.add(in.Event.User.Username, c.replica)
	}
	return fs, err
}

// TestReplicasShareWindows: two replicas of the rules analyzer (runners of
// one consumer group) on one NATS server count a windowed rule's events
// together in JetStream KV, and a restarted replica remembers what its
// predecessor counted: a burst split between them, or across a restart,
// yields exactly one finding.
func TestReplicasShareWindows(t *testing.T) {
	b, _ := bustest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const cluster = "prod"
	kv, err := b.KV(ctx, bus.BucketState)
	if err != nil {
		t.Fatal(err)
	}
	seen := &seenBy{m: map[string]map[string]int{}}
	start := func(replica string) (stop func()) {
		t.Helper()
		a, err := rules.New(rules.DefaultConfig(), rules.NewKVWindowStore(b.JetStream(), kv, cluster), bustest.Logger(), nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := analyzers.NewRunner(&countingAnalyzer{Analyzer: a, replica: replica, seen: seen},
			analyzers.Deps{Bus: b, Cluster: cluster, Log: bustest.Logger(),
				Consumer: bus.ConsumerSpec{MaxDeliver: 10, Backoff: []time.Duration{20 * time.Millisecond}, AckWait: 10 * time.Second}}, 2)
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(rctx) }()
		var once sync.Once
		stop = func() {
			once.Do(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("replica %s: %v", replica, err)
				}
			})
		}
		t.Cleanup(stop)
		return stop
	}

	// Findings, by user, as they are stored.
	var fmu sync.Mutex
	findings := map[string]int{}
	stored := 0
	fctx, fstop := context.WithCancel(ctx)
	fdone := make(chan error, 1)
	go func() {
		fdone <- b.Consume(fctx, bus.ConsumerSpec{Stream: bus.StreamFinding, Durable: "test-findings"}, func(_ context.Context, m *bus.Msg) error {
			env, err := schemas.DecodeEnvelope(m.Data)
			if err != nil {
				return err
			}
			var f schemas.Finding
			if err := json.Unmarshal(env.Data, &f); err != nil {
				return err
			}
			fmu.Lock()
			defer fmu.Unlock()
			stored++
			if f.Rule.ID == "forbidden-burst" {
				findings[f.User.Name]++
			}
			return nil
		})
	}()
	defer func() { fstop(); <-fdone }()

	recorded := forbiddenBurst(t)
	published := 0
	publish := func(user string, events []map[string]any) {
		t.Helper()
		for _, m := range events {
			m["user"].(map[string]any)["username"] = user
			auditID := fmt.Sprintf("%s-%d", user, published)
			m["auditID"] = auditID
			raw, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			env, err := schemas.NewEnvelopeRaw(schemas.Attributes{ID: schemas.AuditEventID(auditID, "ResponseComplete"),
				Source: "/test", Type: schemas.TypeAudit, Cluster: cluster, Time: time.Now()}, raw)
			if err != nil {
				t.Fatal(err)
			}
			data, err := env.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.Publish(ctx, bus.Message{Subject: bus.AuditSubject(cluster), ID: env.ID, Data: data}); err != nil {
				t.Fatal(err)
			}
			published++
		}
	}
	// settled waits until every published event is analysed and
	// acknowledged (so its findings are stored) and every stored finding
	// is read.
	settled := func() {
		t.Helper()
		cons, err := b.JetStream().Consumer(ctx, bus.StreamAudit, "analyzer-rules-"+cluster)
		if err != nil {
			t.Fatal(err)
		}
		fs, err := b.JetStream().Stream(ctx, bus.StreamFinding)
		if err != nil {
			t.Fatal(err)
		}
		bustest.WaitFor(t, 60*time.Second, "every event analysed and every finding read", func() bool {
			ci, err := cons.Info(ctx)
			if err != nil || ci.NumPending != 0 || ci.NumAckPending != 0 || seen.total() < published {
				return false
			}
			si, err := fs.Info(ctx)
			fmu.Lock()
			defer fmu.Unlock()
			return err == nil && uint64(stored) == si.State.Msgs
		})
	}
	count := func(user string) int { fmu.Lock(); defer fmu.Unlock(); return findings[user] }

	t.Run("a restart in the middle of a burst", func(t *testing.T) {
		stopA := start("a")
		publish("restarted", recorded[:6])
		settled()
		stopA()
		stopB := start("b")
		defer stopB()
		publish("restarted", recorded[6:])
		settled()
		if n := count("restarted"); n != 1 {
			t.Errorf("%d findings for a burst across a restart, want 1", n)
		}
	})

	t.Run("bursts split between two replicas", func(t *testing.T) {
		start("c")
		start("d")
		// The consumer group decides who gets what: send bursts (each of
		// another user) until one was split between the replicas.
		split := ""
		bursts := 0
		for bursts < 20 && split == "" {
			user := fmt.Sprint("burst-", bursts)
			publish(user, recorded)
			bursts++
			settled()
			if r := seen.replicas(user); r["c"] > 0 && r["d"] > 0 {
				split = fmt.Sprintf("%s: %v", user, r)
			}
		}
		if split == "" {
			t.Fatalf("no burst of %d was split between the replicas", bursts)
		}
		t.Logf("split burst %s after %d bursts", split, bursts)
		for i := range bursts {
			if n := count(fmt.Sprint("burst-", i)); n != 1 {
				t.Errorf("burst %d (%v): %d findings, want 1", i, seen.replicas(fmt.Sprint("burst-", i)), n)
			}
		}
	})
}
