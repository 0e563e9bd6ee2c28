package console_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/apijson"
	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/clock"
)

// reserve makes a change-log entry (a new reservation) and returns its id.
func (e *env) reserve(spot string, h int) string {
	e.t.Helper()
	from := time.Now().Add(time.Duration(h) * time.Hour)
	res, err := e.svc.Reserve(context.Background(), spot, reservation.Window{From: from, Until: from.Add(30 * time.Minute)})
	if err != nil {
		e.t.Fatal(err)
	}
	return res.Reservation.ID
}

func (e *env) versions(after int64) []int64 {
	e.t.Helper()
	cs, err := e.st.Changes(context.Background(), after, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	var vs []int64
	for _, c := range cs {
		vs = append(vs, c.Version)
	}
	return vs
}

// collect reads change events until it has seen version last.
func (s *stream) changesUpTo(last int64) []int64 {
	s.t.Helper()
	var got []int64
	for {
		ev := s.next("change", 5*time.Second)
		v, err := strconv.ParseInt(ev.ID, 10, 64)
		if err != nil {
			s.t.Fatalf("change event id %q", ev.ID)
		}
		var c store.Change
		if err := json.Unmarshal(ev.Data, &c); err != nil || c.Version != v {
			s.t.Fatalf("change event %s: %s (%v)", ev.ID, ev.Data, err)
		}
		got = append(got, v)
		if v >= last {
			return got
		}
	}
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestEventsResumeWithoutGapsOrDuplicates: a stream carries every change
// once; closed and reopened with Last-Event-ID, it sends exactly the
// changes made while it was away, then the new ones.
func TestEventsResumeWithoutGapsOrDuplicates(t *testing.T) {
	e := newEnv(t, clock.Real{}, false, "1", "2", "3")
	c := e.srv.Client()
	s := e.stream(c, admin()...)
	hello := s.next("hello", 5*time.Second)
	start, _ := strconv.ParseInt(hello.ID, 10, 64)
	for i := range 5 {
		e.reserve("1", i+1)
	}
	want := e.versions(start)
	got := s.changesUpTo(want[len(want)-1])
	if !equal(got, want) {
		t.Fatalf("live: got versions %v, want %v", got, want)
	}
	last := got[len(got)-1]
	s.close()

	// Away: more changes, some more than one page of the hub's memory
	// would hold is not needed — any number must come back in order.
	for i := range 7 {
		e.reserve("2", i+1)
	}
	s2 := e.stream(c, admin("Last-Event-ID", strconv.FormatInt(last, 10))...)
	for i := range 3 {
		e.reserve("3", i+1)
	}
	want = e.versions(last)
	got = s2.changesUpTo(want[len(want)-1])
	if !equal(got, want) {
		t.Fatalf("resumed after %d: got versions %v, want %v", last, got, want)
	}
	// Nothing after the last one: no duplicate follows.
	e.reserve("3", 9)
	next := s2.next("change", 5*time.Second)
	if v, _ := strconv.ParseInt(next.ID, 10, 64); v != e.versions(got[len(got)-1])[0] {
		t.Fatalf("after catching up: change %s, want the next version", next.ID)
	}
}

// TestEventsResumeFromBeforeTheHubsMemory: a client back after more
// changes than the hub keeps still gets every one, from the store.
func TestEventsResumeFromBeforeTheHubsMemory(t *testing.T) {
	e := newEnv(t, clock.Real{}, false, "1")
	s := e.stream(e.srv.Client(), admin("Last-Event-ID", "0")...)
	want := e.versions(0)
	if len(want) == 0 {
		t.Fatal("no spot changes to replay")
	}
	got := s.changesUpTo(want[len(want)-1])
	if !equal(got, want) {
		t.Fatalf("from 0: got %v, want %v", got, want)
	}
}

// TestEventsBadLastEventID: a Last-Event-ID that is no version is refused.
func TestEventsBadLastEventID(t *testing.T) {
	e := newEnv(t, clock.Real{}, false, "1")
	r := e.browser().do("GET", "/admin/events", "", admin("Last-Event-ID", "yesterday")...)
	if r.Status != 400 || r.code(t) != "invalid_last_event_id" {
		t.Fatalf("got %d %s", r.Status, r.Body)
	}
}

// TestEventsGatePresenceAndEvents: the stream starts with every gate,
// says within a second when one goes offline, and carries gate events.
func TestEventsGatePresenceAndEvents(t *testing.T) {
	e := newEnv(t, clock.Real{}, false, "1")
	ctx := context.Background()
	put := func(g store.Gate) {
		if err := e.st.Write(ctx, func(tx store.Tx) error { return tx.PutGate(g) }); err != nil {
			t.Fatal(err)
		}
	}
	put(store.Gate{ID: "entry-1", Role: "entry", Online: true, LastSeen: time.Now().UTC(), Barrier: "closed", AddedAt: time.Now().UTC()})
	s := e.stream(e.srv.Client(), admin()...)
	var g apijson.Gate
	if err := json.Unmarshal(s.next("gate", 5*time.Second).Data, &g); err != nil || g.ID != "entry-1" || !g.Online {
		t.Fatalf("first gate event: %+v %v", g, err)
	}
	put(store.Gate{ID: "entry-1", Role: "entry", Online: false, LastSeen: time.Now().UTC(), Barrier: "closed", AddedAt: time.Now().UTC()})
	if err := json.Unmarshal(s.next("gate", time.Second).Data, &g); err != nil || g.ID != "entry-1" || g.Online {
		t.Fatalf("after going offline: %+v %v", g, err)
	}
	ev := store.GateEvent{EventID: "ev-1", GateID: "entry-1", Seq: 1, Kind: "decision", Role: "entry", Time: time.Now().UTC(),
		Source: "qr", Granted: false, Reason: "unknown_ticket", ReceivedAt: time.Now().UTC(), Outcome: store.EventRecorded}
	if err := e.st.Write(ctx, func(tx store.Tx) error { return tx.PutGateEvent(ev) }); err != nil {
		t.Fatal(err)
	}
	var ge apijson.GateEvent
	if err := json.Unmarshal(s.next("gate_event", 2*time.Second).Data, &ge); err != nil || ge.EventID != "ev-1" || ge.Reason != "unknown_ticket" {
		t.Fatalf("gate event: %+v %v", ge, err)
	}
}

// TestEventsAfterQuery: ?after= starts a first connection where the page's
// state left off; Last-Event-ID, sent on reconnection, wins over it.
func TestEventsAfterQuery(t *testing.T) {
	e := newEnv(t, clock.Real{}, false, "1")
	c := e.srv.Client()
	e.reserve("1", 1)
	mid := e.versions(0)
	at := mid[len(mid)-1]
	e.reserve("1", 2)
	e.reserve("1", 3)
	want := e.versions(at)
	s := e.streamAt(c, "/admin/events?after="+strconv.FormatInt(at, 10), admin()...)
	if got := s.changesUpTo(want[len(want)-1]); !equal(got, want) {
		t.Fatalf("?after=%d: got %v, want %v", at, got, want)
	}
	s.close()
	s = e.streamAt(c, "/admin/events?after=0", admin("Last-Event-ID", strconv.FormatInt(want[0], 10))...)
	if got := s.changesUpTo(want[len(want)-1]); !equal(got, want[1:]) {
		t.Fatalf("Last-Event-ID with ?after=0: got %v, want %v", got, want[1:])
	}
	for _, q := range []string{"after=-1", "after=x", "since=3"} {
		if r := e.browser().do("GET", "/admin/events?"+q, "", admin()...); r.Status != 400 {
			t.Errorf("?%s: %d", q, r.Status)
		}
	}
}

// TestEventsOutliveTheWriteTimeout: a stream open longer than the
// server's write timeout still delivers.
func TestEventsOutliveTheWriteTimeout(t *testing.T) {
	e := newEnv(t, clock.Real{}, false, "1")
	s := e.stream(e.srv.Client(), admin()...)
	s.next("hello", 5*time.Second)
	<-time.After(writeTimeout + 500*time.Millisecond) // past the deadline the server set when the request came
	e.reserve("1", 1)
	want := e.versions(0)
	if got := s.changesUpTo(want[len(want)-1]); got[len(got)-1] != want[len(want)-1] {
		t.Fatalf("got %v", got)
	}
}
