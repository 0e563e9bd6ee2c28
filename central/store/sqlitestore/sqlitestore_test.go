package sqlitestore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/central/store/storetest"
)

func openTemp(tb testing.TB, path string) *Store {
	tb.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openTemp(t, filepath.Join(t.TempDir(), "sub", "dir", "central.db"))
	})
}

var t0 = time.Date(2030, 6, 3, 8, 0, 0, 0, time.UTC)

func TestSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "central.db")
	s := openTemp(t, path)
	if err := s.SetSpots(ctx, []string{"1", "2"}, t0); err != nil {
		t.Fatal(err)
	}
	r := reservation.Reservation{ID: "a", SpotID: "2", State: reservation.Paid, Source: reservation.SourceDriver,
		From: t0, Until: t0.Add(time.Hour), PaidAt: t0.Add(-time.Minute), TokenHash: []byte{1, 2, 3}}
	if err := s.Write(ctx, func(tx store.Tx) error {
		if err := tx.Insert(r); err != nil {
			return err
		}
		err := tx.Log(store.Change{At: t0, Kind: store.KindCreated, ReservationID: "a", Actor: "driver", Reservation: &r})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTemp(t, path)
	got, err := s.Get(ctx, "a")
	if err != nil || got.State != reservation.Paid || !got.PaidAt.Equal(r.PaidAt) {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
	if spots, _ := s.Spots(ctx); fmt.Sprint(spots) != "[1 2]" {
		t.Errorf("spots after reopen = %v", spots)
	}
	cs, err := s.Changes(ctx, 0, 0)
	if err != nil || len(cs) != 3 || cs[2].Reservation == nil || cs[2].Reservation.ID != "a" {
		t.Fatalf("changes after reopen: %+v, %v", cs, err)
	}
	// The database still refuses double booking after a restart.
	r.ID, r.TokenHash = "b", nil
	err = s.Write(ctx, func(tx store.Tx) error { return tx.Insert(r) })
	if !errors.Is(err, store.ErrOverlap) {
		t.Errorf("insert over a reopened reservation: %v", err)
	}
}

func TestPragmas(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, filepath.Join(t.TempDir(), "central.db"))
	for _, c := range []struct{ pragma, want string }{
		{"journal_mode", "wal"}, {"synchronous", "2"}, {"foreign_keys", "1"}, {"busy_timeout", "5000"}, {"query_only", "0"},
	} {
		var got string
		if err := s.db.W.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("writer PRAGMA %s = %s, want %s", c.pragma, got, c.want)
		}
	}
	var qo int
	if err := s.db.R.QueryRowContext(ctx, "PRAGMA query_only").Scan(&qo); err != nil || qo != 1 {
		t.Errorf("reader query_only = %d, %v", qo, err)
	}
	if _, err := s.db.R.ExecContext(ctx, "INSERT INTO spots (id, position, added_at) VALUES ('x', 0, 0)"); err == nil {
		t.Error("a reader connection could write")
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "central.db")
	names, err := migrations.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("open #%d: %v", i, err)
		}
		var n, maxV int
		if err := s.db.R.QueryRowContext(ctx, "SELECT count(*), max(version) FROM schema_migrations").Scan(&n, &maxV); err != nil {
			t.Fatal(err)
		}
		if n != len(names) || maxV != len(names) {
			t.Errorf("open #%d: %d migrations recorded (max %d), want %d", i, n, maxV, len(names))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTriggerWithoutStoreCode checks the guard lives in the schema: raw SQL
// that bypasses Tx still cannot double-book.
func TestTriggerWithoutStoreCode(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, filepath.Join(t.TempDir(), "central.db"))
	if err := s.SetSpots(ctx, []string{"1"}, t0); err != nil {
		t.Fatal(err)
	}
	ins := `INSERT INTO reservations (id, spot_id, state, source, reserved_from, reserved_until) VALUES (?, '1', 'paid', 'driver', ?, ?)`
	if _, err := s.db.W.ExecContext(ctx, ins, "a", 100, 200); err != nil {
		t.Fatal(err)
	}
	_, err := s.db.W.ExecContext(ctx, ins, "b", 150, 250)
	if err = mapErr(err, "raw", nil); !errors.Is(err, store.ErrOverlap) {
		t.Errorf("raw overlapping insert: %v", err)
	}
	if _, err := s.db.W.ExecContext(ctx, ins, "c", 200, 300); err != nil {
		t.Errorf("adjacent raw insert: %v", err)
	}
}

// BenchmarkConditionalInsert measures the booking write: check the spot's
// live reservations, insert and log if free, commit (with an fsync of the
// WAL, as synchronous=FULL demands). "contended" draws windows from one day
// of three spots, so most attempts are refused (and roll back, no fsync);
// "sparse" draws from years, so nearly every attempt commits.
func BenchmarkConditionalInsert(b *testing.B) {
	for _, c := range []struct {
		name  string
		slots int // quarter hours to draw a start from
	}{{"contended", 4 * 24}, {"sparse", 4 * 24 * 365 * 20}} {
		b.Run(c.name, func(b *testing.B) { benchConditionalInsert(b, c.slots) })
	}
}

func benchConditionalInsert(b *testing.B, slots int) {
	ctx := context.Background()
	s := openTemp(b, filepath.Join(b.TempDir(), "central.db"))
	spots := []string{"1", "2", "3"}
	if err := s.SetSpots(ctx, spots, t0); err != nil {
		b.Fatal(err)
	}
	var seq, booked atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(uint64(seq.Add(1)), 7))
		for pb.Next() {
			i := seq.Add(1)
			from := t0.Add(time.Duration(rng.IntN(slots)) * 15 * time.Minute)
			r := reservation.Reservation{ID: fmt.Sprintf("b%d", i), SpotID: spots[rng.IntN(len(spots))],
				State: reservation.Reserved, Source: reservation.SourceDriver, From: from,
				Until: from.Add(time.Duration(1+rng.IntN(4)) * time.Hour), CreatedAt: t0, Amount: 250, Currency: "eur",
				TokenHash: fmt.Appendf(nil, "h%d", i)}
			err := s.Write(ctx, func(tx store.Tx) error {
				live, err := tx.Live(r.SpotID, r.Window())
				if err != nil {
					return err
				}
				if len(live) > 0 {
					return store.ErrOverlap
				}
				if err := tx.Insert(r); err != nil {
					return err
				}
				err = tx.Log(store.Change{At: t0, Kind: store.KindCreated, SpotID: r.SpotID, ReservationID: r.ID, Actor: "driver", Reservation: &r})
				return err
			})
			switch {
			case err == nil:
				booked.Add(1)
			case !errors.Is(err, store.ErrOverlap):
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(booked.Load())/float64(b.N), "booked/op")
}
