// Package childproc keeps the daemons that tests and parkbench start from
// outliving them: a test binary interrupted halfway, or a parkbench that
// dies, must not leave a centrald serving for hours.
package childproc

import "syscall"

// Attr puts a child in a process group of its own, so that a Ctrl-C meant
// for the parent reaches only the parent (which then stops the child in
// its own order), and has the kernel kill the child with SIGKILL should
// the parent die without cleaning up.
func Attr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
