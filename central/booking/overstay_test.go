package booking_test

import (
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/booking"
	"github.com/parkgate/parkgate/central/payment/fakepay"
	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
)

// paidWith reserves spot for w and pays it with payment method pm.
func (e *env) paidWith(spot string, w reservation.Window, pm string) booking.Issued {
	e.t.Helper()
	r := e.reserve(spot, w)
	p, err := e.svc.Pay(e.ctx, spot, booking.Caller{Token: r.Token}, booking.PayRequest{CarID: "B-XY 123", PaymentMethod: pm})
	if err != nil {
		e.t.Fatalf("pay: %v", err)
	}
	p.Token = r.Token
	return p
}

func overstays(atts []store.PaymentAttempt) []store.PaymentAttempt {
	var out []store.PaymentAttempt
	for _, a := range atts {
		if a.Purpose == store.PurposeOverstay {
			out = append(out, a)
		}
	}
	return out
}

// A ticket used at the exit after reservedUntil + the grace: the fee (the
// reservation's own hourly price per started hour beyond that) is charged
// once, off-session, to the card saved at the first payment, and recorded
// as a payment of the reservation.
func TestOverstayChargedOnceOffSession(t *testing.T) {
	e := gateEnv(t)
	p := e.paidWith("1", win(0, 2), "pm_card_visa") // 2 h: 500, 250 per hour
	e.apply(gateEvent("in-1", "entry", p.Reservation, t0.Add(time.Minute), true))
	// Left 2 h 15 min + 70 min after the start: 70 min beyond the grace,
	// two started hours.
	left := t0.Add(2*time.Hour + e.cfg.OverstayGrace + 70*time.Minute)
	e.clk.Set(left.Add(time.Minute))
	if out := e.apply(gateEvent("out-1", "exit", p.Reservation, left, true)); out != store.EventApplied {
		t.Fatalf("exit outcome %s", out)
	}
	if e.state(p.ID) != reservation.Left {
		t.Fatalf("state %s: the exit must apply whatever the fee", e.state(p.ID))
	}
	if n, err := e.svc.Reconcile(e.ctx); err != nil || n != 1 {
		t.Fatalf("reconciled %d, %v", n, err)
	}
	os := overstays(e.attempts(p.ID))
	if len(os) != 1 || os[0].Outcome != store.AttemptSucceeded || os[0].Amount != 500 || os[0].ProviderRef == "" || os[0].CustomerRef == "" {
		t.Fatalf("overstay attempts %+v, want one succeeded of 500 to the saved card", os)
	}
	// The exit delivered again, or a second exit: no second fee.
	if _, dup, _ := e.svc.ApplyGateEvent(e.ctx, gateEvent("out-1", "exit", p.Reservation, left, true)); !dup {
		t.Fatal("the redelivered exit was applied again")
	}
	e.apply(gateEvent("out-2", "exit", p.Reservation, left.Add(time.Hour), true))
	e.svc.Reconcile(e.ctx)
	if os := overstays(e.attempts(p.ID)); len(os) != 1 || e.pay.Charges() != 2 {
		t.Fatalf("overstay attempts %+v, charges %d: want one fee charged once", os, e.pay.Charges())
	}
	if got, ok, err := e.svc.Overstay(e.ctx, p.ID); err != nil || !ok || got.Amount != 500 {
		t.Fatalf("Overstay = %+v, %v, %v", got, ok, err)
	}
}

// Within the grace nothing is owed; operator pushes (no card) owe nothing
// here either.
func TestOverstayWithinGraceIsFree(t *testing.T) {
	e := gateEnv(t)
	p := e.paidWith("1", win(0, 2), "pm_card_visa")
	e.apply(gateEvent("in-1", "entry", p.Reservation, t0.Add(time.Minute), true))
	left := t0.Add(2*time.Hour + e.cfg.OverstayGrace)
	e.clk.Set(left)
	e.apply(gateEvent("out-1", "exit", p.Reservation, left, true))
	e.svc.Reconcile(e.ctx)
	if os := overstays(e.attempts(p.ID)); len(os) != 0 || e.pay.Charges() != 1 {
		t.Fatalf("overstay attempts %+v within the grace", os)
	}
	if fee := e.svc.OverstayFee(p.Reservation, left.Add(time.Second)); fee != 250 {
		t.Fatalf("fee a second past the grace = %d, want one hour (250)", fee)
	}
}

// A declined off-session charge becomes an operator exception with the
// amount owed, is not retried, and the car is still let out.
func TestOverstayDeclinedBecomesException(t *testing.T) {
	e := gateEnv(t)
	e.cfg.OverstayPerHour = 400
	e.svc = booking.New(e.st, e.pay, stubTickets{}, e.clk, e.cfg, nil, nil)
	p := e.paidWith("1", win(0, 1), fakepay.CustomerFail) // pays now, declines off-session
	e.apply(gateEvent("in-1", "entry", p.Reservation, t0.Add(time.Minute), true))
	left := t0.Add(time.Hour + e.cfg.OverstayGrace + 30*time.Minute)
	e.clk.Set(left)
	e.apply(gateEvent("out-1", "exit", p.Reservation, left, true))
	if e.state(p.ID) != reservation.Left {
		t.Fatalf("state %s", e.state(p.ID))
	}
	if _, err := e.svc.Reconcile(e.ctx); err != nil {
		t.Fatal(err)
	}
	os := overstays(e.attempts(p.ID))
	if len(os) != 1 || os[0].Outcome != store.AttemptDeclined || os[0].Amount != 400 {
		t.Fatalf("overstay attempts %+v, want one declined of 400", os)
	}
	es, err := e.svc.PaymentExceptions(e.ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].Kind != store.ExceptionOverstayUnpaid || es[0].Amount != 400 || es[0].ReservationID != p.ID || es[0].Reason == "" {
		t.Fatalf("exceptions %+v, want one overstay_unpaid of 400", es)
	}
	// Never retried blindly: later rounds leave it alone.
	e.clk.Advance(time.Hour)
	e.svc.Reconcile(e.ctx)
	if os := overstays(e.attempts(p.ID)); len(os) != 1 || os[0].Outcome != store.AttemptDeclined {
		t.Fatalf("after another round: %+v", os)
	}
	if es, _ := e.svc.PaymentExceptions(e.ctx, 10); len(es) != 1 {
		t.Fatalf("%d exceptions", len(es))
	}
}
