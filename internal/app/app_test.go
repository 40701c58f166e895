package app

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/faultline/faultline/bus"
	"github.com/faultline/faultline/bus/bustest"
	"github.com/faultline/faultline/internal/config"
)

type compFunc struct {
	name string
	run  func(ctx context.Context) error
}

func (c compFunc) Name() string                  { return c.name }
func (c compFunc) Run(ctx context.Context) error { return c.run(ctx) }

func testConfig(t *testing.T) config.Config {
	cfg := config.Default()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Bus.Embedded.DataDir = t.TempDir()
	cfg.Log.Level = "warn"
	return cfg
}

func TestRunStopsOnCancelAfterComponentsDrain(t *testing.T) {
	rt, err := Start(context.Background(), testConfig(t), "test", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	published := make(chan struct{})
	drained := false
	comp := compFunc{"publisher", func(ctx context.Context) error {
		if _, err := rt.Bus.Publish(ctx, bus.Message{Subject: bus.AuditSubject("default"), ID: "a", Data: []byte("{}")}); err != nil {
			return err
		}
		close(published)
		<-ctx.Done()
		drained = true
		return nil
	}}
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx, comp) }()
	<-published
	addr := rt.Ops.Addr()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/readyz = %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
	if !drained {
		t.Error("component was not given the chance to finish")
	}
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Error("ops endpoint still serving after Run returned")
	}
}

func TestRunReturnsComponentError(t *testing.T) {
	rt, err := Start(context.Background(), testConfig(t), "test", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	other := compFunc{"waiter", func(ctx context.Context) error { <-ctx.Done(); return nil }}
	failing := compFunc{"failing", func(context.Context) error { return boom }}
	err = rt.Run(context.Background(), other, failing)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "failing") {
		t.Fatalf("Run = %v, want the component's error named", err)
	}
}

func TestStartAgainstExternalBus(t *testing.T) {
	srv := bustest.StartServer(t)
	cfg := testConfig(t)
	cfg.Bus.URLs = []string{srv.ClientURL()}
	rt, err := Start(context.Background(), cfg, "test", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if rt.Embedded != nil {
		t.Error("embedded server started although bus.urls is set")
	}
	if err := rt.Bus.Ready(context.Background()); err != nil {
		t.Error(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := rt.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestStartFailureReleasesTheEndpoint(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := testConfig(t)
	cfg.HTTP.Listen = addr
	cfg.Bus.URLs = []string{"nats://127.0.0.1:1"}
	cfg.Bus.ConnectTimeout = time.Second
	if _, err := Start(context.Background(), cfg, "test", io.Discard); err == nil {
		t.Fatal("start with an unreachable bus succeeded")
	}
	// A retry in the same process must be able to listen again.
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("endpoint %s still held after a failed start: %v", addr, err)
	}
	l.Close()
}
