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
	// A charge that needs the cardholder's authentication (3-D Secure) is
	// no error: its Receipt has Status StatusRequiresAction, the payment's
	// Ref and the ClientSecret the driver's app completes it with.
	Charge(ctx context.Context, c Charge) (Receipt, error)
	// Refund returns part or all of a successful charge. The same
	// IdempotencyKey must never refund twice. Errors are as for Charge
	// (a *DeclineError when the provider refuses the refund for good).
	Refund(ctx context.Context, r Refund) (Receipt, error)
	// Lookup reports where the payment ref (Receipt.Ref of a charge)
	// stands now: a Receipt with StatusSucceeded or StatusRequiresAction,
	// a *DeclineError when it failed or was cancelled (nothing charged),
	// or another error when that is not known.
	Lookup(ctx context.Context, ref string) (Receipt, error)
	// Cancel gives up a payment that waits for the cardholder's
	// authentication; nothing is charged. A payment that completed
	// meanwhile cannot be cancelled: an error, and Lookup tells.
	Cancel(ctx context.Context, ref string) error
}

// Receipt statuses.
const (
	StatusSucceeded      = "succeeded"
	StatusRequiresAction = "requires_action"
)

// Charge is one request for money.
type Charge struct {
	Amount         int64  // in the currency's minor unit
	Currency       string // ISO 4217, lower case
	PaymentMethod  string // provider reference, e.g. "pm_card_visa"
	IdempotencyKey string
	// Metadata is attached to the provider's object (reservation id, spot).
	Metadata map[string]string
	// SaveForOffSession keeps the payment method, on a customer of the
	// provider's, for later charges without the driver (an overstay fee):
	// Receipt.Customer names that customer.
	SaveForOffSession bool
	// OffSession charges Customer's saved PaymentMethod without the
	// driver present; a card that would need authentication declines.
	OffSession bool
	Customer   string
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

// Receipt is a successful charge or refund, or a charge waiting for the
// cardholder's authentication.
type Receipt struct {
	// Ref is the provider's object id (payment intent, refund).
	Ref string
	// Status is StatusSucceeded (also when empty) or StatusRequiresAction.
	Status string
	// ClientSecret lets the driver's app complete an authentication
	// (Stripe.js handleNextAction). A secret: never logged nor stored.
	ClientSecret string
	// Customer is the provider's customer the payment method was saved
	// to (Charge.SaveForOffSession).
	Customer string
}

// RequiresAction reports whether the charge waits for the cardholder.
func (r Receipt) RequiresAction() bool { return r.Status == StatusRequiresAction }

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
