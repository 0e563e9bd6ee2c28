package storetest

import (
	"context"
	"reflect"
	"testing"

	"github.com/parkgate/parkgate/central/store"
)

// testLookups: a gate event and a payment exception are found by their
// id, whatever their outcome or resolution, with every field; an unknown
// id is ErrNotFound.
func testLookups(t *testing.T, s store.Store) {
	ctx := context.Background()
	applied := store.GateEvent{EventID: "g-1", GateID: "entry-1", Seq: 1, Kind: "decision", Role: "entry", Time: at(1),
		Source: "plate", Granted: true, Reason: "plate", ReservationID: "r1", SpotID: "1", CarID: "X1", Plate: "X1",
		Detail: "spot 1", ClockTrusted: true, ReceivedAt: at(1.5), Outcome: store.EventApplied, Note: "checked in"}
	exception := store.GateEvent{EventID: "g-2", GateID: "exit-1", Seq: 7, Kind: "decision", Role: "exit", Time: at(2),
		Source: "qr", ReservationID: "r2", ReceivedAt: at(2.5), Outcome: store.EventException, Note: "exit on a paid reservation"}
	dispute := store.PaymentException{ID: "evt_1", Kind: store.ExceptionDispute, ReservationID: "r1", Amount: 500,
		Currency: "eur", ProviderRef: "dp_1", Reason: "fraudulent", CreatedAt: at(3)}
	write(t, s, func(tx store.Tx) error {
		for _, e := range []store.GateEvent{applied, exception} {
			if err := tx.PutGateEvent(e); err != nil {
				return err
			}
		}
		return tx.PutPaymentException(dispute)
	})
	// What the lists return is what the lookups must.
	listed, err := s.GateEvents(ctx, store.EventFilter{})
	if err != nil || len(listed) != 2 {
		t.Fatalf("GateEvents = %v, %v", listed, err)
	}
	for _, want := range listed {
		got, err := s.GateEvent(ctx, want.EventID)
		if err != nil {
			t.Fatalf("GateEvent(%s): %v", want.EventID, err)
		}
		checkUTC(t, "GateEvent", got.Time, got.ReceivedAt, got.ResolvedAt)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("GateEvent(%s):\n got %+v\nwant %+v", want.EventID, got, want)
		}
	}
	if got, _ := s.GateEvent(ctx, "g-2"); got.Outcome != store.EventException || got.Note != exception.Note || !got.ReceivedAt.Equal(exception.ReceivedAt) {
		t.Errorf("GateEvent(g-2) = %+v", got)
	}
	write(t, s, func(tx store.Tx) error { return tx.ResolveGateEvent("g-2", "alice", "let out", at(4)) })
	if got, err := s.GateEvent(ctx, "g-2"); err != nil || got.ResolvedBy != "alice" || got.Resolution != "let out" || !got.ResolvedAt.Equal(at(4)) {
		t.Errorf("GateEvent(g-2) resolved = %+v, %v", got, err)
	}
	_, err = s.GateEvent(ctx, "g-3")
	wantErr(t, "GateEvent(unknown)", err, store.ErrNotFound)

	got, err := s.PaymentException(ctx, "evt_1")
	if err != nil {
		t.Fatal(err)
	}
	checkUTC(t, "PaymentException", got.CreatedAt, got.ResolvedAt)
	if !got.CreatedAt.Equal(dispute.CreatedAt) {
		t.Errorf("PaymentException created at %v", got.CreatedAt)
	}
	got.CreatedAt = dispute.CreatedAt
	if !reflect.DeepEqual(got, dispute) {
		t.Errorf("PaymentException:\n got %+v\nwant %+v", got, dispute)
	}
	write(t, s, func(tx store.Tx) error { return tx.ResolvePaymentException("evt_1", "bob", "evidence sent", at(5)) })
	if got, err := s.PaymentException(ctx, "evt_1"); err != nil || got.ResolvedBy != "bob" || got.Resolution != "evidence sent" || !got.ResolvedAt.Equal(at(5)) {
		t.Errorf("PaymentException resolved = %+v, %v", got, err)
	}
	_, err = s.PaymentException(ctx, "evt_2")
	wantErr(t, "PaymentException(unknown)", err, store.ErrNotFound)
}
