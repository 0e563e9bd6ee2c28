package api

import (
	"errors"
	"strings"
	"testing"
)

// Every decoding failure is a client error with a code and a message; the
// decoders never panic and never accept something invalid.
func checkDecodeErr(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var br *badRequest
	if !errors.As(err, &br) || br.code == "" || br.msg == "" || br.status < 400 || br.status > 499 {
		t.Fatalf("not a client error: %#v", err)
	}
}

func FuzzDecodeReserve(f *testing.F) {
	f.Add([]byte(`{"reservedFrom":"2026-11-26T10:00:00Z","reservedUntil":"2026-11-26T12:00:00Z"}`))
	f.Add([]byte(`{"reservedFrom":"2026-11-26T10:00:00+01:00","reservedUntil":"2026-11-26T12:00:00.5Z"}`))
	f.Add([]byte(`{"reservedFrom":1}`))
	f.Add([]byte(`{`))
	f.Add([]byte(`{"a":1} x`))
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := DecodeReserve(b)
		checkDecodeErr(t, err)
		if err == nil && (w.From.IsZero() || w.Until.IsZero() || w.From.Location().String() != "UTC") {
			t.Fatalf("accepted %q as %v", b, w)
		}
	})
}

func FuzzDecodePay(f *testing.F) {
	f.Add([]byte(`{"carId":"X1","cardDetails":{"paymentMethod":"pm_card_visa"}}`))
	f.Add([]byte(`{"carId":"X1","cardDetails":{"number":"4242424242424242"}}`))
	f.Add([]byte(`{"carId":"X1","cardDetails":null}`))
	f.Add([]byte(`{"carId":"X1","cardDetails":{"paymentMethod":"pm_card_visa","x":"4000-0566-5566-5556"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := DecodePay(b)
		checkDecodeErr(t, err)
		if err != nil {
			return
		}
		if containsCardNumber(b) || !validPaymentMethod(req.PaymentMethod) {
			t.Fatalf("accepted %q", b)
		}
	})
}

func FuzzDecodePush(f *testing.F) {
	f.Add([]byte(`{"reservations":[{"spotId":"1","reservedFrom":"2026-11-26T10:00:00Z","reservedUntil":"2026-11-26T12:00:00Z","carId":"F1"}]}`))
	f.Add([]byte(`{"reservations":[]}`))
	f.Add([]byte(`{"reservations":[{}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		items, err := DecodePush(b)
		checkDecodeErr(t, err)
		if err == nil && len(items) == 0 {
			t.Fatalf("accepted an empty push %q", b)
		}
		for _, it := range items {
			if it.SpotID == "" || it.Window.From.IsZero() || it.Window.Until.IsZero() {
				t.Fatalf("accepted %q as %+v", b, it)
			}
		}
	})
}

func TestContainsCardNumber(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"4242424242424242", true},
		{"4242 4242 4242 4242", true},
		{"4000-0566-5566-5556", true},
		{`{"n":"378282246310005"}`, true}, // Amex, 15 digits
		{"4242424242424241", false},       // Luhn fails
		{"424242424242", false},           // 12 digits
		{"42424242424242424242", false},   // a 20-digit run is no card
		{"2026-11-26T10:00:00Z", false},
		{"pm_card_visa", false},
		{"4242  4242 4242 4242", false}, // a double space ends the run
		{strings.Repeat("1", 100000), false},
	} {
		if got := containsCardNumber([]byte(tc.in)); got != tc.want {
			t.Errorf("containsCardNumber(%.40q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
