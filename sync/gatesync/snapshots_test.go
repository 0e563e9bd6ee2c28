package gatesync

import (
	"testing"

	"github.com/parkgate/parkgate/gate/localdb"
	"github.com/parkgate/parkgate/sync/syncmsg"
)

// answer sends a snapshot in one part that says it answers request.
func (c *fakeCentral) answer(request, id string, version int64, entries []syncmsg.Entry) {
	c.t.Helper()
	ps, err := syncmsg.SplitSnapshot(id, version, entries, 0)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, p := range ps {
		p.Request = request
		c.publish(c.topics.Snapshot(gateID), p)
	}
}

// The case: a batch starting at 31 revealed the gap, and the
// snapshot came at 30. The buffered batch straddles the snapshot's
// version: its entries above it apply, and no second resync is needed. A
// live batch the cache is inside of (a relay gone on from an older
// position) applies from the version held in the same way.
func TestBatchStraddlingTheVersionHeldAppliesFromIt(t *testing.T) {
	b := startMochi(t)
	site := uniqueSite(t)
	c := startCentral(t, b.url(), site, "centrald", "")
	g := startGate(t, testConfig(site, b.url()))
	answerStart(t, c, g, 10, []syncmsg.Entry{entry("r1", "1", syncmsg.StatePaid), entry("r2", "2", syncmsg.StatePaid)})

	// (12, 16]: 11 and 12 were missed.
	c.changes(12, 16,
		syncmsg.VersionedEntry{Version: 13, Entry: entry("r1", "1", syncmsg.StateTaken)},
		syncmsg.VersionedEntry{Version: 15, Entry: entry("r2", "2", syncmsg.StateTaken)},
		syncmsg.VersionedEntry{Version: 16, Entry: entry("r3", "3", syncmsg.StatePaid)})
	eventually(t, "the gap request", func() bool { return len(c.requestsFor(syncmsg.ReasonGap)) == 1 })
	gap := c.requestsFor(syncmsg.ReasonGap)[0]

	// The snapshot is at 14, inside the buffered batch.
	c.answer(gap.ID, "snap-14", 14, []syncmsg.Entry{entry("r1", "1", syncmsg.StateTaken), entry("r2", "2", syncmsg.StatePaid)})
	eventually(t, "the snapshot and the rest of the buffered batch applied", func() bool { return g.version() == 16 })
	for id, want := range map[string]localdb.State{"r1": localdb.StateTaken, "r2": localdb.StateTaken, "r3": localdb.StatePaid} {
		if e, ok := g.lookup(id); !ok || e.State != want {
			t.Errorf("%s = %+v, %v; want %s", id, e, ok, want)
		}
	}

	// Live: (14, 18] while holding 16; 15 is held already, 17 is new.
	c.changes(14, 18,
		syncmsg.VersionedEntry{Version: 15, Entry: entry("r2", "2", syncmsg.StateTaken)},
		syncmsg.VersionedEntry{Version: 17, Entry: entry("r1", "1", syncmsg.StateLeft)})
	eventually(t, "the overlapping batch applied", func() bool { return g.version() == 18 })
	if e, _ := g.lookup("r1"); e.State != localdb.StateLeft {
		t.Errorf("r1 = %+v, want left", e)
	}
	c.ping("p1")
	if n := len(c.requests()); n != 2 {
		t.Errorf("%d sync requests, want 2 (start, one gap): %+v", n, c.requests())
	}
}

// A snapshot echoes the request it answers. The gate takes only answers to
// the requests it made since its last snapshot: an answer to another
// request, or a late answer to one already answered, could take the cache
// back in time.
func TestSnapshotMatchedToItsRequest(t *testing.T) {
	b := startMochi(t)
	site := uniqueSite(t)
	c := startCentral(t, b.url(), site, "centrald", "")
	g := startGate(t, testConfig(site, b.url()))
	eventually(t, "the start request", func() bool { return len(c.requestsFor(syncmsg.ReasonStart)) == 1 })
	start := c.requestsFor(syncmsg.ReasonStart)[0]

	c.answer("1-1-not-ours", "snap-x", 5, []syncmsg.Entry{entry("rx", "9", syncmsg.StatePaid)})
	c.ping("p1")
	if v := g.version(); v != 0 {
		t.Fatalf("version = %d: a snapshot answering another request was applied", v)
	}
	c.answer(start.ID, "snap-7", 7, []syncmsg.Entry{entry("r1", "1", syncmsg.StatePaid)})
	eventually(t, "the answer to the start request applied", func() bool { return g.version() == 7 })

	c.changes(7, 9, syncmsg.VersionedEntry{Version: 9, Entry: entry("r1", "1", syncmsg.StateTaken)})
	eventually(t, "the batch applied", func() bool { return g.version() == 9 })
	c.changes(11, 12)
	eventually(t, "the gap request", func() bool { return len(c.requestsFor(syncmsg.ReasonGap)) == 1 })
	gap := c.requestsFor(syncmsg.ReasonGap)[0]

	// A second answer to the start request, built before the batch: late.
	c.answer(start.ID, "snap-7b", 7, []syncmsg.Entry{entry("r1", "1", syncmsg.StatePaid)})
	c.ping("p2")
	if v := g.version(); v != 9 {
		t.Fatalf("version = %d: a late answer to an answered request was applied", v)
	}
	c.answer(gap.ID, "snap-12", 12, []syncmsg.Entry{entry("r1", "1", syncmsg.StateLeft)})
	eventually(t, "the answer to the gap request applied", func() bool { return g.version() == 12 })

	// A central that does not echo the request (an older release) is
	// still answered.
	c.heartbeat(20)
	eventually(t, "the stale request", func() bool { return len(c.requestsFor(syncmsg.ReasonStale)) == 1 })
	c.snapshot("snap-20", 20, []syncmsg.Entry{entry("r1", "1", syncmsg.StateLeft)}, 0)
	eventually(t, "the snapshot without a request id applied", func() bool { return g.version() == 20 })
}
