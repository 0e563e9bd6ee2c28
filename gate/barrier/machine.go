package barrier

import (
	"errors"
	"fmt"
	"time"

	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/hardware"
)

// machine is the state, owned by Serve's goroutine alone: no locks, and
// every transition sees a consistent world.
type machine struct {
	cfg  Config
	pins Pins
	clk  clock.Clock
	// held is the output held in hold mode: the dedicated hold-open
	// output when wired, else OPEN itself (many boards stay open while
	// OPEN is held).
	held hardware.Output

	phase     State // closed, opening, open or closing; never fault
	fault     Fault
	vehicle   bool
	loopFault bool // the loop is faulted: vehicle says nothing (see present)
	lingering bool
	pending   int
	reason    string // of the latest Open, for the opened event

	pulsing bool // OPEN is active for a pulse
	holding bool // the hold output is active

	// Last levels seen on the status contacts (false when not wired).
	statusOpened, statusClosed bool

	pulseT, noVehicleT, lingerT, openT, closeT timer

	events []Event
	err    error // an output failed: Serve stops
}

func newMachine(cfg Config, pins Pins, clk clock.Clock) *machine {
	m := &machine{cfg: cfg, pins: pins, clk: clk, phase: StateClosed}
	m.held = pins.Open
	if pins.Hold != nil {
		m.held = pins.Hold
	}
	for _, t := range []*timer{&m.pulseT, &m.noVehicleT, &m.lingerT, &m.openT, &m.closeT} {
		t.clk = clk
	}
	return m
}

// start reads the inputs' current levels. A barrier that is not known
// closed at start (a restart during a passage, a barrier left open by
// hand) is reported open, as the truth is what /v1/status must say.
func (m *machine) start() {
	m.vehicle = m.pins.Loop.Active()
	if m.pins.OpenedStatus != nil {
		m.statusOpened = m.pins.OpenedStatus.Active()
	}
	if m.pins.ClosedStatus != nil {
		m.statusClosed = m.pins.ClosedStatus.Active()
	}
	if m.notClosed() {
		m.phase = StateOpen
	}
}

// safe drives every output inactive, whatever the software thinks it
// drives: outputs are never read back, so the only way to be sure is to
// set them.
func (m *machine) safe() error {
	var errs []error
	if err := m.pins.Open.Set(false); err != nil {
		errs = append(errs, fmt.Errorf("barrier: OPEN output: %w", err))
	}
	if m.pins.Hold != nil {
		if err := m.pins.Hold.Set(false); err != nil {
			errs = append(errs, fmt.Errorf("barrier: hold output: %w", err))
		}
	}
	m.pulsing, m.holding = false, false
	return errors.Join(errs...)
}

func (m *machine) stopTimers() {
	for _, t := range []*timer{&m.pulseT, &m.noVehicleT, &m.lingerT, &m.openT, &m.closeT} {
		t.stop()
	}
}

func (m *machine) snapshot() Status {
	s := Status{State: m.phase, Phase: m.phase, Fault: m.fault, Vehicle: m.vehicle, Lingering: m.lingering, Pending: m.pending,
		LoopFault: m.loopFault}
	if m.fault != "" {
		s.State = StateFault
	}
	return s
}

func (m *machine) emit(e Event) {
	e.At = m.clk.Now()
	m.events = append(m.events, e)
}

// present reports whether a vehicle is known to be on the loop: the loop
// sees one and is not faulted. A faulted loop's level is what a broken or
// noisy line happens to read, so it never keeps a passage (or a hold) open.
func (m *machine) present() bool { return m.vehicle && !m.loopFault }

// setLoopFault handles Barrier.LoopFaulted.
func (m *machine) setLoopFault(f bool) {
	if f == m.loopFault {
		return
	}
	m.loopFault = f
	if m.pending == 0 {
		return
	}
	if f {
		// Presence unknown: the passage now ends by the no-vehicle
		// timeout, from now unless it was already counting.
		m.lingerT.stop()
		m.lingering = false
		if !m.noVehicleT.active() {
			m.noVehicleT.start(m.cfg.NoVehicleTimeout)
		}
		return
	}
	if m.vehicle {
		// The loop reads again and sees a vehicle: its passage ends when
		// the loop clears, as usual.
		m.noVehicleT.stop()
		m.lingerT.start(m.cfg.LingerWarn)
	}
}

// hasStatus reports whether any contact can tell the barrier's position.
func (m *machine) hasStatus() bool { return m.pins.OpenedStatus != nil || m.pins.ClosedStatus != nil }

// reportsOpen reports whether the contacts confirm an opening: the opened
// contact when wired, else the closed contact having let go.
func (m *machine) reportsOpen() bool {
	if m.pins.OpenedStatus != nil {
		return m.statusOpened
	}
	return m.pins.ClosedStatus != nil && !m.statusClosed
}

// notClosed reports whether the contacts say the barrier is anywhere but
// closed, for openings the gate did not command.
func (m *machine) notClosed() bool {
	return m.pins.OpenedStatus != nil && m.statusOpened || m.pins.ClosedStatus != nil && !m.statusClosed
}

// open handles Open: drive the relay, count the passage, arm the timers.
func (m *machine) open(reason string) (time.Time, error) {
	if err := m.command(); err != nil {
		m.err = err
		return m.clk.Now(), err
	}
	at := m.clk.Now()
	m.pending++
	m.reason = reason
	if m.phase == StateClosed || m.phase == StateClosing {
		m.closeT.stop()
		m.enterOpening()
	}
	if m.present() {
		// The vehicle is already on the loop (an arming loop in front of
		// the barrier, where the driver scans): its passage ends when the
		// loop clears.
		m.noVehicleT.stop()
		if !m.lingerT.active() && !m.lingering {
			m.lingerT.start(m.cfg.LingerWarn)
		}
	} else {
		m.noVehicleT.start(m.cfg.NoVehicleTimeout)
	}
	return at, nil
}

// command drives the relay for an opening, unless it is already active.
func (m *machine) command() error {
	if m.cfg.Mode == ModeHold {
		if m.holding {
			return nil
		}
		if err := m.held.Set(true); err != nil {
			return m.failed("hold", err)
		}
		m.holding = true
		return nil
	}
	if m.pulsing {
		return nil
	}
	if err := m.pins.Open.Set(true); err != nil {
		return m.failed("OPEN", err)
	}
	m.pulsing = true
	m.pulseT.start(m.cfg.Pulse)
	return nil
}

// failed turns an output error into Serve's error, after one attempt at
// the safe state: a relay that cannot be driven is a broken lane, and
// systemd restarting the daemon from a known state beats limping on.
func (m *machine) failed(what string, err error) error {
	err = fmt.Errorf("barrier: %s output: %w", what, err)
	if serr := m.safe(); serr != nil {
		err = errors.Join(err, serr)
	}
	return err
}

func (m *machine) enterOpening() {
	if !m.hasStatus() {
		m.phase = StateOpen
		m.emit(Event{Kind: EventOpened, Reason: m.reason, Assumed: true})
		return
	}
	if m.reportsOpen() {
		m.phase = StateOpen
		m.emit(Event{Kind: EventOpened, Reason: m.reason})
		return
	}
	m.phase = StateOpening
	m.openT.start(m.cfg.OpenTimeout)
}

func (m *machine) pulseEnd() {
	if !m.pulsing {
		return
	}
	m.pulsing = false
	if err := m.pins.Open.Set(false); err != nil {
		m.err = m.failed("OPEN", err)
	}
}

func (m *machine) loop(v bool) {
	if v == m.vehicle {
		return // a level already known (read at start, then queued)
	}
	m.vehicle = v
	if m.loopFault {
		return // a faulted loop's levels are no vehicles (see setLoopFault)
	}
	if v {
		m.emit(Event{Kind: EventVehicleEnteredLoop})
		if m.pending > 0 {
			m.noVehicleT.stop()
			m.lingerT.start(m.cfg.LingerWarn)
		}
		return
	}
	m.lingerT.stop()
	m.lingering = false
	if m.pending == 0 {
		m.emit(Event{Kind: EventVehicleLeftLoop})
		return
	}
	m.pending--
	m.emit(Event{Kind: EventVehiclePassed})
	if m.pending > 0 {
		m.noVehicleT.start(m.cfg.NoVehicleTimeout)
		return
	}
	m.endPassage()
}

func (m *machine) noVehicle() {
	if m.pending == 0 || m.present() {
		return
	}
	m.emit(Event{Kind: EventNoVehicleTimeout})
	m.pending = 0
	m.endPassage()
}

func (m *machine) linger() {
	if !m.present() || m.pending == 0 {
		return
	}
	m.lingering = true
	m.emit(Event{Kind: EventLingering})
}

// endPassage runs when no granted passage is left: release the hold, and
// expect the barrier to close.
func (m *machine) endPassage() {
	m.pending = 0
	m.noVehicleT.stop()
	m.lingerT.stop()
	m.openT.stop()
	if m.holding {
		if m.present() {
			// Unreachable by construction (passages end when the loop
			// clears, the no-vehicle timer only runs without a vehicle),
			// and kept so: releasing over a vehicle a working loop sees
			// is the one thing this machine must never do.
			return
		}
		m.holding = false
		if err := m.held.Set(false); err != nil {
			m.err = m.failed("hold", err)
			return
		}
		m.emit(Event{Kind: EventReleased})
	}
	switch {
	case m.pins.ClosedStatus == nil:
		m.phase = StateClosed
		m.emit(Event{Kind: EventClosed, Assumed: true})
	case m.statusClosed:
		m.becomeClosed()
	default:
		m.phase = StateClosing
		m.closeT.start(m.cfg.CloseTimeout)
	}
}

// becomeClosed is the barrier reporting closed, which clears a not_closed
// fault. A not_opened fault stays: a barrier stuck closed, or an opened
// contact that never reports, is still broken until it reports open.
func (m *machine) becomeClosed() {
	m.closeT.stop()
	m.openT.stop()
	m.phase = StateClosed
	m.clearFault(FaultNotClosed)
	m.emit(Event{Kind: EventClosed})
}

// clearFault clears the fault f if it is the active one.
func (m *machine) clearFault(f Fault) {
	if m.fault != f {
		return
	}
	m.fault = ""
	m.emit(Event{Kind: EventFaultCleared, Fault: f})
}

func (m *machine) setFault(f Fault) {
	if m.fault == f {
		return
	}
	m.fault = f
	m.emit(Event{Kind: EventFault, Fault: f})
}

func (m *machine) openTimeout() {
	if m.phase == StateOpening {
		m.setFault(FaultNotOpened)
	}
}

func (m *machine) closeTimeout() {
	if m.phase == StateClosing {
		m.setFault(FaultNotClosed)
	}
}

func (m *machine) openedStatus(v bool) {
	if v == m.statusOpened {
		return
	}
	m.statusOpened = v
	if v {
		m.sawOpen()
	}
}

func (m *machine) closedStatus(v bool) {
	if v == m.statusClosed {
		return
	}
	m.statusClosed = v
	if v {
		m.sawClosed()
		return
	}
	switch {
	case m.phase == StateClosed:
		m.sawOpen() // left closed without being asked
	case m.pins.OpenedStatus == nil:
		m.sawOpen() // the only sign of an opening this wiring gives
	}
}

func (m *machine) sawOpen() {
	m.clearFault(FaultNotOpened)
	switch m.phase {
	case StateOpening:
		m.openT.stop()
		m.phase = StateOpen
		m.emit(Event{Kind: EventOpened, Reason: m.reason})
	case StateClosed:
		m.phase = StateOpen
		m.emit(Event{Kind: EventOpened, Reason: ReasonExternal})
	}
	// Open already, or closing and reversed by the board's own safety:
	// nothing to do, the close timer keeps running.
}

func (m *machine) sawClosed() {
	switch {
	case m.phase == StateClosed:
		m.clearFault(FaultNotClosed)
	case m.phase == StateClosing || m.pending == 0:
		m.becomeClosed()
	case m.cfg.Mode == ModePulse:
		// The board closed by itself (its own timer or loop) before the
		// gate saw the passage end: the opening is over, used or not.
		m.pending = 0
		m.noVehicleT.stop()
		m.lingerT.stop()
		m.lingering = false
		m.becomeClosed()
	default:
		// Hold mode, still holding: the board reports closed against the
		// hold. Keep holding (the passage is not over and the loop may
		// see a vehicle); the close is noted when the passage ends, and
		// a not_opened fault stays, as the barrier still is not open.
	}
}

// timer is an optional clock.Timer: a nil channel while not armed, so that
// Serve can select on every timer at once.
type timer struct {
	clk clock.Clock
	t   clock.Timer
}

func (t *timer) start(d time.Duration) {
	t.stop()
	t.t = t.clk.NewTimer(d)
}

func (t *timer) stop() {
	if t.t != nil {
		t.t.Stop()
		t.t = nil
	}
}

// fired forgets a timer whose channel has just been received from.
func (t *timer) fired() { t.t = nil }

func (t *timer) active() bool { return t.t != nil }

func (t *timer) c() <-chan time.Time {
	if t.t == nil {
		return nil
	}
	return t.t.C()
}
