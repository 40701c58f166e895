//go:build unix && !linux

package testes

import "syscall"

func setPdeathsig(*syscall.SysProcAttr) {}
