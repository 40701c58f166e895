// Package bustest starts a real, in-process NATS JetStream server for tests
// of any package that uses the bus. Nothing here is a mock.
package bustest

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/faultline/faultline/bus"
)

// Server is an embedded server on a random loopback port with its store in
// a test temp dir.
type Server struct {
	*bus.Embedded
	Dir    string
	Listen string
}

// Logger returns a logger for tests: warnings and errors on stderr, more with
// FAULTLINE_TEST_LOG=debug.
func Logger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("FAULTLINE_TEST_LOG") == "debug" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// StartServer starts an embedded server listening on 127.0.0.1 at a random
// port and shuts it down at cleanup.
func StartServer(t testing.TB) *Server {
	t.Helper()
	return StartServerAt(t, t.TempDir(), "127.0.0.1:0")
}

// StartServerAt starts a server on a given store dir and listen address, for
// restart tests that reuse both.
func StartServerAt(t testing.TB, dir, listen string) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := bus.StartEmbedded(ctx, bus.EmbeddedOptions{DataDir: dir, Listen: listen, Logger: Logger()})
	if err != nil {
		t.Fatalf("start embedded NATS: %v", err)
	}
	t.Cleanup(e.Shutdown)
	return &Server{Embedded: e, Dir: dir, Listen: e.Server().Addr().String()}
}

// Connect connects to s over its socket, ensures the bus layout, and closes
// the connection at cleanup.
func Connect(t testing.TB, s *Server, o bus.Options) *bus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o.URLs = []string{s.ClientURL()}
	if o.Logger == nil {
		o.Logger = Logger()
	}
	b, err := bus.Connect(ctx, o)
	if err != nil {
		t.Fatalf("connect to embedded NATS: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	if err := b.EnsureStreams(ctx, bus.Layout()); err != nil {
		t.Fatalf("ensure streams: %v", err)
	}
	if err := b.EnsureKV(ctx, bus.KVLayout()); err != nil {
		t.Fatalf("ensure KV: %v", err)
	}
	return b
}

// Start is StartServer followed by Connect.
func Start(t testing.TB) (*bus.Bus, *Server) {
	t.Helper()
	s := StartServer(t)
	return Connect(t, s, bus.Options{}), s
}

// WaitFor polls cond every 10ms until it holds or the deadline passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
