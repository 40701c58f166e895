//go:build !unix

package testkube

import (
	"os"
	"syscall"
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

// signalGroup kills p: without process groups there is no gentler way.
func signalGroup(p *os.Process, _ syscall.Signal) {
	_ = p.Kill()
}
