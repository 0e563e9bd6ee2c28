package booking_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/booking"
	"github.com/parkgate/parkgate/central/payment"
	"github.com/parkgate/parkgate/central/payment/fakepay"
	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/central/store/sqlitestore"
	"github.com/parkgate/parkgate/clock/clocktest"
)

// t0 is the tests' "now": 2026-11-26 10:00 UTC.
var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

type env struct {
	svc   *booking.Service
	st    store.Store
	clk   *clocktest.Clock
	pay   *fakepay.Provider
	ctx   context.Context
	cfg   booking.Config
	t     *testing.T
	spots []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := clocktest.New(t0)
	spots := []string{"1", "2", "3"}
	if err := st.SetSpots(ctx, spots, t0); err != nil {
		t.Fatal(err)
	}
	cfg := booking.DefaultConfig()
	pay := &fakepay.Provider{}
	return &env{svc: booking.New(st, pay, stubTickets{}, clk, cfg, nil, nil), st: st, clk: clk, pay: pay, ctx: ctx, cfg: cfg, t: t, spots: spots}
}

type stubTickets struct{}

func (stubTickets) Issue(r reservation.Reservation) (string, error) { return "T:" + r.ID, nil }

func win(fromH, untilH float64) reservation.Window {
	return reservation.Window{From: t0.Add(time.Duration(fromH * float64(time.Hour))), Until: t0.Add(time.Duration(untilH * float64(time.Hour)))}
}

func (e *env) reserve(spot string, w reservation.Window) booking.Issued {
	e.t.Helper()
	r, err := e.svc.Reserve(e.ctx, spot, w)
	if err != nil {
		e.t.Fatalf("reserve %s %v: %v", spot, w, err)
	}
	return r
}

func (e *env) paid(spot string, w reservation.Window) booking.Issued {
	e.t.Helper()
	r := e.reserve(spot, w)
	p, err := e.svc.Pay(e.ctx, spot, booking.Caller{Token: r.Token}, booking.PayRequest{CarID: "b-xy 123", PaymentMethod: "pm_card_visa"})
	if err != nil {
		e.t.Fatalf("pay: %v", err)
	}
	p.Token = r.Token
	return p
}

func wantCode(t *testing.T, err error, kind booking.Kind, code string) {
	t.Helper()
	e, ok := booking.AsError(err)
	if !ok || e.Kind != kind || e.Code != code {
		t.Fatalf("err = %#v (%v), want kind %d code %s", e, err, kind, code)
	}
}

func (e *env) state(id string) reservation.State {
	e.t.Helper()
	r, err := e.st.Get(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return r.State
}

func (e *env) status(spot string) string {
	e.t.Helper()
	v, err := e.svc.Spot(e.ctx, spot)
	if err != nil {
		e.t.Fatal(err)
	}
	return v.Status
}

func TestReserveWindows(t *testing.T) {
	e := newEnv(t)
	r := e.reserve("1", win(1, 3))
	if r.State != reservation.Reserved || r.Token == "" || r.Amount != 500 || r.Currency != "eur" || !r.CreatedAt.Equal(t0) {
		t.Fatalf("reservation %+v", r)
	}
	// The token is returned, never stored: only its hash.
	got, _ := e.st.Get(e.ctx, r.ID)
	if string(got.TokenHash) == r.Token || len(got.TokenHash) != 32 {
		t.Fatal("token stored in clear")
	}
	_, err := e.svc.Reserve(e.ctx, "1", win(2, 4))
	wantCode(t, err, booking.Conflict, "overlap")
	e.reserve("1", win(3, 4))   // adjacent after
	e.reserve("1", win(0.5, 1)) // adjacent before
	e.reserve("2", win(1, 3))   // another spot

	for _, tc := range []struct {
		w    reservation.Window
		kind booking.Kind
		code string
	}{
		{win(3, 2), booking.Unprocessable, "invalid_window"},
		{win(2, 2), booking.Unprocessable, "invalid_window"},
		{win(-0.1, 1), booking.Unprocessable, "window_in_past"},
		{win(10, 10+24*8), booking.Unprocessable, "window_too_long"},
		{win(24*400, 24*400+1), booking.Unprocessable, "window_too_far"},
		{reservation.Window{Until: t0}, booking.Invalid, "missing_field"},
	} {
		_, err := e.svc.Reserve(e.ctx, "3", tc.w)
		wantCode(t, err, tc.kind, tc.code)
	}
	// "From now" requests may start a little in the past.
	e.reserve("3", win(-4.0/60, 1))
	_, err = e.svc.Reserve(e.ctx, "99", win(1, 2))
	wantCode(t, err, booking.NotFound, "unknown_spot")
	_, err = e.svc.Reserve(e.ctx, "../etc", win(1, 2))
	wantCode(t, err, booking.NotFound, "unknown_spot")
}

func TestPriceIsPerStartedHour(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		w    reservation.Window
		want int64
	}{{win(1, 2), 250}, {win(1, 2.01), 500}, {win(1, 1.25), 250}, {win(1, 25), 24 * 250}} {
		if got := e.svc.Price(tc.w); got != tc.want {
			t.Errorf("price %v = %d, want %d", tc.w.Duration(), got, tc.want)
		}
	}
}

func TestPayFlow(t *testing.T) {
	e := newEnv(t)
	r := e.reserve("1", win(1, 2))
	drv := booking.Caller{Token: r.Token}

	_, err := e.svc.Pay(e.ctx, "1", booking.Caller{Token: "nope"}, booking.PayRequest{CarID: "X1", PaymentMethod: "pm_card_visa"})
	wantCode(t, err, booking.Unauthorized, "invalid_token")
	_, err = e.svc.Pay(e.ctx, "1", booking.Caller{}, booking.PayRequest{CarID: "X1", PaymentMethod: "pm_card_visa"})
	wantCode(t, err, booking.Unauthorized, "missing_token")
	_, err = e.svc.Pay(e.ctx, "2", drv, booking.PayRequest{CarID: "X1", PaymentMethod: "pm_card_visa"})
	wantCode(t, err, booking.Forbidden, "wrong_spot")
	_, err = e.svc.Pay(e.ctx, "1", booking.Caller{Operator: true}, booking.PayRequest{CarID: "X1", PaymentMethod: "pm_card_visa"})
	wantCode(t, err, booking.Forbidden, "driver_only")
	_, err = e.svc.Pay(e.ctx, "1", drv, booking.PayRequest{CarID: "", PaymentMethod: "pm_card_visa"})
	wantCode(t, err, booking.Invalid, "missing_field")

	// Declined: 402, unchanged, and the driver may retry.
	_, err = e.svc.Pay(e.ctx, "1", drv, booking.PayRequest{CarID: "X1", PaymentMethod: "pm_card_chargeDeclined"})
	wantCode(t, err, booking.Declined, "payment_declined")
	if e.state(r.ID) != reservation.Reserved {
		t.Fatal("decline changed the state")
	}
	p, err := e.svc.Pay(e.ctx, "1", drv, booking.PayRequest{CarID: "k-lm 42", PaymentMethod: "pm_card_visa"})
	if err != nil {
		t.Fatal(err)
	}
	if p.State != reservation.Paid || !p.PaidAt.Equal(t0) || p.CarID != "K-LM 42" || p.Ticket != "T:"+r.ID {
		t.Fatalf("paid %+v", p)
	}
	_, err = e.svc.Pay(e.ctx, "1", drv, booking.PayRequest{CarID: "X1", PaymentMethod: "pm_card_visa"})
	wantCode(t, err, booking.Conflict, "wrong_state")
	if e.pay.Charges() != 1 {
		t.Fatalf("charges = %d", e.pay.Charges())
	}
	atts, _ := e.st.PaymentAttempts(e.ctx, r.ID)
	if len(atts) != 2 || atts[0].Outcome != store.AttemptDeclined || atts[1].Outcome != store.AttemptSucceeded || atts[1].ProviderRef == "" {
		t.Fatalf("attempts %+v", atts)
	}
}

func TestPayIdempotencyKeyReplays(t *testing.T) {
	e := newEnv(t)
	r := e.reserve("1", win(1, 2))
	drv := booking.Caller{Token: r.Token}
	req := booking.PayRequest{CarID: "X1", PaymentMethod: "pm_card_visa", IdempotencyKey: "k1", RequestHash: []byte("request-1")}
	a, err := e.svc.Pay(e.ctx, "1", drv, req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.svc.Pay(e.ctx, "1", drv, req)
	if err != nil {
		t.Fatalf("retry with the same key: %v", err)
	}
	if a.PaidAt != b.PaidAt || a.Ticket != b.Ticket || e.pay.Charges() != 1 {
		t.Fatalf("replay differs or charged twice: %+v %+v charges=%d", a, b, e.pay.Charges())
	}
	// The key with another request (same plate, even) is refused after
	// the first one succeeded, not answered with its outcome.
	other := req
	other.RequestHash = []byte("request-2")
	_, err = e.svc.Pay(e.ctx, "1", drv, other)
	wantCode(t, err, booking.Unprocessable, "idempotency_key_reused")

	// A declined request replays its decline, to the same request only.
	r2 := e.reserve("2", win(1, 2))
	d := booking.PayRequest{CarID: "X1", PaymentMethod: "pm_card_chargeDeclined", IdempotencyKey: "k2", RequestHash: []byte("declined")}
	_, err = e.svc.Pay(e.ctx, "2", booking.Caller{Token: r2.Token}, d)
	wantCode(t, err, booking.Declined, "payment_declined")
	_, err = e.svc.Pay(e.ctx, "2", booking.Caller{Token: r2.Token}, d)
	wantCode(t, err, booking.Declined, "payment_declined")
	d.PaymentMethod, d.RequestHash = "pm_card_visa", []byte("visa")
	_, err = e.svc.Pay(e.ctx, "2", booking.Caller{Token: r2.Token}, d)
	wantCode(t, err, booking.Unprocessable, "idempotency_key_reused")
	if e.pay.Charges() != 1 {
		t.Fatalf("%d charges", e.pay.Charges())
	}
}

// An attempt recorded before request hashes were kept has none: its key
// is then bound to its plate, as it was.
func TestPayIdempotencyKeyOfAnOldAttempt(t *testing.T) {
	e := newEnv(t)
	r := e.reserve("1", win(1, 2))
	key := sha256.Sum256([]byte("old-key"))
	err := e.st.Write(e.ctx, func(tx store.Tx) error {
		return tx.PutAttempt(store.PaymentAttempt{ReservationID: r.ID, Number: 1, KeyHash: key[:], ProviderKey: "p-1",
			Outcome: store.AttemptDeclined, Message: "declined", Amount: 250, Currency: "eur", CarID: "X1", StartedAt: t0, FinishedAt: t0})
	})
	if err != nil {
		t.Fatal(err)
	}
	drv := booking.Caller{Token: r.Token}
	req := booking.PayRequest{CarID: "X2", PaymentMethod: "pm_card_visa", IdempotencyKey: "old-key", RequestHash: []byte("new")}
	_, err = e.svc.Pay(e.ctx, "1", drv, req)
	wantCode(t, err, booking.Unprocessable, "idempotency_key_reused")
	req.CarID = "x1"
	_, err = e.svc.Pay(e.ctx, "1", drv, req)
	wantCode(t, err, booking.Declined, "payment_declined")
}

func TestPayProviderTimeoutThenRetryChargesOnce(t *testing.T) {
	e := newEnv(t)
	e.cfg.PaymentTimeout = 50 * time.Millisecond
	e.svc = booking.New(e.st, e.pay, nil, e.clk, e.cfg, nil, nil)
	r := e.reserve("1", win(1, 2))
	drv := booking.Caller{Token: r.Token}
	_, err := e.svc.Pay(e.ctx, "1", drv, booking.PayRequest{CarID: "X1", PaymentMethod: fakepay.Timeout})
	wantCode(t, err, booking.Unavailable, "payment_unavailable")
	if e.state(r.ID) != reservation.Reserved {
		t.Fatal("timeout changed the state")
	}
	// The provider did charge: the retry re-drives the same attempt and
	// finds that charge instead of making a second one.
	if _, err := e.svc.Pay(e.ctx, "1", drv, booking.PayRequest{CarID: "X1", PaymentMethod: "pm_card_visa"}); err != nil {
		t.Fatal(err)
	}
	atts, _ := e.st.PaymentAttempts(e.ctx, r.ID)
	if len(atts) != 1 || atts[0].Outcome != store.AttemptSucceeded || e.pay.Charges() != 1 {
		t.Fatalf("the retry should re-drive the unsettled attempt: %+v, charges %d", atts, e.pay.Charges())
	}
}

// A crash between the provider's charge and recording it leaves a pending
// attempt; the retry re-drives it with the same provider key, and the
// provider (which remembers keys, like Stripe) reports the first charge.
func TestPayAfterCrashReconciles(t *testing.T) {
	e := newEnv(t)
	r := e.reserve("1", win(1, 2))
	// Simulate step 1 and 2 of a payment whose process then died.
	var key string
	err := e.st.Write(e.ctx, func(tx store.Tx) error {
		cur, _ := tx.Get(r.ID)
		cur.PaymentAttempts = 1
		cur.PaymentStartedAt = t0
		key = "parkgate-" + r.ID + "-1"
		if err := tx.Update(cur); err != nil {
			return err
		}
		return tx.PutAttempt(store.PaymentAttempt{ReservationID: r.ID, Number: 1, ProviderKey: key, Outcome: store.AttemptPending, Amount: cur.Amount, Currency: "eur", CarID: "X1", StartedAt: t0})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.pay.Charge(e.ctx, paymentCharge(key)); err != nil {
		t.Fatal(err)
	}
	drv := booking.Caller{Token: r.Token}
	_, err = e.svc.Pay(e.ctx, "1", drv, booking.PayRequest{CarID: "X1", PaymentMethod: "pm_card_visa"})
	wantCode(t, err, booking.Conflict, "payment_in_progress")
	e.clk.Advance(time.Minute) // the pending attempt is now stale
	if _, err := e.svc.Pay(e.ctx, "1", drv, booking.PayRequest{CarID: "X1", PaymentMethod: "pm_card_visa"}); err != nil {
		t.Fatal(err)
	}
	if e.pay.Charges() != 1 {
		t.Fatalf("charged %d times", e.pay.Charges())
	}
}

func TestCheckInAndEarlyDeparture(t *testing.T) {
	e := newEnv(t)
	unpaid := e.reserve("2", win(0, 2))
	_, err := e.svc.CheckIn(e.ctx, "2", booking.Caller{Token: unpaid.Token})
	wantCode(t, err, booking.Conflict, "wrong_state")

	p := e.paid("1", win(1, 3))
	drv := booking.Caller{Token: p.Token}
	_, err = e.svc.CheckOut(e.ctx, "1", drv, time.Time{})
	wantCode(t, err, booking.Conflict, "wrong_state")
	_, err = e.svc.CheckIn(e.ctx, "1", drv)
	wantCode(t, err, booking.Conflict, "too_early")
	e.clk.Advance(45 * time.Minute) // 15 minutes early is allowed
	in, err := e.svc.CheckIn(e.ctx, "1", drv)
	if err != nil || in.State != reservation.Taken {
		t.Fatalf("check in: %v %+v", err, in)
	}
	if e.status("1") != booking.StatusTaken {
		t.Fatal("spot not taken")
	}
	_, err = e.svc.CheckIn(e.ctx, "1", drv)
	wantCode(t, err, booking.Conflict, "wrong_state")

	e.clk.Advance(45 * time.Minute) // 10:30 → 11:30, window until 13:00
	_, err = e.svc.CheckOut(e.ctx, "1", drv, e.clk.Now().Add(time.Hour))
	wantCode(t, err, booking.Unprocessable, "leaving_in_future")
	_, err = e.svc.CheckOut(e.ctx, "1", drv, t0)
	wantCode(t, err, booking.Unprocessable, "leaving_before_check_in")
	out, err := e.svc.CheckOut(e.ctx, "1", drv, e.clk.Now().Add(-time.Minute))
	if err != nil || out.State != reservation.Left || !out.LeftAt.Equal(e.clk.Now().Add(-time.Minute)) {
		t.Fatalf("check out: %v %+v", err, out)
	}
	v, _ := e.svc.Spot(e.ctx, "1")
	if v.Status != booking.StatusFree || v.Reservation == nil || v.Reservation.LeftAt.IsZero() {
		t.Fatalf("after leaving early: %+v", v)
	}
	// The rest of the window is reservable at once.
	e.reserve("1", reservation.Window{From: e.clk.Now(), Until: t0.Add(3 * time.Hour)})
	_, err = e.svc.CheckOut(e.ctx, "1", drv, time.Time{})
	wantCode(t, err, booking.Conflict, "wrong_state")
}

func TestSweepExpiresAndReleasesNoShows(t *testing.T) {
	e := newEnv(t)
	unpaid := e.reserve("1", win(1, 2))
	p := e.paid("2", win(0.25, 2))
	exp, ns, err := e.svc.Sweep(e.ctx)
	if err != nil || exp+ns != 0 {
		t.Fatalf("early sweep: %d %d %v", exp, ns, err)
	}
	e.clk.Advance(e.cfg.PaymentHold - time.Second)
	if exp, _, _ := e.svc.Sweep(e.ctx); exp != 0 {
		t.Fatal("expired before the hold")
	}
	e.clk.Advance(time.Second)
	if exp, _, _ := e.svc.Sweep(e.ctx); exp != 1 || e.state(unpaid.ID) != reservation.Expired {
		t.Fatalf("not expired: %v", e.state(unpaid.ID))
	}
	// No-show: reservedFrom 10:15 + 30 min grace = 10:45; now 10:15.
	e.clk.Set(t0.Add(44 * time.Minute))
	if _, ns, _ := e.svc.Sweep(e.ctx); ns != 0 {
		t.Fatal("released before the grace")
	}
	e.clk.Set(t0.Add(45 * time.Minute))
	if _, ns, _ := e.svc.Sweep(e.ctx); ns != 1 || e.state(p.ID) != reservation.NoShow {
		t.Fatalf("no-show not released: %v", e.state(p.ID))
	}
	_, err = e.svc.CheckIn(e.ctx, "2", booking.Caller{Token: p.Token})
	wantCode(t, err, booking.Conflict, "wrong_state")
	// Both are recorded in the change log.
	cs, _ := e.st.Changes(e.ctx, 0, 1000)
	kinds := map[string]int{}
	for _, c := range cs {
		kinds[c.Kind]++
		if c.Kind == store.KindNoShow && c.Actor != "system" {
			t.Fatalf("no-show actor %q", c.Actor)
		}
	}
	if kinds[store.KindExpired] != 1 || kinds[store.KindNoShow] != 1 {
		t.Fatalf("change kinds %v", kinds)
	}
	// Sweeping again changes nothing.
	if exp, ns, _ := e.svc.Sweep(e.ctx); exp+ns != 0 {
		t.Fatal("second sweep did something")
	}
}

func TestSweepSparesPaymentInFlight(t *testing.T) {
	e := newEnv(t)
	r := e.reserve("1", win(1, 2))
	e.clk.Advance(e.cfg.PaymentHold - time.Second)
	err := e.st.Write(e.ctx, func(tx store.Tx) error {
		cur, _ := tx.Get(r.ID)
		cur.PaymentStartedAt = e.clk.Now()
		return tx.Update(cur)
	})
	if err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(2 * time.Second)
	if exp, _, _ := e.svc.Sweep(e.ctx); exp != 0 {
		t.Fatal("expired a reservation whose payment is in flight")
	}
}

func TestSweeperServesOnTimer(t *testing.T) {
	e := newEnv(t)
	r := e.reserve("1", win(1, 2))
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error)
	go func() { done <- (&booking.Sweeper{Service: e.svc, Interval: time.Minute}).Serve(ctx) }()
	waitFor(t, func() bool { return e.clk.Timers() == 1 })
	e.clk.Advance(e.cfg.PaymentHold)
	waitFor(t, func() bool { return e.state(r.ID) == reservation.Expired })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestForceStatus(t *testing.T) {
	e := newEnv(t)
	op := context.Background()
	_, err := e.svc.Force(op, "1", "taken")
	wantCode(t, err, booking.Conflict, "no_reservation")
	_, err = e.svc.Force(op, "1", "gone")
	wantCode(t, err, booking.Invalid, "invalid_status")
	_, err = e.svc.Force(op, "nope", "free")
	wantCode(t, err, booking.NotFound, "unknown_spot")
	if v, err := e.svc.Force(op, "1", "free"); err != nil || v.Status != "free" {
		t.Fatalf("free on free: %v %+v", err, v)
	}

	p := e.paid("1", win(0, 2))
	if v, err := e.svc.Force(op, "1", "taken"); err != nil || v.Status != "taken" {
		t.Fatalf("force taken: %v %+v", err, v)
	}
	if v, err := e.svc.Force(op, "1", "reserved"); err != nil || v.Status != "reserved" || e.state(p.ID) != reservation.Paid {
		t.Fatalf("undo check-in: %v %+v", err, v)
	}
	// Releasing a no-show by hand.
	if v, err := e.svc.Force(op, "1", "free"); err != nil || v.Status != "free" || e.state(p.ID) != reservation.NoShow {
		t.Fatalf("release: %v %+v %v", err, v, e.state(p.ID))
	}
	// A car inside is checked out.
	q := e.paid("2", win(0, 2))
	e.svc.CheckIn(e.ctx, "2", booking.Caller{Token: q.Token})
	if v, err := e.svc.Force(op, "2", "free"); err != nil || v.Status != "free" || e.state(q.ID) != reservation.Left {
		t.Fatalf("force free of taken: %v %+v", err, v)
	}
	// An unpaid hold is cancelled.
	u := e.reserve("3", win(0, 1))
	e.svc.Force(op, "3", "free")
	if e.state(u.ID) != reservation.Cancelled {
		t.Fatal("unpaid not cancelled")
	}
}

func TestPushIsAllOrNothing(t *testing.T) {
	e := newEnv(t)
	e.reserve("2", win(5, 6))
	items := []booking.PushItem{
		{SpotID: "1", Window: win(1, 9), CarID: "fleet-1", Reference: "INV-7"},
		{SpotID: "2", Window: win(1, 9), CarID: "fleet-2"}, // overlaps 5-6
	}
	_, err := e.svc.Push(e.ctx, items)
	wantCode(t, err, booking.Conflict, "overlap")
	if rs, _ := e.st.List(e.ctx, store.Filter{SpotID: "1"}); len(rs) != 0 {
		t.Fatal("first item kept after the second failed")
	}
	// Two items overlapping each other fail too.
	_, err = e.svc.Push(e.ctx, []booking.PushItem{{SpotID: "3", Window: win(1, 3)}, {SpotID: "3", Window: win(2, 4)}})
	wantCode(t, err, booking.Conflict, "overlap")
	_, err = e.svc.Push(e.ctx, []booking.PushItem{{SpotID: "3", Window: win(1, 3), CarID: "bad!plate"}})
	wantCode(t, err, booking.Invalid, "invalid_car_id")

	items[1].Window = win(6, 9)
	out, err := e.svc.Push(e.ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out {
		if o.State != reservation.Paid || o.Source != reservation.SourceOperator || o.Ticket == "" || o.Token == "" {
			t.Fatalf("pushed %+v", o)
		}
	}
	if out[0].CarID != "FLEET-1" || out[0].Reference != "INV-7" {
		t.Fatalf("pushed %+v", out[0])
	}
}

func TestCancel(t *testing.T) {
	e := newEnv(t)
	r := e.reserve("1", win(1, 2))
	other := e.reserve("2", win(1, 2))
	_, err := e.svc.Cancel(e.ctx, r.ID, booking.Caller{Token: other.Token})
	wantCode(t, err, booking.Forbidden, "wrong_reservation")
	if c, err := e.svc.Cancel(e.ctx, r.ID, booking.Caller{Token: r.Token}); err != nil || c.State != reservation.Cancelled {
		t.Fatalf("%v %+v", err, c)
	}
	_, err = e.svc.Cancel(e.ctx, r.ID, booking.Caller{Token: r.Token})
	wantCode(t, err, booking.Conflict, "wrong_state")
	_, err = e.svc.Cancel(e.ctx, "nope", booking.Caller{Operator: true})
	wantCode(t, err, booking.NotFound, "unknown_reservation")
	e.reserve("1", win(1, 2)) // the window is free again
}

func TestSpotStatusAsOfNow(t *testing.T) {
	e := newEnv(t)
	e.reserve("1", win(2, 3))
	v, _ := e.svc.Spot(e.ctx, "1")
	if v.Status != "free" || v.Reservation == nil || !v.Reservation.From.Equal(win(2, 3).From) {
		t.Fatalf("next reservation not shown: %+v", v)
	}
	e.clk.Advance(2 * time.Hour)
	if e.status("1") != "reserved" {
		t.Fatal("window covers now but not reserved")
	}
	e.clk.Advance(time.Hour)
	if e.status("1") != "free" {
		t.Fatal("window over but not free")
	}
	all, err := e.svc.Spots(e.ctx)
	if err != nil || len(all) != 3 || all[0].ID != "1" || all[2].ID != "3" {
		t.Fatalf("%v %+v", err, all)
	}
}

func TestErrorsAreTyped(t *testing.T) {
	var e error = &booking.Error{Kind: booking.Conflict, Code: "x", Message: "m", Err: store.ErrOverlap}
	if !errors.Is(e, store.ErrOverlap) {
		t.Fatal("cause lost")
	}
}

func (e *env) refunds(id string) []store.Refund {
	e.t.Helper()
	rs, err := e.st.Refunds(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return rs
}

func TestRefundPolicy(t *testing.T) {
	e := newEnv(t) // €2.50 per started hour, no-show fee €2.50, refund unused
	// Early departure: 4 h paid (1000), left after 1 h 10 min: 2 whole
	// hours unused → 500 back.
	p := e.paid("1", win(0, 4))
	q := e.paid("2", win(1, 3))
	c := e.paid("3", win(5, 6))
	drv := booking.Caller{Token: p.Token}
	e.svc.CheckIn(e.ctx, "1", drv)
	e.clk.Advance(70 * time.Minute)
	if _, err := e.svc.CheckOut(e.ctx, "1", drv, time.Time{}); err != nil {
		t.Fatal(err)
	}
	rs := e.refunds(p.ID)
	if len(rs) != 1 || rs[0].Amount != 500 || rs[0].Reason != booking.ReasonEarlyDeparture || rs[0].Status != store.RefundPending || rs[0].ChargeRef == "" {
		t.Fatalf("early departure refund %+v", rs)
	}
	if n, err := e.svc.SettleRefunds(e.ctx); err != nil || n != 1 {
		t.Fatalf("settle: %d %v", n, err)
	}
	if got := e.pay.Refunded(rs[0].ChargeRef); got != 500 {
		t.Fatalf("provider refunded %d", got)
	}
	if rs := e.refunds(p.ID); rs[0].Status != store.RefundSucceeded || rs[0].ProviderRef == "" {
		t.Fatalf("settled %+v", rs)
	}
	// Settling again asks nothing more.
	if n, _ := e.svc.SettleRefunds(e.ctx); n != 0 || e.pay.Refunded(rs[0].ChargeRef) != 500 {
		t.Fatal("settled twice")
	}

	// No-show: 2 h paid (500), fee 250 kept, 250 back.
	e.clk.Set(t0.Add(2 * time.Hour))
	e.svc.Sweep(e.ctx)
	if rs := e.refunds(q.ID); len(rs) != 1 || rs[0].Amount != 250 || rs[0].Reason != booking.ReasonNoShow {
		t.Fatalf("no-show refund %+v", rs)
	}

	// Cancelled before the window: all back. Pushed (not paid by card):
	// nothing. Left after the window ended: nothing.
	e.svc.Cancel(e.ctx, c.ID, booking.Caller{Token: c.Token})
	if rs := e.refunds(c.ID); len(rs) != 1 || rs[0].Amount != 250 || rs[0].Reason != booking.ReasonCancelled {
		t.Fatalf("cancel refund %+v", rs)
	}
	pushed, err := e.svc.Push(e.ctx, []booking.PushItem{{SpotID: "3", Window: win(2, 4)}})
	if err != nil {
		t.Fatal(err)
	}
	e.svc.Cancel(e.ctx, pushed[0].ID, booking.Caller{Operator: true})
	if rs := e.refunds(pushed[0].ID); len(rs) != 0 {
		t.Fatalf("refund of a pushed reservation: %+v", rs)
	}
	if n, _ := e.svc.SettleRefunds(e.ctx); n != 2 {
		t.Fatalf("settled %d of 2", n)
	}
}

func TestRefundPolicyOff(t *testing.T) {
	e := newEnv(t)
	e.cfg.RefundUnused, e.cfg.NoShowFee = false, 10000
	e.svc = booking.New(e.st, e.pay, nil, e.clk, e.cfg, nil, nil)
	p := e.paid("1", win(0, 4))
	e.svc.CheckIn(e.ctx, "1", booking.Caller{Token: p.Token})
	e.svc.CheckOut(e.ctx, "1", booking.Caller{Token: p.Token}, time.Time{})
	q := e.paid("2", win(0, 1))
	e.clk.Advance(time.Hour)
	e.svc.Sweep(e.ctx)
	if len(e.refunds(p.ID))+len(e.refunds(q.ID)) != 0 {
		t.Fatal("refunds recorded with the policy off (fee above the price)")
	}
}

// A refund the provider refuses for good is recorded as refused, for an
// operator, and not retried.
func TestRefundRefused(t *testing.T) {
	e := newEnv(t)
	p := e.paid("1", win(0, 4))
	err := e.st.Write(e.ctx, func(tx store.Tx) error {
		return tx.PutRefund(store.Refund{ReservationID: p.ID, Number: 1, Reason: "manual", Amount: 99999, Currency: "eur",
			ChargeRef: p.PaymentRef, ProviderKey: "k", Status: store.RefundPending, CreatedAt: t0})
	})
	if err != nil {
		t.Fatal(err)
	}
	e.svc.SettleRefunds(e.ctx)
	rs := e.refunds(p.ID)
	if rs[0].Status != store.RefundRefused || rs[0].Message == "" || rs[0].Tries != 1 {
		t.Fatalf("refused refund %+v", rs)
	}
	if p, _ := e.st.PendingRefunds(e.ctx, 10); len(p) != 0 {
		t.Fatal("refused refund still pending")
	}
}

// The refunder wakes up when a refund is recorded, without waiting for
// its interval.
func TestRefunderWakesOnNewRefund(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error)
	go func() { done <- (&booking.Refunder{Service: e.svc, Interval: time.Hour}).Serve(ctx) }()
	p := e.paid("1", win(0, 4))
	e.svc.CheckIn(e.ctx, "1", booking.Caller{Token: p.Token})
	e.svc.CheckOut(e.ctx, "1", booking.Caller{Token: p.Token}, time.Time{})
	waitFor(t, func() bool { return e.pay.Refunded(p.PaymentRef) == 1000 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// flakyRefunds fails every refund, after calling before: another instance's
// work, done while this one waits for the provider.
type flakyRefunds struct {
	payment.Provider
	before func()
}

func (f flakyRefunds) Refund(ctx context.Context, r payment.Refund) (payment.Receipt, error) {
	f.before()
	return payment.Receipt{}, errors.New("connection reset by peer")
}

// Two instances settle the same refund at once: one succeeds while the
// other's provider call fails; the success stands (it is not turned back
// to pending, nor retried).
func TestRefundSettledByAnotherInstanceStands(t *testing.T) {
	e := newEnv(t)
	p := e.paid("1", win(0, 4))
	e.svc.CheckIn(e.ctx, "1", booking.Caller{Token: p.Token})
	e.svc.CheckOut(e.ctx, "1", booking.Caller{Token: p.Token}, time.Time{})
	other := booking.New(e.st, flakyRefunds{Provider: e.pay, before: func() {
		if n, err := e.svc.SettleRefunds(e.ctx); n != 1 || err != nil {
			t.Errorf("the first instance settled %d, %v", n, err)
		}
	}}, stubTickets{}, e.clk, e.cfg, nil, nil)
	if n, err := other.SettleRefunds(e.ctx); n != 0 || err != nil {
		t.Fatalf("the second instance: settled %d, %v", n, err)
	}
	rs := e.refunds(p.ID)
	if len(rs) != 1 || rs[0].Status != store.RefundSucceeded || rs[0].Tries != 1 || rs[0].ProviderRef == "" {
		t.Fatalf("refunds %+v, want the first instance's success", rs)
	}
	if e.pay.Refunded(p.PaymentRef) != 1000 {
		t.Fatalf("refunded %d", e.pay.Refunded(p.PaymentRef))
	}
}

// A car that checks in early (within early_arrival) and leaves before its
// window starts used none of it: it gets everything back, as cancelling
// before the start would, also with refund_unused off. (Counting whole
// hours would keep one of the two hours a 1 h 30 min window costs.)
// Leaving at the start itself is an ordinary early departure.
func TestLeavingBeforeTheStartRefundsInFull(t *testing.T) {
	for _, refundUnused := range []bool{true, false} {
		e := newEnv(t)
		e.cfg.RefundUnused = refundUnused
		e.svc = booking.New(e.st, e.pay, stubTickets{}, e.clk, e.cfg, nil, nil)
		w := reservation.Window{From: t0.Add(10 * time.Minute), Until: t0.Add(100 * time.Minute)}
		p := e.paid("1", w) // two started hours: 500
		drv := booking.Caller{Token: p.Token}
		if _, err := e.svc.CheckIn(e.ctx, "1", drv); err != nil {
			t.Fatal(err)
		}
		e.clk.Advance(5 * time.Minute)
		if _, err := e.svc.CheckOut(e.ctx, "1", drv, time.Time{}); err != nil {
			t.Fatal(err)
		}
		rs := e.refunds(p.ID)
		if len(rs) != 1 || rs[0].Amount != 500 || rs[0].Reason != booking.ReasonEarlyDeparture || rs[0].Status != store.RefundPending {
			t.Fatalf("refund_unused %v: left before the start: refunds %+v, want 500 (everything)", refundUnused, rs)
		}
		if n, err := e.svc.SettleRefunds(e.ctx); err != nil || n != 1 || e.pay.Refunded(rs[0].ChargeRef) != 500 {
			t.Fatalf("settle: %d %v, provider refunded %d", n, err, e.pay.Refunded(rs[0].ChargeRef))
		}

		// The same window, left at its start: the one whole hour unused.
		q := e.paid("2", w)
		drv = booking.Caller{Token: q.Token}
		e.svc.CheckIn(e.ctx, "2", drv)
		e.clk.Set(w.From)
		if _, err := e.svc.CheckOut(e.ctx, "2", drv, time.Time{}); err != nil {
			t.Fatal(err)
		}
		want := 0
		if refundUnused {
			want = 1
		}
		if rs := e.refunds(q.ID); len(rs) != want || want == 1 && rs[0].Amount != 250 {
			t.Fatalf("refund_unused %v: left at the start: refunds %+v", refundUnused, rs)
		}
	}
}
