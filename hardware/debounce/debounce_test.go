package debounce

import (
	"fmt"
	"testing"
	"time"

	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/clock/clocktest"
)

var t0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

// step is one thing a test does, in order: move the line, move time, or
// check what has been reported.
type step struct {
	feed, edge *bool // raw level fed as a sample / as an edge
	advance    time.Duration
	want       *bool // a change to this level must be delivered
	none       bool  // no change may be pending or deliverable now
}

var (
	hi, lo = true, false
	H      = step{feed: &hi}
	L      = step{feed: &lo}
	EH     = step{edge: &hi}
)

func adv(ms int) step  { return step{advance: time.Duration(ms) * time.Millisecond} }
func want(v bool) step { return step{want: &v} }

var none = step{none: true}

func TestDebounce(t *testing.T) {
	cases := []struct {
		name    string
		initial bool
		dur     time.Duration
		steps   []step
		final   bool
	}{
		{
			name:  "steady change is reported after exactly the debounce time",
			dur:   50 * time.Millisecond,
			steps: []step{H, adv(49), none, adv(1), want(true), L, adv(49), none, adv(1), want(false)},
			final: false,
		},
		{
			name: "contact bounce: reported 50 ms after the last bounce",
			dur:  50 * time.Millisecond,
			steps: []step{
				H, adv(2), L, adv(2), H, adv(1), L, adv(2), H, // settles at t=7
				adv(49), none, adv(1), want(true),
			},
			final: true,
		},
		{
			name:  "glitch shorter than the debounce time is swallowed",
			dur:   50 * time.Millisecond,
			steps: []step{H, adv(30), L, adv(200), none},
			final: false,
		},
		{
			name:    "dropout of an active input is swallowed",
			initial: true,
			dur:     50 * time.Millisecond,
			steps:   []step{L, adv(49), H, adv(200), none},
			final:   true,
		},
		{
			name:  "a pulse just long enough is reported both ways",
			dur:   50 * time.Millisecond,
			steps: []step{H, adv(50), want(true), L, adv(50), want(false), adv(500), none},
			final: false,
		},
		{
			name:  "polling the same level does not restart the period",
			dur:   50 * time.Millisecond,
			steps: []step{H, adv(30), H, adv(20), want(true)},
			final: true,
		},
		{
			name:  "an edge at the same level restarts the period",
			dur:   50 * time.Millisecond,
			steps: []step{H, adv(30), EH, adv(49), none, adv(1), want(true)},
			final: true,
		},
		{
			name:  "an edge with nothing pending changes nothing",
			dur:   50 * time.Millisecond,
			steps: []step{{edge: &lo}, adv(100), none},
			final: false,
		},
		{
			name:  "zero debounce reports at once",
			dur:   0,
			steps: []step{H, want(true), L, want(false), L, none},
			final: false,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := clocktest.New(t0)
			db := New(clk, tc.dur, tc.initial)
			defer db.Close()
			level := tc.initial // the last level reported
			for i, s := range tc.steps {
				switch {
				case s.feed != nil:
					db.Feed(*s.feed)
				case s.edge != nil:
					db.Edge(*s.edge)
				case s.advance != 0:
					clk.Advance(s.advance)
				case s.want != nil:
					select {
					case got := <-db.Changes():
						if got != *s.want {
							t.Fatalf("step %d: change to %v, want %v", i, got, *s.want)
						}
						if db.Active() != got {
							t.Fatalf("step %d: Active() = %v after a change to %v", i, db.Active(), got)
						}
						level = got
					case <-time.After(5 * time.Second):
						t.Fatalf("step %d: no change to %v delivered", i, *s.want)
					}
				case s.none:
					assertQuiet(t, fmt.Sprintf("step %d", i), clk, db, level)
				}
			}
			if db.Active() != tc.final {
				t.Errorf("final Active() = %v, want %v", db.Active(), tc.final)
			}
		})
	}
}

// assertQuiet checks that nothing new was reported (a report changes
// Active synchronously) and that nothing can be without time moving: no
// due timer is waiting to be serviced.
func assertQuiet(t *testing.T, where string, clk *clocktest.Clock, db *Debouncer, level bool) {
	t.Helper()
	if db.Active() != level {
		t.Fatalf("%s: Active() = %v, want %v: an unexpected change", where, db.Active(), level)
	}
	db.mu.Lock()
	armed := db.timer != nil
	db.mu.Unlock()
	if armed && clk.Timers() == 0 {
		t.Fatalf("%s: the stability timer is due but unserviced", where)
	}
	select {
	case v := <-db.Changes():
		t.Fatalf("%s: unexpected change to %v", where, v)
	default:
	}
}

// lazyClock is a clocktest.Clock whose timers never fire: it models a
// stability timer that has not been serviced yet when the next level
// arrives.
type lazyClock struct{ *clocktest.Clock }

type deafTimer struct{}

func (deafTimer) C() <-chan time.Time { return nil }
func (deafTimer) Stop() bool          { return true }

func (lazyClock) NewTimer(time.Duration) clock.Timer { return deafTimer{} }

// A level that stayed stable for the debounce time is reported even if
// the next edge arrives before the timer has been serviced: a valid
// pulse is never lost to scheduling.
func TestStablePulseIsNotLostToALateTimer(t *testing.T) {
	clk := lazyClock{clocktest.New(t0)}
	db := New(clk, 50*time.Millisecond, false)
	defer db.Close()
	db.Feed(true)
	clk.Advance(60 * time.Millisecond)
	db.Feed(false)
	if got := <-db.Changes(); got != true {
		t.Fatalf("first change = %v, want true", got)
	}
	if db.Active() != true {
		t.Fatalf("Active() = false, want true until the low level has been stable")
	}
}

// A consumer that does not keep up loses changes in pairs: what it gets
// still alternates and ends at the current level, and Active never lies.
func TestSlowConsumer(t *testing.T) {
	clk := clocktest.New(t0)
	db := New(clk, 0, false)
	defer db.Close()
	level := false
	for i := 0; i < 201; i++ {
		level = !level
		db.Feed(level)
		if db.Active() != level {
			t.Fatalf("after feed %d: Active() = %v, want %v", i, db.Active(), level)
		}
	}
	db.mu.Lock()
	n := len(db.pending)
	db.mu.Unlock()
	if n > maxPending {
		t.Fatalf("%d changes pending, want at most %d", n, maxPending)
	}
	var got []bool
	for i := 0; i < n; i++ {
		got = append(got, <-db.Changes())
	}
	if !got[0] {
		t.Errorf("first delivered change = false, want the first change (true)")
	}
	for i := 1; i < len(got); i++ {
		if got[i] == got[i-1] {
			t.Fatalf("changes %d and %d are both %v: delivered changes must alternate", i-1, i, got[i])
		}
	}
	if got[len(got)-1] != level {
		t.Errorf("last delivered change = %v, want the current level %v", got[len(got)-1], level)
	}
}

func TestCloseClosesChangesAndIgnoresLaterFeeds(t *testing.T) {
	clk := clocktest.New(t0)
	db := New(clk, 50*time.Millisecond, false)
	db.Feed(true)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if clk.Timers() != 0 {
		t.Errorf("%d timers left armed after Close", clk.Timers())
	}
	if _, ok := <-db.Changes(); ok {
		t.Errorf("Changes delivered a value after Close")
	}
	db.Feed(false) // must not panic or block
	db.Close()     // idempotent
}

// Edges faster than the debounce time freeze the reported level; past the
// noise limit that is a fault, reported once, and cleared once the line
// holds a level again.
func TestNoiseIsAFault(t *testing.T) {
	const ms = time.Millisecond
	clk := clocktest.New(t0)
	db := New(clk, 50*ms, false)
	defer db.Close()
	noise := make(chan bool, 10)
	db.WatchNoise(2*time.Second, func(noisy bool) { noise <- noisy })
	expect := func(want bool) {
		t.Helper()
		select {
		case got := <-noise:
			if got != want {
				t.Fatalf("noise report %v, want %v", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no noise report %v", want)
		}
	}
	level := false
	// 10 ms edges for 1.99 s: not yet a fault, and no level reported.
	for i := 0; i < 199; i++ {
		level = !level
		db.Edge(level)
		clk.Advance(10 * ms)
	}
	if db.Noisy() || db.Active() {
		t.Fatalf("after 1.99 s of noise: noisy %v, active %v", db.Noisy(), db.Active())
	}
	level = !level
	db.Edge(level) // t = 1.99 s... the edge at 2 s of unrest
	clk.Advance(10 * ms)
	level = !level
	db.Edge(level)
	expect(true)
	if !db.Noisy() || db.NoiseFaults() != 1 {
		t.Fatalf("noisy %v, faults %d", db.Noisy(), db.NoiseFaults())
	}
	// More noise: still one fault.
	for i := 0; i < 300; i++ {
		level = !level
		db.Edge(level)
		clk.Advance(10 * ms)
	}
	if db.NoiseFaults() != 1 {
		t.Fatalf("faults %d, want 1", db.NoiseFaults())
	}
	// The line settles low (where the reported level already is): calm
	// again after the debounce time, with no change reported.
	db.Edge(false)
	clk.Advance(49 * ms)
	if !db.Noisy() {
		t.Fatal("calm before the debounce time")
	}
	clk.Advance(ms)
	expect(false)
	if db.Active() {
		t.Fatal("settling at the reported level reported a change")
	}

	// A line that changes slower than the debounce time is never noise.
	for i := 0; i < 100; i++ {
		level = !level
		db.Edge(level)
		clk.Advance(100 * ms)
	}
	select {
	case n := <-noise:
		t.Fatalf("a slow line reported noise %v", n)
	default:
	}
	if db.NoiseFaults() != 1 {
		t.Fatalf("faults %d, want 1", db.NoiseFaults())
	}
}
