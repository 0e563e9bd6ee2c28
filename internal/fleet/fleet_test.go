package fleet_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/booking"
	"github.com/parkgate/parkgate/central/broker"
	"github.com/parkgate/parkgate/central/payment/fakepay"
	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/central/store/sqlitestore"
	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/clock/clocktest"
	"github.com/parkgate/parkgate/internal/fleet"
	"github.com/parkgate/parkgate/sync/centralsync"
	"github.com/parkgate/parkgate/sync/syncmsg"
)

// fleetSize is the CI fleet: a tenth of the benchmark's thousand, enough
// for the relay's fan-out, the snapshot bound at a reconnect storm and the
// broker's per-connection costs, on a shared 2-core machine with the race
// detector (parkbench -only fleet measures 1,000).
const fleetSize = 200

// within bounds every wait: far above what it takes (a second or two), so
// a wait fails only when the thing never happens.
const within = 60 * time.Second

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	defer func(start time.Time) { t.Logf("%s: %s", what, time.Since(start).Round(time.Millisecond)) }(time.Now())
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The conformance run: simulated gates, built on syncmsg and paho alone,
// against centrald's own parts — the embedded broker with the gates'
// credentials and ACL, the relay, a real SQLite store and the booking
// service — must come online with their births, receive a paid
// reservation in every cache, have their events acknowledged and stored
// exactly once, and be marked offline by their will when killed.
func TestFleetAgainstCentral(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	site := "fleet"
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "central.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC().Truncate(time.Second)
	if err := st.SetSpots(ctx, []string{"1", "2", "3"}, now); err != nil {
		t.Fatal(err)
	}
	clk := clocktest.New(now)
	svc := booking.New(st, &fakepay.Provider{}, nil, clk, booking.DefaultConfig(), nil, nil)

	// Every gate is provisioned with its role, as `centrald gate add ID
	// --role` does, and a password hashed as central stores generated
	// ones (one hash for all; the broker still verifies each login).
	const password = "fleet-secret-of-at-least-128-random-bits-xx"
	hash, err := broker.HashToken(password)
	if err != nil {
		t.Fatal(err)
	}
	creds := broker.StaticCredentials{}
	var specs []fleet.Spec
	for i := range fleetSize {
		id := fmt.Sprintf("lane-%03d", i)
		role := syncmsg.RoleEntry
		if i%2 == 1 {
			role = syncmsg.RoleExit
		}
		creds[id] = hash
		specs = append(specs, fleet.Spec{ID: id, Role: role, Password: password})
		if err := st.Write(ctx, func(tx store.Tx) error {
			return tx.PutGate(store.Gate{ID: id, Role: role, AddedAt: now})
		}); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.DiscardHandler)
	br, err := broker.New(broker.Config{Site: site, Listen: "127.0.0.1:0", CentralUser: "centrald", CentralPassword: "central-pw"}, creds, log)
	if err != nil {
		t.Fatal(err)
	}
	run := func(name string, serve func(context.Context) error) {
		done := make(chan error, 1)
		go func() { done <- serve(ctx) }()
		t.Cleanup(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s: %v", name, err)
				}
			case <-time.After(within):
				t.Errorf("%s did not stop", name)
			}
		})
	}
	run("broker", br.Serve)
	url := "tcp://" + br.Addr()
	relay := centralsync.New(centralsync.Config{Site: site, URL: url, Username: "centrald", Password: "central-pw",
		Heartbeat: time.Second}, st, svc, clock.Real{}, log)
	run("relay", relay.Serve)
	waitFor(t, "the relay connects", relay.Connected)

	// A short keepalive: after Reconnect cuts a socket, paho notices and
	// reconnects within about a keepalive (observed: ~45 s with 30 s).
	f, err := fleet.New(fleet.Config{URL: url, Site: site, Gates: specs, KeepAlive: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	run("fleet", f.Serve)

	online := func() (n int) {
		gs, err := st.Gates(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range gs {
			if g.Online {
				n++
			}
		}
		return n
	}
	waitFor(t, "every gate is online at central after its birth", func() bool { return online() == fleetSize })
	for _, g := range f.Gates() {
		waitFor(t, g.ID()+" holds a snapshot", func() bool { s := g.State(); return s.HasCache && !s.Awaiting })
	}

	// A paid reservation reaches every cache, as paid.
	w := reservation.Window{From: now.Add(time.Hour), Until: now.Add(2 * time.Hour)}
	r, err := svc.Reserve(ctx, "2", w)
	if err != nil {
		t.Fatal(err)
	}
	p, err := svc.Pay(ctx, "2", booking.Caller{Token: r.Token}, booking.PayRequest{CarID: "B-FL 1", PaymentMethod: "pm_card_visa"})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range f.Gates() {
		waitFor(t, g.ID()+" caches the paid reservation", func() bool {
			e, ok := g.Entry(p.ID)
			return ok && e.State == syncmsg.StatePaid && e.CarID == "B-FL 1"
		})
	}

	// Events are acknowledged and stored once each, even when a gate's
	// connection drops before the ack and it sends them again.
	const perGate = 3
	for _, g := range f.Gates() {
		for i := range perGate {
			g.Event(i%2 == 0, "ticket")
		}
	}
	f.Gates()[0].Reconnect()
	for _, g := range f.Gates() {
		waitFor(t, g.ID()+"'s events are acknowledged", func() bool {
			s := g.State()
			return s.Unacked == 0 && s.Acked == perGate
		})
	}
	for _, g := range f.Gates() {
		evs, err := st.GateEvents(ctx, store.EventFilter{GateID: g.ID(), Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, ev := range evs {
			seen[ev.EventID]++
			if ev.Role != g.Role() {
				t.Errorf("%s: event stored with role %s", g.ID(), ev.Role)
			}
		}
		if len(evs) != perGate || len(seen) != perGate {
			t.Errorf("%s: %d events stored (%d distinct), want %d", g.ID(), len(evs), len(seen), perGate)
		}
	}

	// A killed gate's will marks it offline; the others stay online. The
	// gate that reconnected above is back online first: its events can be
	// acknowledged before central has taken its new birth (presence is
	// applied in a queue of its own), which once left 198 online here.
	waitFor(t, "every gate online again after the reconnect", func() bool { return online() == fleetSize })
	victim := f.Gates()[fleetSize/2]
	victim.Kill()
	waitFor(t, "the killed gate is offline at central", func() bool {
		g, err := st.Gate(ctx, victim.ID())
		return err == nil && !g.Online
	})
	if n := online(); n != fleetSize-1 {
		t.Errorf("%d gates online after one was killed, want %d", n, fleetSize-1)
	}
}

// Given the nodes of a clustered broker, the fleet spreads over them (gate
// i starts with node i) and a gate whose node dies reconnects to another
// one. Two separate brokers stand in for the nodes: what is checked is
// where each gate connects, not what a cluster shares.
func TestFleetFailsOverToAnotherNode(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	node := func() (string, context.CancelFunc, chan error) {
		br, err := broker.New(broker.Config{Site: "fleet", Listen: "127.0.0.1:0", AllowAnonymous: true,
			CentralUser: "centrald", CentralPassword: "central-pw"}, broker.StaticCredentials{}, log)
		if err != nil {
			t.Fatal(err)
		}
		nctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- br.Serve(nctx) }()
		return "tcp://" + br.Addr(), stop, done
	}
	a, stopA, doneA := node()
	b, stopB, doneB := node()
	defer func() { stopB(); <-doneB }()
	var specs []fleet.Spec
	for i := range 4 {
		specs = append(specs, fleet.Spec{ID: fmt.Sprintf("lane-%d", i), Role: syncmsg.RoleEntry})
	}
	f, err := fleet.New(fleet.Config{URL: a + ", " + b, Site: "fleet", Gates: specs, KeepAlive: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- f.Serve(ctx) }()
	defer func() { cancel(); <-served }()
	for i, g := range f.Gates() {
		want := []string{a, b}[i%2]
		waitFor(t, g.ID()+" connected to node "+want, func() bool { s := g.State(); return s.Connected && s.Broker == want })
	}
	stopA()
	<-doneA
	for _, g := range f.Gates() {
		waitFor(t, g.ID()+" connected to the node that lived", func() bool { s := g.State(); return s.Connected && s.Broker == b })
	}
	if _, err := fleet.New(fleet.Config{URL: a + ",,", Site: "fleet", Gates: specs}); err == nil {
		t.Error("a broker list with an empty entry was taken")
	}
}
