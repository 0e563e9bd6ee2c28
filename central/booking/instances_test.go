package booking_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/booking"
	"github.com/parkgate/parkgate/central/payment/fakepay"
	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/central/store/pgstore"
	"github.com/parkgate/parkgate/central/store/pgstore/pgtest"
	"github.com/parkgate/parkgate/clock/clocktest"
)

// The timers run in every centrald instance: two instances on one
// PostgreSQL sweeping the same due reservations at the same moment expire
// each unpaid one and release each no-show exactly once — one change each,
// and one refund per no-show, not two.
func TestTimersOnTwoInstancesActOnce(t *testing.T) {
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
	const n = 10
	spots := make([]string, 2*n)
	for i := range spots {
		spots[i] = strconv.Itoa(i + 1)
	}
	if err := stA.SetSpots(ctx, spots, t0); err != nil {
		t.Fatal(err)
	}
	clk := clocktest.New(t0)
	cfg := booking.DefaultConfig()
	pay := &fakepay.Provider{}
	a := booking.New(stA, pay, stubTickets{}, clk, cfg, nil, nil)
	b := booking.New(stB, pay, stubTickets{}, clk, cfg, nil, nil)

	var unpaid, paid []string
	for i := range n {
		r, err := a.Reserve(ctx, spots[i], win(1, 4))
		if err != nil {
			t.Fatal(err)
		}
		unpaid = append(unpaid, r.ID)
		r, err = b.Reserve(ctx, spots[n+i], win(1, 4))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Pay(ctx, spots[n+i], booking.Caller{Token: r.Token}, booking.PayRequest{CarID: "b-xy 123", PaymentMethod: "pm_card_visa"}); err != nil {
			t.Fatal(err)
		}
		paid = append(paid, r.ID)
	}
	v0, err := stA.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Past the payment hold and the no-show grace: both instances sweep,
	// three times each, all at once.
	clk.Advance(time.Hour + cfg.NoShowGrace + time.Minute)
	var (
		mu               sync.Mutex
		expired, noShows int
		wg               sync.WaitGroup
	)
	for _, svc := range []*booking.Service{a, b, a, b, a, b} {
		wg.Go(func() {
			e, ns, err := svc.Sweep(ctx)
			if err != nil {
				t.Errorf("Sweep: %v", err)
			}
			mu.Lock()
			expired, noShows = expired+e, noShows+ns
			mu.Unlock()
		})
	}
	wg.Wait()
	if expired != n || noShows != n {
		t.Errorf("sweeps reported %d expired and %d no-shows in all, want %d each", expired, noShows, n)
	}

	changes, err := stB.Changes(ctx, v0, 0)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]map[string]int{}
	for _, c := range changes {
		if kinds[c.Kind] == nil {
			kinds[c.Kind] = map[string]int{}
		}
		kinds[c.Kind][c.ReservationID]++
	}
	check := func(ids []string, state reservation.State, kind string) {
		t.Helper()
		for _, id := range ids {
			r, err := stB.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if r.State != state || kinds[kind][id] != 1 {
				t.Errorf("%s: %s with %d %q changes, want %s with exactly 1", id, r.State, kinds[kind][id], kind, state)
			}
		}
	}
	check(unpaid, reservation.Expired, store.KindExpired)
	check(paid, reservation.NoShow, store.KindNoShow)
	if len(changes) != 2*n {
		t.Errorf("%d changes, want %d", len(changes), 2*n)
	}
	for _, id := range paid {
		rs, err := stA.Refunds(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		// 3 hours paid (750), the no-show fee (250) kept: one refund of 500.
		if len(rs) != 1 || rs[0].Amount != 500 || rs[0].Reason != "no_show" {
			t.Errorf("refunds of no-show %s: %+v, want exactly one of 500", id, rs)
		}
	}
}
