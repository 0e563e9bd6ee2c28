// Package debounce turns the raw, bouncing level of a contact (a loop
// detector's relay, a barrier's limit switch) into a hardware.Input: a
// level is reported only once it has stayed stable for the debounce time,
// so contact bounce and electrical glitches shorter than that never reach
// the lane's state machine.
//
// Noise faster than the debounce time (a loop detector with a failing
// relay, mains pickup on an unscreened cable) would restart the stability
// period forever and freeze the reported level with no sign of trouble.
// WatchNoise turns that into a fault: a line that has not held any level
// for the debounce time during a configured limit is reported noisy (and
// counted) until it holds one again.
//
// All timing goes through an injected clock.Clock, so tests move time by
// hand instead of sleeping. A Debouncer owns one goroutine, which delivers
// changes to the consumer and watches the stability timer; Close stops it.
package debounce

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/hardware"
)

// Default is the debounce time of the lane's inputs unless configured:
// long enough for relay-contact bounce (typically 1-10 ms) and mains
// pickup on long loop-detector cables, short against a car's passage.
const Default = 50 * time.Millisecond

// maxPending bounds the changes queued for a consumer that does not keep
// up (or does not listen at all, e.g. a status contact nobody wired to the
// gate): Active stays truthful whatever the consumer does, and memory stays
// bounded.
const maxPending = 64

// Debouncer is a debounced hardware.Input fed with raw levels.
//
// Feed and Edge may be called from any goroutine; Active and Changes
// behave as hardware.Input says.
type Debouncer struct {
	clk clock.Clock
	dur time.Duration

	active atomic.Bool   // the reported (debounced) level, for Active
	out    chan bool     // Changes
	wake   chan struct{} // nudges run: new timer or new pending change
	done   chan struct{} // closed by Close
	exited chan struct{} // closed when run returns
	once   sync.Once

	mu       sync.Mutex
	raw      bool      // the line's level as last fed
	rawSince time.Time // when raw last moved (or an edge was seen)
	reported bool      // the debounced level
	timer    clock.Timer
	pending  []bool // reported changes not yet taken by the consumer
	closed   bool

	// Noise watch (see WatchNoise).
	noiseLimit    time.Duration
	onNoise       func(noisy bool)
	unstableSince time.Time // start of the current run of changes; zero while calm
	noisy         bool
	noiseCount    uint64
	notes         []bool // noise changes not yet handed to onNoise
}

// New returns a Debouncer whose line starts (and is reported) at initial.
// A level must stay unchanged for d before it is reported; d <= 0 means no
// debouncing: every change is reported at once (the simulator's inputs).
func New(clk clock.Clock, d time.Duration, initial bool) *Debouncer {
	db := &Debouncer{
		clk:      clk,
		dur:      d,
		out:      make(chan bool),
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		exited:   make(chan struct{}),
		raw:      initial,
		reported: initial,
		rawSince: clk.Now(),
	}
	db.active.Store(initial)
	go db.run()
	return db
}

var _ hardware.Input = (*Debouncer)(nil)

// WatchNoise makes the debouncer report a noisy line: one that has gone
// limit without holding any level for the debounce time. fn (if not nil)
// is called with true when the line becomes noisy and with false once it
// has held a level for the debounce time again, in order, from the
// debouncer's goroutine (it must not block). limit <= 0, or a debouncer
// without debouncing, watches nothing.
func (db *Debouncer) WatchNoise(limit time.Duration, fn func(noisy bool)) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.dur <= 0 {
		limit = 0
	}
	db.noiseLimit, db.onNoise = limit, fn
}

// Noisy reports whether the line is noisy now (see WatchNoise).
func (db *Debouncer) Noisy() bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.noisy
}

// NoiseFaults counts the times the line became noisy.
func (db *Debouncer) NoiseFaults() uint64 {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.noiseCount
}

// Active reports the debounced level.
func (db *Debouncer) Active() bool { return db.active.Load() }

// Changes delivers every debounced change, in order, to one consumer. If
// the consumer falls more than 64 changes behind, the oldest undelivered
// changes are dropped in pairs, so the levels it does receive still
// alternate and the last one is always the current level. The channel is
// closed by Close.
func (db *Debouncer) Changes() <-chan bool { return db.out }

// Feed reports the line's raw level, as a poll or a simulator sets it. The
// stability period restarts only when level differs from the last raw
// level: polling a steady line must not delay a pending change.
func (db *Debouncer) Feed(level bool) { db.feed(level, false) }

// Edge reports that the hardware saw the line move and that it now reads
// level. The stability period always restarts, even if level equals the
// last raw level: the line went somewhere in between (a bounce too short
// to be read back), so it has not been stable.
func (db *Debouncer) Edge(level bool) { db.feed(level, true) }

func (db *Debouncer) feed(level, edge bool) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return
	}
	now := db.clk.Now()
	// A pending level that has been stable long enough is committed
	// before the new observation, even if its timer has not been
	// serviced yet: it did satisfy the rule.
	db.settle(now)
	if level == db.raw && !edge {
		return
	}
	if db.unstableSince.IsZero() {
		db.unstableSince = now // the line was calm until this change
	}
	db.raw, db.rawSince = level, now
	db.stopTimer()
	if db.noiseLimit > 0 && !db.noisy && now.Sub(db.unstableSince) >= db.noiseLimit {
		db.noisy = true
		db.noiseCount++
		db.note(true)
	}
	if db.raw == db.reported && db.noiseLimit <= 0 {
		return // back where we were: the excursion was a glitch
	}
	if db.dur <= 0 {
		db.settle(now)
		return
	}
	// Armed even for a glitch when noise is watched: its expiry is when
	// the line has been calm long enough to end a noisy spell.
	db.timer = db.clk.NewTimer(db.dur)
	db.nudge()
}

// note queues a noise change for run to hand to onNoise. Called with mu
// held.
func (db *Debouncer) note(noisy bool) {
	if db.onNoise != nil {
		db.notes = append(db.notes, noisy)
		db.nudge()
	}
}

// settle commits raw if it has been stable for the debounce time. Called
// with mu held.
func (db *Debouncer) settle(now time.Time) {
	if now.Sub(db.rawSince) < db.dur {
		return
	}
	// The line has held raw for the debounce time: it is calm.
	db.unstableSince = time.Time{}
	if db.noisy {
		db.noisy = false
		db.note(false)
	}
	if db.raw == db.reported {
		return
	}
	db.reported = db.raw
	db.active.Store(db.raw)
	if len(db.pending) >= maxPending {
		// Drop two consecutive changes after the head (which run may be
		// offering right now): the levels delivered keep alternating.
		db.pending = append(db.pending[:1], db.pending[3:]...)
	}
	db.pending = append(db.pending, db.raw)
	db.nudge()
}

func (db *Debouncer) stopTimer() {
	if db.timer != nil {
		db.timer.Stop()
		db.timer = nil
	}
}

func (db *Debouncer) nudge() {
	select {
	case db.wake <- struct{}{}:
	default:
	}
}

// run waits for the stability timer and hands pending changes to the
// consumer, so that neither the feeder nor Active ever block on it.
func (db *Debouncer) run() {
	defer close(db.exited)
	defer close(db.out)
	for {
		db.mu.Lock()
		var tc <-chan time.Time
		if db.timer != nil {
			tc = db.timer.C()
		}
		var out chan bool
		var head bool
		if len(db.pending) > 0 {
			out, head = db.out, db.pending[0]
		}
		notes, onNoise := db.notes, db.onNoise
		db.notes = nil
		db.mu.Unlock()
		for _, n := range notes {
			onNoise(n)
		}

		select {
		case <-db.done:
			return
		case <-db.wake:
		case <-tc:
			db.mu.Lock()
			if db.timer != nil && db.timer.C() == tc {
				db.timer = nil // else a stale fire: feed has armed another
			}
			db.settle(db.clk.Now())
			db.mu.Unlock()
		case out <- head:
			db.mu.Lock()
			db.pending = db.pending[1:]
			db.mu.Unlock()
		}
	}
}

// Close stops the debouncer and closes Changes; later feeds are ignored.
// It waits for the debouncer's goroutine to end.
func (db *Debouncer) Close() error {
	db.once.Do(func() {
		db.mu.Lock()
		db.closed = true
		db.stopTimer()
		db.mu.Unlock()
		close(db.done)
	})
	<-db.exited
	return nil
}
