package barrier

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/clock/clocktest"
)

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		err  string
	}{
		{"defaults", Config{}, ""},
		{"hold", Config{Mode: ModeHold}, ""},
		{"bad mode", Config{Mode: "toggle"}, "mode"},
		{"shortest pulse", Config{Pulse: 200 * time.Millisecond}, ""},
		{"longest pulse", Config{Pulse: 2 * time.Second}, ""},
		{"pulse too short", Config{Pulse: 199 * time.Millisecond}, "pulse"},
		{"pulse too long", Config{Pulse: 2001 * time.Millisecond}, "pulse"},
		{"negative pulse", Config{Pulse: -time.Second}, "pulse"},
		{"negative no-vehicle", Config{NoVehicleTimeout: -1}, "no-vehicle"},
		{"negative close", Config{CloseTimeout: -1}, "close"},
		{"negative open", Config{OpenTimeout: -1}, "open"},
		{"negative linger", Config{LingerWarn: -1}, "linger"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tc.err)
			}
		})
	}

	clk := clocktest.New(t0)
	b, err := New(Config{CloseTimeout: 7 * time.Second}, Pins{Open: newOut("open", clk), Loop: newIn(false)}, clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Mode: ModePulse, Pulse: 500 * time.Millisecond, NoVehicleTimeout: 30 * time.Second,
		CloseTimeout: 7 * time.Second, OpenTimeout: 7 * time.Second, LingerWarn: time.Minute}
	if b.Config() != want {
		t.Fatalf("Config() = %+v, want %+v", b.Config(), want)
	}
	if _, err := New(Config{}, Pins{Loop: newIn(false)}, clk, nil); err == nil {
		t.Error("New without an OPEN output succeeded")
	}
	if _, err := New(Config{}, Pins{Open: newOut("open", clk)}, clk, nil); err == nil {
		t.Error("New without a loop detector succeeded")
	}
	if _, err := New(Config{Pulse: time.Hour}, Pins{Open: newOut("open", clk), Loop: newIn(false)}, clk, nil); err == nil {
		t.Error("New with a one-hour pulse succeeded")
	}
}

func TestPulseLengthIsExact(t *testing.T) {
	for _, pulse := range []time.Duration{0, 200 * time.Millisecond, 1234 * time.Millisecond, 2 * time.Second} {
		t.Run(pulse.String(), func(t *testing.T) {
			r := newRig(t, Config{Pulse: pulse}, wiring{})
			want := pulse
			if want == 0 {
				want = DefaultPulse
			}
			r.clk.Advance(time.Second)
			start := t0.Add(time.Second)
			at := r.openNow("d1")
			if !at.Equal(start) {
				t.Fatalf("Open returned %v, want the command's time %v", at.Sub(t0), start.Sub(t0))
			}
			r.open.expect(t, true, start)
			e := r.expect(EventOpened)[0]
			if e.Reason != "d1" || !e.Assumed || !e.At.Equal(start) {
				t.Fatalf("opened event %+v", e)
			}
			r.state(StateOpen)

			r.clk.Advance(want - time.Nanosecond)
			r.open.none(t) // no timer was due, so the machine has nothing to do
			r.clk.Advance(time.Nanosecond)
			r.open.expect(t, false, start.Add(want))
			r.quiet()
		})
	}
}

func TestPulsePassageWithStatusContacts(t *testing.T) {
	r := newRig(t, Config{}, wiring{opened: true, closed: true, closedAtStart: true})
	r.state(StateClosed)
	r.openNow("d1")
	r.open.expect(t, true, t0)
	if s := r.state(StateOpening); s.Pending != 1 || s.Barrier() != "open" {
		t.Fatalf("status %+v", s)
	}

	r.clk.Advance(300 * time.Millisecond)
	r.closed.set(false) // leaves the closed position: not yet open
	r.clk.Advance(200 * time.Millisecond)
	// The pulse ends on time, whatever the barrier does meanwhile.
	r.open.expect(t, false, t0.Add(500*time.Millisecond))
	r.state(StateOpening)
	r.clk.Advance(700 * time.Millisecond)
	r.opened.set(true)
	e := r.expect(EventOpened)[0]
	if e.Assumed || e.Reason != "d1" || !e.At.Equal(t0.Add(1200*time.Millisecond)) {
		t.Fatalf("opened event %+v", e)
	}
	r.state(StateOpen)

	r.clk.Advance(2 * time.Second)
	r.loop.set(true)
	r.expect(EventVehicleEnteredLoop)
	if s := r.state(StateOpen); !s.Vehicle {
		t.Fatalf("status %+v, want a vehicle", s)
	}
	r.clk.Advance(3 * time.Second)
	r.loop.set(false)
	// Pulse mode: nothing to release, the board closes by itself.
	r.expect(EventVehiclePassed)
	r.state(StateClosing)

	r.clk.Advance(time.Second)
	r.opened.set(false)
	r.clk.Advance(3 * time.Second)
	r.closed.set(true)
	e = r.expect(EventClosed)[0]
	if e.Assumed || !e.At.Equal(t0.Add(10200*time.Millisecond)) {
		t.Fatalf("closed event %+v", e)
	}
	if s := r.state(StateClosed); s.Pending != 0 || s.Vehicle || s.Barrier() != "closed" {
		t.Fatalf("status %+v", s)
	}
	r.timers(0)
	r.open.none(t)
	r.quiet()
}

func TestPulseBoardClosesByItselfBeforeLoopClears(t *testing.T) {
	// The board's own loop sits under the barrier, the gate's in front:
	// the board may report closed while the gate's loop still sees the
	// tail of the vehicle. The opening is over.
	r := newRig(t, Config{}, wiring{closed: true, closedAtStart: true})
	r.loop.set(true)
	r.expect(EventVehicleEnteredLoop)
	r.openNow("d1")
	r.closed.set(false)
	r.expect(EventOpened)
	r.clk.Advance(4 * time.Second)
	r.closed.set(true)
	r.expect(EventClosed)
	if s := r.state(StateClosed); s.Pending != 0 || !s.Vehicle {
		t.Fatalf("status %+v", s)
	}
	r.loop.set(false)
	r.expect(EventVehicleLeftLoop)
}

func TestHoldReleasedAfterVehiclePassed(t *testing.T) {
	r := newRig(t, Config{Mode: ModeHold}, wiring{hold: true})
	at := r.openNow("d1")
	if !at.Equal(t0) {
		t.Fatalf("Open returned %v", at)
	}
	r.hold.expect(t, true, t0)
	r.expect(EventOpened)
	r.timers(1) // the no-vehicle timer; no pulse in hold mode

	r.clk.Advance(5 * time.Second)
	r.loop.set(true)
	r.expect(EventVehicleEnteredLoop)
	r.clk.Advance(3 * time.Second)
	r.loop.set(false)
	es := r.expect(EventVehiclePassed, EventReleased, EventClosed)
	if !es[1].At.Equal(t0.Add(8*time.Second)) || !es[2].Assumed {
		t.Fatalf("events %+v", es)
	}
	r.hold.expect(t, false, t0.Add(8*time.Second))
	r.state(StateClosed)
	r.timers(0)
	r.open.none(t) // a dedicated hold output: OPEN is never touched
	r.hold.none(t)
	r.quiet()
}

func TestHoldNeverReleasesOnALingeringVehicle(t *testing.T) {
	// No dedicated hold output: OPEN itself is held.
	r := newRig(t, Config{Mode: ModeHold, NoVehicleTimeout: 30 * time.Second, LingerWarn: time.Minute}, wiring{})
	r.openNow("d1")
	r.open.expect(t, true, t0)
	r.expect(EventOpened)

	r.clk.Advance(20 * time.Second)
	r.loop.set(true)
	r.expect(EventVehicleEnteredLoop)
	r.timers(1) // the linger warning only: the no-vehicle timer is gone

	r.clk.Advance(time.Minute)
	e := r.expect(EventLingering)[0]
	if !e.At.Equal(t0.Add(80 * time.Second)) {
		t.Fatalf("lingering at %v", e.At.Sub(t0))
	}
	if s := r.state(StateOpen); !s.Lingering || !s.Vehicle || s.Pending != 1 {
		t.Fatalf("status %+v", s)
	}
	// Nothing is armed any more, so no amount of time can release.
	r.timers(0)
	for range 20 {
		r.clk.Advance(time.Minute)
		r.open.none(t)
		r.quiet()
		r.state(StateOpen)
	}

	leave := r.clk.Now()
	r.loop.set(false)
	r.expect(EventVehiclePassed, EventReleased, EventClosed)
	r.open.expect(t, false, leave)
	if s := r.state(StateClosed); s.Lingering || s.Vehicle {
		t.Fatalf("status %+v", s)
	}
}

func TestHoldReleasedWhenNoVehicleComes(t *testing.T) {
	r := newRig(t, Config{Mode: ModeHold, NoVehicleTimeout: 30 * time.Second}, wiring{hold: true})
	r.openNow("d1")
	r.hold.expect(t, true, t0)
	r.expect(EventOpened)

	r.clk.Advance(30*time.Second - time.Millisecond)
	r.hold.none(t)
	r.quiet()
	r.clk.Advance(time.Millisecond)
	es := r.expect(EventNoVehicleTimeout, EventReleased, EventClosed)
	for _, e := range es {
		if !e.At.Equal(t0.Add(30 * time.Second)) {
			t.Fatalf("%s at %v", e.Kind, e.At.Sub(t0))
		}
	}
	r.hold.expect(t, false, t0.Add(30*time.Second))
	if s := r.state(StateClosed); s.Pending != 0 {
		t.Fatalf("status %+v", s)
	}
}

func TestHoldVehicleAlreadyOnTheLoop(t *testing.T) {
	// An arming loop in front of the barrier: the driver is on it when
	// scanning, so the passage ends when the loop clears, and no
	// no-vehicle timer runs meanwhile.
	r := newRig(t, Config{Mode: ModeHold}, wiring{vehicleAtStart: true})
	if s := r.state(StateClosed); !s.Vehicle {
		t.Fatalf("status %+v", s)
	}
	r.clk.Advance(10 * time.Second)
	r.openNow("d1")
	r.open.expect(t, true, t0.Add(10*time.Second))
	r.expect(EventOpened)
	r.timers(1) // the linger warning
	r.clk.Advance(4 * time.Second)
	r.loop.set(false)
	r.expect(EventVehiclePassed, EventReleased, EventClosed)
	r.open.expect(t, false, t0.Add(14*time.Second))
}

func TestHoldFaultWhenBarrierDoesNotClose(t *testing.T) {
	r := newRig(t, Config{Mode: ModeHold, CloseTimeout: 10 * time.Second}, wiring{hold: true, opened: true, closed: true, closedAtStart: true})
	r.openNow("d1")
	r.hold.expect(t, true, t0)
	r.state(StateOpening)
	r.closed.set(false)
	r.clk.Advance(3 * time.Second)
	r.opened.set(true)
	r.expect(EventOpened)
	r.loop.set(true)
	r.expect(EventVehicleEnteredLoop)
	r.clk.Advance(2 * time.Second)
	r.loop.set(false)
	r.expect(EventVehiclePassed, EventReleased)
	r.hold.expect(t, false, t0.Add(5*time.Second))
	r.state(StateClosing)

	r.clk.Advance(10*time.Second - time.Millisecond)
	r.quiet()
	r.clk.Advance(time.Millisecond)
	e := r.expect(EventFault)[0]
	if e.Fault != FaultNotClosed || !e.At.Equal(t0.Add(15*time.Second)) {
		t.Fatalf("fault event %+v", e)
	}
	if s := r.state(StateFault); s.Fault != FaultNotClosed || s.Phase != StateClosing || s.Barrier() != "open" {
		t.Fatalf("status %+v", s)
	}

	// Much later, someone frees the arm and it closes: recovered.
	r.clk.Advance(10 * time.Minute)
	r.opened.set(false)
	r.closed.set(true)
	es := r.expect(EventFaultCleared, EventClosed)
	if es[0].Fault != FaultNotClosed {
		t.Fatalf("fault_cleared %+v", es[0])
	}
	if s := r.state(StateClosed); s.Fault != "" || s.Barrier() != "closed" {
		t.Fatalf("status %+v", s)
	}
	r.timers(0)
}

func TestPulseFaultWhenBarrierDoesNotOpen(t *testing.T) {
	// Only a closed contact: leaving it is the sign of an opening.
	r := newRig(t, Config{CloseTimeout: 8 * time.Second}, wiring{closed: true, closedAtStart: true})
	r.openNow("d1")
	r.open.expect(t, true, t0)
	r.clk.Advance(DefaultPulse)
	r.open.expect(t, false, t0.Add(DefaultPulse))
	r.clk.Advance(8*time.Second - DefaultPulse) // OpenTimeout defaults to CloseTimeout
	if e := r.expect(EventFault)[0]; e.Fault != FaultNotOpened {
		t.Fatalf("fault event %+v", e)
	}
	r.state(StateFault)

	// A second decision pulses again, and this time the barrier moves.
	r.openNow("d2")
	r.open.expect(t, true, t0.Add(8*time.Second))
	r.closed.set(false)
	es := r.expect(EventFaultCleared, EventOpened)
	if es[1].Reason != "d2" {
		t.Fatalf("opened %+v", es[1])
	}
	if s := r.state(StateOpen); s.Pending != 2 {
		t.Fatalf("status %+v", s)
	}
}

func TestNotOpenedFaultOutlivesTheClose(t *testing.T) {
	// A barrier that never moves stays a fault when nobody came: its being
	// closed is no news.
	r := newRig(t, Config{NoVehicleTimeout: 20 * time.Second, CloseTimeout: 5 * time.Second}, wiring{closed: true, closedAtStart: true})
	r.openNow("d1")
	r.clk.Advance(5 * time.Second)
	r.expect(EventFault)
	r.clk.Advance(15 * time.Second)
	r.expect(EventNoVehicleTimeout, EventClosed)
	if s := r.state(StateFault); s.Phase != StateClosed || s.Barrier() != "closed" {
		t.Fatalf("status %+v", s)
	}
}

func TestRepeatedOpenHold(t *testing.T) {
	r := newRig(t, Config{Mode: ModeHold, NoVehicleTimeout: 30 * time.Second}, wiring{hold: true})
	r.openNow("d1")
	r.hold.expect(t, true, t0)
	r.expect(EventOpened)
	r.clk.Advance(2 * time.Second)
	if at := r.openNow("d2"); !at.Equal(t0.Add(2 * time.Second)) {
		t.Fatalf("merged Open returned %v", at.Sub(t0))
	}
	r.hold.none(t) // already held: no second command, no second opened
	if s := r.state(StateOpen); s.Pending != 2 {
		t.Fatalf("status %+v", s)
	}

	r.loop.set(true)
	r.expect(EventVehicleEnteredLoop)
	r.clk.Advance(3 * time.Second)
	r.loop.set(false)
	r.expect(EventVehiclePassed) // one of two: still held
	if s := r.state(StateOpen); s.Pending != 1 {
		t.Fatalf("status %+v", s)
	}
	r.hold.none(t)

	// The second vehicle has NoVehicleTimeout from the first one leaving.
	r.clk.Advance(30*time.Second - time.Millisecond)
	r.quiet()
	r.clk.Advance(time.Millisecond)
	r.expect(EventNoVehicleTimeout, EventReleased, EventClosed)
	r.hold.expect(t, false, t0.Add(35*time.Second))
}

func TestRepeatedOpenHoldTwoVehicles(t *testing.T) {
	r := newRig(t, Config{Mode: ModeHold}, wiring{})
	r.openNow("d1")
	r.openNow("d2")
	r.open.expect(t, true, t0)
	r.expect(EventOpened)
	for i := range 2 {
		r.loop.set(true)
		r.expect(EventVehicleEnteredLoop)
		r.clk.Advance(time.Second)
		r.loop.set(false)
		if i == 0 {
			r.expect(EventVehiclePassed)
		} else {
			r.expect(EventVehiclePassed, EventReleased, EventClosed)
		}
	}
	r.open.expect(t, false, t0.Add(2*time.Second))
}

func TestRepeatedOpenPulse(t *testing.T) {
	r := newRig(t, Config{}, wiring{})
	r.openNow("d1")
	r.open.expect(t, true, t0)
	r.expect(EventOpened)

	// During the pulse: merged, no second pulse.
	r.clk.Advance(100 * time.Millisecond)
	if at := r.openNow("d2"); !at.Equal(t0.Add(100 * time.Millisecond)) {
		t.Fatalf("merged Open returned %v", at.Sub(t0))
	}
	r.open.none(t)
	r.clk.Advance(400 * time.Millisecond)
	r.open.expect(t, false, t0.Add(500*time.Millisecond))

	// After the pulse, barrier still open: pulse again.
	r.clk.Advance(500 * time.Millisecond)
	r.openNow("d3")
	r.open.expect(t, true, t0.Add(time.Second))
	r.clk.Advance(DefaultPulse)
	r.open.expect(t, false, t0.Add(1500*time.Millisecond))
	r.quiet() // still the same opening: no second opened event
	if s := r.state(StateOpen); s.Pending != 3 {
		t.Fatalf("status %+v", s)
	}
}

func TestOpenWhileClosingReopens(t *testing.T) {
	r := newRig(t, Config{Mode: ModeHold}, wiring{closed: true, closedAtStart: true})
	r.openNow("d1")
	r.closed.set(false)
	r.expect(EventOpened)
	r.loop.set(true)
	r.loop.set(false)
	r.expect(EventVehicleEnteredLoop, EventVehiclePassed, EventReleased)
	r.state(StateClosing)
	r.openNow("d2")
	// Not closed yet, so open again at once.
	if e := r.expect(EventOpened)[0]; e.Reason != "d2" {
		t.Fatalf("opened %+v", e)
	}
	r.state(StateOpen)
	r.timers(1) // no-vehicle; the close timer is gone
}

// The hold rule when gated stops (a stop, a failing service, a crash on
// a Raspberry Pi kernel that keeps the line, power loss): the hold is
// released even while the loop sees a vehicle, and a restart does not
// hold again. A released OPEN is the fail-safe direction; the board's own
// safety loop and photocell keep the arm off the vehicle. Holding across a
// stop could not be kept anyway: a mainline kernel releases the line, and
// power loss releases the relay.
func TestStopReleasesTheHoldEvenOverAVehicle(t *testing.T) {
	r := newRig(t, Config{Mode: ModeHold}, wiring{hold: true})
	r.openNow("d1")
	r.hold.expect(t, true, t0)
	r.loop.set(true)
	r.expect(EventOpened, EventVehicleEnteredLoop)
	r.clk.Advance(time.Second)
	if err := r.stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if s := r.hold.last(); s.active {
		t.Fatal("hold output left active after Serve returned, with a vehicle on the loop")
	}
	if s := r.open.last(); s.active {
		t.Fatal("OPEN output left active after Serve returned")
	}
	r.timers(0)
	if _, err := r.b.Open(context.Background(), "late"); !errors.Is(err, ErrStopped) {
		t.Fatalf("Open after Serve: %v", err)
	}

	// The restart, the vehicle still on the loop: nothing is held again
	// until a new decision asks.
	r2 := newRig(t, Config{Mode: ModeHold}, wiring{hold: true, vehicleAtStart: true})
	r2.clk.Advance(time.Minute)
	if s := r2.state(StateClosed); !s.Vehicle {
		t.Fatalf("status after restart %+v", s)
	}
	r2.hold.none(t)
	r2.open.none(t)
}

func TestCancelLeavesOutputsInactive(t *testing.T) {
	t.Run("mid-pulse", func(t *testing.T) {
		r := newRig(t, Config{}, wiring{})
		r.openNow("d1")
		r.open.expect(t, true, t0)
		r.clk.Advance(100 * time.Millisecond)
		if err := r.stop(); err != nil {
			t.Fatalf("Serve: %v", err)
		}
		r.open.expect(t, false, t0.Add(100*time.Millisecond))
	})
}

func TestOpenWithoutServe(t *testing.T) {
	clk := clocktest.New(t0)
	b, err := New(Config{}, Pins{Open: newOut("open", clk), Loop: newIn(false)}, clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := b.Open(ctx, "d1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Open without Serve: %v", err)
	}
}

func TestServeTwice(t *testing.T) {
	r := newRig(t, Config{}, wiring{})
	if err := r.b.Serve(context.Background()); err == nil {
		t.Fatal("second Serve succeeded")
	}
}

func TestOutputFailureStopsServe(t *testing.T) {
	r := newRig(t, Config{}, wiring{})
	r.open.mu.Lock()
	r.open.failActive = true
	r.open.mu.Unlock()
	if _, err := r.b.Open(context.Background(), "d1"); err == nil {
		t.Fatal("Open succeeded on a broken relay")
	}
	select {
	case err := <-r.served:
		r.served <- err
		if err == nil || !strings.Contains(err.Error(), "relay driver gone") {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Serve kept running on a broken relay")
	}
	if r.open.last().active {
		t.Fatal("OPEN left active")
	}
}

func TestInputClosedStopsServe(t *testing.T) {
	r := newRig(t, Config{}, wiring{})
	close(r.loop.ch)
	select {
	case err := <-r.served:
		r.served <- err
		if err == nil {
			t.Fatal("Serve returned nil on a closed loop input")
		}
	case <-time.After(wait):
		t.Fatal("Serve kept running without its loop detector")
	}
}

func TestExternalOpening(t *testing.T) {
	r := newRig(t, Config{}, wiring{closed: true, closedAtStart: true})
	r.clk.Advance(time.Minute)
	r.closed.set(false) // an operator's key switch
	if e := r.expect(EventOpened)[0]; e.Reason != ReasonExternal {
		t.Fatalf("opened %+v", e)
	}
	if s := r.state(StateOpen); s.Barrier() != "open" || s.Pending != 0 {
		t.Fatalf("status %+v", s)
	}
	r.timers(0) // not commanded: no fault for staying open
	r.loop.set(true)
	r.loop.set(false)
	r.expect(EventVehicleEnteredLoop, EventVehicleLeftLoop)
	r.closed.set(true)
	r.expect(EventClosed)
	r.state(StateClosed)
}

func TestOpenAtStartIsReported(t *testing.T) {
	r := newRig(t, Config{}, wiring{opened: true, closed: true, closedAtStart: false})
	if s := r.state(StateOpen); s.Barrier() != "open" {
		t.Fatalf("status %+v", s)
	}
	r.opened.set(false)
	r.closed.set(true)
	r.expect(EventClosed)
}

func TestEventsMayReadState(t *testing.T) {
	// The callback runs outside the machine's lock and after the snapshot:
	// what it reads agrees with the event.
	clk := clocktest.New(t0)
	got := make(chan Status, 10)
	var b *Barrier
	b, err := New(Config{Mode: ModeHold}, Pins{Open: newOut("open", clk), Loop: newIn(false)}, clk,
		func(e Event) {
			if e.Kind == EventOpened {
				got <- b.State()
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- b.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	if _, err := b.Open(ctx, "d1"); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s.State != StateOpen || s.Pending != 1 {
			t.Fatalf("status in callback %+v", s)
		}
	case <-time.After(wait):
		t.Fatal("no opened event")
	}
}

// waitLoopFault waits until the machine has taken a LoopFaulted call.
func (r *rig) waitLoopFault(want bool) {
	r.t.Helper()
	r.waitStatus(func(s Status) bool { return s.LoopFault == want })
}

// waitStatus waits until the machine's status satisfies ok.
func (r *rig) waitStatus(ok func(Status) bool) {
	r.t.Helper()
	deadline := time.Now().Add(wait)
	for !ok(r.b.State()) {
		if time.Now().After(deadline) {
			r.t.Fatalf("status %+v never came", r.b.State())
		}
		time.Sleep(time.Millisecond)
	}
}

// A loop input whose line fails reads a fixed level: on an active-low
// contact, "vehicle present" for ever. Once the loop is reported faulted,
// hold mode stops waiting for that "vehicle": the hold is released when
// the no-vehicle timeout has passed since the fault, instead of never.
func TestHoldReleasedWhenAFaultedLoopIsStuckAtPresent(t *testing.T) {
	r := newRig(t, Config{Mode: ModeHold, NoVehicleTimeout: 30 * time.Second, LingerWarn: time.Minute}, wiring{hold: true})
	r.openNow("d1")
	r.hold.expect(t, true, t0)
	r.expect(EventOpened)
	r.clk.Advance(5 * time.Second)
	r.loop.set(true) // the line fails and reads "present" from now on
	r.expect(EventVehicleEnteredLoop)
	r.timers(1) // the linger warning: a working loop would hold for ever

	r.clk.Advance(5 * time.Second)
	faultAt := r.clk.Now()
	r.b.LoopFaulted(true)
	r.waitLoopFault(true)
	r.timers(1) // the no-vehicle timer, from the fault
	r.clk.Advance(30*time.Second - time.Millisecond)
	r.hold.none(t)
	r.quiet()
	r.clk.Advance(time.Millisecond)
	r.expect(EventNoVehicleTimeout, EventReleased, EventClosed)
	r.hold.expect(t, false, faultAt.Add(30*time.Second))
	if s := r.state(StateClosed); s.Pending != 0 || !s.LoopFault {
		t.Fatalf("status %+v", s)
	}
	r.timers(0)

	// A decision while the loop is still faulted holds for the timeout
	// from the Open, whatever the loop reads.
	open2 := r.clk.Now()
	r.openNow("d2")
	r.hold.expect(t, true, open2)
	r.expect(EventOpened)
	r.clk.Advance(30 * time.Second)
	r.expect(EventNoVehicleTimeout, EventReleased, EventClosed)
	r.hold.expect(t, false, open2.Add(30*time.Second))
}

// A loop that reads again after a fault counts again: a vehicle it sees
// keeps the hold, however long, as with a loop that never failed.
func TestHoldFaultedLoopThatRecoversWithAVehicleKeepsHolding(t *testing.T) {
	r := newRig(t, Config{Mode: ModeHold, NoVehicleTimeout: 30 * time.Second, LingerWarn: time.Minute}, wiring{hold: true})
	r.b.LoopFaulted(true) // before the Open: presence unknown from the start
	r.waitLoopFault(true)
	r.openNow("d1")
	r.hold.expect(t, true, t0)
	r.expect(EventOpened)
	r.loop.set(true) // not a vehicle while faulted: no event
	r.waitStatus(func(s Status) bool { return s.Vehicle })
	r.quiet()
	r.clk.Advance(10 * time.Second)
	r.b.LoopFaulted(false)
	r.waitLoopFault(false)
	r.timers(1) // the linger warning: the no-vehicle timer is gone
	r.clk.Advance(time.Minute)
	r.expect(EventLingering)
	for range 5 {
		r.clk.Advance(time.Minute)
		r.hold.none(t)
	}
	leave := r.clk.Now()
	r.loop.set(false)
	r.expect(EventVehiclePassed, EventReleased, EventClosed)
	r.hold.expect(t, false, leave)
}
