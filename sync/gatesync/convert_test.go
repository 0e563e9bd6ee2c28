package gatesync

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/gate/localdb"
	"github.com/parkgate/parkgate/sync/syncmsg"
)

var t0 = time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)

func testEntry(id string, st syncmsg.State) syncmsg.Entry {
	return syncmsg.Entry{ID: id, SpotID: "3", From: t0, Until: t0.Add(2 * time.Hour), CarID: "B-XY 123", State: st}
}

func TestLocalChangesChain(t *testing.T) {
	e1, e2 := testEntry("r1", syncmsg.StatePaid), testEntry("r2", syncmsg.StateNoShow)
	for _, c := range []struct {
		name string
		in   syncmsg.Changes
		want [][2]int64 // Prev, Version; a marker has an empty syncmsg.Entry
		mark bool       // last is a marker
	}{
		{"entries up to to", syncmsg.Changes{From: 41, To: 44, Entries: []syncmsg.VersionedEntry{{Version: 42, Entry: e1}, {Version: 44, Entry: e2}}}, [][2]int64{{41, 42}, {42, 44}}, false},
		{"last entry below to", syncmsg.Changes{From: 41, To: 47, Entries: []syncmsg.VersionedEntry{{Version: 42, Entry: e1}, {Version: 44, Entry: e2}}}, [][2]int64{{41, 42}, {42, 44}, {44, 47}}, true},
		{"no entry, versions covered", syncmsg.Changes{From: 41, To: 43}, [][2]int64{{41, 43}}, true},
		{"heartbeat", syncmsg.Heartbeat(41), nil, false},
	} {
		got := localChanges(c.in)
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
	got := localChanges(syncmsg.Changes{From: 1, To: 2, Entries: []syncmsg.VersionedEntry{{Version: 2, Entry: e1}}})[0].Entry
	want := localdb.Entry{ReservationID: "r1", SpotID: "3", From: e1.From, Until: e1.Until, CarID: "B-XY 123", State: localdb.StatePaid}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entry\n got %+v\nwant %+v", got, want)
	}
	if le := localEntries([]syncmsg.Entry{e1, e2}); len(le) != 2 || le[1].State != localdb.StateNoShow {
		t.Errorf("localEntries = %+v", le)
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
	if err := db.ApplySnapshot(ctx, 41, localEntries([]syncmsg.Entry{testEntry("r1", syncmsg.StatePaid)})); err != nil {
		t.Fatal(err)
	}
	apply := func(c syncmsg.Changes) (int, error) {
		t.Helper()
		have, err := db.Version(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v := syncmsg.Classify(have, c); v != syncmsg.Apply {
			t.Fatalf("syncmsg.Classify(%d, (%d, %d]) = %v", have, c.From, c.To, v)
		}
		return db.ApplyChanges(ctx, localChanges(c)...)
	}
	version := func() int64 {
		v, err := db.Version(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	b1 := syncmsg.Changes{From: 41, To: 44, Entries: []syncmsg.VersionedEntry{{Version: 42, Entry: testEntry("r1", syncmsg.StateTaken)}, {Version: 44, Entry: testEntry("r2", syncmsg.StateCancelled)}}}
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
	if n, err := db.ApplyChanges(ctx, localChanges(b1)...); n != 0 || err != nil {
		t.Errorf("repeat: %d, %v", n, err)
	}
	// A batch that does not follow is refused by the cache too.
	_, err = db.ApplyChanges(ctx, localChanges(syncmsg.Changes{From: 45, To: 46, Entries: []syncmsg.VersionedEntry{{Version: 46, Entry: testEntry("r3", syncmsg.StatePaid)}}})...)
	if !errors.Is(err, localdb.ErrVersionGap) {
		t.Errorf("gap: %v", err)
	}
	// A batch whose last versions concern no gate must still leave the
	// cache at To; that needs the version marker, which localdb may not
	// accept yet.
	n, err := db.ApplyChanges(ctx, localChanges(syncmsg.Changes{From: 44, To: 47, Entries: []syncmsg.VersionedEntry{{Version: 45, Entry: testEntry("r3", syncmsg.StatePaid)}}})...)
	if err != nil {
		if strings.Contains(err.Error(), "reservation id is empty") {
			t.Skipf("localdb does not accept the version marker yet (see localChanges): %v", err)
		}
		t.Fatal(err)
	}
	if n != 1 || version() != 47 {
		t.Errorf("with marker: %d applied, version %d; want 1, 47", n, version())
	}
	if n, err := db.ApplyChanges(ctx, localChanges(syncmsg.Changes{From: 47, To: 49})...); err != nil || version() != 49 {
		t.Errorf("marker alone: %d, %v, version %d; want version 49", n, err, version())
	}
}

func TestEventFromLocal(t *testing.T) {
	ev := localdb.Event{EventID: "e1", Seq: 3, Kind: localdb.KindDecision, GateID: "entry-1", Role: localdb.RoleExit,
		Time: t0.In(time.FixedZone("X", 3600)), Source: localdb.SourcePlate, Granted: true, Reason: "plate",
		ReservationID: "r", SpotID: "3", CarID: "B-XY 123", Plate: "BXY123", Overstay: true, PresenceUnknown: true,
		ClockTrusted: true, Detail: "late"}
	got := eventFromLocal(ev)
	want := syncmsg.Event{EventID: "e1", Seq: 3, Kind: "decision", Role: "exit", Time: t0, Source: "plate", Granted: true,
		Reason: "plate", ReservationID: "r", SpotID: "3", CarID: "B-XY 123", Plate: "BXY123", Overstay: true,
		PresenceUnknown: true, ClockTrusted: true, Detail: "late"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("\n got %+v\nwant %+v", got, want)
	}
	if _, err := syncmsg.EncodeEvents(syncmsg.Events{Events: []syncmsg.Event{got}}); err != nil {
		t.Error(err)
	}
}
