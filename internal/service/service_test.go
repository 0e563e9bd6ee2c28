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
