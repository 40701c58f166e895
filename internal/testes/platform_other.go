//go:build !unix

package testes

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// DefaultUser is the system user Elasticsearch runs as when the tests run
// as root; see the unix build.
const DefaultUser = "faultline-es"

type runAs struct{ name string }

func serverUser() (*runAs, error) {
	return nil, fmt.Errorf("the harness runs elasticsearch on unix only: %w", ErrUnavailable)
}

func sysProcAttr(*runAs) *syscall.SysProcAttr { return nil }

func signalGroup(pid int, _ syscall.Signal) {
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}

func chownTree(string, *runAs) error { return nil }

func reachable(string, *runAs, fs.FileMode) error { return nil }

func linkTree(src, dst string, skip func(rel string) bool) error {
	return fmt.Errorf("link %s: %w", src, ErrUnavailable)
}
