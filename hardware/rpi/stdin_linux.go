package rpi

import "golang.org/x/sys/unix"

// restoreStdin puts /dev/null back on file descriptor 0 if periph's driver
// init has closed it (see the package doc). Left closed, the next file
// opened anywhere in the process would get fd 0, which periph takes for
// "no line requested", and a later line request would then fail as busy.
func restoreStdin() {
	if _, err := unix.FcntlInt(0, unix.F_GETFD, 0); err != unix.EBADF {
		return
	}
	fd, err := unix.Open("/dev/null", unix.O_RDWR, 0) // the lowest free fd: 0
	if err != nil || fd == 0 {
		return
	}
	_ = unix.Dup3(fd, 0, 0)
	_ = unix.Close(fd)
}
