package booking

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/payment/fakepay"
	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/central/store/sqlitestore"
	"github.com/parkgate/parkgate/clock/clocktest"
)

// countingStore counts the board's questions to the change log.
type countingStore struct {
	*sqlitestore.Store
	changes atomic.Int64
}

func (c *countingStore) Changes(ctx context.Context, after int64, limit int) ([]store.Change, error) {
	c.changes.Add(1)
	return c.Store.Changes(ctx, after, limit)
}

// Point reads with nothing logged meanwhile do not ask the database; a
// reservation shows in the very next read after its answer; a write by
// another process on the same file shows within maxStale.
func TestBoardReadsWithoutAskingTheLog(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.db")
	st, err := sqlitestore.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	clk := clocktest.New(t0)
	if err := st.SetSpots(ctx, []string{"1", "2"}, t0); err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{Store: st}
	svc := New(cs, &fakepay.Provider{}, nil, clk, DefaultConfig(), nil, nil)
	status := func(id string) string {
		t.Helper()
		v, err := svc.Spot(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return v.Status
	}
	status("1") // the first read loads the board
	before := cs.changes.Load()
	for range 100 {
		status("1")
	}
	if n := cs.changes.Load() - before; n != 0 {
		t.Errorf("100 reads with nothing new asked the log %d times", n)
	}
	if _, err := svc.Reserve(ctx, "1", reservation.Window{From: t0.Add(-time.Minute), Until: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if s := status("1"); s != StatusReserved {
		t.Fatalf("the read right after a reservation's answer: %s, want reserved", s)
	}

	// Another process: a second store on the same file, whose commits
	// this one does not count.
	other, err := sqlitestore.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	otherSvc := New(other, &fakepay.Provider{}, nil, clk, DefaultConfig(), nil, nil)
	if _, err := otherSvc.Reserve(ctx, "2", reservation.Window{From: t0.Add(-time.Minute), Until: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(maxStale)
	if s := status("2"); s != StatusReserved {
		t.Fatalf("a reservation by another process, %s later: %s, want reserved", maxStale, s)
	}
}
