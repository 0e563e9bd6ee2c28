package fakepay

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/payment"
)

func TestStripeTestMethods(t *testing.T) {
	var p Provider
	ctx := context.Background()
	r, err := p.Charge(ctx, payment.Charge{Amount: 250, Currency: "eur", PaymentMethod: "pm_card_visa", IdempotencyKey: "a"})
	if err != nil || r.Ref == "" {
		t.Fatalf("visa: %v %v", r, err)
	}
	_, err = p.Charge(ctx, payment.Charge{Amount: 250, PaymentMethod: "pm_card_chargeDeclined", IdempotencyKey: "b"})
	var d *payment.DeclineError
	if !errors.As(err, &d) || d.Code != "card_declined" || !payment.IsDecline(err) {
		t.Fatalf("declined: %v", err)
	}
	_, err = p.Charge(ctx, payment.Charge{PaymentMethod: "pm_card_chargeDeclinedInsufficientFunds"})
	if !errors.As(err, &d) || d.Code != "insufficient_funds" {
		t.Fatalf("insufficient funds: %v", err)
	}
	if _, err := p.Charge(ctx, payment.Charge{PaymentMethod: "pm_nonsense"}); !payment.IsDecline(err) {
		t.Fatalf("unknown method: %v", err)
	}
	// Same key: same answer, one charge.
	r2, err := p.Charge(ctx, payment.Charge{Amount: 250, Currency: "eur", PaymentMethod: "pm_card_visa", IdempotencyKey: "a"})
	if err != nil || r2 != r || p.Charges() != 1 {
		t.Fatalf("retry: %v %v charges=%d", r2, err, p.Charges())
	}
}

// pm_card_timeout charges but loses the answer: the retry with the same
// key finds the charge.
func TestTimeoutChargesButDoesNotAnswer(t *testing.T) {
	var p Provider
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	c := payment.Charge{Amount: 250, PaymentMethod: Timeout, IdempotencyKey: "k"}
	if _, err := p.Charge(ctx, c); !errors.Is(err, payment.ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
	r, err := p.Charge(context.Background(), c)
	if err != nil || r.Ref == "" || p.Charges() != 1 {
		t.Fatalf("retry: %v %v, charges %d", r, err, p.Charges())
	}
}

func TestRefunds(t *testing.T) {
	var p Provider
	ctx := context.Background()
	r, _ := p.Charge(ctx, payment.Charge{Amount: 500, PaymentMethod: "pm_card_visa"})
	if _, err := p.Refund(ctx, payment.Refund{ChargeRef: r.Ref, Amount: 300, IdempotencyKey: "r1"}); err != nil {
		t.Fatal(err)
	}
	p.Refund(ctx, payment.Refund{ChargeRef: r.Ref, Amount: 300, IdempotencyKey: "r1"}) // retried: once
	if p.Refunded(r.Ref) != 300 {
		t.Fatalf("refunded %d", p.Refunded(r.Ref))
	}
	if _, err := p.Refund(ctx, payment.Refund{ChargeRef: r.Ref, Amount: 300, IdempotencyKey: "r2"}); !payment.IsDecline(err) {
		t.Fatalf("over-refund: %v", err)
	}
	if _, err := p.Refund(ctx, payment.Refund{ChargeRef: "pi_nope", Amount: 1, IdempotencyKey: "r3"}); !payment.IsDecline(err) {
		t.Fatalf("unknown charge: %v", err)
	}
}

// Opened on a file, the fake remembers its charges and refunds across a
// restart: a lost answer is found, and refunded, by the next process.
func TestStateSurvivesRestart(t *testing.T) {
	path := t.TempDir() + "/fakepay.json"
	p, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	lost := payment.Charge{Amount: 500, Currency: "eur", PaymentMethod: Timeout, IdempotencyKey: "k1"}
	if _, err := p.Charge(ctx, lost); !errors.Is(err, payment.ErrUnavailable) {
		t.Fatalf("timeout: %v", err)
	}
	if _, err := p.Charge(context.Background(), payment.Charge{Amount: 250, PaymentMethod: "pm_card_chargeDeclined", IdempotencyKey: "k2"}); !payment.IsDecline(err) {
		t.Fatalf("decline: %v", err)
	}

	q, err := Open(path) // a new process
	if err != nil {
		t.Fatal(err)
	}
	r, err := q.Charge(context.Background(), lost)
	if err != nil || r.Ref == "" || q.Charges() != 1 {
		t.Fatalf("re-driven after restart: %+v, %v, charges %d", r, err, q.Charges())
	}
	if _, err := q.Charge(context.Background(), payment.Charge{Amount: 250, PaymentMethod: "pm_card_visa", IdempotencyKey: "k2"}); !payment.IsDecline(err) {
		t.Fatalf("the decline was forgotten: %v", err)
	}
	if _, err := q.Refund(context.Background(), payment.Refund{ChargeRef: r.Ref, Amount: 500, IdempotencyKey: "r1"}); err != nil {
		t.Fatal(err)
	}
	z, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if z.Refunded(r.Ref) != 500 {
		t.Fatalf("refund forgotten: %d", z.Refunded(r.Ref))
	}
	if _, err := z.Refund(context.Background(), payment.Refund{ChargeRef: r.Ref, Amount: 1, IdempotencyKey: "r2"}); !payment.IsDecline(err) {
		t.Fatalf("refunded more than charged after restart: %v", err)
	}
}

func TestOpenRefusesACorruptFile(t *testing.T) {
	path := t.TempDir() + "/fakepay.json"
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path); err == nil {
		t.Fatal("a corrupt state file was accepted")
	}
}
