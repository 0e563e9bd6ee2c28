//go:build !linux

package serial

import "os"

// bauds lists the speeds Open accepts (on Linux, with their codes).
var bauds = map[int]uint32{
	1200: 0, 2400: 0, 4800: 0, 9600: 0, 19200: 0, 38400: 0, 57600: 0,
	115200: 0, 230400: 0, 460800: 0, 921600: 0,
}

// openTTY fails: the termios configuration here is Linux's.
func openTTY(device string, baud int) (*os.File, error) { return nil, ErrUnsupported }
