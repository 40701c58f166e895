package auditwebhook

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/collectors"
)

// childEnv, when set, makes the test binary run one receiver as a process
// of its own (the kill test's collector) instead of the tests.
const childEnv = "FAULTLINE_AUDITWEBHOOK_TEST_CHILD"

// childSpec is what the parent test hands the child, as JSON in childEnv.
type childSpec struct {
	NATS    string
	Cluster string
	Config  Config
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec))
	}
	os.Exit(m.Run())
}

// runChild is the main of a receiver process: it serves until SIGTERM (or
// dies with SIGKILL, which is the point).
func runChild(spec string) int {
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var s childSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		log.Error("child: bad spec", "err", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	b, err := bus.Connect(ctx, bus.Options{Name: "auditwebhook-child", URLs: []string{s.NATS}, Logger: log})
	if err != nil {
		log.Error("child: connect", "err", err)
		return 1
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(cctx)
	}()
	c, err := New(collectors.Deps{Bus: b, Cluster: s.Cluster, Log: log}, s.Config)
	if err != nil {
		log.Error("child: new", "err", err)
		return 1
	}
	if err := c.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
