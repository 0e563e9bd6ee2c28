package booking

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/parkgate/parkgate/central/payment"
	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
)

// Refund reasons.
const (
	ReasonEarlyDeparture = "early_departure"
	ReasonNoShow         = "no_show"
	ReasonCancelled      = "cancelled"
)

// RefundDue is the refund policy (docs/payments.md): what a reservation
// that moved from prev to r.State at now is owed back, and why.
//
//   - Early departure (taken → left; paid → left when a gate reports an
//     exit whose entry it never reported): the unused whole hours of the window,
//     at the reservation's own hourly price, if RefundUnused; everything
//     when the car left before the window started (it checked in early,
//     within EarlyArrival), like a cancellation before the start.
//   - No-show (paid → no_show): everything but NoShowFee.
//   - Cancelled before the window starts: everything; after it started:
//     the unused whole hours, if RefundUnused.
//
// Reservations not paid through the provider (operator pushes) owe nothing.
func (s *Service) RefundDue(prev reservation.State, r reservation.Reservation, now time.Time) (int64, string) {
	if r.PaymentRef == "" || r.Amount <= 0 {
		return 0, ""
	}
	switch {
	case (prev == reservation.Taken || prev == reservation.Paid) && r.State == reservation.Left && r.LeftAt.Before(r.From):
		// Gone before the window started (in early, out early): nothing of
		// the window was used, so it is refunded as a cancellation before
		// the start would be, in full and whatever RefundUnused says.
		// Counting only its whole hours would keep a started hour's price
		// (1 h 30 min costs two hours, has one whole hour) for no parking.
		return r.Amount, ReasonEarlyDeparture
	case (prev == reservation.Taken || prev == reservation.Paid) && r.State == reservation.Left && s.cfg.RefundUnused:
		return unusedHours(r, r.LeftAt), ReasonEarlyDeparture
	case prev == reservation.Paid && r.State == reservation.NoShow:
		return r.Amount - min(s.cfg.NoShowFee, r.Amount), ReasonNoShow
	case prev == reservation.Paid && r.State == reservation.Cancelled && now.Before(r.From):
		return r.Amount, ReasonCancelled
	case prev == reservation.Paid && r.State == reservation.Cancelled && s.cfg.RefundUnused:
		return unusedHours(r, now), ReasonCancelled
	}
	return 0, ""
}

// unusedHours is the price of the whole hours of r's window left after t.
func unusedHours(r reservation.Reservation, t time.Time) int64 {
	if t.Before(r.From) {
		t = r.From
	}
	if !t.Before(r.Until) {
		return 0
	}
	started := int64((r.Window().Duration() + time.Hour - 1) / time.Hour)
	hourly := r.Amount / started
	return min(int64(r.Until.Sub(t)/time.Hour)*hourly, r.Amount)
}

// recordRefund adds the refund a state change owes, as pending, inside
// the change's transaction.
func (s *Service) recordRefund(tx store.Tx, prev reservation.State, r reservation.Reservation, now time.Time) (bool, error) {
	amount, reason := s.RefundDue(prev, r, now)
	if amount <= 0 {
		return false, nil
	}
	prevRefunds, err := tx.Refunds(r.ID)
	if err != nil {
		return false, err
	}
	n := len(prevRefunds) + 1
	return true, tx.PutRefund(store.Refund{
		ReservationID: r.ID, Number: n, Reason: reason, Amount: amount, Currency: r.Currency,
		ChargeRef: r.PaymentRef, ProviderKey: fmt.Sprintf("parkgate-refund-%s-%d", r.ID, n),
		Status: store.RefundPending, CreatedAt: now,
	})
}

// SettleRefunds asks the provider for every pending refund, oldest first,
// and records each outcome. A refund the provider could not be asked about
// stays pending for the next round; the provider's idempotency key makes a
// repeated request (or two instances settling at once) refund only once.
func (s *Service) SettleRefunds(ctx context.Context) (settled int, err error) {
	pending, err := s.store.PendingRefunds(ctx, 100)
	if err != nil {
		return 0, err
	}
	for _, rf := range pending {
		cctx, cancel := context.WithTimeout(ctx, s.cfg.PaymentTimeout)
		receipt, perr := s.pay.Refund(cctx, payment.Refund{
			ChargeRef: rf.ChargeRef, Amount: rf.Amount, Currency: rf.Currency,
			IdempotencyKey: rf.ProviderKey, Reason: rf.Reason,
			Metadata: map[string]string{"reservation_id": rf.ReservationID, "reason": rf.Reason},
		})
		cancel()
		var refused *payment.DeclineError
		rf.Tries++
		switch {
		case perr == nil:
			rf.Status, rf.ProviderRef, rf.FinishedAt = store.RefundSucceeded, receipt.Ref, s.now()
		case errors.As(perr, &refused):
			rf.Status, rf.Message, rf.FinishedAt = store.RefundRefused, refused.Reason, s.now()
			s.log.Warn("refund refused by the provider; an operator must settle it", "reservation", rf.ReservationID, "refund", rf.Number, "code", refused.Code)
		default:
			s.log.Warn("refund not settled; will retry", "reservation", rf.ReservationID, "refund", rf.Number, "tries", rf.Tries, "err", perr)
		}
		stale := false
		err := s.store.Write(ctx, func(tx store.Tx) error {
			// Another instance may have settled it meanwhile (the provider's
			// idempotency key made both requests one refund): its outcome
			// stands, and this one must not turn it back to pending.
			cur, err := tx.Refunds(rf.ReservationID)
			if err != nil {
				return err
			}
			stale = !slices.ContainsFunc(cur, func(c store.Refund) bool {
				return c.Number == rf.Number && c.Status == store.RefundPending
			})
			if stale {
				return nil
			}
			return tx.PutRefund(rf)
		})
		if err != nil {
			return settled, err
		}
		if stale {
			continue
		}
		s.metrics.refund(rf.Status)
		if rf.Status == store.RefundPending {
			// The provider is unreachable: leave the rest for later.
			return settled, nil
		}
		settled++
		s.log.Info("refund settled", "reservation", rf.ReservationID, "refund", rf.Number, "status", rf.Status, "amount", rf.Amount)
	}
	return settled, nil
}

// Refunder settles pending refunds when one is recorded and every
// Interval (to retry those the provider could not take).
type Refunder struct {
	Service  *Service
	Interval time.Duration
}

// Serve implements the service contract of internal/service.
func (rf *Refunder) Serve(ctx context.Context) error {
	s := rf.Service
	for {
		if _, err := s.SettleRefunds(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("settling refunds failed", "err", err)
		}
		t := s.clock.NewTimer(rf.Interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-s.refundDue:
			t.Stop()
		case <-t.C():
		}
	}
}
