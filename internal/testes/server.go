package testes

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options configure a server. The zero value is a single node with
// security off (plain HTTP, no authentication) and a 512 MB heap.
type Options struct {
	// Security turns on xpack.security: every request needs credentials.
	// The superuser elastic gets Password as its bootstrap password, set in
	// the keystore with the bundled elasticsearch-keystore tool. HTTP stays
	// plain (no TLS).
	Security bool
	// Password is elastic's password with Security; default a random one
	// (Server.Password says which).
	Password string
	// Users are more users of the file realm, made with the bundled
	// elasticsearch-users tool (Security only). The native realm and API
	// keys do not work in this distribution.
	Users []User
	// Roles is YAML appended to the file realm's roles.yml, for Users.
	Roles string
	// Settings are more elasticsearch.yml settings ("indices.query.bool.max_clause_count": "2048").
	Settings map[string]string
	// Heap is the JVM heap (-Xms and -Xmx); default "512m".
	Heap string
	// Home is the Elasticsearch home; default FindHome().
	Home string
	// JavaHome is the JDK; default $FAULTLINE_ES_JAVA_HOME, $ES_JAVA_HOME,
	// $JAVA_HOME, java on PATH, then /usr/lib/jvm/*, the first of Java 17 or
	// newer (21 for Elasticsearch 9).
	JavaHome string
	// Dir holds the configuration, data and logs; default a new temporary
	// directory, removed by Stop. A given Dir is kept.
	Dir string
	// StartTimeout bounds each start until the cluster is yellow; default 3 min.
	StartTimeout time.Duration
	// StopGrace is how long Stop waits after SIGTERM before SIGKILL; default 20 s.
	StopGrace time.Duration
}

// User is a file-realm user: roles are built-in ones (superuser, viewer,
// editor, …) or ones defined in Options.Roles.
type User struct {
	Name, Password string
	Roles          []string
}

// Superuser is the built-in user Options.Security enables.
const Superuser = "elastic"

// Server is a running single-node Elasticsearch.
type Server struct {
	// URL is the HTTP base URL, http://127.0.0.1:<port>.
	URL string
	// HTTPAddr and TransportAddr are the loopback host:port it listens on.
	HTTPAddr, TransportAddr string
	// Username and Password are the superuser's credentials with
	// Options.Security, else empty.
	Username, Password string
	// Version is the node's version as it reports it (8.19.21).
	Version string
	// Home is the distribution the server runs from (a linked copy in Dir
	// when its user cannot reach the original); JavaHome the JDK.
	Home, JavaHome string
	// RunAs is the system user the server runs as; empty for this
	// process's own.
	RunAs string
	// Dir holds config/, data/, logs/ and tmp/.
	Dir string
	// LogPath is the launcher's and server's stdout and stderr (the
	// server's own logs are in Dir/logs too).
	LogPath string
	// StartTime is how long the last start took until the cluster was yellow.
	StartTime time.Duration

	opts   Options
	user   *runAs
	env    []string
	ownDir bool

	mu   sync.Mutex
	proc *process // nil when halted
}

// StartError reports a server that did not start or become ready; its
// message quotes the end of the server's log.
type StartError struct {
	LogPath string
	LogTail string
	Err     error
}

func (e *StartError) Error() string {
	return fmt.Sprintf("start elasticsearch: %v (log: %s); last lines of the log:\n%s", e.Err, e.LogPath, e.LogTail)
}

func (e *StartError) Unwrap() error { return e.Err }

const tailLines = 40

// Launch starts a server and waits until the cluster is yellow. ctx bounds
// the start only. Call Stop when done. Errors wrap [ErrUnavailable] when
// the distribution or a JDK is missing.
func Launch(ctx context.Context, o Options) (*Server, error) {
	if o.Heap == "" {
		o.Heap = "512m"
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 3 * time.Minute
	}
	if o.StopGrace <= 0 {
		o.StopGrace = 20 * time.Second
	}
	if o.Security && o.Password == "" {
		o.Password = randomPassword()
	}
	if !o.Security && (len(o.Users) > 0 || o.Roles != "") {
		return nil, errors.New("start elasticsearch: Users and Roles need Security")
	}
	home := o.Home
	if home == "" {
		h, err := FindHome()
		if err != nil {
			return nil, err
		}
		home = h
	}
	esVersion, err := homeVersion(home)
	if err != nil {
		return nil, err
	}
	u, err := serverUser()
	if err != nil {
		return nil, err
	}
	java, err := findJava(o.JavaHome, minJava(esVersion), func(dir string) error {
		return reachable(filepath.Join(dir, "bin", "java"), u, 0o5)
	})
	if err != nil {
		return nil, err
	}

	s := &Server{opts: o, user: u, JavaHome: java, Dir: o.Dir}
	if u != nil {
		s.RunAs = u.name
	}
	if s.Dir == "" {
		if s.Dir, err = os.MkdirTemp("", "faultline-es-"); err != nil {
			return nil, fmt.Errorf("start elasticsearch: %w", err)
		}
		s.ownDir = true
	}
	if err := s.prepare(home); err != nil {
		s.removeDir()
		return nil, fmt.Errorf("start elasticsearch: %w", err)
	}

	var lastErr error
	// A port found free can be taken before the server binds it: retry
	// with others.
	for range 3 {
		if err := s.pickPorts(); err != nil {
			lastErr = err
			break
		}
		if lastErr = s.start(ctx); lastErr == nil {
			return s, nil
		}
		if !errors.Is(lastErr, errAddrInUse) {
			break
		}
	}
	s.removeDir()
	return nil, lastErr
}

var errAddrInUse = errors.New("address already in use")

// prepare lays out Dir: the distribution (linked when the server's user
// cannot reach it), config/ (a copy of the distribution's, owned by that
// user), data/, logs/, tmp/ and, with security, the keystore and users.
func (s *Server) prepare(home string) error {
	u := s.user
	if u != nil {
		// The server's user must be able to enter Dir.
		if err := os.Chmod(s.Dir, 0o755); err != nil {
			return err
		}
		if err := reachable(s.Dir, u, 0o1); err != nil {
			return fmt.Errorf("directory for the server: %w (set TMPDIR or Options.Dir elsewhere)", err)
		}
	}
	s.Home = home
	if err := reachable(filepath.Join(home, "bin", "elasticsearch"), u, 0o5); err != nil {
		// Typically the cache under /root (mode 0700) with the server run
		// as faultline-es: hard links in Dir cost nothing and need no copy.
		s.Home = filepath.Join(s.Dir, "home")
		if err := linkTree(home, s.Home, func(rel string) bool { return rel == "config" || rel == "logs" }); err != nil {
			return fmt.Errorf("link %s into %s for user %s: %w", home, s.Home, u.name, err)
		}
	}
	cfg := filepath.Join(s.Dir, "config")
	if err := copyTree(filepath.Join(home, "config"), cfg); err != nil {
		return fmt.Errorf("copy the distribution's config: %w", err)
	}
	if s.opts.Roles != "" {
		if err := appendFile(filepath.Join(cfg, "roles.yml"), "\n"+s.opts.Roles+"\n"); err != nil {
			return err
		}
	}
	for _, d := range []string{"data", "logs", "tmp"} {
		if err := os.MkdirAll(filepath.Join(s.Dir, d), 0o755); err != nil {
			return err
		}
	}
	for _, d := range []string{"config", "data", "logs", "tmp"} {
		if err := chownTree(filepath.Join(s.Dir, d), u); err != nil {
			return fmt.Errorf("give %s to %s: %w", d, u.name, err)
		}
	}
	s.LogPath = filepath.Join(s.Dir, "logs", "console.log")
	s.env = s.childEnv()
	if s.opts.Security {
		s.Username, s.Password = Superuser, s.opts.Password
		// -f creates the keystore without asking; -x reads the value from stdin.
		if err := s.tool("elasticsearch-keystore", s.Password, "add", "-f", "-x", "bootstrap.password"); err != nil {
			return err
		}
		for _, usr := range s.opts.Users {
			args := []string{"useradd", usr.Name, "-p", usr.Password}
			if len(usr.Roles) > 0 {
				args = append(args, "-r", strings.Join(usr.Roles, ","))
			}
			if err := s.tool("elasticsearch-users", "", args...); err != nil {
				return err
			}
		}
	}
	return nil
}

// tool runs one of the distribution's command-line tools as the server's
// user, with the server's configuration directory.
func (s *Server) tool(name, stdin string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.Home, "bin", name), args...)
	cmd.Dir = filepath.Join(s.Dir, "tmp")
	cmd.Env = s.env
	cmd.Stdin = strings.NewReader(stdin)
	cmd.SysProcAttr = sysProcAttr(s.user)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, args[0], err, strings.TrimSpace(string(out)))
	}
	return nil
}

// childEnv is this process's environment without what would change how
// the server's scripts or JVM behave, plus what they need. JAVA_HOME is
// dropped: the scripts ignore it in favour of ES_JAVA_HOME and print a
// warning when it is set.
func (s *Server) childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "ES_"), k == "JAVA_HOME", k == "JAVA_TOOL_OPTIONS",
			k == "_JAVA_OPTIONS", k == "JAVA_OPTS", k == "CLI_JAVA_OPTS", k == "HOME":
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"ES_JAVA_HOME="+s.JavaHome,
		"ES_PATH_CONF="+filepath.Join(s.Dir, "config"),
		"ES_TMPDIR="+filepath.Join(s.Dir, "tmp"),
		"ES_JAVA_OPTS=-Xms"+s.opts.Heap+" -Xmx"+s.opts.Heap,
		"HOME="+filepath.Join(s.Dir, "tmp"),
	)
}

func (s *Server) pickPorts() error {
	hp, err := freePort()
	if err != nil {
		return err
	}
	tp, err := freePort()
	if err != nil {
		return err
	}
	s.HTTPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(hp))
	s.TransportAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(tp))
	s.URL = "http://" + s.HTTPAddr
	return os.WriteFile(filepath.Join(s.Dir, "config", "elasticsearch.yml"), []byte(s.config(hp, tp)), 0o660)
}

func (s *Server) config(httpPort, transportPort int) string {
	set := map[string]string{
		"cluster.name":           "faultline-test",
		"node.name":              "faultline-es",
		"discovery.type":         "single-node",
		"network.host":           "127.0.0.1",
		"http.port":              strconv.Itoa(httpPort),
		"transport.port":         strconv.Itoa(transportPort),
		"path.data":              filepath.Join(s.Dir, "data"),
		"path.logs":              filepath.Join(s.Dir, "logs"),
		"xpack.security.enabled": strconv.FormatBool(s.opts.Security),
		// A nearly full disk must not make the test cluster refuse shards.
		"cluster.routing.allocation.disk.threshold_enabled": "false",
	}
	if s.opts.Security {
		set["xpack.security.http.ssl.enabled"] = "false"
		set["xpack.security.transport.ssl.enabled"] = "false"
	}
	maps.Copy(set, s.opts.Settings)
	var b strings.Builder
	b.WriteString("# Written by internal/testes.\n")
	for _, k := range slices.Sorted(maps.Keys(set)) {
		v, _ := json.Marshal(set[k])
		fmt.Fprintf(&b, "%s: %s\n", k, v)
	}
	return b.String()
}

// start runs the server and waits until the cluster is yellow.
func (s *Server) start(ctx context.Context) error {
	began := time.Now()
	logf, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start elasticsearch: %w", err)
	}
	defer logf.Close() // the child has its own descriptor
	fmt.Fprintf(logf, "=== internal/testes: starting %s at %s as %s\n", s.Home, time.Now().Format(time.RFC3339), orSelf(s.RunAs))
	st, _ := logf.Stat()
	var logStart int64
	if st != nil {
		logStart = st.Size()
	}
	cmd := exec.Command(filepath.Join(s.Home, "bin", "elasticsearch"))
	cmd.Dir = filepath.Join(s.Dir, "logs") // gc.log and hs_err files land in the working directory
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr(s.user)
	if err := cmd.Start(); err != nil {
		return &StartError{LogPath: s.LogPath, LogTail: tailFile(s.LogPath, 0, tailLines), Err: err}
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		// Owned by p: ends when the process exits; stop waits for it.
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, s.opts.StartTimeout)
	defer cancel()
	if err := s.waitReady(ctx, p); err != nil {
		_ = s.halt()
		log := tailFile(s.LogPath, logStart, tailLines)
		if strings.Contains(log, "BindHttpException") || strings.Contains(log, "BindTransportException") ||
			strings.Contains(log, "Address already in use") {
			err = fmt.Errorf("%w: %v", errAddrInUse, err)
		}
		return &StartError{LogPath: s.LogPath, LogTail: log, Err: err}
	}
	s.StartTime = time.Since(began)
	return nil
}

func orSelf(name string) string {
	if name == "" {
		return "this process's user"
	}
	return name
}

// waitReady polls /_cluster/health?wait_for_status=yellow until it answers
// 200, the process exits or ctx ends; then reads the node's version.
func (s *Server) waitReady(ctx context.Context, p *process) error {
	c := s.newClient()
	c.HTTP.Timeout = 5 * time.Second
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		select {
		case <-p.done:
			return fmt.Errorf("elasticsearch exited before it was ready: %v", p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("not yellow at %s within %s (last answer: %s): %w", s.URL, s.opts.StartTimeout, last, ctx.Err())
		case <-tick.C:
		}
		r, err := c.Request(ctx, http.MethodGet, "/_cluster/health?wait_for_status=yellow&timeout=2s", nil)
		if err != nil {
			last = err.Error()
			continue
		}
		if r.StatusCode != http.StatusOK {
			last = r.String()
			continue
		}
		r, err = c.Request(ctx, http.MethodGet, "/_nodes/_local", nil)
		if err != nil {
			return fmt.Errorf("read the node's version: %w", err)
		}
		var info struct {
			Nodes map[string]struct {
				Version string `json:"version"`
			} `json:"nodes"`
		}
		if err := r.JSON(&info); err != nil {
			return fmt.Errorf("read the node's version: %w", err)
		}
		for _, n := range info.Nodes {
			s.Version = n.Version
		}
		return nil
	}
}

// Halt stops the server process (SIGTERM to its process group, SIGKILL
// after Options.StopGrace) and keeps its data, configuration and ports, so
// Restart brings the same node back. Halting a halted server does nothing.
func (s *Server) Halt() error { return s.halt() }

func (s *Server) halt() error {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.stop(s.opts.StopGrace)
}

// Restart starts a halted server again (halting it first if it runs) with
// the same data, configuration and ports, and waits until it is yellow.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.halt(); err != nil {
		return err
	}
	return s.start(ctx)
}

// Running reports whether the server process is up (not halted and not
// exited).
func (s *Server) Running() bool {
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	return p != nil && !p.exited()
}

// Stop halts the server and removes Dir unless it was given in Options.
// It is safe to call more than once.
func (s *Server) Stop() error {
	err := s.halt()
	s.removeDir()
	return err
}

func (s *Server) removeDir() {
	if s.ownDir {
		_ = os.RemoveAll(s.Dir)
	}
}

// process is the running launcher; its goroutine closes done when it exits.
type process struct {
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error // valid once done is closed
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop ends the process group: SIGTERM, then SIGKILL after grace. It
// returns once the launcher has been reaped, with an error when it had
// ended by itself before or had to be killed.
func (p *process) stop(grace time.Duration) error {
	var err error
	if p.exited() {
		err = fmt.Errorf("stop elasticsearch: it had exited before: %v", p.waitErr)
	} else {
		signalGroup(p.cmd.Process.Pid, syscall.SIGTERM)
		timer := time.NewTimer(grace)
		select {
		case <-p.done:
			timer.Stop()
		case <-timer.C:
			err = fmt.Errorf("stop elasticsearch: still running %s after SIGTERM, killed", grace)
		}
	}
	// Also ends the server JVM should it outlive its launcher.
	signalGroup(p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	return err
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func randomPassword() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "faultline-" + hex.EncodeToString(b)
}

// copyTree copies the regular files and directories under src to dst.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o750)
		case d.Type().IsRegular():
			return copyFile(p, target)
		default:
			return nil
		}
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o660)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// tailFile returns the last n lines of the file at path from offset on.
func tailFile(path string, offset int64, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	defer f.Close()
	const maxRead = 64 << 10
	st, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	offset = max(offset, st.Size()-maxRead, 0)
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	data = bytes.TrimRight(data, "\n")
	if len(data) == 0 {
		return "(log is empty)"
	}
	lines := strings.Split(string(data), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
