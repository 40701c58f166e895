package auditfile

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/bus/bustest"
	"github.com/faultline/faultline/collectors"
)

// childEnv, when set in the environment of this test binary, makes it run
// one collector (described by the JSON value) until it is killed, instead
// of the tests.
const childEnv = "FAULTLINE_AUDITFILE_TEST_CHILD"

type childSpec struct {
	NATS   string `json:"nats"`
	Config Config `json:"config"`
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	os.Exit(m.Run())
}

// runChild runs a collector as a process of its own.
func runChild(raw string) int {
	var spec childSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	b, err := bus.Connect(ctx, bus.Options{URLs: []string{spec.NATS}, Logger: log})
	if err != nil {
		log.Error("connect", "err", err)
		return 1
	}
	defer b.Close(context.Background())
	c, err := New(spec.Config, collectors.Deps{Bus: b, Cluster: testCluster, Log: log})
	if err != nil {
		log.Error("new", "err", err)
		return 1
	}
	if err := c.Run(ctx); err != nil {
		log.Error("run", "err", err)
		return 1
	}
	return 0
}

// TestKillDuringReading runs the collector as a process of its own while
// a writer appends to the log and rotates it (renamed, some compressed),
// kills it with SIGKILL three times at different moments and restarts it.
// Afterwards the bus holds every line written, each once: what was
// acknowledged before a kill but not checkpointed is read again and
// stored once (same ids), nothing is skipped.
func TestKillDuringReading(t *testing.T) {
	srv := bustest.StartServer(t)
	b := bustest.Connect(t, srv, bus.Options{})
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	cfg := testConfig(path)
	cfg.BatchSize = 50
	spec, err := json.Marshal(childSpec{NATS: srv.ClientURL(), Config: cfg})
	if err != nil {
		t.Fatal(err)
	}

	var child *exec.Cmd
	runs := 0
	startChild := func() {
		runs++
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("collector-%d.log", runs)))
		if err != nil {
			t.Fatal(err)
		}
		defer logf.Close()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		child = cmd
	}
	t.Cleanup(func() {
		if child != nil && child.ProcessState == nil {
			_ = child.Process.Kill()
			_ = child.Wait()
		}
	})

	// The writer: 40 chunks of 50 lines, a rename rotation every 8 chunks
	// (every other one compressed). It runs here, between the kills.
	var all []string
	chunk := 0
	write := func(chunks int) {
		for range chunks {
			lines := ids(fmt.Sprintf("k%02d", chunk), 50)
			appendLines(t, path, lines)
			all = append(all, lines...)
			chunk++
			if chunk%8 == 0 {
				rotated := renameRotate(t, path, base.Add(time.Duration(chunk)*time.Minute))
				if chunk%16 == 0 {
					gzipFile(t, rotated)
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	startChild()
	for _, stage := range []struct {
		chunks int
		await  int // lines on the bus before the kill (0: kill at once)
	}{
		{10, 300}, // mid-file, mid-stream
		{7, 0},    // right after a rotation, probably mid-batch
		{9, 900},
	} {
		write(stage.chunks)
		if stage.await > 0 {
			waitForCount(t, b, stage.await)
		}
		if err := child.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = child.Wait()
		write(2) // while it is down
		startChild()
	}
	write(40 - chunk)
	waitForCount(t, b, len(all))
	if err := child.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := child.Wait(); err != nil {
		t.Errorf("last collector: %v", err)
	}
	// Each line once, in the order written (a re-read batch is dropped by
	// JetStream as a duplicate).
	checkExactlyOnce(t, b, all)
	if runs != 4 {
		t.Errorf("%d runs", runs)
	}
	for i := 2; i <= runs; i++ {
		log, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("collector-%d.log", i)))
		for _, line := range strings.Split(string(log), "\n") {
			if strings.Contains(line, "resuming") {
				t.Logf("run %d: %s", i, line)
			}
		}
	}
}
