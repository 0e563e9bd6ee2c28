package stripepay

// Unit tests against an httptest.Server that plays Stripe. They cover what
// stripe-mock cannot produce (it is stateless, answers every valid request
// with the same fixture and never declines): card declines, intents that
// need authentication or another payment method, Stripe's 5xx and 429, a
// server that never answers, and what the requests carry.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/parkgate/parkgate/central/payment"
)

// testKey looks like a real test key; no returned error may contain it.
const testKey = "sk_test_51UnitTESTkey0000000000000000secret"

// testPM is a payment method id that must not appear in errors either.
const testPM = "pm_1UnitTESTdriverCard0000"

// seen is one request the fake Stripe received.
type seen struct {
	Method, Path string
	Header       http.Header
	Form         url.Values
}

// fakeStripe records requests and answers with handle, which gets the
// request's number (0 for the first).
type fakeStripe struct {
	srv    *httptest.Server
	mu     sync.Mutex
	reqs   []seen
	handle func(w http.ResponseWriter, r *http.Request, n int)
}

func newFake(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, n int)) (*Provider, *fakeStripe) {
	t.Helper()
	f := &fakeStripe{handle: handle}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		if r.Method == http.MethodGet {
			form = r.URL.Query()
		}
		f.mu.Lock()
		n := len(f.reqs)
		f.reqs = append(f.reqs, seen{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Form: form})
		f.mu.Unlock()
		w.Header().Set("Request-Id", fmt.Sprintf("req_unit%d", n))
		f.handle(w, r, n)
	}))
	t.Cleanup(f.srv.Close)
	p, err := New(Config{SecretKey: testKey, APIURL: f.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return p, f
}

func (f *fakeStripe) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seen(nil), f.reqs...)
}

func reply(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func intent(id, status string) string {
	return fmt.Sprintf(`{"id":%q,"object":"payment_intent","status":%q,"amount":250,"currency":"eur","client_secret":%q}`, id, status, id+"_secret_unitCLIENTsecret")
}

func charge() payment.Charge {
	return payment.Charge{
		Amount:         250,
		Currency:       "eur",
		PaymentMethod:  testPM,
		IdempotencyKey: "parkgate-r123-1",
		Metadata:       map[string]string{"reservation_id": "r123", "spot_id": "7"},
	}
}

func refund() payment.Refund {
	return payment.Refund{
		ChargeRef:      "pi_unit1",
		Amount:         100,
		Currency:       "eur",
		IdempotencyKey: "parkgate-refund-r123-1",
		Reason:         "early_departure",
		Metadata:       map[string]string{"reservation_id": "r123", "reason": "early_departure"},
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func wantDecline(t *testing.T, err error, code string) *payment.DeclineError {
	t.Helper()
	var d *payment.DeclineError
	if !errors.As(err, &d) {
		t.Fatalf("want a DeclineError %s, got %v", code, err)
	}
	if d.Code != code {
		t.Fatalf("decline code %q, want %q (reason %q)", d.Code, code, d.Reason)
	}
	if errors.Is(err, payment.ErrUnavailable) {
		t.Fatalf("a decline must not also be ErrUnavailable: %v", err)
	}
	return d
}

func wantUnavailable(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, payment.ErrUnavailable) || payment.IsDecline(err) {
		t.Fatalf("want ErrUnavailable, got %v", err)
	}
}

func TestNewRefusesUnusableKeys(t *testing.T) {
	for _, key := range []string{
		"",
		"pk_test_51Publishable",
		"sk_test_",
		"sk_prod_51abc",
		"whsec_51abc",
		"sk_test_51abc\n",
		" sk_test_51abc",
		"sk_test_51abc def",
		"4242424242424242",
	} {
		p, err := New(Config{SecretKey: key})
		if err == nil || p != nil {
			t.Errorf("key %q accepted", key)
			continue
		}
		// (A key of just "sk_test_" is in the hint itself.)
		if k := strings.TrimSpace(key); len(k) > len("sk_test_") && strings.Contains(err.Error(), k) {
			t.Errorf("error repeats the key: %v", err)
		}
		if !strings.Contains(err.Error(), "payment.stripe.secret_key") {
			t.Errorf("error does not name the setting: %v", err)
		}
	}
	for _, key := range []string{"sk_test_51abc", "sk_live_51abc", "rk_test_51abc", "rk_live_51abc"} {
		if _, err := New(Config{SecretKey: key}); err != nil {
			t.Errorf("key %s refused: %v", key[:8], err)
		}
	}
}

func TestNewRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"127.0.0.1:12111", "ftp://x", "http://", "http://user:pw@127.0.0.1:1", "http://x/?a=1", "::"} {
		if _, err := New(Config{SecretKey: "sk_test_51abc", APIURL: u}); err == nil {
			t.Errorf("api_url %q accepted", u)
		}
	}
	// A live key never travels in clear text.
	if _, err := New(Config{SecretKey: "sk_live_51abc", APIURL: "http://127.0.0.1:12111"}); err == nil {
		t.Error("live key over http accepted")
	}
	if _, err := New(Config{SecretKey: "sk_test_51abc", APIURL: "http://127.0.0.1:12111/"}); err != nil {
		t.Errorf("trailing slash: %v", err)
	}
}

// The request is what Stripe needs to charge once and only once.
func TestChargeRequest(t *testing.T) {
	p, f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 200, intent("pi_unit1", "succeeded"))
	})
	rc, err := p.Charge(ctxTimeout(t, 5*time.Second), charge())
	if err != nil || rc.Ref != "pi_unit1" {
		t.Fatalf("charge: %+v %v", rc, err)
	}
	reqs := f.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Method != http.MethodPost || r.Path != "/v1/payment_intents" {
		t.Errorf("request %s %s", r.Method, r.Path)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer "+testKey {
		t.Errorf("Authorization %q does not carry the configured key", got)
	}
	if got := r.Header.Get("Idempotency-Key"); got != "parkgate-r123-1" {
		t.Errorf("Idempotency-Key %q", got)
	}
	for k, want := range map[string]string{
		"amount":                   "250",
		"currency":                 "eur",
		"confirm":                  "true",
		"payment_method":           testPM,
		"payment_method_types[0]":  "card",
		"metadata[reservation_id]": "r123",
		"metadata[spot_id]":        "7",
		"description":              "parkgate reservation r123",
	} {
		if got := r.Form.Get(k); got != want {
			t.Errorf("%s = %q, want %q (form %v)", k, got, want, r.Form)
		}
	}
	// A driver's charge may wait for 3-D Secure (no error_on_requires_action),
	// and saves nothing unless asked.
	for _, k := range []string{"error_on_requires_action", "off_session", "setup_future_usage", "customer"} {
		if r.Form.Has(k) {
			t.Errorf("%s sent: %v", k, r.Form)
		}
	}
	if stripe.Key != "" {
		t.Error("the package-global stripe.Key was set")
	}
}

func TestChargeCardDeclined(t *testing.T) {
	p, _ := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 402, `{"error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds",
			"message":"Your card has insufficient funds.","payment_intent":`+intent("pi_dec", "requires_payment_method")+`}}`)
	})
	_, err := p.Charge(ctxTimeout(t, 5*time.Second), charge())
	d := wantDecline(t, err, "insufficient_funds")
	if d.Reason != "Your card has insufficient funds." {
		t.Errorf("reason %q, want Stripe's message", d.Reason)
	}
}

func TestChargeCardErrorWithoutDeclineCode(t *testing.T) {
	p, _ := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 402, `{"error":{"type":"card_error","code":"expired_card","message":"Your card has expired."}}`)
	})
	_, err := p.Charge(ctxTimeout(t, 5*time.Second), charge())
	wantDecline(t, err, "expired_card")
}

// With error_on_requires_action Stripe answers a 3-D Secure card with a
// card error; the driver is told why the lane cannot take it.
func TestChargeAuthenticationRequiredError(t *testing.T) {
	p, _ := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 402, `{"error":{"type":"card_error","code":"authentication_required","decline_code":"authentication_required","message":"Your card was declined. This transaction requires authentication."}}`)
	})
	_, err := p.Charge(ctxTimeout(t, 5*time.Second), charge())
	d := wantDecline(t, err, "authentication_required")
	if !strings.Contains(d.Reason, "3-D Secure") {
		t.Errorf("reason %q does not say why", d.Reason)
	}
}

// 3-D Secure: the intent waits for the cardholder; the receipt carries
// its id and the client secret the driver's app completes it with.
func TestChargeStatusRequiresAction(t *testing.T) {
	p, _ := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 200, intent("pi_3ds", "requires_action"))
	})
	r, err := p.Charge(ctxTimeout(t, 5*time.Second), charge())
	if err != nil || !r.RequiresAction() || r.Ref != "pi_3ds" || r.ClientSecret != "pi_3ds_secret_unitCLIENTsecret" {
		t.Fatalf("receipt %+v, %v; want requires_action with the client secret", r, err)
	}
}

func TestChargeStatusRequiresPaymentMethod(t *testing.T) {
	p, _ := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 200, `{"id":"pi_rpm","object":"payment_intent","status":"requires_payment_method",
			"last_payment_error":{"type":"card_error","code":"card_declined","decline_code":"do_not_honor","message":"Your card was declined."}}`)
	})
	_, err := p.Charge(ctxTimeout(t, 5*time.Second), charge())
	d := wantDecline(t, err, "do_not_honor")
	if d.Reason != "Your card was declined." {
		t.Errorf("reason %q", d.Reason)
	}

	// Without last_payment_error it is still a decline.
	p, _ = newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 200, intent("pi_rpm2", "requires_payment_method"))
	})
	_, err = p.Charge(ctxTimeout(t, 5*time.Second), charge())
	wantDecline(t, err, "card_declined")
}

// An unknown payment method is the driver's to change: a decline, whose
// text does not repeat the payment method id that Stripe's message names.
func TestChargeUnknownPaymentMethod(t *testing.T) {
	p, _ := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 400, `{"error":{"type":"invalid_request_error","code":"resource_missing","param":"payment_method",
			"message":"No such PaymentMethod: '`+testPM+`'"}}`)
	})
	_, err := p.Charge(ctxTimeout(t, 5*time.Second), charge())
	wantDecline(t, err, "resource_missing")
	if strings.Contains(err.Error(), testPM) {
		t.Errorf("error names the payment method: %v", err)
	}
}

// A request Stripe refuses for a reason the driver cannot fix is not a
// decline: nothing was charged, and an operator must look.
func TestChargeInvalidRequestNotAboutPaymentMethod(t *testing.T) {
	p, _ := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 400, `{"error":{"type":"invalid_request_error","code":"amount_too_small","param":"amount","message":"Amount must be at least €0.50 eur"}}`)
	})
	_, err := p.Charge(ctxTimeout(t, 5*time.Second), charge())
	wantUnavailable(t, err)
	if !strings.Contains(err.Error(), "amount_too_small") || !strings.Contains(err.Error(), "req_unit0") {
		t.Errorf("error lacks Stripe's code or request id: %v", err)
	}
}

// A 500 to a POST is not retried by stripe-go (Stripe has stored that
// answer under the key); the caller gets ErrUnavailable and retries later.
func TestCharge500(t *testing.T) {
	p, f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 500, `{"error":{"type":"api_error","message":"An unknown error occurred"}}`)
	})
	_, err := p.Charge(ctxTimeout(t, 5*time.Second), charge())
	wantUnavailable(t, err)
	if n := len(f.requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

// A 503 is retried by stripe-go, maxNetworkRetries times, with the same
// idempotency key each time, then reported as unavailable.
func TestCharge503RetriedWithSameKey(t *testing.T) {
	p, f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 503, `{"error":{"type":"api_error","message":"Service unavailable"}}`)
	})
	_, err := p.Charge(ctxTimeout(t, 10*time.Second), charge())
	wantUnavailable(t, err)
	reqs := f.requests()
	if len(reqs) != 1+maxNetworkRetries {
		t.Fatalf("%d requests, want %d", len(reqs), 1+maxNetworkRetries)
	}
	for _, r := range reqs {
		if r.Header.Get("Idempotency-Key") != "parkgate-r123-1" {
			t.Errorf("retry with key %q", r.Header.Get("Idempotency-Key"))
		}
	}
}

// A 503 then a success: the retry inside stripe-go finds the charge.
func TestCharge503ThenSuccess(t *testing.T) {
	p, _ := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 0 {
			reply(w, 503, `{"error":{"type":"api_error","message":"Service unavailable"}}`)
			return
		}
		reply(w, 200, intent("pi_after503", "succeeded"))
	})
	rc, err := p.Charge(ctxTimeout(t, 10*time.Second), charge())
	if err != nil || rc.Ref != "pi_after503" {
		t.Fatalf("%+v %v", rc, err)
	}
}

func TestChargeRateLimited(t *testing.T) {
	p, _ := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 429, `{"error":{"type":"invalid_request_error","code":"rate_limit","message":"Too many requests hit the API too quickly."}}`)
	})
	_, err := p.Charge(ctxTimeout(t, 5*time.Second), charge())
	wantUnavailable(t, err)
}

// A rejected key is the operator's to fix, not the driver's: not a decline.
func TestChargeBadKey(t *testing.T) {
	p, _ := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 401, `{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: sk_test_****cret"}}`)
	})
	_, err := p.Charge(ctxTimeout(t, 5*time.Second), charge())
	wantUnavailable(t, err)
	if strings.Contains(err.Error(), "sk_test_") {
		t.Errorf("error carries even the masked key: %v", err)
	}
}

// The same key with other parameters (say, another card on a re-driven
// attempt): the first request's outcome stands, so not a decline.
func TestChargeIdempotencyError(t *testing.T) {
	p, _ := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 400, `{"error":{"type":"idempotency_error","message":"Keys for idempotent requests can only be used with the same parameters they were first used with."}}`)
	})
	_, err := p.Charge(ctxTimeout(t, 5*time.Second), charge())
	wantUnavailable(t, err)
}

// A server that never answers: the caller's deadline bounds the charge,
// nothing is retried after it, and the error says it was the deadline.
func TestChargeHangingServer(t *testing.T) {
	release := make(chan struct{})
	p, f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	start := time.Now()
	_, err := p.Charge(ctxTimeout(t, 300*time.Millisecond), charge())
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("charge took %v with a 300ms deadline", took)
	}
	wantUnavailable(t, err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error does not wrap the deadline: %v", err)
	}
	if n := len(f.requests()); n != 1 {
		t.Errorf("%d requests after the deadline, want 1", n)
	}
}

func TestChargeCancelled(t *testing.T) {
	p, _ := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := p.Charge(ctx, charge())
	wantUnavailable(t, err)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error does not wrap the cancellation: %v", err)
	}
}

func TestChargeConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p, err := New(Config{SecretKey: testKey, APIURL: "http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Charge(ctxTimeout(t, 10*time.Second), charge())
	wantUnavailable(t, err)
}

// A 200 that is not Stripe's JSON (a proxy's page): outcome unknown.
func TestChargeUnreadableAnswer(t *testing.T) {
	p, _ := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		w.WriteHeader(200)
		io.WriteString(w, "<html>gateway says hi</html>")
	})
	_, err := p.Charge(ctxTimeout(t, 5*time.Second), charge())
	wantUnavailable(t, err)
}

// processing is not final: the intent is read again, and a retry that gets
// Stripe's replayed "processing" still learns the payment went through.
func TestChargeProcessingLooksAgain(t *testing.T) {
	p, f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if r.Method == http.MethodPost {
			reply(w, 200, intent("pi_proc", "processing"))
			return
		}
		reply(w, 200, intent("pi_proc", "succeeded"))
	})
	rc, err := p.Charge(ctxTimeout(t, 5*time.Second), charge())
	if err != nil || rc.Ref != "pi_proc" {
		t.Fatalf("%+v %v", rc, err)
	}
	reqs := f.requests()
	if len(reqs) != 2 || reqs[1].Method != http.MethodGet || reqs[1].Path != "/v1/payment_intents/pi_proc" {
		t.Fatalf("requests %+v", reqs)
	}

	p, _ = newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 200, intent("pi_proc2", "processing"))
	})
	_, err = p.Charge(ctxTimeout(t, 5*time.Second), charge())
	wantUnavailable(t, err)
	if !strings.Contains(err.Error(), "processing") {
		t.Errorf("error does not say why: %v", err)
	}
}

// Refused before anything is sent.
func TestChargeChecks(t *testing.T) {
	p, f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 200, intent("pi_x", "succeeded"))
	})
	ctx := ctxTimeout(t, 5*time.Second)
	for name, mutate := range map[string]func(*payment.Charge){
		"no key":      func(c *payment.Charge) { c.IdempotencyKey = "" },
		"zero amount": func(c *payment.Charge) { c.Amount = 0 },
		"no currency": func(c *payment.Charge) { c.Currency = "" },
	} {
		c := charge()
		mutate(&c)
		if _, err := p.Charge(ctx, c); err == nil || payment.IsDecline(err) {
			t.Errorf("%s: %v", name, err)
		}
	}
	c := charge()
	c.PaymentMethod = "4242 4242 4242 4242"
	_, err := p.Charge(ctx, c)
	wantDecline(t, err, "invalid_payment_method")
	if strings.Contains(err.Error(), "4242") {
		t.Errorf("error repeats the card data: %v", err)
	}
	c.PaymentMethod = ""
	_, err = p.Charge(ctx, c)
	wantDecline(t, err, "missing_payment_method")
	if n := len(f.requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

func TestRefundRequest(t *testing.T) {
	p, f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 200, `{"id":"re_unit1","object":"refund","status":"pending","amount":100}`)
	})
	ctx := ctxTimeout(t, 5*time.Second)
	rc, err := p.Refund(ctx, refund())
	if err != nil || rc.Ref != "re_unit1" {
		t.Fatalf("refund: %+v %v", rc, err)
	}
	cancelled := refund()
	cancelled.Reason, cancelled.IdempotencyKey = "cancelled", "parkgate-refund-r123-2"
	if _, err := p.Refund(ctx, cancelled); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()
	r := reqs[0]
	if r.Method != http.MethodPost || r.Path != "/v1/refunds" {
		t.Errorf("request %s %s", r.Method, r.Path)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer "+testKey {
		t.Errorf("Authorization %q", got)
	}
	if got := r.Header.Get("Idempotency-Key"); got != "parkgate-refund-r123-1" {
		t.Errorf("Idempotency-Key %q", got)
	}
	for k, want := range map[string]string{
		"payment_intent":            "pi_unit1",
		"amount":                    "100",
		"metadata[parkgate_reason]": "early_departure",
		"metadata[reservation_id]":  "r123",
	} {
		if got := r.Form.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	// No Stripe reason for a refund by parkgate's policy; no currency
	// (Stripe's is for customer-balance refunds).
	if r.Form.Has("reason") || r.Form.Has("currency") {
		t.Errorf("unexpected fields: %v", r.Form)
	}
	if got := reqs[1].Form.Get("reason"); got != "requested_by_customer" {
		t.Errorf("cancellation reason %q", got)
	}
}

func TestRefundRefusedForGood(t *testing.T) {
	for _, tc := range []struct {
		status     int
		body, code string
	}{
		{400, `{"error":{"type":"invalid_request_error","code":"charge_already_refunded","message":"Charge ch_1 has already been refunded."}}`, "charge_already_refunded"},
		{400, `{"error":{"type":"invalid_request_error","code":"amount_too_large","param":"amount","message":"Refund amount (€5.00) is greater than unrefunded amount on charge (€2.50)"}}`, "amount_too_large"},
		{404, `{"error":{"type":"invalid_request_error","code":"resource_missing","param":"payment_intent","message":"No such payment_intent: 'pi_unit1'"}}`, "resource_missing"},
	} {
		p, _ := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, tc.status, tc.body) })
		_, err := p.Refund(ctxTimeout(t, 5*time.Second), refund())
		d := wantDecline(t, err, tc.code)
		if d.Reason == "" {
			t.Errorf("%s: no reason", tc.code)
		}
	}
}

func TestRefundStatusFailed(t *testing.T) {
	p, _ := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 200, `{"id":"re_f","object":"refund","status":"failed","failure_reason":"expired_or_canceled_card"}`)
	})
	_, err := p.Refund(ctxTimeout(t, 5*time.Second), refund())
	d := wantDecline(t, err, "refund_failed")
	if !strings.Contains(d.Reason, "expired_or_canceled_card") {
		t.Errorf("reason %q", d.Reason)
	}
}

func TestRefundUnavailable(t *testing.T) {
	p, _ := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		reply(w, 500, `{"error":{"type":"api_error","message":"An unknown error occurred"}}`)
	})
	_, err := p.Refund(ctxTimeout(t, 5*time.Second), refund())
	wantUnavailable(t, err)

	release := make(chan struct{})
	defer close(release)
	p, _ = newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	_, err = p.Refund(ctxTimeout(t, 200*time.Millisecond), refund())
	wantUnavailable(t, err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%v", err)
	}
}

func TestRefundChecks(t *testing.T) {
	p, f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) { reply(w, 500, `{}`) })
	for name, mutate := range map[string]func(*payment.Refund){
		"no key":    func(r *payment.Refund) { r.IdempotencyKey = "" },
		"no charge": func(r *payment.Refund) { r.ChargeRef = "" },
		"zero":      func(r *payment.Refund) { r.Amount = 0 },
	} {
		r := refund()
		mutate(&r)
		if _, err := p.Refund(context.Background(), r); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

// A server that echoes the Authorization header and the request body into
// every kind of answer: no error string may carry the key, the payment
// method or a client secret.
func TestSecretsNeverInErrors(t *testing.T) {
	answers := []func(w http.ResponseWriter, echo string){
		func(w http.ResponseWriter, echo string) {
			reply(w, 402, fmt.Sprintf(`{"error":{"type":"card_error","code":"card_declined","message":%q}}`, "declined "+echo))
		},
		func(w http.ResponseWriter, echo string) {
			reply(w, 400, fmt.Sprintf(`{"error":{"type":"invalid_request_error","code":"resource_missing","param":"payment_method","message":%q}}`, echo))
		},
		func(w http.ResponseWriter, echo string) {
			reply(w, 400, fmt.Sprintf(`{"error":{"type":"invalid_request_error","code":"parameter_unknown","param":"x","message":%q}}`, echo))
		},
		func(w http.ResponseWriter, echo string) {
			reply(w, 401, fmt.Sprintf(`{"error":{"type":"invalid_request_error","message":%q}}`, "Invalid API Key provided: "+echo))
		},
		func(w http.ResponseWriter, echo string) {
			reply(w, 429, fmt.Sprintf(`{"error":{"type":"invalid_request_error","code":"rate_limit","message":%q}}`, echo))
		},
		func(w http.ResponseWriter, echo string) {
			reply(w, 500, fmt.Sprintf(`{"error":{"type":"api_error","message":%q}}`, echo))
		},
		func(w http.ResponseWriter, echo string) {
			reply(w, 500, "not json "+echo)
		},
		func(w http.ResponseWriter, echo string) {
			reply(w, 200, "not json "+echo)
		},
		func(w http.ResponseWriter, echo string) {
			reply(w, 400, fmt.Sprintf(`{"error":{"type":"idempotency_error","message":%q}}`, echo))
		},
		func(w http.ResponseWriter, echo string) {
			reply(w, 200, fmt.Sprintf(`{"id":"pi_e","object":"payment_intent","status":"requires_payment_method","last_payment_error":{"type":"card_error","code":"card_declined","message":%q}}`, echo))
		},
		func(w http.ResponseWriter, echo string) {
			reply(w, 200, fmt.Sprintf(`{"id":"re_e","object":"refund","status":"failed","failure_reason":%q}`, echo))
		},
		// Not Stripe: secrets in the fields that are codes and ids.
		func(w http.ResponseWriter, echo string) {
			reply(w, 402, fmt.Sprintf(`{"error":{"type":%q,"code":%q,"decline_code":%q,"message":"declined"}}`, echo, echo, echo))
		},
		func(w http.ResponseWriter, echo string) {
			w.Header().Set("Request-Id", echo)
			reply(w, 400, fmt.Sprintf(`{"error":{"type":"invalid_request_error","code":%q,"message":"no"}}`, echo))
		},
		func(w http.ResponseWriter, echo string) {
			reply(w, 200, fmt.Sprintf(`{"id":"pi_e","object":"payment_intent","status":%q}`, echo))
		},
		func(w http.ResponseWriter, echo string) {
			reply(w, 200, fmt.Sprintf(`{"id":%q,"object":"payment_intent","status":"succeeded"}`, echo))
		},
	}
	for i, answer := range answers {
		p, _ := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
			body, _ := io.ReadAll(r.Body)
			answer(w, r.Header.Get("Authorization")+" "+string(body)+" "+testPM+" pi_e_secret_unitCLIENTsecret")
		})
		ctx := ctxTimeout(t, 5*time.Second)
		_, cerr := p.Charge(ctx, charge())
		_, rerr := p.Refund(ctx, refund())
		for _, err := range []error{cerr, rerr} {
			if err == nil {
				continue
			}
			msg := err.Error()
			for _, secret := range []string{testKey, "sk_test_", testPM, "_secret_"} {
				if strings.Contains(msg, secret) {
					t.Errorf("answer %d: error contains %q: %s", i, secret, msg)
				}
			}
			var d *payment.DeclineError
			if errors.As(err, &d) && strings.Contains(d.Reason, testPM) {
				t.Errorf("answer %d: decline reason names the payment method", i)
			}
		}
		if cerr == nil {
			t.Errorf("answer %d: charge succeeded", i)
		}
	}
}

// Printing or logging the provider does not print its key.
func TestProviderPrintsNoKey(t *testing.T) {
	p, err := New(Config{SecretKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("provider", "p", p)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("provider", "p", p)
	out := fmt.Sprintf("%v %+v %#v %s %v %+v", p, p, p, p, *p, *p) + buf.String()
	if strings.Contains(out, testKey) || strings.Contains(out, "sk_test") {
		t.Fatalf("key printed: %s", out)
	}
}

func TestScrubber(t *testing.T) {
	s := newScrubber(testKey)
	for in, gone := range map[string]string{
		"key " + testKey:                     testKey,
		"masked sk_live_****abcd":            "abcd",
		"No such PaymentMethod: 'pm_1Xyz_a'": "pm_1Xyz",
		"card card_1Abc here":                "card_1Abc",
		"secret pi_1A_secret_B":              "secret_B",
		"rk_test_abc":                        "rk_test",
	} {
		if out := s.text(in, ""); strings.Contains(out, gone) {
			t.Errorf("%q → %q still has %q", in, out, gone)
		}
	}
	if out := s.text(strings.Repeat("a", 1000), ""); len(out) > maxText+10 {
		t.Errorf("not cut: %d", len(out))
	}
	if out := s.text("Your card was declined.", ""); out != "Your card was declined." {
		t.Errorf("harmless text changed: %q", out)
	}
}

// A payment that completed cannot be cancelled (Stripe's 400
// payment_intent_unexpected_state): an error, never "cancelled"; Lookup
// then tells what happened. A cancelled or failed intent looks up as a
// decline, an unknown id is refused before it is sent.
func TestCancelAndLookupOutcomes(t *testing.T) {
	p, _ := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/cancel"):
			reply(w, 400, `{"error":{"type":"invalid_request_error","code":"payment_intent_unexpected_state","message":"You cannot cancel this PaymentIntent because it has a status of succeeded."}}`)
		case strings.HasSuffix(r.URL.Path, "pi_gone"):
			reply(w, 200, intent("pi_gone", "canceled"))
		default:
			reply(w, 200, intent("pi_done", "succeeded"))
		}
	})
	ctx := ctxTimeout(t, 5*time.Second)
	if err := p.Cancel(ctx, "pi_done"); err == nil {
		t.Fatal("cancelling a succeeded intent reported success")
	}
	if r, err := p.Lookup(ctx, "pi_done"); err != nil || r.RequiresAction() || r.Ref != "pi_done" {
		t.Fatalf("lookup: %+v %v", r, err)
	}
	if _, err := p.Lookup(ctx, "pi_gone"); !payment.IsDecline(err) {
		t.Fatalf("lookup of a cancelled intent: %v", err)
	}
	if _, err := p.Lookup(ctx, "pi_1/../../v1/customers"); err == nil {
		t.Fatal("a malformed id was sent")
	}
}
