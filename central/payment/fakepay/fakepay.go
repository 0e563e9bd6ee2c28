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
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// Provider is the fake. The zero value is ready to use and keeps its
// state in memory only.
type Provider struct {
	mu   sync.Mutex
	path string // "" : memory only
	st   state
}

// state is everything the fake remembers, as it is kept in its file.
type state struct {
	ByKey    map[string]outcome `json:"byKey"`
	Charges  int                `json:"charges"`
	Refunded map[string]int64   `json:"refunded"` // charge ref → refunded so far
	Captured map[string]int64   `json:"captured"` // charge ref → amount charged
}

type outcome struct {
	Receipt payment.Receipt       `json:"receipt"`
	Decline *payment.DeclineError `json:"decline,omitempty"`
}

func (o outcome) result() (payment.Receipt, error) {
	if o.Decline != nil {
		return payment.Receipt{}, o.Decline
	}
	return o.Receipt, nil
}

// Open returns a fake that keeps its state in the file path (created on
// first use; its directory must exist).
func Open(path string) (*Provider, error) {
	p := &Provider{path: path}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return p, nil
	case err != nil:
		return nil, fmt.Errorf("fakepay: %w", err)
	}
	if err := json.Unmarshal(b, &p.st); err != nil {
		return nil, fmt.Errorf("fakepay: %s: %w", path, err)
	}
	return p, nil
}

// save writes the state to the file, atomically and durably, before the
// fake answers: a charge it reported must survive a kill -9. Called with
// mu held.
func (p *Provider) save() error {
	if p.path == "" {
		return nil
	}
	b, err := json.Marshal(&p.st)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p.path), filepath.Base(p.path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p.path)
}

// unavailable is the answer when the fake could not keep what it did:
// like a provider error, nothing is known and the caller retries.
func unavailable(err error) error {
	return fmt.Errorf("%w: fakepay: %v", payment.ErrUnavailable, err)
}

// Charges reports how many distinct charges succeeded (retries with the same
// idempotency key count once).
func (p *Provider) Charges() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st.Charges
}

// Charge implements payment.Provider.
func (p *Provider) Charge(ctx context.Context, c payment.Charge) (payment.Receipt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if o, ok := p.st.ByKey[c.IdempotencyKey]; ok && c.IdempotencyKey != "" {
		return o.result()
	}
	var o outcome
	switch code, declined := declines[c.PaymentMethod]; {
	case c.PaymentMethod == Timeout:
		p.st.Charges++
		o.Receipt = payment.Receipt{Ref: fmt.Sprintf("pi_fake_%06d", p.st.Charges)}
		p.capture(o.Receipt.Ref, c.Amount)
		if c.IdempotencyKey != "" {
			p.remember(c.IdempotencyKey, o)
		}
		if err := p.save(); err != nil {
			return payment.Receipt{}, unavailable(err)
		}
		p.mu.Unlock()
		<-ctx.Done()
		p.mu.Lock()
		return payment.Receipt{}, fmt.Errorf("%w: %v", payment.ErrUnavailable, ctx.Err())
	case declined:
		o.Decline = &payment.DeclineError{Code: code, Reason: "your card was declined (" + code + ")"}
	case strings.HasPrefix(c.PaymentMethod, "pm_card_"):
		p.st.Charges++
		o.Receipt = payment.Receipt{Ref: fmt.Sprintf("pi_fake_%06d", p.st.Charges)}
		p.capture(o.Receipt.Ref, c.Amount)
	default:
		o.Decline = &payment.DeclineError{Code: "resource_missing", Reason: "no such payment method"}
	}
	if c.IdempotencyKey != "" {
		p.remember(c.IdempotencyKey, o)
	}
	if err := p.save(); err != nil {
		return payment.Receipt{}, unavailable(err)
	}
	return o.result()
}

func (p *Provider) capture(ref string, amount int64) {
	if p.st.Captured == nil {
		p.st.Captured = map[string]int64{}
	}
	p.st.Captured[ref] = amount
}

func (p *Provider) remember(key string, o outcome) {
	if p.st.ByKey == nil {
		p.st.ByKey = map[string]outcome{}
	}
	p.st.ByKey[key] = o
}

// Refund implements payment.Provider: it refuses to refund more than was
// charged, like Stripe, and remembers idempotency keys.
func (p *Provider) Refund(ctx context.Context, r payment.Refund) (payment.Receipt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := "refund:" + r.IdempotencyKey
	if o, ok := p.st.ByKey[key]; ok && r.IdempotencyKey != "" {
		return o.result()
	}
	var o outcome
	charged, ok := p.st.Captured[r.ChargeRef]
	switch {
	case !ok:
		o.Decline = &payment.DeclineError{Code: "resource_missing", Reason: "no such payment"}
	case r.Amount <= 0 || p.st.Refunded[r.ChargeRef]+r.Amount > charged:
		o.Decline = &payment.DeclineError{Code: "amount_too_large", Reason: "refund exceeds the charge"}
	default:
		if p.st.Refunded == nil {
			p.st.Refunded = map[string]int64{}
		}
		p.st.Refunded[r.ChargeRef] += r.Amount
		o.Receipt = payment.Receipt{Ref: fmt.Sprintf("re_fake_%s_%d", r.ChargeRef, p.st.Refunded[r.ChargeRef])}
	}
	if r.IdempotencyKey != "" {
		p.remember(key, o)
	}
	if err := p.save(); err != nil {
		return payment.Receipt{}, unavailable(err)
	}
	return o.result()
}

// Refunded reports how much of a charge has been refunded.
func (p *Provider) Refunded(chargeRef string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st.Refunded[chargeRef]
}
