package stripepay

// Integration tests against a real stripe-mock process, which validates
// every request against Stripe's own OpenAPI specification: an unknown
// parameter, a wrong type or a value outside an enumeration is refused
// with a 400, as Stripe would. They run when PARKING_TEST_STRIPE_URL is set
// (.ci/run starts stripe-mock and sets it) and skip otherwise.
//
// What stripe-mock cannot do, and where that is covered instead:
//   - It is stateless: an idempotency key is echoed but not honoured, a
//     refund is not checked against its payment intent, and nothing is
//     remembered between requests (unit tests and the fake provider cover
//     idempotent retries and over-refunds).
//   - It never declines and never fails: every valid request gets the same
//     hard-coded fixture, whatever the test card (pm_card_chargeDeclined
//     "succeeds" too); declines, 3-D Secure, 5xx, 429 and timeouts are in
//     the unit tests with an httptest server.
//   - Its payment intent fixture always has status requires_payment_method,
//     even after confirm=true with pm_card_visa. The charge test therefore
//     puts a small proxy between the provider and stripe-mock that sets the
//     status a real card network would: the request still reaches
//     stripe-mock and is validated there, only the answer's status is
//     Stripe's real one for a good card.
//   - It reflects only some parameters into its answers (amount, currency,
//     payment_method, but not metadata), so the test reads back what it can.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/payment"
)

// mockKey is a key stripe-mock accepts: it wants exactly sk|rk, test, and
// one more part.
const mockKey = "sk_test_parkgateStripeMock"

// stripeMockURL is stripe-mock's base URL, or a skip.
func stripeMockURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("PARKING_TEST_STRIPE_URL")
	if u == "" {
		t.Skip("PARKING_TEST_STRIPE_URL is not set: to run the Stripe integration tests, `go install github.com/stripe/stripe-mock@v0.203.0`, start `stripe-mock -http-port 12111 -https-port 12112` and set PARKING_TEST_STRIPE_URL=http://127.0.0.1:12111 (.ci/run does this)")
	}
	return strings.TrimRight(u, "/")
}

func mockProvider(t *testing.T, base string) *Provider {
	t.Helper()
	p, err := New(Config{SecretKey: mockKey, APIURL: base})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// exchange is one request through the proxy and stripe-mock's answer.
type exchange struct {
	Method, Path string
	Status       int
	Body         string
	// Form is the request's form body, as the provider sent it.
	Form url.Values
}

// mockProxy forwards to stripe-mock, records its answers and may rewrite
// the status of a payment intent in an answer (see the file comment).
type mockProxy struct {
	mu        sync.Mutex
	exchanges []exchange
}

func (m *mockProxy) seen() []exchange {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]exchange(nil), m.exchanges...)
}

// newMockProxy returns the proxy's URL. status(method, path) names the
// payment intent status to put into the answer, or "" to leave it.
func newMockProxy(t *testing.T, upstream string, status func(method, path string) string) (string, *mockProxy) {
	t.Helper()
	target, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	m := &mockProxy{}
	rp := httputil.NewSingleHostReverseProxy(target)
	var (
		forms   []url.Values
		formsMu sync.Mutex
	)
	rp.ModifyResponse = func(res *http.Response) error {
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			return err
		}
		m.mu.Lock()
		formsMu.Lock()
		var form url.Values
		if n := len(m.exchanges); n < len(forms) {
			form = forms[n]
		}
		formsMu.Unlock()
		m.exchanges = append(m.exchanges, exchange{res.Request.Method, res.Request.URL.Path, res.StatusCode, string(body), form})
		m.mu.Unlock()
		if s := status(res.Request.Method, res.Request.URL.Path); s != "" && res.StatusCode == http.StatusOK {
			var obj map[string]any
			if err := json.Unmarshal(body, &obj); err != nil {
				return err
			}
			if obj["object"] == "payment_intent" {
				obj["status"] = s
				obj["last_payment_error"] = nil
				if body, err = json.Marshal(obj); err != nil {
					return err
				}
			}
		}
		res.Body = io.NopCloser(bytes.NewReader(body))
		res.ContentLength = int64(len(body))
		res.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	// Keep each request's form to check what was sent (the tests' requests
	// go one at a time); the body goes on to stripe-mock unchanged.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		form, _ := url.ParseQuery(string(b))
		formsMu.Lock()
		forms = append(forms, form)
		formsMu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, m
}

func mockCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// requireAccepted fails unless stripe-mock answered every request 200,
// i.e. found it valid under Stripe's schema.
func requireAccepted(t *testing.T, m *mockProxy, want int) {
	t.Helper()
	ex := m.seen()
	if len(ex) != want {
		t.Fatalf("%d requests reached stripe-mock, want %d: %+v", len(ex), want, ex)
	}
	for _, e := range ex {
		if e.Status != http.StatusOK {
			t.Errorf("stripe-mock refused %s %s with %d: %s", e.Method, e.Path, e.Status, e.Body)
		}
	}
}

// A charge with pm_card_visa and its refund, as centrald sends them.
func TestStripeMockChargeAndRefund(t *testing.T) {
	base := stripeMockURL(t)
	proxy, m := newMockProxy(t, base, func(method, path string) string {
		if method == http.MethodPost && path == "/v1/payment_intents" {
			return "succeeded"
		}
		return ""
	})
	p := mockProvider(t, proxy)
	ctx := mockCtx(t)

	c := payment.Charge{
		Amount:         750,
		Currency:       "eur",
		PaymentMethod:  "pm_card_visa",
		IdempotencyKey: "parkgate-r1-1",
		Metadata:       map[string]string{"reservation_id": "r1", "spot_id": "3"},
	}
	rc, err := p.Charge(ctx, c)
	if err != nil {
		t.Fatalf("charge: %v", err)
	}
	if !strings.HasPrefix(rc.Ref, "pi_") {
		t.Fatalf("charge ref %q, want pi_…", rc.Ref)
	}
	requireAccepted(t, m, 1)
	var pi struct {
		Amount        int64    `json:"amount"`
		Currency      string   `json:"currency"`
		PaymentMethod string   `json:"payment_method"`
		Types         []string `json:"payment_method_types"`
	}
	if err := json.Unmarshal([]byte(m.seen()[0].Body), &pi); err != nil {
		t.Fatal(err)
	}
	if pi.Amount != 750 || pi.Currency != "eur" || pi.PaymentMethod != "pm_card_visa" || len(pi.Types) != 1 || pi.Types[0] != "card" {
		t.Errorf("stripe-mock read back %+v", pi)
	}

	re, err := p.Refund(ctx, payment.Refund{
		ChargeRef:      rc.Ref,
		Amount:         250,
		Currency:       "eur",
		IdempotencyKey: "parkgate-refund-r1-1",
		Reason:         "cancelled",
		Metadata:       map[string]string{"reservation_id": "r1", "reason": "cancelled"},
	})
	if err != nil {
		t.Fatalf("refund: %v", err)
	}
	if !strings.HasPrefix(re.Ref, "re_") {
		t.Fatalf("refund ref %q, want re_…", re.Ref)
	}
	requireAccepted(t, m, 2)
	var refund struct {
		Amount        int64  `json:"amount"`
		PaymentIntent string `json:"payment_intent"`
		Reason        string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(m.seen()[1].Body), &refund); err != nil {
		t.Fatal(err)
	}
	if refund.Amount != 250 || refund.PaymentIntent != rc.Ref || refund.Reason != "requested_by_customer" {
		t.Errorf("stripe-mock read back %+v", refund)
	}
}

// Straight to stripe-mock, no proxy: the charge is accepted (the answer is
// the fixture's requires_payment_method, hence a decline), never refused
// as a bad request, which would be ErrUnavailable.
func TestStripeMockAcceptsCharge(t *testing.T) {
	p := mockProvider(t, stripeMockURL(t))
	for _, pm := range []string{"pm_card_visa", "pm_card_mastercard", "pm_card_chargeDeclined"} {
		_, err := p.Charge(mockCtx(t), payment.Charge{
			Amount: 250, Currency: "eur", PaymentMethod: pm, IdempotencyKey: "parkgate-r2-" + pm,
			Metadata: map[string]string{"reservation_id": "r2", "spot_id": "1"},
		})
		if err != nil && !payment.IsDecline(err) {
			t.Errorf("%s: stripe-mock refused the charge: %v", pm, err)
		}
		t.Logf("%s: %v (stripe-mock's fixture status, whatever the card)", pm, err)
	}
}

// An intent that is not final is read again (GET /v1/payment_intents/…);
// stripe-mock accepts that request too.
func TestStripeMockLooksAgain(t *testing.T) {
	proxy, m := newMockProxy(t, stripeMockURL(t), func(method, path string) string {
		if method == http.MethodPost {
			return "processing"
		}
		return "succeeded"
	})
	p := mockProvider(t, proxy)
	rc, err := p.Charge(mockCtx(t), payment.Charge{
		Amount: 250, Currency: "eur", PaymentMethod: "pm_card_visa", IdempotencyKey: "parkgate-r3-1",
		Metadata: map[string]string{"reservation_id": "r3"},
	})
	if err != nil || !strings.HasPrefix(rc.Ref, "pi_") {
		t.Fatalf("charge: %+v %v", rc, err)
	}
	requireAccepted(t, m, 2)
	if ex := m.seen(); ex[1].Method != http.MethodGet || !strings.HasPrefix(ex[1].Path, "/v1/payment_intents/pi_") {
		t.Errorf("second request %s %s", ex[1].Method, ex[1].Path)
	}
}

// Every refund reason parkgate uses is sent in a form Stripe accepts (an
// early departure or a no-show has no Stripe reason; sending one would be
// refused, see TestStripeMockValidates).
func TestStripeMockAcceptsRefundReasons(t *testing.T) {
	p := mockProvider(t, stripeMockURL(t))
	for _, reason := range []string{"early_departure", "no_show", "cancelled"} {
		re, err := p.Refund(mockCtx(t), payment.Refund{
			ChargeRef: "pi_parkgateMock", Amount: 100, Currency: "eur",
			IdempotencyKey: "parkgate-refund-" + reason, Reason: reason,
			Metadata: map[string]string{"reservation_id": "r4", "reason": reason},
		})
		if err != nil || !strings.HasPrefix(re.Ref, "re_") {
			t.Errorf("%s: %+v %v", reason, re, err)
		}
	}
}

// stripe-mock does validate: otherwise the tests above would prove
// nothing. The provider's own error mapping is also checked on its answer.
func TestStripeMockValidates(t *testing.T) {
	base := stripeMockURL(t)
	for _, tc := range []struct{ path, body string }{
		{"/v1/refunds", "payment_intent=pi_1&amount=100&reason=early_departure"},
		{"/v1/payment_intents", "amount=100&currency=eur&no_such_parameter=1"},
		{"/v1/payment_intents", "amount=ten&currency=eur"},
	} {
		req, _ := http.NewRequestWithContext(mockCtx(t), http.MethodPost, base+tc.path, strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+mockKey)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("%s %s: %d %s, want 400", tc.path, tc.body, res.StatusCode, body)
		}
	}

	// A key stripe-mock does not take (it wants test keys) comes back as
	// 401: unavailable, an operator's problem rather than a decline, and
	// the key is not in the error. New refuses to send a live key over
	// plain http, so the key is swapped in on the client.
	const liveKey = "sk_live_parkgateMock"
	p := mockProvider(t, base)
	p.api.PaymentIntents.Key = liveKey
	_, err := p.Charge(mockCtx(t), payment.Charge{Amount: 100, Currency: "eur", PaymentMethod: "pm_card_visa", IdempotencyKey: "parkgate-r5-1"})
	if !errors.Is(err, payment.ErrUnavailable) || strings.Contains(err.Error(), liveKey) {
		t.Errorf("live key at stripe-mock: %v", err)
	}
}

// A driver's first charge saves the card for off-session charges: a
// Customer first (its own idempotency key), then the PaymentIntent with
// customer and setup_future_usage=off_session. stripe-mock accepts both.
func TestStripeMockSavesCardForOffSession(t *testing.T) {
	proxy, m := newMockProxy(t, stripeMockURL(t), func(method, path string) string {
		if method == http.MethodPost && path == "/v1/payment_intents" {
			return "succeeded"
		}
		return ""
	})
	p := mockProvider(t, proxy)
	rc, err := p.Charge(mockCtx(t), payment.Charge{
		Amount: 500, Currency: "eur", PaymentMethod: "pm_card_visa", IdempotencyKey: "parkgate-r6-1",
		Metadata: map[string]string{"reservation_id": "r6", "spot_id": "2"}, SaveForOffSession: true,
	})
	if err != nil || !strings.HasPrefix(rc.Ref, "pi_") || !strings.HasPrefix(rc.Customer, "cus_") {
		t.Fatalf("charge: %+v %v", rc, err)
	}
	requireAccepted(t, m, 2)
	ex := m.seen()
	if ex[0].Path != "/v1/customers" || ex[1].Path != "/v1/payment_intents" {
		t.Fatalf("requests %s, %s", ex[0].Path, ex[1].Path)
	}
	if f := ex[1].Form; f.Get("customer") != rc.Customer || f.Get("setup_future_usage") != "off_session" || f.Get("confirm") != "true" || f.Has("off_session") {
		t.Errorf("payment intent form %v", f)
	}
}

// An overstay fee: off_session=true, confirm=true on the saved customer's
// card. stripe-mock accepts it.
func TestStripeMockOffSessionCharge(t *testing.T) {
	proxy, m := newMockProxy(t, stripeMockURL(t), func(method, path string) string { return "succeeded" })
	p := mockProvider(t, proxy)
	rc, err := p.Charge(mockCtx(t), payment.Charge{
		Amount: 250, Currency: "eur", PaymentMethod: "pm_card_visa", IdempotencyKey: "parkgate-overstay-r7-2",
		Metadata:   map[string]string{"reservation_id": "r7", "spot_id": "2", "purpose": "overstay"},
		OffSession: true, Customer: "cus_parkgateMock",
	})
	if err != nil || !strings.HasPrefix(rc.Ref, "pi_") {
		t.Fatalf("charge: %+v %v", rc, err)
	}
	requireAccepted(t, m, 1)
	f := m.seen()[0].Form
	if f.Get("off_session") != "true" || f.Get("confirm") != "true" || f.Get("customer") != "cus_parkgateMock" || f.Has("setup_future_usage") {
		t.Errorf("form %v", f)
	}
}

// Retrieving an intent (the repeated request after 3-D Secure, the
// reconciler) and cancelling one (the action timed out): stripe-mock
// accepts both requests; the answers' statuses are set by the proxy.
func TestStripeMockLookupAndCancel(t *testing.T) {
	status := "requires_action"
	proxy, m := newMockProxy(t, stripeMockURL(t), func(method, path string) string {
		if strings.HasSuffix(path, "/cancel") {
			return "canceled"
		}
		return status
	})
	p := mockProvider(t, proxy)
	rc, err := p.Lookup(mockCtx(t), "pi_parkgateMock")
	if err != nil || !rc.RequiresAction() || rc.ClientSecret == "" {
		t.Fatalf("lookup: %+v %v", rc, err)
	}
	status = "succeeded"
	if rc, err := p.Lookup(mockCtx(t), "pi_parkgateMock"); err != nil || rc.RequiresAction() || rc.Ref == "" {
		t.Fatalf("lookup: %+v %v", rc, err)
	}
	if err := p.Cancel(mockCtx(t), "pi_parkgateMock"); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	requireAccepted(t, m, 3)
	ex := m.seen()
	if ex[0].Method != http.MethodGet || ex[0].Path != "/v1/payment_intents/pi_parkgateMock" {
		t.Errorf("lookup request %s %s", ex[0].Method, ex[0].Path)
	}
	if ex[2].Method != http.MethodPost || ex[2].Path != "/v1/payment_intents/pi_parkgateMock/cancel" || ex[2].Form.Get("cancellation_reason") != "abandoned" {
		t.Errorf("cancel request %s %s %v", ex[2].Method, ex[2].Path, ex[2].Form)
	}
	// The duplicate refund reason is one of Stripe's.
	if re, err := p.Refund(mockCtx(t), payment.Refund{ChargeRef: "pi_parkgateMock", Amount: 100, Currency: "eur",
		IdempotencyKey: "parkgate-refund-r8-1", Reason: "duplicate"}); err != nil || !strings.HasPrefix(re.Ref, "re_") {
		t.Errorf("duplicate refund: %+v %v", re, err)
	}
}
