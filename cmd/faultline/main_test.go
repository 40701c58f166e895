package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var binary string

// The CLI is tested as a user runs it: a built binary in a subprocess.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "faultline-cli")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "faultline")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build faultline: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"run", "--help"}, {"config", "check", "--help"}, {"version"}} {
		out, err := exec.Command(binary, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		if len(out) < 50 {
			t.Errorf("%v: output too short to help: %q", args, out)
		}
	}
	out, _ := exec.Command(binary, "version").Output()
	for _, want := range []string{"faultline ", "commit: ", "go: go1."} {
		if !strings.Contains(string(out), want) {
			t.Errorf("version output %q lacks %q", out, want)
		}
	}
	out, _ = exec.Command(binary, "run", "--help").Output()
	for _, want := range []string{"--data-dir", "--log-level", "--bus.urls", "FAULTLINE_BUS_URLS", "--config"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("run --help lacks %q", want)
		}
	}
}

// Bad configuration fails fast with a clear error and a non-zero exit.
func TestBadConfigurationExitsNonZero(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown field", []string{"--config", write("u.yaml", "bus:\n  max_infligt: 3\n")}, "field max_infligt not found"},
		{"negative max age", []string{"--bus.streams.audit.max-age=-5m"}, "bus.streams.audit.max_age: must not be negative"},
		{"unreachable bus", []string{"--bus.urls", "nats://" + closed, "--bus.connect-timeout", "1s"}, "bus: connect to nats://" + closed},
		{"missing config file", []string{"--config", filepath.Join(dir, "nope.yaml")}, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			args := append([]string{"run", "--http-listen", "127.0.0.1:0", "--data-dir", t.TempDir()}, tc.args...)
			start := time.Now()
			out, err := exec.CommandContext(ctx, binary, args...).CombinedOutput()
			if err == nil {
				t.Fatalf("exit 0, want failure; output:\n%s", out)
			}
			if ctx.Err() != nil {
				t.Fatalf("did not exit within 15s")
			}
			if d := time.Since(start); d > 8*time.Second {
				t.Errorf("took %s to fail", d)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("output lacks %q:\n%s", tc.want, out)
			}
		})
	}
}

// The main job: run starts, /readyz answers 200, /metrics shows faultline_
// metrics, SIGTERM exits 0; a second start on the same data dir works.
func TestRunServesAndStopsCleanly(t *testing.T) {
	data := t.TempDir()
	for round := range 2 {
		p, addr := startProcess(t, 20*time.Second, "ops: endpoint listening", "addr",
			"run", "--http-listen", "127.0.0.1:0", "--data-dir", data, "--log-format", "json")
		base := "http://" + addr
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, _ := get(t, base+"/readyz")
			if code == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: /readyz never 200 (last %d)", round, code)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if code, body := get(t, base+"/healthz"); code != 200 {
			t.Errorf("/healthz = %d %s", code, body)
		}
		code, body := get(t, base+"/metrics")
		if code != 200 || !strings.Contains(body, "faultline_bus_connected 1") || !strings.Contains(body, "faultline_bus_published_total") {
			t.Errorf("/metrics = %d, lacks faultline_ series:\n%.500s", code, body)
		}
		p.stop(t, 20*time.Second)
	}
}

// process is a faultline subprocess logging JSON lines on stderr.
type process struct {
	cmd  *exec.Cmd
	logs chan string
}

// startProcess runs the binary with args and waits up to wait for the first
// log line whose msg is msg; it returns the process and that line's field.
// The process is killed at cleanup if still running.
func startProcess(t *testing.T, wait time.Duration, msg, field string, args ...string) (*process, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	valc := make(chan string, 1)
	logs := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case logs <- sc.Text():
			default:
			}
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == msg {
				if v, ok := rec[field].(string); ok {
					select {
					case valc <- v:
					default:
					}
				}
			}
		}
		close(logs)
	}()
	select {
	case v := <-valc:
		return &process{cmd: cmd, logs: logs}, v
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		t.Fatalf("no %q log line within %s", msg, wait)
		return nil, ""
	}
}

// stop sends SIGTERM and fails the test unless the process exits 0 within
// wait, printing its logs when it does not.
func (p *process) stop(t *testing.T, wait time.Duration) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			var all []string
			for l := range p.logs {
				all = append(all, l)
			}
			t.Fatalf("exit after SIGTERM: %v\n%s", err, strings.Join(all, "\n"))
		}
	case <-time.After(wait):
		_ = p.cmd.Process.Kill()
		t.Fatalf("did not exit within %s of SIGTERM", wait)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
