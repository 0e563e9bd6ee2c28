package booking_test

import (
	"context"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/booking"
	"github.com/parkgate/parkgate/central/payment"
	"github.com/parkgate/parkgate/central/payment/fakepay"
	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
)

func scaRequest(key string) booking.PayRequest {
	return booking.PayRequest{CarID: "X1", PaymentMethod: fakepay.AuthenticationRequired, IdempotencyKey: key, RequestHash: []byte("h:" + key)}
}

// A card that needs 3-D Secure: the payment waits for the cardholder
// (the client secret for the app, no ticket), and the same request
// repeated with the same Idempotency-Key completes it once the cardholder
// authenticated: paid, with the ticket, charged once.
func TestSCARepeatWithSameKeyCompletes(t *testing.T) {
	e := newEnv(t)
	r := e.reserve("1", win(1, 3))
	drv := booking.Caller{Token: r.Token}
	got, err := e.svc.Pay(e.ctx, "1", drv, scaRequest("k1"))
	if err != nil || got.Action == nil || got.Action.ClientSecret == "" || got.Action.PaymentID == "" || got.Ticket != "" {
		t.Fatalf("first answer %+v, %v; want requires_action with a client secret and no ticket", got, err)
	}
	ref := got.Action.PaymentID
	if e.state(r.ID) != reservation.Reserved {
		t.Fatalf("state %s, want reserved", e.state(r.ID))
	}
	if _, err := e.svc.Ticket(e.ctx, "1", drv); err == nil {
		t.Fatal("a ticket before the payment completed")
	}
	// Another request meanwhile (no key, another card) must not start a
	// second payment.
	_, err = e.svc.Pay(e.ctx, "1", drv, booking.PayRequest{CarID: "X1", PaymentMethod: "pm_card_visa"})
	wantCode(t, err, booking.Conflict, "payment_in_progress")

	// Not authenticated yet: 202 again, same payment.
	again, err := e.svc.Pay(e.ctx, "1", drv, scaRequest("k1"))
	if err != nil || again.Action == nil || again.Action.PaymentID != ref {
		t.Fatalf("repeat before authentication: %+v, %v", again, err)
	}
	if err := e.pay.Complete(e.ctx, ref, true); err != nil {
		t.Fatal(err)
	}
	done, err := e.svc.Pay(e.ctx, "1", drv, scaRequest("k1"))
	if err != nil || done.Action != nil || done.Ticket == "" || done.State != reservation.Paid || done.PaymentRef != ref {
		t.Fatalf("repeat after authentication: %+v, %v; want paid with a ticket", done, err)
	}
	// And again: the same answer, nothing more charged.
	if replay, err := e.svc.Pay(e.ctx, "1", drv, scaRequest("k1")); err != nil || replay.Ticket == "" {
		t.Fatalf("replay: %+v, %v", replay, err)
	}
	atts := e.attempts(r.ID)
	if len(atts) != 1 || atts[0].Outcome != store.AttemptSucceeded || e.pay.Charges() != 1 {
		t.Fatalf("attempts %+v, charges %d", atts, e.pay.Charges())
	}
}

// A failed authentication is a decline (402); the driver may pay again.
func TestSCAFailedAuthenticationIsDeclined(t *testing.T) {
	e := newEnv(t)
	r := e.reserve("1", win(1, 3))
	drv := booking.Caller{Token: r.Token}
	got, err := e.svc.Pay(e.ctx, "1", drv, scaRequest("k1"))
	if err != nil || got.Action == nil {
		t.Fatalf("%+v, %v", got, err)
	}
	if err := e.pay.Complete(e.ctx, got.Action.PaymentID, false); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Pay(e.ctx, "1", drv, scaRequest("k1"))
	wantCode(t, err, booking.Declined, "payment_declined")
	if e.state(r.ID) != reservation.Reserved {
		t.Fatalf("state %s", e.state(r.ID))
	}
	if _, err := e.svc.Pay(e.ctx, "1", drv, booking.PayRequest{CarID: "X1", PaymentMethod: "pm_card_visa", IdempotencyKey: "k2"}); err != nil {
		t.Fatal(err)
	}
}

// The reservation waiting for the authentication is held past its payment
// hold, but only until payment.action_timeout; then the payment is
// cancelled at the provider and the reservation expires as usual.
func TestSCAActionTimeout(t *testing.T) {
	e := newEnv(t)
	e.cfg.ActionTimeout = 20 * time.Minute // longer than the 15 min hold
	e.svc = booking.New(e.st, e.pay, stubTickets{}, e.clk, e.cfg, nil, nil)
	r := e.reserve("1", win(1, 3))
	got, err := e.svc.Pay(e.ctx, "1", booking.Caller{Token: r.Token}, scaRequest("k1"))
	if err != nil || got.Action == nil {
		t.Fatalf("%+v, %v", got, err)
	}
	e.clk.Advance(e.cfg.PaymentHold + time.Minute)
	if exp, _, err := e.svc.Sweep(e.ctx); err != nil || exp != 0 {
		t.Fatalf("expired %d, %v while the cardholder may still authenticate", exp, err)
	}
	if n, err := e.svc.Reconcile(e.ctx); err != nil || n != 0 || e.attempts(r.ID)[0].Outcome != store.AttemptRequiresAction {
		t.Fatalf("reconciled %d, %v before the action timeout", n, err)
	}
	e.clk.Set(t0.Add(e.cfg.ActionTimeout))
	if n, err := e.svc.Reconcile(e.ctx); err != nil || n != 1 {
		t.Fatalf("reconciled %d, %v at the action timeout", n, err)
	}
	if atts := e.attempts(r.ID); atts[0].Outcome != store.AttemptFailed {
		t.Fatalf("attempt %+v, want failed (cancelled)", atts[0])
	}
	if _, err := e.pay.Lookup(e.ctx, got.Action.PaymentID); err == nil {
		t.Fatal("the provider's payment was not cancelled")
	}
	if exp, _, err := e.svc.Sweep(e.ctx); err != nil || exp != 1 {
		t.Fatalf("expired %d, %v after the action timeout", exp, err)
	}
	if len(e.refunds(r.ID)) != 0 || e.pay.Charges() != 0 {
		t.Fatal("money moved for a cancelled authentication")
	}
}

// The cardholder authenticated but the answer never reached centrald (no
// webhook, no repeat): at the action timeout the payment cannot be
// cancelled any more, so it is found paid; the reservation, expired by
// then, is refunded in full.
func TestSCACompletedButUnheardIsRefundedAfterExpiry(t *testing.T) {
	e := newEnv(t)
	r := e.reserve("1", win(1, 3))
	got, err := e.svc.Pay(e.ctx, "1", booking.Caller{Token: r.Token}, scaRequest("k1"))
	if err != nil || got.Action == nil {
		t.Fatalf("%+v, %v", got, err)
	}
	e.pay.Complete(e.ctx, got.Action.PaymentID, true)
	e.clk.Advance(e.cfg.ActionTimeout)
	if exp, _, err := e.svc.Sweep(e.ctx); err != nil || exp != 1 {
		t.Fatalf("expired %d, %v", exp, err)
	}
	if _, err := e.svc.Reconcile(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.wantRefundedInFull(r.ID, booking.ReasonExpired)
}

// A success event that overtakes the recording of its own attempt (the
// payment request is still being answered) is refused as "not yet", so
// the provider delivers it again, and nothing is kept of it meanwhile:
// the redelivery applies it.
func TestPaymentEventBeforeItsAttemptIsRecorded(t *testing.T) {
	e := newEnv(t)
	r := e.reserve("1", win(1, 3))
	err := e.st.Write(e.ctx, func(tx store.Tx) error {
		cur, _ := tx.Get(r.ID)
		cur.PaymentAttempts, cur.PaymentStartedAt = 1, t0
		if err := tx.Update(cur); err != nil {
			return err
		}
		return tx.PutAttempt(store.PaymentAttempt{ReservationID: r.ID, Number: 1, ProviderKey: "parkgate-" + r.ID + "-1",
			Outcome: store.AttemptPending, Amount: cur.Amount, Currency: "eur", CarID: "X1", PaymentMethod: fakepay.AuthenticationRequired, StartedAt: t0})
	})
	if err != nil {
		t.Fatal(err)
	}
	ev := booking.PaymentEvent{ID: "evt_early", Type: booking.EventPaymentSucceeded, PaymentRef: "pi_live_1", ReservationID: r.ID}
	_, err = e.svc.ApplyPaymentEvent(e.ctx, ev)
	wantCode(t, err, booking.Unavailable, "not_recorded_yet")
	// The attempt is recorded with its payment id; the redelivery applies.
	err = e.st.Write(e.ctx, func(tx store.Tx) error {
		atts, _ := tx.Attempts(r.ID)
		a := atts[0]
		a.Outcome, a.ProviderRef = store.AttemptRequiresAction, "pi_live_1"
		return tx.PutAttempt(a)
	})
	if err != nil {
		t.Fatal(err)
	}
	if dup, err := e.svc.ApplyPaymentEvent(e.ctx, ev); err != nil || dup {
		t.Fatalf("redelivery: duplicate %v, %v", dup, err)
	}
	if got := e.get(r.ID); got.State != reservation.Paid || got.PaymentRef != "pi_live_1" || !got.PaymentStartedAt.IsZero() {
		t.Fatalf("after the redelivery: %+v", got)
	}
	// An event about a payment of no reservation here is acknowledged
	// and ignored.
	if dup, err := e.svc.ApplyPaymentEvent(e.ctx, booking.PaymentEvent{ID: "evt_other", Type: booking.EventPaymentSucceeded, PaymentRef: "pi_elsewhere"}); err != nil || dup {
		t.Fatalf("foreign event: %v, %v", dup, err)
	}
}

// centrald died after asking for a charge that then waited for 3-D
// Secure: the reconciler's repeat finds it waiting, and the reservation
// stays held for the cardholder (not expired at the plain payment hold).
func TestReconciledChargeAwaitingActionKeepsTheHold(t *testing.T) {
	e := newEnv(t)
	e.cfg.ActionTimeout = 20 * time.Minute
	e.svc = booking.New(e.st, e.pay, stubTickets{}, e.clk, e.cfg, nil, nil)
	r := e.reserve("1", win(1, 3))
	err := e.st.Write(e.ctx, func(tx store.Tx) error {
		cur, _ := tx.Get(r.ID)
		cur.PaymentAttempts, cur.PaymentStartedAt = 1, t0
		if err := tx.Update(cur); err != nil {
			return err
		}
		return tx.PutAttempt(store.PaymentAttempt{ReservationID: r.ID, Number: 1, ProviderKey: "parkgate-" + r.ID + "-1",
			Outcome: store.AttemptPending, Amount: cur.Amount, Currency: "eur", CarID: "X1", PaymentMethod: fakepay.AuthenticationRequired, StartedAt: t0})
	})
	if err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(e.cfg.PaymentTimeout)
	if _, err := e.svc.Reconcile(e.ctx); err != nil {
		t.Fatal(err)
	}
	if atts := e.attempts(r.ID); atts[0].Outcome != store.AttemptRequiresAction {
		t.Fatalf("attempt %+v", atts[0])
	}
	e.clk.Set(t0.Add(e.cfg.PaymentHold + time.Minute))
	if exp, _, err := e.svc.Sweep(e.ctx); err != nil || exp != 0 {
		t.Fatalf("expired %d, %v while the cardholder may still authenticate", exp, err)
	}
}

// lookupDown fails every lookup: the provider cannot be asked.
type lookupDown struct{ *fakepay.Provider }

func (lookupDown) Lookup(ctx context.Context, ref string) (payment.Receipt, error) {
	return payment.Receipt{}, payment.ErrUnavailable
}

// The repeated request cannot reach the provider: 503, and the payment
// is still waiting for the cardholder (not an unknown charge to re-drive),
// so it completes when the provider answers again.
func TestSCARepeatWhileProviderDown(t *testing.T) {
	e := newEnv(t)
	r := e.reserve("1", win(1, 3))
	drv := booking.Caller{Token: r.Token}
	got, err := e.svc.Pay(e.ctx, "1", drv, scaRequest("k1"))
	if err != nil || got.Action == nil {
		t.Fatalf("%+v, %v", got, err)
	}
	down := booking.New(e.st, lookupDown{e.pay}, stubTickets{}, e.clk, e.cfg, nil, nil)
	_, err = down.Pay(e.ctx, "1", drv, scaRequest("k1"))
	wantCode(t, err, booking.Unavailable, "payment_unavailable")
	if atts := e.attempts(r.ID); atts[0].Outcome != store.AttemptRequiresAction {
		t.Fatalf("attempt %+v after the provider was down", atts[0])
	}
	e.pay.Complete(e.ctx, got.Action.PaymentID, true)
	if done, err := e.svc.Pay(e.ctx, "1", drv, scaRequest("k1")); err != nil || done.Ticket == "" {
		t.Fatalf("%+v, %v", done, err)
	}
}
