// Package barrier is the lane's barrier state machine (docs/gated.md): it
// asks the barrier board to open, follows the vehicle through the loop
// detector and the barrier through its optional status contacts, and tells
// the lane what happened as timed events.
//
// Two wirings are supported, because boards differ:
//
//   - Pulse mode (the default): the gate pulses the board's OPEN input (a dry
//     contact, never the START input, which toggles) and the board closes by
//     itself behind the vehicle, with its own photocell and loop. The gate
//     only watches: the passage through its loop detector, and, when wired,
//     the barrier's opened/closed contacts.
//   - Hold mode: the gate holds the OPEN (or a dedicated hold-open) input
//     active and releases it once the vehicle has passed, or after
//     Config.NoVehicleTimeout when nobody came. While it runs, it never
//     releases while a working loop sees a vehicle, however long that
//     lasts; it reports the vehicle as lingering instead. A loop reported
//     faulted (LoopFaulted: unreadable, or noise) says nothing about the
//     vehicle, and a failing line reads as a fixed level — on an
//     active-low contact, "vehicle present" for ever — so while it is
//     faulted a passage ends only by the no-vehicle timeout, and the hold
//     is released then. When it stops (Serve
//     returns, for a stop or a failure; and a crash or power loss does
//     the same in hardware), the hold is released whatever the loop sees,
//     and a restart does not hold again without a new Open: a released
//     OPEN is the fail-safe direction, and keeping the arm off a vehicle
//     is the board's own safety loop and photocell's job.
//
// Photocells and safety loops stay wired to the barrier board: this package
// is never part of a safety circuit, it only avoids asking for a close at a
// bad moment. Every timing decision goes through an injected clock.Clock so
// that tests move time instead of sleeping.
//
// A Barrier is one goroutine (Serve) that owns all state; Open and State
// talk to it from anywhere.
package barrier

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/hardware"
)

// Mode is how the barrier board is wired.
type Mode string

// The wirings. The values are the words used in gated's configuration.
const (
	// ModePulse pulses OPEN; the board closes by itself.
	ModePulse Mode = "pulse"
	// ModeHold holds OPEN (or the hold-open input) until the vehicle has
	// passed or nobody came.
	ModeHold Mode = "hold"
)

// Defaults and limits for Config. The pulse limits are what barrier boards
// accept on a dry-contact OPEN input: shorter pulses are missed by some
// boards' input filters, longer ones gain nothing and delay the next pulse.
const (
	DefaultPulse            = 500 * time.Millisecond
	MinPulse                = 200 * time.Millisecond
	MaxPulse                = 2000 * time.Millisecond
	DefaultNoVehicleTimeout = 30 * time.Second
	DefaultCloseTimeout     = 10 * time.Second
	DefaultLingerWarn       = 60 * time.Second
)

// Config tunes the machine. A zero field takes its default.
type Config struct {
	// Mode is ModePulse (default) or ModeHold.
	Mode Mode
	// Pulse is the length of the OPEN pulse in pulse mode (default 500 ms,
	// 200 ms to 2 s).
	Pulse time.Duration
	// NoVehicleTimeout ends a passage that no vehicle used: counted from
	// the Open (or from the previous vehicle leaving, when more than one
	// passage was granted). In hold mode it releases the hold.
	NoVehicleTimeout time.Duration
	// CloseTimeout is how long the barrier may take to report closed
	// (ClosedStatus) after the passage ended before it is a fault.
	CloseTimeout time.Duration
	// OpenTimeout is how long the barrier may take to report open after
	// the command before it is a fault; zero means CloseTimeout, as travel
	// takes about as long both ways.
	OpenTimeout time.Duration
	// LingerWarn is how long a vehicle may stay on the loop while the
	// barrier is open for it before a lingering event.
	LingerWarn time.Duration
}

// Validate reports whether c (with defaults for its zero fields) is usable,
// so that gated can refuse a bad configuration at start.
func (c Config) Validate() error {
	_, err := c.normalize()
	return err
}

func (c Config) normalize() (Config, error) {
	if c.Mode == "" {
		c.Mode = ModePulse
	}
	if c.Pulse == 0 {
		c.Pulse = DefaultPulse
	}
	if c.NoVehicleTimeout == 0 {
		c.NoVehicleTimeout = DefaultNoVehicleTimeout
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	if c.OpenTimeout == 0 {
		c.OpenTimeout = c.CloseTimeout
	}
	if c.LingerWarn == 0 {
		c.LingerWarn = DefaultLingerWarn
	}
	switch {
	case c.Mode != ModePulse && c.Mode != ModeHold:
		return c, fmt.Errorf("barrier: mode %q: want %q or %q", c.Mode, ModePulse, ModeHold)
	case c.Pulse < MinPulse || c.Pulse > MaxPulse:
		return c, fmt.Errorf("barrier: pulse %v: want %v to %v", c.Pulse, MinPulse, MaxPulse)
	case c.NoVehicleTimeout < 0:
		return c, fmt.Errorf("barrier: no-vehicle timeout %v is negative", c.NoVehicleTimeout)
	case c.CloseTimeout < 0:
		return c, fmt.Errorf("barrier: close timeout %v is negative", c.CloseTimeout)
	case c.OpenTimeout < 0:
		return c, fmt.Errorf("barrier: open timeout %v is negative", c.OpenTimeout)
	case c.LingerWarn < 0:
		return c, fmt.Errorf("barrier: linger warning %v is negative", c.LingerWarn)
	}
	return c, nil
}

// Pins are the lane's barrier wiring.
type Pins struct {
	// Open drives the relay on the board's OPEN input. Required. Pulsed in
	// pulse mode; held in hold mode when Hold is nil.
	Open hardware.Output
	// Hold is an optional dedicated hold-open output; in hold mode it is
	// held instead of Open. Ignored in pulse mode.
	Hold hardware.Output
	// Loop is the vehicle loop detector. Required: without it the gate
	// cannot know that a vehicle has passed, nor avoid releasing on one.
	Loop hardware.Input
	// OpenedStatus is the optional "barrier fully open" contact.
	OpenedStatus hardware.Input
	// ClosedStatus is the optional "barrier closed" contact. Without it a
	// close is assumed, never observed, and a barrier that stays open
	// cannot be detected.
	ClosedStatus hardware.Input
}

// State is the barrier's state as the gate knows it.
type State string

// The states. StateFault overrides the others while a fault is active.
const (
	StateClosed  State = "closed"
	StateOpening State = "opening"
	StateOpen    State = "open"
	StateClosing State = "closing"
	StateFault   State = "fault"
)

// Fault says what went wrong with the barrier.
type Fault string

// The faults. Both need status contacts to be detected. One fault is
// active at a time; a newer one replaces an older one.
const (
	// FaultNotOpened: no open report within OpenTimeout of the command.
	// Cleared when the barrier reports open: a barrier stuck closed, or an
	// opened contact that never reports, stays a fault through closes.
	FaultNotOpened Fault = "not_opened"
	// FaultNotClosed: no closed report within CloseTimeout of the end of
	// the passage. Cleared when the barrier reports closed.
	FaultNotClosed Fault = "not_closed"
)

// Status is a snapshot for the gate's /v1/status and metrics.
type Status struct {
	// State is the barrier state; StateFault while Fault is set.
	State State
	// Phase is the barrier state without the fault override (closed,
	// opening, open or closing): where the barrier is, fault or not.
	Phase State
	// Fault is the active fault, empty when none.
	Fault Fault
	// Vehicle reports that the loop sees a vehicle.
	Vehicle bool
	// Lingering reports that a vehicle has stayed on the loop longer than
	// Config.LingerWarn while the barrier is open for it.
	Lingering bool
	// Pending counts the granted passages not yet used.
	Pending int
	// LoopFault reports that the loop detector input is faulted (see
	// Barrier.LoopFaulted): Vehicle is then the level last read, which
	// says nothing reliable.
	LoopFault bool
}

// Barrier reports the barrier position as /v1/status shows it: "closed"
// only when the gate believes it closed, "open" otherwise (opening and
// closing included: a barrier not known to be down is not closed).
func (s Status) Barrier() string {
	if s.Phase == StateClosed {
		return "closed"
	}
	return "open"
}

// EventKind names an event; the values are what the lane records.
type EventKind string

// The events.
const (
	// EventOpened: the barrier is open (reported by a status contact, or
	// assumed at the command when no contact can tell).
	EventOpened EventKind = "opened"
	// EventVehicleEnteredLoop: the loop started seeing a vehicle.
	EventVehicleEnteredLoop EventKind = "vehicle_entered_loop"
	// EventVehiclePassed: the loop cleared while a passage was granted;
	// one granted passage is used.
	EventVehiclePassed EventKind = "vehicle_passed"
	// EventVehicleLeftLoop: the loop cleared with no passage granted (a
	// vehicle that drove off, or one that followed after the passage).
	EventVehicleLeftLoop EventKind = "vehicle_left_loop"
	// EventReleased: hold mode let go of the hold output.
	EventReleased EventKind = "released"
	// EventClosed: the barrier is closed (reported, or assumed without a
	// ClosedStatus contact).
	EventClosed EventKind = "closed"
	// EventNoVehicleTimeout: nobody used a granted passage in time.
	EventNoVehicleTimeout EventKind = "no_vehicle_timeout"
	// EventLingering: a vehicle stays on the loop of an open barrier.
	EventLingering EventKind = "lingering"
	// EventFault: the barrier did not report open or closed in time.
	EventFault EventKind = "fault"
	// EventFaultCleared: the faulty barrier reported a good position.
	EventFaultCleared EventKind = "fault_cleared"
)

// Event is one thing that happened at the barrier, for the lane's outbox.
type Event struct {
	// Kind is what happened.
	Kind EventKind
	// At is the clock's time when the machine saw it.
	At time.Time
	// Reason is the Open reason for opened ("external" when the barrier
	// opened without being asked), else empty.
	Reason string
	// Fault is set on fault and fault_cleared.
	Fault Fault
	// Assumed marks opened/closed inferred for lack of a status contact,
	// so that the record never claims an observation it did not make.
	Assumed bool
}

// ReasonExternal is the reason of an opened event the gate did not command
// (an operator's key switch, a board in manual mode).
const ReasonExternal = "external"

// ErrStopped is returned by Open once Serve has returned.
var ErrStopped = errors.New("barrier: stopped")

// Barrier is the state machine. Create it with New, run it with Serve.
type Barrier struct {
	cfg    Config
	pins   Pins
	clk    clock.Clock
	events func(Event)

	reqs    chan openReq
	done    chan struct{}
	started atomic.Bool

	loopFault  atomic.Bool   // as last told by LoopFaulted
	loopFaultC chan struct{} // nudges Serve to read loopFault

	mu     sync.Mutex
	status Status
}

type openReq struct {
	reason string
	reply  chan openReply // buffered: the machine never blocks on a caller
}

type openReply struct {
	at  time.Time
	err error
}

// New checks cfg and pins and returns a Barrier; nothing is driven until
// Serve. events receives every event, in order, from Serve's goroutine: it
// must not block for long (the machine waits for it) and must not call
// Open (that would deadlock). It may be nil.
func New(cfg Config, pins Pins, clk clock.Clock, events func(Event)) (*Barrier, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	if pins.Open == nil {
		return nil, errors.New("barrier: no OPEN output")
	}
	if pins.Loop == nil {
		return nil, errors.New("barrier: no loop detector input")
	}
	if clk == nil {
		return nil, errors.New("barrier: no clock")
	}
	if events == nil {
		events = func(Event) {}
	}
	return &Barrier{
		cfg:        cfg,
		pins:       pins,
		clk:        clk,
		events:     events,
		reqs:       make(chan openReq),
		done:       make(chan struct{}),
		loopFaultC: make(chan struct{}, 1),
		status:     Status{State: StateClosed, Phase: StateClosed},
	}, nil
}

// Config returns the configuration in use, defaults filled in.
func (b *Barrier) Config() Config { return b.cfg }

// Open asks for one passage, for a granted decision; reason (a decision id,
// "remote") goes into the opened event. It returns once the relay has been
// driven, with the clock's time of that command, so that the lane can
// measure scan-to-relay latency.
//
// Repeated Opens accumulate: each is one granted vehicle, and the barrier
// stays open (hold mode) until that many vehicles have left the loop, or
// until NoVehicleTimeout after the last Open or the last vehicle leaving
// with passages still unused. An Open while the relay is already active
// (pulse in progress, hold held) does not drive it again and returns the
// time of the call; an Open after the pulse, while the barrier is still
// open, pulses again, which keeps a board with auto-close from closing in
// front of the next vehicle. An Open during a close reopens.
//
// Open blocks until Serve takes the request (or ctx ends); after Serve has
// returned it fails with ErrStopped. An error from the output is returned
// here and also stops Serve.
func (b *Barrier) Open(ctx context.Context, reason string) (time.Time, error) {
	r := openReq{reason: reason, reply: make(chan openReply, 1)}
	select {
	case b.reqs <- r:
	case <-ctx.Done():
		return time.Time{}, ctx.Err()
	case <-b.done:
		return time.Time{}, ErrStopped
	}
	rep := <-r.reply
	return rep.at, rep.err
}

// LoopFaulted tells the machine whether the loop detector input is faulted
// (its line cannot be read, or it is noise): the vehicle's presence is then
// unknown. While it is, loop changes are not taken as vehicles, and a
// granted passage ends when Config.NoVehicleTimeout has passed since the
// Open (or since the fault, for a passage already waiting on a vehicle):
// the hold is released then even if the loop's last level says a vehicle
// is there, because that level is what a broken line reads, not a car. In
// pulse mode this only ends the passage's bookkeeping (nothing is
// commanded to close). Once the fault clears, the loop's level counts
// again. It never blocks; it may be called before Serve, from any
// goroutine, and the last call wins.
func (b *Barrier) LoopFaulted(faulted bool) {
	b.loopFault.Store(faulted)
	select {
	case b.loopFaultC <- struct{}{}:
	default: // a nudge is pending: Serve reads the latest value anyway
	}
}

// State returns a snapshot of the machine.
func (b *Barrier) State() Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.status
}

// Serve runs the machine until ctx ends (then it returns nil) or an output
// fails. It drives the outputs inactive first thing and again on the way
// out, whatever the state: inactive is the safe state (the board closes by
// its own rules, its safety loop protecting any vehicle), and a restart must
// never leave a relay energised. Serve may be called once.
func (b *Barrier) Serve(ctx context.Context) (err error) {
	if !b.started.CompareAndSwap(false, true) {
		return errors.New("barrier: Serve called twice")
	}
	defer close(b.done)

	m := newMachine(b.cfg, b.pins, b.clk)
	defer func() {
		m.stopTimers()
		if serr := m.safe(); serr != nil && err == nil {
			err = serr
		}
	}()
	if err := m.safe(); err != nil {
		return err
	}
	m.start()
	m.setLoopFault(b.loopFault.Load())
	b.publish(m)

	loopC := b.pins.Loop.Changes()
	var openedC, closedC <-chan bool
	if b.pins.OpenedStatus != nil {
		openedC = b.pins.OpenedStatus.Changes()
	}
	if b.pins.ClosedStatus != nil {
		closedC = b.pins.ClosedStatus.Changes()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case r := <-b.reqs:
			at, err := m.open(r.reason)
			// Reply before the events go out: the caller is waiting to
			// measure its latency, the outbox can wait a moment. The
			// state goes first (it is cheap), so that a caller sees its
			// Open in State as soon as Open returns.
			b.mu.Lock()
			b.status = m.snapshot()
			b.mu.Unlock()
			r.reply <- openReply{at: at, err: err}
		case <-b.loopFaultC:
			m.setLoopFault(b.loopFault.Load())
		case v, ok := <-loopC:
			if !ok {
				return errors.New("barrier: loop detector input closed")
			}
			// A fault reported before this level was read applies to it,
			// even if its nudge is still waiting in the select.
			m.setLoopFault(b.loopFault.Load())
			m.loop(v)
		case v, ok := <-openedC:
			if !ok {
				return errors.New("barrier: opened-status input closed")
			}
			m.openedStatus(v)
		case v, ok := <-closedC:
			if !ok {
				return errors.New("barrier: closed-status input closed")
			}
			m.closedStatus(v)
		case <-m.pulseT.c():
			m.pulseT.fired()
			m.pulseEnd()
		case <-m.noVehicleT.c():
			m.noVehicleT.fired()
			m.noVehicle()
		case <-m.lingerT.c():
			m.lingerT.fired()
			m.linger()
		case <-m.openT.c():
			m.openT.fired()
			m.openTimeout()
		case <-m.closeT.c():
			m.closeT.fired()
			m.closeTimeout()
		}
		b.publish(m)
		if m.err != nil {
			return m.err
		}
	}
}

// publish makes the machine's state visible to State, then hands its new
// events to the callback, outside the lock so that the callback may call
// State.
func (b *Barrier) publish(m *machine) {
	b.mu.Lock()
	b.status = m.snapshot()
	b.mu.Unlock()
	evs := m.events
	m.events = nil
	for _, e := range evs {
		b.events(e)
	}
}
