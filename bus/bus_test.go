package bus_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/bus/bustest"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func streamMsgs(t *testing.T, b *bus.Bus, stream string) uint64 {
	t.Helper()
	s, err := b.JetStream().Stream(context.Background(), stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatalf("stream %s info: %v", stream, err)
	}
	return info.State.Msgs
}

func TestPublishSameIDStoredOnce(t *testing.T) {
	b, _ := bustest.Start(t)
	ctx := ctxT(t, 20*time.Second)
	m := bus.Message{Subject: bus.AuditSubject("prod"), ID: "audit-1234-ResponseComplete", Data: []byte(`{"x":1}`)}
	dup, err := b.Publish(ctx, m)
	if err != nil || dup {
		t.Fatalf("first publish: dup=%v err=%v", dup, err)
	}
	dup, err = b.Publish(ctx, m)
	if err != nil {
		t.Fatalf("second publish: %v", err)
	}
	if !dup {
		t.Errorf("second publish of the same id was not reported as duplicate")
	}
	// A batch repeating the id is also stored once.
	bt := b.NewBatch()
	for range 3 {
		if err := bt.Add(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	r, err := bt.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Acked != 3 || r.Duplicates != 3 {
		t.Errorf("batch result = %+v, want 3 acked, 3 duplicates", r)
	}
	if n := streamMsgs(t, b, bus.StreamAudit); n != 1 {
		t.Errorf("stream holds %d messages, want 1", n)
	}
}

func TestBatchReportsFailures(t *testing.T) {
	b, _ := bustest.Start(t)
	ctx := ctxT(t, 30*time.Second)
	bt := b.NewBatch()
	subjects := []string{bus.AuditSubject("c"), "nostream.here", bus.AuditSubject("c"), "nostream.there"}
	for i, s := range subjects {
		if err := bt.Add(ctx, bus.Message{Subject: s, ID: fmt.Sprintf("m%d", i), Data: []byte("{}")}); err != nil {
			t.Fatalf("add %d: %v", i, err)
		}
	}
	r, err := bt.Wait(ctx)
	var be *bus.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("Wait error = %v, want *BatchError", err)
	}
	if r.Total != 4 || r.Acked != 2 || len(r.Failed) != 2 {
		t.Fatalf("result = %+v, want 4 total, 2 acked, 2 failed", r)
	}
	got := map[int]bool{}
	for _, f := range r.Failed {
		got[f.Index] = true
	}
	if !got[1] || !got[3] {
		t.Errorf("failed indices = %v, want 1 and 3", got)
	}
}

func TestPublishBlocksAtInflightBound(t *testing.T) {
	s := bustest.StartServer(t)
	b := bustest.Connect(t, s, bus.Options{MaxInflight: 1})
	ctx := ctxT(t, 20*time.Second)
	// With a bound of one, a large batch still completes: each Add waits for
	// the previous acknowledgement instead of failing.
	bt := b.NewBatch()
	for i := range 200 {
		if err := bt.Add(ctx, bus.Message{Subject: bus.AuditSubject("c"), ID: fmt.Sprint(i), Data: []byte("{}")}); err != nil {
			t.Fatalf("add %d: %v", i, err)
		}
	}
	if r, err := bt.Wait(ctx); err != nil || r.Acked != 200 {
		t.Fatalf("wait: %+v %v", r, err)
	}
}

// Messages acknowledged before the server stops are there after it starts
// again on the same store, and a durable consumer resumes without loss.
func TestRestartKeepsAckedMessagesAndConsumerResumes(t *testing.T) {
	dir := t.TempDir()
	s1 := bustest.StartServerAt(t, dir, "127.0.0.1:0")
	listen := s1.Listen
	b := bustest.Connect(t, s1, bus.Options{})
	// Generous deadlines: under -race with other packages' tests on two
	// cores, a round trip can take seconds. They bound the wait, they are
	// not sleeps.
	ctx := ctxT(t, 180*time.Second)

	const total = 600
	publish := func(from, to int) {
		t.Helper()
		bt := b.NewBatch()
		for i := from; i < to; i++ {
			if err := bt.Add(ctx, bus.Message{Subject: bus.AuditSubject("c"), ID: fmt.Sprintf("id-%d", i), Data: []byte(fmt.Sprintf(`{"n":%d}`, i))}); err != nil {
				t.Fatalf("add %d: %v", i, err)
			}
		}
		if r, err := bt.Wait(ctx); err != nil {
			t.Fatalf("publish %d..%d: %+v: %v", from, to, r, err)
		}
	}
	publish(0, total/2)

	var mu sync.Mutex
	seen := map[string]int{}
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- b.Consume(cctx, bus.ConsumerSpec{Stream: bus.StreamAudit, Durable: "restart-test", AckWait: 2 * time.Second, Backoff: []time.Duration{50 * time.Millisecond}}, func(_ context.Context, m *bus.Msg) error {
			mu.Lock()
			seen[m.ID]++
			mu.Unlock()
			return nil
		})
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }
	// consumed also fails the test at once if Consume gave up.
	consumed := func(n int) func() bool {
		return func() bool {
			select {
			case err := <-done:
				t.Fatalf("consume returned early after %d messages: %v", count(), err)
			default:
			}
			return count() >= n
		}
	}
	bustest.WaitFor(t, 60*time.Second, "first quarter consumed", consumed(total/4))

	// Stop the server mid-stream and start it again on the same store and port.
	s1.Shutdown()
	bustest.StartServerAt(t, dir, listen)
	bustest.WaitFor(t, 60*time.Second, "reconnect", func() bool { return b.Ready(ctx) == nil })
	if n := streamMsgs(t, b, bus.StreamAudit); n != total/2 {
		t.Fatalf("after restart the stream holds %d messages, want %d", n, total/2)
	}
	publish(total/2, total)
	bustest.WaitFor(t, 60*time.Second, "every message consumed", consumed(total))
	stop()
	if err := <-done; err != nil {
		t.Fatalf("consume: %v", err)
	}
	for i := range total {
		if seen[fmt.Sprintf("id-%d", i)] == 0 {
			t.Errorf("message id-%d never consumed", i)
		}
	}
}

func TestFailingHandlerEndsInDeadLetters(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		wantTries int
	}{
		{"retryable", errors.New("index unavailable"), 3},
		{"permanent", bus.Permanent(errors.New("malformed payload")), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := bustest.Start(t)
			ctx := ctxT(t, 30*time.Second)
			if _, err := b.Publish(ctx, bus.Message{Subject: bus.FindingSubject("c", "rules"), ID: "f1", Data: []byte(`{"rule":"x"}`)}); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			tries := 0
			cctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() {
				done <- b.Consume(cctx, bus.ConsumerSpec{Stream: bus.StreamFinding, Durable: "indexer", MaxDeliver: 3, Backoff: []time.Duration{20 * time.Millisecond}},
					func(context.Context, *bus.Msg) error {
						mu.Lock()
						tries++
						mu.Unlock()
						return tc.err
					})
			}()
			bustest.WaitFor(t, 20*time.Second, "dead letter", func() bool { return streamMsgs(t, b, bus.StreamDeadLetter) == 1 })
			stop()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			if tries != tc.wantTries {
				t.Errorf("handler ran %d times, want %d", tries, tc.wantTries)
			}
			mu.Unlock()
			st, _ := b.JetStream().Stream(ctx, bus.StreamDeadLetter)
			raw, err := st.GetLastMsgForSubject(ctx, bus.DeadLetterSubject(bus.StreamFinding, "indexer"))
			if err != nil {
				t.Fatalf("read dead letter: %v", err)
			}
			if string(raw.Data) != `{"rule":"x"}` {
				t.Errorf("dead letter data = %q, want the original message", raw.Data)
			}
			if r := raw.Header.Get(bus.HeaderDLQReason); !strings.Contains(r, "index unavailable") && !strings.Contains(r, "malformed payload") {
				t.Errorf("dead letter reason = %q", r)
			}
			if got := raw.Header.Get(bus.HeaderDLQSubject); got != bus.FindingSubject("c", "rules") {
				t.Errorf("dead letter original subject = %q", got)
			}
			if got := raw.Header.Get(bus.HeaderDLQDeliveries); got != fmt.Sprint(tc.wantTries) {
				t.Errorf("dead letter deliveries = %q, want %d", got, tc.wantTries)
			}
			// The original is still in its stream (limits retention): nothing lost.
			if n := streamMsgs(t, b, bus.StreamFinding); n != 1 {
				t.Errorf("finding stream holds %d, want 1", n)
			}
		})
	}
}

func TestConsumerGroupSplitsWork(t *testing.T) {
	b, s := bustest.Start(t)
	b2 := bustest.Connect(t, s, bus.Options{Name: "replica-2"})
	ctx := ctxT(t, 60*time.Second)
	const total = 400
	bt := b.NewBatch()
	for i := range total {
		if err := bt.Add(ctx, bus.Message{Subject: bus.KubeEventSubject("c", "ns"), ID: fmt.Sprint(i), Data: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bt.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	per := map[string]int{}
	mk := func(name string) bus.Handler {
		return func(_ context.Context, m *bus.Msg) error {
			mu.Lock()
			seen[m.ID] = true
			per[name]++
			mu.Unlock()
			// Slow enough that both replicas get work.
			time.Sleep(time.Millisecond)
			return nil
		}
	}
	cctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for name, bb := range map[string]*bus.Bus{"a": b, "b": b2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := bb.Consume(cctx, bus.ConsumerSpec{Stream: bus.StreamKubeEvent, Durable: "analyzers", MaxAckPending: 20}, mk(name)); err != nil {
				t.Error(err)
			}
		}()
	}
	bustest.WaitFor(t, 30*time.Second, "all messages consumed", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == total })
	stop()
	wg.Wait()
	if per["a"] == 0 || per["b"] == 0 {
		t.Errorf("work not shared: %v", per)
	}
}

func TestConnectUnreachableFailsFast(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	start := time.Now()
	_, err = bus.Connect(context.Background(), bus.Options{URLs: []string{"nats://user:s3cret@" + addr}, ConnectTimeout: time.Second})
	if err == nil {
		t.Fatal("connect to a closed port succeeded")
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("connect took %s", time.Since(start))
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("error %q does not name the address", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %q leaks the password", err)
	}
}
