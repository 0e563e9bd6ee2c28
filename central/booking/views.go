package booking

import (
	"context"
	"time"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
)

// SpotView is a spot as drivers and operators see it: its status as of now
// and the reservation that explains it.
type SpotView struct {
	ID     string
	Status string // free, reserved, taken
	// Reservation is the spot's current reservation (the car inside, or
	// the one whose window covers now), else its next one, else one that
	// left early within its window; nil if none exists.
	Reservation *reservation.Reservation
}

// Spots returns every active spot's view, in configured order.
func (s *Service) Spots(ctx context.Context) ([]SpotView, error) {
	vs, _, err := s.board.views(ctx, s.now())
	return vs, err
}

// Spot returns one spot's view.
func (s *Service) Spot(ctx context.Context, id string) (SpotView, error) {
	if err := CheckSpotID(id); err != nil {
		return SpotView{}, err
	}
	vs, ok, err := s.board.views(ctx, s.now(), id)
	if err != nil {
		return SpotView{}, err
	}
	if !ok {
		return SpotView{}, unknownSpot(id)
	}
	return vs[0], nil
}

// view derives a spot's status from its live reservations and those that
// left within a window not yet over.
func view(id string, rs []reservation.Reservation, now time.Time) SpotView {
	v := SpotView{ID: id, Status: StatusFree}
	pick := func(r reservation.Reservation, status string) SpotView {
		return SpotView{ID: id, Status: status, Reservation: &r}
	}
	for _, r := range rs {
		if r.State == reservation.Taken {
			return pick(r, StatusTaken)
		}
	}
	for _, r := range rs {
		if r.State.Live() && r.Window().Contains(now) {
			return pick(r, StatusReserved)
		}
	}
	var next, ended *reservation.Reservation
	for i := range rs {
		r := &rs[i]
		switch {
		case r.State.Live() && r.From.After(now) && (next == nil || r.From.Before(next.From)):
			next = r
		case r.State == reservation.Left && stay(*r).Contains(now) && (ended == nil || r.LeftAt.After(ended.LeftAt)):
			ended = r
		}
	}
	// A free spot's next booking is what a driver or an operator acts on
	// (free until when?); a booking that ended early is shown only when
	// none follows, so that its leftAt still tells why the spot is free
	// within its window.
	if next != nil {
		return pick(*next, StatusFree)
	}
	if ended != nil {
		return pick(*ended, StatusFree)
	}
	return v
}

// Holder returns the id of the reservation a driver's token opens, so that
// the spot views can show that driver their own plate and nobody else's.
func (s *Service) Holder(ctx context.Context, token string) (string, error) {
	r, err := s.byToken(ctx, "", token)
	return r.ID, err
}

// Reservation returns one reservation for its token holder or an operator.
func (s *Service) Reservation(ctx context.Context, id string, c Caller) (reservation.Reservation, error) {
	if !c.Operator {
		r, err := s.byToken(ctx, "", c.Token)
		if err != nil {
			return r, err
		}
		if r.ID != id {
			return r, newErr(Forbidden, "wrong_reservation", "the token belongs to another reservation")
		}
		return r, nil
	}
	r, err := s.store.Get(ctx, id)
	if err == store.ErrNotFound {
		return r, newErr(NotFound, "unknown_reservation", "there is no reservation %q", truncate(id, 40))
	}
	return r, err
}

// Ticket re-issues the ticket of a paid reservation for its token holder.
func (s *Service) Ticket(ctx context.Context, spotID string, c Caller) (string, error) {
	if c.Operator {
		return "", newErr(Forbidden, "driver_only", "the ticket is fetched with the reservation's token")
	}
	r, err := s.byToken(ctx, spotID, c.Token)
	if err != nil {
		return "", err
	}
	if r.State != reservation.Paid && r.State != reservation.Taken {
		return "", newErr(Conflict, "wrong_state", "a ticket exists only for a paid reservation; this one is %s", r.State)
	}
	if s.tickets == nil {
		return "", newErr(Unavailable, "tickets_disabled", "tickets are not configured on this server")
	}
	return s.ticket(r)
}

// stay is the span a reservation accounts for: its window, opened earlier
// if the car checked in early.
func stay(r reservation.Reservation) reservation.Window {
	w := r.Window()
	if !r.CheckedInAt.IsZero() && r.CheckedInAt.Before(w.From) {
		w.From = r.CheckedInAt
	}
	return w
}
