// Package fakepay is a payment provider for demos and tests that mirrors
// Stripe's test payment methods: pm_card_visa (and the other pm_card_*
// brands) succeed, pm_card_chargeDeclined and its kin decline, and
// pm_card_timeout stands for a provider that charged but whose answer was
// lost: the first request never answers (until its context ends), yet the
// charge is made, so a retry with the same idempotency key reports it. It
// remembers idempotency keys like Stripe does, so a retried charge is not
// counted twice, and a retry gets the first answer.
//
// Strong Customer Authentication: pm_card_authenticationRequired leaves
// the payment waiting for the cardholder (requires_action, with a client
// secret), until Complete settles it (centrald's webhook endpoint does,
// from a signed payment_intent event) or Cancel gives it up. A payment
// method charged with SaveForOffSession is saved on a customer for
// off-session charges; off-session, pm_card_authenticationRequired and
// pm_card_chargeCustomerFail (which pays on-session) decline.
//
// Opened on a file (Open), the fake keeps what it charged and refunded
// there, written before it answers, so that it remembers across a restart
// or a kill -9 of centrald as a real provider would.
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

// Stripe test methods with a behaviour of their own.
const (
	// Timeout is the payment method whose first charge succeeds unanswered.
	Timeout = "pm_card_timeout"
	// AuthenticationRequired needs 3-D Secure on every charge.
	AuthenticationRequired = "pm_card_authenticationRequired"
	// CustomerFail pays on-session; its later off-session charges decline.
	CustomerFail = "pm_card_chargeCustomerFail"
)

// Payment statuses, as Stripe names a PaymentIntent's.
const (
	stSucceeded      = "succeeded"
	stRequiresAction = "requires_action"
	stCanceled       = "canceled"
	stFailed         = "requires_payment_method"
)

// Provider is the fake. The zero value is ready to use and keeps its
// state in memory only.
type Provider struct {
	mu   sync.Mutex
	path string // "" : memory only
	st   state
}

// state is everything the fake remembers, as it is kept in its file.
type state struct {
	ByKey     map[string]outcome `json:"byKey"`
	Seq       int                `json:"seq"`
	Charges   int                `json:"charges"`
	Payments  map[string]pay     `json:"payments"`  // payment ref → its state
	Refunded  map[string]int64   `json:"refunded"`  // charge ref → refunded so far
	Customers map[string]string  `json:"customers"` // customer → saved payment method
}

type pay struct {
	Amount int64  `json:"amount"`
	Status string `json:"status"`
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

// newPayment records a payment in status st and returns its ref.
func (p *Provider) newPayment(amount int64, st string) string {
	p.st.Seq++
	ref := fmt.Sprintf("pi_fake_%06d", p.st.Seq)
	if p.st.Payments == nil {
		p.st.Payments = map[string]pay{}
	}
	p.st.Payments[ref] = pay{Amount: amount, Status: st}
	if st == stSucceeded {
		p.st.Charges++
	}
	return ref
}

func declined(code string) *payment.DeclineError {
	return &payment.DeclineError{Code: code, Reason: "your card was declined (" + code + ")"}
}

// Charge implements payment.Provider.
func (p *Provider) Charge(ctx context.Context, c payment.Charge) (payment.Receipt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if o, ok := p.st.ByKey[c.IdempotencyKey]; ok && c.IdempotencyKey != "" {
		return o.result()
	}
	var o outcome
	code, isDecline := declines[c.PaymentMethod]
	switch {
	case c.OffSession && (c.Customer == "" || p.st.Customers[c.Customer] != c.PaymentMethod):
		o.Decline = &payment.DeclineError{Code: "resource_missing", Reason: "the payment method is not saved for off-session charges"}
	case c.OffSession && (c.PaymentMethod == AuthenticationRequired):
		o.Decline = &payment.DeclineError{Code: "authentication_required", Reason: "the card needs the cardholder's authentication"}
	case c.OffSession && c.PaymentMethod == CustomerFail:
		o.Decline = declined("card_declined")
	case c.PaymentMethod == Timeout:
		o.Receipt = payment.Receipt{Ref: p.newPayment(c.Amount, stSucceeded), Status: payment.StatusSucceeded}
		p.saveCustomer(c, &o.Receipt)
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
	case isDecline:
		o.Decline = declined(code)
	case c.PaymentMethod == AuthenticationRequired:
		ref := p.newPayment(c.Amount, stRequiresAction)
		o.Receipt = payment.Receipt{Ref: ref, Status: payment.StatusRequiresAction, ClientSecret: ref + "_secret_fake"}
		p.saveCustomer(c, &o.Receipt)
	case strings.HasPrefix(c.PaymentMethod, "pm_card_"):
		o.Receipt = payment.Receipt{Ref: p.newPayment(c.Amount, stSucceeded), Status: payment.StatusSucceeded}
		p.saveCustomer(c, &o.Receipt)
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

// saveCustomer saves the payment method on a new customer when the charge
// asks for it, as Stripe does with setup_future_usage.
func (p *Provider) saveCustomer(c payment.Charge, r *payment.Receipt) {
	if !c.SaveForOffSession {
		return
	}
	if p.st.Customers == nil {
		p.st.Customers = map[string]string{}
	}
	r.Customer = fmt.Sprintf("cus_fake_%06d", len(p.st.Customers)+1)
	p.st.Customers[r.Customer] = c.PaymentMethod
}

func (p *Provider) remember(key string, o outcome) {
	if p.st.ByKey == nil {
		p.st.ByKey = map[string]outcome{}
	}
	p.st.ByKey[key] = o
}

// Lookup implements payment.Provider: where a payment stands now.
func (p *Provider) Lookup(ctx context.Context, ref string) (payment.Receipt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	py, ok := p.st.Payments[ref]
	switch {
	case !ok:
		return payment.Receipt{}, &payment.DeclineError{Code: "resource_missing", Reason: "no such payment"}
	case py.Status == stSucceeded:
		return payment.Receipt{Ref: ref, Status: payment.StatusSucceeded}, nil
	case py.Status == stRequiresAction:
		return payment.Receipt{Ref: ref, Status: payment.StatusRequiresAction, ClientSecret: ref + "_secret_fake"}, nil
	case py.Status == stCanceled:
		return payment.Receipt{}, &payment.DeclineError{Code: "payment_canceled", Reason: "the payment was cancelled; please try again"}
	}
	return payment.Receipt{}, &payment.DeclineError{Code: "authentication_failed", Reason: "the card's authentication failed"}
}

// Cancel implements payment.Provider: a payment waiting for its
// authentication is given up; one that completed cannot be.
func (p *Provider) Cancel(ctx context.Context, ref string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	py, ok := p.st.Payments[ref]
	switch {
	case !ok:
		return &payment.DeclineError{Code: "resource_missing", Reason: "no such payment"}
	case py.Status == stCanceled:
		return nil
	case py.Status != stRequiresAction:
		return fmt.Errorf("fakepay: payment %s is %s and cannot be cancelled", ref, py.Status)
	}
	py.Status = stCanceled
	p.st.Payments[ref] = py
	if err := p.save(); err != nil {
		return unavailable(err)
	}
	return nil
}

// Complete settles a payment waiting for its authentication, as the
// cardholder would: it succeeds, or it fails. centrald's webhook endpoint
// calls it when a signed payment_intent event names a fake payment, so
// the whole authentication flow runs without a Stripe account. A payment
// not waiting changes nothing.
func (p *Provider) Complete(ctx context.Context, ref string, succeeded bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	py, ok := p.st.Payments[ref]
	if !ok {
		return &payment.DeclineError{Code: "resource_missing", Reason: "no such payment"}
	}
	if py.Status != stRequiresAction {
		return nil
	}
	py.Status = stFailed
	if succeeded {
		py.Status = stSucceeded
		p.st.Charges++
	}
	p.st.Payments[ref] = py
	if err := p.save(); err != nil {
		return unavailable(err)
	}
	return nil
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
	py, ok := p.st.Payments[r.ChargeRef]
	switch {
	case !ok || py.Status != stSucceeded:
		o.Decline = &payment.DeclineError{Code: "resource_missing", Reason: "no such payment"}
	case r.Amount <= 0 || p.st.Refunded[r.ChargeRef]+r.Amount > py.Amount:
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
