package clock_test

import (
	"context"
	"testing"
	"time"

	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/clock/clocktest"
)

// Sleep returns true once the clock has moved past d, and false as soon as
// its context ends, leaving no timer behind either way.
func TestSleep(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	done := make(chan bool, 1)
	go func() { done <- clock.Sleep(context.Background(), clk, time.Minute) }()
	waitTimers(t, clk, 1)
	clk.Advance(59 * time.Second)
	select {
	case <-done:
		t.Fatal("Sleep returned before d passed")
	default:
	}
	clk.Advance(time.Second)
	if !<-done {
		t.Fatal("Sleep reported its context ended")
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- clock.Sleep(ctx, clk, time.Hour) }()
	waitTimers(t, clk, 1)
	cancel()
	if <-done {
		t.Fatal("Sleep reported the whole hour passed after its context ended")
	}
	waitTimers(t, clk, 0)
}

func waitTimers(t *testing.T, clk *clocktest.Clock, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for clk.Timers() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d timers pending, want %d", clk.Timers(), n)
		}
		time.Sleep(time.Millisecond)
	}
}
