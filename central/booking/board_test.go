package booking

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/payment/fakepay"
	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store/sqlitestore"
	"github.com/parkgate/parkgate/clock/clocktest"
)

// fromStore computes the views straight from the database, the way the
// board's copy must agree with.
func fromStore(t *testing.T, s *Service) []SpotView {
	t.Helper()
	ctx := context.Background()
	ids, err := s.store.Spots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now := s.now()
	out := make([]SpotView, len(ids))
	for i, id := range ids {
		rs, err := s.store.Current(ctx, id, now)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = view(id, rs, now)
	}
	return out
}

// comparable strips what the log's snapshots do not carry (token hash,
// payment internals), which no view shows.
func comparable(vs []SpotView) []SpotView {
	out := make([]SpotView, len(vs))
	for i, v := range vs {
		out[i] = v
		if v.Reservation != nil {
			r := *v.Reservation
			r.TokenHash, r.PaymentAttempts, r.PaymentRef, r.PaymentStartedAt = nil, 0, "", time.Time{}
			out[i].Reservation = &r
		}
	}
	return out
}

// Random operations by two services on one database (as two centrald
// instances would run): after each, both boards show exactly what the
// database says.
func TestBoardFollowsTheDatabase(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	clk := clocktest.New(t0)
	st.SetSpots(ctx, []string{"1", "2", "3", "4"}, t0)
	cfg := DefaultConfig()
	a := New(st, &fakepay.Provider{}, nil, clk, cfg, nil, nil)
	b := New(st, &fakepay.Provider{}, nil, clk, cfg, nil, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	type held struct {
		spot, token string
	}
	var tokens []held
	for step := range 600 {
		svc := a
		if rng.IntN(2) == 0 {
			svc = b
		}
		spot := []string{"1", "2", "3", "4"}[rng.IntN(4)]
		switch op := rng.IntN(10); {
		case op < 3:
			from := clk.Now().Add(time.Duration(rng.IntN(8)-1) * 30 * time.Minute)
			r, err := svc.Reserve(ctx, spot, reservation.Window{From: from, Until: from.Add(time.Duration(1+rng.IntN(4)) * 30 * time.Minute)})
			if err == nil {
				tokens = append(tokens, held{spot, r.Token})
			}
		case op < 5 && len(tokens) > 0:
			h := tokens[rng.IntN(len(tokens))]
			svc.Pay(ctx, h.spot, Caller{Token: h.token}, PayRequest{CarID: "X1", PaymentMethod: "pm_card_visa"})
		case op < 6 && len(tokens) > 0:
			h := tokens[rng.IntN(len(tokens))]
			svc.CheckIn(ctx, h.spot, Caller{Token: h.token})
		case op < 7 && len(tokens) > 0:
			h := tokens[rng.IntN(len(tokens))]
			svc.CheckOut(ctx, h.spot, Caller{Token: h.token}, time.Time{})
		case op < 8:
			svc.Force(ctx, spot, []string{StatusFree, StatusTaken, StatusReserved}[rng.IntN(3)])
		case op < 9:
			clk.Advance(time.Duration(rng.IntN(20)) * time.Minute)
			svc.Sweep(ctx)
		default:
			if step%50 == 0 { // spots come and go
				st.SetSpots(ctx, []string{"1", "2", "3", "4", "5"}[:4+rng.IntN(2)], clk.Now())
			}
		}
		want := comparable(fromStore(t, a))
		for name, s := range map[string]*Service{"a": a, "b": b} {
			got, err := s.Spots(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(comparable(got), want) {
				t.Fatalf("step %d: board %s differs from the database:\n got %+v\nwant %+v", step, name, got, want)
			}
		}
	}
}
