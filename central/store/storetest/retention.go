package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
)

// testRetention: personal data of reservations finished before the cut (a
// plate, a token hash, a payment method, a customer, idempotency records,
// the plate and the operators' notes in the change log), and the plate and
// free text of gate events received before it (the gate's detail, the
// operator's resolution) and the notes of change-log entries of no
// reservation logged before it, is counted by PersonalData without being
// touched, then erased in bounded batches by ErasePersonalData, the
// longest finished first; money records, counts, who acted, central's own
// notes and everything newer than the cut stay as they were.
func testRetention(t *testing.T, s store.Store) {
	ctx := context.Background()
	setSpots(t, s, "1", "2")
	day := 24 * time.Hour
	now := base // the injected "now": the store is told the cut, not the time
	cut := now.Add(-90 * day)
	const plate = "RT123XY"

	finished := func(id, spot string, state reservation.State, ended time.Time) reservation.Reservation {
		r := res(id, spot, 0, 2)
		r.From, r.Until = ended.Add(-3*time.Hour), ended.Add(-time.Hour)
		r.CreatedAt = ended.Add(-4 * time.Hour)
		r.State, r.CarID, r.EndedAt, r.PaymentRef = state, plate, ended, "pi_"+id
		return r
	}
	old := finished("old", "1", reservation.Left, now.Add(-100*day))         // erased second
	older := finished("older", "2", reservation.Expired, time.Time{})        // no EndedAt: its window's end counts
	older.From, older.Until = now.Add(-200*day), now.Add(-200*day+time.Hour) // erased first
	recent := finished("recent", "1", reservation.Cancelled, now.Add(-10*day))
	live := res("live", "2", 1, 3) // a future reservation
	live.State, live.CarID = reservation.Paid, plate
	all := []reservation.Reservation{old, older, recent, live}
	write(t, s, func(tx store.Tx) error {
		for _, r := range all {
			if err := tx.Insert(r); err != nil {
				return err
			}
			created := r
			created.State, created.EndedAt = reservation.Reserved, time.Time{}
			if err := tx.Log(store.Change{At: r.CreatedAt, Kind: store.KindCreated, SpotID: r.SpotID, ReservationID: r.ID,
				Actor: "driver", Reservation: &created}); err != nil {
				return err
			}
			final := r
			if err := tx.Log(store.Change{At: r.CreatedAt.Add(time.Minute), Kind: store.KindLeft, SpotID: r.SpotID,
				ReservationID: r.ID, Actor: "system", Reservation: &final}); err != nil {
				return err
			}
			// An operator's free text, with no snapshot: it names the
			// car all the same.
			if err := tx.Log(store.Change{At: r.CreatedAt.Add(2 * time.Minute), Kind: store.KindCancelled, SpotID: r.SpotID,
				ReservationID: r.ID, Actor: "alice", Note: "the driver of " + plate + " called"}); err != nil {
				return err
			}
			if err := tx.PutAttempt(store.PaymentAttempt{ReservationID: r.ID, Number: 1, KeyHash: []byte("key-" + r.ID),
				RequestHash: []byte("req-" + r.ID), ProviderKey: "parkgate-" + r.ID + "-1", Outcome: store.AttemptSucceeded,
				ProviderRef: "pi_" + r.ID, Amount: 250, Currency: "eur", CarID: plate, PaymentMethod: "pm_card_visa",
				CustomerRef: "cus_" + r.ID, StartedAt: r.CreatedAt, FinishedAt: r.CreatedAt.Add(time.Second)}); err != nil {
				return err
			}
		}
		if err := tx.PutRefund(store.Refund{ReservationID: "old", Number: 1, Reason: "early_departure", Amount: 100,
			Currency: "eur", ChargeRef: "pi_old", ProviderKey: "parkgate-refund-old-1", Status: store.RefundSucceeded,
			ProviderRef: "re_old", CreatedAt: old.EndedAt, FinishedAt: old.EndedAt.Add(time.Minute)}); err != nil {
			return err
		}
		for i, received := range []time.Time{now.Add(-120 * day), now.Add(-95 * day), now.Add(-day)} {
			id := "ev" + string(rune('a'+i))
			if err := tx.PutGateEvent(store.GateEvent{EventID: id, GateID: "entry-1", Seq: int64(i + 1),
				Kind: "decision", Role: "entry", Time: received, Source: "plate", Granted: i != 1, Reason: "ticket",
				ReservationID: "old", SpotID: "1", CarID: plate, Plate: plate, ReceivedAt: received,
				Detail: "no reservation for plate " + plate, Note: "central's note",
				Outcome: store.EventException}); err != nil {
				return err
			}
			if err := tx.ResolveGateEvent(id, "alice", "waved "+plate+" through", received.Add(time.Hour)); err != nil {
				return err
			}
		}
		// A gate's free text alone (another vendor's gate may put the
		// plate there), received after the others.
		if err := tx.PutGateEvent(store.GateEvent{EventID: "evd", GateID: "entry-1", Seq: 4, Kind: "fault", Role: "entry",
			Time: now.Add(-91 * day), Reason: "loop", Detail: "loop stuck under " + plate, ReceivedAt: now.Add(-91 * day),
			Outcome: store.EventRecorded}); err != nil {
			return err
		}
		// Notes of no reservation: an operator opening a gate, long ago
		// and lately.
		for _, at := range []time.Time{now.Add(-100 * day), now.Add(-5 * day)} {
			if err := tx.Log(store.Change{At: at, Kind: store.KindGateOpened, GateID: "entry-1", Actor: "alice",
				Note: "let " + plate + " out, ticket lost"}); err != nil {
				return err
			}
		}
		return nil
	})
	versionBefore := lastVersion(t, s)

	// The dry run counts and changes nothing.
	want := store.Erasure{Reservations: 2, OldestEnded: older.Until, NewestEnded: old.EndedAt, Attempts: 2, Changes: 6,
		GateEvents: 3, OldestReceived: now.Add(-120 * day), NewestReceived: now.Add(-91 * day), Notes: 1}
	got, err := s.PersonalData(ctx, cut)
	if err != nil {
		t.Fatalf("PersonalData: %v", err)
	}
	sameErasure(t, "PersonalData", got, want)
	if r := get(t, s, "old"); r.CarID != plate || r.TokenHash == nil {
		t.Fatalf("PersonalData changed the reservation: %+v", r)
	}
	if _, err := s.ErasePersonalData(ctx, cut, 0); err == nil {
		t.Error("ErasePersonalData(limit 0): no error")
	}

	// Batches of one: the longest finished first, then nothing left.
	first, err := s.ErasePersonalData(ctx, cut, 1)
	if err != nil {
		t.Fatalf("ErasePersonalData: %v", err)
	}
	sameErasure(t, "first batch", first, store.Erasure{Reservations: 1, OldestEnded: older.Until, NewestEnded: older.Until,
		Attempts: 1, Changes: 3, GateEvents: 1, OldestReceived: now.Add(-120 * day), NewestReceived: now.Add(-120 * day), Notes: 1})
	second, err := s.ErasePersonalData(ctx, cut, 1)
	if err != nil {
		t.Fatalf("ErasePersonalData: %v", err)
	}
	sameErasure(t, "second batch", second, store.Erasure{Reservations: 1, OldestEnded: old.EndedAt, NewestEnded: old.EndedAt,
		Attempts: 1, Changes: 3, GateEvents: 1, OldestReceived: now.Add(-95 * day), NewestReceived: now.Add(-95 * day)})
	third, err := s.ErasePersonalData(ctx, cut, 100)
	if err != nil {
		t.Fatalf("ErasePersonalData: %v", err)
	}
	sameErasure(t, "third batch", third, store.Erasure{GateEvents: 1, OldestReceived: now.Add(-91 * day), NewestReceived: now.Add(-91 * day)})
	if rest, err := s.ErasePersonalData(ctx, cut, 100); err != nil || !rest.Zero() {
		t.Fatalf("fourth batch = %+v, %v; want nothing left", rest, err)
	}
	if left, err := s.PersonalData(ctx, cut); err != nil || left != (store.Erasure{}) {
		t.Fatalf("PersonalData after = %+v, %v; want nothing", left, err)
	}

	// Erased: no plate, token, payment method, customer or idempotency
	// record of the old reservations anywhere.
	for _, id := range []string{"old", "older"} {
		r := get(t, s, id)
		if r.CarID != "" || r.TokenHash != nil {
			t.Errorf("%s after erasure: carId %q, token hash %x", id, r.CarID, r.TokenHash)
		}
		// Kept: the record of the spot and the money.
		orig := old
		if id == "older" {
			orig = older
		}
		if r.State != orig.State || r.Amount != orig.Amount || r.PaymentRef != orig.PaymentRef || !r.From.Equal(orig.From) {
			t.Errorf("%s after erasure lost more than personal data: %+v", id, r)
		}
		atts, err := s.PaymentAttempts(ctx, id)
		if err != nil || len(atts) != 1 {
			t.Fatalf("PaymentAttempts(%s) = %+v, %v", id, atts, err)
		}
		a := atts[0]
		if a.CarID != "" || a.PaymentMethod != "" || a.CustomerRef != "" || a.KeyHash != nil || a.RequestHash != nil {
			t.Errorf("attempt of %s after erasure: %+v", id, a)
		}
		if a.Amount != 250 || a.ProviderRef != "pi_"+id || a.Outcome != store.AttemptSucceeded {
			t.Errorf("attempt of %s lost its money record: %+v", id, a)
		}
		if _, err := s.ByTokenHash(ctx, []byte("hash-"+id)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ByTokenHash(%s) after erasure: %v, want not found", id, err)
		}
	}
	if refunds, err := s.Refunds(ctx, "old"); err != nil || len(refunds) != 1 || refunds[0].Amount != 100 || refunds[0].ProviderRef != "re_old" {
		t.Errorf("refunds of old after erasure = %+v, %v", refunds, err)
	}
	for _, c := range allChanges(t, s) {
		erased := c.ReservationID == "old" || c.ReservationID == "older"
		if c.ReservationID == "" && c.Kind == store.KindGateOpened {
			if due := c.At.Before(cut); due && c.Note != "" || !due && c.Note == "" || c.Actor != "alice" || c.GateID != "entry-1" {
				t.Errorf("gate opening %d at %v after erasure: %+v", c.Version, c.At, c)
			}
			continue
		}
		if c.Kind == store.KindCancelled {
			if erased && c.Note != "" || !erased && c.Note == "" || c.Actor != "alice" {
				t.Errorf("change %d of %s after erasure: note %q, actor %q", c.Version, c.ReservationID, c.Note, c.Actor)
			}
		}
		if c.Reservation == nil {
			continue
		}
		if erased && c.Reservation.CarID != "" {
			t.Errorf("change %d of %s still holds the plate", c.Version, c.ReservationID)
		}
		if erased && (c.Reservation.Amount != 250 || c.Reservation.ID != c.ReservationID) {
			t.Errorf("change %d of %s lost more than the plate: %+v", c.Version, c.ReservationID, c.Reservation)
		}
		if !erased && c.Reservation.CarID != plate {
			t.Errorf("change %d of %s lost its plate, which is not due yet", c.Version, c.ReservationID)
		}
	}
	if v := lastVersion(t, s); v != versionBefore {
		t.Errorf("erasure moved the change log from %d to %d: it rewrites entries, it adds none", versionBefore, v)
	}
	events, err := s.GateEvents(ctx, store.EventFilter{})
	if err != nil || len(events) != 4 {
		t.Fatalf("GateEvents = %+v, %v", events, err)
	}
	for _, e := range events {
		due := e.ReceivedAt.Before(cut)
		if due && (e.Plate != "" || e.CarID != "" || e.Detail != "" || e.Resolution != "") {
			t.Errorf("event %s received %v kept personal data or free text: plate %q carId %q detail %q resolution %q",
				e.EventID, e.ReceivedAt, e.Plate, e.CarID, e.Detail, e.Resolution)
		}
		if e.EventID == "evd" {
			if e.Reason != "loop" || e.Outcome != store.EventRecorded {
				t.Errorf("event evd lost more than its free text: %+v", e)
			}
			continue
		}
		if !due && (e.Plate != plate || e.Detail == "" || e.Resolution == "") {
			t.Errorf("event %s (not due) was erased: %+v", e.EventID, e)
		}
		if e.Outcome != store.EventException || e.ReservationID != "old" || e.Note != "central's note" || e.ResolvedBy != "alice" ||
			e.ResolvedAt.IsZero() {
			t.Errorf("event %s lost more than the plate and free text: %+v", e.EventID, e)
		}
	}

	// Not due: untouched, and still found by plate.
	for _, id := range []string{"recent", "live"} {
		if r := get(t, s, id); r.CarID != plate || !bytes.Equal(r.TokenHash, []byte("hash-"+id)) {
			t.Errorf("%s (not due) was erased: %+v", id, r)
		}
	}
	byPlate, err := s.List(ctx, store.Filter{CarID: plate})
	if err != nil || !equalSets(ids(byPlate), []string{"recent", "live"}) {
		t.Errorf("List(carId) = %v, %v; want recent and live", ids(byPlate), err)
	}
	if n, err := s.List(ctx, store.Filter{}); err != nil || len(n) != 4 {
		t.Errorf("List() after erasure = %d reservations, %v; the counts must stay", len(n), err)
	}
}

// sameErasure compares erasures, times by instant.
func sameErasure(t *testing.T, what string, got, want store.Erasure) {
	t.Helper()
	times := func(e store.Erasure) []time.Time {
		return []time.Time{e.OldestEnded, e.NewestEnded, e.OldestReceived, e.NewestReceived}
	}
	gt, wt := times(got), times(want)
	for i := range gt {
		if !gt[i].Equal(wt[i]) {
			t.Errorf("%s = %+v\nwant %+v", what, got, want)
			return
		}
	}
	if got.Reservations != want.Reservations || got.Attempts != want.Attempts || got.Changes != want.Changes ||
		got.GateEvents != want.GateEvents || got.Notes != want.Notes {
		t.Errorf("%s = %+v\nwant %+v", what, got, want)
	}
}

// testRetentionConcurrent: erasures running at once (several instances of
// centrald on one database) erase each row once: their counts add up to
// what was due, and nothing is left.
func testRetentionConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	setSpots(t, s, "1")
	day := 24 * time.Hour
	const n = 120
	write(t, s, func(tx store.Tx) error {
		for i := range n {
			ended := base.Add(-100*day - time.Duration(i)*time.Hour)
			r := res(fmt.Sprintf("c%03d", i), "1", 0, 1)
			r.From, r.Until, r.CreatedAt = ended.Add(-time.Hour), ended, ended.Add(-2*time.Hour)
			r.State, r.CarID, r.EndedAt = reservation.Left, "CC1", ended
			if err := tx.Insert(r); err != nil {
				return err
			}
			if err := tx.Log(store.Change{At: ended, Kind: store.KindLeft, SpotID: "1", ReservationID: r.ID, Actor: "system", Reservation: &r}); err != nil {
				return err
			}
		}
		return nil
	})
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total store.Erasure
		errs  []error
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				e, err := s.ErasePersonalData(ctx, base.Add(-90*day), 7)
				mu.Lock()
				total.Add(e)
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
				if err != nil || e.Zero() {
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("concurrent erasures: %v", errs)
	}
	if total.Reservations != n || total.Changes != n {
		t.Errorf("concurrent erasures counted %d reservations and %d changes, want %d each (each row once)", total.Reservations, total.Changes, n)
	}
	if left, err := s.PersonalData(ctx, base.Add(-90*day)); err != nil || !left.Zero() || left.Changes != 0 {
		t.Errorf("left after concurrent erasures: %+v, %v", left, err)
	}
}
