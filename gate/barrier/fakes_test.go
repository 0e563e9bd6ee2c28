package barrier

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/clock/clocktest"
)

// wait bounds every wait on the machine's goroutine. It is real time only
// to survive a slow -race run; no test outcome depends on it.
const wait = 5 * time.Second

var t0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

// set is one call to a fakeOut's Set, at the fake time.
type set struct {
	at     time.Time
	active bool
}

// fakeOut records every Set with the fake clock's time.
type fakeOut struct {
	name string
	clk  *clocktest.Clock

	mu         sync.Mutex
	sets       []set
	failActive bool // Set(true) fails, as a broken relay driver would

	ch chan set
}

func newOut(name string, clk *clocktest.Clock) *fakeOut {
	return &fakeOut{name: name, clk: clk, ch: make(chan set, 1000)}
}

func (o *fakeOut) Set(active bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if active && o.failActive {
		return errors.New("relay driver gone")
	}
	s := set{at: o.clk.Now(), active: active}
	o.sets = append(o.sets, s)
	o.ch <- s
	return nil
}

// next returns the next Set, waiting for it.
func (o *fakeOut) next(t *testing.T) set {
	t.Helper()
	select {
	case s := <-o.ch:
		return s
	case <-time.After(wait):
		t.Fatalf("%s: no Set within %v", o.name, wait)
		return set{}
	}
}

// expect checks the next Set.
func (o *fakeOut) expect(t *testing.T, active bool, at time.Time) {
	t.Helper()
	s := o.next(t)
	if s.active != active || !s.at.Equal(at) {
		t.Fatalf("%s: Set(%v) at %v, want Set(%v) at %v", o.name, s.active, s.at.Sub(t0), active, at.Sub(t0))
	}
}

// none checks that no Set is waiting to be read. Only meaningful at a
// point where the machine has nothing left to do.
func (o *fakeOut) none(t *testing.T) {
	t.Helper()
	select {
	case s := <-o.ch:
		t.Fatalf("%s: unexpected Set(%v) at %v", o.name, s.active, s.at.Sub(t0))
	default:
	}
}

func (o *fakeOut) last() set {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.sets[len(o.sets)-1]
}

// fakeIn is an input whose level the test sets.
type fakeIn struct {
	mu      sync.Mutex
	level   bool
	ch      chan bool
	watched bool // Changes was called: Serve has read the level at start
}

func newIn(level bool) *fakeIn { return &fakeIn{level: level, ch: make(chan bool, 100)} }

func (f *fakeIn) Active() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.level
}

func (f *fakeIn) Changes() <-chan bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.watched = true
	return f.ch
}

func (f *fakeIn) isWatched() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.watched
}

func (f *fakeIn) set(v bool) {
	f.mu.Lock()
	f.level = v
	f.mu.Unlock()
	f.ch <- v
}

// rig is a barrier with fake hardware, served until the test ends.
type rig struct {
	t                    *testing.T
	clk                  *clocktest.Clock
	open, hold           *fakeOut
	loop, opened, closed *fakeIn
	b                    *Barrier
	ev                   chan Event
	cancel               context.CancelFunc
	served               chan error
}

type wiring struct {
	hold           bool // a dedicated hold output
	opened, closed bool // status contacts
	closedAtStart  bool
	vehicleAtStart bool
}

func newRig(t *testing.T, cfg Config, w wiring) *rig {
	t.Helper()
	clk := clocktest.New(t0)
	r := &rig{t: t, clk: clk, open: newOut("open", clk), loop: newIn(w.vehicleAtStart), ev: make(chan Event, 1000)}
	pins := Pins{Open: r.open, Loop: r.loop}
	if w.hold {
		r.hold = newOut("hold", clk)
		pins.Hold = r.hold
	}
	if w.opened {
		r.opened = newIn(!w.closedAtStart)
		pins.OpenedStatus = r.opened
	}
	if w.closed {
		r.closed = newIn(w.closedAtStart)
		pins.ClosedStatus = r.closed
	}
	b, err := New(cfg, pins, clk, func(e Event) { r.ev <- e })
	if err != nil {
		t.Fatal(err)
	}
	r.b = b
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.served = make(chan error, 1)
	go func() { r.served <- b.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.served:
		case <-time.After(wait):
			t.Error("Serve did not return after cancel")
		}
	})
	// Serve drives every output inactive before anything else.
	r.open.expect(t, false, t0)
	if r.hold != nil {
		r.hold.expect(t, false, t0)
	}
	// Then it reads the inputs and publishes what it found; wait for that,
	// so that a test's first look at State sees the start.
	// The status before Serve's first look is "closed, no vehicle" too, so
	// for that wiring the status alone proves nothing: Serve subscribes to
	// its inputs only after it has read them and published the start. A
	// test that changed an input before that read lost the change (it
	// was the level read at start), as TestExternalOpening once did in CI.
	watched := func() bool {
		for _, in := range []*fakeIn{r.loop, r.opened, r.closed} {
			if in != nil && !in.isWatched() {
				return false
			}
		}
		return true
	}
	wantOpen := (w.opened || w.closed) && !w.closedAtStart
	r.waitStatus(func(s Status) bool {
		return watched() && s.Vehicle == w.vehicleAtStart && (s.Phase == StateOpen) == wantOpen
	})
	return r
}

// stop cancels Serve and returns its error.
func (r *rig) stop() error {
	r.t.Helper()
	r.cancel()
	select {
	case err := <-r.served:
		r.served <- err // for Cleanup
		return err
	case <-time.After(wait):
		r.t.Fatal("Serve did not return after cancel")
		return nil
	}
}

func (r *rig) openNow(reason string) time.Time {
	r.t.Helper()
	at, err := r.b.Open(context.Background(), reason)
	if err != nil {
		r.t.Fatalf("Open: %v", err)
	}
	return at
}

// expect reads the next events and checks their kinds, in order; it
// returns them for closer checks.
func (r *rig) expect(kinds ...EventKind) []Event {
	r.t.Helper()
	var got []Event
	for _, k := range kinds {
		select {
		case e := <-r.ev:
			got = append(got, e)
			if e.Kind != k {
				r.t.Fatalf("events %v, want %v", eventKinds(got), kinds)
			}
		case <-time.After(wait):
			r.t.Fatalf("events %v, then nothing within %v; want %v", eventKinds(got), wait, kinds)
		}
	}
	return got
}

// quiet checks that no event is waiting. Only meaningful where the
// machine has nothing left to do.
func (r *rig) quiet() {
	r.t.Helper()
	select {
	case e := <-r.ev:
		r.t.Fatalf("unexpected event %s at %v", e.Kind, e.At.Sub(t0))
	default:
	}
}

func (r *rig) state(want State) Status {
	r.t.Helper()
	s := r.b.State()
	if s.State != want {
		r.t.Fatalf("state %s (%+v), want %s", s.State, s, want)
	}
	return s
}

// timers checks how many timers the machine has armed, which tells the
// test what advancing the clock may trigger.
func (r *rig) timers(n int) {
	r.t.Helper()
	if got := r.clk.Timers(); got != n {
		r.t.Fatalf("%d timers armed, want %d", got, n)
	}
}

func eventKinds(es []Event) []EventKind {
	var ks []EventKind
	for _, e := range es {
		ks = append(ks, e.Kind)
	}
	return ks
}
