// Package payment is the small interface between the booking rules and a
// payment provider (the fake one for demos and tests, Stripe in production).
// Card data never passes through parkgate: a charge names a payment method
// reference the provider already holds (e.g. "pm_card_visa").
package payment

import (
	"context"
	"errors"
	"fmt"
)

// Provider charges a payment method.
type Provider interface {
	// Charge takes Amount from the payment method. The same IdempotencyKey
	// must never charge twice: a retry returns the first outcome.
	// A decline is a *DeclineError; any other error means the outcome is
	// unknown or nothing was charged, and the caller may retry with the
	// same key.
	Charge(ctx context.Context, c Charge) (Receipt, error)
	// Refund returns part or all of a successful charge. The same
	// IdempotencyKey must never refund twice. Errors are as for Charge
	// (a *DeclineError when the provider refuses the refund for good).
	Refund(ctx context.Context, r Refund) (Receipt, error)
}

// Charge is one request for money.
type Charge struct {
	Amount         int64  // in the currency's minor unit
	Currency       string // ISO 4217, lower case
	PaymentMethod  string // provider reference, e.g. "pm_card_visa"
	IdempotencyKey string
	// Metadata is attached to the provider's object (reservation id, spot).
	Metadata map[string]string
}

// Refund is one request to give money back.
type Refund struct {
	ChargeRef      string // Receipt.Ref of the charge (payment intent id)
	Amount         int64  // in the currency's minor unit; at most what was charged
	Currency       string
	IdempotencyKey string
	Reason         string // why, for the provider's records: "early_departure", "no_show", "cancelled"
	Metadata       map[string]string
}

// Receipt is a successful charge or refund.
type Receipt struct {
	// Ref is the provider's object id (payment intent, refund).
	Ref string
}

// DeclineError is a payment the provider refused; the driver may retry with
// another payment method.
type DeclineError struct {
	Code   string // provider's decline code, e.g. "card_declined"
	Reason string // sentence for the driver
}

// Error includes the reason, which is safe to show to the driver.
func (e *DeclineError) Error() string {
	return fmt.Sprintf("payment declined: %s", e.Reason)
}

// IsDecline reports whether err is a decline.
func IsDecline(err error) bool {
	var d *DeclineError
	return errors.As(err, &d)
}

// ErrUnavailable is a provider that could not be reached or answered with an
// error; nothing is known to be charged and a retry is safe.
var ErrUnavailable = errors.New("payment provider unavailable")
