package booking

import (
	"context"
	"errors"
	"time"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
)

// Sweep expires unpaid reservations past the payment hold and releases paid
// ones whose car has not come by reservedFrom + the no-show grace. Each is
// its own transaction that re-checks the condition on the locked row, so
// several centrald instances may sweep at once without double effects.
func (s *Service) Sweep(ctx context.Context) (expired, noShows int, err error) {
	now := s.now()
	unpaid, err := s.store.List(ctx, store.Filter{States: []reservation.State{reservation.Reserved}, CreatedBefore: now.Add(-s.cfg.PaymentHold).Add(time.Microsecond)})
	if err != nil {
		return 0, 0, err
	}
	for _, r := range unpaid {
		var actionDue time.Time
		if !r.PaymentStartedAt.IsZero() {
			// A payment waiting for the cardholder's authentication holds
			// the reservation, up to its action timeout.
			if actionDue, err = s.actionDeadline(ctx, r.ID); err != nil {
				return expired, noShows, err
			}
		}
		ok, err := s.sweepOne(ctx, r.ID, reservation.Expired, store.KindExpired, actionDue)
		if err != nil {
			return expired, noShows, err
		}
		if ok {
			expired++
		}
	}
	late, err := s.store.List(ctx, store.Filter{States: []reservation.State{reservation.Paid}, FromBefore: now.Add(-s.cfg.NoShowGrace).Add(time.Microsecond)})
	if err != nil {
		return expired, noShows, err
	}
	for _, r := range late {
		ok, err := s.sweepOne(ctx, r.ID, reservation.NoShow, store.KindNoShow, time.Time{})
		if err != nil {
			return expired, noShows, err
		}
		if ok {
			noShows++
		}
	}
	if expired+noShows > 0 {
		s.log.Info("swept reservations", "expired", expired, "no_shows", noShows)
	}
	return expired, noShows, nil
}

// errSkip ends a sweep transaction that found nothing to do.
var errSkip = errors.New("nothing to sweep")

// actionDeadline is when the authentication that reservation id's latest
// payment attempt waits for times out (zero if it waits for none).
func (s *Service) actionDeadline(ctx context.Context, id string) (time.Time, error) {
	atts, err := s.store.PaymentAttempts(ctx, id)
	if err != nil || len(atts) == 0 {
		return time.Time{}, err
	}
	if last := atts[len(atts)-1]; last.Outcome == store.AttemptRequiresAction {
		return last.StartedAt.Add(s.cfg.ActionTimeout), nil
	}
	return time.Time{}, nil
}

func (s *Service) sweepOne(ctx context.Context, id string, to reservation.State, kind string, actionDue time.Time) (bool, error) {
	_, err := s.move(ctx, id, "system", func(r *reservation.Reservation, now time.Time) (string, error) {
		if !s.due(*r, to, now, actionDue) {
			return "", errSkip
		}
		r.State, r.EndedAt = to, now
		return kind, nil
	})
	if errors.Is(err, errSkip) {
		return false, nil
	}
	return err == nil, err
}

// due re-checks, on the locked row, that r should move to state to now.
// actionDue is when the authentication its payment waits for times out
// (zero: none).
func (s *Service) due(r reservation.Reservation, to reservation.State, now, actionDue time.Time) bool {
	switch to {
	case reservation.Expired:
		if r.State != reservation.Reserved || now.Before(r.CreatedAt.Add(s.cfg.PaymentHold)) {
			return false
		}
		// Never expire a reservation while its charge is in flight, nor
		// while the cardholder may still authenticate it.
		if !r.PaymentStartedAt.IsZero() && !actionDue.IsZero() {
			return !now.Before(actionDue)
		}
		return r.PaymentStartedAt.IsZero() || now.Sub(r.PaymentStartedAt) >= s.pendingStale()
	case reservation.NoShow:
		return r.State == reservation.Paid && !now.Before(r.From.Add(s.cfg.NoShowGrace))
	}
	return false
}

// Sweeper runs Sweep every Interval until its context ends.
type Sweeper struct {
	Service  *Service
	Interval time.Duration
}

// Serve implements the service contract of internal/service.
func (sw *Sweeper) Serve(ctx context.Context) error {
	for {
		if _, _, err := sw.Service.Sweep(ctx); err != nil && ctx.Err() == nil {
			// A failed sweep is retried at the next tick; the rows it
			// missed are still due then.
			sw.Service.log.Error("sweep failed", "err", err)
		}
		t := sw.Service.clock.NewTimer(sw.Interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C():
		}
	}
}
