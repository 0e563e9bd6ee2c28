package rpi

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Line flags of the kernel's GPIO uapi v2 (include/uapi/linux/gpio.h,
// enum gpio_v2_line_flag). golang.org/x/sys/unix has the structures and
// the ioctl numbers but not these.
const (
	lineFlagActiveLow uint64 = 1 << 1 // GPIO_V2_LINE_FLAG_ACTIVE_LOW
	lineFlagInput     uint64 = 1 << 2 // GPIO_V2_LINE_FLAG_INPUT
	lineFlagOutput    uint64 = 1 << 3 // GPIO_V2_LINE_FLAG_OUTPUT
)

// consumer is the name `gpioinfo` shows for lines gated holds.
const consumer = "parkgate-gated"

// kernel is the seam between Output and the GPIO character device: the
// three system calls an output line needs. Tests give a fake that does
// what the kernel does with them.
type kernel interface {
	// lineRequest issues GPIO_V2_GET_LINE_IOCTL with req on the chip
	// device at path; the kernel fills in req.Fd.
	lineRequest(path string, req *unix.GPIOV2LineRequest) error
	// setValues issues GPIO_V2_LINE_SET_VALUES_IOCTL on a line fd.
	setValues(fd int32, v *unix.GPIOV2LineValues) error
	// closeLine closes a line fd, releasing the line.
	closeLine(fd int32) error
}

// outputRequest is the one request that claims line offset as an output
// whose first level is high (or low): the initial value travels in the
// request's output-values attribute, so the kernel never drives another
// level in between. Levels are electrical (no ACTIVE_LOW flag): the
// polarity is Output's business.
func outputRequest(offset uint32, high bool) *unix.GPIOV2LineRequest {
	var req unix.GPIOV2LineRequest
	req.Offsets[0] = offset
	req.Num_lines = 1
	copy(req.Consumer[:len(req.Consumer)-1], consumer)
	req.Config.Flags = lineFlagOutput
	req.Config.Num_attrs = 1
	a := &req.Config.Attrs[0]
	a.Attr.Id = unix.GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES
	a.Attr.Flags = levelBits(high) // the union's "values" member
	a.Mask = 1                     // bit 0: the request's first (only) line
	return &req
}

func levelBits(high bool) uint64 {
	if high {
		return 1
	}
	return 0
}

// requestOutput claims a line on the real character device.
func requestOutput(chip string, offset uint32, high bool) (outputLine, error) {
	return requestOutputOn(sysKernel{}, chip, offset, high)
}

func requestOutputOn(k kernel, chip string, offset uint32, high bool) (outputLine, error) {
	req := outputRequest(offset, high)
	if err := k.lineRequest(chip, req); err != nil {
		return nil, err
	}
	return &chardevLine{k: k, fd: req.Fd}, nil
}

// chardevLine is one requested output line.
type chardevLine struct {
	k  kernel
	fd int32
}

func (l *chardevLine) set(high bool) error {
	return l.k.setValues(l.fd, &unix.GPIOV2LineValues{Bits: levelBits(high), Mask: 1})
}

func (l *chardevLine) release() error { return l.k.closeLine(l.fd) }

// sysKernel is the real character device.
type sysKernel struct{}

func (sysKernel) lineRequest(path string, req *unix.GPIOV2LineRequest) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := ioctl(f.Fd(), unix.GPIO_V2_GET_LINE_IOCTL, unsafe.Pointer(req)); err != nil {
		return fmt.Errorf("GPIO_V2_GET_LINE_IOCTL on %s: %w", path, err)
	}
	return nil
}

func (sysKernel) setValues(fd int32, v *unix.GPIOV2LineValues) error {
	if err := ioctl(uintptr(fd), unix.GPIO_V2_LINE_SET_VALUES_IOCTL, unsafe.Pointer(v)); err != nil {
		return fmt.Errorf("GPIO_V2_LINE_SET_VALUES_IOCTL: %w", err)
	}
	return nil
}

func (sysKernel) closeLine(fd int32) error { return unix.Close(int(fd)) }

func ioctl(fd uintptr, req uint, arg unsafe.Pointer) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, uintptr(req), uintptr(arg))
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return errno
	}
}
