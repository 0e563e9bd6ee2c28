package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/central/store/sqlitestore"
)

// seedDue writes, into the database centrald will use in dir, spots 1-5
// and one reservation of plate that finished 100 days ago.
func seedDue(t *testing.T, db, id, plate string) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	if err := st.SetSpots(ctx, []string{"1", "2", "3", "4", "5"}, now.Add(-400*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	ended := now.Add(-100 * 24 * time.Hour)
	r := reservation.Reservation{ID: id, SpotID: "1", State: reservation.Left, Source: reservation.SourceDriver,
		From: ended.Add(-2 * time.Hour), Until: ended.Add(time.Hour), CreatedAt: ended.Add(-3 * time.Hour),
		CarID: plate, Amount: 500, Currency: "eur", EndedAt: ended, LeftAt: ended}
	if err := st.Write(ctx, func(tx store.Tx) error {
		if err := tx.Insert(r); err != nil {
			return err
		}
		return tx.Log(store.Change{At: ended, Kind: store.KindLeft, SpotID: "1", ReservationID: id, Actor: "system", Reservation: &r})
	}); err != nil {
		t.Fatal(err)
	}
}

// The running server erases what is due by itself, from its start, and
// says so in its log with counts, never the plate.
func TestProcessRetentionRunsAtStart(t *testing.T) {
	dir := t.TempDir()
	seedDue(t, filepath.Join(dir, "centrald.db"), "due-1", "RS456TART")
	p := start(t, dir)
	waitFor(t, "the retention's log line", 30*time.Second, func() bool {
		return strings.Contains(p.logText(), `"msg":"personal data erased"`)
	})
	if !strings.Contains(p.logText(), `"reservations":1`) {
		t.Errorf("log line without the count:\n%s", p.logText())
	}
	if strings.Contains(p.logText(), "RS456TART") {
		t.Errorf("the log holds the plate:\n%s", p.logText())
	}
	got := p.must(200, "GET", "/reservations/due-1", adminToken, "")
	if got["carId"] != nil || got["status"] != "left" || got["amount"] != float64(500) {
		t.Errorf("after erasure: %v; want no carId, the rest kept", got)
	}
}

// centrald prune --dry-run says what is due and changes nothing; centrald
// prune then erases it; a reservation not due keeps its plate.
func TestPruneCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := filepath.Join(dir, "c.db")
	st, err := sqlitestore.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := st.SetSpots(ctx, []string{"1"}, now.Add(-400*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	mk := func(id string, ended time.Time) reservation.Reservation {
		return reservation.Reservation{ID: id, SpotID: "1", State: reservation.Left, Source: reservation.SourceDriver,
			From: ended.Add(-2 * time.Hour), Until: ended.Add(time.Hour), CreatedAt: ended.Add(-3 * time.Hour),
			CarID: "PR123UNE", Amount: 500, Currency: "eur", EndedAt: ended, LeftAt: ended, TokenHash: []byte("h-" + id)}
	}
	due, fresh := mk("due", now.Add(-100*24*time.Hour)), mk("fresh", now.Add(-80*24*time.Hour))
	err = st.Write(ctx, func(tx store.Tx) error {
		for _, r := range []reservation.Reservation{due, fresh} {
			if err := tx.Insert(r); err != nil {
				return err
			}
			if err := tx.Log(store.Change{At: r.EndedAt, Kind: store.KindLeft, SpotID: "1", ReservationID: r.ID, Actor: "system", Reservation: &r}); err != nil {
				return err
			}
		}
		return nil
	})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"PARKING_DB_DSN=" + db}
	plateOf := func(id string) string {
		t.Helper()
		st, err := sqlitestore.Open(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		r, err := st.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return r.CarID
	}

	var out, errb strings.Builder
	if code := run([]string{"prune", "--dry-run"}, env, &out, &errb); code != 0 {
		t.Fatalf("prune --dry-run: exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"would erase: 1 reservations", "finished " + due.EndedAt.UTC().Format(time.RFC3339),
		"would erase: 1 change-log entries"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("prune --dry-run said:\n%s\nwant %q", out.String(), want)
		}
	}
	if strings.Contains(out.String(), "PR123UNE") {
		t.Errorf("prune --dry-run printed a plate:\n%s", out.String())
	}
	if p := plateOf("due"); p != "PR123UNE" {
		t.Fatalf("prune --dry-run erased the plate (now %q)", p)
	}
	out.Reset()
	if code := run([]string{"prune", "--dry-run"}, env, &out, &errb); code != 0 || !strings.Contains(out.String(), "would erase: 1 reservations") {
		t.Fatalf("a second dry run: exit %d, said:\n%s", code, out.String())
	}

	out.Reset()
	if code := run([]string{"prune"}, env, &out, &errb); code != 0 {
		t.Fatalf("prune: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "erased: 1 reservations") {
		t.Errorf("prune said:\n%s", out.String())
	}
	if p := plateOf("due"); p != "" {
		t.Errorf("after prune the due reservation still holds plate %q", p)
	}
	if p := plateOf("fresh"); p != "PR123UNE" {
		t.Errorf("prune erased a reservation finished 80 days ago (plate now %q)", p)
	}
	out.Reset()
	if code := run([]string{"prune", "--dry-run"}, env, &out, &errb); code != 0 || !strings.Contains(out.String(), "would erase: 0 reservations") {
		t.Errorf("dry run after prune: exit %d, said:\n%s", code, out.String())
	}

	// Off: nothing to do, said so.
	out.Reset()
	if code := run([]string{"prune"}, append(env, "PARKING_RETENTION_PERSONAL_DATA=off"), &out, &errb); code != 0 || !strings.Contains(out.String(), "off") {
		t.Errorf("prune with retention off: exit %d, said:\n%s", code, out.String())
	}
	for _, bad := range [][]string{{"--dry-run"}, {"prune", "now"}, {"pubkey", "--dry-run"}} {
		if code := run(bad, env, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2", bad, code)
		}
	}
}
