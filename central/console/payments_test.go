package console_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/apijson"
	"github.com/parkgate/parkgate/central/console"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/clock/clocktest"
)

// following waits until the stream's hub follows the store: a gate's
// change reaches the stream. Rows written before that are the starting
// point, not news.
func (e *env) following(s *stream) {
	e.t.Helper()
	put := func(online bool) {
		g := store.Gate{ID: "probe", Role: "entry", Online: online, LastSeen: time.Now().UTC(), Barrier: "closed", AddedAt: time.Now().UTC()}
		if err := e.st.Write(context.Background(), func(tx store.Tx) error { return tx.PutGate(g) }); err != nil {
			e.t.Fatal(err)
		}
	}
	put(true)
	for {
		var g apijson.Gate
		if err := json.Unmarshal(s.next("gate", 5*time.Second).Data, &g); err != nil {
			e.t.Fatal(err)
		}
		if g.ID == "probe" && !g.Online {
			return
		}
		if g.ID == "probe" {
			put(false)
		}
	}
}

func (e *env) write(fn func(tx store.Tx) error) {
	e.t.Helper()
	if err := e.st.Write(context.Background(), fn); err != nil {
		e.t.Fatal(err)
	}
}

// TestEventsCarryRefundsAndPaymentExceptions: a refund recorded, then
// settled, and a dispute opened, then resolved, each reach an open stream
// as they happen, with amount and reason, and without an id (only changes
// carry one: Last-Event-ID stays a change-log version).
func TestEventsCarryRefundsAndPaymentExceptions(t *testing.T) {
	e := newEnv(t, clock.Real{}, false, "1")
	id := e.reserve("1", 1)
	s := e.stream(e.srv.Client(), admin()...)
	e.following(s)

	created := time.Now().UTC().Truncate(time.Microsecond)
	rf := store.Refund{ReservationID: id, Number: 1, Reason: "cancelled", Amount: 350, Currency: "eur", ChargeRef: "pi_1",
		ProviderKey: "refund-1", Status: store.RefundPending, CreatedAt: created}
	e.write(func(tx store.Tx) error { return tx.PutRefund(rf) })
	next := func(name string) (event, []byte) {
		t.Helper()
		ev := s.next(name, 2*time.Second)
		if ev.ID != "" {
			t.Errorf("%s event with id %q: only changes carry one", name, ev.ID)
		}
		return ev, ev.Data
	}
	var got console.RefundEvent
	_, data := next("refund")
	if err := json.Unmarshal(data, &got); err != nil || got.ReservationID != id || got.Number != 1 || got.Status != store.RefundPending ||
		got.Amount != 350 || got.Currency != "eur" || got.Reason != "cancelled" {
		t.Fatalf("refund recorded: %s (%v)", data, err)
	}
	rf.Status, rf.Message, rf.FinishedAt = store.RefundRefused, "charge already refunded", created.Add(time.Second)
	e.write(func(tx store.Tx) error { return tx.PutRefund(rf) })
	_, data = next("refund")
	if err := json.Unmarshal(data, &got); err != nil || got.Status != store.RefundRefused || got.Message != "charge already refunded" ||
		got.Amount != 350 || got.FinishedAt.IsZero() {
		t.Fatalf("refund refused: %s (%v)", data, err)
	}

	dispute := store.PaymentException{ID: "evt_dp_1", Kind: store.ExceptionDispute, ReservationID: id, Amount: 500,
		Currency: "eur", ProviderRef: "dp_1", Reason: "fraudulent", CreatedAt: time.Now().UTC()}
	e.write(func(tx store.Tx) error { return tx.PutPaymentException(dispute) })
	var pe apijson.PaymentException
	_, data = next("payment_exception")
	if err := json.Unmarshal(data, &pe); err != nil || pe.ID != "evt_dp_1" || pe.Kind != "dispute" || pe.Amount != 500 ||
		pe.Reason != "fraudulent" || pe.ReservationID != id || !pe.ResolvedAt.IsZero() {
		t.Fatalf("dispute: %s (%v)", data, err)
	}
	r := e.browser().do("POST", "/console/api/payment-exceptions/evt_dp_1/resolve", `{"reason":"evidence sent"}`, admin()...)
	if r.Status != 200 {
		t.Fatalf("resolve: %d %s", r.Status, r.Body)
	}
	_, data = next("payment_exception")
	if err := json.Unmarshal(data, &pe); err != nil || pe.ID != "evt_dp_1" || pe.ResolvedBy != "admin token" ||
		pe.Resolution != "evidence sent" || pe.ResolvedAt.IsZero() {
		t.Fatalf("dispute resolved: %s (%v)", data, err)
	}
}

// TestResolvePaymentException: an operator resolves a dispute and an
// unpaid overstay fee from the console: the CSRF token is required, the
// resolution names the operator (or "admin token"), GET
// /admin/payment-exceptions shows it, the change log records it, and the
// console's state lists it as resolved.
func TestResolvePaymentException(t *testing.T) {
	e := newEnv(t, clock.Real{}, false, "1")
	now := time.Now().UTC()
	e.write(func(tx store.Tx) error {
		if err := tx.PutPaymentException(store.PaymentException{ID: "evt_dp_2", Kind: store.ExceptionDispute, ReservationID: "r1",
			Amount: 500, Currency: "eur", ProviderRef: "dp_2", Reason: "product_not_received", CreatedAt: now}); err != nil {
			return err
		}
		return tx.PutPaymentException(store.PaymentException{ID: "overstay-r2-2", Kind: store.ExceptionOverstayUnpaid, ReservationID: "r2",
			Amount: 250, Currency: "eur", Reason: "your card was declined", CreatedAt: now.Add(time.Second)})
	})
	pw := e.operator("alice")
	b := e.browser()
	b.login("alice", pw)

	var st console.State
	if r := b.do("GET", "/console/api/state", ""); json.Unmarshal(r.Body, &st) != nil || len(st.PaymentExceptions) != 2 ||
		st.PaymentExceptions[0].ID != "overstay-r2-2" || st.PaymentExceptions[0].Amount != 250 || st.PaymentExceptions[1].Reason != "product_not_received" {
		t.Fatalf("state before: %d %s", r.Status, r.Body)
	}
	before := e.versions(0)
	r := b.do("POST", "/console/api/payment-exceptions/evt_dp_2/resolve", `{"reason":"evidence sent"}`)
	if r.Status != 403 || r.code(t) != "csrf" {
		t.Fatalf("without the CSRF token: %d %s", r.Status, r.Body)
	}
	if r := b.do("POST", "/console/api/payment-exceptions/nope/resolve", `{"reason":"x"}`, "X-CSRF-Token", b.csrf); r.Status != 404 || r.code(t) != "unknown_exception" {
		t.Errorf("unknown exception: %d %s", r.Status, r.Body)
	}
	if r := b.do("POST", "/console/api/payment-exceptions/evt_dp_2/resolve", `{"reason":" "}`, "X-CSRF-Token", b.csrf); r.Status != 400 {
		t.Errorf("without a note: %d %s", r.Status, r.Body)
	}
	if r := b.do("POST", "/console/api/payment-exceptions/evt_dp_2/resolve?x=1", `{"reason":"x"}`, "X-CSRF-Token", b.csrf); r.Status != 400 {
		t.Errorf("unknown query parameter: %d %s", r.Status, r.Body)
	}
	if after := e.versions(0); !equal(before, after) {
		t.Fatalf("refused requests changed the log: %v → %v", before, after)
	}
	var list []apijson.PaymentException
	call := func() {
		t.Helper()
		r := b.do("GET", "/admin/payment-exceptions", "", admin()...)
		if err := json.Unmarshal(r.Body, &list); r.Status != 200 || err != nil || len(list) != 2 {
			t.Fatalf("GET /admin/payment-exceptions: %d %s", r.Status, r.Body)
		}
	}
	call()
	if list[1].ResolvedBy != "" || strings.Contains(string(b.do("GET", "/admin/payment-exceptions", "", admin()...).Body), "resolvedAt") {
		t.Errorf("open exception shows a resolution: %+v", list[1])
	}

	r = b.do("POST", "/console/api/payment-exceptions/evt_dp_2/resolve", `{"reason":"evidence sent to the bank"}`, "X-CSRF-Token", b.csrf)
	var pe apijson.PaymentException
	if err := json.Unmarshal(r.Body, &pe); r.Status != 200 || err != nil || pe.ResolvedBy != "alice" || pe.Resolution != "evidence sent to the bank" {
		t.Fatalf("resolve: %d %s", r.Status, r.Body)
	}
	call()
	if d := list[1]; d.ID != "evt_dp_2" || d.ResolvedBy != "alice" || d.Resolution != "evidence sent to the bank" || d.ResolvedAt.IsZero() {
		t.Errorf("GET /admin/payment-exceptions after resolving: %+v", d)
	}
	if o := list[0]; o.ResolvedBy != "" || !o.ResolvedAt.IsZero() {
		t.Errorf("the overstay fee was resolved too: %+v", o)
	}
	cs, _ := e.st.Changes(context.Background(), 0, 0)
	if l := cs[len(cs)-1]; l.Kind != store.KindExceptionResolved || l.Actor != "operator:alice" || l.Note != "evt_dp_2: evidence sent to the bank" {
		t.Errorf("logged %+v", l)
	}

	// With the admin token, the resolution says so. (A second browser()
	// would share b's client and replace its cookies.)
	r = b.do("POST", "/console/api/payment-exceptions/overstay-r2-2/resolve", `{"reason":"paid cash at the desk"}`, admin()...)
	if json.Unmarshal(r.Body, &pe); r.Status != 200 || pe.ResolvedBy != "admin token" {
		t.Fatalf("resolve with the admin token: %d %s", r.Status, r.Body)
	}
	if r := b.do("GET", "/console/api/state", ""); json.Unmarshal(r.Body, &st) != nil || len(st.PaymentExceptions) != 2 ||
		st.PaymentExceptions[0].ResolvedBy != "admin token" || st.PaymentExceptions[1].ResolvedBy != "alice" {
		t.Fatalf("state after: %d %s", r.Status, r.Body)
	}
}

// TestEventsFromTheFirstInstantOfAStream: a dispute opened right after a
// stream said hello, before the hub's first poll, reaches the stream. It
// has no change-log entry, so a hub that took its starting point at its
// first poll counted it as already known, and the console showed it only
// at the next reload.
func TestEventsFromTheFirstInstantOfAStream(t *testing.T) {
	clk := clocktest.New(time.Now())
	e := newEnv(t, clk, false, "1")
	id := e.reserve("1", 1)
	waitTimers(t, clk, 1) // the hub sleeps between polls
	s := e.stream(e.srv.Client(), admin()...)
	s.next("hello", 2*time.Second)
	waitTimers(t, clk, 2) // and the stream waits with its keep-alive

	dispute := store.PaymentException{ID: "evt_dp_first", Kind: store.ExceptionDispute, ReservationID: id, Amount: 500,
		Currency: "eur", ProviderRef: "dp_first", Reason: "fraudulent", CreatedAt: clk.Now()}
	e.write(func(tx store.Tx) error { return tx.PutPaymentException(dispute) })
	clk.Advance(20 * time.Millisecond) // the hub's next poll
	var pe apijson.PaymentException
	if err := json.Unmarshal(s.next("payment_exception", 2*time.Second).Data, &pe); err != nil || pe.ID != "evt_dp_first" {
		t.Fatalf("dispute: %+v (%v)", pe, err)
	}
}

// waitTimers waits until clk has at least n timers waiting.
func waitTimers(t *testing.T, clk *clocktest.Clock, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for clk.Timers() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d timers waiting, want %d", clk.Timers(), n)
		}
		time.Sleep(time.Millisecond)
	}
}
