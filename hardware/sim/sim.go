// Package sim is the simulated lane hardware that CI and demos drive
// through gated's simulator endpoints (docs/gated.md), and that tests of
// the gate use as ready-made fakes.
//
//   - Output is a relay: it records the level it was set to, counts
//     activations and keeps a short history; tests wait on it instead of
//     sleeping.
//   - Input is a contact the simulator sets (the loop detector, a barrier
//     status contact), debounced like the real one or reported at once.
//   - Board is a simulated barrier board: it watches the OPEN output,
//     travels open and closed in a configurable time, drives the open and
//     closed status contacts, and closes by itself once the vehicle has
//     passed (its own safety loop) or after its auto-close time. As on a
//     real installation the safety function belongs to the board, not to
//     the gate: the board reverses on a vehicle while closing.
//   - Scanner is a code reader the simulator's scan endpoint pushes into.
//
// Wiring in gated (sim mode): the relay is NewOutput, the board is
// NewBoard over it with the loop Input, POST /v1/sim/vehicle calls
// Board.Vehicle (which also sets the loop), and the barrier's status
// inputs are Board.OpenedStatus and Board.ClosedStatus.
//
// Every timing decision goes through the injected clock.Clock.
package sim

import (
	"context"
	"sync"
	"time"

	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/hardware"
	"github.com/parkgate/parkgate/hardware/debounce"
)

// maxHistory bounds an Output's history: a demo left running for weeks
// must not grow without end, and tests look at the last few edges.
const maxHistory = 1000

// Edge is one change of an Output's level, as History reports it.
type Edge struct {
	// At is the clock's time of the change.
	At time.Time
	// Active is the level the output was set to.
	Active bool
}

// Output is a simulated relay output. It is safe for concurrent use.
type Output struct {
	clk clock.Clock

	notify sync.Mutex // serialises Set, so listeners see changes in order

	mu          sync.Mutex
	active      bool
	activations int
	history     []Edge
	changed     chan struct{} // closed and replaced at every change
	listeners   []func(active bool)
}

var _ hardware.Output = (*Output)(nil)

// NewOutput returns an inactive output; clk stamps its history.
func NewOutput(clk clock.Clock) *Output {
	return &Output{clk: clk, changed: make(chan struct{})}
}

// Set drives the output. Setting the level it already has is not a change
// (a real relay does not click twice) and is not recorded. It never fails.
func (o *Output) Set(active bool) error {
	o.notify.Lock()
	defer o.notify.Unlock()
	o.mu.Lock()
	if o.active == active {
		o.mu.Unlock()
		return nil
	}
	o.active = active
	if active {
		o.activations++
	}
	if len(o.history) == maxHistory {
		o.history = append(o.history[:0], o.history[1:]...)
	}
	o.history = append(o.history, Edge{At: o.clk.Now(), Active: active})
	close(o.changed)
	o.changed = make(chan struct{})
	ls := o.listeners
	o.mu.Unlock()
	for _, fn := range ls {
		fn(active)
	}
	return nil
}

// Active reports the level the output was last set to.
func (o *Output) Active() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.active
}

// Activations counts the times the output went from inactive to active:
// the pulses a barrier board has received.
func (o *Output) Activations() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.activations
}

// History returns a copy of the last changes (up to 1000), oldest first.
func (o *Output) History() []Edge {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Edge(nil), o.history...)
}

// Changed returns a channel that is closed at the next change of level.
// Take it before the action whose effect you want to see, then wait.
func (o *Output) Changed() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.changed
}

// WaitActivations waits until the output has been activated at least n
// times in all, or ctx ends.
func (o *Output) WaitActivations(ctx context.Context, n int) error {
	return o.wait(ctx, func() bool { return o.activations >= n })
}

// WaitLevel waits until the output is at the given level, or ctx ends.
func (o *Output) WaitLevel(ctx context.Context, active bool) error {
	return o.wait(ctx, func() bool { return o.active == active })
}

func (o *Output) wait(ctx context.Context, done func() bool) error {
	for {
		o.mu.Lock()
		ok, ch := done(), o.changed
		o.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// OnChange registers fn to be called synchronously after every change of
// level, in order, before Set returns; this is how a Board "sees" its
// OPEN input without missing a short pulse. fn must not call Set on the
// same output.
func (o *Output) OnChange(fn func(active bool)) {
	o.notify.Lock()
	defer o.notify.Unlock()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.listeners = append(o.listeners, fn)
}

// Input is a simulated contact: the simulator sets its raw level and the
// gate reads it as a hardware.Input.
type Input struct {
	db *debounce.Debouncer
}

var _ hardware.Input = (*Input)(nil)

// NewInput returns an input starting at initial. With a debounce time
// d > 0 a level is reported only after staying set that long on clk, as
// on the real hardware (so tests can exercise the gate's debounce path);
// with 0 every change is reported at once.
func NewInput(clk clock.Clock, d time.Duration, initial bool) *Input {
	return &Input{db: debounce.New(clk, d, initial)}
}

// Set sets the contact's raw level.
func (in *Input) Set(active bool) { in.db.Feed(active) }

// Active reports the (debounced) level.
func (in *Input) Active() bool { return in.db.Active() }

// Changes delivers every reported change to one consumer.
func (in *Input) Changes() <-chan bool { return in.db.Changes() }

// Close closes Changes; later Sets are ignored.
func (in *Input) Close() error { return in.db.Close() }

// Scanner is a simulated code reader: the simulator's scan endpoint calls
// Scan, and the gate consumes codes through Serve like from a serial
// scanner, so a simulated scan takes the same path as a real one.
type Scanner struct {
	codes chan scan
}

type scan struct {
	code string
	done chan struct{}
}

var _ hardware.CodeReader = (*Scanner)(nil)

// NewScanner returns a scanner with nothing to read yet.
func NewScanner() *Scanner { return &Scanner{codes: make(chan scan)} }

// Scan hands code to the Serve callback and returns once the callback has
// returned, so that the caller can then look at what the gate decided. It
// fails if ctx ends first (e.g. nothing is serving).
func (s *Scanner) Scan(ctx context.Context, code string) error {
	sc := scan{code: code, done: make(chan struct{})}
	select {
	case s.codes <- sc:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-sc.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Serve calls fn with every scanned code until ctx ends, then returns
// ctx.Err(). Only one Serve should run at a time.
func (s *Scanner) Serve(ctx context.Context, fn func(code string)) error {
	for {
		select {
		case sc := <-s.codes:
			fn(sc.code)
			close(sc.done)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
