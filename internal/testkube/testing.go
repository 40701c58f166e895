package testkube

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
)

// EnvRequireKube, set to 1, turns a missing control plane from a skipped
// test into a failed one (CI sets it).
const EnvRequireKube = "FAULTLINE_REQUIRE_KUBE"

// StartT starts a cluster for one test and stops it at the test's cleanup.
// When the binaries are missing it skips the test, or fails it when
// FAULTLINE_REQUIRE_KUBE=1. Options.Dir defaults to t.TempDir().
func StartT(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	// t.Context bounds the start-up only; the cluster lives until cleanup.
	c, err := Start(t.Context(), opts)
	if err != nil {
		skipOrFail(t, err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop cluster: %v", err)
		}
	})
	return c
}

func skipOrFail(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrNoBinaries) && os.Getenv(EnvRequireKube) != "1" {
		t.Skipf("no Kubernetes control plane (set %s=1 to fail instead): %v", EnvRequireKube, err)
	}
	t.Fatalf("%v", err)
}

// Shared is one cluster for all the tests of a package. It starts on the
// first Get and stops at Stop, which TestMain calls after m.Run:
//
//	var kube = testkube.NewShared(testkube.Options{Controllers: true})
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		if err := kube.Stop(); err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			code = 1
//		}
//		os.Exit(code)
//	}
//
//	func TestSomething(t *testing.T) {
//		c := kube.Get(t)
//		...
//	}
//
// Tests that share a cluster should work in namespaces of their own.
type Shared struct {
	opts    Options
	once    sync.Once
	cluster *Cluster
	err     error
}

// NewShared returns a Shared that will start a cluster with opts.
func NewShared(opts Options) *Shared {
	return &Shared{opts: opts}
}

// Get returns the shared cluster, starting it on first use. Like StartT it
// skips the test, or fails it with FAULTLINE_REQUIRE_KUBE=1, when the
// binaries are missing; a cluster that failed to start fails every test
// that asks for it.
func (s *Shared) Get(t testing.TB) *Cluster {
	t.Helper()
	s.once.Do(func() {
		s.cluster, s.err = Start(context.Background(), s.opts)
	})
	if s.err != nil {
		skipOrFail(t, s.err)
	}
	return s.cluster
}

// Stop stops the cluster if it was started.
func (s *Shared) Stop() error {
	s.once.Do(func() {}) // no Get can start one from now on
	if s.cluster == nil {
		return nil
	}
	return s.cluster.Stop()
}
