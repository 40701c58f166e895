package testfluent

import "syscall"

// setPdeathsig has the kernel kill the receiver if the test binary dies
// first (one killed by -timeout runs no cleanup).
func setPdeathsig(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
