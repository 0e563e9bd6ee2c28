package booking_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/booking"
	"github.com/parkgate/parkgate/central/payment"
	"github.com/parkgate/parkgate/central/payment/fakepay"
	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/central/store/pgstore"
	"github.com/parkgate/parkgate/central/store/pgstore/pgtest"
	"github.com/parkgate/parkgate/clock/clocktest"
)

// shortTimeout gives e a payment timeout that a lost answer (the fake's
// pm_card_timeout) costs the test only briefly.
func (e *env) shortTimeout() {
	e.cfg.PaymentTimeout = 50 * time.Millisecond
	e.svc = booking.New(e.st, e.pay, stubTickets{}, e.clk, e.cfg, nil, nil)
}

func (e *env) attempts(id string) []store.PaymentAttempt {
	e.t.Helper()
	atts, err := e.st.PaymentAttempts(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return atts
}

// wantRefundedInFull checks that the one charge of reservation id was
// refunded in full for reason, that the refund settles, and that the
// provider keeps nothing.
func (e *env) wantRefundedInFull(id, reason string) {
	e.t.Helper()
	atts := e.attempts(id)
	if len(atts) != 1 || atts[0].Outcome != store.AttemptSucceeded || atts[0].ProviderRef == "" {
		e.t.Fatalf("attempts %+v, want one reconciled as succeeded", atts)
	}
	rs := e.refunds(id)
	if len(rs) != 1 || rs[0].Amount != atts[0].Amount || rs[0].Reason != reason || rs[0].ChargeRef != atts[0].ProviderRef {
		e.t.Fatalf("refunds %+v, want one of %d for %s", rs, atts[0].Amount, reason)
	}
	if _, err := e.svc.SettleRefunds(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	if rs := e.refunds(id); rs[0].Status != store.RefundSucceeded || rs[0].ProviderRef == "" {
		e.t.Fatalf("refund not settled: %+v", rs)
	}
	if got := e.pay.Refunded(atts[0].ProviderRef); got != atts[0].Amount {
		e.t.Fatalf("the provider refunded %d of %d", got, atts[0].Amount)
	}
}

// A charge whose answer was lost, then a cancellation: the reconciler finds
// the charge and refunds it in full.
func TestLostAnswerThenCancelIsRefunded(t *testing.T) {
	e := newEnv(t)
	e.shortTimeout()
	r := e.reserve("1", win(1, 3))
	drv := booking.Caller{Token: r.Token}
	_, err := e.svc.Pay(e.ctx, "1", drv, booking.PayRequest{CarID: "X1", PaymentMethod: fakepay.Timeout})
	wantCode(t, err, booking.Unavailable, "payment_unavailable")
	if atts := e.attempts(r.ID); len(atts) != 1 || atts[0].Outcome != store.AttemptUnknown {
		t.Fatalf("attempts %+v, want one unknown", atts)
	}
	if _, err := e.svc.Cancel(e.ctx, r.ID, drv); err != nil {
		t.Fatal(err)
	}
	if n, err := e.svc.Reconcile(e.ctx); err != nil || n != 0 {
		t.Fatalf("reconciled %d, %v before the payment timeout passed", n, err)
	}
	e.clk.Advance(e.cfg.PaymentTimeout)
	if n, err := e.svc.Reconcile(e.ctx); err != nil || n != 1 {
		t.Fatalf("reconciled %d, %v", n, err)
	}
	if e.state(r.ID) != reservation.Cancelled {
		t.Fatalf("state %s", e.state(r.ID))
	}
	e.wantRefundedInFull(r.ID, booking.ReasonCancelled)
	// A second round finds nothing and changes nothing.
	if n, err := e.svc.Reconcile(e.ctx); err != nil || n != 0 || len(e.refunds(r.ID)) != 1 || e.pay.Charges() != 1 {
		t.Fatalf("second round: %d, %v, refunds %d, charges %d", n, err, len(e.refunds(r.ID)), e.pay.Charges())
	}
}

// An unpaid reservation whose charge answer was lost expires; the charge
// is found and refunded.
func TestLostAnswerThenExpiryIsRefunded(t *testing.T) {
	e := newEnv(t)
	e.shortTimeout()
	r := e.reserve("1", win(1, 3))
	_, err := e.svc.Pay(e.ctx, "1", booking.Caller{Token: r.Token}, booking.PayRequest{CarID: "X1", PaymentMethod: fakepay.Timeout})
	wantCode(t, err, booking.Unavailable, "payment_unavailable")
	e.clk.Advance(e.cfg.PaymentHold)
	if exp, _, err := e.svc.Sweep(e.ctx); err != nil || exp != 1 {
		t.Fatalf("swept %d, %v", exp, err)
	}
	if _, err := e.svc.Reconcile(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.wantRefundedInFull(r.ID, booking.ReasonExpired)
}

// A lost answer on a reservation still waiting for payment: the
// reconciler pays it, with the plate of the attempt, and nobody has to
// pay again.
func TestLostAnswerOfLiveReservationPaysIt(t *testing.T) {
	e := newEnv(t)
	e.shortTimeout()
	r := e.reserve("1", win(1, 3))
	_, err := e.svc.Pay(e.ctx, "1", booking.Caller{Token: r.Token}, booking.PayRequest{CarID: "X1", PaymentMethod: fakepay.Timeout})
	wantCode(t, err, booking.Unavailable, "payment_unavailable")
	e.clk.Advance(e.cfg.PaymentTimeout)
	if n, err := e.svc.Reconcile(e.ctx); err != nil || n != 1 {
		t.Fatalf("reconciled %d, %v", n, err)
	}
	got, err := e.st.Get(e.ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != reservation.Paid || got.CarID != "X1" || got.PaymentRef == "" || len(e.refunds(r.ID)) != 0 || e.pay.Charges() != 1 {
		t.Fatalf("reservation %+v, refunds %+v, charges %d", got, e.refunds(r.ID), e.pay.Charges())
	}
	// The driver's app fetches its ticket as for any paid reservation.
	if _, err := e.svc.Ticket(e.ctx, "1", booking.Caller{Token: r.Token}); err != nil {
		t.Fatal(err)
	}
}

// A crash between claiming an attempt and charging: the reconciler
// re-drives the request, and a decline is recorded as one.
func TestReconcileRecordsADecline(t *testing.T) {
	e := newEnv(t)
	r := e.reserve("1", win(1, 3))
	err := e.st.Write(e.ctx, func(tx store.Tx) error {
		cur, _ := tx.Get(r.ID)
		cur.PaymentAttempts, cur.PaymentStartedAt = 1, t0
		if err := tx.Update(cur); err != nil {
			return err
		}
		return tx.PutAttempt(store.PaymentAttempt{ReservationID: r.ID, Number: 1, ProviderKey: "parkgate-" + r.ID + "-1",
			Outcome: store.AttemptPending, Amount: cur.Amount, Currency: "eur", CarID: "X1",
			PaymentMethod: "pm_card_chargeDeclined", StartedAt: t0})
	})
	if err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(e.cfg.PaymentTimeout)
	if n, err := e.svc.Reconcile(e.ctx); err != nil || n != 1 {
		t.Fatalf("reconciled %d, %v", n, err)
	}
	if atts := e.attempts(r.ID); atts[0].Outcome != store.AttemptDeclined || e.state(r.ID) != reservation.Reserved {
		t.Fatalf("attempts %+v, state %s", atts, e.state(r.ID))
	}
	// No longer in flight: the driver may pay with another card at once.
	if _, err := e.svc.Pay(e.ctx, "1", booking.Caller{Token: r.Token}, booking.PayRequest{CarID: "X1", PaymentMethod: "pm_card_visa"}); err != nil {
		t.Fatal(err)
	}
}

// heldCharges holds every charge until release is closed, so that a test
// can act while a payment is in flight.
type heldCharges struct {
	payment.Provider
	started chan struct{}
	release chan struct{}
}

func (h heldCharges) Charge(ctx context.Context, c payment.Charge) (payment.Receipt, error) {
	h.started <- struct{}{}
	<-h.release
	return h.Provider.Charge(ctx, c)
}

// A reservation cancelled while its payment is in flight: the charge that
// then succeeds is refunded in full, not kept for an operator.
func TestCancelWhilePaymentInFlightIsRefunded(t *testing.T) {
	e := newEnv(t)
	held := heldCharges{Provider: e.pay, started: make(chan struct{}, 1), release: make(chan struct{})}
	e.svc = booking.New(e.st, held, stubTickets{}, e.clk, e.cfg, nil, nil)
	r := e.reserve("1", win(1, 3))
	drv := booking.Caller{Token: r.Token}
	done := make(chan error, 1)
	go func() {
		_, err := e.svc.Pay(e.ctx, "1", drv, booking.PayRequest{CarID: "X1", PaymentMethod: "pm_card_visa"})
		done <- err
	}()
	<-held.started
	if _, err := e.svc.Cancel(e.ctx, r.ID, drv); err != nil {
		t.Fatal(err)
	}
	close(held.release)
	wantCode(t, <-done, booking.Conflict, "wrong_state")
	e.wantRefundedInFull(r.ID, booking.ReasonCancelled)
}

// Every instance reconciles: two instances on one PostgreSQL reconciling
// the same lost answers at the same moment refund each charge exactly once.
func TestReconcileOnTwoInstancesActsOnce(t *testing.T) {
	dsn, _ := pgtest.Schema(t)
	ctx := context.Background()
	open := func() store.Store {
		s, err := pgstore.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	stA, stB := open(), open()
	const n = 8
	spots := make([]string, n)
	for i := range spots {
		spots[i] = strconv.Itoa(i + 1)
	}
	if err := stA.SetSpots(ctx, spots, t0); err != nil {
		t.Fatal(err)
	}
	clk := clocktest.New(t0)
	cfg := booking.DefaultConfig()
	cfg.PaymentTimeout = 50 * time.Millisecond
	pay := &fakepay.Provider{}
	a := booking.New(stA, pay, stubTickets{}, clk, cfg, nil, nil)
	b := booking.New(stB, pay, stubTickets{}, clk, cfg, nil, nil)
	var ids []string
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range n {
		r, err := a.Reserve(ctx, spots[i], win(1, 3))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
		wg.Go(func() {
			_, err := b.Pay(ctx, spots[i], booking.Caller{Token: r.Token}, booking.PayRequest{CarID: "X1", PaymentMethod: fakepay.Timeout})
			wantCode(t, err, booking.Unavailable, "payment_unavailable")
			if _, err := a.Cancel(ctx, r.ID, booking.Caller{Token: r.Token}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	clk.Advance(cfg.PaymentTimeout)
	settled := 0
	for _, svc := range []*booking.Service{a, b, a, b} {
		wg.Go(func() {
			k, err := svc.Reconcile(ctx)
			if err != nil {
				t.Errorf("Reconcile: %v", err)
			}
			mu.Lock()
			settled += k
			mu.Unlock()
		})
	}
	wg.Wait()
	if settled != n {
		t.Errorf("reconciled %d attempts in all, want %d", settled, n)
	}
	for _, svc := range []*booking.Service{a, b} {
		if _, err := svc.SettleRefunds(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		atts, err := stB.PaymentAttempts(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := stA.Refunds(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(atts) != 1 || atts[0].Outcome != store.AttemptSucceeded || len(rs) != 1 || rs[0].Status != store.RefundSucceeded ||
			pay.Refunded(atts[0].ProviderRef) != atts[0].Amount {
			t.Errorf("%s: attempts %+v, refunds %+v, want one charge refunded once", id, atts, rs)
		}
	}
	if pay.Charges() != n {
		t.Errorf("%d charges, want %d", pay.Charges(), n)
	}
}
