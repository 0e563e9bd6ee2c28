package centralsync_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	centralbroker "github.com/parkgate/parkgate/central/broker"
	"github.com/parkgate/parkgate/central/daemon"
	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/sync/centralsync"
	"github.com/parkgate/parkgate/sync/syncmsg"
)

func birth(gate, role string, session int64) []byte {
	p, err := syncmsg.EncodeGateStatus(syncmsg.GateStatus{Online: true, Session: session, GateID: gate, Role: role,
		Software: "test-1", Barrier: "closed", ClockTrusted: true, At: time.Now().UTC()})
	if err != nil {
		panic(err)
	}
	return p
}

// exceptions returns the stored exceptions by event id.
func (e *env) exceptions() map[string]store.GateEvent {
	e.t.Helper()
	ex, err := e.st.GateEvents(e.ctx, store.EventFilter{Outcome: store.EventException})
	if err != nil {
		e.t.Fatal(err)
	}
	m := map[string]store.GateEvent{}
	for _, ev := range ex {
		m[ev.EventID] = ev
	}
	return m
}

// The attack, end to end through the embedded broker with its ACL: gates
// provisioned with `centrald gate add --role`, each logged in with its own
// credentials. The exit gate publishes an entry and then an exit dated
// 9999 for a reservation, and a birth claiming the entry role; the entry
// gate publishes an exit and an event of an unknown kind. Every one of
// them is acknowledged (the gate may forget it) and stored as an
// exception for operators, and the reservation does not move.
func TestForgedEventsThroughTheBroker(t *testing.T) {
	e := newCentral(t)
	now := e.clk.Now()
	pw := map[string]string{}
	for id, role := range map[string]string{"entry-1": "entry", "exit-1": "exit"} {
		p, err := daemon.AddGate(e.ctx, e.st, id, role, now)
		if err != nil {
			t.Fatal(err)
		}
		pw[id] = p
	}
	central := "central-" + strings.ToLower(uniqueSite())
	br, err := centralbroker.New(centralbroker.Config{Site: e.site, Listen: "127.0.0.1:0", CentralUser: daemon.CentralUser, CentralPassword: central},
		daemon.GateCredentials{Store: e.st}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	served := make(chan error, 1)
	go func() { served <- br.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("broker: %v", err)
		}
	})
	e.url = "tcp://" + br.Addr()
	e.relay, e.stop = e.startRelay(func(c *centralsync.Config) { c.Username, c.Password = daemon.CentralUser, central })

	entry := connectGate(t, e.url, e.topics, "entry-1", withLogin("entry-1", pw["entry-1"]))
	exit := connectGate(t, e.url, e.topics, "exit-1", withLogin("exit-1", pw["exit-1"]))
	r := e.paid("1", e.window(0, 2))

	// The exit gate claims the entry role in its birth: the role it was
	// provisioned with stays.
	exit.publish(e.topics.GateStatus("exit-1"), birth("exit-1", syncmsg.RoleEntry, 1), true)
	waitUntil(t, "exit-1's birth is stored", func() bool { g, _ := e.gate("exit-1"); return g.Online })
	if g, _ := e.gate("exit-1"); g.Role != syncmsg.RoleExit {
		t.Errorf("after a birth claiming entry, exit-1's role is %q, want exit", g.Role)
	}

	in := decision("forged-in", 1, "entry", true, r)
	out := decision("forged-out", 2, "exit", true, r)
	out.Time = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	exit.sendEvents(in, out)
	if ids := exit.nextAck(); fmt.Sprint(ids) != "[forged-in forged-out]" {
		t.Fatalf("ack %v, want both", ids)
	}
	wrongRole := decision("entry-says-exit", 1, "exit", true, r)
	odd := decision("odd-kind", 2, "entry", true, r)
	odd.Kind = "teleport"
	entry.sendEvents(wrongRole, odd)
	if ids := entry.nextAck(); fmt.Sprint(ids) != "[entry-says-exit odd-kind]" {
		t.Fatalf("ack %v, want both", ids)
	}

	ex := e.exceptions()
	for id, note := range map[string]string{
		"forged-in":       "registered as an exit gate",
		"forged-out":      "after central's clock",
		"entry-says-exit": "registered as an entry gate",
		"odd-kind":        "unknown event kind",
	} {
		if ev, ok := ex[id]; !ok || !strings.Contains(ev.Note, note) {
			t.Errorf("event %s: exception %v, note %q; want an exception saying %q", id, ok, ev.Note, note)
		}
	}
	if got := e.get(r.ID); got.State != reservation.Paid || !got.CheckedInAt.IsZero() || !got.LeftAt.IsZero() {
		t.Errorf("after the forged events the reservation is %s (in %v, out %v), want paid and untouched", got.State, got.CheckedInAt, got.LeftAt)
	}
}

// A gate with no role recorded (provisioned before roles were, or known
// only to an external broker) gets its role from its first birth, and no
// later birth changes it; its events wait (unacknowledged, so the gate
// sends them again) until that birth is stored. With RoleFromBirth
// (mqtt.allow_anonymous), each birth sets the role.
func TestRoleFromFirstBirth(t *testing.T) {
	url := startBroker(t, "127.0.0.1:0").url()
	e := newEnv(t, url)
	e.provision("g1", "entry")
	e.provision("old-1", "") // provisioned before roles were
	old := connectGate(t, url, e.topics, "old-1")
	g := connectGate(t, url, e.topics, "g1")
	r := e.paid("1", e.window(0, 2))

	// Events of old-1 before its birth, then (from the same client, so
	// in this order) one of g1: when g1's is acknowledged, old-1's batch
	// was handled, and neither acknowledged nor stored.
	early := decision("old-in", 1, "exit", true, r)
	batch := old.sendEvents(early)
	p, err := syncmsg.EncodeEvents(syncmsg.Events{Events: []syncmsg.Event{decision("g1-denied", 1, "entry", false, r)}})
	if err != nil {
		t.Fatal(err)
	}
	old.publish(e.topics.Events("g1"), p, false)
	if ids := g.nextAck(); fmt.Sprint(ids) != "[g1-denied]" {
		t.Fatalf("g1's ack %v", ids)
	}
	select {
	case m := <-old.acks:
		t.Fatalf("events of a gate without a role were acknowledged: %s", m.payload)
	default:
	}
	if evs, _ := e.st.GateEvents(e.ctx, store.EventFilter{GateID: "old-1"}); len(evs) != 0 {
		t.Fatalf("events of a gate without a role were stored: %+v", evs)
	}

	// Its first birth records its role; the events sent again apply.
	old.publish(e.topics.GateStatus("old-1"), birth("old-1", syncmsg.RoleExit, 1), true)
	waitUntil(t, "old-1's birth is stored", func() bool { g, _ := e.gate("old-1"); return g.Online })
	if g, _ := e.gate("old-1"); g.Role != syncmsg.RoleExit {
		t.Fatalf("after its first birth, old-1's role is %q, want exit", g.Role)
	}
	old.publish(e.topics.Events("old-1"), batch, false)
	if ids := old.nextAck(); fmt.Sprint(ids) != "[old-in]" {
		t.Fatalf("ack %v", ids)
	}
	if got := e.get(r.ID).State; got != reservation.Left {
		t.Errorf("after old-1's exit: %s, want left", got)
	}
	// A later birth claiming another role changes nothing.
	old.publish(e.topics.GateStatus("old-1"), birth("old-1", syncmsg.RoleEntry, 2), true)
	waitUntil(t, "old-1's second birth is stored", func() bool { g, _ := e.gate("old-1"); return g.Session == 2 })
	if g, _ := e.gate("old-1"); g.Role != syncmsg.RoleExit {
		t.Errorf("after a second birth claiming entry, old-1's role is %q, want exit", g.Role)
	}

	// With RoleFromBirth, the latest birth says.
	a := newEnv(t, url, func(c *centralsync.Config) { c.RoleFromBirth = true })
	a.provision("lab-1", "entry")
	lab := connectGate(t, url, a.topics, "lab-1")
	lab.publish(a.topics.GateStatus("lab-1"), birth("lab-1", syncmsg.RoleExit, 1), true)
	waitUntil(t, "lab-1's birth sets its role", func() bool { g, _ := a.gate("lab-1"); return g.Role == syncmsg.RoleExit })
}
