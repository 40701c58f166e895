package testkube_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/faultline/faultline/internal/testkube"
)

// TestStandaloneAPIServer starts a cluster of its own without the
// controllers and checks the identities, the kubeconfig files,
// service-account tokens, the version and a clean stop.
func TestStandaloneAPIServer(t *testing.T) {
	c := testkube.StartT(t, testkube.Options{})
	ctx := testContext(t, 60*time.Second)

	whoami := func(cfg *rest.Config) authenticationv1.UserInfo {
		t.Helper()
		client, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		r, err := client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("self subject review: %v", err)
		}
		return r.Status.UserInfo
	}
	fromKubeconfig := func(path string) *rest.Config {
		t.Helper()
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			t.Fatalf("load kubeconfig: %v", err)
		}
		return cfg
	}

	adminCfg := fromKubeconfig(c.Admin.Kubeconfig)
	if u := whoami(adminCfg); u.Username != testkube.AdminUser || !slices.Contains(u.Groups, "system:masters") {
		t.Errorf("admin kubeconfig authenticates as %s %v, want %s in system:masters", u.Username, u.Groups, testkube.AdminUser)
	}
	if u := whoami(fromKubeconfig(c.User.Kubeconfig)); u.Username != testkube.LowPrivUser || slices.Contains(u.Groups, "system:masters") {
		t.Errorf("user kubeconfig authenticates as %s %v, want %s without system:masters", u.Username, u.Groups, testkube.LowPrivUser)
	}

	admin, user := clients(t, c)
	v, err := admin.Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("server version: %v", err)
	}
	if v.GitVersion != "v1.33.13" {
		t.Errorf("server version %s, want v1.33.13 (version ldflags of scripts/kube-build.sh)", v.GitVersion)
	}
	if _, err := user.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("low-privilege user listing namespaces: got %v, want 403", err)
	}

	// Without the controller-manager nobody makes ServiceAccounts or
	// their tokens; a token requested by hand proves the signing keys work.
	ns := randomName("sa-")
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "robot"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tok, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "robot", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token request: %v", err)
	}
	saCfg := rest.AnonymousClientConfig(adminCfg)
	saCfg.BearerToken = tok.Status.Token
	if u, want := whoami(saCfg), "system:serviceaccount:"+ns+":robot"; u.Username != want {
		t.Errorf("service-account token authenticates as %s, want %s", u.Username, want)
	}

	if err := c.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	for _, u := range []string{c.Host, c.EtcdURL} {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		if conn, err := net.DialTimeout("tcp", parsed.Host, time.Second); err == nil {
			conn.Close()
			t.Errorf("%s still accepts connections after Stop", u)
		}
	}
	if err := c.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// fakeBinDir writes shell scripts named like the four binaries; etcd's body
// is given, the others fail at once.
func fakeBinDir(t *testing.T, etcdScript string) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the fake binaries are shell scripts")
	}
	dir := t.TempDir()
	for name, body := range map[string]string{
		testkube.Etcd:              etcdScript,
		testkube.APIServer:         "exit 1",
		testkube.ControllerManager: "exit 1",
		testkube.Scheduler:         "exit 1",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestStartErrorNamesBinaryAndLog(t *testing.T) {
	bin := fakeBinDir(t, `echo "etcd: something is badly wrong" >&2; exit 3`)
	_, err := testkube.Start(t.Context(), testkube.Options{BinDir: bin, Dir: t.TempDir()})
	var se *testkube.StartError
	if !errors.As(err, &se) {
		t.Fatalf("Start: got %v, want a *StartError", err)
	}
	if se.Binary != testkube.Etcd || filepath.Base(se.LogPath) != "etcd.log" {
		t.Errorf("StartError names %s and %s, want etcd and its log", se.Binary, se.LogPath)
	}
	for _, want := range []string{"start etcd", se.LogPath, "something is badly wrong", "exit status 3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if _, statErr := os.Stat(se.LogPath); statErr != nil {
		t.Errorf("log file: %v", statErr)
	}
}

// TestStartTimeoutKillsProcessGroup: a binary that never becomes ready and
// ignores SIGTERM is reported by name once the start-up deadline passes,
// and it and its child are gone when Start returns.
func TestStartTimeoutKillsProcessGroup(t *testing.T) {
	bin := fakeBinDir(t, `trap '' TERM
for a in "$@"; do case "$a" in --data-dir=*) d="${a#--data-dir=}";; esac; done
mkdir -p "$d"
sleep 300 &
echo $$ > "$d/sh.pid"; echo $! > "$d/sleep.pid"
echo "pretending to start" >&2
wait`)
	dir := t.TempDir()
	_, err := testkube.Start(t.Context(), testkube.Options{
		BinDir: bin, Dir: dir, StartTimeout: 2 * time.Second, StopGrace: 100 * time.Millisecond,
	})
	var se *testkube.StartError
	if !errors.As(err, &se) || se.Binary != testkube.Etcd {
		t.Fatalf("Start: got %v, want a *StartError for etcd", err)
	}
	if !strings.Contains(err.Error(), "pretending to start") || !strings.Contains(err.Error(), "not ready") {
		t.Errorf("error %q lacks the log tail or the reason", err)
	}
	for _, f := range []string{"sh.pid", "sleep.pid"} {
		b, err := os.ReadFile(filepath.Join(dir, "etcd", f))
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		// Start has reaped its child; the grandchild, killed with the
		// group, may briefly linger as a zombie until init reaps it.
		poll(testContext(t, 5*time.Second), t, f+" gone", func(context.Context) (bool, error) { return !alive(pid), nil })
	}
}

// alive reports whether pid is a live process (a zombie is not).
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	// pid (comm) state ...
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
