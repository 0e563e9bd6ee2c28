package serial

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// bauds maps the supported speeds to their termios codes.
var bauds = map[int]uint32{
	1200: unix.B1200, 2400: unix.B2400, 4800: unix.B4800, 9600: unix.B9600,
	19200: unix.B19200, 38400: unix.B38400, 57600: unix.B57600,
	115200: unix.B115200, 230400: unix.B230400, 460800: unix.B460800,
	921600: unix.B921600,
}

// openTTY opens device and configures it raw, 8N1, at baud.
//
// O_NONBLOCK makes the open itself not wait for carrier on a modem line,
// and lets Go's poller wait for input, so that Serve can interrupt a read
// with a deadline. O_NOCTTY keeps the scanner from becoming the daemon's
// controlling terminal (a hang-up would signal us).
func openTTY(device string, baud int) (*os.File, error) {
	speed, ok := bauds[baud]
	if !ok {
		return nil, errUnsupportedBaud(baud)
	}
	f, err := os.OpenFile(device, os.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("serial: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("serial: %s: %w", device, err)
	}
	var cerr error
	if err := rc.Control(func(fd uintptr) { cerr = configure(int(fd), speed) }); err != nil {
		cerr = err
	}
	if cerr != nil {
		f.Close()
		return nil, fmt.Errorf("serial: %s: %w", device, cerr)
	}
	return f, nil
}

// configure sets the tty raw 8N1 at speed, like cfmakeraw(3).
func configure(fd int, speed uint32) error {
	// Exclusive: a second opener (ModemManager probing a new ttyACM, a
	// forgotten screen session) gets EBUSY instead of stealing codes.
	// Not fatal: some drivers do not support it.
	_ = unix.IoctlSetInt(fd, unix.TIOCEXCL, 0)

	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("not a tty? TCGETS: %w", err)
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR |
		unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF | unix.IXANY | unix.INPCK
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB | unix.CSTOPB | unix.CRTSCTS | unix.CBAUD
	t.Cflag |= unix.CS8 | unix.CREAD | unix.CLOCAL | speed
	t.Ispeed, t.Ospeed = speed, speed
	// VMIN=1, VTIME=0: a read returns as soon as one byte is there. A
	// VTIME timeout would make read() return 0, which os.File reports as
	// io.EOF; waiting (and being interrupted) is the poller's job.
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		return fmt.Errorf("TCSETS: %w", err)
	}
	got, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("TCGETS: %w", err)
	}
	if got.Cflag&unix.CBAUD != speed || got.Lflag&unix.ICANON != 0 || got.Cflag&unix.CSIZE != unix.CS8 {
		return fmt.Errorf("the driver did not accept raw 8N1 at the requested speed")
	}
	// Drop what arrived before the line was configured: at the wrong
	// speed it is garbage.
	return unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIFLUSH)
}
