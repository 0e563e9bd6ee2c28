// Package service runs parkgate's long-lived parts (HTTP server, sweeper,
// watchdog, later the MQTT sync) as services in the syncthing style: each is
// a Serve(ctx) error, shutdown is context cancellation, and Run owns every
// goroutine it starts and waits for all of them before it returns.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// slowStop is how long Run lets its services stop before it logs which of
// them have not: a daemon that hangs on the way out (until systemd kills
// it) then says what it was waiting for.
var slowStop = 5 * time.Second

// Service is a long-lived part of a daemon. Serve runs until ctx ends (then
// it returns nil) or until it fails.
type Service interface {
	Serve(ctx context.Context) error
}

// Func adapts a function to Service.
type Func func(ctx context.Context) error

// Serve calls f.
func (f Func) Serve(ctx context.Context) error { return f(ctx) }

// Named is a service with a name for logs and errors.
type Named struct {
	Name string
	Service
}

// Run serves all services until ctx ends or one of them fails; then it
// cancels the others, waits for every one to return, and returns the first
// failure (nil on a clean shutdown). Failing the whole daemon rather than
// restarting one part in place is deliberate: systemd restarts the process
// from a known state, and a lane's safety never depends on a half-dead one.
func Run(ctx context.Context, log *slog.Logger, services ...Named) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		mu    sync.Mutex
		done  = make([]bool, len(services)) // by position: names need not be unique
	)
	for i, s := range services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				mu.Lock()
				done[i] = true
				mu.Unlock()
			}()
			err := serve(ctx, s)
			if err == nil && ctx.Err() == nil {
				err = errors.New("stopped unexpectedly")
			}
			if err != nil && ctx.Err() == nil {
				once.Do(func() {
					first = fmt.Errorf("%s: %w", s.Name, err)
					log.Error("service failed; stopping", "service", s.Name, "err", err)
				})
				cancel()
			}
		}()
	}
	stopped := make(chan struct{})
	go func() { wg.Wait(); close(stopped) }()
	select {
	case <-stopped:
		return first
	case <-ctx.Done():
	}
	slow := time.NewTimer(slowStop)
	defer slow.Stop()
	select {
	case <-stopped:
	case <-slow.C:
		var names []string
		mu.Lock()
		for i, s := range services {
			if !done[i] {
				names = append(names, s.Name)
			}
		}
		mu.Unlock()
		log.Warn("services still stopping", "after", slowStop, "services", names)
		<-stopped
	}
	return first
}

// serve runs one service, turning a panic into an error so the others get
// to shut down cleanly.
func serve(ctx context.Context, s Named) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return s.Serve(ctx)
}

// Outlive runs Service past the end of its context until Until is closed
// (the services that depend on it have returned) or Grace has passed,
// whichever is first. Run cancels all its services at once; a part that
// others talk through, such as an embedded MQTT broker, must not go away
// under them while they say goodbye: a relay that announces "offline" to
// the gates on its way out would otherwise write to a broker that is
// already closing its connections, and wait for it.
type Outlive struct {
	Service
	Until <-chan struct{}
	Grace time.Duration
}

// Serve implements Service.
func (o Outlive) Serve(ctx context.Context) error {
	// Values (the logger) pass on; only the cancellation is held back.
	inner, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- o.Service.Serve(inner) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	grace := time.NewTimer(o.Grace)
	defer grace.Stop()
	select {
	case err := <-errc:
		return err
	case <-o.Until:
	case <-grace.C:
	}
	cancel()
	return <-errc
}

// Tracked wraps s so that the returned channel is closed when its Serve
// has returned (for Outlive.Until). It is for a service served once.
func Tracked(s Service) (Service, <-chan struct{}) {
	done := make(chan struct{})
	return Func(func(ctx context.Context) error {
		defer close(done)
		return s.Serve(ctx)
	}), done
}
