//go:build unix && !linux

package testkube

import (
	"os"
	"syscall"
)

// sysProcAttr puts a child in its own process group, so that stopping it
// reaches everything it started.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// signalGroup sends sig to the process group led by p.
func signalGroup(p *os.Process, sig syscall.Signal) {
	_ = syscall.Kill(-p.Pid, sig)
}
