package booking

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
)

// Caller is who asks for a change: a driver holding a reservation's token,
// or an operator holding the admin token or signed in to the console.
type Caller struct {
	Operator bool
	Token    string
	// Name is a signed-in operator's account name ("" for the admin
	// token); the change log records it.
	Name string
	// Reason is why an operator acts; the change log records it.
	Reason string
}

// actor is who the change log says made a change: "driver", "operator"
// (the admin token) or "operator:<name>".
func (c Caller) actor() string {
	switch {
	case c.Operator && c.Name != "":
		return "operator:" + c.Name
	case c.Operator:
		return "operator"
	}
	return "driver"
}

// resolver is who an exception's resolution names: the operator, or the
// admin token (a script, or a person without an account).
func (c Caller) resolver() string {
	if c.Name != "" {
		return c.Name
	}
	return "admin token"
}

// note is what the change log keeps of the caller's reason.
func (c Caller) note() string {
	if c.Operator {
		return c.Reason
	}
	return ""
}

// byToken finds the reservation a driver's token opens and checks that it
// belongs to spotID ("" skips that check).
func (s *Service) byToken(ctx context.Context, spotID, token string) (reservation.Reservation, error) {
	if token == "" {
		return reservation.Reservation{}, newErr(Unauthorized, "missing_token", "send the reservation's token as 'Authorization: Bearer <token>'")
	}
	r, err := s.store.ByTokenHash(ctx, HashToken(token))
	if errors.Is(err, store.ErrNotFound) {
		return r, newErr(Unauthorized, "invalid_token", "the token does not open any reservation")
	}
	if err != nil {
		return r, err
	}
	if spotID != "" && r.SpotID != spotID {
		return r, newErr(Forbidden, "wrong_spot", "the token belongs to a reservation of another spot")
	}
	return r, nil
}

// current returns the reservation of spotID that an operator's action on the
// spot "now" means: the car inside if there is one, else the live
// reservation whose window (opened early by EarlyArrival) covers now.
func (s *Service) current(ctx context.Context, spotID string, now time.Time) (reservation.Reservation, bool, error) {
	if err := s.spotExists(ctx, spotID); err != nil {
		return reservation.Reservation{}, false, err
	}
	live, err := s.store.Current(ctx, spotID, now)
	if err != nil {
		return reservation.Reservation{}, false, err
	}
	for _, r := range live {
		if r.State == reservation.Taken {
			return r, true, nil
		}
	}
	for _, r := range live {
		if r.State.Live() && !now.Before(r.From.Add(-s.cfg.EarlyArrival)) && now.Before(r.Until) {
			return r, true, nil
		}
	}
	return reservation.Reservation{}, false, nil
}

func (s *Service) spotExists(ctx context.Context, spotID string) error {
	if err := CheckSpotID(spotID); err != nil {
		return err
	}
	ok, err := s.store.Spot(ctx, spotID)
	if err != nil {
		return err
	}
	if !ok {
		return unknownSpot(spotID)
	}
	return nil
}

// move runs one state change of reservation id in a write transaction: fn
// sees the locked, current reservation and changes it, returning the change
// kind to log. It returns the reservation as stored.
func (s *Service) move(ctx context.Context, id, actor string, fn func(r *reservation.Reservation, now time.Time) (string, error)) (reservation.Reservation, error) {
	return s.moveNoted(ctx, id, actor, "", fn)
}

// moveNoted is move with the reason an operator gave, kept in the log.
func (s *Service) moveNoted(ctx context.Context, id, actor, note string, fn func(r *reservation.Reservation, now time.Time) (string, error)) (reservation.Reservation, error) {
	var (
		out      reservation.Reservation
		refunded bool
	)
	err := s.store.Write(ctx, func(tx store.Tx) error {
		refunded = false
		r, err := tx.Get(id)
		if err != nil {
			return err
		}
		now := s.now()
		prev := r.State
		kind, err := fn(&r, now)
		if err != nil || kind == "" {
			out = r
			return err
		}
		// Money owed back is recorded in the same transaction as the
		// change that owes it: a crash cannot lose a refund.
		if refunded, err = s.recordRefund(tx, prev, r, now); err != nil {
			return err
		}
		if err := tx.Update(r); err != nil {
			if errors.Is(err, store.ErrOverlap) {
				return newErr(Conflict, "overlap", "spot %s is reserved by someone else for part of that window", r.SpotID)
			}
			return err
		}
		c := change(kind, actor, r, now)
		c.Note = note
		if err := tx.Log(c); err != nil {
			return err
		}
		out = r
		return nil
	})
	if err == nil {
		s.metrics.transition(out.State)
	}
	if err == nil && refunded {
		select {
		case s.refundDue <- struct{}{}:
		default:
		}
	}
	return out, err
}

// conflict turns a state-machine refusal into a 409.
func conflict(err error) error {
	var se *reservation.StateError
	if errors.As(err, &se) {
		return &Error{Kind: Conflict, Code: "wrong_state", Message: se.Error(), Err: err}
	}
	return err
}

// CheckIn marks the car of a paid reservation of spotID as parked.
func (s *Service) CheckIn(ctx context.Context, spotID string, c Caller) (reservation.Reservation, error) {
	r, err := s.target(ctx, spotID, c, "no reservation of spot %s covers the present time")
	if err != nil {
		return r, err
	}
	return s.move(ctx, r.ID, c.actor(), checkIn(s.cfg.EarlyArrival))
}

func checkIn(early time.Duration) func(r *reservation.Reservation, now time.Time) (string, error) {
	return func(r *reservation.Reservation, now time.Time) (string, error) {
		if err := reservation.CanMove(r.State, reservation.Taken); err != nil {
			return "", conflict(err)
		}
		if opens := r.From.Add(-early); now.Before(opens) {
			return "", newErr(Conflict, "too_early", "check-in opens at %s", opens.Format(time.RFC3339))
		}
		if !now.Before(r.Until) {
			return "", newErr(Conflict, "window_over", "the reservation ended at %s", r.Until.Format(time.RFC3339))
		}
		r.State = reservation.Taken
		r.CheckedInAt = now
		return store.KindCheckedIn, nil
	}
}

// target resolves the reservation a driver's token or an operator's action
// on spotID refers to.
func (s *Service) target(ctx context.Context, spotID string, c Caller, none string) (reservation.Reservation, error) {
	if !c.Operator {
		return s.byToken(ctx, spotID, c.Token)
	}
	r, ok, err := s.current(ctx, spotID, s.now())
	if err != nil {
		return r, err
	}
	if !ok {
		return r, newErr(Conflict, "no_reservation", none, spotID)
	}
	return r, nil
}

// CheckOut records that the car of spotID left at leavingAt (zero: now).
// Leaving before reservedUntil frees the spot at once.
func (s *Service) CheckOut(ctx context.Context, spotID string, c Caller, leavingAt time.Time) (reservation.Reservation, error) {
	r, err := s.target(ctx, spotID, c, "no car is parked on spot %s")
	if err != nil {
		return r, err
	}
	return s.move(ctx, r.ID, c.actor(), func(r *reservation.Reservation, now time.Time) (string, error) {
		if err := reservation.CanMove(r.State, reservation.Left); err != nil {
			return "", conflict(err)
		}
		at := now
		if !leavingAt.IsZero() {
			at = leavingAt.UTC().Truncate(time.Microsecond)
		}
		if at.After(now.Add(s.cfg.LeaveTolerance)) {
			return "", newErr(Unprocessable, "leaving_in_future", "leaving_at may be at most %s in the future", s.cfg.LeaveTolerance)
		}
		// Clients send whole seconds; a leaving_at in the second of the
		// check-in means "right after it".
		if at.Before(r.CheckedInAt.Truncate(time.Second)) {
			return "", newErr(Unprocessable, "leaving_before_check_in", "leaving_at is before the check-in at %s", r.CheckedInAt.Format(time.RFC3339))
		}
		if at.Before(r.CheckedInAt) {
			at = r.CheckedInAt
		}
		r.State = reservation.Left
		r.LeftAt = at
		r.EndedAt = now
		return store.KindLeft, nil
	})
}

// Cancel ends a reservation that has not started to be used.
func (s *Service) Cancel(ctx context.Context, id string, c Caller) (reservation.Reservation, error) {
	if !c.Operator {
		r, err := s.byToken(ctx, "", c.Token)
		if err != nil {
			return r, err
		}
		if r.ID != id {
			return r, newErr(Forbidden, "wrong_reservation", "the token belongs to another reservation")
		}
	}
	r, err := s.moveNoted(ctx, id, c.actor(), c.note(), func(r *reservation.Reservation, now time.Time) (string, error) {
		if err := reservation.CanMove(r.State, reservation.Cancelled); err != nil {
			return "", conflict(err)
		}
		r.State = reservation.Cancelled
		r.EndedAt = now
		return store.KindCancelled, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return r, newErr(NotFound, "unknown_reservation", "there is no reservation %q", truncate(id, 40))
	}
	return r, err
}

// Spot statuses an operator may force.
const (
	StatusFree     = "free"
	StatusReserved = "reserved"
	StatusTaken    = "taken"
)

// Force sets a spot's status by operator decision, through the state
// machine, so the reason is recorded:
//
//   - free: the car inside leaves now; a paid reservation holding the spot
//     now is released as a no-show; an unpaid one is cancelled.
//   - taken: the reservation holding the spot now is checked in.
//   - reserved: a check-in is undone (a false read at the gate).
//
// Forcing the status a spot already has changes nothing and is not an error.
func (s *Service) Force(ctx context.Context, spotID, status string) (SpotView, error) {
	return s.ForceBy(ctx, spotID, status, Caller{Operator: true})
}

// ForceBy is Force by a named operator, whose name and reason the change
// log records.
func (s *Service) ForceBy(ctx context.Context, spotID, status string, c Caller) (SpotView, error) {
	if status != StatusFree && status != StatusReserved && status != StatusTaken {
		return SpotView{}, newErr(Invalid, "invalid_status", "status must be free, reserved or taken")
	}
	if err := s.spotExists(ctx, spotID); err != nil {
		return SpotView{}, err
	}
	now := s.now()
	r, ok, err := s.current(ctx, spotID, now)
	if err != nil {
		return SpotView{}, err
	}
	var fn func(r *reservation.Reservation, now time.Time) (string, error)
	switch {
	case status == StatusFree && ok:
		fn = release
	case status == StatusTaken && ok && r.State != reservation.Taken:
		fn = checkIn(s.cfg.EarlyArrival)
	case status == StatusTaken && !ok:
		return SpotView{}, newErr(Conflict, "no_reservation", "no reservation of spot %s covers the present time; push one first", spotID)
	case status == StatusReserved && ok && r.State == reservation.Taken:
		fn = func(r *reservation.Reservation, now time.Time) (string, error) {
			r.State = reservation.Paid
			r.CheckedInAt = time.Time{}
			return store.KindCheckInReverted, nil
		}
	case status == StatusReserved && !ok:
		return SpotView{}, newErr(Conflict, "no_reservation", "no reservation of spot %s covers the present time; push one first", spotID)
	}
	if fn != nil {
		if _, err := s.moveNoted(ctx, r.ID, c.actor(), c.note(), fn); err != nil {
			return SpotView{}, err
		}
		s.log.Info("spot status forced", "spot", spotID, "status", status, "reservation", r.ID)
	}
	return s.Spot(ctx, spotID)
}

// release ends whatever holds a spot now, by operator decision.
func release(r *reservation.Reservation, now time.Time) (string, error) {
	switch r.State {
	case reservation.Taken:
		r.State, r.LeftAt, r.EndedAt = reservation.Left, now, now
		return store.KindLeft, nil
	case reservation.Paid:
		r.State, r.EndedAt = reservation.NoShow, now
		return store.KindNoShow, nil
	case reservation.Reserved:
		r.State, r.EndedAt = reservation.Cancelled, now
		return store.KindCancelled, nil
	}
	return "", nil
}

// LogGateOpened records in the change log that an operator opened a gate's
// barrier remotely, with the reason given. The entry carries no
// reservation, so the gates skip it.
func (s *Service) LogGateOpened(ctx context.Context, gateID string, c Caller) error {
	return s.store.Write(ctx, func(tx store.Tx) error {
		return tx.Log(store.Change{At: s.now(), Kind: store.KindGateOpened, Actor: c.actor(), GateID: gateID, Note: c.note()})
	})
}

// ResolveException records that an operator settled an exception a gate
// reported, with a note (the caller's Reason), and logs it.
func (s *Service) ResolveException(ctx context.Context, eventID string, c Caller) (store.GateEvent, error) {
	if !c.Operator {
		return store.GateEvent{}, newErr(Forbidden, "not_operator", "only operators resolve exceptions")
	}
	if strings.TrimSpace(c.Reason) == "" {
		return store.GateEvent{}, newErr(Invalid, "missing_note", "say how the exception was resolved")
	}
	// By the event's key: reading every exception to find one cost as
	// much as the site's years of them. An event that is not an
	// exception is not one an operator resolves.
	find := func() (store.GateEvent, error) {
		e, err := s.store.GateEvent(ctx, eventID)
		if err == nil && e.Outcome != store.EventException {
			err = store.ErrNotFound
		}
		if errors.Is(err, store.ErrNotFound) {
			return store.GateEvent{}, newErr(NotFound, "unknown_exception", "there is no exception %q", truncate(eventID, 40))
		}
		return e, err
	}
	if _, err := find(); err != nil {
		return store.GateEvent{}, err
	}
	by := c.resolver()
	err := s.store.Write(ctx, func(tx store.Tx) error {
		now := s.now()
		if err := tx.ResolveGateEvent(eventID, by, c.Reason, now); err != nil {
			return err
		}
		return tx.Log(store.Change{At: now, Kind: store.KindExceptionResolved, Actor: c.actor(), Note: eventID + ": " + c.Reason})
	})
	if err != nil {
		return store.GateEvent{}, err
	}
	return find()
}
