// Package lane is one barrier lane's decision path: a read (a QR code from
// the scanner, a plate from the camera) is debounced, decided by
// gate/authz against the local cache, written to the outbox — durably,
// before anything moves — and, when granted, turned into an opening of the
// barrier (gate/barrier). It also records barrier events, reports its
// faults (a decision that cannot be recorded, a barrier that does not
// report its position) to gate/faults, and reports the lane's status for
// /v1/status.
package lane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/parkgate/parkgate/plate"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/gate/authz"
	"github.com/parkgate/parkgate/gate/barrier"
	"github.com/parkgate/parkgate/gate/faults"
	"github.com/parkgate/parkgate/gate/localdb"
	"github.com/parkgate/parkgate/ticket"
)

// DefaultRepeat is the window in which the same code or plate is one read:
// a ticket held in front of the scanner reads many times.
const DefaultRepeat = 5 * time.Second

// ReasonDuplicate answers a read repeated within the repeat window: it is
// not decided again, not recorded, and opens nothing.
const ReasonDuplicate authz.Reason = "duplicate"

// ReasonRemote is the reason of an opening commanded by an operator from
// central (a Read with source remote, whose value is the command id).
const ReasonRemote authz.Reason = "remote"

// Config is the lane's identity and rules.
type Config struct {
	GateID        string
	Role          localdb.Role
	OfflinePolicy authz.OfflinePolicy
	EarlyArrival  time.Duration
	// Repeat is the de-duplication window (DefaultRepeat if zero).
	Repeat time.Duration
	// AlwaysTrusted makes the clock count as trusted (the simulator).
	AlwaysTrusted bool
	// StrictExit lets out only cars known to be inside.
	StrictExit bool
	// Faults is where the lane reports its faults (faults.Record,
	// faults.Barrier) and what Status lists; nil: a register of its own,
	// without metrics.
	Faults *faults.Register
}

// Barrier is what the lane needs of the barrier (a *barrier.Barrier).
type Barrier interface {
	Open(ctx context.Context, reason string) (time.Time, error)
	State() barrier.Status
}

// Lane decides reads. Its methods are safe for concurrent use; decisions
// are taken one at a time, so two reads of one ticket cannot both pass
// anti-passback.
type Lane struct {
	cfg      Config
	db       *localdb.DB
	barrier  Barrier
	clock    clock.Clock
	trust    func(ctx context.Context) authz.ClockStatus
	log      *slog.Logger
	metrics  *metrics
	verifier *ticket.Verifier

	mu     sync.Mutex // serialises decisions; guards recent
	recent map[string]time.Time

	clockMu   sync.Mutex
	lastClock authz.ClockStatus

	barrierFaults chan barrier.Event
	queued        chan Read
}

// New returns a lane. verifier may be nil (no key yet: tickets are denied
// with reason no_key). trust checks the wall clock (see authz.TrustedClock).
func New(cfg Config, db *localdb.DB, verifier *ticket.Verifier, b Barrier, clk clock.Clock,
	trust func(ctx context.Context) authz.ClockStatus, log *slog.Logger, reg prometheus.Registerer) *Lane {
	if cfg.Repeat <= 0 {
		cfg.Repeat = DefaultRepeat
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Faults == nil {
		cfg.Faults = faults.New(clk, nil)
	}
	return &Lane{cfg: cfg, db: db, verifier: verifier, barrier: b, clock: clk, trust: trust, log: log,
		metrics: newMetrics(reg), recent: map[string]time.Time{}, barrierFaults: make(chan barrier.Event, 64), queued: make(chan Read, 32)}
}

// Read is one input to decide.
type Read struct {
	Source localdb.Source // qr or plate
	// Value is the scanned code, or the plate (normalised by the lane).
	Value string
}

// Result is a decision as the lane took it.
type Result struct {
	authz.Decision
	// EventID and Seq identify the outbox record (empty for duplicates).
	EventID string
	Seq     int64
	// RelayAt is when the relay was commanded (zero if not opened).
	RelayAt time.Time
	// Latency is from the read reaching the lane to the relay command
	// (or to the decision being recorded, when nothing opens).
	Latency time.Duration
}

// Handle decides one read end to end. An error means the decision could
// not be recorded (the barrier then stays closed) or the barrier failed.
func (l *Lane) Handle(ctx context.Context, r Read) (Result, error) {
	start := time.Now() // latency is real time, whatever the lane's clock says
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	value := r.Value
	if r.Source == localdb.SourcePlate {
		value = plate.Normalize(value)
	}
	key := string(r.Source) + "\x00" + value
	if last, ok := l.recent[key]; ok && now.Sub(last) >= 0 && now.Sub(last) < l.cfg.Repeat {
		l.recent[key] = now // a ticket still held there stays one read
		l.metrics.decision(false, string(ReasonDuplicate))
		return Result{Decision: authz.Decision{Reason: ReasonDuplicate, Role: l.cfg.Role, Source: r.Source, Time: now}}, nil
	}
	l.remember(key, now)

	cs := l.clockStatus(ctx)
	var d authz.Decision
	if r.Source == localdb.SourceRemote {
		// An operator's command: central authenticated and authorised it;
		// the gate records it like any decision, then opens.
		d = authz.Decision{Granted: true, Reason: ReasonRemote, Role: l.cfg.Role, Source: r.Source, Time: now,
			ClockTrusted: cs.Trusted, Detail: "remote open, command " + value}
	} else {
		d = l.decide(ctx, r.Source, value, now, cs)
	}
	// The decision is on disk before the barrier moves: a power cut can
	// never lose an entry.
	ev, err := l.record(ctx, d.Event(l.cfg.GateID), d.Presence)
	if err != nil {
		l.metrics.decision(false, "record_failed")
		return Result{Decision: d}, err
	}
	res := Result{Decision: d, EventID: ev.EventID, Seq: ev.Seq}
	if d.Granted {
		at, err := l.barrier.Open(ctx, string(d.Reason))
		res.RelayAt = at
		res.Latency = time.Since(start)
		l.metrics.latency.Observe(res.Latency.Seconds())
		if err != nil {
			return res, err
		}
	} else {
		res.Latency = time.Since(start)
	}
	l.metrics.decision(d.Granted, string(d.Reason))
	l.log.Info("decision", "granted", d.Granted, "reason", d.Reason, "source", r.Source, "reservation", d.ReservationID, "seq", ev.Seq)
	return res, nil
}

// record writes ev to the outbox and keeps the faults.Record fault in step:
// raised when the write fails (a full disk, a broken card), cleared by the
// next write that succeeds. A context that ended is no fault of the disk.
func (l *Lane) record(ctx context.Context, ev localdb.Event, change localdb.PresenceChange) (localdb.Event, error) {
	rec, err := l.db.Record(ctx, ev, change)
	switch {
	case err == nil:
		l.cfg.Faults.Clear(faults.Record)
	case ctx.Err() == nil:
		l.cfg.Faults.Set(faults.Record, fmt.Errorf("decisions cannot be recorded, so the barrier stays closed: %w", err), l.clock.Now())
	}
	return rec, err
}

// decide asks gate/authz about a scanned code or a plate.
func (l *Lane) decide(ctx context.Context, src localdb.Source, value string, now time.Time, cs authz.ClockStatus) authz.Decision {
	in := authz.Input{
		Role: l.cfg.Role, Source: src, Now: now,
		ClockTrusted: cs.Trusted, TimeFloor: cs.Floor, OfflinePolicy: l.cfg.OfflinePolicy,
		Verifier: l.verifier, EarlyArrival: l.cfg.EarlyArrival, StrictExit: l.cfg.StrictExit, Cache: l.db,
	}
	if src == localdb.SourcePlate {
		in.Plate = value
	} else {
		in.Code = value
	}
	return authz.Decide(ctx, in)
}

// remember records a read, forgetting old ones so memory stays bounded.
func (l *Lane) remember(key string, now time.Time) {
	if len(l.recent) > 1000 {
		for k, t := range l.recent {
			if now.Sub(t) >= l.cfg.Repeat || now.Before(t) {
				delete(l.recent, k)
			}
		}
	}
	l.recent[key] = now
}

// clockStatus checks the wall clock (cheap: a file test and a query).
func (l *Lane) clockStatus(ctx context.Context) authz.ClockStatus {
	var cs authz.ClockStatus
	if l.cfg.AlwaysTrusted {
		cs = authz.ClockStatus{Trusted: true, Why: "simulator", Now: l.clock.Now()}
	} else {
		cs = l.trust(ctx)
	}
	l.clockMu.Lock()
	if cs.Trusted != l.lastClock.Trusted {
		l.log.Info("clock trust changed", "trusted", cs.Trusted, "why", cs.Why)
	}
	l.lastClock = cs
	l.clockMu.Unlock()
	return cs
}

// BarrierEvent is the barrier's event callback: it must not block, so
// faults are reported to the register at once and queued for Serve to
// record in the outbox.
func (l *Lane) BarrierEvent(e barrier.Event) {
	l.metrics.barrier(string(e.Kind))
	switch e.Kind {
	case barrier.EventFault:
		l.cfg.Faults.Set(faults.Barrier, barrierFaultError(e.Fault), e.At)
	case barrier.EventFaultCleared:
		l.cfg.Faults.Clear(faults.Barrier)
	default:
		return
	}
	select {
	case l.barrierFaults <- e:
	default:
		l.log.Error("barrier fault queue full; fault not recorded", "kind", e.Kind)
	}
}

// barrierFaultError says what a barrier fault means.
func barrierFaultError(f barrier.Fault) error {
	switch f {
	case barrier.FaultNotOpened:
		return errors.New("the barrier did not report open in time after the open command (not_opened)")
	case barrier.FaultNotClosed:
		return errors.New("the barrier did not report closed in time (not_closed)")
	}
	return fmt.Errorf("barrier fault %s", f)
}

// Serve decides queued reads, records barrier faults in the outbox and
// keeps the cache tidy, until ctx ends.
func (l *Lane) Serve(ctx context.Context) error {
	tidy := time.NewTicker(10 * time.Minute)
	defer tidy.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case r := <-l.queued:
			if _, err := l.Handle(ctx, r); err != nil && ctx.Err() == nil {
				l.log.Error("queued read not decided", "source", r.Source, "err", err)
			}
		case e := <-l.barrierFaults:
			l.log.Warn("barrier fault", "event", e.Kind, "fault", e.Fault)
			ev := localdb.Event{Kind: localdb.KindBarrierFault, GateID: l.cfg.GateID, Role: l.cfg.Role, Time: e.At,
				Reason: string(e.Kind), Detail: string(e.Fault)}
			if _, err := l.record(ctx, ev, localdb.NoPresenceChange); err != nil && ctx.Err() == nil {
				// The record fault says so; stopping the lane would also
				// stop every decision once the disk has room again.
				l.log.Error("barrier fault not recorded", "fault", e.Fault, "err", err)
			}
		case <-tidy.C:
			cs := l.clockStatus(ctx)
			if !cs.Trusted {
				continue // pruning by age needs a clock that is right
			}
			if err := l.db.NoteTime(ctx, cs.Now); err != nil {
				l.log.Warn("noting the time failed", "err", err)
			}
			if _, err := l.db.Prune(ctx, cs.Now, localdb.DefaultRetention); err != nil {
				l.log.Warn("pruning the cache failed", "err", err)
			}
		}
	}
}

// Status is the lane as /v1/status shows it.
type Status struct {
	GateID        string
	Role          localdb.Role
	Barrier       string // open, closed
	BarrierState  string
	Fault         string
	Vehicle       bool
	CacheVersion  int64
	Outbox        int
	ClockTrusted  bool
	ClockWhy      string
	OfflinePolicy authz.OfflinePolicy
	// Faults are the gate's active faults (empty, not nil, when healthy).
	Faults []faults.Fault
}

// Status reports the lane's state now.
func (l *Lane) Status(ctx context.Context) (Status, error) {
	bs := l.barrier.State()
	v, err := l.db.Version(ctx)
	if err != nil {
		return Status{}, err
	}
	depth, err := l.db.Depth(ctx)
	if err != nil {
		return Status{}, err
	}
	cs := l.clockStatus(ctx)
	return Status{
		GateID: l.cfg.GateID, Role: l.cfg.Role, Barrier: bs.Barrier(), BarrierState: string(bs.State),
		Fault: string(bs.Fault), Vehicle: bs.Vehicle, CacheVersion: v, Outbox: depth,
		ClockTrusted: cs.Trusted, ClockWhy: cs.Why, OfflinePolicy: l.cfg.OfflinePolicy,
		Faults: l.cfg.Faults.Snapshot(),
	}, nil
}

// ErrBusy is returned when the lane cannot take more queued reads.
var ErrBusy = errors.New("lane busy: too many reads waiting")

// Submit queues a read to be decided by Serve, for inputs that are
// answered before the decision (the ANPR camera's push).
func (l *Lane) Submit(r Read) error {
	select {
	case l.queued <- r:
		return nil
	default:
		return ErrBusy
	}
}
