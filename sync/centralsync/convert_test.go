package centralsync

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/sync/syncmsg"
)

var t0 = time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)

func res(id string, st reservation.State, paid bool) *reservation.Reservation {
	r := &reservation.Reservation{ID: id, SpotID: "3", State: st, From: t0, Until: t0.Add(2 * time.Hour), CarID: "B-XY 123"}
	if paid {
		r.PaidAt = t0.Add(-time.Hour)
	}
	return r
}

func TestBatchFromLog(t *testing.T) {
	log := []store.Change{
		{Version: 42, Kind: store.KindCreated, Reservation: res("a", reservation.Reserved, false)},
		{Version: 43, Kind: store.KindPaid, Reservation: res("a", reservation.Paid, true)},
		{Version: 44, Kind: store.KindSpotAdded, SpotID: "9"},
		{Version: 45, Kind: store.KindPaymentDeclined, Reservation: res("b", reservation.Reserved, false)},
		{Version: 46, Kind: store.KindCheckedIn, Reservation: res("a", reservation.Taken, true)},
		{Version: 47, Kind: store.KindCheckInReverted, Reservation: res("a", reservation.Paid, true)},
		{Version: 48, Kind: store.KindExpired, Reservation: res("b", reservation.Expired, false)},
		{Version: 50, Kind: store.KindCancelled, Reservation: res("c", reservation.Cancelled, false)}, // never paid
		{Version: 51, Kind: store.KindNoShow, Reservation: res("d", reservation.NoShow, true)},
		{Version: 52, Kind: store.KindCancelled, Reservation: res("e", reservation.Cancelled, true)},
		{Version: 53, Kind: store.KindLeft, Reservation: res("f", reservation.Left, true)},
		{Version: 54, Kind: store.KindCreated, Reservation: res("g", reservation.Reserved, false)},
	}
	c, err := batchFromLog(41, log)
	if err != nil {
		t.Fatal(err)
	}
	if c.V != 1 || c.From != 41 || c.To != 54 {
		t.Errorf("batch (%d, %d] v%d, want (41, 54] v1", c.From, c.To, c.V)
	}
	var got []string
	for _, ve := range c.Entries {
		got = append(got, ve.Entry.ID+":"+string(ve.Entry.State)+"@"+itoa(ve.Version))
	}
	want := []string{"a:paid@43", "a:taken@46", "a:paid@47", "d:no_show@51", "e:cancelled@52", "f:left@53"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entries %v, want %v", got, want)
	}
	// The batch is one the gates accept, and leaves them at 54.
	b, err := syncmsg.EncodeChanges(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := syncmsg.DecodeChanges(b); err != nil {
		t.Fatal(err)
	}
	// Version 54 concerns no gate: the batch covers it without an entry.
	if last := c.Entries[len(c.Entries)-1]; last.Version != 53 {
		t.Errorf("last entry at version %d, want 53 (54 is covered without one)", last.Version)
	}

	if hb, err := batchFromLog(54, nil); err != nil || !hb.IsHeartbeat() || hb.To != 54 {
		t.Errorf("empty log: %+v, %v", hb, err)
	}
	if _, err := batchFromLog(42, log); err == nil {
		t.Error("a log starting at from was accepted")
	}
	if _, err := batchFromLog(0, []store.Change{{Version: 2}, {Version: 2}}); err == nil {
		t.Error("a log with a repeated version was accepted")
	}
	if _, err := batchFromLog(-1, nil); err == nil {
		t.Error("a negative from was accepted")
	}
	big := make([]store.Change, syncmsg.MaxChangesEntries+1)
	for i := range big {
		big[i] = store.Change{Version: int64(i + 1), Reservation: res("r"+itoa(int64(i)), reservation.Paid, true)}
	}
	if _, err := batchFromLog(0, big); err == nil || !strings.Contains(err.Error(), "more than 1000") {
		t.Errorf("a log of %d relevant changes: %v", len(big), err)
	}
	if c, err := batchFromLog(0, big[:syncmsg.MaxChangesEntries]); err != nil || len(c.Entries) != syncmsg.MaxChangesEntries {
		t.Errorf("%d relevant changes: %d entries, %v", syncmsg.MaxChangesEntries, len(c.Entries), err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestEntryFromReservation(t *testing.T) {
	loc := time.FixedZone("CEST", 2*3600)
	r := *res("a", reservation.Paid, true)
	r.From, r.Until = r.From.In(loc), r.Until.In(loc)
	e, ok := entryFromReservation(r)
	if !ok || e.ID != "a" || e.State != syncmsg.StatePaid || e.From.Location() != time.UTC || !e.From.Equal(t0) {
		t.Errorf("got %+v, %v", e, ok)
	}
	for _, st := range []reservation.State{reservation.Reserved, reservation.Expired} {
		if _, ok := entryFromReservation(*res("x", st, true)); ok {
			t.Errorf("%s is sent to gates", st)
		}
	}
	for _, st := range []reservation.State{reservation.Paid, reservation.Taken, reservation.Left, reservation.Cancelled, reservation.NoShow} {
		if !gateRelevant(*res("x", st, true)) || gateRelevant(*res("x", st, false)) {
			t.Errorf("%s: relevant only when paid", st)
		}
	}
}
