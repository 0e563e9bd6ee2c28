//go:build !linux

// Package childproc keeps the daemons that tests and parkbench start from
// outliving them: a test binary interrupted halfway, or a parkbench that
// dies, must not leave a centrald serving for hours.
package childproc

import (
	"os"
	"syscall"
)

// Attr has nothing to add outside Linux, which alone has Pdeathsig.
func Attr() *syscall.SysProcAttr { return nil }

// Running says whether pid is a process that has not been reaped (signal
// 0 where there are signals; a zombie counts as running here).
func Running(pid int) bool {
	p, err := os.FindProcess(pid)
	return err == nil && p.Signal(syscall.Signal(0)) == nil
}
