package replay_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/faultline/faultline/analyzers"
	"github.com/faultline/faultline/analyzers/audit"
	"github.com/faultline/faultline/analyzers/baseline"
	"github.com/faultline/faultline/analyzers/replay"
	"github.com/faultline/faultline/analyzers/rules"
	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/bus/bustest"
	"github.com/faultline/faultline/schemas"
)

var files = []string{
	"../rules/testdata/recorded/exec-suspicious-command.pos.jsonl",
	"../rules/testdata/recorded/cluster-admin-binding.pos.jsonl",
	"../rules/testdata/recorded/privileged-pod.pos.jsonl",
	"../rules/testdata/recorded/secret-rapid-access.pos.jsonl",
	"../rules/testdata/recorded/forbidden-burst.pos.jsonl",
}

// TestBusAndReplayAgree: the same recorded events give the same finding
// documents through the bus runner (as the analyzer Deployment runs) and
// through replay.
func TestBusAndReplayAgree(t *testing.T) {
	eng, err := rules.Compile(rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Replay.
	var inputs []replay.Input
	var raw [][]byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, replay.Input{Name: f, R: bytes.NewReader(data)})
		for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			raw = append(raw, []byte(l))
		}
	}
	var out, log bytes.Buffer
	s, err := replay.Run(context.Background(), replay.Options{
		Analyzers: []analyzers.Analyzer{rules.NewWithEngine(eng.Fresh())}, Cluster: "prod", Out: &out, Log: &log,
	}, inputs)
	if err != nil || s.Rejected != 0 {
		t.Fatalf("replay: %v, %d rejected\n%s", err, s.Rejected, log.String())
	}
	want := map[string]map[string]any{}
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		want[m["event"].(map[string]any)["id"].(string)] = m
	}
	if len(want) < 5 || s.Findings != len(want) {
		t.Fatalf("replay gave %d findings (%d distinct)", s.Findings, len(want))
	}

	// The bus: events published as a collector does, one runner.
	b, _ := bustest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	batch := b.NewBatch()
	for _, l := range raw {
		ev, err := audit.Parse(l)
		if err != nil {
			t.Fatal(err)
		}
		env, err := schemas.NewEnvelopeRaw(schemas.Attributes{ID: ev.ID(), Source: "/test", Type: schemas.TypeAudit, Cluster: "prod", Time: ev.Time()}, l)
		if err != nil {
			t.Fatal(err)
		}
		data, err := env.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if err := batch.Add(ctx, bus.Message{Subject: bus.AuditSubject("prod"), ID: env.ID, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := batch.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := analyzers.NewRunner(rules.NewWithEngine(eng.Fresh()), analyzers.Deps{Bus: b, Cluster: "prod", Log: bustest.Logger()}, 1)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	var mu sync.Mutex
	got := map[string]map[string]any{}
	cctx, cstop := context.WithCancel(ctx)
	cdone := make(chan error, 1)
	go func() {
		cdone <- b.Consume(cctx, bus.ConsumerSpec{Stream: bus.StreamFinding, Durable: "reader"}, func(_ context.Context, m *bus.Msg) error {
			env, err := schemas.DecodeEnvelope(m.Data)
			if err != nil {
				return err
			}
			var f map[string]any
			if err := json.Unmarshal(env.Data, &f); err != nil {
				return err
			}
			mu.Lock()
			got[env.ID] = f
			mu.Unlock()
			return nil
		})
	}()
	bustest.WaitFor(t, 30*time.Second, "every finding on the bus", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= len(want)
	})
	stop()
	cstop()
	<-done
	<-cdone
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(want) {
		t.Errorf("%d findings on the bus, %d from replay", len(got), len(want))
	}
	var ids []string
	for id := range want {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if !reflect.DeepEqual(got[id], want[id]) {
			gb, _ := json.Marshal(got[id])
			wb, _ := json.Marshal(want[id])
			t.Errorf("finding %s differs:\nbus:    %s\nreplay: %s", id, gb, wb)
		}
	}
}

// TestReplayReusesMemorySafely: replay reads each event into the memory
// of the one before (audit.Reader.Reuse), so an analyzer that kept a
// string of an event would see it change. Every recorded event through
// the rules and baseline analyzers gives the same findings as when each
// event has memory of its own.
func TestReplayReusesMemorySafely(t *testing.T) {
	eng, err := rules.Compile(rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	names, err := filepath.Glob("../rules/testdata/recorded/*")
	if err != nil || len(names) < 10 {
		t.Fatalf("recorded events: %v", err)
	}
	newAnalyzers := func() []analyzers.Analyzer {
		cfg := baseline.DefaultConfig()
		cfg.LearningPeriod = 0 // everything new is a finding
		cfg.IgnoreUsers = nil  // the control plane too
		b, err := baseline.New(cfg, &baseline.MemoryStore{}, "prod", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return []analyzers.Analyzer{rules.NewWithEngine(eng.Fresh()), b}
	}
	var inputs []replay.Input
	var data [][]byte
	for _, name := range names {
		d, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, d)
		inputs = append(inputs, replay.Input{Name: name, R: bytes.NewReader(d)})
	}
	var out, log bytes.Buffer
	s, err := replay.Run(context.Background(), replay.Options{Analyzers: newAnalyzers(), Cluster: "prod", Out: &out, Log: &log}, inputs)
	if err != nil || s.Rejected != 0 {
		t.Fatalf("replay: %v, %d rejected\n%s", err, s.Rejected, log.String())
	}

	// The same, each event in memory of its own (a reader that does not
	// reuse).
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetEscapeHTML(false)
	as := newAnalyzers()
	events := 0
	for i, d := range data {
		r := audit.NewReader(bytes.NewReader(d), names[i])
		for {
			ev, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			events++
			for _, a := range as {
				fs, err := a.Analyze(context.Background(), &analyzers.Input{Cluster: "prod", Event: ev})
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range fs {
					analyzers.Finish(f, "prod", ev, nil)
					if err := enc.Encode(f); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	if s.Events != events || s.Findings < 100 || out.String() != want.String() {
		t.Errorf("replay read %d events (want %d) and made %d findings, other than with an event's own memory:\nreplay:\n%.1500s\nwant:\n%.1500s",
			s.Events, events, s.Findings, out.String(), want.String())
	}
}
