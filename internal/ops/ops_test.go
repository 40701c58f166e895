package ops

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func serve(t *testing.T, o Options) (*Server, string) {
	t.Helper()
	o.Listen = "127.0.0.1:0"
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "faultline_test_total", Help: "test"})
	reg.MustRegister(c)
	o.Gatherer = reg
	s, err := Listen(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return s, "http://" + s.Addr()
}

func do(t *testing.T, method, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestReadiness(t *testing.T) {
	s, base := serve(t, Options{})
	if code, body := do(t, "GET", base+"/readyz", ""); code != 503 || !strings.Contains(body, "not started") {
		t.Errorf("before checks: %d %q", code, body)
	}
	busErr := errors.New("not connected")
	s.AddCheck("bus", func(context.Context) error { return busErr })
	s.AddCheck("collector", func(context.Context) error { return nil })
	if code, body := do(t, "GET", base+"/readyz", ""); code != 503 || !strings.Contains(body, "bus: not connected") || !strings.Contains(body, "collector: ok") {
		t.Errorf("failing check: %d %q", code, body)
	}
	s.AddCheck("bus", func(context.Context) error { return nil })
	if code, _ := do(t, "GET", base+"/readyz", ""); code != 200 {
		t.Errorf("ready: %d", code)
	}
	s.SetDraining()
	if code, body := do(t, "GET", base+"/readyz", ""); code != 503 || !strings.Contains(body, "shutting down") {
		t.Errorf("draining: %d %q", code, body)
	}
	if code, _ := do(t, "GET", base+"/healthz", ""); code != 200 {
		t.Errorf("healthz while draining: %d", code)
	}
	if code, _ := do(t, "POST", base+"/healthz", ""); code != http.StatusMethodNotAllowed {
		t.Errorf("POST healthz: %d", code)
	}
}

func TestMetricsToken(t *testing.T) {
	_, base := serve(t, Options{MetricsToken: "s3cret"})
	for _, tc := range []struct {
		token string
		want  int
	}{{"", 401}, {"wrong", 401}, {"s3cret", 200}} {
		code, body := do(t, "GET", base+"/metrics", tc.token)
		if code != tc.want {
			t.Errorf("token %q: %d, want %d", tc.token, code, tc.want)
		}
		if code == 200 && !strings.Contains(body, "faultline_test_total 0") {
			t.Errorf("metrics body lacks the series: %q", body)
		}
		if code != 200 && strings.Contains(body, "faultline_test_total") {
			t.Errorf("unauthorised request saw metrics")
		}
	}
	if code, _ := do(t, "GET", base+"/healthz", ""); code != 200 {
		t.Errorf("healthz must stay open for probes: %d", code)
	}
}

func TestListenInUseFails(t *testing.T) {
	s, _ := serve(t, Options{})
	if _, err := Listen(Options{Listen: s.Addr(), Gatherer: prometheus.NewRegistry()}); err == nil || !strings.Contains(err.Error(), "listen on") {
		t.Errorf("second listen on %s: %v", s.Addr(), err)
	}
}

func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "tok")
	os.WriteFile(p, []byte("abc\n"), 0o600)
	if s, err := ReadSecretFile(p); err != nil || s != "abc" {
		t.Errorf("got %q %v", s, err)
	}
	e := filepath.Join(dir, "empty")
	os.WriteFile(e, []byte("\n"), 0o600)
	if _, err := ReadSecretFile(e); err == nil {
		t.Error("empty secret accepted")
	}
	if s, err := ReadSecretFile(""); err != nil || s != "" {
		t.Errorf("no file: %q %v", s, err)
	}
}
