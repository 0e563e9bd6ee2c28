package rpi

import (
	"fmt"
	"sync"

	"periph.io/x/host/v3/gpioioctl"

	"github.com/parkgate/parkgate/hardware"
)

// Output is a relay output, such as the one on the barrier board's OPEN
// input. It is safe for concurrent use.
//
// The line is requested from the kernel directly (GPIO uapi v2, not
// periph) in one call that makes it an output and gives its initial
// level: the inactive one. From that request until the line is released
// the pin is never at the active level unless Set(true) asked for it, for
// either polarity.
//
// What happens to the pin after release depends on the kernel, not on
// this package: Raspberry Pi OS kernels keep a released output at its
// last level (the gpio-bcm2835/pinctrl-rp1 "persist_gpio_outputs"
// behaviour), mainline kernels return the line to an input, where the
// pin's pull resistor decides. That is why a process killed mid-pulse can
// leave the relay energised on a Pi, and why gated drives its outputs
// inactive first thing at start, in `gated safe` (run by systemd after
// every stop) and on the way out.
type Output struct {
	name      string
	activeLow bool

	mu     sync.Mutex
	line   outputLine // nil once closed
	active bool       // what was last set: the pin is never read back
}

var _ hardware.Output = (*Output)(nil)

// outputLine is a requested output line, as the kernel hands it out.
type outputLine interface {
	// set drives the pin high (true) or low.
	set(high bool) error
	// release gives the line back to the kernel.
	release() error
}

// NewOutput claims the line called name (e.g. "GPIO17") as an output at
// its inactive level from the first instant: high when activeLow, low
// otherwise. Init must have succeeded.
func NewOutput(name string, activeLow bool) (*Output, error) {
	chip, offset, err := locate(name)
	if err != nil {
		return nil, err
	}
	return newOutput(name, activeLow, func(high bool) (outputLine, error) { return requestOutput(chip, offset, high) })
}

// newOutput claims an output through request, which asks the kernel for
// the line at the given initial level; tests pass a fake kernel.
func newOutput(name string, activeLow bool, request func(high bool) (outputLine, error)) (*Output, error) {
	l, err := request(activeLow) // the inactive level: high when active-low
	if err != nil {
		return nil, fmt.Errorf("rpi: %s: requesting the line as an output at its inactive level: %w", name, hint(err))
	}
	return &Output{name: name, activeLow: activeLow, line: l}, nil
}

// locate finds the chip device and the line offset of the line called
// name, through periph's registry and chips.
func locate(name string) (chip string, offset uint32, err error) {
	l, err := lookup(name)
	if err != nil {
		return "", 0, err
	}
	for _, c := range gpioioctl.Chips {
		for _, cl := range c.Lines() {
			if cl == l {
				return c.Path(), uint32(l.Number()), nil
			}
		}
	}
	return "", 0, fmt.Errorf("rpi: line %q belongs to no open GPIO chip", name)
}

// Set drives the relay: active true energises it. The level is driven
// even when it is already the one set, which repairs a line that someone
// else (a stray `pinctrl set`) has changed.
func (o *Output) Set(active bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.line == nil {
		return fmt.Errorf("rpi: %s: output closed", o.name)
	}
	if err := o.line.set(active != o.activeLow); err != nil {
		return fmt.Errorf("rpi: %s: %w", o.name, err)
	}
	o.active = active
	return nil
}

// Active reports the level last set, from memory: reading the pin back
// is not needed, and on periph's driver it would turn it into an input.
func (o *Output) Active() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.active
}

// Close drives the output inactive and releases the line. On a Raspberry
// Pi kernel the pin then stays at that inactive level (see Output).
// Closing twice is fine.
func (o *Output) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.line == nil {
		return nil
	}
	err := o.line.set(o.activeLow)
	if err == nil {
		o.active = false
	}
	if rerr := o.line.release(); err == nil {
		err = rerr
	}
	o.line = nil
	if err != nil {
		return fmt.Errorf("rpi: %s: %w", o.name, err)
	}
	return nil
}
