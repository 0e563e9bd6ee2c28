package bench

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/central/store/pgstore"
	"github.com/parkgate/parkgate/central/store/pgstore/pgtest"
	"github.com/parkgate/parkgate/central/store/sqlitestore"
)

// The loader at a small size, on both stores: every reservation is there
// in a state the rules allow, paid ones with their payment, refunds where
// the state owes one, one change each; the future ones are live and in
// the future, the finished ones in the past; and most finished ones are
// due for the retention of personal data.
func TestLoadHistory(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "h.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		checkLoad(t, st, 1)
	})
	t.Run("postgres", func(t *testing.T) {
		dsn, _ := pgtest.Schema(t)
		st, err := pgstore.Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		checkLoad(t, st, 3)
	})
}

// OnlyFuture writes the same upcoming reservations and nothing else.
func TestLoadHistoryOnlyFuture(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "f.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.SetSpots(ctx, []string{"1", "2", "3"}, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, err := LoadHistory(ctx, st, HistoryLoad{Reservations: 1000, Future: 0.02, OnlyFuture: true, Spots: 3, Years: 10,
		Now: time.Now(), Batch: 7})
	if err != nil || got.Reservations != 20 || got.ByState[reservation.Paid] != 20 {
		t.Fatalf("LoadHistory(OnlyFuture) = %+v, %v", got, err)
	}
	all, err := st.List(ctx, store.Filter{})
	if err != nil || len(all) != 20 {
		t.Fatalf("List = %d, %v", len(all), err)
	}
	for i := 980; i < 1000; i++ {
		if _, err := st.Get(ctx, HistoryID(i)); err != nil {
			t.Errorf("future reservation %d: %v", i, err)
		}
	}
}

func checkLoad(t *testing.T, st store.Store, writers int) {
	ctx := context.Background()
	now := time.Now().UTC()
	const n, spots = 3000, 40
	ids := make([]string, spots)
	for i := range ids {
		ids[i] = strconv.Itoa(i + 1)
	}
	if err := st.SetSpots(ctx, ids, now.Add(-11*365*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	var progress []int
	got, err := LoadHistory(ctx, st, HistoryLoad{Reservations: n, Future: 0.02, Spots: spots, Years: 10, Now: now,
		Batch: 250, Writers: writers, Progress: func(done int) { progress = append(progress, done) }})
	if err != nil {
		t.Fatal(err)
	}
	if got.Reservations != n || got.Changes != n || len(progress) != n/250 || progress[len(progress)-1] != n {
		t.Fatalf("loaded %+v, progress %v", got, progress)
	}
	all, err := st.List(ctx, store.Filter{})
	if err != nil || len(all) != n {
		t.Fatalf("List: %d reservations, %v", len(all), err)
	}
	byState := map[reservation.State]int{}
	for _, r := range all {
		byState[r.State]++
		if r.CarID == "" || r.TokenHash == nil || !r.Until.After(r.From) {
			t.Fatalf("reservation %+v", r)
		}
		if r.State.Live() != r.From.After(now) {
			t.Fatalf("%s is %s with window %v–%v (now %v)", r.ID, r.State, r.From, r.Until, now)
		}
		if !r.State.Live() && (r.EndedAt.IsZero() || r.EndedAt.After(now)) {
			t.Fatalf("finished %s ended at %v", r.ID, r.EndedAt)
		}
		atts, err := st.PaymentAttempts(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if wantPaid := r.PaymentRef != ""; wantPaid != (len(atts) == 1) || wantPaid && (atts[0].Amount != r.Amount || atts[0].Outcome != store.AttemptSucceeded) {
			t.Fatalf("%s (%s, ref %q): attempts %+v", r.ID, r.State, r.PaymentRef, atts)
		}
	}
	if byState[reservation.Left] < n*7/10 || byState[reservation.Expired] == 0 || byState[reservation.NoShow] == 0 ||
		byState[reservation.Cancelled] == 0 || byState[reservation.Paid] == 0 || byState[reservation.Reserved] != 0 {
		t.Errorf("states: %v", byState)
	}
	for s, c := range got.ByState {
		if byState[s] != c {
			t.Errorf("loader counted %d %s, the store has %d", c, s, byState[s])
		}
	}
	refunds := 0
	for _, r := range all {
		rs, err := st.Refunds(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range rs {
			refunds++
			if f.Amount <= 0 || f.Amount > r.Amount || f.Status != store.RefundSucceeded || r.State.Live() {
				t.Fatalf("refund %+v of %+v", f, r)
			}
		}
	}
	if refunds != got.Refunds || refunds == 0 {
		t.Errorf("refunds: %d in the store, loader said %d", refunds, got.Refunds)
	}
	due, err := st.PersonalData(ctx, now.Add(-90*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if finished := n - byState[reservation.Paid]; due.Reservations < finished*9/10 || due.Reservations >= finished {
		t.Errorf("due for retention: %d of %d finished", due.Reservations, finished)
	}
}
