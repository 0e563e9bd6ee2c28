package gatesync

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/gate/localdb"
	"github.com/parkgate/parkgate/sync/syncmsg"
)

// answerStart waits for the gate's start request and answers it with a
// snapshot of entries at version.
func answerStart(t *testing.T, c *fakeCentral, g *gateRig, version int64, entries []syncmsg.Entry) {
	t.Helper()
	eventually(t, "the start request", func() bool { return len(c.requestsFor(syncmsg.ReasonStart)) > 0 })
	c.snapshot("start-"+strconv.FormatInt(version, 10), version, entries, 0)
	eventually(t, "the snapshot applied", func() bool { return g.version() == version })
}

func TestSnapshotAtStartThenChanges(t *testing.T) {
	b := startMochi(t)
	site := uniqueSite(t)
	c := startCentral(t, b.url(), site, "centrald", "")
	g := startGate(t, testConfig(site, b.url()))

	eventually(t, "the birth", func() bool { return len(c.births(0)) > 0 })
	birth := c.births(0)[0]
	if ms := time.Now().UnixMilli(); birth.Session < ms-60_000 || birth.Session > ms {
		t.Errorf("session %d: want the clock in milliseconds (%d) as its floor", birth.Session, ms)
	}
	if birth.GateID != gateID || birth.Role != syncmsg.RoleEntry || birth.CacheVersion != 0 || birth.Outbox != 0 ||
		birth.Barrier != "closed" || !birth.ClockTrusted || birth.Software != "test" || birth.At.IsZero() {
		t.Errorf("birth = %+v", birth)
	}
	eventually(t, "the start request", func() bool { return len(c.requestsFor(syncmsg.ReasonStart)) == 1 })
	if r := c.requests()[0]; r.Have != 0 || r.ID == "" {
		t.Errorf("start request = %+v, want have 0", r)
	}

	entries := []syncmsg.Entry{entry("r1", "1", syncmsg.StatePaid), entry("r2", "2", syncmsg.StateTaken),
		entry("r3", "3", syncmsg.StateCancelled)}
	if n := c.snapshot("snap-1", 7, entries, 64); n < 2 {
		t.Fatalf("the snapshot has %d part(s); the test wants several", n)
	}
	eventually(t, "the snapshot applied", func() bool { return g.version() == 7 })
	for _, want := range entries {
		e, ok := g.lookup(want.ID)
		if !ok || e.State != localdb.State(want.State) || e.SpotID != want.SpotID || !e.From.Equal(want.From) {
			t.Errorf("cache %s = %+v, %v; want %+v", want.ID, e, ok, want)
		}
	}
	eventually(t, "a birth with the new cache version", func() bool {
		bs := c.births(birth.Session)
		return bs[len(bs)-1].CacheVersion == 7
	})

	// r1 checks in at 8; 9 concerns no gate, but the gate holds it.
	c.changes(7, 9, syncmsg.VersionedEntry{Version: 8, Entry: entry("r1", "1", syncmsg.StateTaken)})
	eventually(t, "the batch applied", func() bool { return g.version() == 9 })
	if e, _ := g.lookup("r1"); e.State != localdb.StateTaken || e.Version != 8 {
		t.Errorf("r1 = %+v, want taken at version 8", e)
	}
	// The next batch follows 9, not 8.
	c.changes(9, 10, syncmsg.VersionedEntry{Version: 10, Entry: entry("r2", "2", syncmsg.StateLeft)})
	eventually(t, "the next batch applied", func() bool { return g.version() == 10 })

	// A repeat and a heartbeat at the version held change nothing and ask
	// for nothing.
	c.changes(7, 9, syncmsg.VersionedEntry{Version: 8, Entry: entry("r1", "1", syncmsg.StatePaid)})
	c.heartbeat(10)
	c.ping("p1")
	if v := g.version(); v != 10 {
		t.Errorf("version = %d after a repeat, want 10", v)
	}
	if e, _ := g.lookup("r1"); e.State != localdb.StateTaken {
		t.Errorf("a repeated batch was applied: r1 = %+v", e)
	}
	if rs := c.requests(); len(rs) != 1 {
		t.Errorf("sync requests = %+v, want only the start", rs)
	}
	if !g.sync.Online() {
		t.Error("not online after a heartbeat")
	}
}

func TestGapAsksOnceAndBufferedChangesFollowTheSnapshot(t *testing.T) {
	b := startMochi(t)
	site := uniqueSite(t)
	c := startCentral(t, b.url(), site, "centrald", "")
	g := startGate(t, testConfig(site, b.url()))
	answerStart(t, c, g, 10, []syncmsg.Entry{entry("r1", "1", syncmsg.StatePaid), entry("r2", "2", syncmsg.StateTaken)})

	// 11 and 12 were missed.
	c.changes(12, 13, syncmsg.VersionedEntry{Version: 13, Entry: entry("r1", "1", syncmsg.StateTaken)})
	c.changes(13, 14, syncmsg.VersionedEntry{Version: 14, Entry: entry("r2", "2", syncmsg.StateLeft)})
	c.changes(14, 15)
	c.heartbeat(15)
	c.changes(15, 16, syncmsg.VersionedEntry{Version: 16, Entry: entry("r3", "3", syncmsg.StatePaid)})
	c.ping("p1")
	gaps := c.requestsFor(syncmsg.ReasonGap)
	if len(gaps) != 1 || gaps[0].Have != 10 {
		t.Fatalf("gap requests = %+v, want exactly one with have 10", gaps)
	}
	if n := len(c.requests()); n != 2 {
		t.Fatalf("%d sync requests, want 2 (start, gap): %+v", n, c.requests())
	}
	if v := g.version(); v != 10 {
		t.Fatalf("version = %d while waiting for the snapshot, want 10", v)
	}

	// Central answers at 13; the buffered batches after it apply.
	c.snapshot("snap-13", 13, []syncmsg.Entry{entry("r1", "1", syncmsg.StateTaken), entry("r2", "2", syncmsg.StateTaken)}, 0)
	eventually(t, "the snapshot and the buffered batches applied", func() bool { return g.version() == 16 })
	for id, want := range map[string]localdb.State{"r1": localdb.StateTaken, "r2": localdb.StateLeft, "r3": localdb.StatePaid} {
		if e, ok := g.lookup(id); !ok || e.State != want {
			t.Errorf("%s = %+v, %v; want %s", id, e, ok, want)
		}
	}
	c.ping("p2")
	if n := len(c.requests()); n != 2 {
		t.Errorf("%d sync requests after the snapshot, want still 2: %+v", n, c.requests())
	}
}

func TestHeartbeats(t *testing.T) {
	b := startMochi(t)
	site := uniqueSite(t)
	c := startCentral(t, b.url(), site, "centrald", "")
	cfg := testConfig(site, b.url())
	cfg.HeartbeatTimeout = time.Second
	g := startGate(t, cfg)
	answerStart(t, c, g, 5, []syncmsg.Entry{entry("r1", "1", syncmsg.StatePaid)})
	if g.sync.Online() {
		t.Error("online before central was heard of")
	}
	c.heartbeat(5)
	eventually(t, "online after a heartbeat", g.sync.Online)

	// Central is ahead: stale.
	c.heartbeat(8)
	eventually(t, "a stale request", func() bool { return len(c.requestsFor(syncmsg.ReasonStale)) == 1 })
	if r := c.requestsFor(syncmsg.ReasonStale)[0]; r.Have != 5 {
		t.Errorf("stale request %+v, want have 5", r)
	}
	c.snapshot("snap-8", 8, []syncmsg.Entry{entry("r1", "1", syncmsg.StateTaken)}, 0)
	eventually(t, "the snapshot at 8", func() bool { return g.version() == 8 })

	// Central is behind (restored from a backup): central wins.
	c.heartbeat(3)
	eventually(t, "a second resync request", func() bool { return len(c.requestsFor(syncmsg.ReasonStale)) == 2 })
	if r := c.requestsFor(syncmsg.ReasonStale)[1]; r.Have != 8 {
		t.Errorf("request after the restore %+v, want have 8", r)
	}
	c.snapshot("snap-3", 3, []syncmsg.Entry{entry("r9", "9", syncmsg.StatePaid)}, 0)
	eventually(t, "the restored snapshot at 3", func() bool { return g.version() == 3 })
	if _, ok := g.lookup("r1"); ok {
		t.Error("r1 survived central's restored snapshot")
	}

	// Silence: no longer online once HeartbeatTimeout has passed.
	eventually(t, "offline without heartbeats", func() bool { return !g.sync.Online() })
	c.heartbeat(3)
	eventually(t, "online again", g.sync.Online)
}

func TestCentralWillMakesTheGateOffline(t *testing.T) {
	b := startMochi(t)
	site := uniqueSite(t)
	c := startCentral(t, b.url(), site, "centrald", "")
	g := startGate(t, testConfig(site, b.url()))
	answerStart(t, c, g, 5, nil)
	c.publish(c.topics.CentralStatus(), syncmsg.CentralStatus{Online: true, Session: 4, Version: 5, At: time.Now()})
	c.heartbeat(5)
	eventually(t, "online", g.sync.Online)
	// A late will of an older session changes nothing ...
	c.publish(c.topics.CentralStatus(), syncmsg.CentralStatus{Online: false, Session: 3})
	c.ping("p1")
	if !g.sync.Online() {
		t.Fatal("a late will of central's older session made the gate offline")
	}
	// ... central's own does.
	c.publish(c.topics.CentralStatus(), syncmsg.CentralStatus{Online: false, Session: 4})
	eventually(t, "offline after central's will", func() bool { return !g.sync.Online() })

	// Central comes back restored from a backup, at version 2: a resync
	// at once, before any batch of its new line.
	c.publish(c.topics.CentralStatus(), syncmsg.CentralStatus{Online: true, Session: 5, Version: 2, At: time.Now()})
	eventually(t, "a resync after the restore", func() bool { return len(c.requestsFor(syncmsg.ReasonStale)) == 1 })
}

func TestSnapshotPartMissingAsksAgain(t *testing.T) {
	b := startMochi(t)
	site := uniqueSite(t)
	c := startCentral(t, b.url(), site, "centrald", "")
	cfg := testConfig(site, b.url())
	cfg.SnapshotTimeout = 300 * time.Millisecond
	g := startGate(t, cfg)
	entries := []syncmsg.Entry{entry("r1", "1", syncmsg.StatePaid), entry("r2", "2", syncmsg.StatePaid),
		entry("r3", "3", syncmsg.StatePaid)}

	eventually(t, "the start request", func() bool { return len(c.requestsFor(syncmsg.ReasonStart)) == 1 })
	if n := c.snapshot("snap-a", 4, entries, 64, 1); n < 2 {
		t.Fatalf("the snapshot has %d part(s); the test wants several", n)
	}
	eventually(t, "the request asked again", func() bool { return len(c.requestsFor(syncmsg.ReasonStart)) >= 2 })
	if v := g.version(); v != 0 {
		t.Fatalf("version = %d from an incomplete snapshot", v)
	}
	c.snapshot("snap-b", 4, entries, 64)
	eventually(t, "the second snapshot applied", func() bool { return g.version() == 4 })

	// The rest of the abandoned snapshot, arriving late, is ignored.
	c.snapshot("snap-a", 4, entries[:1], 64)
	c.ping("p1")
	if _, ok := g.lookup("r3"); !ok || g.version() != 4 {
		t.Error("a late part of an abandoned snapshot replaced the cache")
	}
}

func TestEventsInOrderDeletedOnlyOnAckAndResent(t *testing.T) {
	b := startMochi(t)
	site := uniqueSite(t)
	c := startCentral(t, b.url(), site, "centrald", "")
	cfg := testConfig(site, b.url())
	cfg.ResendAfter = 300 * time.Millisecond
	g := startGate(t, cfg)
	recorded := g.record(250)
	var want []string
	for _, ev := range recorded {
		want = append(want, ev.EventID)
	}

	eventually(t, "all 250 events", func() bool { return len(c.eventIDs()) == 250 })
	if got := c.eventIDs(); !slices.Equal(got, want) {
		t.Fatalf("events arrived out of order")
	}
	for i, batch := range c.events() {
		if len(batch) > syncmsg.MaxEvents {
			t.Errorf("batch %d has %d events", i, len(batch))
		}
		for j := 1; j < len(batch); j++ {
			if batch[j].Seq <= batch[j-1].Seq {
				t.Errorf("batch %d not in seq order", i)
			}
		}
		if batch[0].Role != syncmsg.RoleEntry || batch[0].Source != "qr" || !batch[0].Granted {
			t.Errorf("event = %+v", batch[0])
		}
	}
	// Not acknowledged: sent again, and still in the outbox.
	eventually(t, "the events resent", func() bool {
		n := 0
		for _, batch := range c.events() {
			for _, ev := range batch {
				if ev.EventID == want[0] {
					n++
				}
			}
		}
		return n >= 2
	})
	if d := g.depth(); d != 250 {
		t.Fatalf("outbox depth %d before any ack, want 250", d)
	}

	// An ack deletes exactly what it names.
	c.publish(c.topics.Ack(gateID), syncmsg.Ack{EventIDs: want[:200]})
	eventually(t, "200 acknowledged", func() bool { return g.depth() == 50 })
	pending, err := g.db.Pending(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if pending[0].EventID != want[200] {
		t.Errorf("oldest pending = %s, want %s", pending[0].EventID, want[200])
	}
	c.autoAck.Store(true)
	eventually(t, "the rest acknowledged on a resend", func() bool { return g.depth() == 0 })
	eventually(t, "a birth with an empty outbox", func() bool {
		bs := c.births(0)
		return bs[len(bs)-1].Outbox == 0
	})
}

// sessionOf reads the gate's session counter.
func sessionOf(t *testing.T, g *gateRig) int64 {
	t.Helper()
	b, err := os.ReadFile(g.sessions)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

func TestNothingLostAcrossABrokerRestart(t *testing.T) {
	b := startMochi(t)
	site := uniqueSite(t)
	c := startCentral(t, b.url(), site, "centrald", "")
	c.autoAck.Store(true)
	cfg := testConfig(site, b.url())
	cfg.RetryMax = time.Second
	g := startGate(t, cfg)

	before := g.record(10)
	eventually(t, "the first events acknowledged", func() bool { return g.depth() == 0 && len(c.eventIDs()) == 10 })

	b.stop()
	eventually(t, "the gate to notice", func() bool { return !g.sync.connected.Load() })
	// The lane keeps deciding while the broker is away.
	during := g.record(20)
	// Let the backoff reach its cap (100, 200, 400, 800 ms, then 1 s):
	// the gate must be back quickly even from there.
	a0 := g.attempts.n.Load()
	eventually(t, "several reconnect attempts", func() bool { return g.attempts.n.Load() >= a0+5 })

	restarted := time.Now()
	b.start()
	eventually(t, "the gate back", func() bool { return g.sync.connected.Load() })
	if took := time.Since(restarted); took > cfg.RetryMax+2*time.Second {
		t.Errorf("the gate took %s to reconnect, RetryMax is %s", took, cfg.RetryMax)
	}
	eventually(t, "every event acknowledged", func() bool { return g.depth() == 0 })
	got := map[string]bool{}
	for _, id := range c.eventIDs() {
		got[id] = true
	}
	for _, ev := range append(before, during...) {
		if !got[ev.EventID] {
			t.Errorf("event %d (%s) never reached central", ev.Seq, ev.EventID)
		}
	}
	// The birth of the new connection carries a newer session.
	eventually(t, "a birth of the new session", func() bool { return len(c.births(sessionOf(t, g))) > 0 })
}

func TestWillCarriesItsOwnSession(t *testing.T) {
	b := startMochi(t)
	p := startProxy(t, b.addr)
	site := uniqueSite(t)
	c := startCentral(t, b.url(), site, "centrald", "")
	cfg := testConfig(site, p.url())
	cfg.Keepalive = time.Second
	g := startGate(t, cfg)
	eventually(t, "the first birth", func() bool { return len(c.births(0)) > 0 })
	s1 := c.births(0)[0].Session

	// A cut connection: the broker sees it close and sends the will.
	p.cut()
	eventually(t, "the will of the first session", func() bool {
		return slices.ContainsFunc(c.wills(), func(s syncmsg.GateStatus) bool { return s.Session == s1 })
	})
	eventually(t, "a birth of a newer session", func() bool { return c.lastSession() > s1 })
	s2 := c.lastSession()

	// A dead link: nothing passes, nothing closes. The gate finds out by
	// keepalive and connects again; the broker gives up on the old
	// connection (keepalive or takeover) and publishes its will, which
	// must carry the old session, never the new one.
	p.freeze()
	eventually(t, "a birth after the dead link", func() bool { return c.lastSession() > s2 })
	s3 := c.lastSession()
	eventually(t, "the will of the dead link", func() bool {
		return slices.ContainsFunc(c.wills(), func(s syncmsg.GateStatus) bool { return s.Session == s2 })
	})
	for _, w := range c.wills() {
		if w.Session >= s3 || w.GateID != gateID {
			t.Errorf("will %+v: want a session older than the birth's %d", w, s3)
		}
	}

	// A clean stop says offline itself (a clean disconnect drops the will).
	g.stop()
	eventually(t, "the offline status at stop", func() bool {
		return slices.ContainsFunc(c.wills(), func(s syncmsg.GateStatus) bool { return s.Session == s3 })
	})
}

func TestCommands(t *testing.T) {
	b := startMochi(t)
	p := startProxy(t, b.addr)
	site := uniqueSite(t)
	c := startCentral(t, b.url(), site, "centrald", "")
	c.autoAck.Store(true)
	g := startGate(t, testConfig(site, p.url()))
	answerStart(t, c, g, 1, nil)
	result := func(id string, n int) syncmsg.Result {
		t.Helper()
		eventually(t, "result of "+id, func() bool { return len(c.results()[id]) >= n })
		return c.results()[id][n-1]
	}
	open := func(id string, expires time.Time) {
		c.command(syncmsg.Command{ID: id, Type: syncmsg.CmdOpen, Expires: expires, Reason: "operator test"})
	}

	open("open-1", time.Now().Add(10*time.Second))
	if r := result("open-1", 1); !r.OK || r.Error != "" {
		t.Errorf("open-1 = %+v, want ok", r)
	}
	if rs := g.lane.reads(); len(rs) != 1 || rs[0].Source != localdb.SourceRemote || rs[0].Value != "open-1" {
		t.Errorf("lane reads = %+v, want one remote open-1", rs)
	}
	eventually(t, "the remote decision at central", func() bool {
		for _, batch := range c.events() {
			for _, ev := range batch {
				if ev.Source == "remote" && strings.Contains(ev.Detail, "open-1") {
					return true
				}
			}
		}
		return false
	})

	// Repeated: refused, even after a reconnection.
	open("open-1", time.Now().Add(10*time.Second))
	if r := result("open-1", 2); r.OK || r.Error != syncmsg.RefusedDuplicate {
		t.Errorf("repeat of open-1 = %+v, want duplicate", r)
	}
	s := sessionOf(t, g)
	p.cut()
	eventually(t, "the gate back", func() bool { return g.sync.connected.Load() && sessionOf(t, g) > s })
	open("open-1", time.Now().Add(10*time.Second))
	if r := result("open-1", 3); r.OK || r.Error != syncmsg.RefusedDuplicate {
		t.Errorf("open-1 after a reconnect = %+v, want duplicate", r)
	}

	// Expired.
	open("open-2", time.Now().Add(-time.Second))
	if r := result("open-2", 1); r.OK || r.Error != syncmsg.RefusedExpired {
		t.Errorf("open-2 = %+v, want expired", r)
	}
	// The clock is not trusted: the expiry cannot be checked.
	g.lane.trusted.Store(false)
	open("open-3", time.Now().Add(10*time.Second))
	if r := result("open-3", 1); r.OK || r.Error != syncmsg.RefusedClockUntrusted {
		t.Errorf("open-3 = %+v, want clock_untrusted", r)
	}
	if n := len(g.lane.reads()); n != 1 {
		t.Errorf("the lane executed %d opens, want 1", n)
	}

	// Resync, even on an untrusted clock: harmless and needed. (The
	// start request of the reconnection is answered first: with one
	// outstanding, a resync command asks for nothing more.)
	eventually(t, "the start request of the reconnection", func() bool { return len(c.requestsFor(syncmsg.ReasonStart)) == 2 })
	c.snapshot("start-again", 1, nil, 0)
	c.ping("p1")
	c.command(syncmsg.Command{ID: "resync-1", Type: syncmsg.CmdResync, Expires: time.Now().Add(10 * time.Second)})
	if r := result("resync-1", 1); !r.OK {
		t.Errorf("resync-1 = %+v, want ok", r)
	}
	eventually(t, "the requested resync", func() bool { return len(c.requestsFor(syncmsg.ReasonCommand)) == 1 })

	// A type this gate does not know, answered rather than left hanging.
	c.ping("future-1")
}

// Central counts a gate online only after a birth it receives live
// (docs/sync.md, Presence), so a gate that is connected already answers a
// new central birth with a birth of its current session.
func TestBirthAgainWhenCentralComesOnline(t *testing.T) {
	b := startMochi(t)
	site := uniqueSite(t)
	c := startCentral(t, b.url(), site, "centrald", "")
	g := startGate(t, testConfig(site, b.url()))
	answerStart(t, c, g, 5, nil)
	session := sessionOf(t, g)
	// Settled: the birth reporting the snapshot's version is out.
	eventually(t, "a birth at version 5", func() bool {
		bs := c.births(session)
		return len(bs) > 0 && bs[len(bs)-1].CacheVersion == 5
	})
	n := len(c.births(session))
	c.publish(c.topics.CentralStatus(), syncmsg.CentralStatus{Online: true, Session: time.Now().UnixMilli(), Version: 5, At: time.Now()})
	eventually(t, "a birth again", func() bool { return len(c.births(session)) > n })
}
