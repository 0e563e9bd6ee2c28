package lane_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/clock/clocktest"
	"github.com/parkgate/parkgate/gate/barrier"
	"github.com/parkgate/parkgate/gate/faults"
	"github.com/parkgate/parkgate/gate/lane"
	"github.com/parkgate/parkgate/gate/localdb"
)

// fakeBarrier stands in for the barrier state machine: it counts opens.
type fakeBarrier struct {
	mu    sync.Mutex
	opens int
}

func (b *fakeBarrier) Open(ctx context.Context, reason string) (time.Time, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.opens++
	return time.Now(), nil
}

func (b *fakeBarrier) State() barrier.Status {
	return barrier.Status{State: barrier.StateClosed, Phase: barrier.StateClosed}
}

func (b *fakeBarrier) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.opens
}

type rig struct {
	db   *localdb.DB
	clk  *clocktest.Clock
	flt  *faults.Register
	bar  *fakeBarrier
	lane *lane.Lane
}

func newRig(t *testing.T) *rig {
	t.Helper()
	db, err := localdb.Open(context.Background(), filepath.Join(t.TempDir(), "gate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clk := clocktest.New(time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC))
	flt := faults.New(clk, nil)
	bar := &fakeBarrier{}
	ln := lane.New(lane.Config{GateID: "entry-1", Role: localdb.RoleEntry, AlwaysTrusted: true, Faults: flt},
		db, nil, bar, clk, nil, nil, nil)
	return &rig{db: db, clk: clk, flt: flt, bar: bar, lane: ln}
}

// fill caps the file at its size and writes until it is full (SQLite's
// own "database or disk is full").
func (r *rig) fill(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if _, err := r.db.LimitPages(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for range 100000 {
		_, err := r.db.Record(ctx, localdb.Event{GateID: "entry-1", Role: localdb.RoleEntry, Time: r.clk.Now(),
			Source: localdb.SourceQR, Reason: "invalid"}, localdb.NoPresenceChange)
		if err != nil {
			if !strings.Contains(err.Error(), "database or disk is full") {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatal("the capped database never filled up")
}

func (r *rig) faults(t *testing.T) []faults.Fault {
	t.Helper()
	st, err := r.lane.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Faults == nil {
		t.Fatal("Status().Faults is nil, want a slice")
	}
	return st.Faults
}

// A decision that cannot be recorded raises the record fault and opens
// nothing; the next recorded one clears it.
func TestRecordFault(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	r.fill(t)
	failedAt := r.clk.Now()
	if _, err := r.lane.Handle(ctx, lane.Read{Source: localdb.SourceRemote, Value: "cmd-1"}); err == nil {
		t.Fatal("granted on a full disk")
	}
	if r.bar.count() != 0 {
		t.Fatal("the barrier opened without a recorded decision")
	}
	fs := r.faults(t)
	if len(fs) != 1 || fs[0].Kind != faults.Record || !fs[0].Since.Equal(failedAt) ||
		!strings.Contains(fs[0].Error, "database or disk is full") {
		t.Fatalf("faults = %+v, want the record fault since %s", fs, failedAt)
	}
	if _, err := r.db.LimitPages(ctx, 1<<30); err != nil {
		t.Fatal(err)
	}
	r.clk.Advance(time.Second)
	if res, err := r.lane.Handle(ctx, lane.Read{Source: localdb.SourceRemote, Value: "cmd-2"}); err != nil || !res.Granted {
		t.Fatalf("with room again: %+v, %v", res, err)
	}
	if fs := r.faults(t); len(fs) != 0 || r.bar.count() != 1 {
		t.Errorf("after a recorded decision: faults %+v, %d opens", fs, r.bar.count())
	}
}

// A barrier that does not report closed is a fault in the status until it
// reports a good position; the event is in the outbox as before.
func TestBarrierFault(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.lane.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	at := r.clk.Now().Add(-time.Second)
	r.lane.BarrierEvent(barrier.Event{Kind: barrier.EventFault, At: at, Fault: barrier.FaultNotClosed})
	fs := r.faults(t)
	if len(fs) != 1 || fs[0].Kind != faults.Barrier || !fs[0].Since.Equal(at) || !strings.Contains(fs[0].Error, "did not report closed") {
		t.Fatalf("faults = %+v, want the barrier's", fs)
	}
	waitFor(t, "the fault event in the outbox", func() bool {
		evs, err := r.db.Pending(ctx, 10)
		return err == nil && len(evs) == 1 && evs[0].Kind == localdb.KindBarrierFault
	})
	r.lane.BarrierEvent(barrier.Event{Kind: barrier.EventFaultCleared, At: r.clk.Now(), Fault: barrier.FaultNotClosed})
	if fs := r.faults(t); len(fs) != 0 {
		t.Errorf("faults after fault_cleared = %+v", fs)
	}
}

// A barrier fault that cannot be recorded (a full disk) does not stop the
// lane: it keeps deciding, and decides again once the disk has room.
func TestServeOutlivesAFullDisk(t *testing.T) {
	r := newRig(t)
	r.fill(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.lane.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	r.lane.BarrierEvent(barrier.Event{Kind: barrier.EventFault, At: r.clk.Now(), Fault: barrier.FaultNotOpened})
	waitFor(t, "the record fault", func() bool { return r.flt.Active(faults.Record) })
	select {
	case err := <-done:
		done <- err // for the deferred wait
		t.Fatalf("Serve ended on a full disk: %v", err)
	default:
	}
	if _, err := r.db.LimitPages(ctx, 1<<30); err != nil {
		t.Fatal(err)
	}
	if err := r.lane.Submit(lane.Read{Source: localdb.SourceRemote, Value: "cmd-1"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the queued read decided and the record fault cleared", func() bool {
		return r.bar.count() == 1 && !r.flt.Active(faults.Record)
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
