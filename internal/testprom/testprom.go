// Package testprom runs a real Prometheus server for tests: Debian's
// package (`apt-get install prometheus`, binary /usr/bin/prometheus) started
// on a random loopback port with its storage in a temporary directory and a
// generated configuration that scrapes the exporters a test runs.
//
// Nothing here is a mock. Without the binary, tests skip with a message, or
// fail when FAULTLINE_REQUIRE_PROMETHEUS=1 (scripts/test.sh sets it).
package testprom

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// EnvBin names the Prometheus binary explicitly; EnvRequire=1 turns a
// missing binary into a test failure.
const (
	EnvBin     = "FAULTLINE_PROMETHEUS_BIN"
	EnvRequire = "FAULTLINE_REQUIRE_PROMETHEUS"
)

// DefaultBin is where Debian's package installs the server.
const DefaultBin = "/usr/bin/prometheus"

// Bin finds the Prometheus binary: $FAULTLINE_PROMETHEUS_BIN, then
// /usr/bin/prometheus, then prometheus on $PATH.
func Bin() (string, error) {
	if p := os.Getenv(EnvBin); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvBin, p, err)
		}
		return p, nil
	}
	if _, err := os.Stat(DefaultBin); err == nil {
		return DefaultBin, nil
	}
	p, err := exec.LookPath("prometheus")
	if err != nil {
		return "", fmt.Errorf("no Prometheus binary at %s or on PATH (install it: apt-get install prometheus)", DefaultBin)
	}
	return p, nil
}

// Require returns the binary, or skips the test without it (fails it when
// FAULTLINE_REQUIRE_PROMETHEUS=1).
func Require(t testing.TB) string {
	t.Helper()
	bin, err := Bin()
	if err != nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("%v; %s=1 requires it", err, EnvRequire)
		}
		t.Skipf("skipping: %v (set %s=1 to make this a failure)", err, EnvRequire)
	}
	return bin
}

// Options configure a server.
type Options struct {
	// Targets are host:port addresses scraped at /metrics under Job.
	Targets []string
	// Job is the job label of Targets; default "exporter".
	Job string
	// ScrapeInterval is how often Targets are scraped; default 1s.
	ScrapeInterval time.Duration
	// StartTimeout bounds the wait for /-/ready; default 60s.
	StartTimeout time.Duration
}

// Server is a running Prometheus.
type Server struct {
	// URL is the server's base URL, http://127.0.0.1:<port>.
	URL string
	// Dir holds the configuration, the TSDB and the log.
	Dir string
	// LogPath is the server's own log (stdout and stderr).
	LogPath string

	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	waitErr error
}

// Start runs Prometheus for the test and stops it at cleanup.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	bin := Require(t)
	if o.Job == "" {
		o.Job = "exporter"
	}
	if o.ScrapeInterval <= 0 {
		o.ScrapeInterval = time.Second
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 60 * time.Second
	}
	var lastErr error
	// A port chosen free can be taken before Prometheus binds it: retry.
	for range 3 {
		s, err := start(bin, t.TempDir(), o)
		if err == nil {
			t.Cleanup(func() {
				if err := s.Stop(); err != nil {
					t.Errorf("stop prometheus: %v", err)
				}
			})
			return s
		}
		lastErr = err
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	t.Fatalf("start prometheus: %v", lastErr)
	return nil
}

var errAddrInUse = errors.New("address already in use")

func start(bin, dir string, o Options) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(config(o)), 0o600); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	logPath := filepath.Join(dir, "prometheus.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create log: %w", err)
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--storage.tsdb.retention.time=1h",
		"--web.listen-address="+listen,
		"--log.level=info",
	)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", bin, err)
	}
	s := &Server{URL: "http://" + listen, Dir: dir, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		// Owned by s: ends when the process exits; Stop waits for it.
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), o.StartTimeout)
	defer cancel()
	if err := s.waitReady(ctx); err != nil {
		_ = s.Stop()
		log := tail(logPath, 2000)
		if strings.Contains(log, "address already in use") {
			return nil, fmt.Errorf("%s: %w", listen, errAddrInUse)
		}
		return nil, fmt.Errorf("%w; log %s ends with:\n%s", err, logPath, log)
	}
	return s, nil
}

func config(o Options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\n",
		o.ScrapeInterval, o.ScrapeInterval, o.ScrapeInterval)
	b.WriteString("scrape_configs:\n")
	if len(o.Targets) > 0 {
		fmt.Fprintf(&b, "  - job_name: %q\n    static_configs:\n      - targets:\n", o.Job)
		for _, t := range o.Targets {
			fmt.Fprintf(&b, "          - %q\n", t)
		}
	}
	return b.String()
}

func (s *Server) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			return fmt.Errorf("prometheus exited before it was ready: %v", s.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("prometheus not ready at %s/-/ready: %w", s.URL, ctx.Err())
		case <-tick.C:
		}
		resp, err := client.Get(s.URL + "/-/ready")
		if err != nil {
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
	}
}

// Stop ends the server: SIGTERM, then SIGKILL after 10s. It is safe to
// call more than once.
func (s *Server) Stop() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	return fmt.Errorf("prometheus did not stop within 10s of SIGTERM; killed")
}

// Query runs an instant PromQL query and returns the result vector's
// values by their series' labels (formatted like {a="b", c="d"}).
func (s *Server) Query(ctx context.Context, query string) (map[string]float64, error) {
	u := s.URL + "/api/v1/query?query=" + url.QueryEscape(query)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", query, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", query, err)
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("query %q: decode: %w", query, err)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", query, r.Error)
	}
	out := map[string]float64{}
	for _, e := range r.Data.Result {
		str, _ := e.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, fmt.Errorf("query %q: value %v: %w", query, e.Value[1], err)
		}
		out[labelString(e.Metric)] = v
	}
	return out, nil
}

// WaitForSeries waits until query returns at least one series (Prometheus
// has scraped what it needs), failing the test after timeout.
func (s *Server) WaitForSeries(t testing.TB, query string, timeout time.Duration) map[string]float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var lastErr error
	for {
		got, err := s.Query(ctx, query)
		if err == nil && len(got) > 0 {
			return got
		}
		lastErr = err
		select {
		case <-ctx.Done():
			t.Fatalf("prometheus at %s: no series for %q within %s (last error: %v; log %s)", s.URL, query, timeout, lastErr, s.LogPath)
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func labelString(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%q", k, m[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// Exporter serves a registry's metrics at /metrics on a random loopback
// port, in the Prometheus text format or OpenMetrics as the client asks.
type Exporter struct {
	// Addr is host:port; URL is http://Addr/metrics.
	Addr, URL string
	srv       *http.Server
	done      chan struct{}
}

// StartExporter serves reg until the test ends.
func StartExporter(t testing.TB, reg *prometheus.Registry) *Exporter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("exporter: listen: %v", err)
	}
	return serveExporter(t, ln, reg)
}

// StartExporterAt serves reg on addr (to bring an exporter back on the port
// it had).
func StartExporterAt(t testing.TB, addr string, reg *prometheus.Registry) *Exporter {
	t.Helper()
	var ln net.Listener
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for {
		if ln, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("exporter: listen on %s: %v", addr, err)
	}
	return serveExporter(t, ln, reg)
}

func serveExporter(t testing.TB, ln net.Listener, reg *prometheus.Registry) *Exporter {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	e := &Exporter{
		Addr: ln.Addr().String(),
		URL:  "http://" + ln.Addr().String() + "/metrics",
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		done: make(chan struct{}),
	}
	go func() {
		// Owned by e: ends when Stop closes the server.
		defer close(e.done)
		_ = e.srv.Serve(ln)
	}()
	t.Cleanup(e.Stop)
	return e
}

// Stop closes the exporter and its connections, so scrapes fail at once.
// It is safe to call more than once.
func (e *Exporter) Stop() {
	_ = e.srv.Close()
	<-e.done
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
