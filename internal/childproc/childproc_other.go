//go:build !linux

// Package childproc keeps the daemons that tests and parkbench start from
// outliving them: a test binary interrupted halfway, or a parkbench that
// dies, must not leave a centrald serving for hours.
package childproc

import "syscall"

// Attr has nothing to add outside Linux, which alone has Pdeathsig.
func Attr() *syscall.SysProcAttr { return nil }
