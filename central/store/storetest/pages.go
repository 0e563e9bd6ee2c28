package storetest

import (
	"cmp"
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
)

// The operator's lists read their first page through indexes in their
// order, so that a page costs the same after ten years of history; these
// tests hold the pages to the order the lists always had, ties included,
// for every filter and limit an operator can ask for.

// testListPages: List with a limit returns exactly the first limit
// reservations of the full list, in its order (spot position, spot id,
// window start, id), whatever the filter by spot and states: with spots
// that share a position (a retired spot keeps its last one), finished
// reservations that share a window start, ids that sort unlike their
// insertion, and reservations of a retired spot.
func testListPages(t *testing.T, s store.Store) {
	ctx := context.Background()
	setSpots(t, s, "b", "d", "a", "c")
	live := []reservation.State{reservation.Reserved, reservation.Paid, reservation.Taken}
	done := []reservation.State{reservation.Left, reservation.Expired, reservation.NoShow, reservation.Cancelled}
	var all []reservation.Reservation
	for si, spot := range []string{"b", "d", "a", "c"} {
		for i := range 12 {
			// Ids unique, and in an order unlike the windows'.
			r := res(fmt.Sprintf("r%03d", (37*i+11*si)%1000), spot, 0, 1)
			if i%4 == 0 {
				// Live ones: windows of their own (live windows never overlap).
				r.State = live[(i/4+si)%len(live)]
				r.From, r.Until = at(float64(100+i)), at(float64(101+i))
			} else {
				// Finished ones: three of them share each window start.
				r.State = done[(i+si)%len(done)]
				r.From, r.Until = at(float64(i/4)), at(float64(i/4)+1+float64(i%3))
			}
			all = append(all, r)
		}
	}
	insert(t, s, all...)
	// Retire b and d: they keep positions 0 and 1, which a and c now
	// take. The order is then a(0) b(0) c(1) d(1).
	setSpots(t, s, "a", "c")
	position := map[string]int{"a": 0, "b": 0, "c": 1, "d": 1}
	slices.SortFunc(all, func(x, y reservation.Reservation) int {
		return cmp.Or(cmp.Compare(position[x.SpotID], position[y.SpotID]), strings.Compare(x.SpotID, y.SpotID),
			x.From.Compare(y.From), strings.Compare(x.ID, y.ID))
	})
	// There are ties to break: finished reservations of a spot sharing a
	// start, whose ids do not follow their insertion.
	ties := 0
	for i := 1; i < len(all); i++ {
		if all[i].SpotID == all[i-1].SpotID && all[i].From.Equal(all[i-1].From) {
			ties++
		}
	}
	if ties < 8 {
		t.Fatalf("only %d ties in the window starts", ties)
	}

	filters := []store.Filter{
		{},
		{SpotID: "c"},
		{SpotID: "d"}, // retired
		{SpotID: "z"}, // unknown
		{States: []reservation.State{reservation.Left}},
		{States: []reservation.State{reservation.Taken}},
		{States: []reservation.State{reservation.NoShow, reservation.Cancelled}},
		{States: reservation.LiveStates},
		{States: []reservation.State{reservation.Cancelled, reservation.Paid, reservation.Expired}},
		{SpotID: "b", States: []reservation.State{reservation.Expired}},
		{SpotID: "a", States: []reservation.State{reservation.Left, reservation.Reserved}},
		{States: []reservation.State{"parked"}}, // no such state: nothing
		{States: []reservation.State{"parked", reservation.Taken}},
	}
	for _, f := range filters {
		var want []string
		for _, r := range all {
			if (f.SpotID == "" || r.SpotID == f.SpotID) && (len(f.States) == 0 || slices.Contains(f.States, r.State)) {
				want = append(want, r.ID)
			}
		}
		got, err := s.List(ctx, f)
		if err != nil {
			t.Fatalf("List(%+v): %v", f, err)
		}
		if !slices.Equal(ids(got), want) {
			t.Errorf("List(%+v) =\n %v\nwant\n %v", f, ids(got), want)
		}
		for limit := 1; limit <= len(want)+1; limit++ {
			f.Limit = limit
			page, err := s.List(ctx, f)
			if err != nil {
				t.Fatalf("List(%+v): %v", f, err)
			}
			if w := want[:min(limit, len(want))]; !slices.Equal(ids(page), w) {
				t.Errorf("List(%+v) =\n %v\nwant\n %v", f, ids(page), w)
			}
		}
	}
	// A page holds the whole reservations, as the full list does.
	page, err := s.List(ctx, store.Filter{States: []reservation.State{reservation.Taken}, Limit: 2})
	if err != nil || len(page) == 0 {
		t.Fatalf("List(taken) = %v, %v", page, err)
	}
	for _, r := range all {
		if r.ID == page[0].ID {
			sameRes(t, "List(taken)[0]", page[0], r)
		}
	}
}

// testGateEventPages: gate events are listed newest first, ties broken by
// gate id then sequence number descending, and a page (Limit) is exactly
// the first events of that order, for every filter by gate and outcome.
func testGateEventPages(t *testing.T, s store.Store) {
	ctx := context.Background()
	outcomes := []string{store.EventApplied, store.EventRecorded, store.EventException}
	var all []store.GateEvent
	for i := range 36 {
		gate := []string{"exit-1", "entry-2", "entry-1"}[(i/2)%3]
		all = append(all, store.GateEvent{EventID: fmt.Sprintf("ev%02d", (7*i)%36), GateID: gate, Seq: int64(100 - i),
			Kind: "decision", Role: "entry", Time: at(1), Source: "qr", Granted: true,
			// Three events in each instant, two of them of one gate.
			ReceivedAt: at(float64(i / 3)), Outcome: outcomes[(i/3)%len(outcomes)]})
	}
	write(t, s, func(tx store.Tx) error {
		for _, e := range all {
			if err := tx.PutGateEvent(e); err != nil {
				return err
			}
		}
		return nil
	})
	slices.SortFunc(all, func(x, y store.GateEvent) int {
		return cmp.Or(y.ReceivedAt.Compare(x.ReceivedAt), strings.Compare(x.GateID, y.GateID), cmp.Compare(y.Seq, x.Seq))
	})
	for _, f := range []store.EventFilter{
		{},
		{Outcome: store.EventException},
		{Outcome: store.EventRecorded},
		{GateID: "entry-1"},
		{GateID: "exit-1", Outcome: store.EventException},
		{GateID: "nope"},
	} {
		var want []string
		for _, e := range all {
			if (f.GateID == "" || e.GateID == f.GateID) && (f.Outcome == "" || e.Outcome == f.Outcome) {
				want = append(want, e.EventID)
			}
		}
		for limit := 0; limit <= len(want)+1; limit++ {
			f.Limit = limit
			got, err := s.GateEvents(ctx, f)
			if err != nil {
				t.Fatalf("GateEvents(%+v): %v", f, err)
			}
			w := want
			if limit > 0 {
				w = want[:min(limit, len(want))]
			}
			if g := eventIDs(got); !slices.Equal(g, w) {
				t.Errorf("GateEvents(%+v) =\n %v\nwant\n %v", f, g, w)
			}
		}
	}
}

func eventIDs(es []store.GateEvent) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.EventID)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// testRefundPages: the latest refunds come latest activity first (settled
// at, else recorded at), ties broken by reservation then number, and a
// page is the first refunds of that order.
func testRefundPages(t *testing.T, s store.Store) {
	ctx := context.Background()
	setSpots(t, s, "1")
	insert(t, s, res("a", "1", 1, 2), res("b", "1", 3, 4), res("c", "1", 5, 6))
	var all []store.Refund
	for i := range 12 {
		r := store.Refund{ReservationID: []string{"c", "a", "b"}[i%3], Number: 10 - i/3, Reason: "cancelled", Amount: 100,
			Currency: "eur", ChargeRef: "pi", ProviderKey: fmt.Sprintf("k%d", i), Status: store.RefundPending,
			CreatedAt: at(float64(i / 4))}
		if i%2 == 0 { // settled later: its activity is when it was settled
			r.Status, r.FinishedAt = store.RefundSucceeded, at(float64(5-i/4))
		}
		all = append(all, r)
	}
	write(t, s, func(tx store.Tx) error {
		for _, r := range all {
			if err := tx.PutRefund(r); err != nil {
				return err
			}
		}
		return nil
	})
	activity := func(r store.Refund) time.Time {
		if r.FinishedAt.IsZero() {
			return r.CreatedAt
		}
		return r.FinishedAt
	}
	slices.SortFunc(all, func(x, y store.Refund) int {
		return cmp.Or(activity(y).Compare(activity(x)), strings.Compare(x.ReservationID, y.ReservationID), cmp.Compare(x.Number, y.Number))
	})
	key := func(rs []store.Refund) []string {
		var out []string
		for _, r := range rs {
			out = append(out, fmt.Sprintf("%s/%d", r.ReservationID, r.Number))
		}
		return out
	}
	for limit := 0; limit <= len(all)+1; limit++ {
		got, err := s.LatestRefunds(ctx, limit)
		if err != nil {
			t.Fatal(err)
		}
		want := all
		if limit > 0 {
			want = all[:min(limit, len(all))]
		}
		if !reflect.DeepEqual(key(got), key(want)) {
			t.Errorf("LatestRefunds(%d) =\n %v\nwant\n %v", limit, key(got), key(want))
		}
	}
}
