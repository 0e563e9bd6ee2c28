package sqlitestore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/central/store/storetest"
	"github.com/parkgate/parkgate/internal/migration"
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
	// Numbers may have gaps (branches take numbers ahead of merging): the
	// highest one is the last applied.
	names, err := migration.Read(migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	last := names[len(names)-1].Version
	for i := range 3 {
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("open #%d: %v", i, err)
		}
		var n, maxV int
		if err := s.db.R.QueryRowContext(ctx, "SELECT count(*), max(version) FROM schema_migrations").Scan(&n, &maxV); err != nil {
			t.Fatal(err)
		}
		if n != len(names) || maxV != last {
			t.Errorf("open #%d: %d migrations recorded (max %d), want %d (max %d)", i, n, maxV, len(names), last)
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

// BenchmarkConditionalInsert is storetest's booking write on SQLite, where
// a commit fsyncs the WAL (synchronous=FULL).
func BenchmarkConditionalInsert(b *testing.B) {
	storetest.BenchmarkConditionalInsert(b, func(b *testing.B) store.Store {
		return openTemp(b, filepath.Join(b.TempDir(), "central.db"))
	}, nil)
}
