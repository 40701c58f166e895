package testkube

import (
	"os"
	"syscall"
)

// sysProcAttr puts a child in its own process group, so that stopping it
// reaches everything it started, and has the kernel kill it if this process
// dies first (a test binary killed by -timeout runs no cleanup).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup sends sig to the process group led by p.
func signalGroup(p *os.Process, sig syscall.Signal) {
	_ = syscall.Kill(-p.Pid, sig)
}
