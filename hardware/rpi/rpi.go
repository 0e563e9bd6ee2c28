// Package rpi drives a lane's GPIO on a Raspberry Pi (any model, the Pi 5
// included) through the Linux GPIO character device (/dev/gpiochip*), so
// gated runs as a normal user in the gpio group: no root, no /dev/mem.
// periph.io's character-device driver (periph.io/x/host/v3/gpioioctl)
// finds lines by name and runs the inputs (bias, edge events); relay
// outputs are requested with the kernel's GPIO uapi v2 directly, through
// golang.org/x/sys/unix, because periph cannot give a line its initial
// output level in the request (see Output).
//
// Pins are the kernel's line names as `gpioinfo` shows them: "GPIO17".
//
// Traps in periph's chardev driver that shape this package, read from its
// source (host v3.8.5):
//
//   - There is no atomic "request as output with initial level": the first
//     Out() requests the line as-is, reconfigures it as an output (which
//     the kernel drives to 0, i.e. low) and only then writes the level.
//     With an active-low relay board that is a blip of the relay on every
//     start. Outputs therefore do not go through periph at all: Output
//     requests its line itself, in one GPIO_V2_GET_LINE_IOCTL call that
//     carries the inactive level as the line's initial output value (see
//     output.go). periph still finds lines by name and runs the inputs.
//   - Read() on a line that is not an input silently reconfigures it as an
//     input with the pull-up on, and Read() and WaitForEdge() log their
//     errors and return Low/false instead of returning them. Output keeps
//     its level in software and never reads the pin; Input counts the
//     waits that fail at once (ReadErrors, OnReadError) and reports the
//     clean ones (OnReadOK), so that gated can raise and clear an input
//     fault.
//   - host.Init() on ARM also loads periph's bcm283x driver, which replaces
//     the chardev's GPIOnn names in gpioreg with memory-mapped pins (and on
//     a Pi 5 assumes the BCM2711 register map). This package therefore
//     links only the chardev driver and looks pins up in it; see Init.
//   - Chip.Close() closes file descriptor 0 (it zeroes its fd and then
//     closes it), and driver init calls it for a duplicate chip (the Pi 5's
//     gpiochip4 -> gpiochip0 symlink). Init puts /dev/null back on fd 0,
//     because periph also uses fd 0 as "no line requested". Call Init
//     early, before other goroutines open files.
//   - Errors lose their errno (errors.New(errno.Error())), so they are
//     matched by text where a hint helps.
//   - WaitForEdge(0) waits forever on the chardev driver but returns at
//     once on gpiotest.Pin, and -1 is the reverse: this package always
//     passes a positive timeout.
//
// Safety: photocells and safety loops stay wired to the barrier board; the
// Pi only asks the board to open and watches, it is never part of a safety
// circuit.
package rpi

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"periph.io/x/conn/v3/driver/driverreg"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/host/v3/gpioioctl"

	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/hardware"
	"github.com/parkgate/parkgate/hardware/debounce"
)

// Init loads periph's GPIO character-device driver and explains in the
// error what is missing: not Linux, no /dev/gpiochip* (not a Pi, or no
// GPIO character device in the kernel), or no permission (the user is not
// in the gpio group). It is what host.Init() does, minus periph's
// memory-mapped drivers (see the package doc). Calling it twice is fine.
func Init() error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("rpi: GPIO needs Linux's GPIO character device, this is %s; use hardware.mode: sim", runtime.GOOS)
	}
	_, err := driverreg.Init()
	restoreStdin()
	if err != nil {
		return fmt.Errorf("rpi: initialising periph: %w", err)
	}
	if len(gpioioctl.Chips) == 0 {
		return diagnose()
	}
	return nil
}

// diagnose says why no GPIO chip could be opened.
func diagnose() error {
	chips, _ := filepath.Glob("/dev/gpiochip*")
	if len(chips) == 0 {
		return fmt.Errorf("rpi: no /dev/gpiochip* on this machine%s: either it is not a Pi, or its kernel lacks the GPIO character device, or (in a container) the device is not passed in; use hardware.mode: sim to run without hardware", modelHint())
	}
	f, err := os.Open(chips[0])
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("rpi: %s: permission denied: run gated as a user in the gpio group (sudo usermod -aG gpio USER, then log in again), or give its systemd unit SupplementaryGroups=gpio and DeviceAllow=/dev/gpiochip* rw", chips[0])
	}
	if err != nil {
		return fmt.Errorf("rpi: %s: %w", chips[0], err)
	}
	f.Close()
	return fmt.Errorf("rpi: %s opens, but periph's GPIO driver found no usable chip (see its log lines)", chips[0])
}

// modelHint names the machine when it is not a Raspberry Pi, since that
// is the likeliest reason for a missing chip or line.
func modelHint() string {
	b, err := os.ReadFile("/proc/device-tree/model")
	if err != nil {
		return " (it has no device tree, so it is no Raspberry Pi)"
	}
	m := strings.TrimRight(string(b), "\x00\n")
	if strings.Contains(m, "Raspberry Pi") {
		return ""
	}
	return fmt.Sprintf(" (it is a %q, not a Raspberry Pi)", m)
}

// lookup finds the chardev line called name. It goes through gpioreg
// first, as periph means pins to be found, but accepts only a chardev
// line: if another periph driver has taken the name over (bcm283x when
// periph.io/x/host/v3 is linked in), it asks the chardev's chips directly.
func lookup(name string) (*gpioioctl.GPIOLine, error) {
	p := gpioreg.ByName(name)
	for {
		r, ok := p.(gpio.RealPin)
		if !ok {
			break
		}
		p = r.Real()
	}
	if l, ok := p.(*gpioioctl.GPIOLine); ok {
		return l, nil
	}
	for _, c := range gpioioctl.Chips {
		if l := c.ByName(name); l != nil {
			return l, nil
		}
	}
	if p != nil {
		return nil, fmt.Errorf("rpi: pin %q is provided by %T, not by the GPIO character device", name, p)
	}
	if len(gpioioctl.Chips) == 0 {
		return nil, fmt.Errorf("rpi: no GPIO line %q: no GPIO chip is open (call rpi.Init first, and check its error)", name)
	}
	return nil, fmt.Errorf("rpi: no GPIO line named %q%s; names are the kernel's line names as `gpioinfo` lists them, e.g. GPIO17", name, modelHint())
}

// hint adds what to do about a line error periph reports only as text.
func hint(err error) error {
	if strings.Contains(err.Error(), "device or resource busy") {
		return fmt.Errorf("%w (the line is in use: another program, or a kernel overlay such as 1-wire or a fan; `gpioinfo` shows the consumer)", err)
	}
	return err
}

// DefaultPoll is how long an Input waits for an edge before reading the
// level anyway: a missed edge (the kernel's event queue overflowing) is
// repaired within this time, and Close takes at most this long.
const DefaultPoll = time.Second

// Input is a debounced input, such as the loop detector or a barrier
// status contact.
type Input struct {
	pin       gpio.PinIn
	activeLow bool
	poll      time.Duration
	observed  func(edge, active bool) // test hook, after each feed
	db        *debounce.Debouncer

	stop   chan struct{}
	done   chan struct{}
	waited atomic.Bool // WaitForEdge has returned at least once
	once   sync.Once

	readErrors atomic.Uint64
	onError    atomic.Pointer[func(error)]
	onOK       atomic.Pointer[func()]
}

var _ hardware.Input = (*Input)(nil)

// NewInput claims the line called name as an input with the given pull
// resistor (gpio.PullUp for a dry contact to ground, gpio.Float when the
// detector drives the line) and edge detection on both edges, and reports
// it debounced by d (debounce.Default is the lane's default; 0 disables
// debouncing). activeLow means the contact is active when the line is low,
// as with a contact to ground and a pull-up. Init must have succeeded.
func NewInput(name string, activeLow bool, pull gpio.Pull, d time.Duration) (*Input, error) {
	l, err := lookup(name)
	if err != nil {
		return nil, err
	}
	return newInput(l, activeLow, pull, d, inputConfig{})
}

// inputConfig holds what tests change; the zero value is production.
type inputConfig struct {
	clk      clock.Clock
	poll     time.Duration
	observed func(edge, active bool)
	onError  func(error)
}

// newInput is NewInput on a given pin; tests pass gpiotest fakes.
func newInput(p gpio.PinIO, activeLow bool, pull gpio.Pull, d time.Duration, cfg inputConfig) (*Input, error) {
	if cfg.clk == nil {
		cfg.clk = clock.Real{}
	}
	if cfg.poll <= 0 {
		cfg.poll = DefaultPoll
	}
	if err := p.In(pull, gpio.BothEdges); err != nil {
		return nil, fmt.Errorf("rpi: %s: configuring as input: %w", p.Name(), hint(err))
	}
	in := &Input{
		pin:       p,
		activeLow: activeLow,
		poll:      cfg.poll,
		observed:  cfg.observed,
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	in.OnReadError(cfg.onError)
	in.db = debounce.New(cfg.clk, d, in.read())
	go in.watch()
	return in, nil
}

func (in *Input) read() bool { return bool(in.pin.Read()) != in.activeLow }

// Active reports the debounced level.
func (in *Input) Active() bool { return in.db.Active() }

// Changes delivers every debounced change to one consumer; it is closed by
// Close.
func (in *Input) Changes() <-chan bool { return in.db.Changes() }

// watch is the goroutine that owns the line's edge events.
func (in *Input) watch() {
	defer close(in.done)
	fast := 0
	for {
		select {
		case <-in.stop:
			return
		default:
		}
		start := time.Now()
		edge := in.pin.WaitForEdge(in.poll)
		in.waited.Store(true)
		select {
		case <-in.stop:
			return
		default:
		}
		active := in.read()
		if edge {
			in.db.Edge(active)
			fast = 0
			in.readOK()
		} else {
			// WaitForEdge also returns false at once when the line is
			// broken; do not spin on it. This measures the kernel's own
			// real-time deadline, hence time.Since and not the clock.
			// The failure is reported before the level it read is fed,
			// so that whoever hears of it can discount that level.
			if time.Since(start) < in.poll/2 {
				fast++
				in.readError(fmt.Errorf("rpi: %s: waiting for an edge failed at once (see periph's log line); the level read is %v", in.pin.Name(), active))
			} else {
				fast = 0
				in.readOK()
			}
			// A timeout: poll the level, in case an edge was lost.
			in.db.Feed(active)
		}
		if in.observed != nil {
			in.observed(edge, active)
		}
		if fast >= 3 {
			select {
			case <-in.stop:
				return
			case <-time.After(in.poll):
			}
		}
	}
}

// WatchNoise reports the line as noisy (fn(true)) when it has gone limit
// without holding a level for the debounce time, and fn(false) once it
// holds one again: see debounce.Debouncer.WatchNoise.
func (in *Input) WatchNoise(limit time.Duration, fn func(noisy bool)) { in.db.WatchNoise(limit, fn) }

// Noisy reports whether the line is noisy now (see WatchNoise).
func (in *Input) Noisy() bool { return in.db.Noisy() }

// ReadErrors counts the failed reads of the line: waits for an edge that
// returned at once instead of after an edge or the poll timeout. periph
// logs the cause and returns no error (and Read then says Low), so a
// broken line shows up here, not as a level.
func (in *Input) ReadErrors() uint64 { return in.readErrors.Load() }

// OnReadError sets a function called (from the input's goroutine, so it
// must not block) with each failed read; nil removes it.
func (in *Input) OnReadError(fn func(error)) {
	if fn == nil {
		in.onError.Store(nil)
		return
	}
	in.onError.Store(&fn)
}

// OnReadOK sets a function called (from the input's goroutine, so it must
// not block) after each clean read: a wait that ended with an edge, or
// after the poll timeout. A working line reads cleanly at least once per
// poll (DefaultPoll), so a caller can tell a line that recovered from one
// that merely has not failed lately. nil removes it.
func (in *Input) OnReadOK(fn func()) {
	if fn == nil {
		in.onOK.Store(nil)
		return
	}
	in.onOK.Store(&fn)
}

func (in *Input) readOK() {
	if fn := in.onOK.Load(); fn != nil {
		(*fn)()
	}
}

func (in *Input) readError(err error) {
	in.readErrors.Add(1)
	if fn := in.onError.Load(); fn != nil {
		(*fn)(err)
	}
}

// Close stops watching the line, waits for the watcher to end, closes
// Changes and releases the line.
func (in *Input) Close() error {
	in.once.Do(func() {
		close(in.stop)
		// Halt interrupts a pending wait on the chardev driver. It reads
		// state that the first WaitForEdge writes without a lock, so it
		// is only safe (race-free) once a wait has returned; before that,
		// the watcher notices stop within one poll.
		if in.waited.Load() {
			in.pin.Halt()
		}
	})
	<-in.done
	err := in.db.Close()
	if c, ok := in.pin.(interface{ Close() }); ok {
		c.Close()
	}
	return err
}

// ParsePull maps a configuration word to a pull resistor: "up", "down",
// "none" or "float" (no resistor), and "" (leave as is).
func ParsePull(s string) (gpio.Pull, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "up":
		return gpio.PullUp, nil
	case "down":
		return gpio.PullDown, nil
	case "none", "float":
		return gpio.Float, nil
	case "":
		return gpio.PullNoChange, nil
	}
	return gpio.PullNoChange, fmt.Errorf("rpi: pull %q: want up, down, none or empty", s)
}
