// Package storetest is the contract every store.Store implementation must
// pass, so that the embedded SQLite store and the PostgreSQL one behave the
// same for the booking rules. It assumes nothing about the engine.
package storetest

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/broker"
	"github.com/parkgate/parkgate/central/enroll"
	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/internal/enrollment"
)

// base is a fixed instant, so runs are reproducible; it is in the future so
// nothing in a store could treat the windows as already past.
var base = time.Date(2030, 6, 3, 8, 0, 0, 0, time.UTC)

func at(h float64) time.Time { return base.Add(time.Duration(h * float64(time.Hour))) }

// Run runs the contract suite. open must return a new, empty store for each
// call and arrange (with t.Cleanup) for it to be closed and removed.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Spots", testSpots},
		{"RoundTrip", testRoundTrip},
		{"Overlap", testOverlap},
		{"Availability", testAvailability},
		{"FinalStatesFreeWindow", testFinalStates},
		{"Errors", testErrors},
		{"Rollback", testRollback},
		{"ChangeLog", testChangeLog},
		{"ChangeLogCommitOrder", testChangeLogCommitOrder},
		{"List", testList},
		{"ListPages", testListPages},
		{"GateEventPages", testGateEventPages},
		{"RefundPages", testRefundPages},
		{"Lookups", testLookups},
		{"Current", testCurrent},
		{"PaymentAttempts", testPaymentAttempts},
		{"Refunds", testRefunds},
		{"PaymentEvents", testPaymentEvents},
		{"Gates", testGates},
		{"GateEvents", testGateEvents},
		{"ConcurrentBooking", testConcurrentBooking},
		{"RelayPosition", testRelayPosition},
		{"ChangeNotifier", testChangeNotifier},
		{"ResolveGateEvent", testResolveGateEvent},
		{"ResolvePaymentException", testResolvePaymentException},
		{"LatestRefunds", testLatestRefunds},
		{"OperatorActionsInLog", testOperatorActionsInLog},
		{"Operators", testOperators},
		{"Enrollment", testEnrollment},
		{"Retention", testRetention},
		{"RetentionConcurrent", testRetentionConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

// write runs fn in s.Write and fails the test on error.
func write(t *testing.T, s store.Store, fn func(tx store.Tx) error) {
	t.Helper()
	if err := s.Write(context.Background(), fn); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

// try runs fn in its own Write and returns its error: after a failed
// statement some engines (PostgreSQL) refuse the rest of the transaction, so
// each expected failure gets a transaction of its own.
func try(s store.Store, fn func(tx store.Tx) error) error {
	return s.Write(context.Background(), fn)
}

func insert(t *testing.T, s store.Store, rs ...reservation.Reservation) {
	t.Helper()
	write(t, s, func(tx store.Tx) error {
		for _, r := range rs {
			if err := tx.Insert(r); err != nil {
				return err
			}
		}
		return nil
	})
}

func setSpots(t *testing.T, s store.Store, ids ...string) {
	t.Helper()
	if err := s.SetSpots(context.Background(), ids, base.Add(-time.Hour)); err != nil {
		t.Fatalf("SetSpots(%v): %v", ids, err)
	}
}

// res is a live reservation with the fields a fresh one has.
func res(id, spot string, from, until float64) reservation.Reservation {
	return reservation.Reservation{
		ID: id, SpotID: spot, State: reservation.Reserved, Source: reservation.SourceDriver,
		From: at(from), Until: at(until), CreatedAt: base.Add(-2 * time.Hour),
		Amount: 250, Currency: "eur", TokenHash: []byte("hash-" + id),
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got error %v, want %v", what, err, want)
	}
}

func get(t *testing.T, s store.Store, id string) reservation.Reservation {
	t.Helper()
	r, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return r
}

// allChanges reads the whole change log.
func allChanges(t *testing.T, s store.Store) []store.Change { t.Helper(); return changesAfter(t, s, 0) }

// changesAfter reads the change log after version after, in small pages.
func changesAfter(t *testing.T, s store.Store, after int64) []store.Change {
	t.Helper()
	var out []store.Change
	for {
		cs, err := s.Changes(context.Background(), after, 100)
		if err != nil {
			t.Fatalf("Changes: %v", err)
		}
		if len(cs) == 0 {
			return out
		}
		out = append(out, cs...)
		after = cs[len(cs)-1].Version
	}
}

// lastVersion is the newest version in the log, which Version must report.
func lastVersion(t *testing.T, s store.Store) int64 {
	t.Helper()
	cs := allChanges(t, s)
	var want int64
	if len(cs) > 0 {
		want = cs[len(cs)-1].Version
	}
	v, err := s.Version(context.Background())
	if err != nil || v != want {
		t.Errorf("Version() = %d, %v; the log ends at %d", v, err, want)
	}
	return want
}

// checkUTC fails unless every time in r is UTC (or zero).
func checkUTC(t *testing.T, what string, ts ...time.Time) {
	t.Helper()
	for i, x := range ts {
		if !x.IsZero() && x.Location() != time.UTC {
			t.Errorf("%s: time #%d %v is not UTC", what, i, x)
		}
	}
}

func resTimes(r reservation.Reservation) []time.Time {
	return []time.Time{r.From, r.Until, r.CreatedAt, r.PaidAt, r.CheckedInAt, r.LeftAt, r.EndedAt, r.PaymentStartedAt}
}

// sameRes compares reservations field by field, times by instant, and
// requires the got times to be UTC.
func sameRes(t *testing.T, what string, got, want reservation.Reservation) {
	t.Helper()
	checkUTC(t, what, resTimes(got)...)
	g, w := got, want
	for _, p := range []struct{ g, w *time.Time }{{&g.From, &w.From}, {&g.Until, &w.Until},
		{&g.CreatedAt, &w.CreatedAt}, {&g.PaidAt, &w.PaidAt}, {&g.CheckedInAt, &w.CheckedInAt},
		{&g.LeftAt, &w.LeftAt}, {&g.EndedAt, &w.EndedAt}, {&g.PaymentStartedAt, &w.PaymentStartedAt}} {
		if !p.g.Equal(*p.w) || p.g.IsZero() != p.w.IsZero() {
			t.Errorf("%s: time %v, want %v", what, *p.g, *p.w)
		}
		*p.g, *p.w = time.Time{}, time.Time{}
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

// public is what the change log may show of r.
func public(r reservation.Reservation) reservation.Reservation {
	r.TokenHash, r.PaymentAttempts, r.PaymentRef, r.PaymentStartedAt = nil, 0, "", time.Time{}
	return r
}

func ids(rs []reservation.Reservation) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

func testSpots(t *testing.T, s store.Store) {
	ctx := context.Background()
	spots := func(want ...string) {
		t.Helper()
		got, err := s.Spots(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("Spots = %v, want %v", got, want)
		}
	}
	// kinds returns the kind:spot of the changes after v, sorted, since
	// the order of adds and retires within one SetSpots is not part of the
	// contract.
	kinds := func(after int64, when time.Time) []string {
		t.Helper()
		var out []string
		for _, c := range changesAfter(t, s, after) {
			if c.Actor != "system" || c.Reservation != nil || c.ReservationID != "" || !c.At.Equal(when) {
				t.Errorf("spot change %+v: want actor system, no reservation, at %v", c, when)
			}
			checkUTC(t, "change", c.At)
			out = append(out, c.Kind+":"+c.SpotID)
		}
		slices.Sort(out)
		return out
	}
	t0, t1, t2 := at(-10), at(-5), at(-1)
	spots()
	if err := s.SetSpots(ctx, []string{"1", "2", "3", "10"}, t0); err != nil {
		t.Fatal(err)
	}
	spots("1", "2", "3", "10")
	if got, want := kinds(0, t0), []string{"spot.added:1", "spot.added:10", "spot.added:2", "spot.added:3"}; !slices.Equal(got, want) {
		t.Errorf("changes = %v, want %v", got, want)
	}
	v := lastVersion(t, s)
	if err := s.SetSpots(ctx, []string{"1", "2", "3", "10"}, t1); err != nil {
		t.Fatal(err)
	}
	if got := kinds(v, t1); len(got) != 0 {
		t.Errorf("same spots again logged %v", got)
	}

	if err := s.SetSpots(ctx, []string{"10", "3", "1", "4"}, t1); err != nil {
		t.Fatal(err)
	}
	spots("10", "3", "1", "4")
	if got, want := kinds(v, t1), []string{"spot.added:4", "spot.retired:2"}; !slices.Equal(got, want) {
		t.Errorf("changes = %v, want %v", got, want)
	}
	write(t, s, func(tx store.Tx) error {
		for id, want := range map[string]bool{"1": true, "4": true, "2": false, "nope": false} {
			got, err := tx.Spot(id)
			if err != nil {
				return err
			}
			if got != want {
				t.Errorf("Tx.Spot(%q) = %v, want %v", id, got, want)
			}
		}
		return nil
	})

	// A retired spot listed again is back, where it is now listed.
	v = lastVersion(t, s)
	if err := s.SetSpots(ctx, []string{"2", "1"}, t2); err != nil {
		t.Fatal(err)
	}
	spots("2", "1")
	if got, want := kinds(v, t2), []string{"spot.added:2", "spot.retired:10", "spot.retired:3", "spot.retired:4"}; !slices.Equal(got, want) {
		t.Errorf("changes = %v, want %v", got, want)
	}
}

func testRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	setSpots(t, s, "A", "B")
	cest := time.FixedZone("CEST", 2*3600)
	full := reservation.Reservation{
		ID: "r-full", SpotID: "A", State: reservation.Taken, Source: reservation.SourceOperator,
		From: time.Date(2030, 6, 3, 10, 0, 0, 123456000, cest), Until: time.Date(2030, 6, 3, 12, 30, 0, 0, cest),
		CreatedAt: time.Date(2030, 6, 1, 9, 15, 1, 999999000, time.UTC), CarID: "KLM42", Amount: 1250,
		Currency: "eur", Reference: "fleet 7 / invoice 2030-118", PaidAt: at(-1).Add(7 * time.Microsecond),
		CheckedInAt: at(1.5), LeftAt: at(4), EndedAt: at(4.25), TokenHash: []byte{0, 1, 2, 0xfe, 0xff},
		PaymentAttempts: 3, PaymentRef: "pi_123", PaymentStartedAt: at(-1.5),
	}
	bare := reservation.Reservation{
		ID: "r-bare", SpotID: "B", State: reservation.Reserved, Source: reservation.SourceDriver,
		From: at(1), Until: at(2),
	}
	insert(t, s, full, bare)
	sameRes(t, "full", get(t, s, full.ID), full)
	sameRes(t, "bare", get(t, s, bare.ID), bare)
	if g := get(t, s, bare.ID); !g.PaidAt.IsZero() || !g.CreatedAt.IsZero() || g.TokenHash != nil {
		t.Errorf("zero fields came back set: %+v", g)
	}
	write(t, s, func(tx store.Tx) error {
		g, err := tx.Get(full.ID)
		if err != nil {
			return err
		}
		sameRes(t, "Tx.Get", g, full)
		return nil
	})

	r, err := s.ByTokenHash(ctx, full.TokenHash)
	if err != nil {
		t.Fatal(err)
	}
	sameRes(t, "ByTokenHash", r, full)
	_, err = s.ByTokenHash(ctx, []byte("no such hash"))
	wantErr(t, "ByTokenHash(unknown)", err, store.ErrNotFound)

	// Update stores every field, including clearing ones.
	upd := full
	upd.State, upd.CarID, upd.Amount, upd.Reference = reservation.Paid, "B-XY 1", 999, ""
	upd.CheckedInAt, upd.LeftAt, upd.EndedAt = time.Time{}, time.Time{}, time.Time{}
	upd.TokenHash, upd.PaymentAttempts, upd.PaymentRef, upd.PaymentStartedAt = []byte("new"), 4, "pi_456", time.Time{}
	upd.From, upd.Until = at(20), at(21.5)
	write(t, s, func(tx store.Tx) error { return tx.Update(upd) })
	sameRes(t, "updated", get(t, s, full.ID), upd)
	if r, err := s.ByTokenHash(ctx, []byte("new")); err != nil || r.ID != upd.ID {
		t.Errorf("ByTokenHash(new) = %v, %v", r.ID, err)
	}
	_, err = s.ByTokenHash(ctx, full.TokenHash)
	wantErr(t, "ByTokenHash(old)", err, store.ErrNotFound)
}

func testOverlap(t *testing.T, s store.Store) {
	setSpots(t, s, "1", "2")
	insert(t, s, res("a", "1", 10, 12))
	for _, c := range []struct {
		name        string
		from, until float64
	}{{"inside", 10.5, 11.5}, {"start", 11, 13}, {"end", 9, 10.5}, {"around", 9, 13}, {"same", 10, 12}} {
		err := try(s, func(tx store.Tx) error { return tx.Insert(res("x-"+c.name, "1", c.from, c.until)) })
		wantErr(t, "Insert overlapping "+c.name, err, store.ErrOverlap)
	}
	// Adjacent windows are half-open and do not overlap; nor do other spots.
	insert(t, s, res("before", "1", 8, 10), res("after", "1", 12, 14), res("other", "2", 10, 12))
	// A final reservation holds nothing, and may overlap.
	gone := res("gone", "1", 11, 13)
	gone.State = reservation.Cancelled
	insert(t, s, gone)

	// Update is guarded the same way, without the caller checking Live.
	moved := res("after", "1", 11, 14)
	err := try(s, func(tx store.Tx) error { return tx.Update(moved) })
	wantErr(t, "Update into an overlap", err, store.ErrOverlap)
	revived := gone
	revived.State = reservation.Reserved
	err = try(s, func(tx store.Tx) error { return tx.Update(revived) })
	wantErr(t, "Update final to live over a live one", err, store.ErrOverlap)
	toSpot := res("other", "1", 10, 12)
	err = try(s, func(tx store.Tx) error { return tx.Update(toSpot) })
	wantErr(t, "Update onto a taken spot", err, store.ErrOverlap)

	// A reservation does not overlap itself.
	paid := res("a", "1", 10, 12)
	paid.State, paid.PaidAt = reservation.Paid, at(0)
	write(t, s, func(tx store.Tx) error { return tx.Update(paid) })
	shrunk := res("after", "1", 12.5, 14)
	write(t, s, func(tx store.Tx) error { return tx.Update(shrunk) })

	// Nothing failed left a trace.
	for _, id := range []string{"x-inside", "x-start", "x-end", "x-around", "x-same"} {
		_, err := s.Get(context.Background(), id)
		wantErr(t, "Get "+id, err, store.ErrNotFound)
	}
	if r := get(t, s, "gone"); r.State != reservation.Cancelled {
		t.Errorf("gone is %s after a refused update", r.State)
	}

	write(t, s, func(tx store.Tx) error {
		live, err := tx.Live("1", reservation.Window{From: at(9), Until: at(12.5)})
		if err != nil {
			return err
		}
		got := ids(live)
		slices.Sort(got)
		if want := []string{"a", "before"}; !slices.Equal(got, want) {
			t.Errorf("Live = %v, want %v", got, want)
		}
		return nil
	})
}

// testAvailability checks Tx.Availability.
func testAvailability(t *testing.T, s store.Store) {
	Availability(t, s, func(spotID string, w reservation.Window) (a store.Availability, err error) {
		err = s.Write(context.Background(), func(tx store.Tx) error {
			a, err = tx.Availability(spotID, w)
			return err
		})
		return a, err
	})
}

// Availability checks a store.Reader's Availability, read through read, on
// data it writes to s (a new, empty store); testAvailability runs it on
// Tx.Availability. Exported so that any other Reader a store offers can be
// held to the same cases.
func Availability(t *testing.T, s store.Store, read func(spotID string, w reservation.Window) (store.Availability, error)) {
	setSpots(t, s, "1", "2", "3")
	left := res("left", "1", 4, 6)
	left.State, left.LeftAt = reservation.Left, at(5)
	cancelled := res("cancelled", "1", 8, 10)
	cancelled.State = reservation.Cancelled
	paid := res("paid", "1", 12, 14)
	paid.State, paid.PaidAt = reservation.Paid, at(0)
	// Spot 1: live 10-12 (reserved), 12-14 (paid), 20-22 (reserved);
	// final ones over 4-6 and 8-10. Spot 2: live 10-12, then retired.
	insert(t, s, res("a", "1", 10, 12), paid, res("late", "1", 20, 22), left, cancelled, res("b", "2", 10, 12))
	setSpots(t, s, "1", "3")
	w := func(from, until float64) reservation.Window {
		return reservation.Window{From: at(from), Until: at(until)}
	}
	for _, c := range []struct {
		name         string
		spot         string
		win          reservation.Window
		active       bool
		blocker      string
		blockerStart float64
	}{
		{"free spot", "3", w(10, 12), true, "", 0},
		{"unknown spot", "9", w(10, 12), false, "", 0},
		{"retired spot, free window", "2", w(30, 32), false, "", 0},
		{"retired spot, its live reservation", "2", w(11, 13), false, "b", 10},
		{"before everything", "1", w(0, 4), true, "", 0},
		{"over final ones only", "1", w(4, 10), true, "", 0},
		{"touching the start", "1", w(9, 10), true, "", 0},
		{"inside one", "1", w(10.5, 11), true, "a", 10},
		{"over two: the earlier", "1", w(11, 13), true, "a", 10},
		{"over three: the earliest", "1", w(8, 23), true, "a", 10},
		{"touching the end", "1", w(14, 15), true, "", 0},
		{"between", "1", w(14, 20), true, "", 0},
		{"after the gap", "1", w(15, 21), true, "late", 20},
		{"after everything", "1", w(22, 30), true, "", 0},
	} {
		a, err := read(c.spot, c.win)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		want := store.Availability{Active: c.active, BlockerID: c.blocker}
		if c.blocker != "" {
			want.Blocker = reservation.Window{From: at(c.blockerStart), Until: at(c.blockerStart + 2)}
		}
		if a.Active != want.Active || a.BlockerID != want.BlockerID || !a.Blocker.From.Equal(want.Blocker.From) || !a.Blocker.Until.Equal(want.Blocker.Until) {
			t.Errorf("%s: Availability(%s, %v) = %+v, want %+v", c.name, c.spot, c.win, a, want)
		}
	}
}

func testFinalStates(t *testing.T, s store.Store) {
	setSpots(t, s, "1")
	for i, st := range []reservation.State{reservation.Left, reservation.Expired, reservation.NoShow, reservation.Cancelled} {
		from := float64(10 * i)
		old := res("old-"+string(st), "1", from, from+2)
		insert(t, s, old)
		err := try(s, func(tx store.Tx) error { return tx.Insert(res("early-"+string(st), "1", from+1, from+3)) })
		wantErr(t, "Insert over live "+string(st), err, store.ErrOverlap)
		old.State, old.EndedAt = st, at(from+0.5)
		write(t, s, func(tx store.Tx) error { return tx.Update(old) })
		insert(t, s, res("new-"+string(st), "1", from+1, from+3))
		write(t, s, func(tx store.Tx) error {
			live, err := tx.Live("1", reservation.Window{From: at(from), Until: at(from + 3)})
			if err != nil {
				return err
			}
			if got := ids(live); !slices.Equal(got, []string{"new-" + string(st)}) {
				t.Errorf("%s: Live = %v", st, got)
			}
			return nil
		})
		// The final one stays final: it cannot come back over the new one.
		old.State = reservation.Paid
		err = try(s, func(tx store.Tx) error { return tx.Update(old) })
		wantErr(t, "revive "+string(st), err, store.ErrOverlap)
	}
}

func testErrors(t *testing.T, s store.Store) {
	ctx := context.Background()
	setSpots(t, s, "1", "2")
	setSpots(t, s, "1")
	insert(t, s, res("a", "1", 1, 2))

	err := try(s, func(tx store.Tx) error { return tx.Insert(res("b", "nope", 1, 2)) })
	wantErr(t, "Insert on unknown spot", err, store.ErrUnknownSpot)
	err = try(s, func(tx store.Tx) error { return tx.Insert(res("b", "2", 1, 2)) })
	wantErr(t, "Insert on retired spot", err, store.ErrUnknownSpot)
	err = try(s, func(tx store.Tx) error { return tx.Insert(res("a", "1", 5, 6)) })
	wantErr(t, "Insert duplicate id", err, store.ErrDuplicate)

	_, err = s.Get(ctx, "nope")
	wantErr(t, "Get", err, store.ErrNotFound)
	_, err = s.ByTokenHash(ctx, []byte("nope"))
	wantErr(t, "ByTokenHash", err, store.ErrNotFound)
	err = try(s, func(tx store.Tx) error { _, err := tx.Get("nope"); return err })
	wantErr(t, "Tx.Get", err, store.ErrNotFound)
	err = try(s, func(tx store.Tx) error { return tx.Update(res("nope", "1", 7, 8)) })
	wantErr(t, "Tx.Update", err, store.ErrNotFound)
	err = try(s, func(tx store.Tx) error { _, err := tx.Attempt("a", []byte("nope")); return err })
	wantErr(t, "Tx.Attempt", err, store.ErrNotFound)

	// A reservation on a spot retired later keeps its history and can
	// still be finished.
	setSpots(t, s, "2")
	a := get(t, s, "a")
	a.State, a.EndedAt = reservation.Cancelled, at(0)
	write(t, s, func(tx store.Tx) error { return tx.Update(a) })
	if got := get(t, s, "a"); got.State != reservation.Cancelled {
		t.Errorf("state on retired spot = %s", got.State)
	}
}

func testRollback(t *testing.T, s store.Store) {
	ctx := context.Background()
	setSpots(t, s, "1")
	v := lastVersion(t, s)
	boom := errors.New("boom")
	r := res("a", "1", 1, 2)
	err := s.Write(ctx, func(tx store.Tx) error {
		if err := tx.Insert(r); err != nil {
			return err
		}
		if err := tx.Log(store.Change{At: at(0), Kind: store.KindCreated, SpotID: "1", ReservationID: "a", Actor: "driver", Reservation: &r}); err != nil {
			return err
		}
		if err := tx.PutAttempt(store.PaymentAttempt{ReservationID: "a", Number: 1, Outcome: store.AttemptPending, StartedAt: at(0)}); err != nil {
			return err
		}
		return fmt.Errorf("wrapped: %w", boom)
	})
	wantErr(t, "Write", err, boom)
	_, err = s.Get(ctx, "a")
	wantErr(t, "Get after rollback", err, store.ErrNotFound)
	if got := lastVersion(t, s); got != v {
		t.Errorf("change log moved from %d to %d", v, got)
	}
	if as, err := s.PaymentAttempts(ctx, "a"); err != nil || len(as) != 0 {
		t.Errorf("PaymentAttempts after rollback = %v, %v", as, err)
	}

	// A panic rolls back too, and reaches the caller.
	func() {
		defer func() {
			if p := recover(); p != "kaboom" {
				t.Errorf("recovered %v, want the panic", p)
			}
		}()
		s.Write(ctx, func(tx store.Tx) error {
			if err := tx.Insert(r); err != nil {
				return err
			}
			panic("kaboom")
		})
	}()
	_, err = s.Get(ctx, "a")
	wantErr(t, "Get after panic", err, store.ErrNotFound)

	// The store is still usable, and the window is free.
	insert(t, s, r)
	get(t, s, "a")
}

func testChangeLog(t *testing.T, s store.Store) {
	ctx := context.Background()
	setSpots(t, s, "1")
	v0 := lastVersion(t, s)
	var want []store.Change
	for i := range 5 {
		r := res(fmt.Sprintf("r%d", i), "1", float64(2*i), float64(2*i+1))
		r.PaymentAttempts, r.PaymentRef = 2, "secret"
		r.From = r.From.In(time.FixedZone("X", -3*3600))
		cancelled := r
		cancelled.State = reservation.Cancelled
		pubR, pubC := public(r), public(cancelled)
		c := store.Change{At: at(float64(i)).Add(time.Microsecond), Kind: store.KindCreated, SpotID: "1", ReservationID: r.ID, Actor: "driver", Reservation: &r}
		c2 := store.Change{At: at(float64(i)), Kind: store.KindCancelled, SpotID: "1", ReservationID: r.ID, Actor: "operator", Reservation: &cancelled}
		write(t, s, func(tx store.Tx) error {
			if err := tx.Insert(r); err != nil {
				return err
			}
			if err := tx.Log(c); err != nil {
				return err
			}
			if err := tx.Update(cancelled); err != nil {
				return err
			}
			return tx.Log(c2)
		})
		c.Reservation, c2.Reservation = &pubR, &pubC
		want = append(want, c, c2)
	}
	// Versions are assigned at commit, so they are only known by reading
	// the log back: its last entries must be ours, in the order logged.
	cs := allChanges(t, s)
	if len(cs) < len(want) {
		t.Fatalf("the log has %d entries, want at least %d", len(cs), len(want))
	}
	cs = cs[len(cs)-len(want):]
	prev := v0
	for i, c := range cs {
		w := want[i]
		checkUTC(t, "change", c.At)
		if c.Version <= prev {
			t.Errorf("change %d has version %d after %d: want strictly increasing", i, c.Version, prev)
		}
		prev = c.Version
		if !c.At.Equal(w.At) || c.Kind != w.Kind || c.SpotID != w.SpotID ||
			c.ReservationID != w.ReservationID || c.Actor != w.Actor || c.Reservation == nil {
			t.Errorf("change %d = %+v, want %+v", i, c, w)
			continue
		}
		sameRes(t, fmt.Sprintf("change %d snapshot", c.Version), *c.Reservation, *w.Reservation)
	}
	if v, err := s.Version(ctx); err != nil || v != cs[len(cs)-1].Version {
		t.Errorf("Version() = %d, %v; the log ends at %d", v, err, cs[len(cs)-1].Version)
	}
	// Paging: after and limit, by the versions read back.
	page, err := s.Changes(ctx, cs[3].Version, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 2 || page[0].Version != cs[4].Version || page[1].Version != cs[5].Version {
		t.Errorf("Changes(%d, 2) = %+v", cs[3].Version, page)
	}
	if page, err := s.Changes(ctx, cs[len(cs)-1].Version, 10); err != nil || len(page) != 0 {
		t.Errorf("Changes after the last = %v, %v", page, err)
	}
}

// testChangeLogCommitOrder checks that a follower paging through the log
// while writers commit never skips an entry: a version must not become
// visible before every lower one is.
func testChangeLogCommitOrder(t *testing.T, s store.Store) {
	ctx := context.Background()
	setSpots(t, s, "1")
	const writers, each = 8, 25
	done := make(chan struct{})
	follower := make(chan Followed, 1)
	go func() { follower <- FollowLog(ctx, s, 7, done) }()
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				errs <- s.Write(ctx, func(tx store.Tx) error {
					return tx.Log(store.Change{At: at(float64(i)), Kind: store.KindPaymentDeclined, Actor: fmt.Sprintf("w%d", w)})
				})
			}
		})
	}
	wg.Wait()
	close(done)
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	f := <-follower
	if f.Err != nil {
		t.Fatal(f.Err)
	}
	var seen []int64
	for _, c := range f.Changes {
		seen = append(seen, c.Version)
	}
	var all []int64
	for _, c := range allChanges(t, s) {
		all = append(all, c.Version)
	}
	if !slices.IsSorted(all) || len(slices.Compact(slices.Clone(all))) != len(all) {
		t.Fatalf("versions not strictly increasing: %v", all)
	}
	if !slices.Equal(seen, all) {
		t.Errorf("the follower saw %d entries, the log has %d: an entry became visible after a higher version", len(seen), len(all))
	}
}

// Followed is what FollowLog read.
type Followed struct {
	Changes []store.Change
	Err     error
}

// FollowLog pages through s's change log from the start, page entries at a
// time, as the relay and the board do, until stop is closed and a read
// after that finds nothing new. It returns every entry it read, in order:
// the commit-order checks compare that with the whole log, which differs
// when a store lets a version become visible before a lower one.
func FollowLog(ctx context.Context, s store.Store, page int, stop <-chan struct{}) Followed {
	var (
		f     Followed
		after int64
	)
	for stopping := false; ; {
		select {
		case <-stop:
			stopping = true
		default:
		}
		cs, err := s.Changes(ctx, after, page)
		if err != nil {
			f.Err = err
			return f
		}
		f.Changes = append(f.Changes, cs...)
		if len(cs) > 0 {
			after = cs[len(cs)-1].Version
		}
		if stopping && len(cs) == 0 {
			return f
		}
	}
}

func testList(t *testing.T, s store.Store) {
	ctx := context.Background()
	setSpots(t, s, "b", "a", "c") // position order differs from id order
	mk := func(id, spot string, from, until float64, st reservation.State, created float64) reservation.Reservation {
		r := res(id, spot, from, until)
		r.State, r.CreatedAt = st, at(created)
		return r
	}
	insert(t, s,
		mk("a1", "a", 5, 6, reservation.Reserved, -1),
		mk("a0", "a", 1, 2, reservation.Paid, -3),
		mk("b1", "b", 3, 4, reservation.Taken, -2),
		mk("b0", "b", 0, 1, reservation.Left, -5),
		mk("c0", "c", 2, 8, reservation.Expired, -4),
		mk("c1", "c", 8, 9, reservation.Reserved, -0.5),
	)
	for _, c := range []struct {
		name string
		f    store.Filter
		want string
	}{
		{"all", store.Filter{}, "b0 b1 a0 a1 c0 c1"},
		{"spot", store.Filter{SpotID: "a"}, "a0 a1"},
		{"unknown spot", store.Filter{SpotID: "z"}, ""},
		{"states", store.Filter{States: []reservation.State{reservation.Reserved, reservation.Left}}, "b0 a1 c1"},
		{"live", store.Filter{States: reservation.LiveStates}, "b1 a0 a1 c1"},
		{"until after", store.Filter{UntilAfter: at(4)}, "a1 c0 c1"}, // strictly after: b1 ends at 4
		{"from before", store.Filter{FromBefore: at(3)}, "b0 a0 c0"}, // strictly before: b1 starts at 3
		{"created before", store.Filter{CreatedBefore: at(-2)}, "b0 a0 c0"},
		{"window", store.Filter{UntilAfter: at(1.5), FromBefore: at(5.5)}, "b1 a0 a1 c0"},
		{"combined", store.Filter{SpotID: "c", States: []reservation.State{reservation.Reserved}, UntilAfter: at(8.5)}, "c1"},
		{"limit", store.Filter{Limit: 3}, "b0 b1 a0"},
		{"limit with filter", store.Filter{States: reservation.LiveStates, Limit: 2}, "b1 a0"},
	} {
		rs, err := s.List(ctx, c.f)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := strings.Join(ids(rs), " "); got != c.want {
			t.Errorf("List %s = %q, want %q", c.name, got, c.want)
		}
		for _, r := range rs {
			checkUTC(t, "List", resTimes(r)...)
		}
	}
	rs, err := s.List(ctx, store.Filter{SpotID: "b", States: []reservation.State{reservation.Taken}})
	if err != nil || len(rs) != 1 {
		t.Fatalf("List = %v, %v", rs, err)
	}
	sameRes(t, "List b1", rs[0], mk("b1", "b", 3, 4, reservation.Taken, -2))
}

func testPaymentAttempts(t *testing.T, s store.Store) {
	ctx := context.Background()
	setSpots(t, s, "1")
	insert(t, s, res("a", "1", 1, 2), res("b", "1", 3, 4))
	key := []byte("sha256-of-key")
	first := store.PaymentAttempt{
		ReservationID: "a", Number: 1, KeyHash: key, RequestHash: []byte("sha256-of-request"), ProviderKey: "a/1", Outcome: store.AttemptPending,
		Amount: 250, Currency: "eur", CarID: "KLM42", PaymentMethod: "pm_card_visa",
		StartedAt: time.Date(2030, 6, 3, 9, 0, 0, 5000, time.FixedZone("X", 3600)),
	}
	write(t, s, func(tx store.Tx) error { return tx.PutAttempt(first) })
	lookup := func(id string, key []byte) (store.PaymentAttempt, error) {
		var a store.PaymentAttempt
		err := try(s, func(tx store.Tx) error {
			var err error
			a, err = tx.Attempt(id, key)
			return err
		})
		return a, err
	}
	same := func(what string, got, want store.PaymentAttempt) {
		t.Helper()
		checkUTC(t, what, got.StartedAt, got.FinishedAt)
		if !got.StartedAt.Equal(want.StartedAt) || !got.FinishedAt.Equal(want.FinishedAt) ||
			got.FinishedAt.IsZero() != want.FinishedAt.IsZero() {
			t.Errorf("%s: times %v %v, want %v %v", what, got.StartedAt, got.FinishedAt, want.StartedAt, want.FinishedAt)
		}
		got.StartedAt, got.FinishedAt, want.StartedAt, want.FinishedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
		}
	}
	a, err := lookup("a", key)
	if err != nil {
		t.Fatal(err)
	}
	same("first", a, first)

	// A re-driven attempt takes the new request's key and request hash.
	done := first
	done.Outcome, done.ProviderRef, done.FinishedAt = store.AttemptSucceeded, "pi_1", first.StartedAt.Add(time.Second)
	done.RequestHash = []byte("sha256-of-the-retry")
	write(t, s, func(tx store.Tx) error { return tx.PutAttempt(done) })
	a, err = lookup("a", key)
	if err != nil {
		t.Fatal(err)
	}
	same("replaced", a, done)

	second := store.PaymentAttempt{ReservationID: "a", Number: 2, ProviderKey: "a/2", Outcome: store.AttemptDeclined,
		Message: "Your card was declined.", Amount: 250, Currency: "eur", StartedAt: at(0), FinishedAt: at(0.01)}
	other := store.PaymentAttempt{ReservationID: "b", Number: 1, ProviderKey: "b/1", Outcome: store.AttemptUnknown, StartedAt: at(0),
		Purpose: store.PurposeOverstay, CustomerRef: "cus_1", PaymentMethod: "pm_card_visa"}
	write(t, s, func(tx store.Tx) error {
		if err := tx.PutAttempt(second); err != nil {
			return err
		}
		return tx.PutAttempt(other)
	})
	as, err := s.PaymentAttempts(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 2 {
		t.Fatalf("PaymentAttempts = %+v", as)
	}
	same("list 1", as[0], done)
	same("list 2", as[1], second)
	if as, err := s.PaymentAttempts(ctx, "nope"); err != nil || len(as) != 0 {
		t.Errorf("PaymentAttempts(nope) = %v, %v", as, err)
	}
	// Attempts (in a transaction) lists the same as PaymentAttempts.
	write(t, s, func(tx store.Tx) error {
		in, err := tx.Attempts("a")
		if err != nil {
			return err
		}
		if len(in) != 2 {
			t.Fatalf("tx.Attempts = %+v", in)
		}
		same("tx list 2", in[1], second)
		return nil
	})
	// The reconciler's work: open outcomes only, started before the
	// bound, oldest first, over every reservation.
	third := store.PaymentAttempt{ReservationID: "a", Number: 3, ProviderKey: "a/3", Outcome: store.AttemptRequiresAction,
		ProviderRef: "pi_3", StartedAt: at(0.5)}
	write(t, s, func(tx store.Tx) error { return tx.PutAttempt(third) })
	open, err := s.UnsettledAttempts(ctx, at(-1), at(1), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 2 {
		t.Fatalf("UnsettledAttempts = %+v, want b/1 and a/3", open)
	}
	same("unsettled 1", open[0], other)
	same("unsettled 2", open[1], third)
	if open, err := s.UnsettledAttempts(ctx, at(-1), at(0.25), 10); err != nil || len(open) != 1 || open[0].ReservationID != "b" {
		t.Errorf("UnsettledAttempts(before 0.25h) = %+v, %v; want only b/1", open, err)
	}
	if open, err := s.UnsettledAttempts(ctx, at(-1), at(1), 1); err != nil || len(open) != 1 {
		t.Errorf("UnsettledAttempts(limit 1) = %+v, %v", open, err)
	}
	if open, err := s.UnsettledAttempts(ctx, at(0.25), at(1), 10); err != nil || len(open) != 1 || open[0].Number != 3 {
		t.Errorf("UnsettledAttempts(from 0.25h) = %+v, %v; want only a/3", open, err)
	}
	_, err = lookup("a", []byte("other key"))
	wantErr(t, "Attempt(other key)", err, store.ErrNotFound)
	_, err = lookup("b", key)
	wantErr(t, "Attempt(key of another reservation)", err, store.ErrNotFound)
}

// testPaymentEvents: webhook event ids are applied once, payment
// exceptions are kept and listed newest first, and an attempt is found by
// its provider object.
func testPaymentEvents(t *testing.T, s store.Store) {
	ctx := context.Background()
	setSpots(t, s, "1")
	insert(t, s, res("a", "1", 1, 2))
	write(t, s, func(tx store.Tx) error { return tx.PutWebhookEvent("evt_1", "payment_intent.succeeded", at(0)) })
	err := try(s, func(tx store.Tx) error { return tx.PutWebhookEvent("evt_1", "payment_intent.succeeded", at(1)) })
	wantErr(t, "PutWebhookEvent(again)", err, store.ErrDuplicate)
	write(t, s, func(tx store.Tx) error { return tx.PutWebhookEvent("evt_2", "charge.refunded", at(1)) })

	older := store.PaymentException{ID: "evt_3", Kind: store.ExceptionDispute, ReservationID: "a", Amount: 500, Currency: "eur",
		ProviderRef: "dp_1", Reason: "fraudulent", CreatedAt: at(0)}
	newer := store.PaymentException{ID: "overstay-a-2", Kind: store.ExceptionOverstayUnpaid, ReservationID: "a", Amount: 250,
		Currency: "eur", ProviderRef: "", Reason: "your card was declined", CreatedAt: at(1)}
	write(t, s, func(tx store.Tx) error {
		if err := tx.PutPaymentException(older); err != nil {
			return err
		}
		return tx.PutPaymentException(newer)
	})
	err = try(s, func(tx store.Tx) error { return tx.PutPaymentException(older) })
	wantErr(t, "PutPaymentException(again)", err, store.ErrDuplicate)
	es, err := s.PaymentExceptions(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || !es[0].CreatedAt.Equal(newer.CreatedAt) || !es[1].CreatedAt.Equal(older.CreatedAt) {
		t.Fatalf("PaymentExceptions = %+v", es)
	}
	checkUTC(t, "exception", es[0].CreatedAt)
	es[0].CreatedAt, es[1].CreatedAt, newer.CreatedAt, older.CreatedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(es, []store.PaymentException{newer, older}) {
		t.Fatalf("PaymentExceptions = %+v", es)
	}
	if es, err := s.PaymentExceptions(ctx, 1); err != nil || len(es) != 1 || es[0].ID != newer.ID {
		t.Fatalf("PaymentExceptions(1) = %+v, %v", es, err)
	}

	att := store.PaymentAttempt{ReservationID: "a", Number: 1, ProviderKey: "a/1", Outcome: store.AttemptRequiresAction,
		ProviderRef: "pi_123", Amount: 250, Currency: "eur", StartedAt: at(0)}
	write(t, s, func(tx store.Tx) error { return tx.PutAttempt(att) })
	write(t, s, func(tx store.Tx) error {
		got, err := tx.AttemptByRef("pi_123")
		if err != nil || got.Number != 1 || got.ReservationID != "a" {
			t.Errorf("AttemptByRef(pi_123) = %+v, %v", got, err)
		}
		_, err = tx.AttemptByRef("pi_other")
		wantErr(t, "AttemptByRef(unknown)", err, store.ErrNotFound)
		_, err = tx.AttemptByRef("")
		wantErr(t, "AttemptByRef(empty)", err, store.ErrNotFound)
		return nil
	})
}

func testConcurrentBooking(t *testing.T, s store.Store) {
	ctx := context.Background()
	spots := []string{"1", "2", "3"}
	setSpots(t, s, spots...)
	const n = 200
	var (
		wg                 sync.WaitGroup
		mu                 sync.Mutex
		booked, overlapped int
	)
	for i := range n {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(42, uint64(i)))
			from := float64(rng.IntN(48)) / 4 // within 12 hours, quarter-hour steps
			r := res(fmt.Sprintf("c%03d", i), spots[rng.IntN(len(spots))], from, from+0.25*float64(1+rng.IntN(12)))
			err := s.Write(ctx, func(tx store.Tx) error {
				live, err := tx.Live(r.SpotID, r.Window())
				if err != nil {
					return err
				}
				if len(live) > 0 {
					return store.ErrOverlap
				}
				return tx.Insert(r)
			})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				booked++
			case errors.Is(err, store.ErrOverlap):
				overlapped++
			default:
				t.Errorf("%s: %v", r.ID, err)
			}
		})
	}
	wg.Wait()
	all, err := s.List(ctx, store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != booked || booked == 0 || overlapped == 0 {
		t.Errorf("%d booked, %d overlapped, %d stored: want some of each, all booked ones stored", booked, overlapped, len(all))
	}
	for i, a := range all {
		for _, b := range all[i+1:] {
			if a.SpotID == b.SpotID && a.State.Live() && b.State.Live() && a.Window().Overlaps(b.Window()) {
				t.Errorf("double booking on spot %s: %s %v-%v and %s %v-%v", a.SpotID, a.ID, a.From, a.Until, b.ID, b.From, b.Until)
			}
		}
	}
}

func testCurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	setSpots(t, s, "A", "B", "C", "D", "E")
	with := func(r reservation.Reservation, st reservation.State, f func(*reservation.Reservation)) reservation.Reservation {
		r.State = st
		if f != nil {
			f(&r)
		}
		return r
	}
	leftEarly := with(res("a-left", "A", -2, 1), reservation.Left, func(r *reservation.Reservation) { r.LeftAt = at(-0.5) })
	insert(t, s,
		with(res("a-old", "A", -30, -29), reservation.Expired, nil),
		with(res("a-gone", "A", -3, -2.5), reservation.Left, func(r *reservation.Reservation) { r.LeftAt = at(-2.6) }),
		leftEarly,
		with(res("a-next", "A", 1, 2), reservation.Paid, nil),
		res("a-later", "A", 3, 4),
		with(res("b-in", "B", -1, 1), reservation.Taken, nil),
		res("b-next", "B", 2, 3),
		with(res("c-over", "C", -5, -4), reservation.Taken, nil), // overstaying
		res("c-next", "C", 5, 6),
		res("d-now", "D", -0.5, 0.5),
		with(res("d-cancel", "D", 1, 2), reservation.Cancelled, nil),
	)
	// The spot of E is retired: it is not listed.
	got, err := s.Current(ctx, "", at(0))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a-left", "a-next", "b-in", "c-next", "c-over", "d-now"}
	if g := ids(got); !equalSets(g, want) {
		t.Errorf("Current(all) = %v, want %v", g, want)
	}
	for _, r := range got {
		if r.ID == "a-left" {
			sameRes(t, "Current row", r, leftEarly)
		}
	}
	got, err = s.Current(ctx, "A", at(0))
	if err != nil || !equalSets(ids(got), []string{"a-left", "a-next"}) {
		t.Errorf("Current(A) = %v, %v", ids(got), err)
	}
	// After a's window, nothing of A is current but its next one.
	got, _ = s.Current(ctx, "A", at(1.5))
	if !equalSets(ids(got), []string{"a-next"}) {
		t.Errorf("Current(A, +1.5h) = %v", ids(got))
	}
	if got, err := s.Current(ctx, "nope", at(0)); err != nil || len(got) != 0 {
		t.Errorf("Current(unknown) = %v, %v", ids(got), err)
	}
	if ok, err := s.Spot(ctx, "A"); !ok || err != nil {
		t.Errorf("Spot(A) = %v, %v", ok, err)
	}
	setSpots(t, s, "A", "B", "C", "D")
	if ok, err := s.Spot(ctx, "E"); ok || err != nil {
		t.Errorf("Spot(retired E) = %v, %v", ok, err)
	}
	if ok, err := s.Spot(ctx, "Z"); ok || err != nil {
		t.Errorf("Spot(unknown) = %v, %v", ok, err)
	}
}

func equalSets(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, x := range a {
		seen[x]++
	}
	for _, x := range b {
		if seen[x] == 0 {
			return false
		}
		seen[x]--
	}
	return true
}

func testRefunds(t *testing.T, s store.Store) {
	ctx := context.Background()
	setSpots(t, s, "1")
	insert(t, s, res("a", "1", 1, 2), res("b", "1", 3, 4))
	first := store.Refund{ReservationID: "a", Number: 1, Reason: "early_departure", Amount: 250, Currency: "eur",
		ChargeRef: "pi_1", ProviderKey: "parkgate-refund-a-1", Status: store.RefundPending,
		CreatedAt: time.Date(2030, 6, 3, 9, 0, 0, 5000, time.FixedZone("X", 3600))}
	second := store.Refund{ReservationID: "b", Number: 1, Reason: "no_show", Amount: 100, Currency: "eur",
		ChargeRef: "pi_2", ProviderKey: "parkgate-refund-b-1", Status: store.RefundPending, CreatedAt: at(1)}
	write(t, s, func(tx store.Tx) error {
		if err := tx.PutRefund(second); err != nil {
			return err
		}
		return tx.PutRefund(first)
	})
	same := func(what string, got, want store.Refund) {
		t.Helper()
		checkUTC(t, what, got.CreatedAt, got.FinishedAt)
		if !got.CreatedAt.Equal(want.CreatedAt) || !got.FinishedAt.Equal(want.FinishedAt) {
			t.Errorf("%s: times %v %v, want %v %v", what, got.CreatedAt, got.FinishedAt, want.CreatedAt, want.FinishedAt)
		}
		got.CreatedAt, got.FinishedAt, want.CreatedAt, want.FinishedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
		}
	}
	pending, err := s.PendingRefunds(ctx, 10)
	if err != nil || len(pending) != 2 {
		t.Fatalf("PendingRefunds = %+v, %v", pending, err)
	}
	same("oldest first", pending[0], first)
	same("then", pending[1], second)
	if p, _ := s.PendingRefunds(ctx, 1); len(p) != 1 || p[0].ReservationID != "a" {
		t.Errorf("PendingRefunds(limit 1) = %+v", p)
	}

	done := first
	done.Status, done.ProviderRef, done.Tries, done.FinishedAt = store.RefundSucceeded, "re_1", 2, at(2)
	write(t, s, func(tx store.Tx) error { return tx.PutRefund(done) })
	if p, _ := s.PendingRefunds(ctx, 10); len(p) != 1 || p[0].ReservationID != "b" {
		t.Errorf("after settling, PendingRefunds = %+v", p)
	}
	rs, err := s.Refunds(ctx, "a")
	if err != nil || len(rs) != 1 {
		t.Fatalf("Refunds(a) = %+v, %v", rs, err)
	}
	same("settled", rs[0], done)
	write(t, s, func(tx store.Tx) error {
		rs, err := tx.Refunds("a")
		if err != nil || len(rs) != 1 || rs[0].Status != store.RefundSucceeded {
			t.Errorf("Tx.Refunds(a) = %+v, %v", rs, err)
		}
		return err
	})
	// A refund of an unknown reservation, a zero amount: refused.
	err = try(s, func(tx store.Tx) error {
		return tx.PutRefund(store.Refund{ReservationID: "nope", Number: 1, Reason: "x", Amount: 1, Currency: "eur", ChargeRef: "pi", ProviderKey: "k", Status: store.RefundPending, CreatedAt: at(0)})
	})
	wantErr(t, "PutRefund(unknown reservation)", err, store.ErrNotFound)
	if err := try(s, func(tx store.Tx) error {
		return tx.PutRefund(store.Refund{ReservationID: "a", Number: 2, Reason: "x", Amount: 0, Currency: "eur", ChargeRef: "pi", ProviderKey: "k", Status: store.RefundPending, CreatedAt: at(0)})
	}); err == nil {
		t.Error("a zero refund was stored")
	}
}

func testGates(t *testing.T, s store.Store) {
	ctx := context.Background()
	if gs, err := s.Gates(ctx); err != nil || len(gs) != 0 {
		t.Fatalf("Gates() on a new store = %v, %v", gs, err)
	}
	g := store.Gate{ID: "entry-1", PasswordHash: []byte{1, 2, 3}, Role: "entry", Online: true, Session: 7,
		LastSeen: at(1).Add(123 * time.Microsecond), CacheVersion: 42, Outbox: 3, Barrier: "closed", Software: "v1",
		AddedAt: at(0), Faults: []store.GateFault{
			{Kind: "barrier", Error: "the barrier did not report closed in time", Since: at(1), At: at(1)},
			{Kind: "record", Error: `decisions cannot be recorded: "database or disk is full"`, Since: at(1), At: at(2).Add(5 * time.Microsecond)},
		}}
	write(t, s, func(tx store.Tx) error { return tx.PutGate(g) })
	write(t, s, func(tx store.Tx) error { return tx.PutGate(store.Gate{ID: "exit-1", AddedAt: at(0)}) })
	var got store.Gate
	write(t, s, func(tx store.Tx) error {
		var err error
		got, err = tx.Gate("entry-1")
		return err
	})
	checkUTC(t, "gate", got.LastSeen, got.AddedAt)
	if !got.LastSeen.Equal(g.LastSeen) || !got.AddedAt.Equal(g.AddedAt) {
		t.Errorf("gate times %v %v", got.LastSeen, got.AddedAt)
	}
	want := g
	got.LastSeen, got.AddedAt, want.LastSeen, want.AddedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("gate:\n got %+v\nwant %+v", got, want)
	}
	// Replace: the will of the same session marks it offline.
	g.Online = false
	write(t, s, func(tx store.Tx) error { return tx.PutGate(g) })
	gs, err := s.Gates(ctx)
	if err != nil || len(gs) != 2 || gs[0].ID != "entry-1" || gs[0].Online || gs[1].ID != "exit-1" || gs[1].PasswordHash != nil {
		t.Fatalf("Gates() = %+v, %v", gs, err)
	}
	if !reflect.DeepEqual(gs[0].Faults, g.Faults) || gs[1].Faults != nil {
		t.Errorf("Gates() faults = %+v and %+v, want %+v and none", gs[0].Faults, gs[1].Faults, g.Faults)
	}
	// A birth without faults clears them.
	g.Faults = nil
	write(t, s, func(tx store.Tx) error { return tx.PutGate(g) })
	if got, err := s.Gate(ctx, "entry-1"); err != nil || got.Faults != nil {
		t.Errorf("faults after a healthy birth = %+v, %v", got.Faults, err)
	}
	err = try(s, func(tx store.Tx) error { _, err := tx.Gate("nope"); return err })
	wantErr(t, "Gate(unknown)", err, store.ErrNotFound)
	if g, err := s.Gate(ctx, "entry-1"); err != nil || g.Role != "entry" || string(g.PasswordHash) != "\x01\x02\x03" {
		t.Errorf("Store.Gate = %+v, %v", g, err)
	}
	_, err = s.Gate(ctx, "nope")
	wantErr(t, "Store.Gate(unknown)", err, store.ErrNotFound)
}

func testGateEvents(t *testing.T, s store.Store) {
	ctx := context.Background()
	ev := func(id, gate string, seq int64, outcome string, received float64) store.GateEvent {
		return store.GateEvent{EventID: id, GateID: gate, Seq: seq, Kind: "decision", Role: "entry", Time: at(received - 0.1),
			Source: "qr", Granted: true, Reason: "ticket", ReservationID: "r-" + id, SpotID: "1", CarID: "X1",
			Plate: "BXY123", Detail: "reservation r-" + id + ", spot 1",
			Overstay: true, PresenceUnknown: true, ClockTrusted: true, ReceivedAt: at(received), Outcome: outcome, Note: "n"}
	}
	first := ev("e1", "entry-1", 1, store.EventApplied, 1)
	write(t, s, func(tx store.Tx) error { return tx.PutGateEvent(first) })
	write(t, s, func(tx store.Tx) error { return tx.PutGateEvent(ev("e2", "entry-1", 2, store.EventException, 2)) })
	write(t, s, func(tx store.Tx) error { return tx.PutGateEvent(ev("e3", "exit-1", 1, store.EventRecorded, 3)) })
	// A repeat of an event id is refused, whatever it says.
	err := try(s, func(tx store.Tx) error { return tx.PutGateEvent(ev("e1", "entry-1", 9, store.EventRecorded, 4)) })
	wantErr(t, "PutGateEvent(repeat)", err, store.ErrDuplicate)

	all, err := s.GateEvents(ctx, store.EventFilter{})
	if err != nil || len(all) != 3 || all[0].EventID != "e3" || all[2].EventID != "e1" {
		t.Fatalf("GateEvents(all) = %+v, %v", all, err)
	}
	got := all[2]
	checkUTC(t, "event", got.Time, got.ReceivedAt)
	if !got.Time.Equal(first.Time) || !got.ReceivedAt.Equal(first.ReceivedAt) {
		t.Errorf("event times %v %v", got.Time, got.ReceivedAt)
	}
	got.Time, got.ReceivedAt, first.Time, first.ReceivedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, first) {
		t.Errorf("event:\n got %+v\nwant %+v", got, first)
	}
	if ex, _ := s.GateEvents(ctx, store.EventFilter{Outcome: store.EventException}); len(ex) != 1 || ex[0].EventID != "e2" {
		t.Errorf("exceptions = %+v", ex)
	}
	if g, _ := s.GateEvents(ctx, store.EventFilter{GateID: "exit-1"}); len(g) != 1 || g[0].EventID != "e3" {
		t.Errorf("events of exit-1 = %+v", g)
	}
	if l, _ := s.GateEvents(ctx, store.EventFilter{Limit: 1}); len(l) != 1 {
		t.Errorf("limit 1 = %+v", l)
	}
}

// testRelayPosition: the relay's position starts at 0, moves forward only,
// and a rolled-back transaction does not move it.
func testRelayPosition(t *testing.T, s store.Store) {
	ctx := context.Background()
	pos := func() int64 {
		t.Helper()
		v, err := s.RelayPosition(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := pos(); v != 0 {
		t.Fatalf("a new store's relay position = %d, want 0", v)
	}
	write(t, s, func(tx store.Tx) error { return tx.SetRelayPosition(7) })
	if v := pos(); v != 7 {
		t.Fatalf("after 7: %d", v)
	}
	write(t, s, func(tx store.Tx) error { return tx.SetRelayPosition(5) })
	if v := pos(); v != 7 {
		t.Fatalf("after 5 (backwards): %d, want 7", v)
	}
	boom := errors.New("boom")
	err := s.Write(ctx, func(tx store.Tx) error {
		if err := tx.SetRelayPosition(9); err != nil {
			return err
		}
		return boom
	})
	wantErr(t, "Write", err, boom)
	if v := pos(); v != 7 {
		t.Fatalf("after a rolled-back 9: %d, want 7", v)
	}
}

// testChangeNotifier: a store that offers store.ChangeNotifier calls the
// listener after a commit that logged changes, and stops when its context
// ends. (A store without it is polled; nothing to check.)
func testChangeNotifier(t *testing.T, s store.Store) {
	n, ok := s.(store.ChangeNotifier)
	if !ok {
		t.Skip("the store offers no change notifications")
	}
	Notified(t, s, n)
}

// Notified checks that listener hears of changes committed through writer
// (the same store, or another instance on the same database), and that
// NotifyChanges returns nil once its context ends.
func Notified(t *testing.T, writer store.Store, listener store.ChangeNotifier) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	notified := make(chan struct{}, 100)
	done := make(chan error, 1)
	go func() { done <- listener.NotifyChanges(ctx, func() { notified <- struct{}{} }) }()
	// The listener may not be listening yet: log until a notification
	// comes, a bounded number of times.
	got := false
	for i := 0; i < 50 && !got; i++ {
		write(t, writer, func(tx store.Tx) error {
			return tx.Log(store.Change{At: at(float64(i)), Kind: store.KindPaymentDeclined, Actor: "driver"})
		})
		select {
		case <-notified:
			got = true
		case <-time.After(100 * time.Millisecond):
		}
	}
	if !got {
		t.Fatal("no notification after 50 commits that logged changes")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("NotifyChanges after its context ended: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("NotifyChanges did not return after its context ended")
	}
}

// BenchmarkConditionalInsert measures the booking write on a store from
// open: check the spot's live reservations, insert and log if free, commit.
// "contended" draws windows from one day of three spots, so most attempts
// are refused (and roll back, nothing to flush); "sparse" draws from
// years, so nearly every attempt commits. It reports booked/op, and
// whatever report adds for the store (nil: nothing).
func BenchmarkConditionalInsert(b *testing.B, open func(b *testing.B) store.Store, report func(b *testing.B, s store.Store)) {
	for _, c := range []struct {
		name  string
		slots int // quarter hours to draw a start from
	}{{"contended", 4 * 24}, {"sparse", 4 * 24 * 365 * 20}} {
		b.Run(c.name, func(b *testing.B) {
			s := open(b)
			benchConditionalInsert(b, s, c.slots)
			if report != nil {
				report(b, s)
			}
		})
	}
}

func benchConditionalInsert(b *testing.B, s store.Store, slots int) {
	ctx := context.Background()
	spots := []string{"1", "2", "3"}
	if err := s.SetSpots(ctx, spots, base); err != nil {
		b.Fatal(err)
	}
	var seq, booked atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(uint64(seq.Add(1)), 7))
		for pb.Next() {
			i := seq.Add(1)
			from := base.Add(time.Duration(rng.IntN(slots)) * 15 * time.Minute)
			r := reservation.Reservation{ID: fmt.Sprintf("b%d", i), SpotID: spots[rng.IntN(len(spots))],
				State: reservation.Reserved, Source: reservation.SourceDriver, From: from,
				Until: from.Add(time.Duration(1+rng.IntN(4)) * time.Hour), CreatedAt: base, Amount: 250, Currency: "eur",
				TokenHash: fmt.Appendf(nil, "h%d", i)}
			err := s.Write(ctx, func(tx store.Tx) error {
				live, err := tx.Live(r.SpotID, r.Window())
				if err != nil {
					return err
				}
				if len(live) > 0 {
					return store.ErrOverlap
				}
				if err := tx.Insert(r); err != nil {
					return err
				}
				return tx.Log(store.Change{At: base, Kind: store.KindCreated, SpotID: r.SpotID, ReservationID: r.ID, Actor: "driver", Reservation: &r})
			})
			switch {
			case err == nil:
				booked.Add(1)
			case !errors.Is(err, store.ErrOverlap):
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(booked.Load())/float64(b.N), "booked/op")
}

// testResolveGateEvent: an operator's resolution of an exception is kept
// with who and when, and resolving an unknown event is ErrNotFound.
func testResolveGateEvent(t *testing.T, s store.Store) {
	ctx := context.Background()
	e := store.GateEvent{EventID: "x1", GateID: "entry-1", Seq: 1, Kind: "decision", Role: "entry", Time: at(1),
		Source: "qr", ReceivedAt: at(1), Outcome: store.EventException, Note: "not paid"}
	write(t, s, func(tx store.Tx) error { return tx.PutGateEvent(e) })
	got, err := s.GateEvents(ctx, store.EventFilter{})
	if err != nil || len(got) != 1 || !got[0].ResolvedAt.IsZero() || got[0].ResolvedBy != "" {
		t.Fatalf("before resolving: %+v, %v", got, err)
	}
	write(t, s, func(tx store.Tx) error { return tx.ResolveGateEvent("x1", "alice", "driver paid cash", at(2)) })
	got, err = s.GateEvents(ctx, store.EventFilter{Outcome: store.EventException})
	if err != nil || len(got) != 1 {
		t.Fatalf("after resolving: %+v, %v", got, err)
	}
	checkUTC(t, "resolvedAt", got[0].ResolvedAt)
	if !got[0].ResolvedAt.Equal(at(2)) || got[0].ResolvedBy != "alice" || got[0].Resolution != "driver paid cash" {
		t.Errorf("resolution = %v %q %q", got[0].ResolvedAt, got[0].ResolvedBy, got[0].Resolution)
	}
	err = try(s, func(tx store.Tx) error { return tx.ResolveGateEvent("nope", "alice", "x", at(2)) })
	wantErr(t, "ResolveGateEvent(unknown)", err, store.ErrNotFound)
}

// testResolvePaymentException: an operator's resolution of a payment
// exception is kept with who and when, the other exceptions stay open, and
// resolving an unknown one is ErrNotFound.
func testResolvePaymentException(t *testing.T, s store.Store) {
	ctx := context.Background()
	dispute := store.PaymentException{ID: "evt_9", Kind: store.ExceptionDispute, ReservationID: "a", Amount: 500,
		Currency: "eur", ProviderRef: "dp_9", Reason: "fraudulent", CreatedAt: at(1)}
	owed := store.PaymentException{ID: "overstay-b-2", Kind: store.ExceptionOverstayUnpaid, ReservationID: "b", Amount: 250,
		Currency: "eur", Reason: "your card was declined", CreatedAt: at(2)}
	write(t, s, func(tx store.Tx) error {
		if err := tx.PutPaymentException(dispute); err != nil {
			return err
		}
		return tx.PutPaymentException(owed)
	})
	es, err := s.PaymentExceptions(ctx, 0)
	if err != nil || len(es) != 2 || !es[0].ResolvedAt.IsZero() || !es[1].ResolvedAt.IsZero() || es[1].ResolvedBy != "" {
		t.Fatalf("before resolving: %+v, %v", es, err)
	}
	write(t, s, func(tx store.Tx) error {
		return tx.ResolvePaymentException("evt_9", "alice", "evidence sent to the bank", at(3))
	})
	es, err = s.PaymentExceptions(ctx, 0)
	if err != nil || len(es) != 2 || es[0].ID != owed.ID || es[1].ID != dispute.ID {
		t.Fatalf("after resolving: %+v, %v", es, err)
	}
	checkUTC(t, "resolvedAt", es[1].ResolvedAt)
	if got := es[1]; !got.ResolvedAt.Equal(at(3)) || got.ResolvedBy != "alice" || got.Resolution != "evidence sent to the bank" {
		t.Errorf("resolution = %v %q %q", got.ResolvedAt, got.ResolvedBy, got.Resolution)
	}
	if got := es[0]; !got.ResolvedAt.IsZero() || got.ResolvedBy != "" || got.Resolution != "" {
		t.Errorf("the other exception was resolved too: %+v", got)
	}
	write(t, s, func(tx store.Tx) error {
		return tx.ResolvePaymentException("evt_9", "admin token", "bank decided for us", at(4))
	})
	es, _ = s.PaymentExceptions(ctx, 0)
	if got := es[1]; !got.ResolvedAt.Equal(at(4)) || got.ResolvedBy != "admin token" || got.Resolution != "bank decided for us" {
		t.Errorf("resolved again = %v %q %q", got.ResolvedAt, got.ResolvedBy, got.Resolution)
	}
	err = try(s, func(tx store.Tx) error { return tx.ResolvePaymentException("nope", "alice", "x", at(2)) })
	wantErr(t, "ResolvePaymentException(unknown)", err, store.ErrNotFound)
}

// testLatestRefunds: refunds of every reservation, the latest recorded or
// settled first.
func testLatestRefunds(t *testing.T, s store.Store) {
	ctx := context.Background()
	setSpots(t, s, "1")
	insert(t, s, res("a", "1", 1, 2), res("b", "1", 3, 4))
	// a/1 recorded first and settled last; b/1 recorded in between and
	// still pending; a/2 recorded after b/1.
	a1 := store.Refund{ReservationID: "a", Number: 1, Reason: "early_departure", Amount: 250, Currency: "eur",
		ChargeRef: "pi_1", ProviderKey: "k-a-1", Status: store.RefundSucceeded, CreatedAt: at(1), FinishedAt: at(5)}
	b1 := store.Refund{ReservationID: "b", Number: 1, Reason: "cancelled", Amount: 100, Currency: "eur",
		ChargeRef: "pi_2", ProviderKey: "k-b-1", Status: store.RefundPending, CreatedAt: at(2)}
	a2 := store.Refund{ReservationID: "a", Number: 2, Reason: "no_show", Amount: 50, Currency: "eur",
		ChargeRef: "pi_1", ProviderKey: "k-a-2", Status: store.RefundRefused, Message: "charge already refunded",
		CreatedAt: at(3), FinishedAt: at(4)}
	write(t, s, func(tx store.Tx) error {
		for _, r := range []store.Refund{a1, b1, a2} {
			if err := tx.PutRefund(r); err != nil {
				return err
			}
		}
		return nil
	})
	key := func(rs []store.Refund) []string {
		var out []string
		for _, r := range rs {
			out = append(out, fmt.Sprintf("%s/%d %s", r.ReservationID, r.Number, r.Status))
		}
		return out
	}
	rs, err := s.LatestRefunds(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := key(rs), []string{"a/1 succeeded", "a/2 refused", "b/1 pending"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("LatestRefunds = %v, want %v", got, want)
	}
	if rs[1].Message != "charge already refunded" || rs[1].Amount != 50 || rs[1].Reason != "no_show" || !rs[1].FinishedAt.Equal(at(4)) {
		t.Errorf("LatestRefunds[1] = %+v", rs[1])
	}
	if rs, err := s.LatestRefunds(ctx, 2); err != nil || !reflect.DeepEqual(key(rs), []string{"a/1 succeeded", "a/2 refused"}) {
		t.Errorf("LatestRefunds(2) = %v, %v", key(rs), err)
	}
}

// testOperatorActionsInLog: a change-log entry keeps the gate and the
// reason an operator gave.
func testOperatorActionsInLog(t *testing.T, s store.Store) {
	write(t, s, func(tx store.Tx) error {
		return tx.Log(store.Change{At: at(1), Kind: store.KindGateOpened, Actor: "operator:alice", GateID: "entry-1", Note: "intercom: lost ticket"})
	})
	cs := allChanges(t, s)
	last := cs[len(cs)-1]
	if last.Kind != store.KindGateOpened || last.Actor != "operator:alice" || last.GateID != "entry-1" ||
		last.Note != "intercom: lost ticket" || last.Reservation != nil {
		t.Errorf("logged %+v", last)
	}
}

// testOperators: accounts are stored by name, replaced by name, and an
// unknown name is ErrNotFound.
func testOperators(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.Operator(ctx, "alice")
	wantErr(t, "Operator(unknown)", err, store.ErrNotFound)
	write(t, s, func(tx store.Tx) error {
		return tx.PutOperator(store.Operator{Name: "alice", PasswordHash: []byte("h1"), CreatedAt: at(1)})
	})
	write(t, s, func(tx store.Tx) error {
		return tx.PutOperator(store.Operator{Name: "alice", PasswordHash: []byte("h2"), CreatedAt: at(2)})
	})
	o, err := s.Operator(ctx, "alice")
	if err != nil || string(o.PasswordHash) != "h2" || !o.CreatedAt.Equal(at(2)) {
		t.Errorf("Operator(alice) = %+v, %v", o, err)
	}
	checkUTC(t, "createdAt", o.CreatedAt)
}

// redeem presents code c to the store as gated enroll would.
func redeem(s store.Store, c enrollment.Code, now time.Time) (enroll.Grant, error) {
	r, err := enrollment.NewRecipient()
	if err != nil {
		return enroll.Grant{}, err
	}
	id, recipient, proof, err := enrollment.ParseRequest(enrollment.NewRequest(c, r))
	if err != nil {
		return enroll.Grant{}, err
	}
	return enroll.Redeem(context.Background(), s, id, recipient, proof, now)
}

// testEnrollment: a code provisions its gate, is redeemed once, not after
// it expires, never by a wrong proof, and of concurrent redemptions
// exactly one succeeds; a failed redemption changes nothing.
func testEnrollment(t *testing.T, s store.Store) {
	ctx := context.Background()
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Write(ctx, func(tx store.Tx) error { _, err := tx.Enrollment([]byte("nope")); return err })
	wantErr(t, "Enrollment(unknown)", err, store.ErrNotFound)

	if _, err := enroll.Issue(ctx, s, pub, "entry-1", "", 24*time.Hour, at(0)); !errors.Is(err, enroll.ErrRoleRequired) {
		t.Fatalf("Issue(new gate, no role) = %v, want ErrRoleRequired", err)
	}
	if _, err := s.Gate(ctx, "entry-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused Issue stored the gate: %v", err)
	}
	c, err := enroll.Issue(ctx, s, pub, "entry-1", "entry", 24*time.Hour, at(0))
	if err != nil {
		t.Fatal(err)
	}
	if c.Fingerprint != enrollment.Fingerprint(pub) {
		t.Error("the code does not carry central's fingerprint")
	}
	g, err := s.Gate(ctx, "entry-1")
	if err != nil || g.Role != "entry" || len(g.PasswordHash) != 0 {
		t.Fatalf("after Issue: gate %+v, %v; want role entry and no password until enrolled", g, err)
	}

	// A proof made with another secret for this code's id is refused.
	other, _ := enrollment.NewCode(pub)
	r, _ := enrollment.NewRecipient()
	forged := enrollment.NewRequest(other, r)
	forged.Code = enrollment.NewRequest(c, r).Code
	id, recipient, proof, err := enrollment.ParseRequest(forged)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enroll.Redeem(ctx, s, id, recipient, proof, at(1)); !errors.Is(err, enroll.ErrUnknown) {
		t.Errorf("Redeem(wrong proof) = %v, want ErrUnknown", err)
	}
	if _, err := redeem(s, other, at(1)); !errors.Is(err, enroll.ErrUnknown) {
		t.Errorf("Redeem(code never issued) = %v, want ErrUnknown", err)
	}

	grant, err := redeem(s, c, at(1))
	if err != nil {
		t.Fatalf("Redeem: %v", err)
	}
	if grant.GateID != "entry-1" || grant.Role != "entry" || len(grant.Password) < broker.MinTokenLen {
		t.Fatalf("grant = %+v", grant)
	}
	g, _ = s.Gate(ctx, "entry-1")
	if want, _ := broker.HashToken(grant.Password); string(g.PasswordHash) != string(want) {
		t.Fatal("the gate's stored password is not the one granted")
	}
	if _, err := redeem(s, c, at(2)); !errors.Is(err, enroll.ErrUsed) {
		t.Errorf("Redeem(used code) = %v, want ErrUsed", err)
	}
	if g2, _ := s.Gate(ctx, "entry-1"); string(g2.PasswordHash) != string(g.PasswordHash) {
		t.Error("a refused redemption changed the gate's password")
	}

	// Expiry: valid until created + ttl, not at that instant. A new code
	// for a known gate leaves its password alone until it is redeemed.
	c2, err := enroll.Issue(ctx, s, pub, "entry-1", "", time.Hour, at(10))
	if err != nil {
		t.Fatal(err)
	}
	if g2, _ := s.Gate(ctx, "entry-1"); string(g2.PasswordHash) != string(g.PasswordHash) || g2.Role != "entry" {
		t.Errorf("issuing a code for a known gate changed it: %+v", g2)
	}
	if _, err := redeem(s, c2, at(11)); !errors.Is(err, enroll.ErrExpired) {
		t.Errorf("Redeem(at expiry) = %v, want ErrExpired", err)
	}
	var e store.Enrollment
	write(t, s, func(tx store.Tx) error { e, err = tx.Enrollment(c2.ID()); return err })
	if !e.UsedAt.IsZero() || !e.ExpiresAt.Equal(at(11)) || !e.CreatedAt.Equal(at(10)) || e.GateID != "entry-1" {
		t.Errorf("stored enrollment = %+v", e)
	}
	checkUTC(t, "enrollment", e.CreatedAt, e.ExpiresAt)
	if g2, _ := s.Gate(ctx, "entry-1"); string(g2.PasswordHash) != string(g.PasswordHash) {
		t.Error("an expired code changed the gate's password")
	}
	if _, err := redeem(s, c2, at(11).Add(-time.Microsecond)); err != nil {
		// at(11) - 1µs is still valid.
		t.Errorf("Redeem(just before expiry) = %v", err)
	}

	// Concurrent redemptions of one code: exactly one wins.
	c3, err := enroll.Issue(ctx, s, pub, "exit-1", "exit", time.Hour, at(20))
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	var wg sync.WaitGroup
	var ok, used atomic.Int32
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := redeem(s, c3, at(20.5))
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, enroll.ErrUsed):
				used.Add(1)
			default:
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Redeem: %v", err)
	}
	if ok.Load() != 1 || used.Load() != n-1 {
		t.Errorf("concurrent redemptions: %d succeeded, %d saw the code used; want 1 and %d", ok.Load(), used.Load(), n-1)
	}
}
