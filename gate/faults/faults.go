// Package faults is the gate's register of what is wrong right now: any
// part of gated (the lane when a decision cannot be recorded, the barrier
// when it does not report closed, the hardware inputs) reports a fault by
// a short kind word and clears it when the trouble is over. The register
// is what /v1/status lists under "faults", what the gate's MQTT status
// carries to centrald (GET /gates), and the gauge
// parkgate_gate_fault{kind} (1 while active, 0 once cleared) with the
// counter parkgate_gate_fault_events_total{kind} of times it was raised.
//
// The package imports nothing of gated's, so that every part — down to
// the hardware drivers — can report to it without an import cycle. A part
// should depend on the Reporter interface; a nil *Register accepts and
// ignores everything, so an optional register needs no nil checks.
package faults

import (
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parkgate/parkgate/clock"
)

// Kinds reported by gated's own parts. A kind is a short lower-case word
// (letters, digits, '_'); other parts add their own.
const (
	// Record: a decision (or a barrier event) could not be written to the
	// local database, typically a full disk; the lane refuses to open
	// until it can record again, and the next successful record clears it.
	Record = "record"
	// Barrier: the barrier did not report open or closed in time; cleared
	// when it reports a good position.
	Barrier = "barrier"
)

// MaxError bounds a fault's error text (bytes); longer texts are cut.
const MaxError = 200

// Reporter is what a part needs to report faults; *Register implements it.
// Set and Clear never block for long and are safe from any goroutine.
type Reporter interface {
	// Set raises (or renews) the fault kind with the error that caused
	// it, at the time given (zero: now by the register's clock).
	Set(kind string, err error, at time.Time)
	// Clear ends the fault kind; clearing one not raised does nothing.
	Clear(kind string)
}

// Fault is one active fault.
type Fault struct {
	// Kind is the fault's word, e.g. Record.
	Kind string
	// Error is the last error reported for it, one sentence (cut to
	// MaxError bytes, control characters replaced). Parts report errors
	// of their own making: never secrets or personal data.
	Error string
	// Since is when the fault was raised (the first Set after a Clear).
	Since time.Time
	// At is when it was last reported (the last Set).
	At time.Time
	// Count is how many times it was reported since it was raised.
	Count int
}

// Register holds the active faults. Its methods are safe for concurrent
// use; a nil *Register ignores Set and Clear and has no faults.
type Register struct {
	clk clock.Clock

	mu      sync.Mutex
	active  map[string]Fault
	changed chan struct{} // closed and replaced at every change

	gauge  *prometheus.GaugeVec
	events *prometheus.CounterVec
}

var _ Reporter = (*Register)(nil)

// New returns an empty register on clk (nil: the wall clock). Its metrics
// go to reg (nil: not registered). known lists kinds whose gauge should
// read 0 from the start rather than appear at the first fault.
func New(clk clock.Clock, reg prometheus.Registerer, known ...string) *Register {
	if clk == nil {
		clk = clock.Real{}
	}
	r := &Register{clk: clk, active: map[string]Fault{}, changed: make(chan struct{}),
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "parkgate_gate_fault",
			Help: "1 while the gate has an active fault of this kind (see GET /v1/status faults), 0 otherwise.",
		}, []string{"kind"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parkgate_gate_fault_events_total",
			Help: "Times a fault of this kind was raised (from healthy to faulty).",
		}, []string{"kind"}),
	}
	for _, k := range known {
		r.gauge.WithLabelValues(Word(k)).Set(0)
		r.events.WithLabelValues(Word(k))
	}
	if reg != nil {
		reg.MustRegister(r.gauge, r.events)
	}
	return r
}

// Set raises or renews the fault kind. err nil reads "unknown error".
func (r *Register) Set(kind string, err error, at time.Time) {
	if r == nil {
		return
	}
	kind = Word(kind)
	msg := "unknown error"
	if err != nil {
		msg = Sentence(err.Error())
	}
	if at.IsZero() {
		at = r.clk.Now()
	}
	r.mu.Lock()
	f, was := r.active[kind]
	if !was {
		f = Fault{Kind: kind, Since: at}
	}
	changed := !was || f.Error != msg
	f.Error, f.At, f.Count = msg, at, f.Count+1
	r.active[kind] = f
	if !was {
		// Under the lock, so that a Clear racing with this Set cannot
		// leave the gauge saying the opposite of the register.
		r.gauge.WithLabelValues(kind).Set(1)
		r.events.WithLabelValues(kind).Inc()
	}
	if changed {
		r.notifyLocked()
	}
	r.mu.Unlock()
}

// Clear ends the fault kind.
func (r *Register) Clear(kind string) {
	if r == nil {
		return
	}
	kind = Word(kind)
	r.mu.Lock()
	_, was := r.active[kind]
	if was {
		delete(r.active, kind)
		r.gauge.WithLabelValues(kind).Set(0)
		r.notifyLocked()
	}
	r.mu.Unlock()
}

func (r *Register) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// Active reports whether the fault kind is raised.
func (r *Register) Active(kind string) bool {
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.active[Word(kind)]
	return ok
}

// Snapshot returns the active faults ordered by kind; an empty (not nil)
// slice when there are none.
func (r *Register) Snapshot() []Fault {
	out := []Fault{}
	if r == nil {
		return out
	}
	r.mu.Lock()
	for _, f := range r.active {
		out = append(out, f)
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b Fault) int { return strings.Compare(a.Kind, b.Kind) })
	return out
}

// Changed returns a channel that is closed at the next change of the
// active faults (raised, cleared, or a new error text; not a mere repeat).
// Call it again after it fired. A nil register's channel never fires.
func (r *Register) Changed() <-chan struct{} {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// Word makes kind a fault kind: lower case, letters, digits and '_' (other
// characters become '_'), at most 32 bytes, "unknown" if empty.
func Word(kind string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(kind) {
		if b.Len() >= 32 {
			break
		}
		if c == '_' || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "unknown"
	}
	return b.String()
}

// Sentence makes s an error text fit to show: control characters become
// spaces, and it is cut to MaxError bytes on a character boundary.
func Sentence(s string) string {
	s = strings.Map(func(c rune) rune {
		if unicode.IsControl(c) || c == utf8.RuneError {
			return ' '
		}
		return c
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > MaxError {
		cut := MaxError
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	if s == "" {
		return "unknown error"
	}
	return s
}
