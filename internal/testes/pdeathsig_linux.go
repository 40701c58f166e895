package testes

import "syscall"

// setPdeathsig has the kernel kill the server's launcher if the test binary
// dies first (one killed by -timeout runs no cleanup); the server JVM exits
// when its launcher's pipe closes.
func setPdeathsig(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
