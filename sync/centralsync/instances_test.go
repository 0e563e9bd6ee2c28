package centralsync_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/sync/centralsync"
	"github.com/parkgate/parkgate/sync/syncmsg"
)

func TestInstances(t *testing.T) { testInstances(t, startBroker(t, "127.0.0.1:0").url()) }

func TestInstancesMosquitto(t *testing.T) {
	url := os.Getenv("PARKING_TEST_MQTT_URL")
	if url == "" {
		t.Skip("PARKING_TEST_MQTT_URL is not set (e.g. tcp://127.0.0.1:1883): skipping two relays on an external Mosquitto")
	}
	testInstances(t, url)
}

// nextCentral returns the next central/status message the gate sees.
func (g *testGate) nextCentral() syncmsg.CentralStatus {
	g.t.Helper()
	m := next(g.t, g.central, "a central status")
	cs, err := syncmsg.DecodeCentralStatus(m.payload)
	if err != nil {
		g.t.Fatal(err)
	}
	return cs
}

// testInstances: two centrald instances on one store, as with PostgreSQL.
// Only the leader relays and speaks on central/status; the gates' events
// are shared between the instances and each is stored once; when the
// leadership moves, the new leader announces itself with a higher session
// and the gates' version line goes on unbroken.
func testInstances(t *testing.T, url string) {
	var aLeads, bLeads atomic.Bool
	aLeads.Store(true)
	role := func(leads *atomic.Bool) envOption {
		return func(c *centralsync.Config) {
			c.Shared, c.Poll = true, 10*time.Millisecond
			c.Leader = func(context.Context) bool { return leads.Load() }
		}
	}
	e := newEnv(t, url, role(&aLeads))
	a := e.relay
	b, stopB := e.startRelay(role(&bLeads))
	waitUntil(t, "A relays and B does not", func() bool { return a.Relaying() && !b.Relaying() })

	e.provision("g1", "entry")
	g := connectGate(t, url, e.topics, "g1")
	birthA := g.nextCentral()
	if !birthA.Online {
		t.Fatalf("central status with A leading: %+v", birthA)
	}
	r1 := e.paid("1", e.window(0, 2))
	g.untilChanges("the first payment", func(c syncmsg.Changes) bool { return hasEntry(c, r1.ID, syncmsg.StatePaid) })

	// Events reach one instance or the other, each is acknowledged and
	// stored exactly once.
	const n = 20
	want := map[string]bool{}
	for i := range n {
		r := e.paid(strconv.Itoa(i+2), e.window(0, 2))
		id := fmt.Sprintf("inst-%d", i)
		want[id] = true
		g.sendEvents(decision(id, int64(i+1), "entry", true, r))
	}
	for len(want) > 0 {
		for _, id := range g.nextAck() {
			delete(want, id)
		}
	}
	evs, err := e.st.GateEvents(e.ctx, store.EventFilter{GateID: "g1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != n {
		t.Fatalf("%d events stored, want %d", len(evs), n)
	}
	for _, ev := range evs {
		if ev.Outcome != store.EventApplied {
			t.Errorf("event %s: %s (%s)", ev.EventID, ev.Outcome, ev.Note)
		}
	}

	// The leadership moves from A to B, with a gap in between in which
	// nobody relays and a payment is made: B goes on from where A
	// recorded it had got to, so the gate gets that payment as a batch on
	// its unbroken line (untilChanges checks), not a heartbeat at the
	// log's head and a snapshot.
	e.caughtUp()
	aLeads.Store(false)
	waitUntil(t, "A stops relaying", func() bool { return !a.Relaying() })
	between := e.paid("39", e.window(0, 2))
	bLeads.Store(true)
	birthB := g.nextCentral()
	if !birthB.Online || birthB.Session <= birthA.Session {
		t.Fatalf("central status after the move: %+v, want a birth with a session above A's %d", birthB, birthA.Session)
	}
	waitUntil(t, "B relays and A does not", func() bool { return b.Relaying() && !a.Relaying() })
	g.untilChanges("the payment made while nobody relayed", func(c syncmsg.Changes) bool {
		return hasEntry(c, between.ID, syncmsg.StatePaid)
	})
	r2 := e.paid("40", e.window(0, 2))
	g.untilChanges("a payment after the move", func(c syncmsg.Changes) bool { return hasEntry(c, r2.ID, syncmsg.StatePaid) })

	// A, now a follower, stops: it says nothing on central/status. Then
	// B stops and says it is offline.
	e.stop()
	stopB()
	if last := g.nextCentral(); last.Online || last.Session != birthB.Session {
		t.Fatalf("central status after both stopped: %+v, want B's offline status (session %d)", last, birthB.Session)
	}
	select {
	case m := <-g.central:
		t.Fatalf("another central status: %s", m.payload)
	default:
	}
}

// A restarted relay (centrald restarted, on the same database) goes on
// from its recorded position: a payment made while it was down reaches the
// gate as a batch on its unbroken version line, not as a reason to resync.
func TestRestartGoesOn(t *testing.T) {
	url := startBroker(t, "127.0.0.1:0").url()
	e := newEnv(t, url)
	g := connectGate(t, url, e.topics, "g1")
	r1 := e.paid("1", e.window(0, 2))
	g.untilChanges("the first payment", func(c syncmsg.Changes) bool { return hasEntry(c, r1.ID, syncmsg.StatePaid) })
	e.caughtUp()
	e.stop()
	r2 := e.paid("2", e.window(0, 2))
	e.startRelay()
	g.untilChanges("the payment made while the relay was down", func(c syncmsg.Changes) bool {
		return hasEntry(c, r2.ID, syncmsg.StatePaid)
	})
}
