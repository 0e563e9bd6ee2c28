package booking_test

import "github.com/parkgate/parkgate/central/payment"

func paymentCharge(key string) payment.Charge {
	return payment.Charge{Amount: 250, Currency: "eur", PaymentMethod: "pm_card_visa", IdempotencyKey: key}
}
