package auditfile

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/bus/bustest"
	"github.com/faultline/faultline/collectors"
	"github.com/faultline/faultline/schemas"
)

// base is a fixed instant for rotated names.
var base = time.Date(2026, 11, 22, 5, 30, 0, 123e6, time.UTC)

// TestFollowAcrossRotation writes, rotates and writes again while the
// collector runs: every event must be on the bus once, in order.
func TestFollowAcrossRotation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rotate func(t *testing.T, path string, n int)
	}{
		{"rename and create", func(t *testing.T, path string, n int) {
			renameRotate(t, path, base.Add(time.Duration(n)*time.Minute))
		}},
		{"rename, create and compress", func(t *testing.T, path string, n int) {
			gzipFile(t, renameRotate(t, path, base.Add(time.Duration(n)*time.Minute)))
		}},
		{"copy and truncate", func(t *testing.T, path string, _ int) {
			copyTruncate(t, path)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := bustest.Start(t)
			path := filepath.Join(t.TempDir(), "audit.log")
			r := start(t, b, testConfig(path))
			var all []string
			for round := range 3 {
				batch := ids(string(rune('a'+round)), 50)
				appendLines(t, path, batch)
				all = append(all, batch...)
				waitForCount(t, b, len(all))
				tc.rotate(t, path, round)
			}
			last := ids("z", 10)
			appendLines(t, path, last)
			all = append(all, last...)
			waitForCount(t, b, len(all))
			if err := r.stop(); err != nil {
				t.Fatal(err)
			}
			checkExactlyOnce(t, b, all)
			if d := r.duplicates(); d != 0 {
				t.Errorf("%v events were sent twice", d)
			}
			if m := value(r.c.m.checkpointMiss); m != 0 {
				t.Errorf("the collector lost track of a file %v times", m)
			}
		})
	}
}

// TestRotatedTwiceBetweenPolls rotates twice while the collector is not
// looking (a long poll interval): the middle file must not be skipped.
func TestRotatedTwiceBetweenPolls(t *testing.T) {
	b, _ := bustest.Start(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	cfg := testConfig(path)
	cfg.PollInterval = 400 * time.Millisecond
	appendLines(t, path, ids("a", 5))
	r := start(t, b, cfg)
	waitForCount(t, b, 5)
	// Within one poll interval: finish file a, a whole file b, start c.
	appendLines(t, path, ids("a2", 5))
	renameRotate(t, path, base)
	appendLines(t, path, ids("b", 5))
	renameRotate(t, path, base.Add(time.Second))
	appendLines(t, path, ids("c", 5))
	waitForCount(t, b, 20)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, b, concat(ids("a", 5), ids("a2", 5), ids("b", 5), ids("c", 5)))
}

// TestRotatedWhilePlanning rotates the active file right after the
// collector decided what to read (as the API server may while a backlog
// of rotated files is read): the file rotated away is not skipped.
func TestRotatedWhilePlanning(t *testing.T) {
	b, _ := bustest.Start(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	appendLines(t, rotatedName(path, base), ids("old", 5))
	appendLines(t, path, ids("active", 5))
	c, err := New(testConfig(path), collectors.Deps{Bus: b, Cluster: testCluster})
	if err != nil {
		t.Fatal(err)
	}
	plans := 0
	c.testHookPlanned = func() {
		if plans++; plans == 1 {
			appendLines(t, path, ids("active-more", 5))
			renameRotate(t, path, base.Add(time.Minute))
			appendLines(t, path, ids("new", 5))
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitForCount(t, b, 20)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, b, concat(ids("old", 5), ids("active", 5), ids("active-more", 5), ids("new", 5)))
	if plans < 2 {
		t.Errorf("planned %d times; the stale plan was not noticed", plans)
	}
}

// TestRestartFromCheckpoint stops the collector, changes the files while it
// is down, and starts it again: what it read before is not sent again, what
// was written meanwhile is sent.
func TestRestartFromCheckpoint(t *testing.T) {
	for _, tc := range []struct {
		name      string
		whileDown func(t *testing.T, path string) []string
	}{
		{"appended", func(t *testing.T, path string) []string {
			more := ids("down", 30)
			appendLines(t, path, more)
			return more
		}},
		{"nothing new", func(t *testing.T, path string) []string { return nil }},
		{"rotated by rename", func(t *testing.T, path string) []string {
			a, b := ids("down-a", 20), ids("down-b", 20)
			appendLines(t, path, a)
			renameRotate(t, path, base)
			appendLines(t, path, b)
			return concat(a, b)
		}},
		{"rotated and compressed", func(t *testing.T, path string) []string {
			a, b := ids("down-a", 20), ids("down-b", 20)
			appendLines(t, path, a)
			gzipFile(t, renameRotate(t, path, base))
			appendLines(t, path, b)
			return concat(a, b)
		}},
		{"rotated twice", func(t *testing.T, path string) []string {
			a, b, c := ids("down-a", 10), ids("down-b", 10), ids("down-c", 10)
			appendLines(t, path, a)
			renameRotate(t, path, base)
			appendLines(t, path, b)
			renameRotate(t, path, base.Add(time.Minute))
			appendLines(t, path, c)
			return concat(a, b, c)
		}},
		{"copied and truncated", func(t *testing.T, path string) []string {
			a, b := ids("down-a", 20), ids("down-b", 20)
			appendLines(t, path, a)
			copyTruncate(t, path)
			appendLines(t, path, b)
			return concat(a, b)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := bustest.Start(t)
			path := filepath.Join(t.TempDir(), "audit.log")
			first := ids("up", 40)
			appendLines(t, path, first)
			r1 := start(t, b, testConfig(path))
			waitForCount(t, b, len(first))
			if err := r1.stop(); err != nil {
				t.Fatal(err)
			}
			more := tc.whileDown(t, path)
			after := ids("after", 10)
			r2 := start(t, b, testConfig(path))
			appendLines(t, path, after)
			all := concat(first, more, after)
			waitForCount(t, b, len(all))
			if err := r2.stop(); err != nil {
				t.Fatal(err)
			}
			checkExactlyOnce(t, b, all)
			// JetStream's de-duplication would hide a re-send within its
			// window: the collector's own counts tell whether it re-sent.
			if got, want := r2.published(), float64(len(more)+len(after)); got != want {
				t.Errorf("after the restart %v events were published, want %v", got, want)
			}
			if d := r1.duplicates() + r2.duplicates(); d != 0 {
				t.Errorf("%v events were sent twice", d)
			}
			if m := value(r2.c.m.checkpointMiss); m != 0 {
				t.Errorf("the collector lost track of a file %v times", m)
			}
		})
	}
}

// TestStaleCheckpointIsIdempotent simulates a crash after events were
// acknowledged but before the checkpoint moved: they are read again, and
// JetStream stores them once.
func TestStaleCheckpointIsIdempotent(t *testing.T) {
	b, _ := bustest.Start(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	appendLines(t, path, ids("a", 10))
	cfg := testConfig(path)
	r1 := start(t, b, cfg)
	waitForCount(t, b, 10)
	if err := r1.stop(); err != nil {
		t.Fatal(err)
	}
	stale := r1.c.cp.position
	appendLines(t, path, ids("b", 10))
	r2 := start(t, b, cfg)
	waitForCount(t, b, 20)
	if err := r2.stop(); err != nil {
		t.Fatal(err)
	}
	// Put the checkpoint back to where it was after the first ten.
	kv, err := b.KV(context.Background(), bus.BucketCheckpoints)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(checkpoint{Version: checkpointVersion, position: stale, Saved: time.Now()})
	if _, err := kv.Put(context.Background(), cfg.CheckpointKey, raw); err != nil {
		t.Fatal(err)
	}
	r3 := start(t, b, cfg)
	bustest.WaitFor(t, 10*time.Second, "the ten events after the stale checkpoint read again", func() bool {
		return r3.duplicates() == 10
	})
	if err := r3.stop(); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, b, concat(ids("a", 10), ids("b", 10)))
}

// TestFirstStartReadsRotatedFilesInOrder starts on a directory of rotated
// files: they are read oldest first (by the time in their names, whatever
// their modification times), compressed or not, then the active file.
func TestFirstStartReadsRotatedFilesInOrder(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	// Written newest first so modification times disagree with the names.
	files := []struct {
		at  time.Time
		ids []string
		gz  bool
	}{
		{base.Add(3 * time.Hour), ids("r3", 7), false},
		{base.Add(2 * time.Hour), ids("r2", 7), true},
		{base.Add(time.Hour), ids("r1", 7), false},
		{base, ids("r0", 7), true},
	}
	for _, f := range files {
		name := rotatedName(path, f.at)
		appendLines(t, name, f.ids)
		if f.gz {
			gzipFile(t, name)
		}
	}
	appendLines(t, path, ids("active", 7))
	// Not audit logs of ours: ignored.
	appendLines(t, filepath.Join(dir, "other.log"), ids("other", 3))
	appendLines(t, filepath.Join(dir, "audit-backup.log"), ids("other2", 3))

	b, _ := bustest.Start(t)
	r := start(t, b, testConfig(path))
	want := concat(ids("r0", 7), ids("r1", 7), ids("r2", 7), ids("r3", 7), ids("active", 7))
	waitForCount(t, b, len(want))
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, b, want)

	// Without read_rotated only the active file is read.
	b2, _ := bustest.Start(t)
	cfg := testConfig(path)
	cfg.ReadRotated = false
	r2 := start(t, b2, cfg)
	waitForCount(t, b2, 7)
	if err := r2.stop(); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, b2, ids("active", 7))
}

// TestStartAtEnd skips what is there at the first start, and a partial
// line being written is not mistaken for a line.
func TestStartAtEnd(t *testing.T) {
	b, _ := bustest.Start(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	appendLines(t, path, ids("old", 5))
	partial := auditLine("new-0000")
	appendRaw(t, path, partial[:40])
	renameless := rotatedName(path, base)
	appendLines(t, renameless, ids("older", 5))
	cfg := testConfig(path)
	cfg.StartAt = StartEnd
	r := start(t, b, cfg)
	bustest.WaitFor(t, 10*time.Second, "the start position saved", func() bool {
		return kvHas(t, b, cfg.CheckpointKey)
	})
	appendRaw(t, path, partial[40:])
	appendLines(t, path, ids("new", 5)[1:])
	waitForCount(t, b, 5)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, b, ids("new", 5))
}

func kvHas(t testing.TB, b *bus.Bus, key string) bool {
	kv, err := b.KV(context.Background(), bus.BucketCheckpoints)
	if err != nil {
		t.Fatal(err)
	}
	_, err = kv.Get(context.Background(), key)
	return err == nil
}

// TestMalformedLines reads a file with bad lines among good ones: each bad
// line is reported with its file and line number and counted by reason,
// every good one is published.
func TestMalformedLines(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "malformed.log"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	// The fixture plus a line over max_line_size and an oversize event.
	long := `{"kind":"Event","junk":"` + strings.Repeat("x", 300<<10) + `"}` + "\n"
	big := strings.Replace(auditLine("big-0001"), `"responseStatus"`,
		`"requestObject":{"data":"`+strings.Repeat("y", 100<<10)+`"},"responseStatus"`, 1)
	if err := os.WriteFile(path, append(append(src, long...), big...), 0o600); err != nil {
		t.Fatal(err)
	}
	appendLines(t, path, ids("tail", 2))

	b, _ := bustest.Start(t)
	cfg := testConfig(path)
	cfg.MaxLineSize = 200 << 10
	cfg.MaxEventSize = 64 << 10
	cfg.MaxBatchBytes = 1 << 20
	r := start(t, b, cfg)
	want := concat(ids("good", 4), []string{"big-0001"}, ids("tail", 2))
	waitForCount(t, b, len(want))
	bustest.WaitFor(t, 10*time.Second, "every line handled", func() bool {
		return r.rejected(reasonInvalid)+r.rejected(reasonTooLong) == 6
	})
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, b, want)
	if got := r.rejected(reasonInvalid); got != 5 {
		t.Errorf("invalid lines counted: %v, want 5", got)
	}
	if got := r.rejected(reasonTooLong); got != 1 {
		t.Errorf("too long lines counted: %v, want 1", got)
	}
	if got := value(r.c.m.truncated); got != 1 {
		t.Errorf("truncated events: %v, want 1", got)
	}
	logs := r.logs.String()
	for _, line := range []int{2, 4, 5, 7, 8, 11} {
		where := path + ":" + strconv.Itoa(line)
		if !strings.Contains(logs, "where="+where+" ") {
			t.Errorf("no report for %s in the log:\n%s", where, logs)
		}
	}
	if !strings.Contains(logs, fmt.Sprintf("line too long: %d bytes", len(long)-1)) {
		t.Errorf("the long line's report does not give its length:\n%s", logs)
	}

	// The rejected lines are kept, redacted, as dead letters naming where
	// they were.
	reasons := dlqReasons(t, b)
	if len(reasons) != 5 {
		t.Errorf("%d dead letters, want 5: %q", len(reasons), reasons)
	}
	for i, line := range []int{2, 4, 5, 7, 8} {
		if i < len(reasons) && !strings.HasPrefix(reasons[i], path+":"+strconv.Itoa(line)+": ") {
			t.Errorf("dead letter %d has reason %q", i, reasons[i])
		}
	}

	// The oversize event is published without its request object, marked.
	env := lastEnvelopeWithID(t, b, idOf("big-0001"))
	var ev struct {
		Annotations   map[string]string `json:"annotations"`
		RequestObject json.RawMessage   `json:"requestObject"`
	}
	if err := json.Unmarshal(env.Data, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.RequestObject != nil || ev.Annotations[schemas.AuditAnnotationTruncated] != "true" ||
		ev.Annotations[schemas.AuditAnnotationOriginalSize] != strconv.Itoa(len(big)-1) {
		t.Errorf("oversize event published as %s", env.Data)
	}
}

// dlqReasons returns the reason of every dead letter, in order.
func dlqReasons(t testing.TB, b *bus.Bus) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := b.JetStream().Stream(ctx, bus.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject != bus.DeadLetterSubject(bus.StreamAudit, Name) {
			t.Errorf("dead letter on %s", m.Subject)
		}
		out = append(out, m.Header.Get(bus.HeaderDLQReason))
	}
	return out
}

// TestSecretsRedacted reads a Secret's creation logged with its objects:
// the values never reach the bus, the keys do.
func TestSecretsRedacted(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "secret.log"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := bustest.Start(t)
	r := start(t, b, testConfig(path))
	waitForCount(t, b, 1)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	env := lastEnvelopeWithID(t, b, idOf("5f2c3d4e-1111-4a2b-9c3d-000000000001"))
	data := string(env.Data)
	for _, secret := range []string{"hunter2", "aHVudGVyMg=="} {
		if strings.Contains(data, secret) {
			t.Errorf("secret value %q published: %s", secret, data)
		}
	}
	if !strings.Contains(data, `"password":"[REDACTED]"`) || !strings.Contains(data, `"faultline.io/redacted":"true"`) {
		t.Errorf("published without the redaction marks: %s", data)
	}
	if env.Subject != "shop/secrets/db-credentials" || value(r.c.m.redacted) != 1 {
		t.Errorf("subject %q, redacted count %v", env.Subject, value(r.c.m.redacted))
	}
}

// TestEnvelope checks what one published message looks like.
func TestEnvelope(t *testing.T) {
	b, _ := bustest.Start(t)
	path := filepath.Join(t.TempDir(), "audit.log")
	appendLines(t, path, []string{"6b0b6a3e-4f3c-4f07-9a49-3d1b2a7f0c11"})
	r := start(t, b, testConfig(path))
	waitForCount(t, b, 1)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	env := lastEnvelopeWithID(t, b, idOf("6b0b6a3e-4f3c-4f07-9a49-3d1b2a7f0c11"))
	if env.Source != Source || env.Type != schemas.TypeAudit || env.Cluster != testCluster ||
		env.Subject != "shop/pods/web-1" || !env.Time.Equal(time.Date(2026, 11, 22, 5, 30, 0, 2e6, time.UTC)) {
		t.Errorf("envelope = %+v", env)
	}
	if err := schemas.Validate(schemas.KindAuditEvent, env.Data); err != nil {
		t.Errorf("payload does not match the audit event schema: %v", err)
	}
}

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// lastEnvelopeWithID returns the stored envelope with the given id.
func lastEnvelopeWithID(t testing.TB, b *bus.Bus, id string) *schemas.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := b.JetStream().Stream(ctx, bus.StreamAudit)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for seq := info.State.LastSeq; seq >= info.State.FirstSeq && seq > 0; seq-- {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		if m.Header.Get("Nats-Msg-Id") != id {
			continue
		}
		env, err := schemas.DecodeEnvelope(m.Data)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		return env
	}
	t.Fatalf("no message with id %s", id)
	return nil
}
