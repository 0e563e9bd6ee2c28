package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/gate/config"
	"github.com/parkgate/parkgate/gate/faults"
)

// The input fault rules (docs/gated.md, "Fail-safe behaviour").
const (
	// InputClearAfter is how long a faulted input must read cleanly,
	// without a single failure, before its fault clears: a line that
	// fails now and then is still faulty.
	InputClearAfter = 10 * time.Second
	// InputRestartAfter is how long an input may stay unreadable before
	// the systemd watchdog is no longer pinged, so that systemd restarts
	// gated and the lines are claimed again. Only for an input that had
	// worked in the same run (read cleanly for InputClearAfter before the
	// fault): one that never worked since gated started is not helped by
	// a restart (the last one did not help, or it is broken for good), so
	// the lane keeps running with the fault raised instead of restarting
	// for ever. A line that keeps failing is restarted for at most once.
	InputRestartAfter = time.Minute
)

// The roles of the lane's inputs, as in their config keys
// (hardware.<role>_pin) and their fault kinds (input_<role>, noise_<role>).
const (
	roleLoop         = "loop"
	roleOpenStatus   = "open_status"
	roleClosedStatus = "closed_status"
)

// inputKinds lists the fault kinds of the inputs cfg wires, so that their
// gauges read 0 from the start.
func inputKinds(cfg config.Config) []string {
	h := cfg.Hardware
	if h.Mode != "rpi" {
		return nil
	}
	roles := []string{roleLoop}
	if h.OpenStatusPin != "" {
		roles = append(roles, roleOpenStatus)
	}
	if h.ClosedStatusPin != "" {
		roles = append(roles, roleClosedStatus)
	}
	var kinds []string
	for _, r := range roles {
		kinds = append(kinds, "input_"+r, "noise_"+r)
	}
	return kinds
}

// inputFaults keeps the lane's input faults in the register: a line that
// cannot be read (kind input_<role>) and a line that is noise (kind
// noise_<role>). It tells the barrier when the loop's level means nothing
// (OnLoop) and the watchdog when a restart may help (Healthy).
type inputFaults struct {
	clk clock.Clock
	reg faults.Reporter
	log *slog.Logger

	mu     sync.Mutex
	inputs []*inputState
	onLoop func(faulted bool)
	loop   bool // the loop's faulted state as last told to onLoop
}

// inputState is one watched input.
type inputState struct {
	role, key, pin string

	proven     bool      // it read cleanly for InputClearAfter in this run
	failing    bool      // the read fault is raised
	since      time.Time // when it was raised
	restart    bool      // it was proven before the fault: a restart may help
	cleanSince time.Time // first clean read since the last failure; zero: none
	noisy      bool
}

func newInputFaults(clk clock.Clock, reg faults.Reporter, log *slog.Logger) *inputFaults {
	return &inputFaults{clk: clk, reg: reg, log: log}
}

// watch hooks in, when in reports them (the Pi's inputs do), its failed
// and clean reads and its noise (noiseLimit 0: not watched).
func (f *inputFaults) watch(in Input, role, key, pin string, noiseLimit time.Duration) {
	st := &inputState{role: role, key: key, pin: pin}
	f.mu.Lock()
	f.inputs = append(f.inputs, st)
	f.mu.Unlock()
	if r, ok := in.(interface {
		OnReadError(func(error))
		OnReadOK(func())
	}); ok {
		r.OnReadError(func(err error) { f.readError(st, err) })
		r.OnReadOK(func() { f.readOK(st) })
	}
	if w, ok := in.(interface {
		WatchNoise(time.Duration, func(bool))
	}); ok && noiseLimit > 0 {
		w.WatchNoise(noiseLimit, func(noisy bool) { f.noise(st, noisy, noiseLimit) })
	}
}

func (f *inputFaults) readError(st *inputState, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.clk.Now()
	if !st.failing {
		st.failing, st.since, st.restart = true, now, st.proven
		f.log.Error("input cannot be read: input fault raised", "key", st.key, "pin", st.pin, "err", err)
	}
	st.cleanSince = time.Time{}
	f.reg.Set("input_"+st.role, fmt.Errorf("%s input %s cannot be read (cleared after %v of clean reads): %w",
		st.role, st.pin, InputClearAfter, err), now)
	f.loopChanged()
}

func (f *inputFaults) readOK(st *inputState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.clk.Now()
	if st.cleanSince.IsZero() {
		st.cleanSince = now
	}
	if now.Sub(st.cleanSince) < InputClearAfter {
		return
	}
	st.proven = true
	if !st.failing {
		return
	}
	st.failing = false
	f.reg.Clear("input_" + st.role)
	f.log.Info("input reads cleanly again: input fault cleared", "key", st.key, "pin", st.pin)
	f.loopChanged()
}

func (f *inputFaults) noise(st *inputState, noisy bool, limit time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st.noisy = noisy
	if noisy {
		f.reg.Set("noise_"+st.role, fmt.Errorf("%s input %s keeps changing without holding a level for the debounce time (for %v); its reported level is frozen",
			st.role, st.pin, limit), f.clk.Now())
		f.log.Error("input is noisy: it keeps changing without holding a level for hardware.debounce; its reported level is frozen", "key", st.key, "pin", st.pin, "for", limit)
	} else {
		f.reg.Clear("noise_" + st.role)
		f.log.Info("input is steady again: noise fault cleared", "key", st.key, "pin", st.pin)
	}
	f.loopChanged()
}

// OnLoop calls fn now with whether the loop input is faulted (unreadable
// or noise), and again at every change, under the lock (fn must not
// block): the barrier's LoopFaulted.
func (f *inputFaults) OnLoop(fn func(faulted bool)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onLoop = fn
	f.loop = f.loopFaultedLocked()
	fn(f.loop)
}

func (f *inputFaults) loopFaultedLocked() bool {
	for _, st := range f.inputs {
		if st.role == roleLoop && (st.failing || st.noisy) {
			return true
		}
	}
	return false
}

func (f *inputFaults) loopChanged() {
	if f.onLoop == nil {
		return
	}
	if v := f.loopFaultedLocked(); v != f.loop {
		f.loop = v
		f.onLoop(v)
	}
}

// Healthy is the inputs' part of the watchdog's check: an error once an
// input that had worked in this run has been unreadable for
// InputRestartAfter (see there). Noise is no reason: a restart does not quiet a line.
func (f *inputFaults) Healthy() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.clk.Now()
	var errs []error
	for _, st := range f.inputs {
		if st.failing && st.restart && now.Sub(st.since) >= InputRestartAfter {
			errs = append(errs, fmt.Errorf("%s (%s) unreadable since %s: a restart claims it again",
				st.key, st.pin, st.since.UTC().Format(time.RFC3339)))
		}
	}
	return errors.Join(errs...)
}
