package booking

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
)

// MaxEventSkew is how far past central's clock a gate event's time may
// lie: a gate's clock may run a little ahead of central's, but an event
// from further in the future did not happen (docs/sync.md, "Applying").
const MaxEventSkew = 2 * time.Minute

// The gate event kinds central knows (gate/localdb's kinds). An event of
// another kind is kept as an exception: central cannot tell what it means.
const (
	EventKindDecision     = "decision"
	EventKindBarrierFault = "barrier_fault"
)

// ApplyGateEvent stores an event a gate delivered and applies it to spot
// state as POST /park would: a granted entry checks the reservation in, a
// granted exit checks it out (with the refund policy). The event row and
// the state change commit together, and the event id is unique, so a
// repeated delivery has no second effect: it reports duplicate and changes
// nothing.
//
// central stays the authority: an event it cannot trust or that its state
// contradicts is stored as an exception and changes nothing else, for an
// operator to see (GET /admin/exceptions). That is an event whose role is
// not the one the gate was provisioned with (or from a gate with no role),
// of an unknown kind, timed more than MaxEventSkew after central's clock or
// before its reservation was created, a check-out before the check-in, or
// an event for a reservation that is unknown or in a state it cannot move
// from.
//
// Events about one reservation may arrive out of their time order (a gate
// was offline); the outcome is the one of their time order (gateMove).
func (s *Service) ApplyGateEvent(ctx context.Context, e store.GateEvent) (outcome string, duplicate bool, err error) {
	if e.EventID == "" || e.GateID == "" {
		return "", false, newErr(Invalid, "invalid_event", "a gate event needs an event id and a gate id")
	}
	var refunded, overstay bool
	err = s.store.Write(ctx, func(tx store.Tx) error {
		refunded, overstay = false, false
		now := s.now()
		e.ReceivedAt = now
		e.Outcome, e.Note = store.EventRecorded, ""
		var kind string
		var r reservation.Reservation
		distrust, err := screenGateEvent(tx, e, now)
		switch {
		case err != nil:
			return err
		case distrust != "":
			e.Outcome, e.Note = store.EventException, distrust
		case e.Kind == EventKindDecision && e.Granted && e.ReservationID != "":
			cur, err := tx.Get(e.ReservationID)
			switch {
			case errors.Is(err, store.ErrNotFound):
				e.Outcome, e.Note = store.EventException, "no such reservation at central"
			case err != nil:
				return err
			default:
				prev := cur.State
				kind, e.Outcome, e.Note = gateMove(&cur, e.Role, e.Time, now)
				if kind != "" {
					if refunded, err = s.recordRefund(tx, prev, cur, now); err != nil {
						return err
					}
					// The exit decided offline; central computes what an
					// overstay costs now that it knows.
					if kind == store.KindLeft {
						if overstay, err = s.recordOverstay(tx, &cur, cur.LeftAt, now); err != nil {
							return err
						}
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
		s.wakeRefunder()
	}
	if overstay {
		s.wakeReconciler()
	}
	if e.Outcome == store.EventException {
		s.log.Warn("gate event stored as an exception", "gate", e.GateID, "event", e.EventID, "reservation", e.ReservationID, "note", e.Note)
	}
	return e.Outcome, false, nil
}

// screenGateEvent returns why e cannot be trusted whatever the
// reservation's state ("" if it can): its role against the gate's
// registered one, its kind, its time against central's clock.
func screenGateEvent(tx store.Tx, e store.GateEvent, now time.Time) (string, error) {
	g, err := tx.Gate(e.GateID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	switch {
	case g.Role == "":
		return fmt.Sprintf("gate %s has no registered role (provision it: centrald gate add %s --role entry|exit)", e.GateID, e.GateID), nil
	case e.Role != g.Role:
		return fmt.Sprintf("role %q, but gate %s is registered as an %s gate", truncate(e.Role, 16), e.GateID, g.Role), nil
	case e.Kind != EventKindDecision && e.Kind != EventKindBarrierFault:
		return fmt.Sprintf("unknown event kind %q", truncate(e.Kind, 32)), nil
	case e.Time.After(now.Add(MaxEventSkew)):
		return fmt.Sprintf("event time %s is more than %s after central's clock (%s)",
			e.Time.UTC().Format(time.RFC3339), MaxEventSkew, now.UTC().Format(time.RFC3339)), nil
	}
	return "", nil
}

// gateMove decides what a granted gate decision of role at time at does to
// r, and changes r when it applies: it returns the change kind to log (""
// for none), the outcome and a note.
//
// The result does not depend on the order in which an entry and an exit
// of one reservation arrive, only on their times: an exit of a paid
// reservation (its entry not reported yet) checks it out with the check-in
// time unknown, and the entry arriving later with an earlier time fills
// the check-in time in without reopening the reservation. So the check-in
// time is always the earliest reported entry, and an entry timed after
// the check-out, or an exit before the check-in, is an exception. (Only an
// exit timed before its own entry, a contradiction in itself, ends
// differently by arrival order: whichever comes second is the exception.)
func gateMove(r *reservation.Reservation, role string, at, now time.Time) (kind, outcome, note string) {
	// Stored times have microseconds; compare at that precision.
	at = at.UTC().Truncate(time.Microsecond)
	if !r.CreatedAt.IsZero() && at.Before(r.CreatedAt.Truncate(time.Microsecond)) {
		return "", store.EventException, fmt.Sprintf("%s at %s, before the reservation was created (%s)",
			role, at.Format(time.RFC3339), r.CreatedAt.UTC().Format(time.RFC3339))
	}
	switch role {
	case "entry":
		switch r.State {
		case reservation.Paid:
			r.State, r.CheckedInAt = reservation.Taken, at
			return store.KindCheckedIn, store.EventApplied, "checked in"
		case reservation.Taken:
			if at.Before(r.CheckedInAt) {
				r.CheckedInAt = at
				return store.KindCheckedIn, store.EventApplied, "checked in earlier than reported first"
			}
			return "", store.EventRecorded, "already checked in"
		case reservation.Left:
			switch {
			case at.After(r.LeftAt):
				return "", store.EventException, fmt.Sprintf("entry at %s, after the check-out at %s",
					at.Format(time.RFC3339), r.LeftAt.UTC().Format(time.RFC3339))
			case r.CheckedInAt.IsZero():
				// The exit came first (the entry gate was offline).
				r.CheckedInAt = at
				return store.KindCheckedIn, store.EventApplied, "check-in time filled in; the exit was reported first"
			case at.Before(r.CheckedInAt):
				r.CheckedInAt = at
				return store.KindCheckedIn, store.EventApplied, "checked in earlier than reported first"
			}
			return "", store.EventRecorded, "entry reported after the exit"
		}
		return "", store.EventException, fmt.Sprintf("entry on a %s reservation", r.State)
	case "exit":
		switch r.State {
		case reservation.Taken:
			if at.Before(r.CheckedInAt) {
				return "", store.EventException, fmt.Sprintf("check-out at %s, before the check-in at %s",
					at.Format(time.RFC3339), r.CheckedInAt.UTC().Format(time.RFC3339))
			}
			r.State, r.LeftAt, r.EndedAt = reservation.Left, at, now
			return store.KindLeft, store.EventApplied, "checked out"
		case reservation.Paid:
			// No entry reported yet (the entry gate may be offline, or
			// the car came in behind another): the car is gone, so the
			// reservation is over; the check-in time stays unknown until
			// the entry is reported.
			r.State, r.LeftAt, r.EndedAt = reservation.Left, at, now
			return store.KindLeft, store.EventApplied, "checked out; no entry reported yet"
		case reservation.Left:
			return "", store.EventRecorded, "already checked out"
		}
		return "", store.EventException, fmt.Sprintf("exit on a %s reservation", r.State)
	}
	return "", store.EventException, fmt.Sprintf("unknown gate role %q", truncate(role, 16))
}
