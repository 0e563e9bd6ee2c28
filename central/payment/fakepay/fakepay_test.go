package fakepay

import (
	"context"
	"errors"
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

func TestTimeoutWaitsForTheContext(t *testing.T) {
	var p Provider
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := p.Charge(ctx, payment.Charge{PaymentMethod: Timeout})
	if !errors.Is(err, payment.ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
}
