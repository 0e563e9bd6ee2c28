package api_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parkgate/parkgate/central/api"
	"github.com/parkgate/parkgate/central/booking"
	"github.com/parkgate/parkgate/central/payment/fakepay"
	"github.com/parkgate/parkgate/central/store/sqlitestore"
	"github.com/parkgate/parkgate/clock/clocktest"
	"github.com/parkgate/parkgate/ticket"
)

// payServer is the real handler with the fake provider, booking's default
// rules and, when secret is set, the Stripe webhook endpoint.
type payServer struct {
	*server
	svc *booking.Service
	pay *fakepay.Provider
}

func newPayServer(t *testing.T, secret string) *payServer {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "central.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// Webhook signatures are checked against the real clock (stripe-go
	// reads it), so the server's clock is the real time too.
	clk := clocktest.New(time.Now().UTC().Truncate(time.Second))
	if err := st.SetSpots(ctx, []string{"1", "2"}, clk.Now()); err != nil {
		t.Fatal(err)
	}
	signer, err := ticket.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	pay := &fakepay.Provider{}
	cfg := booking.DefaultConfig()
	svc := booking.New(st, pay, booking.Tickets{Signer: signer}, clk, cfg, nil, nil)
	h := api.New(svc, api.Options{AdminToken: admin, PaymentHold: cfg.PaymentHold, Registry: prometheus.NewRegistry(),
		StripeWebhookSecret: secret})
	h.SetReady(true)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &payServer{server: &server{t: t, srv: srv, st: st, clk: clk}, svc: svc, pay: pay}
}

type actionJSON struct {
	Status        string `json:"status"`
	ClientSecret  string `json:"clientSecret"`
	PaymentID     string `json:"paymentId"`
	ReservationID string `json:"reservationId"`
}

const scaBody = `{"carId":"B-XY 123","cardDetails":{"paymentMethod":"pm_card_authenticationRequired"}}`

// reserveSpot reserves spot 1 for the next two hours.
func (s *payServer) reserveSpot() reserved {
	s.t.Helper()
	now := s.clk.Now()
	r := s.do("POST", "/reserve/parking/1", "", window(now.Add(time.Hour), now.Add(3*time.Hour)))
	if r.Status != 201 {
		s.t.Fatalf("reserve: %d %s", r.Status, r.Body)
	}
	var res reserved
	r.decode(s.t, &res)
	return res
}

// 3-D Secure over HTTP: 202 requires_action with the client secret and
// the payment id, the reservation still reserved and no ticket; the same
// request with the same Idempotency-Key after the authentication is 200
// paid with the ticket.
func TestPaySCARepeatWithSameKey(t *testing.T) {
	s := newPayServer(t, "")
	res := s.reserveSpot()
	r := s.do("POST", "/pay/parking/1", res.Token, scaBody, "Idempotency-Key", "sca-1")
	var a actionJSON
	r.decode(t, &a)
	if r.Status != 202 || a.Status != "requires_action" || a.ClientSecret == "" || a.PaymentID == "" {
		t.Fatalf("first answer %d %s", r.Status, r.Body)
	}
	var got reserved
	s.do("GET", "/reservations/"+res.ReservationID, res.Token, "").decode(t, &got)
	if got.Status != "reserved" || got.Ticket != "" {
		t.Fatalf("before authentication: %+v", got)
	}
	if r := s.do("GET", "/parking/1/ticket", res.Token, ""); r.Status != 409 {
		t.Fatalf("ticket before payment: %d %s", r.Status, r.Body)
	}
	if r := s.do("POST", "/pay/parking/1", res.Token, scaBody, "Idempotency-Key", "sca-1"); r.Status != 202 {
		t.Fatalf("repeat before authentication: %d %s", r.Status, r.Body)
	}
	if err := s.pay.Complete(context.Background(), a.PaymentID, true); err != nil {
		t.Fatal(err)
	}
	r = s.do("POST", "/pay/parking/1", res.Token, scaBody, "Idempotency-Key", "sca-1")
	r.decode(t, &got)
	if r.Status != 200 || got.Status != "paid" || got.Ticket == "" {
		t.Fatalf("repeat after authentication: %d %s", r.Status, r.Body)
	}
	if s.pay.Charges() != 1 {
		t.Fatalf("%d charges", s.pay.Charges())
	}
}
