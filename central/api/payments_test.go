package api_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stripe/stripe-go/v76"

	"github.com/parkgate/parkgate/central/api"
	"github.com/parkgate/parkgate/central/apijson"
	"github.com/parkgate/parkgate/central/booking"
	"github.com/parkgate/parkgate/central/payment/fakepay"
	"github.com/parkgate/parkgate/central/store"
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

const whsec = "whsec_parkgateTESTsecret0123456789"

// stripeEvent is an event as Stripe sends it, with the api_version
// stripe-go v76 reads.
func stripeEvent(id, typ, object string) string {
	return fmt.Sprintf(`{"id":%q,"object":"event","api_version":%q,"created":%d,"livemode":false,"pending_webhooks":1,"type":%q,"data":{"object":%s}}`,
		id, stripe.APIVersion, time.Now().Unix(), typ, object)
}

func intentObject(id, status, reservationID string) string {
	return fmt.Sprintf(`{"id":%q,"object":"payment_intent","status":%q,"amount":500,"currency":"eur","metadata":{"reservation_id":%q}}`, id, status, reservationID)
}

// sign signs body exactly as Stripe does: t=<unix>,v1=hex(HMAC-SHA256(secret, "<t>.<body>")).
func sign(secret, body string, at time.Time) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "%d.%s", at.Unix(), body)
	return fmt.Sprintf("t=%d,v1=%s", at.Unix(), hex.EncodeToString(mac.Sum(nil)))
}

func (s *payServer) webhook(body, signature string) resp {
	s.t.Helper()
	return s.do("POST", "/webhooks/stripe", "", body, "Stripe-Signature", signature)
}

func (s *payServer) deliver(body string) resp {
	s.t.Helper()
	r := s.webhook(body, sign(whsec, body, time.Now()))
	if r.Status != 200 {
		s.t.Fatalf("webhook: %d %s", r.Status, r.Body)
	}
	return r
}

func (s *payServer) reservation(res reserved) reserved {
	s.t.Helper()
	var got reserved
	r := s.do("GET", "/reservations/"+res.ReservationID, res.Token, "")
	if r.Status != 200 {
		s.t.Fatalf("get reservation: %d %s", r.Status, r.Body)
	}
	r.decode(s.t, &got)
	return got
}

func (s *payServer) payments(id string) apijson.Payments {
	s.t.Helper()
	var p apijson.Payments
	r := s.do("GET", "/admin/reservations/"+id+"/payments", admin, "")
	if r.Status != 200 {
		s.t.Fatalf("payments: %d %s", r.Status, r.Body)
	}
	r.decode(s.t, &p)
	return p
}

// scaPending reserves spot 1 and pays it with a card that needs 3-D
// Secure: the 202 answer.
func (s *payServer) scaPending() (reserved, actionJSON) {
	s.t.Helper()
	res := s.reserveSpot()
	r := s.do("POST", "/pay/parking/1", res.Token, scaBody, "Idempotency-Key", "sca-"+res.ReservationID)
	var a actionJSON
	r.decode(s.t, &a)
	if r.Status != 202 || a.PaymentID == "" {
		s.t.Fatalf("pay: %d %s", r.Status, r.Body)
	}
	return res, a
}

// The whole 3-D Secure flow with the fake provider and no Stripe account:
// 202, then the signed payment_intent.succeeded event (which completes the
// fake's authentication), then paid, then the ticket.
func TestWebhookCompletesSCA(t *testing.T) {
	s := newPayServer(t, whsec)
	res, a := s.scaPending()
	s.deliver(stripeEvent("evt_ok_1", "payment_intent.succeeded", intentObject(a.PaymentID, "succeeded", res.ReservationID)))
	got := s.reservation(res)
	if got.Status != "paid" || got.CarID != "B-XY 123" || got.PaidAt == "" {
		t.Fatalf("after the webhook: %+v", got)
	}
	var tk reserved
	r := s.do("GET", "/parking/1/ticket", res.Token, "")
	r.decode(t, &tk)
	if r.Status != 200 || tk.Ticket == "" {
		t.Fatalf("ticket: %d %s", r.Status, r.Body)
	}
	// The app's repeat with the same key now gets the same: 200 paid.
	r = s.do("POST", "/pay/parking/1", res.Token, scaBody, "Idempotency-Key", "sca-"+res.ReservationID)
	r.decode(t, &tk)
	if r.Status != 200 || tk.Ticket == "" {
		t.Fatalf("repeat after the webhook: %d %s", r.Status, r.Body)
	}
	if s.pay.Charges() != 1 {
		t.Fatalf("%d charges", s.pay.Charges())
	}
}

// A forged signature, a stale one, a missing one, another api_version or a
// body that is not an event: 400, and nothing changed (the same event,
// properly signed, is then applied as new).
func TestWebhookRefusesBadSignaturesAndChangesNothing(t *testing.T) {
	s := newPayServer(t, whsec)
	res, a := s.scaPending()
	ev := stripeEvent("evt_ok_2", "payment_intent.succeeded", intentObject(a.PaymentID, "succeeded", res.ReservationID))
	wrongVersion := strings.Replace(ev, stripe.APIVersion, "2020-08-27", 1)
	for _, tc := range []struct {
		name, body, sig, code string
	}{
		{"forged", ev, sign("whsec_someoneELSE", ev, time.Now()), "invalid_signature"},
		{"body changed", ev, sign(whsec, strings.Replace(ev, "evt_ok_2", "evt_ok_3", 1), time.Now()), "invalid_signature"},
		{"stale", ev, sign(whsec, ev, time.Now().Add(-6*time.Minute)), "stale_signature"},
		{"garbled header", ev, "v1=deadbeef", "invalid_signature"},
		{"missing header", ev, "", "missing_signature"},
		{"api version", wrongVersion, sign(whsec, wrongVersion, time.Now()), "api_version_mismatch"},
		{"not an event", `{"hello":"world"}`, sign(whsec, `{"hello":"world"}`, time.Now()), "invalid_event"},
		{"not json", `<xml/>`, sign(whsec, `<xml/>`, time.Now()), "invalid_event"},
	} {
		r := s.webhook(tc.body, tc.sig)
		if r.Status != 400 || r.errCode(t) != tc.code {
			t.Errorf("%s: %d %s, want 400 %s", tc.name, r.Status, r.Body, tc.code)
		}
		if got := s.reservation(res); got.Status != "reserved" {
			t.Fatalf("%s changed the reservation: %+v", tc.name, got)
		}
	}
	if s.pay.Charges() != 0 {
		t.Fatal("a refused event completed the payment")
	}
	var dup struct{ Duplicate bool }
	s.deliver(ev).decode(t, &dup)
	if dup.Duplicate || s.reservation(res).Status != "paid" {
		t.Fatalf("the genuine event after the refused ones: duplicate %v, %+v", dup.Duplicate, s.reservation(res))
	}
}

// Without a webhook secret there is no webhook endpoint.
func TestWebhookOffWithoutSecret(t *testing.T) {
	s := newPayServer(t, "")
	body := stripeEvent("evt_x", "payment_intent.succeeded", intentObject("pi_x", "succeeded", ""))
	if r := s.webhook(body, sign(whsec, body, time.Now())); r.Status != 404 {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
}

// Each event is applied once: a replayed dispute makes one exception.
func TestWebhookReplayDoesNothing(t *testing.T) {
	s := newPayServer(t, whsec)
	res := s.reserveSpot()
	r := s.do("POST", "/pay/parking/1", res.Token, `{"carId":"B-XY 123","cardDetails":{"paymentMethod":"pm_card_visa"}}`)
	var paid reserved
	r.decode(t, &paid)
	pi := s.payments(res.ReservationID).Attempts[0].ProviderRef
	dispute := stripeEvent("evt_dp_1", "charge.dispute.created",
		fmt.Sprintf(`{"id":"dp_1","object":"dispute","amount":500,"currency":"eur","reason":"fraudulent","status":"needs_response","payment_intent":%q}`, pi))
	var first, second struct{ Duplicate bool }
	s.deliver(dispute).decode(t, &first)
	s.deliver(dispute).decode(t, &second)
	if first.Duplicate || !second.Duplicate {
		t.Fatalf("duplicate flags %v %v", first.Duplicate, second.Duplicate)
	}
	var es []apijson.PaymentException
	s.do("GET", "/admin/payment-exceptions", admin, "").decode(t, &es)
	if len(es) != 1 || es[0].Kind != "dispute" || es[0].Amount != 500 || es[0].Reason != "fraudulent" ||
		es[0].ReservationID != res.ReservationID || es[0].ProviderRef != "dp_1" {
		t.Fatalf("exceptions %+v, want one dispute of 500 for fraudulent", es)
	}
	// A replayed success changes nothing either.
	ok := stripeEvent("evt_ok_9", "payment_intent.succeeded", intentObject(pi, "succeeded", res.ReservationID))
	s.deliver(ok).decode(t, &first)
	s.deliver(ok).decode(t, &second)
	if first.Duplicate || !second.Duplicate {
		t.Fatalf("replayed success: duplicate flags %v %v", first.Duplicate, second.Duplicate)
	}
	if p := s.payments(res.ReservationID); len(p.Attempts) != 1 || len(p.Refunds) != 0 || s.pay.Charges() != 1 {
		t.Fatalf("payments after replays %+v, charges %d", p, s.pay.Charges())
	}
}

// Order does not matter: a failure reported after the success does not
// undo it; a success that arrives after the reservation was cancelled is
// refunded in full; a refund reported by charge.refunded is settled.
func TestWebhookOutOfOrder(t *testing.T) {
	s := newPayServer(t, whsec)
	res, a := s.scaPending()
	s.deliver(stripeEvent("evt_a", "payment_intent.succeeded", intentObject(a.PaymentID, "succeeded", res.ReservationID)))
	s.deliver(stripeEvent("evt_b", "payment_intent.payment_failed", intentObject(a.PaymentID, "requires_payment_method", res.ReservationID)))
	if got := s.reservation(res); got.Status != "paid" {
		t.Fatalf("a late failure undid the payment: %+v", got)
	}
	if p := s.payments(res.ReservationID); p.Attempts[0].Outcome != "succeeded" {
		t.Fatalf("attempt %+v", p.Attempts[0])
	}

	// Spot 2: cancelled while the cardholder authenticates; the success
	// then arrives: refunded in full.
	now := s.clk.Now()
	r := s.do("POST", "/reserve/parking/2", "", window(now.Add(time.Hour), now.Add(3*time.Hour)))
	var res2 reserved
	r.decode(t, &res2)
	r = s.do("POST", "/pay/parking/2", res2.Token, scaBody, "Idempotency-Key", "k2")
	var a2 actionJSON
	r.decode(t, &a2)
	if r.Status != 202 {
		t.Fatalf("pay: %d %s", r.Status, r.Body)
	}
	if r := s.do("DELETE", "/reservations/"+res2.ReservationID, res2.Token, ""); r.Status != 200 {
		t.Fatalf("cancel: %d %s", r.Status, r.Body)
	}
	s.deliver(stripeEvent("evt_c", "payment_intent.succeeded", intentObject(a2.PaymentID, "succeeded", res2.ReservationID)))
	p := s.payments(res2.ReservationID)
	if len(p.Refunds) != 1 || p.Refunds[0].Amount != p.Attempts[0].Amount || p.Refunds[0].Status != "pending" || p.Refunds[0].Reason != "cancelled" {
		t.Fatalf("payments %+v: want a full refund", p)
	}
	// Stripe reports the refund (its charge's amount_refunded): settled.
	s.deliver(stripeEvent("evt_d", "charge.refunded",
		fmt.Sprintf(`{"id":"ch_1","object":"charge","amount":500,"amount_refunded":%d,"currency":"eur","refunded":true,"payment_intent":%q}`, p.Attempts[0].Amount, a2.PaymentID)))
	if p := s.payments(res2.ReservationID); p.Refunds[0].Status != "succeeded" {
		t.Fatalf("refund after charge.refunded: %+v", p.Refunds[0])
	}
}

// An overstay fee shows to the driver (GET /reservations/{id}) and to
// operators (the payments of the reservation), once charged.
func TestOverstayShown(t *testing.T) {
	s := newPayServer(t, "")
	res := s.reserveSpot()
	if r := s.do("POST", "/pay/parking/1", res.Token, `{"carId":"B-XY 123","cardDetails":{"paymentMethod":"pm_card_visa"}}`); r.Status != 200 {
		t.Fatalf("pay: %d %s", r.Status, r.Body)
	}
	ctx := context.Background()
	err := s.st.Write(ctx, func(tx store.Tx) error {
		return tx.PutGate(store.Gate{ID: "exit-1", PasswordHash: []byte{1}, Role: "exit", AddedAt: s.clk.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.st.Get(ctx, res.ReservationID)
	if err != nil {
		t.Fatal(err)
	}
	left := r.Until.Add(20 * time.Minute) // 5 min past the 15 min grace: one started hour
	s.clk.Set(left.Add(time.Minute))
	_, _, err = s.svc.ApplyGateEvent(ctx, store.GateEvent{EventID: "out-1", GateID: "exit-1", Seq: 1, Kind: "decision", Role: "exit",
		Time: left, Source: "qr", Granted: true, ReservationID: r.ID, SpotID: r.SpotID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Status   string
		Overstay *apijson.Overstay
	}
	s.do("GET", "/reservations/"+res.ReservationID, res.Token, "").decode(t, &got)
	if got.Status != "left" || got.Overstay == nil || got.Overstay.Amount != 250 || got.Overstay.Status != "succeeded" {
		t.Fatalf("driver's view: %+v %+v", got, got.Overstay)
	}
	p := s.payments(res.ReservationID)
	if len(p.Attempts) != 2 || p.Attempts[1].Purpose != "overstay" || p.Attempts[1].Amount != 250 || p.Attempts[1].Outcome != "succeeded" {
		t.Fatalf("operator's view: %+v", p.Attempts)
	}
}
