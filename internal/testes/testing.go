package testes

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
)

// Start runs a server for the test t and stops it at t's cleanup. When
// Elasticsearch or a JDK is missing it skips the test, or fails it when
// FAULTLINE_REQUIRE_ES=1.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	// t.Context bounds the start only; the server lives until cleanup.
	s, err := Launch(t.Context(), o)
	if err != nil {
		skipOrFail(t, err)
	}
	t.Logf("elasticsearch %s at %s (as %s, JDK %s), yellow after %s", s.Version, s.URL, orSelf(s.RunAs), s.JavaHome, s.StartTime.Round(100e6))
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop elasticsearch: %v", err)
		}
	})
	return s
}

func skipOrFail(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrUnavailable) && os.Getenv(EnvRequire) != "1" {
		t.Skipf("no elasticsearch for tests (set %s=1 to fail instead): %v", EnvRequire, err)
	}
	t.Fatalf("%v", err)
}

// Shared is one server for all the tests of a package: it starts on the
// first Get and stops at Stop, which TestMain calls after m.Run:
//
//	var es = testes.NewShared(testes.Options{})
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		if err := es.Stop(); err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			code = 1
//		}
//		os.Exit(code)
//	}
//
//	func TestSomething(t *testing.T) {
//		srv := es.Get(t)
//		...
//	}
//
// Tests that share a server should use index and data-stream names of
// their own.
type Shared struct {
	opts   Options
	once   sync.Once
	server *Server
	err    error
}

// NewShared returns a Shared that will start a server with opts.
func NewShared(opts Options) *Shared {
	return &Shared{opts: opts}
}

// Get returns the shared server, starting it on first use. Like Start it
// skips the test, or fails it with FAULTLINE_REQUIRE_ES=1, when
// Elasticsearch is missing; a server that failed to start fails every test
// that asks for it.
func (s *Shared) Get(t testing.TB) *Server {
	t.Helper()
	s.once.Do(func() {
		s.server, s.err = Launch(context.Background(), s.opts)
		if s.err == nil {
			t.Logf("shared elasticsearch %s at %s (as %s, JDK %s), yellow after %s", s.server.Version, s.server.URL, orSelf(s.server.RunAs), s.server.JavaHome, s.server.StartTime.Round(100e6))
		}
	})
	if s.err != nil {
		skipOrFail(t, s.err)
	}
	return s.server
}

// Stop stops the server if it was started.
func (s *Shared) Stop() error {
	s.once.Do(func() {}) // no Get can start one from now on
	if s.server == nil {
		return nil
	}
	return s.server.Stop()
}
