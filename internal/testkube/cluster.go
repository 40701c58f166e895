package testkube

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Users of every cluster.
const (
	// AdminUser is in system:masters: it may do anything.
	AdminUser = "faultline-admin"
	// LowPrivUser has no RBAC bindings: it may only do what every
	// authenticated user may (discovery, self reviews).
	LowPrivUser = "faultline-user"
)

// Options configure a cluster. The zero value runs etcd and kube-apiserver
// in a temporary directory with the default audit policy.
type Options struct {
	// BinDir holds the binaries; empty uses FindBinDir.
	BinDir string
	// Dir holds the cluster's state, logs, certificates and kubeconfigs. It
	// is created when missing and kept by Stop. Empty uses a new temporary
	// directory that Stop removes (it is kept when Start fails, for its logs).
	Dir string
	// Name is the cluster's name in kubeconfig files; default "testkube".
	Name string
	// Controllers runs kube-controller-manager and kube-scheduler too: they
	// create the "default" ServiceAccount of each namespace (without which
	// the API server refuses pods), run Deployments and ReplicaSets, schedule
	// pods, and emit Events. Start waits for default/default to exist.
	Controllers bool
	// AuditPolicy is an audit policy as YAML, or the path of a file holding
	// one; empty uses DefaultAuditPolicy.
	AuditPolicy string
	// AuditLogPath is where the API server writes its audit log as JSON
	// lines; empty uses <Dir>/audit.log.
	AuditLogPath string
	// AuditWebhook, when set, also sends audit events to a webhook.
	AuditWebhook *AuditWebhook
	// DurableEtcd makes etcd fsync its writes. Off, a cluster is faster and
	// loses its state only if the machine crashes.
	DurableEtcd bool
	// APIServerArgs are appended to kube-apiserver's flags.
	APIServerArgs []string
	// StartTimeout bounds Start when ctx has no earlier deadline; default 2m.
	StartTimeout time.Duration
	// StopGrace is how long each binary has to exit after SIGTERM before it
	// is killed; default 15s.
	StopGrace time.Duration
	// Logger gets the harness's own progress; default slog.Default().
	Logger *slog.Logger
}

// Cluster is a running control plane. Its fields are read-only.
type Cluster struct {
	// Name is the cluster's name in kubeconfig files.
	Name string
	// Dir holds the cluster's state, logs, certificates and kubeconfigs.
	Dir string
	// Host is the API server's URL, https://127.0.0.1:<port>.
	Host string
	// CAPEM is the CA certificate that signed the API server's (and the
	// controllers') serving certificates; CAFile is its path.
	CAPEM  []byte
	CAFile string
	// Admin is in system:masters; User is a low-privilege user with no RBAC
	// bindings.
	Admin, User Identity
	// AuditLogPath is the API server's audit log (JSON lines).
	AuditLogPath string
	// EtcdURL is etcd's client URL.
	EtcdURL string
	// Controllers tells whether kube-controller-manager and kube-scheduler
	// run.
	Controllers bool

	logger    *slog.Logger
	procs     []*process // in start order
	grace     time.Duration
	removeDir bool
	stopOnce  sync.Once
	stopErr   error
}

// Start runs a control plane and returns once it is ready: etcd healthy,
// kube-apiserver's /readyz ok and, with Options.Controllers, the controllers'
// /healthz ok and the default ServiceAccount present. ctx bounds only the
// start-up; the processes run until Stop. On failure nothing is left
// running, and the error (a *StartError when a binary failed) names the
// binary and its log file.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	began := time.Now()
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	binDir := opts.BinDir
	if binDir == "" {
		var err error
		if binDir, err = FindBinDir(); err != nil {
			return nil, fmt.Errorf("start cluster: %w", err)
		}
	} else if err := checkBinDir(binDir); err != nil {
		return nil, fmt.Errorf("start cluster: %s: %w", binDir, err)
	}
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	c := &Cluster{
		Name:        opts.Name,
		Dir:         opts.Dir,
		Controllers: opts.Controllers,
		logger:      logger,
		grace:       opts.StopGrace,
	}
	if c.Name == "" {
		c.Name = "testkube"
	}
	if c.grace <= 0 {
		c.grace = 15 * time.Second
	}
	if c.Dir == "" {
		d, err := os.MkdirTemp("", "testkube-")
		if err != nil {
			return nil, fmt.Errorf("start cluster: %w", err)
		}
		c.Dir, c.removeDir = d, true
	} else if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	abs, err := filepath.Abs(c.Dir)
	if err != nil {
		return nil, fmt.Errorf("start cluster: %w", err)
	}
	c.Dir = abs

	if err := c.start(ctx, binDir, opts); err != nil {
		c.stopProcesses()
		if c.removeDir {
			logger.Warn("testkube: start failed; keeping the cluster directory for its logs", "dir", c.Dir)
		}
		return nil, fmt.Errorf("start cluster in %s: %w", c.Dir, err)
	}
	logger.Info("testkube: cluster ready", "host", c.Host, "dir", c.Dir,
		"controllers", c.Controllers, "took", time.Since(began).Round(time.Millisecond))
	return c, nil
}

func (c *Cluster) start(ctx context.Context, binDir string, opts Options) error {
	logDir := filepath.Join(c.Dir, "logs")
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return err
	}
	ports, err := freePorts(5)
	if err != nil {
		return err
	}
	etcdClient, etcdPeer, apiPort, cmPort, schedPort := ports[0], ports[1], ports[2], ports[3], ports[4]

	pki, err := newPKI(filepath.Join(c.Dir, "pki"))
	if err != nil {
		return err
	}
	c.CAPEM, c.CAFile = pki.caPEM, pki.caCert
	c.Host = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	c.EtcdURL = "http://127.0.0.1:" + strconv.Itoa(etcdClient)

	// Identities: the two users of the tests, and one each for the
	// controllers, named as the bootstrap RBAC policy expects.
	c.Admin = Identity{Name: AdminUser, Groups: []string{"system:masters"}, Token: randomToken()}
	c.User = Identity{Name: LowPrivUser, Token: randomToken()}
	cm := Identity{Name: "system:kube-controller-manager", Token: randomToken()}
	sched := Identity{Name: "system:kube-scheduler", Token: randomToken()}
	var tokens strings.Builder
	for _, id := range []*Identity{&c.Admin, &c.User, &cm, &sched} {
		id.host, id.caPEM = c.Host, c.CAPEM
		id.Kubeconfig = filepath.Join(c.Dir, strings.TrimPrefix(id.Name, "system:")+".kubeconfig")
		if err := writeKubeconfig(id.Kubeconfig, c.Host, c.CAPEM, id.Name, id.Token, c.Name); err != nil {
			return err
		}
		// token,user,uid[,"group1,group2"]
		fmt.Fprintf(&tokens, "%s,%s,%s", id.Token, id.Name, id.Name)
		if len(id.Groups) > 0 {
			fmt.Fprintf(&tokens, ",%q", strings.Join(id.Groups, ","))
		}
		tokens.WriteByte('\n')
	}
	tokenFile := filepath.Join(c.Dir, "tokens.csv")
	if err := os.WriteFile(tokenFile, []byte(tokens.String()), 0o600); err != nil {
		return err
	}

	policy, err := auditPolicyFile(c.Dir, opts.AuditPolicy)
	if err != nil {
		return err
	}
	c.AuditLogPath = opts.AuditLogPath
	if c.AuditLogPath == "" {
		c.AuditLogPath = filepath.Join(c.Dir, "audit.log")
	}
	if c.AuditLogPath, err = filepath.Abs(c.AuditLogPath); err != nil {
		return err
	}

	// etcd
	etcdArgs := []string{
		"--name=" + c.Name,
		"--data-dir=" + filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls=" + c.EtcdURL,
		"--listen-peer-urls=http://127.0.0.1:" + strconv.Itoa(etcdPeer),
	}
	if !opts.DurableEtcd {
		etcdArgs = append(etcdArgs, "--unsafe-no-fsync")
	}
	etcd, err := c.run(binDir, Etcd, etcdArgs)
	if err != nil {
		return err
	}
	plain := &http.Client{Timeout: 2 * time.Second}
	if err := waitReady(ctx, etcd, func(ctx context.Context) error {
		return httpCheck(ctx, plain, c.EtcdURL+"/health", "", `"health":"true"`)
	}); err != nil {
		return err
	}

	// kube-apiserver
	apiArgs := []string{
		"--etcd-servers=" + c.EtcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort),
		"--cert-dir=" + filepath.Join(c.Dir, "pki"),
		"--tls-cert-file=" + pki.servingCert,
		"--tls-private-key-file=" + pki.servingKey,
		"--token-auth-file=" + tokenFile,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + pki.saVerifyingKey,
		"--service-account-signing-key-file=" + pki.saSigningKey,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--allow-privileged=true",
		"--endpoint-reconciler-type=none",
		"--profiling=false",
		"--audit-policy-file=" + policy,
		"--audit-log-path=" + c.AuditLogPath,
		"--audit-log-format=json",
	}
	if w := opts.AuditWebhook; w != nil {
		if w.URL == "" {
			return errors.New("audit webhook: URL is empty")
		}
		cfg := filepath.Join(c.Dir, "audit-webhook.kubeconfig")
		if err := writeWebhookKubeconfig(cfg, w); err != nil {
			return err
		}
		maxWait, backoff := w.BatchMaxWait, w.InitialBackoff
		if maxWait <= 0 {
			maxWait = 200 * time.Millisecond
		}
		if backoff <= 0 {
			backoff = 500 * time.Millisecond
		}
		apiArgs = append(apiArgs,
			"--audit-webhook-config-file="+cfg,
			"--audit-webhook-mode=batch",
			"--audit-webhook-batch-max-wait="+maxWait.String(),
			"--audit-webhook-initial-backoff="+backoff.String(),
		)
	}
	apiArgs = append(apiArgs, opts.APIServerArgs...)
	api, err := c.run(binDir, APIServer, apiArgs)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CAPEM)
	secure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
	defer secure.CloseIdleConnections()
	if err := waitReady(ctx, api, func(ctx context.Context) error {
		return httpCheck(ctx, secure, c.Host+"/readyz", c.Admin.Token, "ok")
	}); err != nil {
		return err
	}
	if !c.Controllers {
		return nil
	}

	// kube-controller-manager and kube-scheduler
	serving := []string{
		"--bind-address=127.0.0.1",
		"--tls-cert-file=" + pki.servingCert,
		"--tls-private-key-file=" + pki.servingKey,
		"--leader-elect=false",
	}
	cmProc, err := c.run(binDir, ControllerManager, append([]string{
		"--kubeconfig=" + cm.Kubeconfig,
		"--secure-port=" + strconv.Itoa(cmPort),
		"--cluster-name=" + c.Name,
		"--service-account-private-key-file=" + pki.saSigningKey,
		"--root-ca-file=" + pki.caCert,
		"--use-service-account-credentials=true",
	}, serving...))
	if err != nil {
		return err
	}
	schedProc, err := c.run(binDir, Scheduler, append([]string{
		"--kubeconfig=" + sched.Kubeconfig,
		"--secure-port=" + strconv.Itoa(schedPort),
	}, serving...))
	if err != nil {
		return err
	}
	for _, w := range []struct {
		p    *process
		port int
	}{{cmProc, cmPort}, {schedProc, schedPort}} {
		url := "https://127.0.0.1:" + strconv.Itoa(w.port) + "/healthz"
		if err := waitReady(ctx, w.p, func(ctx context.Context) error {
			return httpCheck(ctx, secure, url, "", "ok")
		}); err != nil {
			return err
		}
	}
	client, err := kubernetes.NewForConfig(c.Admin.RESTConfig())
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	// The service-account controller's first act proves the controllers
	// reach the API server with working service-account credentials.
	return waitReady(ctx, cmProc, func(ctx context.Context) error {
		_, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err
	})
}

// run starts one binary of the cluster with its log in <Dir>/logs.
func (c *Cluster) run(binDir, name string, args []string) (*process, error) {
	p, err := startProcess(name, filepath.Join(binDir, name), args, c.LogPath(name))
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, p)
	c.logger.Debug("testkube: started", "binary", name, "pid", p.cmd.Process.Pid, "log", p.logPath)
	return p, nil
}

// LogPath returns the log file of one of the binaries (Etcd, APIServer,
// ControllerManager, Scheduler).
func (c *Cluster) LogPath(binary string) string {
	return filepath.Join(c.Dir, "logs", binary+".log")
}

// Stop ends the control plane — scheduler and controller-manager first, then
// the API server, then etcd — and removes Dir if Start created it. It waits
// until every process has exited; a process that ignores SIGTERM for
// Options.StopGrace is killed. Stop may be called more than once.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		began := time.Now()
		err := c.stopProcesses()
		if c.removeDir {
			if rmErr := os.RemoveAll(c.Dir); rmErr != nil {
				err = errors.Join(err, fmt.Errorf("stop cluster: %w", rmErr))
			}
		}
		c.stopErr = err
		c.logger.Info("testkube: cluster stopped", "dir", c.Dir, "took", time.Since(began).Round(time.Millisecond), "err", err)
	})
	return c.stopErr
}

func (c *Cluster) stopProcesses() error {
	var errs []error
	for i := len(c.procs) - 1; i >= 0; i-- {
		errs = append(errs, c.procs[i].stop(c.grace))
	}
	c.procs = nil
	return errors.Join(errs...)
}

// WaitForServiceAccount waits until the ServiceAccount namespace/name exists.
// The controller-manager creates "default" in every new namespace shortly
// after it appears, and the API server refuses pods until it has.
func (c *Cluster) WaitForServiceAccount(ctx context.Context, namespace, name string) error {
	client, err := kubernetes.NewForConfig(c.Admin.RESTConfig())
	if err != nil {
		return fmt.Errorf("wait for service account %s/%s: %w", namespace, name, err)
	}
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	for {
		_, err := client.CoreV1().ServiceAccounts(namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			return nil
		}
		if !apierrors.IsNotFound(err) && ctx.Err() == nil {
			return fmt.Errorf("wait for service account %s/%s: %w", namespace, name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for service account %s/%s: %w", namespace, name, ctx.Err())
		case <-ticker.C:
		}
	}
}

// waitReady polls check until it succeeds, the process exits, or ctx ends.
func waitReady(ctx context.Context, p *process, check func(context.Context) error) error {
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return p.startError(p.exitError())
		case <-ctx.Done():
			return p.startError(fmt.Errorf("not ready: %w; last check: %v", ctx.Err(), err))
		case <-ticker.C:
		}
	}
}

// httpCheck GETs url and wants a 200 whose body contains want.
func httpCheck(ctx context.Context, client *http.Client, url, token, want string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
		return fmt.Errorf("GET %s: %s: %.500s", url, resp.Status, body)
	}
	return nil
}

// freePorts returns n distinct free TCP ports on 127.0.0.1. They are free
// when returned; another process could still take one before it is used.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // never fails; see crypto/rand.Read
	return hex.EncodeToString(b)
}
