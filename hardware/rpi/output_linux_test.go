package rpi

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// fakeKernel does with GPIO uapi v2 requests what the kernel's gpiolib
// does with them, for one chip, and records every electrical level a line
// is ever driven to — including the level the kernel drives when the line
// is requested as an output, which is 0 unless the request carries an
// output value for it. A released line keeps its level, as on Raspberry Pi
// OS kernels (persist_gpio_outputs).
type fakeKernel struct {
	mu       sync.Mutex
	lines    map[uint32]*fakeLine
	fds      map[int32]*fakeLine
	nextFd   int32
	requests int
	failReq  error
	failSet  error
}

type fakeLine struct {
	high      bool   // the pin's electrical level
	driven    []bool // every level driven onto the pin, in order
	requested bool
	activeLow bool // the request's ACTIVE_LOW flag
	released  int
}

func newFakeKernel() *fakeKernel {
	return &fakeKernel{lines: map[uint32]*fakeLine{}, fds: map[int32]*fakeLine{}, nextFd: 10}
}

// line returns the line at offset, starting at level high if new.
func (k *fakeKernel) line(offset uint32, high bool) *fakeLine {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.lines[offset]
	if l == nil {
		l = &fakeLine{high: high}
		k.lines[offset] = l
	}
	return l
}

func (k *fakeKernel) drive(l *fakeLine, high bool) {
	l.high = high
	l.driven = append(l.driven, high)
}

func (k *fakeKernel) lineRequest(path string, req *unix.GPIOV2LineRequest) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.requests++
	if k.failReq != nil {
		return k.failReq
	}
	if req.Num_lines != 1 {
		return unix.EINVAL
	}
	l := k.lines[req.Offsets[0]]
	if l == nil {
		l = &fakeLine{}
		k.lines[req.Offsets[0]] = l
	}
	if l.requested {
		return unix.EBUSY
	}
	flags := req.Config.Flags
	value := false // gpiolib: no output value given for the line means 0
	for i := uint32(0); i < req.Config.Num_attrs; i++ {
		a := req.Config.Attrs[i]
		if a.Mask&1 == 0 {
			continue
		}
		switch a.Attr.Id {
		case unix.GPIO_V2_LINE_ATTR_ID_FLAGS:
			flags = a.Attr.Flags
		case unix.GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES:
			value = a.Attr.Flags&1 != 0
		}
	}
	l.requested = true
	l.activeLow = flags&lineFlagActiveLow != 0
	if flags&lineFlagOutput != 0 {
		k.drive(l, value != l.activeLow)
	}
	req.Fd = k.nextFd
	k.fds[k.nextFd] = l
	k.nextFd++
	return nil
}

func (k *fakeKernel) setValues(fd int32, v *unix.GPIOV2LineValues) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.fds[fd]
	if l == nil {
		return unix.EBADF
	}
	if k.failSet != nil {
		return k.failSet
	}
	if v.Mask&1 != 0 {
		k.drive(l, (v.Bits&1 != 0) != l.activeLow)
	}
	return nil
}

func (k *fakeKernel) closeLine(fd int32) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.fds[fd]
	if l == nil {
		return unix.EBADF
	}
	delete(k.fds, fd)
	l.requested = false
	l.released++
	return nil
}

func (k *fakeKernel) history(offset uint32) (driven []bool, high bool, released int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.lines[offset]
	return append([]bool(nil), l.driven...), l.high, l.released
}

func (k *fakeKernel) output(t *testing.T, activeLow bool) *Output {
	t.Helper()
	o, err := newOutput("GPIO17", activeLow, func(high bool) (outputLine, error) {
		return requestOutputOn(k, "/dev/gpiochip0", 17, high)
	})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func levels(hs []bool) string {
	var b strings.Builder
	for _, h := range hs {
		if h {
			b.WriteString("H")
		} else {
			b.WriteString("L")
		}
	}
	return b.String()
}

// From the line request to its release, an output is never at its active
// level unless asked, for either polarity — even when a crashed run left
// the pin at the active level (a Raspberry Pi kernel keeps it there).
func TestOutputNeverActiveFromRequestToClose(t *testing.T) {
	for _, activeLow := range []bool{false, true} {
		t.Run(fmt.Sprintf("activeLow=%v", activeLow), func(t *testing.T) {
			activeHigh := !activeLow
			k := newFakeKernel()
			k.line(17, activeHigh) // left active by a crashed run
			o := k.output(t, activeLow)
			if k.requests != 1 {
				t.Fatalf("%d line requests, want one that sets the level too", k.requests)
			}
			if o.Active() {
				t.Fatal("a new output reports active")
			}
			if err := o.Close(); err != nil {
				t.Fatal(err)
			}
			driven, high, released := k.history(17)
			for _, h := range driven {
				if h == activeHigh {
					t.Fatalf("levels driven %s: the relay was energised (active level %s)", levels(driven), levels([]bool{activeHigh}))
				}
			}
			if len(driven) == 0 || high == activeHigh || released != 1 {
				t.Fatalf("levels driven %s, pin now high=%v, released %d times: want the inactive level, released once", levels(driven), high, released)
			}
		})
	}
}

func TestOutputPulse(t *testing.T) {
	for _, activeLow := range []bool{false, true} {
		t.Run(fmt.Sprintf("activeLow=%v", activeLow), func(t *testing.T) {
			k := newFakeKernel()
			o := k.output(t, activeLow)
			if err := o.Set(true); err != nil || !o.Active() {
				t.Fatalf("Set(true) = %v, Active %v", err, o.Active())
			}
			if err := o.Set(false); err != nil || o.Active() {
				t.Fatalf("Set(false) = %v, Active %v", err, o.Active())
			}
			if err := o.Set(true); err != nil {
				t.Fatal(err)
			}
			// Closing mid-pulse drives the inactive level before release.
			if err := o.Close(); err != nil {
				t.Fatal(err)
			}
			driven, _, _ := k.history(17)
			want := "LHLHL"
			if activeLow {
				want = "HLHLH"
			}
			if levels(driven) != want {
				t.Fatalf("levels driven %s, want %s", levels(driven), want)
			}
			if err := o.Set(true); err == nil {
				t.Fatal("Set after Close succeeded")
			}
			if err := o.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
		})
	}
}

func TestOutputErrors(t *testing.T) {
	k := newFakeKernel()
	k.failReq = errors.New("device or resource busy")
	if _, err := newOutput("GPIO17", false, func(high bool) (outputLine, error) {
		return requestOutputOn(k, "/dev/gpiochip0", 17, high)
	}); err == nil || !strings.Contains(err.Error(), "gpioinfo") {
		t.Fatalf("newOutput on a busy line = %v, want an error with a hint", err)
	}
	k = newFakeKernel()
	o := k.output(t, false)
	k.failSet = errors.New("boom")
	if err := o.Set(true); err == nil || o.Active() {
		t.Fatalf("Set on a failing line = %v, Active %v; want an error and the old state", err, o.Active())
	}
}

// The structures come from golang.org/x/sys/unix; check that they are the
// kernel's layout (include/uapi/linux/gpio.h), which the ioctl number
// encodes the size of.
func TestLineRequestLayout(t *testing.T) {
	var req unix.GPIOV2LineRequest
	size := uintptr(unix.GPIO_V2_GET_LINE_IOCTL>>16) & 0x3fff
	if unsafe.Sizeof(req) != 592 || size != 592 {
		t.Fatalf("sizeof(gpio_v2_line_request) = %d, ioctl size %d, want 592", unsafe.Sizeof(req), size)
	}
	for name, got := range map[string][2]uintptr{
		"consumer":         {unsafe.Offsetof(req.Consumer), 256},
		"config":           {unsafe.Offsetof(req.Config), 288},
		"config.num_attrs": {unsafe.Offsetof(req.Config.Num_attrs), 8},
		"config.attrs":     {unsafe.Offsetof(req.Config.Attrs), 32},
		"num_lines":        {unsafe.Offsetof(req.Num_lines), 560},
		"fd":               {unsafe.Offsetof(req.Fd), 588},
		"attr size":        {unsafe.Sizeof(req.Config.Attrs[0]), 24},
		"attr value":       {unsafe.Offsetof(req.Config.Attrs[0].Attr.Flags), 8},
		"attr mask":        {unsafe.Offsetof(req.Config.Attrs[0].Mask), 16},
	} {
		if got[0] != got[1] {
			t.Errorf("%s at %d, want %d", name, got[0], got[1])
		}
	}
	if v := uintptr(unix.GPIO_V2_LINE_SET_VALUES_IOCTL>>16) & 0x3fff; v != unsafe.Sizeof(unix.GPIOV2LineValues{}) || v != 16 {
		t.Fatalf("gpio_v2_line_values size %d", v)
	}
	r := outputRequest(17, true)
	if r.Config.Flags&lineFlagOutput == 0 || r.Config.Flags&(lineFlagInput|lineFlagActiveLow) != 0 {
		t.Fatalf("flags %#x: want output only", r.Config.Flags)
	}
	if c := string(r.Consumer[:len(consumer)]); c != consumer || r.Consumer[len(r.Consumer)-1] != 0 {
		t.Fatalf("consumer %q", r.Consumer)
	}
}
