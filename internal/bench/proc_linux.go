package bench

import "syscall"

// sysProcAttr puts centrald in a process group of its own, so that a
// Ctrl-C meant for parkbench reaches only parkbench (which then stops
// centrald in order), and has the kernel kill it should parkbench die
// without cleaning up.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
