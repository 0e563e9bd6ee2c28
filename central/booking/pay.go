package booking

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/parkgate/parkgate/central/payment"
	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
)

// PayRequest is a driver's payment of a reservation.
type PayRequest struct {
	CarID         string
	PaymentMethod string // provider reference, e.g. "pm_card_visa"
	// IdempotencyKey is the client's Idempotency-Key header: a retried
	// request with the same key gets the first answer and is never charged
	// twice. The key belongs to one request: reused with another one it is
	// refused (idempotency_key_reused), whether or not the first finished.
	IdempotencyKey string
	// RequestHash identifies the request the key was sent with (the API
	// hashes method, path and canonical body); kept with the attempt,
	// never the body itself.
	RequestHash []byte
}

// pendingStale is how long an attempt may stay pending before a new request
// may drive it again (a crash between charging and recording).
func (s *Service) pendingStale() time.Duration { return 2 * s.cfg.PaymentTimeout }

// Pay charges the reservation that the caller's token opens and, on
// success, marks it paid and issues its ticket.
//
// Payment is three steps so that no database lock is held while the
// provider is called: (1) claim an attempt in a transaction, (2) charge
// with an idempotency key derived from reservation and attempt, (3) record
// the outcome. A crash after (2) leaves the attempt pending; the next
// request re-drives that same attempt with the same provider key, so the
// provider reports the first charge instead of making a second one.
func (s *Service) Pay(ctx context.Context, spotID string, c Caller, req PayRequest) (Issued, error) {
	if c.Operator {
		return Issued{}, newErr(Forbidden, "driver_only", "payment needs the reservation's token, not the admin token")
	}
	car, err := NormaliseCarID(req.CarID)
	if err != nil {
		return Issued{}, err
	}
	if car == "" {
		return Issued{}, newErr(Invalid, "missing_field", "carId is required")
	}
	if len(req.IdempotencyKey) > 255 {
		return Issued{}, newErr(Invalid, "invalid_idempotency_key", "Idempotency-Key is longer than 255 characters")
	}
	// The spot is checked after the Idempotency-Key: the key reused on
	// another spot's path is a reused key (422), whatever else is wrong.
	r, err := s.byToken(ctx, "", c.Token)
	if err != nil {
		return Issued{}, err
	}
	var keyHash []byte
	if req.IdempotencyKey != "" {
		h := sha256.Sum256([]byte(req.IdempotencyKey))
		keyHash = h[:]
	}

	// (1) claim.
	var (
		att      store.PaymentAttempt
		replay   *store.PaymentAttempt
		complete *store.PaymentAttempt
	)
	err = s.store.Write(ctx, func(tx store.Tx) error {
		replay, complete = nil, nil
		cur, err := tx.Get(r.ID)
		if err != nil {
			return err
		}
		now := s.now()
		if keyHash != nil {
			prev, err := tx.Attempt(cur.ID, keyHash)
			switch {
			case err != nil && !errors.Is(err, store.ErrNotFound):
				return err
			case err == nil && !sameRequest(prev, req.RequestHash, car):
				// Checked before any replay: a finished first request must
				// not answer (with its plate) for a different one.
				return newErr(Unprocessable, "idempotency_key_reused", "this Idempotency-Key was used for a different request")
			case err == nil && !store.Unsettled(prev.Outcome):
				replay = &prev
				return nil
			case err == nil && prev.Outcome == store.AttemptRequiresAction:
				// The same request again after the cardholder's
				// authentication: ask the provider where it stands.
				complete = &prev
				return nil
			}
		}
		if cur.SpotID != spotID {
			return newErr(Forbidden, "wrong_spot", "the token belongs to a reservation of another spot")
		}
		if err := reservation.CanMove(cur.State, reservation.Paid); err != nil {
			return conflict(err)
		}
		atts, err := tx.Attempts(cur.ID)
		if err != nil {
			return err
		}
		var last store.PaymentAttempt
		if n := len(atts); n > 0 {
			last = atts[n-1]
		}
		if last.Outcome == store.AttemptRequiresAction && now.Before(last.StartedAt.Add(s.cfg.ActionTimeout)) {
			return newErr(Conflict, "payment_in_progress", "a payment of this reservation waits for the cardholder's authentication; complete it, or repeat that request with its Idempotency-Key")
		}
		if !cur.PaymentStartedAt.IsZero() && now.Sub(cur.PaymentStartedAt) < s.pendingStale() {
			return newErr(Conflict, "payment_in_progress", "a payment of this reservation is in progress; retry in a few seconds")
		}
		att = store.PaymentAttempt{
			ReservationID: cur.ID,
			KeyHash:       keyHash,
			RequestHash:   requestHash(keyHash, req.RequestHash),
			Outcome:       store.AttemptPending,
			Amount:        cur.Amount,
			Currency:      cur.Currency,
			CarID:         car,
			StartedAt:     now,
		}
		if last.Outcome == store.AttemptPending || last.Outcome == store.AttemptUnknown {
			// The last attempt's outcome is unknown (crash or provider
			// error): re-drive it with its provider key so a charge that
			// did happen is found, not repeated.
			// Same key, same parameters: the provider answers
			// with the first outcome only for an identical request.
			att.Number, att.ProviderKey, att.PaymentMethod = last.Number, last.ProviderKey, last.PaymentMethod
			att.Amount, att.Currency, att.Purpose = last.Amount, last.Currency, last.Purpose
		} else {
			cur.PaymentAttempts++
			att.Number = cur.PaymentAttempts
			att.ProviderKey = fmt.Sprintf("parkgate-%s-%d", cur.ID, att.Number)
			att.PaymentMethod = req.PaymentMethod
		}
		cur.PaymentStartedAt = now
		if err := tx.Update(cur); err != nil {
			return err
		}
		return tx.PutAttempt(att)
	})
	if err != nil {
		return Issued{}, err
	}
	if replay != nil {
		return s.replay(ctx, r.ID, *replay)
	}
	if complete != nil {
		cctx, cancel := context.WithTimeout(ctx, s.cfg.PaymentTimeout)
		receipt, perr := s.pay.Lookup(cctx, complete.ProviderRef)
		cancel()
		return s.finish(ctx, r, *complete, receipt, perr, "driver")
	}

	// (2) charge, outside any transaction.
	cctx, cancel := context.WithTimeout(ctx, s.cfg.PaymentTimeout)
	receipt, perr := s.pay.Charge(cctx, chargeOf(att, r.SpotID))
	cancel()
	// (3) record.
	return s.finish(ctx, r, att, receipt, perr, "driver")
}

// finish records the provider's answer about att (a charge, or a lookup
// of a payment that waited for authentication) and answers the driver:
// the ticket when paid, the client secret when the cardholder must
// still authenticate, a decline, or unavailable when the answer was lost.
func (s *Service) finish(ctx context.Context, r reservation.Reservation, att store.PaymentAttempt, receipt payment.Receipt, perr error, actor string) (Issued, error) {
	// Use a context that outlives a client that hung up: the money has
	// moved, so the outcome must be written.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer rcancel()
	outcomeOf(&att, receipt, perr)
	att.FinishedAt = s.now()
	var (
		paid     reservation.Reservation
		refunded bool
	)
	err := s.store.Write(rctx, func(tx store.Tx) error {
		cur, err := tx.Get(r.ID)
		if err != nil {
			return err
		}
		// The reconciler may have settled this attempt meanwhile (this
		// request's answer came late): its outcome stands.
		if att, refunded, err = s.recordOutcome(tx, &cur, att, actor); err != nil {
			return err
		}
		if att.Outcome != store.AttemptRequiresAction {
			cur.PaymentStartedAt = time.Time{}
		}
		if err := tx.Update(cur); err != nil {
			return err
		}
		paid = cur
		return nil
	})
	if err != nil {
		return Issued{}, err
	}
	s.metrics.payment(att.Outcome)
	if refunded {
		s.wakeRefunder()
	}
	switch att.Outcome {
	case store.AttemptDeclined:
		s.log.Info("payment declined", "reservation", r.ID, "attempt", att.Number)
		return Issued{}, &Error{Kind: Declined, Code: "payment_declined", Message: att.Message}
	case store.AttemptFailed:
		return Issued{}, &Error{Kind: Declined, Code: "payment_failed", Message: "the payment did not go through and nothing was charged; pay again with a new Idempotency-Key"}
	case store.AttemptUnknown, store.AttemptPending:
		s.log.Warn("payment provider failed", "reservation", r.ID, "attempt", att.Number, "err", perr)
		return Issued{}, &Error{Kind: Unavailable, Code: "payment_unavailable", Message: "the payment provider did not answer; nothing was charged twice, retry in a moment", Err: perr}
	case store.AttemptRequiresAction:
		s.log.Info("payment waits for the cardholder's authentication", "reservation", r.ID, "attempt", att.Number)
		secret := receipt.ClientSecret
		if receipt.Ref != att.ProviderRef || secret == "" {
			// Recorded by another request meanwhile: ask for the secret.
			cctx, cancel := context.WithTimeout(ctx, s.cfg.PaymentTimeout)
			again, err := s.pay.Lookup(cctx, att.ProviderRef)
			cancel()
			if err != nil || !again.RequiresAction() {
				return Issued{}, &Error{Kind: Unavailable, Code: "payment_unavailable", Message: "the payment's state is changing; repeat the request in a moment", Err: err}
			}
			secret = again.ClientSecret
		}
		return Issued{Reservation: paid, Action: &Action{PaymentID: att.ProviderRef, ClientSecret: secret}}, nil
	}
	if paid.State != reservation.Paid || paid.PaymentRef != att.ProviderRef {
		return Issued{}, newErr(Conflict, "wrong_state", "the reservation is %s; the charge is refunded in full", paid.State)
	}
	s.log.Info("paid", "reservation", r.ID, "spot", r.SpotID, "attempt", att.Number)
	t, err := s.ticket(paid)
	if err != nil {
		return Issued{}, err
	}
	return Issued{Reservation: paid, Ticket: t}, nil
}

// sameRequest reports whether a request with hash h and plate car is the
// one that used prev's Idempotency-Key. Attempts recorded before request
// hashes were kept have none: for them the plate is all there is to
// compare.
func sameRequest(prev store.PaymentAttempt, h []byte, car string) bool {
	if len(prev.RequestHash) == 0 {
		return prev.CarID == car
	}
	return bytes.Equal(prev.RequestHash, h)
}

// requestHash is what an attempt keeps of its request: its hash, only when
// it came with an Idempotency-Key (nothing else ever compares it).
func requestHash(keyHash, h []byte) []byte {
	if keyHash == nil {
		return nil
	}
	return h
}

// replay answers a retried request (same Idempotency-Key) with the first
// request's outcome.
func (s *Service) replay(ctx context.Context, id string, att store.PaymentAttempt) (Issued, error) {
	switch att.Outcome {
	case store.AttemptDeclined:
		return Issued{}, &Error{Kind: Declined, Code: "payment_declined", Message: att.Message}
	case store.AttemptFailed:
		// The provider said nothing was charged (found by the
		// reconciler): like a decline, the key keeps its answer.
		return Issued{}, &Error{Kind: Declined, Code: "payment_failed", Message: "the payment did not go through and nothing was charged; pay again with a new Idempotency-Key"}
	}
	r, err := s.store.Get(ctx, id)
	if err != nil {
		return Issued{}, err
	}
	if r.PaymentRef != att.ProviderRef {
		return Issued{}, newErr(Conflict, "wrong_state", "the reservation is %s", r.State)
	}
	t, err := s.ticket(r)
	if err != nil {
		return Issued{}, err
	}
	return Issued{Reservation: r, Ticket: t}, nil
}
