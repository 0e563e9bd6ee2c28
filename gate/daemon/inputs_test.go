package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/clock/clocktest"
	"github.com/parkgate/parkgate/gate/barrier"
	"github.com/parkgate/parkgate/gate/config"
	"github.com/parkgate/parkgate/gate/faults"
	"github.com/parkgate/parkgate/hardware/debounce"
)

// waitFor bounds every wait on gated's goroutines. It is real time only to
// survive a slow -race run; no outcome depends on it.
const waitFor = 10 * time.Second

var t0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

// fakeInput is a claimed input as hardware/rpi hands one out: debounced (a
// real debounce.Debouncer on the test's clock, noise watch included), and
// reporting its failed and clean reads through rpi.Input's hooks. The test
// plays the line: a failed wait, a clean one, an edge.
type fakeInput struct {
	*debounce.Debouncer
	mu    sync.Mutex
	onErr func(error)
	onOK  func()
}

func newFakeInput(clk clock.Clock) *fakeInput {
	return &fakeInput{Debouncer: debounce.New(clk, debounce.Default, false)}
}

func (f *fakeInput) OnReadError(fn func(error)) { f.mu.Lock(); f.onErr = fn; f.mu.Unlock() }
func (f *fakeInput) OnReadOK(fn func())         { f.mu.Lock(); f.onOK = fn; f.mu.Unlock() }

// fail is one failed wait on a broken line: periph logs the error and
// reads Low, which an active-low loop takes as "vehicle present".
func (f *fakeInput) fail() {
	f.mu.Lock()
	fn := f.onErr
	f.mu.Unlock()
	if fn != nil {
		fn(errors.New("rpi: GPIO27: waiting for an edge failed at once (see periph's log line); the level read is true"))
	}
	f.Feed(true)
}

// ok is one clean wait that read level.
func (f *fakeInput) ok(level bool) {
	f.Feed(level)
	f.mu.Lock()
	fn := f.onOK
	f.mu.Unlock()
	if fn != nil {
		fn()
	}
}

// notifySocket stands in for systemd: gated's sd_notify messages (with a
// watchdog every 50 ms) arrive on the returned channel.
func notifySocket(t *testing.T) <-chan string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdn") // short: socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	t.Setenv("WATCHDOG_USEC", "100000")
	t.Setenv("WATCHDOG_PID", "")
	msgs := make(chan string, 10000)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			select {
			case msgs <- string(buf[:n]):
			default:
			}
		}
	}()
	return msgs
}

// nextMsg waits for a message that satisfies ok and returns it.
func nextMsg(t *testing.T, msgs <-chan string, what string, ok func(string) bool) string {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case m := <-msgs:
			if ok(m) {
				return m
			}
		case <-deadline:
			t.Fatalf("no %s from gated's watchdog within %v", what, waitFor)
		}
	}
}

func isPing(m string) bool { return m == "WATCHDOG=1" }

// drain forgets the messages received so far.
func drain(msgs <-chan string) {
	for {
		select {
		case <-msgs:
		default:
			return
		}
	}
}

// runRPi runs gated in hardware.mode rpi on fake GPIO and the test's
// clock, and returns its API's base URL.
func runRPi(t *testing.T, cfg config.Config, g *fakeGPIO, clk clock.Clock) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, Options{Log: quiet, GPIO: g, Clock: clk, Started: func(a string) { started <- a }})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gated stopped with %v", err)
			}
		case <-time.After(waitFor):
			t.Error("gated did not stop")
		}
	})
	select {
	case a := <-started:
		return "http://" + a
	case err := <-done:
		t.Fatalf("gated stopped at start: %v", err)
	case <-time.After(waitFor):
		t.Fatal("gated did not start")
	}
	return ""
}

// waitVehicle waits until /v1/status says the loop reads a vehicle.
func waitVehicle(t *testing.T, api string) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		res, err := http.Get(api + "/v1/status")
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			Vehicle bool `json:"vehicle"`
		}
		err = json.NewDecoder(res.Body).Decode(&st)
		res.Body.Close()
		if err == nil && st.Vehicle {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/v1/status never said vehicle (%v)", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type statusFault struct {
	Kind  string    `json:"kind"`
	Error string    `json:"error"`
	Since time.Time `json:"since"`
	At    time.Time `json:"at"`
}

// faultsOf reads /v1/status's faults.
func faultsOf(t *testing.T, api string) map[string]statusFault {
	t.Helper()
	res, err := http.Get(api + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var st struct {
		Faults []statusFault `json:"faults"`
	}
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil || res.StatusCode != 200 {
		t.Fatalf("GET /v1/status: %d, %v", res.StatusCode, err)
	}
	out := map[string]statusFault{}
	for _, f := range st.Faults {
		out[f.Kind] = f
	}
	return out
}

// waitFaults waits until /v1/status's faults satisfy ok.
func waitFaults(t *testing.T, api, what string, ok func(map[string]statusFault) bool) map[string]statusFault {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		fs := faultsOf(t, api)
		if ok(fs) {
			return fs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: faults %+v", what, fs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gauge reads parkgate_gate_fault{kind} from /metrics.
func gauge(t *testing.T, api, kind string) string {
	t.Helper()
	return metric(t, api, `parkgate_gate_fault{kind="`+kind+`"}`)
}

// metric reads the sample called series (name{labels}) from /metrics.
func metric(t *testing.T, api, series string) string {
	t.Helper()
	res, err := http.Get(api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	prefix := series + " "
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			return v
		}
	}
	return "absent"
}

// A loop input that cannot be read is a fault in /v1/status and the
// metrics from its first failed read; once it has been unreadable for
// InputRestartAfter, the watchdog stops pinging systemd (which restarts
// gated, claiming the line again); once it reads cleanly for
// InputClearAfter, the fault clears and the pings resume.
func TestUnreadableLoopIsAFaultAndFailsTheWatchdog(t *testing.T) {
	msgs := notifySocket(t)
	clk := clocktest.New(t0)
	g := newFakeGPIO()
	loop := newFakeInput(clk)
	g.inputs["GPIO27"] = loop
	api := runRPi(t, rpiConfig(t), g, clk)
	if v := gauge(t, api, "input_loop"); v != "0" {
		t.Fatalf("parkgate_gate_fault{kind=input_loop} = %s before any fault, want 0", v)
	}
	nextMsg(t, msgs, "ping", isPing)

	loop.ok(false) // the line works in this run
	clk.Advance(InputClearAfter)
	loop.ok(false)
	clk.Advance(time.Second)
	failAt := clk.Now()
	loop.fail()
	f, ok := faultsOf(t, api)["input_loop"]
	if !ok || !f.Since.Equal(failAt) || !f.At.Equal(failAt) || !strings.Contains(f.Error, "GPIO27") {
		t.Fatalf("input_loop fault %+v (present %v), want since and at %v naming GPIO27", f, ok, failAt)
	}
	if v := gauge(t, api, "input_loop"); v != "1" {
		t.Fatalf("parkgate_gate_fault{kind=input_loop} = %s, want 1", v)
	}

	// Within the bound, systemd is still pinged.
	clk.Advance(InputRestartAfter - time.Millisecond)
	loop.fail() // a broken line keeps failing
	drain(msgs)
	nextMsg(t, msgs, "ping", isPing)
	nextMsg(t, msgs, "ping", isPing) // from a check made after the advance
	if f := faultsOf(t, api)["input_loop"]; !f.Since.Equal(failAt) || !f.At.Equal(clk.Now()) {
		t.Fatalf("input_loop fault %+v: since must stay %v, at be the last failure", f, failAt)
	}
	// The broken line reads "present" by now, and the barrier has it, but
	// as unknown presence: no vehicle entered the loop.
	waitVehicle(t, api)
	if v := metric(t, api, `parkgate_gate_barrier_events_total{kind="vehicle_entered_loop"}`); v != "absent" {
		t.Fatalf("a faulted loop's level counted as a vehicle entering (%s)", v)
	}

	// At the bound it is not.
	clk.Advance(time.Millisecond)
	loop.fail()
	nextMsg(t, msgs, "unhealthy status", func(m string) bool {
		return strings.HasPrefix(m, "STATUS=unhealthy") && strings.Contains(m, "hardware.loop_pin")
	})
	quietUntil := time.After(300 * time.Millisecond) // six watchdog periods
	for done := false; !done; {
		select {
		case m := <-msgs:
			if isPing(m) {
				t.Fatal("systemd pinged while the loop input is unreadable past the bound")
			}
		case <-quietUntil:
			done = true
		}
	}

	// The line works again: the fault clears after InputClearAfter of
	// clean reads, not at the first one.
	loop.ok(false)
	clk.Advance(InputClearAfter - time.Millisecond)
	loop.ok(false)
	if _, ok := faultsOf(t, api)["input_loop"]; !ok {
		t.Fatal("input_loop cleared before the line read cleanly for InputClearAfter")
	}
	clk.Advance(time.Millisecond)
	loop.ok(false)
	if fs := faultsOf(t, api); len(fs) != 0 {
		t.Fatalf("faults %+v after the line read cleanly for InputClearAfter", fs)
	}
	if v := gauge(t, api, "input_loop"); v != "0" {
		t.Fatalf("parkgate_gate_fault{kind=input_loop} = %s after recovery, want 0", v)
	}
	nextMsg(t, msgs, "ping after recovery", isPing)
}

// A loop input that has not worked in this run (never read cleanly for
// InputClearAfter: broken since the start, or failing every few seconds)
// keeps its fault but does not fail the watchdog: a restart did not help
// (or cannot), and restarting for ever would stop the lane from running.
func TestLoopThatNeverWorkedDoesNotRestartGated(t *testing.T) {
	msgs := notifySocket(t)
	clk := clocktest.New(t0)
	g := newFakeGPIO()
	loop := newFakeInput(clk)
	g.inputs["GPIO27"] = loop
	api := runRPi(t, rpiConfig(t), g, clk)
	loop.ok(false) // one clean read proves nothing
	clk.Advance(InputClearAfter / 2)
	failAt := clk.Now()
	loop.fail()
	clk.Advance(10 * InputRestartAfter)
	loop.fail()
	drain(msgs)
	nextMsg(t, msgs, "ping", isPing)
	nextMsg(t, msgs, "ping", isPing) // from a check made after the advance
	if f, ok := faultsOf(t, api)["input_loop"]; !ok || !f.Since.Equal(failAt) {
		t.Fatalf("input_loop fault %+v (present %v), want since %v", f, ok, failAt)
	}
	if v := gauge(t, api, "input_loop"); v != "1" {
		t.Fatalf("parkgate_gate_fault{kind=input_loop} = %s, want 1", v)
	}
}

// A loop that chatters faster than the debounce time for
// hardware.noise_limit is a noise fault, timed when the limit was
// reached, and clears once the line holds a level again.
func TestNoisyLoopIsAFaultUntilItIsSteady(t *testing.T) {
	clk := clocktest.New(t0)
	g := newFakeGPIO()
	loop := newFakeInput(clk)
	g.inputs["GPIO27"] = loop
	cfg := rpiConfig(t)
	api := runRPi(t, cfg, g, clk)
	if v := gauge(t, api, "noise_loop"); v != "0" {
		t.Fatalf("parkgate_gate_fault{kind=noise_loop} = %s before any noise, want 0", v)
	}
	level := true
	loop.Edge(level)
	for clk.Now().Sub(t0) < cfg.Hardware.NoiseLimit {
		clk.Advance(10 * time.Millisecond) // mains pickup: far under the debounce time
		level = !level
		loop.Edge(level)
	}
	noisyAt := clk.Now()
	fs := waitFaults(t, api, "no noise_loop fault", func(fs map[string]statusFault) bool { _, ok := fs["noise_loop"]; return ok })
	if f := fs["noise_loop"]; !f.Since.Equal(noisyAt) || !strings.Contains(f.Error, "GPIO27") {
		t.Fatalf("noise_loop fault %+v, want since %v naming GPIO27", f, noisyAt)
	}
	if v := gauge(t, api, "noise_loop"); v != "1" {
		t.Fatalf("parkgate_gate_fault{kind=noise_loop} = %s, want 1", v)
	}
	clk.Advance(debounce.Default) // the line holds its level
	waitFaults(t, api, "noise_loop not cleared once the line is steady", func(fs map[string]statusFault) bool { return len(fs) == 0 })
	if v := gauge(t, api, "noise_loop"); v != "0" {
		t.Fatalf("parkgate_gate_fault{kind=noise_loop} = %s once steady, want 0", v)
	}
}

// In hold mode, a loop input whose line fails reads "vehicle present" for
// ever (active-low, periph's Read says Low on error). The input fault
// makes that level unknown presence for the barrier, so the hold is
// released after the no-vehicle timeout instead of never.
func TestHoldReleasedWhenTheLoopInputFailsAtPresent(t *testing.T) {
	clk := clocktest.New(t0)
	reg := faults.New(clk, nil)
	inputs := newInputFaults(clk, reg, quiet)
	g := newFakeGPIO()
	open, _ := g.Output("GPIO17", false)
	hold, _ := g.Output("GPIO22", false)
	loop := newFakeInput(clk)
	inputs.watch(loop, roleLoop, "hardware.loop_pin", "GPIO27", 5*time.Second)
	bar, err := barrier.New(barrier.Config{Mode: barrier.ModeHold, NoVehicleTimeout: 30 * time.Second},
		barrier.Pins{Open: open, Hold: hold, Loop: loop}, clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	inputs.OnLoop(bar.LoopFaulted)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- bar.Serve(ctx) }()
	defer func() { cancel(); <-served }()
	if _, err := bar.Open(ctx, "d1"); err != nil {
		t.Fatal(err)
	}
	if active, _ := g.state("GPIO22"); !active {
		t.Fatal("not held after Open")
	}
	loop.ok(false)
	loop.fail()
	clk.Advance(debounce.Default) // the broken line's "present" is reported
	waitBarrier(t, bar, func(s barrier.Status) bool { return s.Vehicle && s.LoopFault })
	if !reg.Active("input_loop") {
		t.Fatal("no input_loop fault")
	}
	clk.Advance(30*time.Second - debounce.Default) // the no-vehicle timeout, from the Open
	waitBarrier(t, bar, func(s barrier.Status) bool { return s.Pending == 0 })
	if active, history := g.state("GPIO22"); active {
		t.Fatalf("hold still active (%s) after the no-vehicle timeout on a faulted loop", history)
	}
}

func waitBarrier(t *testing.T, b *barrier.Barrier, ok func(barrier.Status) bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !ok(b.State()) {
		if time.Now().After(deadline) {
			t.Fatalf("barrier status %+v", b.State())
		}
		time.Sleep(time.Millisecond)
	}
}
