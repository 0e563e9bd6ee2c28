package localdb

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)

func openTemp(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sub", "gate.db")
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func entry(id, car string, state State, from time.Time, d time.Duration) Entry {
	return Entry{ReservationID: id, SpotID: "s-" + id, From: from, Until: from.Add(d), CarID: car, State: state}
}

func mustVersion(t *testing.T, db *DB, want int64) {
	t.Helper()
	v, err := db.Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if v != want {
		t.Fatalf("version %d, want %d", v, want)
	}
}

func mustLookup(t *testing.T, db *DB, id string) Entry {
	t.Helper()
	e, ok, err := db.Lookup(context.Background(), id)
	if err != nil || !ok {
		t.Fatalf("lookup %s: ok=%v err=%v", id, ok, err)
	}
	return e
}

func TestOpenCreatesPrivateFileAndReopens(t *testing.T) {
	ctx := context.Background()
	db, path := openTemp(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("database mode %04o, want no access for group and others", perm)
	}
	mustVersion(t, db, 0)
	if err := db.ApplySnapshot(ctx, 3, []Entry{entry("a", "X1", StatePaid, t0, time.Hour)}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db2, err := Open(ctx, path) // migrations are not applied twice
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	mustVersion(t, db2, 3)
	mustLookup(t, db2, "a")
	if _, err := Open(ctx, filepath.Join(t.TempDir(), "a?b.db")); err == nil {
		t.Error("a path with '?' was accepted")
	}
}

func TestSnapshotReplacesEverythingAtomically(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	err := db.ApplySnapshot(ctx, 5, []Entry{
		entry("a", "k-lm 42", StatePaid, t0, time.Hour),
		entry("b", "", StateTaken, t0, 2*time.Hour),
		entry("c", "B.XY-1", StateCancelled, t0, time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	mustVersion(t, db, 5)
	a := mustLookup(t, db, "a")
	want := Entry{ReservationID: "a", SpotID: "s-a", From: t0, Until: t0.Add(time.Hour), CarID: "k-lm 42",
		Plate: "KLM42", State: StatePaid, Version: 5}
	if a != want {
		t.Errorf("lookup a = %+v, want %+v", a, want)
	}
	if n, _ := db.Count(ctx); n != 3 {
		t.Errorf("count %d, want 3", n)
	}

	// A new snapshot drops what it does not list, and may go back in
	// version (central restored from a backup is still central).
	if err := db.ApplySnapshot(ctx, 2, []Entry{entry("d", "", StatePaid, t0, time.Hour)}); err != nil {
		t.Fatal(err)
	}
	mustVersion(t, db, 2)
	for _, id := range []string{"a", "b", "c"} {
		if _, ok, _ := db.Lookup(ctx, id); ok {
			t.Errorf("%s survived the snapshot", id)
		}
	}
	mustLookup(t, db, "d")

	// An invalid snapshot changes nothing.
	bad := []Entry{entry("e", "", StatePaid, t0, time.Hour), entry("f", "", "weird", t0, time.Hour)}
	if err := db.ApplySnapshot(ctx, 9, bad); err == nil || !strings.Contains(err.Error(), `"f"`) {
		t.Fatalf("invalid snapshot: err = %v, want one naming f", err)
	}
	dup := []Entry{entry("e", "", StatePaid, t0, time.Hour), entry("e", "", StatePaid, t0, time.Hour)}
	if err := db.ApplySnapshot(ctx, 9, dup); err == nil {
		t.Fatal("a snapshot listing a reservation twice was accepted")
	}
	mustVersion(t, db, 2)
	mustLookup(t, db, "d")
	if err := db.ApplySnapshot(ctx, 10, nil); err != nil { // empty: clears
		t.Fatal(err)
	}
	if n, _ := db.Count(ctx); n != 0 {
		t.Errorf("count %d after an empty snapshot", n)
	}
}

func TestChangesApplyOnlyOnTopOfTheHeldVersion(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	ch := func(prev, v int64, e Entry) Change { return Change{Prev: prev, Version: v, Entry: e} }

	applied, err := db.ApplyChange(ctx, ch(0, 1, entry("a", "A1", StatePaid, t0, time.Hour)))
	if err != nil || !applied {
		t.Fatalf("first change: applied=%v err=%v", applied, err)
	}
	mustVersion(t, db, 1)

	// A retransmission is old news: skipped, no error.
	applied, err = db.ApplyChange(ctx, ch(0, 1, entry("a", "A1", StateCancelled, t0, time.Hour)))
	if err != nil || applied {
		t.Fatalf("repeated change: applied=%v err=%v", applied, err)
	}
	if e := mustLookup(t, db, "a"); e.State != StatePaid {
		t.Errorf("a retransmitted change overwrote newer state: %s", e.State)
	}

	// A change on top of a version the cache does not hold is a gap.
	applied, err = db.ApplyChange(ctx, ch(3, 4, entry("b", "", StatePaid, t0, time.Hour)))
	var gap *GapError
	if applied || !errors.Is(err, ErrVersionGap) || !errors.As(err, &gap) {
		t.Fatalf("gap: applied=%v err=%v", applied, err)
	}
	if *gap != (GapError{Held: 1, Prev: 3, Version: 4}) {
		t.Errorf("gap = %+v", *gap)
	}
	if _, ok, _ := db.Lookup(ctx, "b"); ok {
		t.Error("a change after a gap was applied")
	}
	mustVersion(t, db, 1)

	// Versions may have holes, as long as Prev says what came before.
	if applied, err := db.ApplyChange(ctx, ch(1, 7, entry("b", "", StatePaid, t0, time.Hour))); err != nil || !applied {
		t.Fatalf("change 1→7: applied=%v err=%v", applied, err)
	}
	mustVersion(t, db, 7)
	if e := mustLookup(t, db, "b"); e.Version != 7 {
		t.Errorf("entry version %d, want 7", e.Version)
	}

	// Invalid changes are errors, not gaps, and apply nothing.
	for _, c := range []Change{
		ch(7, 7, entry("c", "", StatePaid, t0, time.Hour)),
		ch(7, 8, entry("", "", StatePaid, t0, time.Hour)),
		ch(7, 8, entry("c", "", StatePaid, t0, 0)),
		ch(-1, 8, entry("c", "", StatePaid, t0, time.Hour)),
	} {
		if _, err := db.ApplyChange(ctx, c); err == nil || errors.Is(err, ErrVersionGap) {
			t.Errorf("invalid change %+v: err = %v", c, err)
		}
	}
	mustVersion(t, db, 7)
}

func TestApplyChangesBatchStopsAtTheGap(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	if err := db.ApplySnapshot(ctx, 10, nil); err != nil {
		t.Fatal(err)
	}
	n, err := db.ApplyChanges(ctx,
		Change{Prev: 8, Version: 9, Entry: entry("old", "", StatePaid, t0, time.Hour)}, // already covered
		Change{Prev: 10, Version: 11, Entry: entry("a", "", StatePaid, t0, time.Hour)},
		Change{Prev: 11, Version: 12, Entry: entry("b", "", StatePaid, t0, time.Hour)},
		Change{Prev: 13, Version: 14, Entry: entry("c", "", StatePaid, t0, time.Hour)}, // 12→13 missed
		Change{Prev: 14, Version: 15, Entry: entry("d", "", StatePaid, t0, time.Hour)},
	)
	if n != 2 || !errors.Is(err, ErrVersionGap) {
		t.Fatalf("n=%d err=%v, want 2 and a gap", n, err)
	}
	mustVersion(t, db, 12)
	for id, want := range map[string]bool{"old": false, "a": true, "b": true, "c": false, "d": false} {
		if _, ok, _ := db.Lookup(ctx, id); ok != want {
			t.Errorf("%s cached = %v, want %v", id, ok, want)
		}
	}
}

func TestRevocationIsKept(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	for i, st := range []State{StateCancelled, StateNoShow, StateExpired, StateLeft} {
		id := string(st)
		v := int64(2 * i)
		if _, err := db.ApplyChange(ctx, Change{Prev: v, Version: v + 1, Entry: entry(id, "P"+id, StatePaid, t0, time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ApplyChange(ctx, Change{Prev: v + 1, Version: v + 2, Entry: entry(id, "P"+id, st, t0, time.Hour)}); err != nil {
			t.Fatal(err)
		}
		e := mustLookup(t, db, id)
		if e.State != st || !e.State.Final() || e.State.Revoked() != (st != StateLeft) {
			t.Errorf("%s: state %s final=%v revoked=%v", id, e.State, e.State.Final(), e.State.Revoked())
		}
	}
	for _, st := range []State{StateReserved, StatePaid, StateTaken} {
		if st.Final() || st.Revoked() {
			t.Errorf("%s counted as final or revoked", st)
		}
	}
}

func TestByPlate(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	err := db.ApplySnapshot(ctx, 1, []Entry{
		entry("late", "K-LM 42", StatePaid, t0.Add(5*time.Hour), time.Hour),
		entry("early", "klm42", StateLeft, t0, time.Hour),
		entry("other", "KLM43", StatePaid, t0, time.Hour),
		entry("none", "", StatePaid, t0, time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"KLM42", "k-lm 42", " k.l.m-42 "} {
		es, err := db.ByPlate(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range es {
			ids = append(ids, e.ReservationID)
		}
		if !slices.Equal(ids, []string{"early", "late"}) {
			t.Errorf("ByPlate(%q) = %v, want [early late]", q, ids)
		}
	}
	if es, err := db.ByPlate(ctx, " - "); err != nil || len(es) != 0 {
		t.Errorf("empty plate: %v, %v", es, err)
	}
	if es, err := db.ByPlate(ctx, "NOPE"); err != nil || len(es) != 0 {
		t.Errorf("unknown plate: %v, %v", es, err)
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	now := t0.Add(30 * 24 * time.Hour)
	old := now.Add(-DefaultRetention - 2*time.Hour) // ended more than a retention ago
	err := db.ApplySnapshot(ctx, 1, []Entry{
		entry("old-left", "", StateLeft, old, time.Hour),
		entry("old-cancelled", "", StateCancelled, old, time.Hour),
		entry("old-paid", "", StatePaid, old, time.Hour),
		entry("old-taken", "", StateTaken, old, time.Hour),      // car still inside, says central
		entry("old-paid-inside", "", StatePaid, old, time.Hour), // inside, says this gate
		entry("old-left-inside", "", StateLeft, old, time.Hour), // left wins over this gate's entry
		entry("recent-cancelled", "", StateCancelled, now.Add(-48*time.Hour), time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"old-paid-inside", "old-left-inside"} {
		if _, err := db.Record(ctx, Event{GateID: "g", Role: RoleEntry, Time: old, ReservationID: id}, Entered); err != nil {
			t.Fatal(err)
		}
	}
	// Presence of a reservation never cached: old and out goes, recent stays.
	if err := db.MarkExited(ctx, "gone", old); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkExited(ctx, "fresh", now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}

	n, err := db.Prune(ctx, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	kept := map[string]bool{"old-taken": true, "old-paid-inside": true, "recent-cancelled": true}
	for _, id := range []string{"old-left", "old-cancelled", "old-paid", "old-taken", "old-paid-inside", "old-left-inside", "recent-cancelled"} {
		if _, ok, _ := db.Lookup(ctx, id); ok != kept[id] {
			t.Errorf("%s kept = %v, want %v", id, ok, kept[id])
		}
	}
	for id, want := range map[string]bool{"gone": false, "fresh": true, "old-paid-inside": true, "old-left-inside": false} {
		if p, _ := db.Presence(ctx, id); p.Known != want {
			t.Errorf("presence of %s kept = %v, want %v", id, p.Known, want)
		}
	}
	if n != 6 { // 4 reservations, 2 presence rows
		t.Errorf("pruned %d rows, want 6", n)
	}
	mustVersion(t, db, 1)
}

func TestPresence(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	p, err := db.Presence(ctx, "r")
	if err != nil || p.Known {
		t.Fatalf("unknown reservation: %+v %v", p, err)
	}
	if in, _, _ := db.Inside(ctx, "r"); in {
		t.Fatal("unknown reservation inside")
	}

	if err := db.MarkEntered(ctx, "r", t0); err != nil {
		t.Fatal(err)
	}
	in, at, err := db.Inside(ctx, "r")
	if err != nil || !in || !at.Equal(t0) {
		t.Fatalf("after MarkEntered: inside=%v at=%v err=%v", in, at, err)
	}
	// A late report of something older does not flip the state.
	if err := db.MarkExited(ctx, "r", t0.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	p, _ = db.Presence(ctx, "r")
	if !p.Known || !p.Inside || !p.ExitedAt.Equal(t0.Add(-time.Minute)) || !p.At.Equal(t0) {
		t.Fatalf("after an older exit report: %+v", p)
	}
	if err := db.MarkExited(ctx, "r", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	p, _ = db.Presence(ctx, "r")
	if !p.Known || p.Inside || !p.ExitedAt.Equal(t0.Add(time.Hour)) || !p.EnteredAt.Equal(t0) {
		t.Fatalf("after a newer exit report: %+v", p)
	}
	// The gate's own observation wins even with an older timestamp (an
	// untrusted clock running behind).
	if _, err := db.Record(ctx, Event{GateID: "g", Role: RoleEntry, Time: t0.Add(-24 * time.Hour), ReservationID: "r"}, Entered); err != nil {
		t.Fatal(err)
	}
	if in, _, _ := db.Inside(ctx, "r"); !in {
		t.Fatal("the gate's own entry did not mark the car inside")
	}
	if err := db.MarkEntered(ctx, "", t0); err == nil {
		t.Error("empty reservation id accepted")
	}
	if err := db.MarkEntered(ctx, "r", time.Time{}); err == nil {
		t.Error("zero time accepted")
	}
}

func decision(resID string, at time.Time) Event {
	return Event{GateID: "entry-1", Role: RoleEntry, Time: at, Source: SourceQR, Granted: true, Reason: "ticket",
		ReservationID: resID, SpotID: "7", CarID: "K-LM 42", Plate: "KLM42", ClockTrusted: true}
}

func TestRecordCommitsEventAndPresenceTogether(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	ev, err := db.Record(ctx, decision("r1", t0.Add(123456789*time.Nanosecond)), Entered)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Seq != 1 || len(ev.EventID) != 32 || ev.Kind != KindDecision {
		t.Errorf("stored event %+v", ev)
	}
	pending, err := db.Pending(ctx, 0)
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending %v %v", pending, err)
	}
	if pending[0] != ev {
		t.Errorf("read back %+v\nwant       %+v", pending[0], ev)
	}
	if in, _, _ := db.Inside(ctx, "r1"); !in {
		t.Error("entry recorded without presence")
	}
	if _, err := db.Record(ctx, Event{GateID: "exit-1", Role: RoleExit, Time: t0.Add(time.Hour), ReservationID: "r1"}, Exited); err != nil {
		t.Fatal(err)
	}
	if p, _ := db.Presence(ctx, "r1"); !p.Known || p.Inside {
		t.Errorf("after exit: %+v", p)
	}

	// A failed Record changes nothing: the duplicate id aborts the
	// transaction, presence included.
	dup := decision("r2", t0)
	dup.EventID = ev.EventID
	if _, err := db.Record(ctx, dup, Entered); !errors.Is(err, ErrDuplicateEvent) {
		t.Fatalf("duplicate event id: %v", err)
	}
	if p, _ := db.Presence(ctx, "r2"); p.Known {
		t.Error("presence committed without its event")
	}

	for name, ev := range map[string]Event{
		"no time":    {GateID: "g", Role: RoleEntry},
		"no gate":    {Role: RoleEntry, Time: t0},
		"bad role":   {GateID: "g", Role: "side", Time: t0},
		"no res id":  {GateID: "g", Role: RoleEntry, Time: t0},
		"bad evt id": {GateID: "g", Role: RoleEntry, Time: t0, ReservationID: "x", EventID: "a b"},
	} {
		if _, err := db.Record(ctx, ev, Entered); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if n, _ := db.Depth(ctx); n != 2 {
		t.Errorf("depth %d, want 2", n)
	}
}

func TestOutboxSeqIsMonotonicAcrossAcksAndReopen(t *testing.T) {
	ctx := context.Background()
	db, path := openTemp(t)
	var ids []string
	for i := range 5 {
		ev, err := db.Record(ctx, decision("r", t0.Add(time.Duration(i)*time.Second)), NoPresenceChange)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Seq != int64(i+1) {
			t.Fatalf("event %d got seq %d", i, ev.Seq)
		}
		ids = append(ids, ev.EventID)
	}
	page, err := db.Pending(ctx, 2)
	if err != nil || len(page) != 2 || page[0].Seq != 1 || page[1].Seq != 2 {
		t.Fatalf("first page %+v %v", page, err)
	}
	page, err = db.PendingAfter(ctx, 2, 10)
	if err != nil || len(page) != 3 || page[0].Seq != 3 {
		t.Fatalf("after 2: %+v %v", page, err)
	}

	if n, err := db.Ack(ctx, ids[1], "unknown", ids[1]); err != nil || n != 1 {
		t.Fatalf("ack: n=%d err=%v", n, err)
	}
	if n, err := db.AckThrough(ctx, 3); err != nil || n != 2 {
		t.Fatalf("ack through 3: n=%d err=%v", n, err)
	}
	if n, _ := db.Depth(ctx); n != 2 {
		t.Fatalf("depth %d, want 2", n)
	}
	// Acknowledge the newest events too: their numbers must still not be
	// handed out again.
	if _, err := db.AckThrough(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.Depth(ctx); n != 0 {
		t.Fatalf("depth %d, want 0", n)
	}
	db.Close()

	db, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if last, _ := db.LastSeq(ctx); last != 5 {
		t.Errorf("last seq %d after reopen, want 5", last)
	}
	ev, err := db.Record(ctx, decision("r", t0.Add(time.Minute)), NoPresenceChange)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Seq != 6 {
		t.Errorf("seq after acks and reopen = %d, want 6", ev.Seq)
	}
}

func TestConcurrentRecordsGetDistinctSeqs(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	const workers, each = 8, 10
	var (
		mu   sync.Mutex
		seqs []int64
		wg   sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				ev, err := db.Record(ctx, decision("r", t0.Add(time.Duration(w*each+i)*time.Millisecond)), NoPresenceChange)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seqs = append(seqs, ev.Seq)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(seqs)
	if len(slices.Compact(seqs)) != workers*each {
		t.Errorf("duplicate seqs among %v", seqs)
	}
}

func TestNewestTime(t *testing.T) {
	ctx := context.Background()
	db, path := openTemp(t)
	if nt, err := db.NewestTime(ctx); err != nil || !nt.IsZero() {
		t.Fatalf("fresh db: %v %v", nt, err)
	}
	if _, err := db.Record(ctx, decision("r", t0), NoPresenceChange); err != nil {
		t.Fatal(err)
	}
	untrusted := decision("r", t0.Add(100*24*time.Hour))
	untrusted.ClockTrusted = false
	if _, err := db.Record(ctx, untrusted, NoPresenceChange); err != nil {
		t.Fatal(err)
	}
	if nt, _ := db.NewestTime(ctx); !nt.Equal(t0) {
		t.Errorf("newest %v, want %v (untrusted times do not count)", nt, t0)
	}
	if err := db.NoteTime(ctx, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := db.NoteTime(ctx, t0.Add(-time.Hour)); err != nil { // never lowers
		t.Fatal(err)
	}
	// Acknowledging the events keeps the time.
	if _, err := db.AckThrough(ctx, 100); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if nt, _ := db.NewestTime(ctx); !nt.Equal(t0.Add(time.Hour)) {
		t.Errorf("newest after reopen %v, want %v", nt, t0.Add(time.Hour))
	}
}

// A marker moves the version over central's versions that concern no
// gate, so the next batch is not taken for a gap.
func TestMarkerMovesTheVersion(t *testing.T) {
	ctx := context.Background()
	db, _ := openTemp(t)
	if err := db.ApplySnapshot(ctx, 10, nil); err != nil {
		t.Fatal(err)
	}
	n, err := db.ApplyChanges(ctx, Change{Prev: 10, Version: 14})
	if err != nil || n != 0 {
		t.Fatalf("marker: %d %v", n, err)
	}
	if v, _ := db.Version(ctx); v != 14 {
		t.Fatalf("version %d after the marker", v)
	}
	n, err = db.ApplyChanges(ctx, Change{Prev: 14, Version: 15, Entry: entry("a", "X1", StatePaid, t0, time.Hour)}, Change{Prev: 15, Version: 18})
	if err != nil || n != 1 {
		t.Fatalf("entry then marker: %d %v", n, err)
	}
	if v, _ := db.Version(ctx); v != 18 {
		t.Fatalf("version %d", v)
	}
}
