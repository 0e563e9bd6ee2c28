package booking_test

import (
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/booking"
	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
)

// provision registers gates as `centrald gate add ID --role ROLE` does
// (role "": a gate provisioned before roles were, that never sent a birth).
func (e *env) provision(gates map[string]string) {
	e.t.Helper()
	err := e.st.Write(e.ctx, func(tx store.Tx) error {
		for id, role := range gates {
			if err := tx.PutGate(store.Gate{ID: id, PasswordHash: []byte{1}, Role: role, AddedAt: t0}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// gateEnv is an env with an entry gate entry-1 and an exit gate exit-1.
func gateEnv(t *testing.T) *env {
	e := newEnv(t)
	e.provision(map[string]string{"entry-1": "entry", "exit-1": "exit"})
	return e
}

func gateEvent(id, role string, r reservation.Reservation, at time.Time, granted bool) store.GateEvent {
	return store.GateEvent{EventID: id, GateID: role + "-1", Seq: 1, Kind: "decision", Role: role, Time: at,
		Source: "qr", Granted: granted, Reason: "ticket", ReservationID: r.ID, SpotID: r.SpotID}
}

func (e *env) apply(ev store.GateEvent) string {
	e.t.Helper()
	out, dup, err := e.svc.ApplyGateEvent(e.ctx, ev)
	if err != nil || dup {
		e.t.Fatalf("event %s: %v (duplicate %v)", ev.EventID, err, dup)
	}
	return out
}

func (e *env) get(id string) reservation.Reservation {
	e.t.Helper()
	r, err := e.st.Get(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// wantException checks that event id is listed as an exception whose note
// says why (contains note).
func (e *env) wantException(id, note string) {
	e.t.Helper()
	ex, err := e.st.GateEvents(e.ctx, store.EventFilter{Outcome: store.EventException})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, ev := range ex {
		if ev.EventID == id {
			if !strings.Contains(ev.Note, note) {
				e.t.Errorf("exception %s: note %q, want it to say %q", id, ev.Note, note)
			}
			return
		}
	}
	e.t.Errorf("event %s is not among the exceptions %+v", id, ex)
}

func TestGateEventsApplyOnceAndCentralStaysAuthority(t *testing.T) {
	e := gateEnv(t)
	p := e.paid("1", win(0, 3))
	// Entry: checked in at the gate's time; a repeat changes nothing.
	entryAt := t0.Add(2 * time.Minute)
	e.clk.Set(t0.Add(3 * time.Minute))
	out, dup, err := e.svc.ApplyGateEvent(e.ctx, gateEvent("ev1", "entry", p.Reservation, entryAt, true))
	if err != nil || dup || out != store.EventApplied || e.state(p.ID) != reservation.Taken {
		t.Fatalf("entry: %v %v %v %v", out, dup, err, e.state(p.ID))
	}
	if got := e.get(p.ID); !got.CheckedInAt.Equal(entryAt) {
		t.Fatalf("checked in at %v, want the gate's %v", got.CheckedInAt, entryAt)
	}
	before, _ := e.st.Changes(e.ctx, 0, 1000)
	if _, dup, _ := e.svc.ApplyGateEvent(e.ctx, gateEvent("ev1", "entry", p.Reservation, entryAt, true)); !dup {
		t.Fatal("a repeated event was not recognised")
	}
	if after, _ := e.st.Changes(e.ctx, 0, 1000); len(after) != len(before) || before[len(before)-1].Actor != "gate:entry-1" {
		t.Fatal("a repeated event changed something, or the change is not the gate's")
	}
	// Exit 70 minutes in: left, with the early-departure refund owed.
	e.clk.Set(t0.Add(71 * time.Minute))
	if out := e.apply(gateEvent("ev2", "exit", p.Reservation, t0.Add(70*time.Minute), true)); out != store.EventApplied ||
		e.state(p.ID) != reservation.Left || len(e.refunds(p.ID)) != 1 {
		t.Fatalf("exit: %v %v %+v", out, e.state(p.ID), e.refunds(p.ID))
	}

	// Contradictions are exceptions and change nothing.
	c := e.paid("2", win(2, 3))
	e.svc.Cancel(e.ctx, c.ID, booking.Caller{Token: c.Token})
	if out := e.apply(gateEvent("ev3", "entry", c.Reservation, e.clk.Now(), true)); out != store.EventException || e.state(c.ID) != reservation.Cancelled {
		t.Fatalf("entry on a cancelled reservation: %v %v", out, e.state(c.ID))
	}
	ghost := reservation.Reservation{ID: "nope", SpotID: "3"}
	if out := e.apply(gateEvent("ev4", "entry", ghost, e.clk.Now(), true)); out != store.EventException {
		t.Fatalf("unknown reservation: %v", out)
	}
	// Denials and barrier faults are kept for the record.
	if out := e.apply(gateEvent("ev5", "entry", c.Reservation, e.clk.Now(), false)); out != store.EventRecorded {
		t.Fatalf("a denial: %v", out)
	}
	fault := store.GateEvent{EventID: "ev6", GateID: "exit-1", Seq: 2, Kind: "barrier_fault", Role: "exit", Time: e.clk.Now()}
	if out := e.apply(fault); out != store.EventRecorded {
		t.Fatalf("a barrier fault: %v", out)
	}
	ex, _ := e.st.GateEvents(e.ctx, store.EventFilter{Outcome: store.EventException})
	if len(ex) != 2 {
		t.Fatalf("exceptions %+v", ex)
	}
}

// The attack: a provisioned gate publishes, with its own credentials, an
// entry and then an exit dated 9999 for another gate's reservation. The
// entry gate may check reservations in, but never out, and nothing is
// dated in the future.
func TestGateEventAgainstItsRoleIsAnException(t *testing.T) {
	e := gateEnv(t)
	e.provision(map[string]string{"old-1": ""})
	p := e.paid("1", win(0, 3))
	e.clk.Set(t0.Add(10 * time.Minute))
	exit := gateEvent("forged-exit", "exit", p.Reservation, t0.Add(5*time.Minute), true)
	exit.GateID = "entry-1"
	if out := e.apply(exit); out != store.EventException || e.state(p.ID) != reservation.Paid {
		t.Fatalf("an exit from the entry gate: %v, reservation %s; want an exception and still paid", out, e.state(p.ID))
	}
	e.wantException("forged-exit", "registered as an entry gate")

	// The same from a gate provisioned before roles were, whose birth
	// has not said its role yet.
	old := gateEvent("no-role", "entry", p.Reservation, t0.Add(5*time.Minute), true)
	old.GateID = "old-1"
	if out := e.apply(old); out != store.EventException || e.state(p.ID) != reservation.Paid {
		t.Fatalf("an entry from a gate with no role: %v, reservation %s", out, e.state(p.ID))
	}
	e.wantException("no-role", "no registered role")
	// An unknown gate has no role either.
	stranger := gateEvent("stranger", "entry", p.Reservation, t0.Add(5*time.Minute), true)
	stranger.GateID = "nobody-1"
	if out := e.apply(stranger); out != store.EventException || e.state(p.ID) != reservation.Paid {
		t.Fatalf("an entry from an unknown gate: %v, reservation %s", out, e.state(p.ID))
	}

	// The genuine entry, then the forged exit of 9999 from the exit gate's
	// own credentials: the reservation stays checked in.
	if out := e.apply(gateEvent("entry", "entry", p.Reservation, t0.Add(5*time.Minute), true)); out != store.EventApplied {
		t.Fatalf("the entry: %v", out)
	}
	far := gateEvent("exit-9999", "exit", p.Reservation, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), true)
	if out := e.apply(far); out != store.EventException || e.state(p.ID) != reservation.Taken {
		t.Fatalf("an exit in 9999: %v, reservation %s; want an exception and still taken", out, e.state(p.ID))
	}
	e.wantException("exit-9999", "after central's clock")
	if got := e.get(p.ID); !got.LeftAt.IsZero() || len(e.refunds(p.ID)) != 0 {
		t.Errorf("after the forged exit: left at %v, refunds %+v; want neither", got.LeftAt, e.refunds(p.ID))
	}
}

func TestGateEventOfUnknownKindIsAnException(t *testing.T) {
	e := gateEnv(t)
	p := e.paid("1", win(0, 3))
	ev := gateEvent("odd", "entry", p.Reservation, t0, true)
	ev.Kind = "teleport"
	if out := e.apply(ev); out != store.EventException || e.state(p.ID) != reservation.Paid {
		t.Fatalf("an event of an unknown kind: %v, reservation %s", out, e.state(p.ID))
	}
	e.wantException("odd", `unknown event kind "teleport"`)
}

func TestGateEventTimesAreBounded(t *testing.T) {
	e := gateEnv(t)
	e.clk.Set(t0.Add(time.Hour))
	p := e.paid("1", win(1, 4)) // created at t0+1h
	now := e.clk.Now()

	// Later than central's clock by more than the skew.
	if out := e.apply(gateEvent("ahead", "entry", p.Reservation, now.Add(booking.MaxEventSkew+time.Second), true)); out != store.EventException {
		t.Fatalf("an entry %s ahead: %v", booking.MaxEventSkew+time.Second, out)
	}
	e.wantException("ahead", "after central's clock")
	// Before the reservation existed.
	if out := e.apply(gateEvent("early", "entry", p.Reservation, now.Add(-time.Minute), true)); out != store.EventException {
		t.Fatalf("an entry before the reservation was created: %v", out)
	}
	e.wantException("early", "before the reservation was created")
	if e.state(p.ID) != reservation.Paid {
		t.Fatalf("after two impossible entries: %s, want paid", e.state(p.ID))
	}
	// Within the skew: a gate's clock a little ahead is fine.
	inAt := now.Add(booking.MaxEventSkew)
	if out := e.apply(gateEvent("in", "entry", p.Reservation, inAt, true)); out != store.EventApplied || e.state(p.ID) != reservation.Taken {
		t.Fatalf("an entry within the skew: %v %s", out, e.state(p.ID))
	}
	// A check-out before the check-in.
	e.clk.Set(now.Add(time.Hour))
	if out := e.apply(gateEvent("back", "exit", p.Reservation, inAt.Add(-time.Second), true)); out != store.EventException {
		t.Fatalf("an exit before the check-in: %v", out)
	}
	e.wantException("back", "before the check-in")
	if got := e.get(p.ID); got.State != reservation.Taken || !got.LeftAt.IsZero() {
		t.Fatalf("after the exit before the check-in: %s, left at %v; want taken", got.State, got.LeftAt)
	}
}

// The exit gate's event may arrive before the entry gate's (which was
// offline): the result is the one of the events' time order, the
// check-in at the entry's time, whichever arrives first, and applying an
// event again changes nothing.
func TestGateEventsOutOfOrder(t *testing.T) {
	e := gateEnv(t)
	inOrder := e.paid("1", win(0, 3))
	exitFirst := e.paid("2", win(0, 3))
	entryAt, exitAt := t0.Add(5*time.Minute), t0.Add(time.Hour)
	e.clk.Set(t0.Add(2 * time.Hour))

	e.apply(gateEvent("a-in", "entry", inOrder.Reservation, entryAt, true))
	e.apply(gateEvent("a-out", "exit", inOrder.Reservation, exitAt, true))

	if out := e.apply(gateEvent("b-out", "exit", exitFirst.Reservation, exitAt, true)); out != store.EventApplied || e.state(exitFirst.ID) != reservation.Left {
		t.Fatalf("exit first: %v %v", out, e.state(exitFirst.ID))
	}
	if got := e.get(exitFirst.ID); !got.CheckedInAt.IsZero() {
		t.Errorf("before its entry arrived, checked in at %v; want unknown", got.CheckedInAt)
	}
	late := gateEvent("b-in", "entry", exitFirst.Reservation, entryAt, true)
	if out := e.apply(late); out != store.EventApplied {
		t.Fatalf("the late entry: %v", out)
	}
	if _, dup, err := e.svc.ApplyGateEvent(e.ctx, late); err != nil || !dup {
		t.Fatalf("the late entry again: duplicate %v, %v", dup, err)
	}
	a, b := e.get(inOrder.ID), e.get(exitFirst.ID)
	if b.State != reservation.Left || !b.CheckedInAt.Equal(entryAt) || !b.LeftAt.Equal(exitAt) {
		t.Errorf("exit first: %s, in %v, out %v; want left, in %v, out %v", b.State, b.CheckedInAt, b.LeftAt, entryAt, exitAt)
	}
	if a.State != b.State || !a.CheckedInAt.Equal(b.CheckedInAt) || !a.LeftAt.Equal(b.LeftAt) {
		t.Errorf("in order: %s, in %v, out %v; exit first: %s, in %v, out %v; want the same", a.State, a.CheckedInAt, a.LeftAt, b.State, b.CheckedInAt, b.LeftAt)
	}
	if ra, rb := e.refunds(inOrder.ID), e.refunds(exitFirst.ID); len(ra) != 1 || len(rb) != 1 || ra[0].Amount != rb[0].Amount {
		t.Errorf("refunds in order %+v, exit first %+v; want one each, the same", ra, rb)
	}
	// An entry timed after the check-out is a second use of the ticket.
	if out := e.apply(gateEvent("b-again", "entry", exitFirst.Reservation, exitAt.Add(time.Minute), true)); out != store.EventException {
		t.Fatalf("an entry after the exit: %v", out)
	}
	if got := e.get(exitFirst.ID); got.State != reservation.Left || !got.CheckedInAt.Equal(entryAt) {
		t.Errorf("after an entry past the exit: %s, in %v", got.State, got.CheckedInAt)
	}
}

// Two entry gates granted the same reservation while offline: the
// check-in is the earlier entry's, whichever arrives first.
func TestGateEventsEarliestEntryIsTheCheckIn(t *testing.T) {
	e := gateEnv(t)
	e.provision(map[string]string{"entry-2": "entry"})
	p := e.paid("1", win(0, 3))
	e.clk.Set(t0.Add(time.Hour))
	first, second := t0.Add(5*time.Minute), t0.Add(7*time.Minute)
	e.apply(gateEvent("later", "entry", p.Reservation, second, true))
	earlier := gateEvent("earlier", "entry", p.Reservation, first, true)
	earlier.GateID = "entry-2"
	if out := e.apply(earlier); out != store.EventApplied {
		t.Fatalf("the earlier entry, arriving second: %v", out)
	}
	if got := e.get(p.ID); got.State != reservation.Taken || !got.CheckedInAt.Equal(first) {
		t.Errorf("%s, checked in at %v; want taken at %v", got.State, got.CheckedInAt, first)
	}
}
