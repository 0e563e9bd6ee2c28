package service

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkgate/parkgate/internal/syncbuf"
)

func TestRunStopsAllWhenOneFails(t *testing.T) {
	var stopped atomic.Int32
	waiter := Func(func(ctx context.Context) error {
		<-ctx.Done()
		stopped.Add(1)
		return nil
	})
	boom := errors.New("boom")
	err := Run(context.Background(), slog.New(slog.DiscardHandler),
		Named{"a", waiter}, Named{"b", waiter},
		Named{"bad", Func(func(ctx context.Context) error { return boom })})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "bad") {
		t.Fatalf("err = %v", err)
	}
	// Run returned only after every service returned.
	if stopped.Load() != 2 {
		t.Fatalf("%d of 2 services stopped before Run returned", stopped.Load())
	}
}

func TestRunCleanShutdown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- Run(ctx, slog.New(slog.DiscardHandler), Named{"a", Func(func(ctx context.Context) error { <-ctx.Done(); return nil })})
	}()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestPanicAndEarlyReturnAreFailures(t *testing.T) {
	err := Run(context.Background(), slog.New(slog.DiscardHandler), Named{"p", Func(func(ctx context.Context) error { panic("oops") })})
	if err == nil || !strings.Contains(err.Error(), "panic: oops") {
		t.Fatalf("panic: %v", err)
	}
	err = Run(context.Background(), slog.New(slog.DiscardHandler), Named{"q", Func(func(ctx context.Context) error { return nil })})
	if err == nil || !strings.Contains(err.Error(), "stopped unexpectedly") {
		t.Fatalf("early return: %v", err)
	}
}

// A service that does not return on cancel is named in the log, so that a
// daemon stuck on its way out says what it waits for; the ones that
// stopped are not.
func TestRunNamesTheServicesStillStopping(t *testing.T) {
	defer func(d time.Duration) { slowStop = d }(slowStop)
	slowStop = 50 * time.Millisecond
	var logged syncbuf.Buffer
	release := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, slog.New(slog.NewTextHandler(&logged, nil)),
			Named{"quick", Func(func(ctx context.Context) error { <-ctx.Done(); return nil })},
			Named{"stuck", Func(func(ctx context.Context) error { <-ctx.Done(); <-release; return nil })})
	}()
	cancel()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logged.String(), "services still stopping") {
		if time.Now().After(deadline) {
			t.Fatalf("nothing logged in 10 s: %q", logged.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if line := logged.String(); !strings.Contains(line, "services=[stuck]") {
		t.Errorf("logged %q, want only the stuck service named", line)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) before the stuck service did", err)
	default:
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A broker wrapped in Outlive is still serving while the relay that
// talks through it stops, and stops once the relay has returned.
func TestOutliveStopsAfterItsDependents(t *testing.T) {
	brokerUp := make(chan struct{})
	var brokerStopped atomic.Bool
	broker := Func(func(ctx context.Context) error {
		close(brokerUp)
		<-ctx.Done()
		brokerStopped.Store(true)
		return nil
	})
	sawBroker := make(chan bool, 1)
	relay, relayDone := Tracked(Func(func(ctx context.Context) error {
		<-brokerUp
		<-ctx.Done()
		// Saying goodbye takes a while; the broker must still be there
		// at the end of it.
		time.Sleep(50 * time.Millisecond)
		sawBroker <- !brokerStopped.Load()
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- Run(ctx, slog.New(slog.DiscardHandler),
			Named{"broker", Outlive{Service: broker, Until: relayDone, Grace: time.Minute}},
			Named{"relay", relay})
	}()
	<-brokerUp
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return: the broker waited past its dependents' end")
	}
	if !<-sawBroker {
		t.Fatal("the broker stopped before the relay had finished")
	}
	if !brokerStopped.Load() {
		t.Fatal("the broker never saw its context end")
	}
}

// A dependent that does not stop holds the outliving service back only
// for Grace.
func TestOutliveGivesUpAfterGrace(t *testing.T) {
	release := make(chan struct{})
	stuck, stuckDone := Tracked(Func(func(ctx context.Context) error {
		<-ctx.Done()
		<-release
		return nil
	}))
	brokerStopped := make(chan struct{})
	o := Outlive{Service: Func(func(ctx context.Context) error {
		<-ctx.Done()
		close(brokerStopped)
		return nil
	}), Until: stuckDone, Grace: 100 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- Run(ctx, slog.New(slog.DiscardHandler), Named{"broker", o}, Named{"stuck", stuck}) }()
	cancel()
	select {
	case <-brokerStopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the broker still waits for a dependent that does not stop, past its grace")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A failure of the outliving service itself is reported at once, not
// held until its dependents stop.
func TestOutlivePassesOnAFailure(t *testing.T) {
	boom := errors.New("boom")
	never := make(chan struct{})
	err := Run(context.Background(), slog.New(slog.DiscardHandler),
		Named{"broker", Outlive{Service: Func(func(ctx context.Context) error { return boom }), Until: never, Grace: time.Hour}},
		Named{"relay", Func(func(ctx context.Context) error { <-ctx.Done(); return nil })})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "broker") {
		t.Fatalf("err = %v", err)
	}
}
