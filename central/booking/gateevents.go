package booking

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
)

// ApplyGateEvent stores an event a gate delivered and applies it to spot
// state exactly as POST /park would: a granted entry checks the
// reservation in, a granted exit checks it out (with the refund policy).
// The event row and the state change commit together, and the event id is
// unique, so a repeated delivery has no second effect: it reports
// duplicate and changes nothing. An event that central's state contradicts
// (an entry on a cancelled reservation, an event for an unknown one) is
// stored as an exception and changes nothing else — central stays the
// authority, and an operator sees it (GET /admin/exceptions).
func (s *Service) ApplyGateEvent(ctx context.Context, e store.GateEvent) (outcome string, duplicate bool, err error) {
	if e.EventID == "" || e.GateID == "" {
		return "", false, newErr(Invalid, "invalid_event", "a gate event needs an event id and a gate id")
	}
	var refunded bool
	err = s.store.Write(ctx, func(tx store.Tx) error {
		refunded = false
		now := s.now()
		e.ReceivedAt = now
		e.Outcome, e.Note = store.EventRecorded, ""
		var kind string
		var r reservation.Reservation
		if e.Kind == "decision" && e.Granted && e.ReservationID != "" {
			cur, err := tx.Get(e.ReservationID)
			switch {
			case errors.Is(err, store.ErrNotFound):
				e.Outcome, e.Note = store.EventException, "no such reservation at central"
			case err != nil:
				return err
			default:
				prev := cur.State
				kind, e.Outcome, e.Note = gateMove(&cur, e, now)
				if kind != "" {
					if refunded, err = s.recordRefund(tx, prev, cur, now); err != nil {
						return err
					}
					if err := tx.Update(cur); err != nil {
						return err
					}
					r = cur
				}
			}
		}
		if err := tx.PutGateEvent(e); err != nil {
			return err // ErrDuplicate rolls the state change back too
		}
		if kind != "" {
			if err := tx.Log(change(kind, "gate:"+e.GateID, r, now)); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, store.ErrDuplicate) {
		return "", true, nil
	}
	if err != nil {
		return "", false, err
	}
	if refunded {
		select {
		case s.refundDue <- struct{}{}:
		default:
		}
	}
	if e.Outcome == store.EventException {
		s.log.Warn("gate event contradicts central's state", "gate", e.GateID, "event", e.EventID, "reservation", e.ReservationID, "note", e.Note)
	}
	return e.Outcome, false, nil
}

// gateMove decides what a granted gate decision does to r, and changes r
// when it applies: it returns the change kind to log ("" for none), the
// outcome and a note.
func gateMove(r *reservation.Reservation, e store.GateEvent, now time.Time) (kind, outcome, note string) {
	at := e.Time.UTC()
	switch e.Role {
	case "entry":
		switch r.State {
		case reservation.Paid:
			r.State, r.CheckedInAt = reservation.Taken, at
			return store.KindCheckedIn, store.EventApplied, "checked in"
		case reservation.Taken:
			return "", store.EventRecorded, "already checked in"
		case reservation.Left:
			// The exit's event came first (the entry gate was offline):
			// consistent if the car entered before it left.
			if !r.LeftAt.IsZero() && !at.After(r.LeftAt) {
				return "", store.EventRecorded, "entry reported after the exit"
			}
		}
		return "", store.EventException, fmt.Sprintf("entry on a %s reservation", r.State)
	case "exit":
		switch r.State {
		case reservation.Taken, reservation.Paid:
			note = "checked out"
			if r.State == reservation.Paid {
				// No entry reported yet (the entry gate may be offline):
				// the car was inside, so it is in and out now.
				r.CheckedInAt, note = at, "checked out; the entry was not reported"
			}
			if at.Before(r.CheckedInAt) {
				at = r.CheckedInAt
			}
			r.State, r.LeftAt, r.EndedAt = reservation.Left, at, now
			return store.KindLeft, store.EventApplied, note
		case reservation.Left:
			return "", store.EventRecorded, "already checked out"
		}
		return "", store.EventException, fmt.Sprintf("exit on a %s reservation", r.State)
	}
	return "", store.EventException, fmt.Sprintf("unknown gate role %q", e.Role)
}
