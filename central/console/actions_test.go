package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/console"
	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/clock"
)

func csvBody(text, reason string) string {
	b, _ := json.Marshal(console.CSVRequest{Lines: strings.Split(text, "\n"), Reason: reason})
	return string(b)
}

func csvPath(preview bool) string {
	if preview {
		return "/console/api/csv/preview"
	}
	return "/console/api/csv/push"
}

// TestCSVPushAllOrNothing: a CSV with one bad line is refused whole with
// the line named; fixed, all of it is pushed, recorded under the
// operator's name and reason.
func TestCSVPushAllOrNothing(t *testing.T) {
	e := newEnv(t, clock.Real{}, false, "1", "2", "3")
	pw := e.operator("alice")
	b := e.browser()
	b.login("alice", pw)
	from := time.Now().UTC().Add(2 * time.Hour).Truncate(time.Hour)
	line := func(spot string, ref string) string {
		return fmt.Sprintf("%s,%s,%s,B-XY 1,%s\n", spot, from.Format(time.RFC3339), from.Add(time.Hour).Format(time.RFC3339), ref)
	}
	bad := "spotId,reservedFrom,reservedUntil,carId,reference\n" + line("1", "a") + line("99", "b") + line("3", "c")
	before := e.versions(0)
	for _, preview := range []bool{true, false} {
		r := b.do("POST", csvPath(preview), csvBody(bad, "import"), "X-CSRF-Token", b.csrf)
		var ans console.CSVAnswer
		if err := json.Unmarshal(r.Body, &ans); err != nil || r.Status != http.StatusUnprocessableEntity || ans.OK || len(ans.Rows) != 3 {
			t.Fatalf("preview %v: %d %s", preview, r.Status, r.Body)
		}
		for i, row := range ans.Rows {
			if (row.Error != "") != (i == 1) || row.Line != i+2 {
				t.Errorf("preview %v: row %+v", preview, row)
			}
		}
		if !strings.Contains(ans.Rows[1].Error, "no spot") {
			t.Errorf("error of line 3: %q", ans.Rows[1].Error)
		}
	}
	if !equal(before, e.versions(0)) {
		t.Fatal("a refused CSV changed the log")
	}
	// A conflict only the booking rules find (two lines for one spot and
	// window) is refused whole too, with the line named.
	clash := strings.Replace(bad, "99,", "1,", 1)
	r := b.do("POST", csvPath(false), csvBody(clash, "import"), "X-CSRF-Token", b.csrf)
	var ans console.CSVAnswer
	if json.Unmarshal(r.Body, &ans); r.Status != http.StatusUnprocessableEntity || ans.Rows[1].Error == "" || !strings.Contains(ans.Error, "line 3") {
		t.Fatalf("clash: %d %s", r.Status, r.Body)
	}
	if !equal(before, e.versions(0)) {
		t.Fatal("a refused CSV changed the log")
	}
	good := strings.Replace(bad, "99,", "2,", 1)
	r = b.do("POST", csvPath(false), csvBody(good, "hotel import"), "X-CSRF-Token", b.csrf)
	if json.Unmarshal(r.Body, &ans); r.Status != http.StatusCreated || ans.Pushed != 3 {
		t.Fatalf("good CSV: %d %s", r.Status, r.Body)
	}
	cs, _ := e.st.Changes(context.Background(), before[len(before)-1], 0)
	if len(cs) != 3 {
		t.Fatalf("%d changes, want 3", len(cs))
	}
	for _, c := range cs {
		if c.Kind != store.KindCreated || c.Actor != "operator:alice" || c.Note != "hotel import" || c.Reservation.State != reservation.Paid {
			t.Errorf("logged %+v", c)
		}
	}
	// A push needs a reason; a preview does not.
	if r := b.do("POST", csvPath(false), csvBody(good, ""), "X-CSRF-Token", b.csrf); r.Status != 400 || r.code(t) != "missing_reason" {
		t.Errorf("push without a reason: %d %s", r.Status, r.Body)
	}
}

// TestActionsNeedAReason: an action without a reason is refused and
// changes nothing.
func TestActionsNeedAReason(t *testing.T) {
	e := newEnv(t, clock.Real{}, false, "1")
	id := e.reserve("1", 1)
	for _, body := range []string{`{}`, `{"reason":"   "}`, `{"reason":"x","extra":1}`, `{"Reason":"x"}`} {
		r := e.browser().do("POST", "/console/api/reservations/"+id+"/cancel", body, admin()...)
		if r.Status != 400 {
			t.Errorf("%s: %d %s", body, r.Status, r.Body)
		}
	}
	if res, _ := e.st.Get(context.Background(), id); res.State != reservation.Reserved {
		t.Fatalf("state %s", res.State)
	}
}

// TestResolveException: resolving records who and the note, and the
// change log says so.
func TestResolveException(t *testing.T) {
	e := newEnv(t, clock.Real{}, false, "1")
	ev := store.GateEvent{EventID: "x1", GateID: "entry-1", Seq: 1, Kind: "decision", Role: "entry", Time: time.Now().UTC(),
		Source: "qr", Granted: true, ReceivedAt: time.Now().UTC(), Outcome: store.EventException, Note: "entry on a cancelled reservation"}
	if err := e.st.Write(context.Background(), func(tx store.Tx) error { return tx.PutGateEvent(ev) }); err != nil {
		t.Fatal(err)
	}
	pw := e.operator("alice")
	b := e.browser()
	b.login("alice", pw)
	if r := b.do("POST", "/console/api/exceptions/nope/resolve", `{"reason":"x"}`, "X-CSRF-Token", b.csrf); r.Status != 404 {
		t.Errorf("unknown exception: %d %s", r.Status, r.Body)
	}
	r := b.do("POST", "/console/api/exceptions/x1/resolve", `{"reason":"driver showed a receipt"}`, "X-CSRF-Token", b.csrf)
	if r.Status != 200 {
		t.Fatalf("resolve: %d %s", r.Status, r.Body)
	}
	es, _ := e.st.GateEvents(context.Background(), store.EventFilter{})
	if es[0].ResolvedBy != "alice" || es[0].Resolution != "driver showed a receipt" || es[0].ResolvedAt.IsZero() {
		t.Errorf("stored %+v", es[0])
	}
	cs, _ := e.st.Changes(context.Background(), 0, 0)
	if l := cs[len(cs)-1]; l.Kind != store.KindExceptionResolved || l.Actor != "operator:alice" || !strings.Contains(l.Note, "driver showed a receipt") {
		t.Errorf("logged %+v", l)
	}
	// Resolved again with the admin token (a script): the resolution says so.
	if r := b.do("POST", "/console/api/exceptions/x1/resolve", `{"reason":"refunded by the desk"}`, admin()...); r.Status != 200 {
		t.Fatalf("resolve with the admin token: %d %s", r.Status, r.Body)
	}
	if es, _ := e.st.GateEvents(context.Background(), store.EventFilter{}); es[0].ResolvedBy != "admin token" || es[0].Resolution != "refunded by the desk" {
		t.Errorf("stored %+v", es[0])
	}
}

// TestOpenGateRecordsTheOperator: a remote open reaches the gate and the
// change log records who and why.
func TestOpenGateRecordsTheOperator(t *testing.T) {
	e := newEnv(t, clock.Real{}, false, "1")
	if err := e.st.Write(context.Background(), func(tx store.Tx) error {
		return tx.PutGate(store.Gate{ID: "entry-1", Role: "entry", AddedAt: time.Now().UTC()})
	}); err != nil {
		t.Fatal(err)
	}
	pw := e.operator("alice")
	b := e.browser()
	b.login("alice", pw)
	if r := b.do("POST", "/console/api/gates/nope/open", `{"reason":"x"}`, "X-CSRF-Token", b.csrf); r.Status != 404 {
		t.Errorf("unknown gate: %d", r.Status)
	}
	r := b.do("POST", "/console/api/gates/entry-1/open", `{"reason":"intercom"}`, "X-CSRF-Token", b.csrf)
	if r.Status != 200 || <-e.gates.opened != "entry-1" {
		t.Fatalf("open: %d %s", r.Status, r.Body)
	}
	cs, _ := e.st.Changes(context.Background(), 0, 0)
	if l := cs[len(cs)-1]; l.Kind != store.KindGateOpened || l.Actor != "operator:alice" || l.GateID != "entry-1" || l.Note != "intercom" {
		t.Errorf("logged %+v", l)
	}
}

// TestLookupAndState: a reservation is found by id and by plate with its
// payments; the state counts spots.
func TestLookupAndState(t *testing.T) {
	e := newEnv(t, clock.Real{}, false, "1", "2")
	b := e.browser()
	from := time.Now().UTC().Add(time.Hour)
	r := b.do("POST", csvPath(false), csvBody(fmt.Sprintf("spotId,reservedFrom,reservedUntil,carId\n1,%s,%s,b-xy 7\n",
		from.Format(time.RFC3339), from.Add(time.Hour).Format(time.RFC3339)), "test"), admin()...)
	if r.Status != 201 {
		t.Fatalf("push: %d %s", r.Status, r.Body)
	}
	var found []console.Found
	r = b.do("GET", "/console/api/lookup?q=B-XY%207", "", admin()...)
	if json.Unmarshal(r.Body, &found); r.Status != 200 || len(found) != 1 || found[0].Reservation.SpotID != "1" {
		t.Fatalf("by plate: %d %s", r.Status, r.Body)
	}
	id := found[0].Reservation.ReservationID
	r = b.do("GET", "/console/api/lookup?q="+id, "", admin()...)
	if json.Unmarshal(r.Body, &found); r.Status != 200 || len(found) != 1 || found[0].Reservation.ReservationID != id {
		t.Fatalf("by id: %d %s", r.Status, r.Body)
	}
	if r := b.do("GET", "/console/api/lookup?q=x&other=1", "", admin()...); r.Status != 400 {
		t.Errorf("unknown query parameter: %d", r.Status)
	}
	var st console.State
	r = b.do("GET", "/console/api/state", "", admin()...)
	if json.Unmarshal(r.Body, &st); r.Status != 200 || len(st.Spots) != 2 || st.Counts.Free+st.Counts.Reserved+st.Counts.Taken != 2 {
		t.Fatalf("state: %d %s", r.Status, r.Body)
	}
}
