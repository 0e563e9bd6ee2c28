package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"
)

// The 3-D Secure flow through a real centrald with the fake provider and
// its webhook endpoint: 202 with the client secret, a signed
// payment_intent.succeeded event, paid, the ticket. The log (at debug
// level) holds neither the webhook secret, nor the client secret, nor the
// payment method.
func TestProcessSCAWebhookFlow(t *testing.T) {
	const secret = "whsec_processTESTsecret42"
	p := start(t, t.TempDir(), "PARKING_LOG_LEVEL=debug", "PARKING_PAYMENT_STRIPE_WEBHOOK_SECRET="+secret)
	now := time.Now()
	r := p.must(201, "POST", "/reserve/parking/1", "", windowJSON(now.Add(time.Hour), now.Add(2*time.Hour)))
	tok, id := r["token"].(string), r["reservationId"].(string)
	a := p.call("POST", "/pay/parking/1", tok, `{"carId":"B-XY 123","cardDetails":{"paymentMethod":"pm_card_authenticationRequired"}}`)
	clientSecret, _ := a.body["clientSecret"].(string)
	pi, _ := a.body["paymentId"].(string)
	if a.status != 202 || a.body["status"] != "requires_action" || clientSecret == "" || pi == "" {
		t.Fatalf("pay: %d %s", a.status, a.raw)
	}
	body := fmt.Sprintf(`{"id":"evt_proc_1","object":"event","api_version":%q,"created":%d,"type":"payment_intent.succeeded",`+
		`"data":{"object":{"id":%q,"object":"payment_intent","status":"succeeded","metadata":{"reservation_id":%q}}}}`,
		stripe.APIVersion, now.Unix(), pi, id)
	at := time.Now().Unix()
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "%d.%s", at, body)
	req, _ := http.NewRequest("POST", p.base+"/webhooks/stripe", strings.NewReader(body))
	req.Header.Set("Stripe-Signature", fmt.Sprintf("t=%d,v1=%s", at, hex.EncodeToString(mac.Sum(nil))))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("webhook: %d", res.StatusCode)
	}
	if s := p.must(200, "GET", "/reservations/"+id, tok, "")["status"]; s != "paid" {
		t.Fatalf("status %v after the webhook", s)
	}
	if tk, _ := p.must(200, "GET", "/parking/1/ticket", tok, "")["ticket"].(string); tk == "" {
		t.Fatal("no ticket")
	}
	logs := p.logText()
	if !strings.Contains(logs, "evt_proc_1") {
		t.Fatalf("the log did not capture the event:\n%s", logs)
	}
	for _, s := range []string{secret, clientSecret, "pm_card", tok} {
		if strings.Contains(logs, s) {
			t.Errorf("the log contains %q", s)
		}
	}
}
