// Package clock is the time source every long-lived part of parkgate takes
// as a dependency, so that tests can move time instead of sleeping.
//
// It is deliberately small (after tailscale's tstime.Clock): the real clock
// wraps package time; clocktest.Clock is a hand-driven fake.
package clock

import (
	"context"
	"time"
)

// Clock tells the time and makes timers.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a timer that fires once after d.
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer that parkgate uses.
type Timer interface {
	// C is the channel the timer fires on.
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it was active.
	Stop() bool
}

// Sleep waits d on clk, or until ctx ends; it reports whether the whole of
// d passed (false: ctx ended first). Retry loops sleep with it, so that
// shutdown never waits for a backoff and tests can move the time.
func Sleep(ctx context.Context, clk Clock, d time.Duration) bool {
	t := clk.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

// Real is the wall clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// NewTimer wraps time.NewTimer.
func (Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }
