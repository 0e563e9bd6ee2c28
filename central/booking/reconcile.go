package booking

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/parkgate/parkgate/central/payment"
	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
)

// Refund reasons for a charge that nothing may keep.
const (
	// ReasonExpired: the charge's answer was lost and the reservation
	// expired meanwhile.
	ReasonExpired = "expired"
	// ReasonDuplicate: the reservation was already paid by another charge,
	// or had moved on (a no-show, a departure) when this one was found.
	ReasonDuplicate = "duplicate"
)

// redriveWindow is how old an attempt may be and still be asked about by
// repeating its request: Stripe keeps an idempotency key for 24 hours, and
// a request repeated after that would be a new charge.
const redriveWindow = 23 * time.Hour

// chargeOf is the provider request of an attempt. An attempt is always
// re-driven with exactly the parameters it was first sent with: the
// provider answers a repeated idempotency key with the first outcome only
// for an identical request.
//
// A driver's payment saves the payment method for an overstay fee charged
// later without the driver (off-session), as the provider intends it.
func chargeOf(att store.PaymentAttempt, spotID string) payment.Charge {
	c := payment.Charge{
		Amount:         att.Amount,
		Currency:       att.Currency,
		PaymentMethod:  att.PaymentMethod,
		IdempotencyKey: att.ProviderKey,
		Metadata:       map[string]string{"reservation_id": att.ReservationID, "spot_id": spotID},
	}
	if att.Purpose == store.PurposeOverstay {
		c.OffSession, c.Customer = true, att.CustomerRef
		c.Metadata["purpose"] = store.PurposeOverstay
	} else {
		c.SaveForOffSession = true
	}
	return c
}

// outcomeOf maps the provider's answer onto an attempt (pending before a
// charge, requires_action before a lookup).
func outcomeOf(att *store.PaymentAttempt, receipt payment.Receipt, perr error) {
	var decline *payment.DeclineError
	switch {
	case perr == nil && receipt.RequiresAction():
		att.Outcome, att.ProviderRef, att.Message = store.AttemptRequiresAction, receipt.Ref, ""
	case perr == nil:
		att.Outcome, att.ProviderRef, att.Message = store.AttemptSucceeded, receipt.Ref, ""
	case errors.As(perr, &decline):
		att.Outcome, att.Message = store.AttemptDeclined, decline.Reason
	case att.Outcome == store.AttemptRequiresAction:
		// Asked about a payment waiting for its authentication, and no
		// answer: it is still waiting, as far as anyone knows.
	default:
		att.Outcome = store.AttemptUnknown
	}
	if perr == nil && receipt.Customer != "" {
		att.CustomerRef = receipt.Customer
	}
}

// recordOutcome stores att's outcome on the locked reservation cur (which
// the caller updates) unless the attempt was settled meanwhile, by the
// reconciler or another instance: a settled outcome stands, and it is
// returned instead. A charge that succeeded on a reservation it cannot pay
// (cancelled or expired while its answer was lost, or already paid by
// another charge) is refunded in full: money is never kept when it is
// owed back. It reports whether a refund was recorded.
func (s *Service) recordOutcome(tx store.Tx, cur *reservation.Reservation, att store.PaymentAttempt, actor string) (store.PaymentAttempt, bool, error) {
	atts, err := tx.Attempts(cur.ID)
	if err != nil {
		return att, false, err
	}
	for _, a := range atts {
		if a.Number == att.Number && !store.Unsettled(a.Outcome) {
			return a, false, nil
		}
	}
	if att.Purpose == store.PurposeOverstay {
		// The fee of a stay that is over: the reservation does not
		// change; a decline is for an operator.
		if att.Outcome == store.AttemptDeclined || att.Outcome == store.AttemptFailed {
			if err := s.overstayException(tx, att); err != nil {
				return att, false, err
			}
		}
		return att, false, tx.PutAttempt(att)
	}
	refunded := false
	switch att.Outcome {
	case store.AttemptSucceeded:
		kind := store.KindPaid
		if err := reservation.CanMove(cur.State, reservation.Paid); err == nil {
			cur.State, cur.PaidAt, cur.CarID, cur.PaymentRef = reservation.Paid, att.FinishedAt, att.CarID, att.ProviderRef
		} else if cur.PaymentRef != att.ProviderRef {
			reason := ReasonDuplicate
			switch cur.State {
			case reservation.Cancelled:
				reason = ReasonCancelled
			case reservation.Expired:
				reason = ReasonExpired
			}
			if err := s.refundCharge(tx, *cur, att, reason); err != nil {
				return att, false, err
			}
			refunded = true
			kind = ""
			s.log.Warn("charge found on a reservation that cannot be paid; refunding it in full",
				"reservation", cur.ID, "state", cur.State, "attempt", att.Number, "reason", reason)
		}
		if kind != "" {
			if err := tx.Log(change(kind, actor, *cur, att.FinishedAt)); err != nil {
				return att, false, err
			}
		}
	case store.AttemptDeclined:
		if err := tx.Log(change(store.KindPaymentDeclined, actor, *cur, att.FinishedAt)); err != nil {
			return att, false, err
		}
	}
	return att, refunded, tx.PutAttempt(att)
}

// refundCharge records, as pending, the full refund of att's charge.
func (s *Service) refundCharge(tx store.Tx, r reservation.Reservation, att store.PaymentAttempt, reason string) error {
	prev, err := tx.Refunds(r.ID)
	if err != nil {
		return err
	}
	n := len(prev) + 1
	return tx.PutRefund(store.Refund{
		ReservationID: r.ID, Number: n, Reason: reason, Amount: att.Amount, Currency: att.Currency,
		ChargeRef: att.ProviderRef, ProviderKey: fmt.Sprintf("parkgate-refund-%s-%d", r.ID, n),
		Status: store.RefundPending, CreatedAt: s.now(),
	})
}

// wakeRefunder tells the refunder that a refund was recorded.
func (s *Service) wakeRefunder() {
	select {
	case s.refundDue <- struct{}{}:
	default:
	}
}

// Reconcile settles the payment attempts whose outcome is not known — the
// provider erred or did not answer in time, or centrald died between
// charging and recording — of every reservation, live or not. Each is
// asked about by repeating its request with its own idempotency key, which
// the provider answers with the first outcome instead of charging again.
// A charge that succeeded pays its reservation if it is still waiting for
// payment, and is refunded in full if it was cancelled or expired.
//
// Every instance reconciles; an attempt is claimed on its locked
// reservation row (the same in-flight mark a payment request sets), so two
// instances never drive one attempt at once, and a settled outcome is
// never written twice.
func (s *Service) Reconcile(ctx context.Context) (settled int, err error) {
	now := s.now()
	// An attempt younger than the payment timeout may still be in its
	// own request's hands.
	atts, err := s.store.UnsettledAttempts(ctx, now.Add(-redriveWindow), now.Add(time.Microsecond), 500)
	if err != nil {
		return 0, err
	}
	for _, a := range atts {
		switch {
		case a.Outcome == store.AttemptRequiresAction && now.Before(a.StartedAt.Add(s.cfg.ActionTimeout)):
			continue // the cardholder may still authenticate: a webhook or the repeated request settles it
		case a.Purpose != store.PurposeOverstay && now.Sub(a.StartedAt) < s.cfg.PaymentTimeout:
			// A driver's attempt younger than the payment timeout may
			// still be in its own request's hands. Overstay fees have no
			// request of their own: the reconciler is theirs.
			continue
		}
		ok, err := s.reconcileOne(ctx, a)
		if err != nil {
			return settled, err
		}
		if ok {
			settled++
		}
	}
	return settled, nil
}

func (s *Service) reconcileOne(ctx context.Context, a store.PaymentAttempt) (bool, error) {
	var (
		claimed time.Time
		spotID  string
	)
	err := s.store.Write(ctx, func(tx store.Tx) error {
		cur, err := tx.Get(a.ReservationID)
		if err != nil {
			return err
		}
		atts, err := tx.Attempts(cur.ID)
		if err != nil {
			return err
		}
		found := false
		for _, x := range atts {
			if x.Number == a.Number && store.Unsettled(x.Outcome) {
				a, found = x, true
			}
		}
		now := s.now()
		if !found || (!cur.PaymentStartedAt.IsZero() && now.Sub(cur.PaymentStartedAt) < s.cfg.PaymentTimeout) {
			return errSkip // settled meanwhile, or another request or instance is driving it
		}
		cur.PaymentStartedAt, claimed, spotID = now, now, cur.SpotID
		return tx.Update(cur)
	})
	if errors.Is(err, errSkip) {
		return false, nil
	}
	if err != nil {
		return false, err
	}

	cctx, cancel := context.WithTimeout(ctx, s.cfg.PaymentTimeout)
	var (
		receipt payment.Receipt
		perr    error
	)
	if a.Outcome == store.AttemptRequiresAction {
		// The authentication timed out: give the payment up at the
		// provider. If it completed meanwhile, it cannot be cancelled,
		// and its state says what happened.
		if perr = s.pay.Cancel(cctx, a.ProviderRef); perr == nil {
			a.Outcome, a.Message = store.AttemptFailed, "the cardholder did not authenticate in time; the payment was cancelled"
		} else {
			receipt, perr = s.pay.Lookup(cctx, a.ProviderRef)
			outcomeOf(&a, receipt, perr)
		}
	} else {
		receipt, perr = s.pay.Charge(cctx, chargeOf(a, spotID))
		outcomeOf(&a, receipt, perr)
	}
	cancel()
	a.FinishedAt = s.now()

	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer rcancel()
	var refunded bool
	err = s.store.Write(rctx, func(tx store.Tx) error {
		cur, err := tx.Get(a.ReservationID)
		if err != nil {
			return err
		}
		if cur.PaymentStartedAt.Equal(claimed) {
			cur.PaymentStartedAt = time.Time{}
		}
		// Still no answer (unknown) is recorded too, for the next round.
		var stored store.PaymentAttempt
		stored, refunded, err = s.recordOutcome(tx, &cur, a, "system")
		if err != nil {
			return err
		}
		if stored.Outcome == store.AttemptRequiresAction && stored.Purpose == store.PurposeReservation {
			// A re-driven charge that waits for the cardholder keeps its
			// reservation held, up to the action timeout.
			cur.PaymentStartedAt = stored.StartedAt
		}
		return tx.Update(cur)
	})
	if err != nil {
		return false, err
	}
	if refunded {
		s.wakeRefunder()
	}
	if store.Unsettled(a.Outcome) {
		s.log.Warn("payment attempt still unsettled; will ask again", "reservation", a.ReservationID, "attempt", a.Number, "err", perr)
		return false, nil
	}
	s.metrics.payment(a.Outcome)
	s.log.Info("payment attempt reconciled", "reservation", a.ReservationID, "attempt", a.Number, "outcome", a.Outcome, "refunded", refunded)
	return true, nil
}

// Reconciler runs Reconcile every Interval until its context ends.
type Reconciler struct {
	Service  *Service
	Interval time.Duration
}

// Serve implements the service contract of internal/service.
func (rc *Reconciler) Serve(ctx context.Context) error {
	s := rc.Service
	for {
		if _, err := s.Reconcile(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("reconciling payments failed", "err", err)
		}
		t := s.clock.NewTimer(rc.Interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-s.chargeDue:
			t.Stop()
		case <-t.C():
		}
	}
}
