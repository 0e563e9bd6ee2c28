package centralsync_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/parkgate/parkgate/central/booking"
	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/sync/centralsync"
	"github.com/parkgate/parkgate/sync/syncmsg"
)

// Every scenario runs against the in-process mochi broker, and against
// the machine's Mosquitto when PARKING_TEST_MQTT_URL names it.

func TestChanges(t *testing.T)       { testChanges(t, startBroker(t, "127.0.0.1:0").url()) }
func TestHeartbeat(t *testing.T)     { testHeartbeatAndStatus(t, startBroker(t, "127.0.0.1:0").url()) }
func TestSnapshot(t *testing.T)      { testSnapshot(t, startBroker(t, "127.0.0.1:0").url()) }
func TestSnapshot10000(t *testing.T) { testSnapshot10000(t, startBroker(t, "127.0.0.1:0").url()) }
func TestEvents(t *testing.T)        { testEvents(t, startBroker(t, "127.0.0.1:0").url()) }
func TestPresence(t *testing.T)      { testPresence(t, startBroker(t, "127.0.0.1:0").url()) }
func TestCommands(t *testing.T)      { testCommands(t, startBroker(t, "127.0.0.1:0").url()) }

func TestMosquitto(t *testing.T) {
	url := os.Getenv("PARKING_TEST_MQTT_URL")
	if url == "" {
		t.Skip("PARKING_TEST_MQTT_URL is not set (e.g. tcp://127.0.0.1:1883): skipping the scenarios against an external Mosquitto")
	}
	t.Run("changes", func(t *testing.T) { testChanges(t, url) })
	t.Run("heartbeat", func(t *testing.T) { testHeartbeatAndStatus(t, url) })
	t.Run("snapshot", func(t *testing.T) { testSnapshot(t, url) })
	t.Run("snapshot10000", func(t *testing.T) { testSnapshot10000(t, url) })
	t.Run("events", func(t *testing.T) { testEvents(t, url) })
	t.Run("presence", func(t *testing.T) { testPresence(t, url) })
	t.Run("commands", func(t *testing.T) { testCommands(t, url) })
	t.Run("shared", func(t *testing.T) { testSharedEvents(t, url) })
}

// testChanges: what is paid at centrald reaches a gate as a batch, on one
// unbroken version line that also covers the versions gates need not know.
func testChanges(t *testing.T, url string) {
	e := newEnv(t, url)
	g := connectGate(t, url, e.topics, "g1")
	// A gate's first message is a heartbeat (or a batch) telling it the
	// version; from there the line must not break.
	first := g.untilChanges("the first heartbeat", func(c syncmsg.Changes) bool { return true })
	if want := e.version(); first.To != want {
		t.Errorf("first message %+v: want the log's version %d", first, want)
	}

	// An unpaid reservation is a version no gate is told about, but the
	// line covers it.
	unpaid := e.reserve("1", e.window(1, 1))
	v := e.version()
	c := g.untilChanges("the version of an unpaid reservation", func(c syncmsg.Changes) bool { return c.To >= v })
	if len(c.Entries) != 0 || c.IsHeartbeat() {
		t.Errorf("batch for an unpaid reservation: %+v, want (%d, %d] without entries", c, c.From, v)
	}

	// Paid reservations, one at a time, measured from the commit to the
	// gate. A random pause before each commit spreads the commits over
	// the poll interval; without it they fall in step with the polls (the
	// next commit follows the batch that a poll just sent).
	var lat []time.Duration
	for i := range 30 {
		r := e.reserve(strconv.Itoa(i+2), e.window(1, 1))
		time.Sleep(time.Duration(mrand.Int64N(int64(centralsync.DefaultPoll))))
		r = e.pay(r)
		start := time.Now()
		c := g.untilChanges("the paid reservation", func(c syncmsg.Changes) bool { return hasEntry(c, r.ID, syncmsg.StatePaid) })
		lat = append(lat, time.Since(start))
		for _, ve := range c.Entries {
			if ve.Entry.ID == unpaid.ID {
				t.Errorf("the unpaid reservation was sent: %+v", ve)
			}
			if ve.Entry.ID == r.ID && (ve.Entry.SpotID != r.SpotID || ve.Entry.CarID != r.CarID ||
				!ve.Entry.From.Equal(r.From) || !ve.Entry.Until.Equal(r.Until)) {
				t.Errorf("entry %+v does not match the reservation %+v", ve.Entry, r.Reservation)
			}
		}
	}
	t.Logf("propagation commit → gate over %d paid reservations (poll %s): p50 %s, p90 %s, max %s",
		len(lat), centralsync.DefaultPoll, percentile(lat, 0.5).Round(time.Microsecond),
		percentile(lat, 0.9).Round(time.Microsecond), percentile(lat, 1).Round(time.Microsecond))

	// A cancellation travels as a revocation.
	r := e.paid("30", e.window(2, 1))
	e.cancel(r.ID)
	g.untilChanges("the cancellation", func(c syncmsg.Changes) bool { return hasEntry(c, r.ID, syncmsg.StateCancelled) })

	// Wake cuts the poll short.
	w := e.paid("31", e.window(2, 1))
	start := time.Now()
	e.relay.Wake()
	g.untilChanges("the woken batch", func(c syncmsg.Changes) bool { return hasEntry(c, w.ID, syncmsg.StatePaid) })
	t.Logf("propagation with Wake after the commit: %s", time.Since(start).Round(time.Microsecond))

	// More than one read's worth (1,000 versions) goes out as several
	// batches that chain.
	now := e.clk.Now()
	bulk := make([]reservation.Reservation, 2001)
	for i := range bulk {
		w := e.window(float64(3+i/50), 1)
		bulk[i] = reservation.Reservation{ID: strings.ToLower(rand.Text()[:16]), SpotID: strconv.Itoa(40 + i%50), State: reservation.Paid,
			Source: reservation.SourceOperator, From: w.From, Until: w.Until, CreatedAt: now, PaidAt: now, CarID: "K-LM 1"}
	}
	e.insert(bulk...)
	v = e.version()
	batches, entries := 0, 0
	g.untilChanges("the bulk of reservations", func(c syncmsg.Changes) bool {
		if !c.IsHeartbeat() {
			batches++
			entries += len(c.Entries)
		}
		return c.To >= v
	})
	if entries != len(bulk) || batches < 3 {
		t.Errorf("%d reservations arrived as %d entries in %d batches; want all, in at least 3 batches", len(bulk), entries, batches)
	}
}

// testHeartbeatAndStatus: the heartbeat repeats the version when nothing
// changes; central's retained status says online with its version, and
// offline (same session) once it stops.
func testHeartbeatAndStatus(t *testing.T, url string) {
	e := newEnv(t, url)
	e.paid("1", e.window(1, 1))
	v := e.caughtUp()
	g := connectGate(t, url, e.topics, "g1")

	m := next(t, g.central, "central's retained status")
	birth, err := syncmsg.DecodeCentralStatus(m.payload)
	if err != nil {
		t.Fatal(err)
	}
	if !m.retained || !birth.Online || birth.Session < 1 || birth.At.IsZero() {
		t.Errorf("central status %+v (retained %v): want a retained birth", birth, m.retained)
	}
	var beats []time.Time
	g.untilChanges("three heartbeats", func(c syncmsg.Changes) bool {
		if !c.IsHeartbeat() || c.To != v {
			t.Errorf("got %+v, want the heartbeat at %d", c, v)
		}
		beats = append(beats, time.Now())
		return len(beats) == 3
	})
	if gap := beats[2].Sub(beats[1]); gap < 200*time.Millisecond || gap > 2*time.Second {
		t.Errorf("heartbeats %s apart; configured every 300ms", gap)
	}

	e.stop()
	m = next(t, g.central, "central's offline status")
	off, err := syncmsg.DecodeCentralStatus(m.payload)
	if err != nil {
		t.Fatal(err)
	}
	if off.Online || off.Session != birth.Session {
		t.Errorf("after Serve returned: %+v, want offline for session %d", off, birth.Session)
	}
}

// testSnapshot: a sync request gets the paid and taken reservations and
// the recent revocations, at the relayed version.
func testSnapshot(t *testing.T, url string) {
	e := newEnv(t, url)
	now := e.clk.Now()
	want := map[string]syncmsg.State{}

	paid := e.paid("1", e.window(1, 2))
	want[paid.ID] = syncmsg.StatePaid

	e.provision("g0", "entry")
	e.provision("x0", "exit")
	taken := e.paid("2", e.window(0, 2))
	if _, _, err := e.svc.ApplyGateEvent(e.ctx, store.GateEvent{EventID: "in-1", GateID: "g0", Seq: 1, Kind: "decision",
		Role: "entry", Time: now, Granted: true, ReservationID: taken.ID}); err != nil {
		t.Fatal(err)
	}
	want[taken.ID] = syncmsg.StateTaken

	left := e.paid("3", e.window(0, 2))
	for i, role := range []string{"entry", "exit"} {
		gate := map[string]string{"entry": "g0", "exit": "x0"}[role]
		if _, _, err := e.svc.ApplyGateEvent(e.ctx, store.GateEvent{EventID: "io-" + role, GateID: gate, Seq: int64(i + 2),
			Kind: "decision", Role: role, Time: now, Granted: true, ReservationID: left.ID}); err != nil {
			t.Fatal(err)
		}
	}
	want[left.ID] = syncmsg.StateLeft

	cancelled := e.paid("4", e.window(3, 1))
	e.cancel(cancelled.ID)
	want[cancelled.ID] = syncmsg.StateCancelled

	e.reserve("5", e.window(1, 1))                          // never paid: not sent
	e.cancel(e.reserve("6", e.window(1, 1)).Reservation.ID) // cancelled before payment: not sent

	// Revocations whose window ended: within the margin (24 h) they stay,
	// beyond it they go.
	old := func(id string, state reservation.State, endedAgo time.Duration) reservation.Reservation {
		until := now.Add(-endedAgo)
		r := reservation.Reservation{ID: id, SpotID: "7", State: state, Source: reservation.SourceDriver,
			From: until.Add(-time.Hour), Until: until, CarID: "B-OLD 1", PaidAt: until.Add(-2 * time.Hour), EndedAt: until}
		e.insert(r)
		return r
	}
	want[old("recentcancel0001", reservation.Cancelled, 2*time.Hour).ID] = syncmsg.StateCancelled
	want[old("recentnoshow0001", reservation.NoShow, 3*time.Hour).ID] = syncmsg.StateNoShow
	old("oldcancel0000001", reservation.Cancelled, 30*time.Hour)
	old("oldleft000000001", reservation.Left, 48*time.Hour)

	v := e.caughtUp()
	g := connectGate(t, url, e.topics, "g1")
	entries, version, bytes, parts, took := g.requestSnapshot(syncmsg.ReasonStart)
	if version != v {
		t.Errorf("snapshot at version %d, want %d", version, v)
	}
	got := map[string]syncmsg.State{}
	for _, en := range entries {
		got[en.ID] = en.State
		if en.ID == paid.ID && (en.SpotID != "1" || en.CarID != paid.CarID || !en.From.Equal(paid.From) || !en.Until.Equal(paid.Until)) {
			t.Errorf("entry %+v does not match %+v", en, paid.Reservation)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("snapshot holds %v\nwant %v", got, want)
	}
	t.Logf("snapshot of %d entries: %d bytes in %d part(s), request → assembled in %s", len(entries), bytes, parts, took.Round(time.Microsecond))

	// A change after the snapshot follows it on the line.
	late := e.paid("8", e.window(1, 1))
	g.have = version
	g.untilChanges("the change after the snapshot", func(c syncmsg.Changes) bool { return hasEntry(c, late.ID, syncmsg.StatePaid) })
}

// testSnapshot10000: a site-sized resync, measured.
func testSnapshot10000(t *testing.T, url string) {
	e := newEnv(t, url)
	const n = 10000
	rs := make([]reservation.Reservation, n)
	now := e.clk.Now()
	for i := range rs {
		w := e.window(float64(1+i/100), 1)
		rs[i] = reservation.Reservation{ID: strings.ToLower(rand.Text()[:16]), SpotID: strconv.Itoa(1 + i%100), State: reservation.Paid,
			Source: reservation.SourceOperator, From: w.From, Until: w.Until, CreatedAt: now, PaidAt: now, CarID: fmt.Sprintf("%s %04d", rand.Text()[:2], i)}
	}
	start := time.Now()
	e.insert(rs...)
	pushed := time.Since(start)
	v := e.caughtUp()
	g := connectGate(t, url, e.topics, "g1")
	entries, version, bytes, parts, took := g.requestSnapshot(syncmsg.ReasonGap)
	if version != v || len(entries) != n {
		t.Fatalf("snapshot: %d entries at %d, want %d at %d", len(entries), version, n, v)
	}
	seen := map[string]bool{}
	for _, en := range entries {
		if en.State != syncmsg.StatePaid || seen[en.ID] {
			t.Fatalf("entry %+v: want each reservation once, paid", en)
		}
		seen[en.ID] = true
	}
	t.Logf("10,000 reservations (inserted in %s): snapshot of %d bytes on the wire in %d part(s), request → assembled in %s",
		pushed.Round(time.Millisecond), bytes, parts, took.Round(time.Millisecond))
	if took > 2*time.Second && !raceEnabled {
		t.Errorf("a resync of 10,000 reservations took %s; the target is < 2 s", took)
	}
}

func decision(id string, seq int64, role string, granted bool, r booking.Issued) syncmsg.Event {
	return syncmsg.Event{EventID: id, Seq: seq, Kind: "decision", Role: role, Time: time.Now().UTC(), Source: "qr",
		Granted: granted, Reason: "ticket", ReservationID: r.ID, SpotID: r.SpotID, CarID: r.CarID, ClockTrusted: true,
		Plate: "BXY123", Detail: "reservation " + r.ID}
}

// testEvents: events are applied once and acknowledged only after they
// are stored; a repeat is acknowledged and changes nothing; a contradiction
// is acknowledged and becomes an exception.
func testEvents(t *testing.T, url string) {
	e := newEnv(t, url)
	e.provision("g1", "entry")
	e.provision("x1", "exit")
	g := connectGate(t, url, e.topics, "g1")
	x := connectGate(t, url, e.topics, "x1")
	r := e.paid("1", e.window(0, 2))

	batch := g.sendEvents(decision("ev-1", 1, "entry", true, r))
	if ids := g.nextAck(); fmt.Sprint(ids) != "[ev-1]" {
		t.Fatalf("ack %v, want [ev-1]", ids)
	}
	if got := e.get(r.ID).State; got != reservation.Taken {
		t.Errorf("after the entry event: %s, want taken", got)
	}
	if sv, err := e.svc.Spot(e.ctx, "1"); err != nil || sv.Status != booking.StatusTaken {
		t.Errorf("spot 1: %+v, %v; want taken", sv, err)
	}
	v := e.version()
	stored, err := e.st.GateEvents(e.ctx, store.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 1 || stored[0].GateID != "g1" || stored[0].Outcome != store.EventApplied || stored[0].Seq != 1 ||
		stored[0].Plate != "BXY123" || stored[0].Detail != "reservation "+r.ID {
		t.Errorf("stored events %+v: want ev-1 of g1, applied, with its plate and detail", stored)
	}

	// The same batch again (the ack was lost): acknowledged, nothing new.
	g.publish(e.topics.Events("g1"), batch, false)
	if ids := g.nextAck(); fmt.Sprint(ids) != "[ev-1]" {
		t.Fatalf("ack of the repeat %v, want [ev-1]", ids)
	}
	if again, _ := e.st.GateEvents(e.ctx, store.EventFilter{}); len(again) != 1 || e.version() != v {
		t.Errorf("after the repeat: %d events, version %d; want 1 and %d", len(again), e.version(), v)
	}

	// An entry on a reservation cancelled meanwhile: stored as an
	// exception, acknowledged, and the reservation stays cancelled.
	c := e.paid("2", e.window(0, 2))
	e.cancel(c.ID)
	g.sendEvents(decision("ev-2", 2, "entry", true, c))
	if ids := g.nextAck(); fmt.Sprint(ids) != "[ev-2]" {
		t.Fatalf("ack %v, want [ev-2]", ids)
	}
	exc, err := e.st.GateEvents(e.ctx, store.EventFilter{Outcome: store.EventException})
	if err != nil {
		t.Fatal(err)
	}
	if len(exc) != 1 || exc[0].EventID != "ev-2" || exc[0].GateID != "g1" {
		t.Errorf("exceptions %+v: want ev-2", exc)
	}
	if got := e.get(c.ID).State; got != reservation.Cancelled {
		t.Errorf("the contradicted reservation is %s, want cancelled", got)
	}

	// Several events in one message (of the exit gate): one ack naming
	// all of them, applied in sequence.
	x.sendEvents(decision("ev-3", 1, "exit", false, c), decision("ev-4", 2, "exit", true, r))
	if ids := x.nextAck(); fmt.Sprint(ids) != "[ev-3 ev-4]" {
		t.Fatalf("ack %v, want [ev-3 ev-4]", ids)
	}
	if got := e.get(r.ID).State; got != reservation.Left {
		t.Errorf("after the exit: %s, want left", got)
	}

	// An invalid batch, and one whose event claims another gate, are not
	// acknowledged: the next valid one is the next ack (events are
	// handled in order).
	g.publish(e.topics.Events("g1"), []byte(`{"v":1,"events":[{"eventId":"","seq":1}]}`), false)
	forged, err := syncmsg.EncodeEvents(syncmsg.Events{Events: []syncmsg.Event{decision("ev-x", 5, "entry", true, c)}})
	if err != nil {
		t.Fatal(err)
	}
	forged = []byte(strings.Replace(string(forged), `"eventId"`, `"gateId":"g2","eventId"`, 1))
	g.publish(e.topics.Events("g1"), forged, false)
	g.sendEvents(decision("ev-5", 5, "entry", false, r))
	if ids := g.nextAck(); fmt.Sprint(ids) != "[ev-5]" {
		t.Fatalf("ack %v, want [ev-5]", ids)
	}
	if all, _ := e.st.GateEvents(e.ctx, store.EventFilter{}); len(all) != 5 {
		t.Errorf("%d events stored, want ev-1 to ev-5 (not the forged one)", len(all))
	}
}

// testSharedEvents: with Shared, events arrive through $share/centrald/…
// all the same.
func testSharedEvents(t *testing.T, url string) {
	e := newEnv(t, url, func(c *centralsync.Config) { c.Shared = true })
	e.provision("g1", "entry")
	g := connectGate(t, url, e.topics, "g1")
	r := e.paid("1", e.window(0, 2))
	g.sendEvents(decision("sh-1", 1, "entry", true, r))
	if ids := g.nextAck(); fmt.Sprint(ids) != "[sh-1]" {
		t.Fatalf("ack %v, want [sh-1]", ids)
	}
	if got := e.get(r.ID).State; got != reservation.Taken {
		t.Errorf("after the entry event: %s, want taken", got)
	}
}

func TestSharedEvents(t *testing.T) { testSharedEvents(t, startBroker(t, "127.0.0.1:0").url()) }

// testPresence: births and wills keep the gates table; a late will of an
// old session does not mark the newer session offline.
func testPresence(t *testing.T, url string) {
	e := newEnv(t, url)
	statusTopic := e.topics.GateStatus("g1")

	// Session 5 connects with its will and publishes its birth.
	a := connectGate(t, url, e.topics, "g1", withWill(statusTopic, status("g1", false, 5, 0)))
	a.publish(statusTopic, status("g1", true, 5, 3), true)
	waitUntil(t, "session 5's birth is stored", func() bool { g, ok := e.gate("g1"); return ok && g.Session == 5 })
	g, _ := e.gate("g1")
	if !g.Online || g.Role != "entry" || g.CacheVersion != 3 || g.Outbox != 2 || g.Barrier != "closed" ||
		g.Software != "test-1" || g.LastSeen.IsZero() || g.AddedAt.IsZero() {
		t.Errorf("after the birth: %+v", g)
	}

	// Session 6 (the gate restarted; the old connection is not dead yet).
	b := connectGate(t, url, e.topics, "g1", withWill(statusTopic, status("g1", false, 6, 0)))
	b.publish(statusTopic, status("g1", true, 6, 4), true)
	waitUntil(t, "session 6's birth is stored", func() bool { g, ok := e.gate("g1"); return ok && g.Session == 6 })
	seen6, _ := e.gate("g1")

	// Any message refreshes lastSeen (at most every 5 s per gate).
	p, _ := syncmsg.EncodeResult(syncmsg.Result{ID: "cmd-unknown", OK: true})
	b.publish(e.topics.Result("g1"), p, false)
	waitUntil(t, "lastSeen moves", func() bool { g, _ := e.gate("g1"); return g.LastSeen.After(seen6.LastSeen) })

	// Session 5's connection dies now: the broker publishes its will,
	// late. A watcher sees it pass; a marker status of another gate,
	// published after that, tells when central has handled it (central
	// handles statuses in the order they arrive).
	watch := watchTopic(t, url, statusTopic)
	a.kill()
	will5 := string(status("g1", false, 5, 0))
	for deadline, done := time.After(wait), false; !done; {
		select {
		case p := <-watch:
			done = string(p) == will5
		case <-deadline:
			t.Fatalf("session 5's will did not pass within %s", wait)
		}
	}
	b.publish(e.topics.GateStatus("marker"), status("marker", false, 1, 0), false)
	waitUntil(t, "the marker is stored", func() bool { _, ok := e.gate("marker"); return ok })
	if g, _ := e.gate("g1"); !g.Online || g.Session != 6 || g.CacheVersion != 4 {
		t.Errorf("after session 5's late will: %+v, want session 6 online", g)
	}

	// A status naming another gate than its topic's is refused.
	b.publish(e.topics.GateStatus("g2"), status("g3", true, 1, 0), false)
	b.publish(e.topics.GateStatus("marker2"), status("marker2", false, 1, 0), false)
	waitUntil(t, "the second marker is stored", func() bool { _, ok := e.gate("marker2"); return ok })
	for _, id := range []string{"g2", "g3"} {
		if g, ok := e.gate(id); ok {
			t.Errorf("a status on g2's topic naming g3 was stored: %+v", g)
		}
	}

	// Session 6 dies: its will marks the gate offline.
	b.kill()
	waitUntil(t, "session 6's will marks the gate offline", func() bool { g, _ := e.gate("g1"); return !g.Online && g.Session == 6 })
}

// watchTopic subscribes a plain client to topic and returns what it
// receives.
func watchTopic(t *testing.T, url, topic string) <-chan []byte {
	t.Helper()
	ch := make(chan []byte, 100)
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("watch-" + uniqueSite()).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("watcher: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case ch <- m.Payload():
		default:
		}
	})
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("watcher: %v", tok.Error())
	}
	return ch
}

// testCommands: Open gets the gate's result; a command to an absent gate
// times out; Resync likewise.
func testCommands(t *testing.T, url string) {
	e := newEnv(t, url)
	g := connectGate(t, url, e.topics, "g1")
	seen := make(chan syncmsg.Command, 10)
	g.answerCommands(func(c syncmsg.Command) syncmsg.Result { return syncmsg.Result{ID: c.ID, OK: true} }, seen)

	sent := time.Now()
	res, err := e.relay.Open(e.ctx, "g1", "operator test", 2*time.Second)
	if err != nil || !res.OK {
		t.Fatalf("Open: %+v, %v", res, err)
	}
	cmd := <-seen
	if cmd.Type != syncmsg.CmdOpen || cmd.ID != res.ID || cmd.Reason != "operator test" ||
		cmd.Expires.Before(sent.Add(2*time.Second-time.Second)) || cmd.Expires.After(time.Now().Add(2*time.Second)) {
		t.Errorf("command %+v for result %+v: want an open with expiry now+2s", cmd, res)
	}

	res, err = e.relay.Resync(e.ctx, "g1")
	if err != nil || !res.OK {
		t.Fatalf("Resync: %+v, %v", res, err)
	}
	if cmd := <-seen; cmd.Type != syncmsg.CmdResync {
		t.Errorf("command %+v: want a resync", cmd)
	}

	// A gate that refuses: the result is the answer, not an error.
	r2 := connectGate(t, url, e.topics, "g2")
	r2.answerCommands(func(c syncmsg.Command) syncmsg.Result {
		return syncmsg.Result{ID: c.ID, Error: syncmsg.RefusedClockUntrusted}
	}, nil)
	if res, err := e.relay.Open(e.ctx, "g2", "", time.Second); err != nil || res.OK || res.Error != syncmsg.RefusedClockUntrusted {
		t.Errorf("Open to a refusing gate: %+v, %v", res, err)
	}

	// Nobody answers for g9.
	start := time.Now()
	_, err = e.relay.Open(e.ctx, "g9", "", 300*time.Millisecond)
	if !errors.Is(err, centralsync.ErrNoAnswer) {
		t.Errorf("Open to an absent gate: %v, want ErrNoAnswer", err)
	}
	if took := time.Since(start); took < 300*time.Millisecond || took > 3*time.Second {
		t.Errorf("Open to an absent gate returned after %s, want about its ttl (300ms)", took)
	}

	// An id that is not a gate id never becomes a topic.
	if _, err := e.relay.Open(e.ctx, "g1/+", "", time.Second); err == nil {
		t.Error("Open to an invalid gate id succeeded")
	}
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	if _, err := e.relay.Open(ctx, "g9", "", time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("Open with a cancelled context: %v", err)
	}
}

// TestReconnect: the broker goes away and comes back on the same address;
// the relay reconnects within its backoff, announces a new session, and
// relays what changed meanwhile.
func TestReconnect(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0")
	e := newEnv(t, b.url())
	g := connectGate(t, b.url(), e.topics, "g1")
	m := next(t, g.central, "central's status")
	first, _ := syncmsg.DecodeCentralStatus(m.payload)

	b.stop()
	waitUntil(t, "the relay notices", func() bool { return !e.relay.Connected() })
	e.paid("1", e.window(1, 1)) // while the broker is away
	v := e.version()

	startBroker(t, b.addr)
	waitUntil(t, "the relay reconnects", e.relay.Connected)
	g = connectGate(t, b.url(), e.topics, "g1")
	m = next(t, g.central, "central's new status")
	again, err := syncmsg.DecodeCentralStatus(m.payload)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Online || again.Session <= first.Session || again.Version != v {
		t.Errorf("status after reconnecting %+v; before %+v: want a newer session at version %d", again, first, v)
	}
	g.untilChanges("the version of the change made while the broker was away", func(c syncmsg.Changes) bool { return c.To >= v })
	// The relay counts a batch relayed once it has recorded its position,
	// which may be after the gate has the batch.
	waitUntil(t, fmt.Sprintf("the relay at version %d", v), func() bool { return e.relay.Version() == v })
}
