package sim

import (
	"sync"
	"time"

	"github.com/parkgate/parkgate/clock"
)

// Simulator defaults, in the range of real barrier boards.
const (
	// DefaultTravel is how long the arm takes to go fully open or closed.
	DefaultTravel = 2 * time.Second
	// DefaultAutoClose is how long the board stays open, in pulse mode,
	// when no vehicle comes.
	DefaultAutoClose = 20 * time.Second
)

// BoardState is where the simulated barrier arm is.
type BoardState string

// The arm's states.
const (
	BoardClosed  BoardState = "closed"
	BoardOpening BoardState = "opening"
	BoardOpen    BoardState = "open"
	BoardClosing BoardState = "closing"
)

// BoardConfig configures a simulated barrier board.
type BoardConfig struct {
	// Clock times the travel and the auto-close. Required.
	Clock clock.Clock
	// Hold selects hold mode: the arm stays open while the OPEN output is
	// active and closes once it is released (and no vehicle is under it).
	// Otherwise (pulse mode) an activation opens the arm, which then
	// closes by itself.
	Hold bool
	// Travel is the time to open or close fully; DefaultTravel if zero.
	Travel time.Duration
	// AutoClose is, in pulse mode, how long the arm stays open with no
	// vehicle passing; DefaultAutoClose if zero.
	AutoClose time.Duration
	// Loop, if set, is the gate's loop detector input: Vehicle sets it
	// too, because the gate's loop and the board's safety loop see the
	// same car.
	Loop *Input
}

// Board is a simulated barrier board. It listens to the OPEN output (a
// rising edge opens; while active, the arm stays open), drives the open
// and closed status contacts, and closes by itself:
//
//   - after a vehicle has passed (was on its loop and left it) while the
//     arm was opening or open;
//   - in pulse mode, after AutoClose with no vehicle;
//   - in hold mode, when OPEN is released and no vehicle is under the arm.
//
// It never closes on a vehicle: a vehicle arriving while it closes sends
// the arm back up (a real board's photocell/safety loop). A reversal takes
// a full Travel time; the simulator does not model the arm's position.
type Board struct {
	clk       clock.Clock
	hold      bool
	travel    time.Duration
	autoClose time.Duration
	loop      *Input
	opened    *Input
	closedIn  *Input

	mu      sync.Mutex
	state   BoardState
	openCmd bool // the OPEN output is active
	vehicle bool // a vehicle is on the loop
	passed  bool // a vehicle left the loop since the arm started opening
	timer   clock.Timer
	cancel  chan struct{} // stops the goroutine waiting on timer
	gen     int           // identifies the current timer
	changed chan struct{} // closed and replaced at every change of state
	closed  bool
}

// NewBoard returns a closed board listening to open, the output that
// drives its OPEN input.
func NewBoard(cfg BoardConfig, open *Output) *Board {
	b := &Board{
		clk:       cfg.Clock,
		hold:      cfg.Hold,
		travel:    cfg.Travel,
		autoClose: cfg.AutoClose,
		loop:      cfg.Loop,
		opened:    NewInput(cfg.Clock, 0, false),
		closedIn:  NewInput(cfg.Clock, 0, true),
		state:     BoardClosed,
		changed:   make(chan struct{}),
	}
	if b.travel <= 0 {
		b.travel = DefaultTravel
	}
	if b.autoClose <= 0 {
		b.autoClose = DefaultAutoClose
	}
	b.openCmd = open.Active()
	open.OnChange(b.command)
	if b.openCmd {
		b.command(true)
	}
	return b
}

// OpenedStatus is the "arm fully open" contact.
func (b *Board) OpenedStatus() *Input { return b.opened }

// ClosedStatus is the "arm closed" contact.
func (b *Board) ClosedStatus() *Input { return b.closedIn }

// State reports where the arm is.
func (b *Board) State() BoardState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

// Changed returns a channel that is closed at the arm's next change of
// state; tests take it before moving the clock, then wait on it.
func (b *Board) Changed() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.changed
}

// setState records a change of state. Called with mu held.
func (b *Board) setState(s BoardState) {
	if s != b.state {
		b.state = s
		close(b.changed)
		b.changed = make(chan struct{})
	}
}

// Vehicle puts a vehicle on the loop under the barrier (true) or takes it
// away (false): what POST /v1/sim/vehicle means. It also sets the gate's
// loop input when the board was given one.
func (b *Board) Vehicle(present bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	if b.loop != nil {
		b.loop.Set(present)
	}
	if present == b.vehicle {
		return
	}
	b.vehicle = present
	switch {
	case present && b.state == BoardClosing:
		b.startTravel(BoardOpening) // safety: never close on a vehicle
	case !present && (b.state == BoardOpening || b.state == BoardOpen):
		b.passed = true
		b.settle(false)
	case present && b.state == BoardOpen:
		b.stopTimer() // no auto-close over a vehicle
	}
}

// command follows the OPEN output; Output calls it synchronously.
func (b *Board) command(active bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.openCmd = active
	if active {
		switch b.state {
		case BoardClosed, BoardClosing:
			b.passed = false
			b.startTravel(BoardOpening)
		case BoardOpen:
			b.stopTimer() // held open for now; the auto-close restarts at release
		}
		return
	}
	if b.state == BoardOpen {
		b.settle(false)
	}
}

// settle decides what an open arm does next: stay (held, or a vehicle
// under it), close (vehicle passed, hold released, auto-close expired), or
// wait for the auto-close. Called with mu held.
func (b *Board) settle(expired bool) {
	if b.state != BoardOpen || b.openCmd || b.vehicle {
		return
	}
	if b.passed || b.hold || expired {
		b.startTravel(BoardClosing)
		return
	}
	if b.timer == nil {
		b.arm(b.autoClose)
	}
}

// startTravel moves the arm towards open or closed. The travel timer is
// armed before the contacts report the arm leaving. Called with mu held.
func (b *Board) startTravel(s BoardState) {
	b.setState(s)
	b.stopTimer()
	b.arm(b.travel)
	if s == BoardOpening {
		b.closedIn.Set(false)
	} else {
		b.opened.Set(false)
	}
}

// fire handles the current timer: the end of a travel or the auto-close.
func (b *Board) fire(gen int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || gen != b.gen {
		return
	}
	b.timer, b.cancel = nil, nil
	switch b.state {
	case BoardOpening:
		b.setState(BoardOpen)
		// Arm the auto-close before the contact reports open, so whoever
		// sees the report can rely on it; if the arm turns straight back
		// (the vehicle passed while it opened), it never reports open.
		b.settle(false)
		if b.state == BoardOpen {
			b.opened.Set(true)
		}
	case BoardClosing:
		b.setState(BoardClosed)
		b.passed = false
		b.closedIn.Set(true)
	case BoardOpen:
		b.settle(true)
	}
}

// arm starts the board's single timer. Called with mu held.
func (b *Board) arm(d time.Duration) {
	b.gen++
	gen, t, cancel := b.gen, b.clk.NewTimer(d), make(chan struct{})
	b.timer, b.cancel = t, cancel
	go func() {
		select {
		case <-t.C():
			b.fire(gen)
		case <-cancel:
		}
	}()
}

func (b *Board) stopTimer() {
	if b.timer != nil {
		b.timer.Stop()
		close(b.cancel)
		b.timer, b.cancel = nil, nil
		b.gen++
	}
}

// Close stops the board's timer and closes its status inputs. The OPEN
// output keeps calling it; later calls are ignored.
func (b *Board) Close() error {
	b.mu.Lock()
	b.closed = true
	b.stopTimer()
	b.mu.Unlock()
	b.opened.Close()
	b.closedIn.Close()
	return nil
}
