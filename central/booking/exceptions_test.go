package booking_test

import (
	"context"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/booking"
	"github.com/parkgate/parkgate/central/store"
)

// wholeLists is a store that fails the test when a list of gate events or
// payment exceptions is read whole (no limit): what resolving one
// exception did, at the cost of every exception of the site's years.
type wholeLists struct {
	store.Store
	t *testing.T
}

func (w wholeLists) GateEvents(ctx context.Context, f store.EventFilter) ([]store.GateEvent, error) {
	if f.Limit <= 0 {
		w.t.Errorf("every gate event matching %+v was read", f)
	}
	return w.Store.GateEvents(ctx, f)
}

func (w wholeLists) PaymentExceptions(ctx context.Context, limit int) ([]store.PaymentException, error) {
	if limit <= 0 {
		w.t.Error("every payment exception was read")
	}
	return w.Store.PaymentExceptions(ctx, limit)
}

// TestResolveExceptionsByKey: an operator resolves a gate's exception and a
// payment exception, each found by its id without reading the others; an
// unknown id, and a gate event that is not an exception, are 404
// unknown_exception and change nothing; resolving again replaces the
// resolution and logs it again.
func TestResolveExceptionsByKey(t *testing.T) {
	e := newEnv(t)
	ctx := e.ctx
	gateEvent := func(id, outcome string) store.GateEvent {
		return store.GateEvent{EventID: id, GateID: "exit-1", Seq: 1, Kind: "decision", Role: "exit", Time: t0,
			Source: "qr", ReceivedAt: t0, Outcome: outcome, Note: "n"}
	}
	if err := e.st.Write(ctx, func(tx store.Tx) error {
		for _, ev := range []store.GateEvent{gateEvent("x1", store.EventException), gateEvent("a1", store.EventApplied)} {
			if err := tx.PutGateEvent(ev); err != nil {
				return err
			}
		}
		return tx.PutPaymentException(store.PaymentException{ID: "px1", Kind: store.ExceptionDispute, ReservationID: "r",
			Amount: 500, Currency: "eur", CreatedAt: t0})
	}); err != nil {
		t.Fatal(err)
	}
	svc := booking.New(wholeLists{e.st, t}, e.pay, stubTickets{}, e.clk, e.cfg, nil, nil)
	alice := booking.Caller{Operator: true, Name: "alice", Reason: "driver paid cash"}

	got, err := svc.ResolveException(ctx, "x1", alice)
	if err != nil || got.EventID != "x1" || got.Outcome != store.EventException || got.ResolvedBy != "alice" ||
		got.Resolution != "driver paid cash" || !got.ResolvedAt.Equal(t0) {
		t.Fatalf("ResolveException(x1) = %+v, %v", got, err)
	}
	wantCode := func(what string, err error, kind booking.Kind, code, msg string) {
		t.Helper()
		be, ok := booking.AsError(err)
		if !ok || be.Kind != kind || be.Code != code || (msg != "" && be.Message != msg) {
			t.Errorf("%s: %v, want %s (%s)", what, err, code, msg)
		}
	}
	_, err = svc.ResolveException(ctx, "a1", alice)
	wantCode("ResolveException(applied event)", err, booking.NotFound, "unknown_exception", `there is no exception "a1"`)
	if a1, err := e.st.GateEvent(ctx, "a1"); err != nil || a1.ResolvedBy != "" {
		t.Errorf("the applied event was resolved: %+v, %v", a1, err)
	}
	_, err = svc.ResolveException(ctx, "nope", alice)
	wantCode("ResolveException(unknown)", err, booking.NotFound, "unknown_exception", `there is no exception "nope"`)
	_, err = svc.ResolveException(ctx, "x1", booking.Caller{Reason: "x"})
	wantCode("ResolveException(driver)", err, booking.Forbidden, "not_operator", "")
	_, err = svc.ResolveException(ctx, "x1", booking.Caller{Operator: true, Reason: " "})
	wantCode("ResolveException(no note)", err, booking.Invalid, "missing_note", "")

	e.clk.Advance(time.Minute)
	got, err = svc.ResolveException(ctx, "x1", booking.Caller{Operator: true, Reason: "refunded at the desk"})
	if err != nil || got.ResolvedBy != "admin token" || got.Resolution != "refunded at the desk" || !got.ResolvedAt.Equal(e.clk.Now()) {
		t.Errorf("ResolveException(x1) again = %+v, %v", got, err)
	}

	px, err := svc.ResolvePaymentException(ctx, "px1", alice)
	if err != nil || px.ID != "px1" || px.ResolvedBy != "alice" || px.Resolution != "driver paid cash" || px.Amount != 500 {
		t.Fatalf("ResolvePaymentException(px1) = %+v, %v", px, err)
	}
	px, err = svc.ResolvePaymentException(ctx, "px1", booking.Caller{Operator: true, Name: "bob", Reason: "bank decided"})
	if err != nil || px.ResolvedBy != "bob" || px.Resolution != "bank decided" {
		t.Errorf("ResolvePaymentException(px1) again = %+v, %v", px, err)
	}
	_, err = svc.ResolvePaymentException(ctx, "nope", alice)
	wantCode("ResolvePaymentException(unknown)", err, booking.NotFound, "unknown_exception", `there is no payment exception "nope"`)

	// Each resolution was logged, the refused ones were not.
	cs, err := e.st.Changes(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var notes []string
	for _, c := range cs {
		if c.Kind == store.KindExceptionResolved {
			notes = append(notes, c.Actor+" "+c.Note)
		}
	}
	want := []string{"operator:alice x1: driver paid cash", "operator x1: refunded at the desk",
		"operator:alice px1: driver paid cash", "operator:bob px1: bank decided"}
	if len(notes) != len(want) {
		t.Fatalf("resolutions logged: %q, want %q", notes, want)
	}
	for i := range want {
		if notes[i] != want[i] {
			t.Errorf("resolution %d logged as %q, want %q", i, notes[i], want[i])
		}
	}
}
