package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/gate/barrier"
	"github.com/parkgate/parkgate/gate/config"
	"github.com/parkgate/parkgate/hardware/debounce"
	"github.com/parkgate/parkgate/internal/service"
)

// fakeGPIO is the lane's GPIO as the kernel hands it out: a claimed
// output is at its inactive level from the claim on (what hardware/rpi
// guarantees, and tests there), and a line keeps its level when it is let
// go, as on Raspberry Pi kernels. Every level a line is driven to is
// recorded, in order.
type fakeGPIO struct {
	mu    sync.Mutex
	lines map[string]*fakeLine
	// inputs, when set for a line, is what claiming it as an input
	// hands out (else an input that never moves).
	inputs map[string]Input
}

type fakeLine struct {
	active  bool     // the relay is energised
	history []string // "claimed", "on", "off", "closed"
}

func newFakeGPIO() *fakeGPIO {
	return &fakeGPIO{lines: map[string]*fakeLine{}, inputs: map[string]Input{}}
}

func (g *fakeGPIO) line(name string) *fakeLine {
	g.mu.Lock()
	defer g.mu.Unlock()
	l := g.lines[name]
	if l == nil {
		l = &fakeLine{}
		g.lines[name] = l
	}
	return l
}

// leftActive is a line a crashed gated left energised.
func (g *fakeGPIO) leftActive(name string) { g.line(name).active = true }

func (g *fakeGPIO) state(name string) (active bool, history string) {
	l := g.line(name)
	g.mu.Lock()
	defer g.mu.Unlock()
	return l.active, strings.Join(l.history, " ")
}

func (g *fakeGPIO) Output(name string, activeLow bool) (Output, error) {
	l := g.line(name)
	g.mu.Lock()
	defer g.mu.Unlock()
	l.active = false
	l.history = append(l.history, "claimed")
	return &fakeOutput{g: g, l: l}, nil
}

func (g *fakeGPIO) Input(name string, activeLow bool, pull string, d time.Duration) (Input, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.lines[name] != nil {
		return nil, fmt.Errorf("%s claimed twice", name)
	}
	g.lines[name] = &fakeLine{history: []string{"input"}}
	if in := g.inputs[name]; in != nil {
		return in, nil
	}
	return debounce.New(clock.Real{}, 0, false), nil
}

type fakeOutput struct {
	g      *fakeGPIO
	l      *fakeLine
	closed bool
}

func (o *fakeOutput) Set(active bool) error {
	o.g.mu.Lock()
	defer o.g.mu.Unlock()
	if o.closed {
		return errors.New("closed")
	}
	o.l.active = active
	o.l.history = append(o.l.history, map[bool]string{true: "on", false: "off"}[active])
	return nil
}

func (o *fakeOutput) Close() error {
	o.g.mu.Lock()
	defer o.g.mu.Unlock()
	if !o.closed {
		o.l.active = false
		o.l.history = append(o.l.history, "closed")
		o.closed = true
	}
	return nil
}

func rpiConfig(t *testing.T, env ...string) config.Config {
	t.Helper()
	cfg, err := config.Load("", append([]string{
		"PARKING_HARDWARE_MODE=rpi", "PARKING_HTTP_ADDR=127.0.0.1:0", "PARKING_MQTT_URL=",
		"PARKING_DB_PATH=" + filepath.Join(t.TempDir(), "g.db"),
	}, env...))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

var quiet = slog.New(slog.DiscardHandler)

// A gated whose database cannot open has still driven the relay inactive:
// the relay is claimed before anything that can fail, so a relay left on
// by a crashed run does not stay on while systemd retries.
func TestRelayDrivenInactiveWhenTheDatabaseCannotOpen(t *testing.T) {
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := rpiConfig(t, "PARKING_DB_PATH="+filepath.Join(notADir, "g.db"),
		"PARKING_HARDWARE_BARRIER_MODE=hold", "PARKING_HARDWARE_HOLD_PIN=GPIO22")
	g := newFakeGPIO()
	g.leftActive("GPIO17")
	g.leftActive("GPIO22")
	err := Run(context.Background(), cfg, Options{Log: quiet, GPIO: g})
	if err == nil || !strings.Contains(err.Error(), "db.path") {
		t.Fatalf("Run = %v, want a db.path error", err)
	}
	for _, pin := range []string{"GPIO17", "GPIO22"} {
		active, history := g.state(pin)
		if active || !strings.HasPrefix(history, "claimed") {
			t.Errorf("%s: active %v, history %q: want claimed (inactive) first and inactive at the end", pin, active, history)
		}
	}
}

// `gated safe` drives the outputs inactive and touches no input.
func TestSafeDrivesTheOutputsInactive(t *testing.T) {
	cfg := rpiConfig(t, "PARKING_HARDWARE_BARRIER_MODE=hold", "PARKING_HARDWARE_HOLD_PIN=GPIO22")
	g := newFakeGPIO()
	g.leftActive("GPIO17")
	g.leftActive("GPIO22")
	if err := Safe(cfg, Options{Log: quiet, GPIO: g}); err != nil {
		t.Fatal(err)
	}
	for _, pin := range []string{"GPIO17", "GPIO22"} {
		if active, history := g.state(pin); active || history != "claimed closed" {
			t.Errorf("%s: active %v, history %q", pin, active, history)
		}
	}
	if _, history := g.state("GPIO27"); history != "" {
		t.Errorf("the loop input was touched: %q", history)
	}
}

// panickyReader is a code reader that, like the serial reader, calls back
// from a goroutine of its own when told to.
type panickyReader struct{ scan chan string }

func (r panickyReader) Serve(ctx context.Context, fn func(string)) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case code := <-r.scan:
			wg.Add(1)
			go func() { defer wg.Done(); fn(code) }()
		}
	}
}

// A panic in a goroutine outside the supervisor that reaches the lane (the
// reader's) stops gated through the supervisor, and the barrier drives its
// relay inactive on the way out, instead of the process dying with the
// relay held.
func TestReaderPanicStopsGatedWithTheRelayInactive(t *testing.T) {
	g := newFakeGPIO()
	hold, _ := g.Output("GPIO22", false)
	open, _ := g.Output("GPIO17", false)
	loop, _ := g.Input("GPIO27", false, "", 0)
	bar, err := barrier.New(barrier.Config{Mode: barrier.ModeHold}, barrier.Pins{Open: open, Hold: hold, Loop: loop}, clock.Real{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := panickyReader{scan: make(chan string)}
	handle := func(ctx context.Context, code string) error {
		if _, err := bar.Open(ctx, code); err != nil {
			return err
		}
		panic("bug in the lane")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- service.Run(ctx, quiet, service.Named{Name: "barrier", Service: bar}, service.Named{Name: "reader", Service: readerService(r, handle, quiet)})
	}()
	select {
	case r.scan <- "ticket":
	case <-ctx.Done():
		t.Fatal("the reader never served")
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "panic") {
			t.Fatalf("Run = %v, want the panic as the reader's failure", err)
		}
	case <-ctx.Done():
		t.Fatal("gated kept running after a panic in the reader")
	}
	active, history := g.state("GPIO22")
	if active || !strings.Contains(history, "on") {
		t.Fatalf("hold output: active %v, history %q; want held, then inactive", active, history)
	}
}
