//go:build !linux

package testkit

import "syscall"

// ChildProcAttr is empty where the kernel has no parent-death signal (macOS):
// Stop ends the children, but a launcher killed with SIGKILL leaves them
// running.
func ChildProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
