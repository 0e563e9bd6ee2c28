package sim

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/clock/clocktest"
)

var t0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestOutputRecords(t *testing.T) {
	clk := clocktest.New(t0)
	o := NewOutput(clk)
	changed := o.Changed()
	o.Set(true)
	select {
	case <-changed:
	default:
		t.Fatal("Changed not closed by a change")
	}
	o.Set(true) // no second click
	clk.Advance(500 * time.Millisecond)
	o.Set(false)
	o.Set(false)
	clk.Advance(time.Second)
	o.Set(true)
	if !o.Active() || o.Activations() != 2 {
		t.Fatalf("Active=%v Activations=%d, want true 2", o.Active(), o.Activations())
	}
	want := []Edge{
		{t0, true},
		{t0.Add(500 * time.Millisecond), false},
		{t0.Add(1500 * time.Millisecond), true},
	}
	got := o.History()
	if len(got) != len(want) {
		t.Fatalf("History = %v, want %v", got, want)
	}
	for i := range want {
		if !got[i].At.Equal(want[i].At) || got[i].Active != want[i].Active {
			t.Fatalf("History = %v, want %v", got, want)
		}
	}
}

func TestOutputConcurrentUseAndWait(t *testing.T) {
	o := NewOutput(clocktest.New(t0))
	var seen []bool
	o.OnChange(func(a bool) { seen = append(seen, a) }) // Set serialises listeners
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				o.Set(true)
				o.Set(false)
			}
		}()
	}
	if err := o.WaitActivations(ctxT(t), 100); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := o.WaitLevel(ctxT(t), false); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] == seen[i-1] {
			t.Fatalf("listener saw %v twice in a row at %d: changes out of order", seen[i], i)
		}
	}
	if n := o.Activations(); n < 100 || n > 800 || len(o.History()) != min(len(seen), maxHistory) {
		t.Fatalf("Activations=%d History=%d seen=%d", n, len(o.History()), len(seen))
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := o.WaitLevel(ctx, true); err != context.Canceled {
		t.Fatalf("WaitLevel on a cancelled context = %v", err)
	}
}

func TestInputImmediateAndDebounced(t *testing.T) {
	clk := clocktest.New(t0)
	now := NewInput(clk, 0, false)
	defer now.Close()
	now.Set(true)
	if !now.Active() || !recv(t, now) {
		t.Fatal("immediate input did not report true at once")
	}

	deb := NewInput(clk, 50*time.Millisecond, false)
	defer deb.Close()
	deb.Set(true)
	clk.Advance(49 * time.Millisecond)
	if deb.Active() {
		t.Fatal("debounced input reported before 50 ms")
	}
	clk.Advance(time.Millisecond)
	if !recv(t, deb) {
		t.Fatal("debounced input reported false")
	}
}

func recv(t *testing.T, in *Input) bool {
	t.Helper()
	select {
	case v := <-in.Changes():
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("no change delivered")
		return false
	}
}

// lane is a board with its relay and loop, as gated wires it in sim mode.
type lane struct {
	t     *testing.T
	clk   *clocktest.Clock
	relay *Output
	loop  *Input
	b     *Board
}

const travel, autoClose = 2 * time.Second, 20 * time.Second

func newLane(t *testing.T, hold bool) *lane {
	clk := clocktest.New(t0)
	relay := NewOutput(clk)
	loop := NewInput(clk, 0, false)
	b := NewBoard(BoardConfig{Clock: clk, Hold: hold, Travel: travel, AutoClose: autoClose, Loop: loop}, relay)
	t.Cleanup(func() { b.Close(); loop.Close() })
	return &lane{t, clk, relay, loop, b}
}

func (l *lane) pulse() { l.relay.Set(true); l.relay.Set(false) }

// expect waits for the status contacts to report the arm arriving at s
// (or leaving closed/open for the travel states) and checks the state.
func (l *lane) expect(s BoardState) {
	l.t.Helper()
	switch s {
	case BoardOpening:
		if recv(l.t, l.b.ClosedStatus()) {
			l.t.Fatal("closed contact: true, want false on opening")
		}
	case BoardOpen:
		if !recv(l.t, l.b.OpenedStatus()) {
			l.t.Fatal("open contact: false, want true")
		}
	case BoardClosing:
		if recv(l.t, l.b.OpenedStatus()) {
			l.t.Fatal("open contact: true, want false on closing")
		}
	case BoardClosed:
		if !recv(l.t, l.b.ClosedStatus()) {
			l.t.Fatal("closed contact: false, want true")
		}
	}
	l.still(s)
}

// still checks the state when nothing can have changed it behind the
// test's back.
func (l *lane) still(s BoardState) {
	l.t.Helper()
	if got := l.b.State(); got != s {
		l.t.Fatalf("board %s, want %s", got, s)
	}
	if open, closed := l.b.OpenedStatus().Active(), l.b.ClosedStatus().Active(); open != (s == BoardOpen) || closed != (s == BoardClosed) {
		l.t.Fatalf("contacts open=%v closed=%v in state %s", open, closed, s)
	}
}

func TestBoard(t *testing.T) {
	cases := []struct {
		name string
		hold bool
		run  func(l *lane)
	}{
		{"pulse: vehicle passes, board closes behind it", false, func(l *lane) {
			l.b.Vehicle(true)
			if !l.loop.Active() {
				l.t.Fatal("Vehicle did not set the gate's loop")
			}
			l.pulse()
			l.expect(BoardOpening)
			l.clk.Advance(travel - time.Millisecond)
			l.still(BoardOpening)
			l.clk.Advance(time.Millisecond)
			l.expect(BoardOpen)
			l.clk.Advance(3 * autoClose) // no auto-close over a vehicle
			l.still(BoardOpen)
			l.b.Vehicle(false)
			l.expect(BoardClosing)
			l.clk.Advance(travel)
			l.expect(BoardClosed)
		}},
		{"pulse: nobody comes, auto-close", false, func(l *lane) {
			l.pulse()
			l.expect(BoardOpening)
			l.clk.Advance(travel)
			l.expect(BoardOpen)
			l.clk.Advance(autoClose - time.Millisecond)
			l.still(BoardOpen)
			l.clk.Advance(time.Millisecond)
			l.expect(BoardClosing)
			l.clk.Advance(travel)
			l.expect(BoardClosed)
		}},
		{"pulse: a second pulse while open restarts the auto-close", false, func(l *lane) {
			l.pulse()
			l.expect(BoardOpening)
			l.clk.Advance(travel)
			l.expect(BoardOpen)
			l.clk.Advance(autoClose / 2)
			l.pulse()
			l.clk.Advance(autoClose - time.Millisecond)
			l.still(BoardOpen)
			l.clk.Advance(time.Millisecond)
			l.expect(BoardClosing)
		}},
		{"safety: a vehicle while closing sends the arm back up", false, func(l *lane) {
			l.pulse()
			l.expect(BoardOpening)
			l.clk.Advance(travel)
			l.expect(BoardOpen)
			l.clk.Advance(autoClose)
			l.expect(BoardClosing)
			l.clk.Advance(travel / 2)
			l.b.Vehicle(true)
			l.still(BoardOpening)
			l.clk.Advance(travel)
			l.expect(BoardOpen)
			l.b.Vehicle(false)
			l.expect(BoardClosing)
			l.clk.Advance(travel)
			l.expect(BoardClosed)
		}},
		{"pulse: vehicle through while still opening, closes on arrival", false, func(l *lane) {
			l.pulse()
			l.expect(BoardOpening)
			l.b.Vehicle(true)
			l.b.Vehicle(false)
			changed := l.b.Changed()
			l.clk.Advance(travel)
			<-changed
			// It turns straight back and never reports open.
			l.still(BoardClosing)
			l.clk.Advance(travel)
			l.expect(BoardClosed)
		}},
		{"hold: open while held, closes on release", true, func(l *lane) {
			l.relay.Set(true)
			l.expect(BoardOpening)
			l.clk.Advance(travel)
			l.expect(BoardOpen)
			l.clk.Advance(10 * autoClose) // no auto-close in hold mode
			l.still(BoardOpen)
			l.relay.Set(false)
			l.expect(BoardClosing)
			l.clk.Advance(travel)
			l.expect(BoardClosed)
		}},
		{"hold: released over a vehicle, closes once it has left", true, func(l *lane) {
			l.relay.Set(true)
			l.expect(BoardOpening)
			l.clk.Advance(travel)
			l.expect(BoardOpen)
			l.b.Vehicle(true)
			l.relay.Set(false)
			l.clk.Advance(time.Minute)
			l.still(BoardOpen)
			l.b.Vehicle(false)
			l.expect(BoardClosing)
			l.clk.Advance(travel)
			l.expect(BoardClosed)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLane(t, tc.hold)
			l.still(BoardClosed)
			tc.run(l)
		})
	}
}

func TestScanner(t *testing.T) {
	s := NewScanner()
	ctx, cancel := context.WithCancel(context.Background())
	var got []string
	done := make(chan error)
	go func() { done <- s.Serve(ctx, func(c string) { got = append(got, c) }) }()
	for _, c := range []string{"PG1.a", "PG1.b"} {
		if err := s.Scan(ctxT(t), c); err != nil {
			t.Fatal(err)
		}
	}
	// Scan returned after fn did: got is complete without more syncing.
	if len(got) != 2 || got[0] != "PG1.a" || got[1] != "PG1.b" {
		t.Fatalf("got %q", got)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Serve = %v, want context.Canceled", err)
	}
	short, c2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer c2()
	if err := s.Scan(short, "x"); err == nil {
		t.Fatal("Scan with nobody serving succeeded")
	}
}
