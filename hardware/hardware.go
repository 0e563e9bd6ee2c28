// Package hardware is what a lane has, as small interfaces the gate depends
// on (in the style of periph.io's gpio.PinIO): outputs that drive relays,
// debounced inputs with edges, and readers that deliver scanned codes.
//
// Implementations: hardware/rpi drives a Raspberry Pi's GPIO through the
// Linux GPIO character device (relay outputs claimed at their inactive
// level in one request; inputs through periph.io); hardware/sim is the
// simulator that CI and demos drive over HTTP. Tests use hand-written fakes, never mocks.
//
// Wiring rule, repeated wherever it matters: photocells and safety loops
// stay wired to the barrier board. The Pi only asks the board to open (its
// OPEN input, never the START input, which toggles) and watches; it is
// never part of a safety circuit.
package hardware

import "context"

// Output drives one digital output, such as the relay on the barrier
// board's OPEN input. Active means "asking": the relay energised. An
// implementation keeps the state it set in software and never reads the
// pin back (on periph's chardev driver, reading an output line silently
// turns it into an input).
type Output interface {
	// Set drives the output active (true) or inactive (false).
	Set(active bool) error
}

// Input is a debounced digital input: the vehicle loop detector, or the
// barrier's open/closed status contact. Active means "present"/"closed" as
// the input's role says, whatever the electrical polarity.
type Input interface {
	// Active reports the current debounced level.
	Active() bool
	// Changes delivers every debounced change of level (the new level), in
	// order, to one consumer. It is closed when the input is closed.
	Changes() <-chan bool
}

// CodeReader reads codes (QR tickets) from a scanner and hands each
// complete one to fn, until ctx ends. fn is called from one goroutine at a
// time.
type CodeReader interface {
	Serve(ctx context.Context, fn func(code string)) error
}
