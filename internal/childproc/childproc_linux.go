// Package childproc keeps the daemons that tests and parkbench start from
// outliving them: a test binary interrupted halfway, or a parkbench that
// dies, must not leave a centrald serving for hours.
package childproc

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"syscall"
)

// Attr puts a child in a process group of its own, so that a Ctrl-C meant
// for the parent reaches only the parent (which then stops the child in
// its own order), and has the kernel kill the child with SIGKILL should
// the parent die without cleaning up.
func Attr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// Running says whether pid is a process that has not exited, for a caller
// waiting for a child to go: a zombie (exited, not yet reaped, as orphans
// of a killed parent may stay where init does not reap) counts as gone.
func Running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	if err != nil {
		return true
	}
	// pid (comm) S ...: the state follows the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return true
	}
	return i+2 < len(b) && b[i+2] != 'Z'
}
