package booking

import (
	"context"
	"fmt"
	"time"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
)

// OverstayFee is what a car that left r at leftAt owes for overstaying:
// nothing up to reservedUntil + OverstayGrace, then OverstayPerHour (or
// the reservation's own hourly price) for each started hour beyond that.
// Reservations not paid by card (operator pushes) owe nothing here.
func (s *Service) OverstayFee(r reservation.Reservation, leftAt time.Time) int64 {
	due := r.Until.Add(s.cfg.OverstayGrace)
	if r.PaymentRef == "" || r.Amount <= 0 || !leftAt.After(due) {
		return 0
	}
	hours := int64((leftAt.Sub(due) + time.Hour - 1) / time.Hour)
	rate := s.cfg.OverstayPerHour
	if rate < 0 {
		started := int64((r.Window().Duration() + time.Hour - 1) / time.Hour)
		rate = r.Amount / max(started, 1)
	}
	return hours * rate
}

// recordOverstay adds, inside the exit's transaction, the off-session
// charge of the overstay fee that a car leaving r at leftAt owes, as a
// pending attempt of the reservation; the reconciler charges it (woken at
// once). The exit event is applied once, so the fee is charged once. It
// reports whether an attempt was recorded.
func (s *Service) recordOverstay(tx store.Tx, r *reservation.Reservation, leftAt, now time.Time) (bool, error) {
	fee := s.OverstayFee(*r, leftAt)
	if fee <= 0 {
		return false, nil
	}
	atts, err := tx.Attempts(r.ID)
	if err != nil {
		return false, err
	}
	var paidBy store.PaymentAttempt
	for _, a := range atts {
		if a.Purpose == store.PurposeOverstay {
			return false, nil // already charged for this stay
		}
		if a.ProviderRef == r.PaymentRef && a.Outcome == store.AttemptSucceeded {
			paidBy = a
		}
	}
	r.PaymentAttempts++
	att := store.PaymentAttempt{
		ReservationID: r.ID, Number: r.PaymentAttempts, Purpose: store.PurposeOverstay,
		ProviderKey: fmt.Sprintf("parkgate-overstay-%s-%d", r.ID, r.PaymentAttempts),
		Outcome:     store.AttemptPending, Amount: fee, Currency: r.Currency, CarID: r.CarID,
		PaymentMethod: paidBy.PaymentMethod, CustomerRef: paidBy.CustomerRef, StartedAt: now,
	}
	if att.CustomerRef == "" {
		// Paid without saving the card (before off-session charges were
		// set up): nothing to charge, an operator collects it.
		att.Outcome, att.Message, att.FinishedAt = store.AttemptDeclined, "no payment method was saved for charges without the driver", now
		if err := s.overstayException(tx, att); err != nil {
			return false, err
		}
	}
	if err := tx.PutAttempt(att); err != nil {
		return false, err
	}
	s.log.Info("overstay fee due", "reservation", r.ID, "amount", fee, "left_at", leftAt)
	return att.Outcome == store.AttemptPending, nil
}

// overstayException records an overstay fee that could not be charged, for
// an operator: it is never retried blindly.
func (s *Service) overstayException(tx store.Tx, att store.PaymentAttempt) error {
	s.log.Warn("overstay fee not paid: an operator must collect it", "reservation", att.ReservationID, "amount", att.Amount)
	return tx.PutPaymentException(store.PaymentException{
		ID: att.ProviderKey, Kind: store.ExceptionOverstayUnpaid, ReservationID: att.ReservationID,
		Amount: att.Amount, Currency: att.Currency, ProviderRef: att.ProviderRef,
		Reason: att.Message, CreatedAt: att.FinishedAt,
	})
}

// wakeReconciler tells the reconciler that an attempt waits to be charged.
func (s *Service) wakeReconciler() {
	select {
	case s.chargeDue <- struct{}{}:
	default:
	}
}

// Overstay returns the overstay charge of a reservation, if it has one.
func (s *Service) Overstay(ctx context.Context, id string) (store.PaymentAttempt, bool, error) {
	atts, err := s.store.PaymentAttempts(ctx, id)
	if err != nil {
		return store.PaymentAttempt{}, false, err
	}
	for _, a := range atts {
		if a.Purpose == store.PurposeOverstay {
			return a, true, nil
		}
	}
	return store.PaymentAttempt{}, false, nil
}
