package sqlitestore

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
)

// Erased personal data is gone from the database file, not only from what
// queries return: SQLite would otherwise leave the old cells in free space.
// The plate is also in free text: a gate's detail, an operator's notes.
func TestErasedPlateLeavesTheFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "central.db")
	s := openTemp(t, path)
	if err := s.SetSpots(ctx, []string{"1"}, t0.Add(-400*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	const plate = "ZQ987XW"
	ended := t0.Add(-100 * 24 * time.Hour)
	r := reservation.Reservation{ID: "r1", SpotID: "1", State: reservation.Left, Source: reservation.SourceDriver,
		From: ended.Add(-2 * time.Hour), Until: ended.Add(time.Hour), CreatedAt: ended.Add(-3 * time.Hour), CarID: plate,
		Amount: 500, Currency: "eur", EndedAt: ended, LeftAt: ended, TokenHash: []byte("tok-r1")}
	err := s.Write(ctx, func(tx store.Tx) error {
		if err := tx.Insert(r); err != nil {
			return err
		}
		if err := tx.PutAttempt(store.PaymentAttempt{ReservationID: "r1", Number: 1, Outcome: store.AttemptSucceeded,
			Amount: 500, Currency: "eur", CarID: plate, PaymentMethod: "pm_card_visa", StartedAt: r.CreatedAt}); err != nil {
			return err
		}
		if err := tx.PutGateEvent(store.GateEvent{EventID: "e1", GateID: "g", Seq: 1, Kind: "decision", Role: "entry",
			Time: ended, Granted: true, ReservationID: "r1", CarID: plate, Plate: plate, ReceivedAt: ended,
			Detail: "plate " + plate + " read", Outcome: store.EventApplied}); err != nil {
			return err
		}
		if err := tx.Log(store.Change{At: ended, Kind: store.KindGateOpened, GateID: "g", Actor: "alice",
			Note: "opened for " + plate}); err != nil {
			return err
		}
		if err := tx.Log(store.Change{At: ended, Kind: store.KindCancelled, SpotID: "1", ReservationID: "r1", Actor: "alice",
			Note: plate + " called"}); err != nil {
			return err
		}
		return tx.Log(store.Change{At: ended, Kind: store.KindLeft, SpotID: "1", ReservationID: "r1", Actor: "system", Reservation: &r})
	})
	if err != nil {
		t.Fatal(err)
	}
	if e, err := s.ErasePersonalData(ctx, t0.Add(-90*24*time.Hour), 10); err != nil || e.Reservations != 1 || e.GateEvents != 1 || e.Notes != 1 || e.Changes != 2 {
		t.Fatalf("ErasePersonalData = %+v, %v", e, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(plate)) {
			t.Errorf("%s still holds the erased plate", f)
		}
	}
}
