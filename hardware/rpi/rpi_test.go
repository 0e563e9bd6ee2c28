package rpi

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpioreg"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/pin"

	"github.com/parkgate/parkgate/clock/clocktest"
	"github.com/parkgate/parkgate/hardware/debounce"
)

// recPin is a gpiotest.Pin that records the calls made on it, so tests can
// check the order of operations, and can be told to fail Out.
type recPin struct {
	gpiotest.Pin
	callsMu sync.Mutex
	calls   []string
	failOut error
}

func (p *recPin) log(format string, args ...any) {
	p.callsMu.Lock()
	defer p.callsMu.Unlock()
	p.calls = append(p.calls, fmt.Sprintf(format, args...))
}

func (p *recPin) Calls() []string {
	p.callsMu.Lock()
	defer p.callsMu.Unlock()
	return append([]string(nil), p.calls...)
}

func (p *recPin) Out(l gpio.Level) error {
	p.log("Out(%s)", l)
	if p.failOut != nil {
		return p.failOut
	}
	return p.Pin.Out(l)
}

func (p *recPin) In(pull gpio.Pull, edge gpio.Edge) error {
	p.log("In(%s, %s)", pull, edge)
	return p.Pin.In(pull, edge)
}

func (p *recPin) Read() gpio.Level {
	p.log("Read")
	return p.Pin.Read()
}

func (p *recPin) Func() pin.Func {
	p.log("Func")
	return p.Pin.Func()
}

func (p *recPin) Function() string {
	p.log("Function")
	return p.Pin.Function()
}

// Halt interrupts a pending WaitForEdge, as the chardev driver's does: it
// hands the current level over the (buffered) edge channel.
func (p *recPin) Halt() error {
	p.log("Halt")
	select {
	case p.EdgesChan <- p.Pin.Read():
	default:
	}
	return nil
}

func TestLookup(t *testing.T) {
	if _, err := NewOutput("NO_SUCH_LINE", false); err == nil {
		t.Fatal("NewOutput on an unknown line succeeded")
	}
	// A name served by another periph driver is refused rather than
	// driven behind the character device's back.
	if err := gpioreg.Register(&gpiotest.Pin{N: "PARKGATE_TEST"}); err != nil {
		t.Fatal(err)
	}
	defer gpioreg.Unregister("PARKGATE_TEST")
	_, err := NewInput("PARKGATE_TEST", false, gpio.PullUp, 0)
	if err == nil || !strings.Contains(err.Error(), "character device") {
		t.Fatalf("NewInput on a non-chardev pin = %v", err)
	}
}

func TestParsePull(t *testing.T) {
	for in, want := range map[string]gpio.Pull{"up": gpio.PullUp, "Down": gpio.PullDown, "none": gpio.Float, "float": gpio.Float, "": gpio.PullNoChange} {
		if got, err := ParsePull(in); err != nil || got != want {
			t.Errorf("ParsePull(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParsePull("sideways"); err == nil {
		t.Error("ParsePull(sideways) succeeded")
	}
}

// inputRig is an Input on a recording fake pin, with the debouncer on a
// fake clock and the edge wait's timeout on a fake clockwork clock.
type inputRig struct {
	t     *testing.T
	pin   *recPin
	clk   *clocktest.Clock
	wait  *clockwork.FakeClock
	in    *Input
	fed   chan [2]bool // (edge, active) after each observation
	poll  time.Duration
	ctx   context.Context
	close func()
}

func newRig(t *testing.T, activeLow bool, pull gpio.Pull, d time.Duration) *inputRig {
	t.Helper()
	r := &inputRig{
		t:    t,
		clk:  clocktest.New(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)),
		wait: clockwork.NewFakeClock(),
		fed:  make(chan [2]bool, 100),
		poll: time.Second,
	}
	r.pin = &recPin{Pin: gpiotest.Pin{N: "GPIO27", Clock: r.wait, EdgesChan: make(chan gpio.Level, 1)}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	r.ctx = ctx
	in, err := newInput(r.pin, activeLow, pull, d, inputConfig{
		clk:      r.clk,
		poll:     r.poll,
		observed: func(edge, active bool) { r.fed <- [2]bool{edge, active} },
	})
	if err != nil {
		t.Fatal(err)
	}
	r.in = in
	t.Cleanup(func() {
		defer cancel()
		// Close halts the wait only once one has returned; before that
		// the watcher notices within one poll, which is fake time here.
		done := make(chan struct{})
		go func() { in.Close(); close(done) }()
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
				r.wait.Advance(r.poll)
			}
		}
	})
	return r
}

// edge makes the line move to l and waits until the input has fed it to
// its debouncer (so its timer is armed before the test moves the clock).
func (r *inputRig) edge(l gpio.Level) {
	r.t.Helper()
	r.pin.EdgesChan <- l
	r.observed(true)
}

func (r *inputRig) observed(edge bool) {
	r.t.Helper()
	select {
	case got := <-r.fed:
		if got[0] != edge {
			r.t.Fatalf("observed edge=%v, want %v", got[0], edge)
		}
	case <-r.ctx.Done():
		r.t.Fatal("the input did not observe the line")
	}
}

func (r *inputRig) change(want bool) {
	r.t.Helper()
	select {
	case got := <-r.in.Changes():
		if got != want {
			r.t.Fatalf("change to %v, want %v", got, want)
		}
	case <-r.ctx.Done():
		r.t.Fatalf("no change to %v", want)
	}
}

func TestInputStartsAsInputWithEdgesAndReadsTheLevel(t *testing.T) {
	r := newRig(t, true, gpio.PullUp, debounce.Default)
	got := r.pin.Calls()
	if len(got) < 2 || got[0] != "In(PullUp, BothEdges)" || got[1] != "Read" {
		t.Fatalf("calls = %q, want In(PullUp, BothEdges) then Read", got)
	}
	if r.in.Active() {
		t.Fatal("an active-low contact with its pull-up at rest reads active")
	}
}

func TestInputDebouncesEdges(t *testing.T) {
	const ms = time.Millisecond
	r := newRig(t, true, gpio.PullUp, 50*ms) // contact to ground: low is active
	// Bouncing closure: low, high, low, settling at t=6 ms.
	r.edge(gpio.Low)
	r.clk.Advance(3 * ms)
	r.edge(gpio.High)
	r.clk.Advance(3 * ms)
	r.edge(gpio.Low)
	r.clk.Advance(49 * ms)
	if r.in.Active() {
		t.Fatal("reported before the level was stable for 50 ms")
	}
	r.clk.Advance(ms)
	r.change(true)

	// A 20 ms dropout is swallowed.
	r.edge(gpio.High)
	r.clk.Advance(20 * ms)
	r.edge(gpio.Low)
	r.clk.Advance(time.Second)
	if !r.in.Active() {
		t.Fatal("a 20 ms glitch was reported")
	}
	select {
	case v := <-r.in.Changes():
		t.Fatalf("a glitch produced a change to %v", v)
	default:
	}

	// A real release.
	r.edge(gpio.High)
	r.clk.Advance(50 * ms)
	r.change(false)
}

// An edge the kernel never delivered is caught by the poll after the
// wait's timeout.
func TestInputPollsWhenNoEdgeComes(t *testing.T) {
	r := newRig(t, false, gpio.PullDown, 50*time.Millisecond)
	r.pin.Lock()
	r.pin.L = gpio.High // no edge event
	r.pin.Unlock()
	if err := r.wait.BlockUntilContext(r.ctx, 1); err != nil {
		t.Fatal(err)
	}
	r.wait.Advance(r.poll)
	r.observed(false)
	r.clk.Advance(50 * time.Millisecond)
	r.change(true)
}

func TestInputCloseStopsTheWatcher(t *testing.T) {
	r := newRig(t, false, gpio.PullDown, 0)
	r.edge(gpio.High) // a wait has returned: Close may Halt
	r.change(true)
	done := make(chan struct{})
	go func() { r.in.Close(); close(done) }()
	select {
	case <-done:
	case <-r.ctx.Done():
		t.Fatal("Close did not return")
	}
	if _, ok := <-r.in.Changes(); ok {
		t.Fatal("Changes still open after Close")
	}
	calls := r.pin.Calls()
	if !contains(calls, "Halt") {
		t.Fatalf("Close did not Halt the wait: %q", calls)
	}
	for _, c := range calls {
		if strings.HasPrefix(c, "Out") {
			t.Fatalf("an input was driven: %q", calls)
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Init off a Raspberry Pi must say why, not panic or pretend.
func TestInitExplains(t *testing.T) {
	err := Init()
	if err == nil {
		t.Skip("GPIO chips present: this machine has GPIO")
	}
	if !strings.Contains(err.Error(), "rpi:") || len(err.Error()) < 40 {
		t.Fatalf("Init error is not explanatory: %v", err)
	}
	t.Log(err)
}

// brokenPin is a line whose edge wait fails at once, as periph's does on
// a line whose fd went bad (it logs and returns false).
type brokenPin struct{ recPin }

func (p *brokenPin) WaitForEdge(time.Duration) bool { return false }

// A line that cannot be read is counted and reported, not silently read as
// a steady level.
func TestInputReadErrorsAreCounted(t *testing.T) {
	p := &brokenPin{recPin{Pin: gpiotest.Pin{N: "GPIO27", EdgesChan: make(chan gpio.Level, 1)}}}
	errs := make(chan error, 10)
	in, err := newInput(p, false, gpio.PullDown, 0, inputConfig{poll: time.Hour, onError: func(err error) {
		select {
		case errs <- err:
		default:
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), "GPIO27") {
			t.Fatalf("read error %v does not name the line", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no read error reported for a line whose waits fail")
	}
	if in.ReadErrors() == 0 {
		t.Fatal("ReadErrors is 0 after a reported error")
	}
}

// flakyPin is a line whose edge waits fail at once while broken, as
// periph's do when the line's request went bad, and work again after.
type flakyPin struct {
	recPin
	broken atomic.Bool
}

func (p *flakyPin) WaitForEdge(d time.Duration) bool {
	if p.broken.Load() {
		return false
	}
	return p.recPin.WaitForEdge(d)
}

// A line that fails is reported through OnReadError and never as a clean
// read; once it works again, its reads are reported clean (OnReadOK), so
// gated can clear the input's fault.
func TestInputReportsCleanReadsOnlyOnceTheLineWorks(t *testing.T) {
	p := &flakyPin{recPin: recPin{Pin: gpiotest.Pin{N: "GPIO27", Clock: clockwork.NewRealClock(), EdgesChan: make(chan gpio.Level, 1)}}}
	p.broken.Store(true)
	errs, oks := make(chan error, 100), make(chan struct{}, 100)
	in, err := newInput(p, false, gpio.PullDown, 0, inputConfig{poll: 100 * time.Millisecond, onError: func(err error) {
		select {
		case errs <- err:
		default:
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	in.OnReadOK(func() {
		select {
		case oks <- struct{}{}:
		default:
		}
	})
	for range 3 {
		select {
		case <-errs:
		case <-time.After(10 * time.Second):
			t.Fatal("no read error reported for a line whose waits fail")
		}
	}
	if len(oks) != 0 {
		t.Fatal("a failing line's reads were reported clean")
	}
	p.broken.Store(false)
	p.EdgesChan <- gpio.High
	select {
	case <-oks:
	case <-time.After(10 * time.Second):
		t.Fatal("no clean read reported once the line works")
	}
}
