//go:build !linux

package testfluent

import "syscall"

func setPdeathsig(*syscall.SysProcAttr) {}
