package booking

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/parkgate/parkgate/central/payment"
	"github.com/parkgate/parkgate/central/store"
)

// Provider event types centrald applies (Stripe's names); others are
// acknowledged and ignored.
const (
	EventPaymentSucceeded = "payment_intent.succeeded"
	EventPaymentFailed    = "payment_intent.payment_failed"
	EventChargeRefunded   = "charge.refunded"
	EventDisputeCreated   = "charge.dispute.created"
)

// PaymentEvent is one event of the payment provider, as the webhook
// endpoint verified and read it.
type PaymentEvent struct {
	ID   string // the provider's event id: applied once
	Type string
	// PaymentRef is the payment (PaymentIntent) the event is about.
	PaymentRef string
	// ReservationID is the reservation the payment's metadata names, if
	// any: a payment of ours whose attempt is not recorded yet.
	ReservationID string
	// Message is a failed payment's reason, or a dispute's.
	Message string
	// Amount and Currency: a dispute's amount; for charge.refunded, the
	// total refunded of the charge so far.
	Amount   int64
	Currency string
	// ObjectRef is the event's own object when it is not the payment (the
	// dispute).
	ObjectRef string
}

// completer is the fake provider's way to finish the authentications it
// holds, from a signed event, so the whole 3-D Secure flow runs without a
// Stripe account.
type completer interface {
	Complete(ctx context.Context, ref string, succeeded bool) error
}

// errNotYet is a payment event about a payment of ours whose attempt is
// not recorded yet (its request is still being answered): the provider
// redelivers it.
var errNotYet = &Error{Kind: Unavailable, Code: "not_recorded_yet", Message: "this payment is not recorded yet; deliver the event again later"}

// ApplyPaymentEvent applies one provider event, once: the event id is
// stored in the same transaction as its effect, so a redelivery reports
// duplicate and changes nothing. The outcome does not depend on the order
// in which events arrive: a payment's outcome, once settled, stands.
//
//   - payment_intent.succeeded: the attempt is settled and the reservation
//     becomes paid; if it is no longer waiting for payment, the charge is
//     refunded in full.
//   - payment_intent.payment_failed: the attempt is declined.
//   - charge.refunded: pending refunds of the charge, up to the amount the
//     provider says it refunded, are recorded as settled.
//   - charge.dispute.created: a payment exception for an operator, with
//     the amount and the reason.
func (s *Service) ApplyPaymentEvent(ctx context.Context, ev PaymentEvent) (duplicate bool, err error) {
	if ev.ID == "" || ev.Type == "" {
		return false, newErr(Invalid, "invalid_event", "an event needs an id and a type")
	}
	if c, ok := s.pay.(completer); ok && ev.PaymentRef != "" && (ev.Type == EventPaymentSucceeded || ev.Type == EventPaymentFailed) {
		// A payment the fake does not know is a decline: nothing to do.
		if err := c.Complete(ctx, ev.PaymentRef, ev.Type == EventPaymentSucceeded); err != nil && !payment.IsDecline(err) {
			return false, &Error{Kind: Unavailable, Code: "payment_unavailable", Message: "the payment provider could not complete the payment", Err: err}
		}
	}
	var refunded bool
	err = s.store.Write(ctx, func(tx store.Tx) error {
		refunded = false
		now := s.now()
		if err := tx.PutWebhookEvent(ev.ID, ev.Type, now); err != nil {
			return err
		}
		switch ev.Type {
		case EventPaymentSucceeded, EventPaymentFailed:
			var err error
			refunded, err = s.paymentOutcomeEvent(tx, ev, now)
			return err
		case EventChargeRefunded:
			return s.refundedEvent(tx, ev, now)
		case EventDisputeCreated:
			return s.disputeEvent(tx, ev, now)
		}
		return nil
	})
	if errors.Is(err, store.ErrDuplicate) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if refunded {
		s.wakeRefunder()
	}
	return false, nil
}

func (s *Service) paymentOutcomeEvent(tx store.Tx, ev PaymentEvent, now time.Time) (bool, error) {
	att, err := tx.AttemptByRef(ev.PaymentRef)
	if errors.Is(err, store.ErrNotFound) {
		if ev.ReservationID != "" {
			if _, err := tx.Get(ev.ReservationID); err == nil {
				return false, errNotYet
			}
		}
		s.log.Info("payment event about no payment of this site; ignored", "event", ev.ID, "type", ev.Type)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	cur, err := tx.Get(att.ReservationID)
	if err != nil {
		return false, err
	}
	if ev.Type == EventPaymentSucceeded {
		att.Outcome, att.Message = store.AttemptSucceeded, ""
	} else {
		msg := ev.Message
		if msg == "" {
			msg = "the payment failed"
		}
		att.Outcome, att.Message = store.AttemptDeclined, truncate(msg, 200)
	}
	att.FinishedAt = now
	stored, refunded, err := s.recordOutcome(tx, &cur, att, "provider")
	if err != nil {
		return false, err
	}
	if !store.Unsettled(stored.Outcome) && stored.Purpose == store.PurposeReservation {
		cur.PaymentStartedAt = time.Time{}
	}
	if err := tx.Update(cur); err != nil {
		return false, err
	}
	s.log.Info("payment event applied", "event", ev.ID, "type", ev.Type, "reservation", cur.ID, "attempt", stored.Number, "outcome", stored.Outcome)
	return refunded, nil
}

func (s *Service) refundedEvent(tx store.Tx, ev PaymentEvent, now time.Time) error {
	att, err := tx.AttemptByRef(ev.PaymentRef)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := tx.Get(att.ReservationID); err != nil {
		return err
	}
	rs, err := tx.Refunds(att.ReservationID)
	if err != nil {
		return err
	}
	var settled int64
	for _, rf := range rs {
		if rf.ChargeRef == ev.PaymentRef && rf.Status == store.RefundSucceeded {
			settled += rf.Amount
		}
	}
	for _, rf := range rs {
		if rf.ChargeRef != ev.PaymentRef || rf.Status != store.RefundPending || settled+rf.Amount > ev.Amount {
			continue
		}
		settled += rf.Amount
		rf.Status, rf.FinishedAt = store.RefundSucceeded, now
		if err := tx.PutRefund(rf); err != nil {
			return err
		}
		s.log.Info("refund settled by the provider's event", "reservation", rf.ReservationID, "refund", rf.Number, "event", ev.ID)
	}
	return nil
}

func (s *Service) disputeEvent(tx store.Tx, ev PaymentEvent, now time.Time) error {
	var resID string
	if att, err := tx.AttemptByRef(ev.PaymentRef); err == nil {
		resID = att.ReservationID
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	reason := ev.Message
	if reason == "" {
		reason = "no reason given"
	}
	e := store.PaymentException{ID: ev.ID, Kind: store.ExceptionDispute, ReservationID: resID, Amount: ev.Amount,
		Currency: ev.Currency, ProviderRef: ev.ObjectRef, Reason: truncate(reason, 200), CreatedAt: now}
	if err := tx.PutPaymentException(e); err != nil {
		return fmt.Errorf("dispute %s: %w", ev.ObjectRef, err)
	}
	s.log.Warn("payment disputed: an operator must answer it", "reservation", resID, "dispute", ev.ObjectRef, "amount", ev.Amount, "reason", e.Reason)
	return nil
}

// PaymentExceptions lists the payment exceptions for operators, newest
// first.
func (s *Service) PaymentExceptions(ctx context.Context, limit int) ([]store.PaymentException, error) {
	return s.store.PaymentExceptions(ctx, limit)
}

// ResolvePaymentException records that an operator settled a payment
// exception (answered a dispute, collected an unpaid overstay fee), with a
// note (the caller's Reason), and logs it. The exception is kept, resolved.
func (s *Service) ResolvePaymentException(ctx context.Context, id string, c Caller) (store.PaymentException, error) {
	if !c.Operator {
		return store.PaymentException{}, newErr(Forbidden, "not_operator", "only operators resolve exceptions")
	}
	if strings.TrimSpace(c.Reason) == "" {
		return store.PaymentException{}, newErr(Invalid, "missing_note", "say how the exception was resolved")
	}
	err := s.store.Write(ctx, func(tx store.Tx) error {
		now := s.now()
		if err := tx.ResolvePaymentException(id, c.resolver(), c.Reason, now); errors.Is(err, store.ErrNotFound) {
			return newErr(NotFound, "unknown_exception", "there is no payment exception %q", truncate(id, 40))
		} else if err != nil {
			return err
		}
		return tx.Log(store.Change{At: now, Kind: store.KindExceptionResolved, Actor: c.actor(), Note: id + ": " + c.Reason})
	})
	if err != nil {
		return store.PaymentException{}, err
	}
	e, err := s.store.PaymentException(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.PaymentException{}, newErr(NotFound, "unknown_exception", "there is no payment exception %q", truncate(id, 40))
	}
	return e, err
}
