// Package fakepay is a payment provider for demos and tests that mirrors
// Stripe's test payment methods: pm_card_visa (and the other pm_card_*
// brands) succeed, pm_card_chargeDeclined and its kin decline, and
// pm_card_timeout stands for a provider that charged but whose answer was
// lost: the first request never answers (until its context ends), yet the
// charge is made, so a retry with the same idempotency key reports it. It
// remembers idempotency keys like Stripe does, so a retried charge is not
// counted twice.
package fakepay

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/parkgate/parkgate/central/payment"
)

// declines maps Stripe's declining test methods to their decline codes.
var declines = map[string]string{
	"pm_card_chargeDeclined":                  "card_declined",
	"pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
	"pm_card_chargeDeclinedExpiredCard":       "expired_card",
	"pm_card_chargeDeclinedIncorrectCvc":      "incorrect_cvc",
	"pm_card_chargeDeclinedLostCard":          "lost_card",
	"pm_card_chargeDeclinedStolenCard":        "stolen_card",
	"pm_card_chargeDeclinedFraudulent":        "fraudulent",
}

// Timeout is the payment method whose first charge succeeds unanswered.
const Timeout = "pm_card_timeout"

// Provider is the fake. The zero value is ready to use.
type Provider struct {
	mu       sync.Mutex
	byKey    map[string]outcome
	charges  int
	refunded map[string]int64 // charge ref → refunded so far
	captured map[string]int64 // charge ref → amount charged
}

type outcome struct {
	receipt payment.Receipt
	err     error
}

// Charges reports how many distinct charges succeeded (retries with the same
// idempotency key count once).
func (p *Provider) Charges() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.charges
}

// Charge implements payment.Provider.
func (p *Provider) Charge(ctx context.Context, c payment.Charge) (payment.Receipt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if o, ok := p.byKey[c.IdempotencyKey]; ok && c.IdempotencyKey != "" {
		return o.receipt, o.err
	}
	var o outcome
	switch code, declined := declines[c.PaymentMethod]; {
	case c.PaymentMethod == Timeout:
		p.charges++
		o.receipt = payment.Receipt{Ref: fmt.Sprintf("pi_fake_%06d", p.charges)}
		p.capture(o.receipt.Ref, c.Amount)
		if c.IdempotencyKey != "" {
			p.remember(c.IdempotencyKey, o)
		}
		p.mu.Unlock()
		<-ctx.Done()
		p.mu.Lock()
		return payment.Receipt{}, fmt.Errorf("%w: %v", payment.ErrUnavailable, ctx.Err())
	case declined:
		o.err = &payment.DeclineError{Code: code, Reason: "your card was declined (" + code + ")"}
	case strings.HasPrefix(c.PaymentMethod, "pm_card_"):
		p.charges++
		o.receipt = payment.Receipt{Ref: fmt.Sprintf("pi_fake_%06d", p.charges)}
		p.capture(o.receipt.Ref, c.Amount)
	default:
		o.err = &payment.DeclineError{Code: "resource_missing", Reason: "no such payment method"}
	}
	if c.IdempotencyKey != "" {
		p.remember(c.IdempotencyKey, o)
	}
	return o.receipt, o.err
}

func (p *Provider) capture(ref string, amount int64) {
	if p.captured == nil {
		p.captured = map[string]int64{}
	}
	p.captured[ref] = amount
}

func (p *Provider) remember(key string, o outcome) {
	if p.byKey == nil {
		p.byKey = map[string]outcome{}
	}
	p.byKey[key] = o
}

// Refund implements payment.Provider: it refuses to refund more than was
// charged, like Stripe, and remembers idempotency keys.
func (p *Provider) Refund(ctx context.Context, r payment.Refund) (payment.Receipt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := "refund:" + r.IdempotencyKey
	if o, ok := p.byKey[key]; ok && r.IdempotencyKey != "" {
		return o.receipt, o.err
	}
	var o outcome
	charged, ok := p.captured[r.ChargeRef]
	switch {
	case !ok:
		o.err = &payment.DeclineError{Code: "resource_missing", Reason: "no such payment"}
	case r.Amount <= 0 || p.refunded[r.ChargeRef]+r.Amount > charged:
		o.err = &payment.DeclineError{Code: "amount_too_large", Reason: "refund exceeds the charge"}
	default:
		if p.refunded == nil {
			p.refunded = map[string]int64{}
		}
		p.refunded[r.ChargeRef] += r.Amount
		o.receipt = payment.Receipt{Ref: fmt.Sprintf("re_fake_%s_%d", r.ChargeRef, p.refunded[r.ChargeRef])}
	}
	if r.IdempotencyKey != "" {
		p.remember(key, o)
	}
	return o.receipt, o.err
}

// Refunded reports how much of a charge has been refunded.
func (p *Provider) Refunded(chargeRef string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refunded[chargeRef]
}
