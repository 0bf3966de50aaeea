package testkit

import "syscall"

// ChildProcAttr makes a child process (redis-server, a service, nats-server)
// die with the process that started it, even on SIGKILL, so nothing outlives
// a test or `make run`.
func ChildProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
