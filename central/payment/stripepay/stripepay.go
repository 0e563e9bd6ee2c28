// Package stripepay is the payment.Provider on Stripe (stripe-go v76).
//
// A charge is one PaymentIntent, created and confirmed in a single request
// with the payment method the driver named ("pm_…"); parkgate never sees
// card data. The caller's idempotency key becomes Stripe's Idempotency-Key,
// so a retry after a timeout or a crash gets the first PaymentIntent back
// instead of charging again. A refund is one Refund of that PaymentIntent,
// idempotent in the same way.
//
// Outcomes map onto the payment package's contract:
//   - succeeded → a Receipt with the PaymentIntent id;
//   - requires_action (3-D Secure) → a Receipt with StatusRequiresAction
//     and the intent's client secret, for the driver's app; Lookup
//     (retrieve) and Cancel finish it;
//   - a card decline, a payment method Stripe does not know or cannot use,
//     an off-session charge that would need authentication, a refund
//     Stripe refuses for good → *payment.DeclineError;
//   - everything else (network, timeout, 5xx, rate limit, a rejected API
//     key, an intent still processing) → an error wrapping
//     payment.ErrUnavailable: nothing is known to be charged twice, and the
//     caller retries with the same key.
//
// Secrets: the API key is handed to a per-provider stripe-go client (never
// the package-global stripe.Key, so two providers or a test cannot leak
// into each other), stripe-go's own logger is silenced (its error logs
// print whole Stripe error objects, payment method included), and every
// text that comes from Stripe is scrubbed of keys and payment method ids
// before it reaches an error string.
package stripepay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/parkgate/parkgate/central/payment"
)

// maxNetworkRetries is how often stripe-go itself retries a request that
// failed on the way (connection reset, 409 idempotency_key_in_use, 503,
// a Stripe-Should-Retry answer). It is set deliberately rather than left
// to the library default: every retry carries the same Idempotency-Key, so
// Stripe answers it with the first outcome and a retry can never charge
// twice, and two retries (about 1.5 s of back-off) fit well inside the
// caller's payment timeout. stripe-go never retries once the context is
// done, and never retries a POST that got a 500 (Stripe has already stored
// that answer under the key).
const maxNetworkRetries = 2

// defaultHTTPTimeout bounds a request whose context has no deadline. The
// caller's context (payment.timeout) is the real bound; this is a backstop
// so a forgotten deadline cannot hang a goroutine on a silent connection.
const defaultHTTPTimeout = 60 * time.Second

// Config is what New needs: centrald fills it from payment.stripe.*.
type Config struct {
	// SecretKey is a secret ("sk_test_…", "sk_live_…") or restricted
	// ("rk_…") API key. It is never logged nor put in an error.
	SecretKey string
	// APIURL is the API's base URL, without "/v1"; empty means Stripe's
	// own (https://api.stripe.com). Tests point it at stripe-mock.
	APIURL string
	// HTTPClient is optional; nil gets a client of this package's own with
	// a backstop timeout.
	HTTPClient *http.Client
}

// Provider is a payment.Provider on one Stripe account. It is safe for
// concurrent use.
type Provider struct {
	api     *client.API
	baseURL string    // for String; holds no secret
	scrub   *scrubber // removes the key from texts that come from Stripe
}

var _ payment.Provider = (*Provider)(nil)

// keyShape is what a usable Stripe key looks like: the kind, the mode and
// a body of letters and digits. Publishable keys (pk_…) cannot charge.
var keyShape = regexp.MustCompile(`^(sk|rk)_(test|live)_[A-Za-z0-9]+$`)

// New returns a provider for cfg. It refuses a key that cannot work (empty,
// publishable, or not shaped like a Stripe key) now, at start-up, rather
// than at a driver's first payment; the error never repeats the key.
func New(cfg Config) (*Provider, error) {
	key := cfg.SecretKey
	switch {
	case key == "":
		return nil, errors.New("stripepay: payment.stripe.secret_key is empty; set a secret key (sk_test_… or sk_live_…) or a restricted key (rk_…)")
	case strings.HasPrefix(key, "pk_"):
		return nil, errors.New("stripepay: payment.stripe.secret_key is a publishable key (pk_…), which cannot charge; use a secret key (sk_…) or a restricted key (rk_…)")
	case strings.TrimSpace(key) != key:
		return nil, errors.New("stripepay: payment.stripe.secret_key has leading or trailing white space (a pasted newline?)")
	case !keyShape.MatchString(key):
		return nil, errors.New("stripepay: payment.stripe.secret_key does not look like a Stripe key: want sk_test_…, sk_live_…, rk_test_… or rk_live_…")
	}

	base := stripe.APIURL
	if cfg.APIURL != "" {
		u, err := url.Parse(cfg.APIURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("stripepay: payment.stripe.api_url %q: want an http or https base URL such as http://127.0.0.1:12111", cfg.APIURL)
		}
		if u.User != nil {
			return nil, errors.New("stripepay: payment.stripe.api_url must not carry credentials; the key goes in payment.stripe.secret_key")
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("stripepay: payment.stripe.api_url %q: want a base URL without query or fragment", cfg.APIURL)
		}
		base = strings.TrimRight(u.String(), "/")
	}
	// A live key is real money: it goes to Stripe over TLS only, never in
	// clear text to a test double or a misconfigured proxy.
	if strings.Contains(key, "_live_") && !strings.HasPrefix(base, "https://") {
		return nil, errors.New("stripepay: a live key is only sent over https; payment.stripe.api_url is not https")
	}

	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: defaultHTTPTimeout}
	}
	backend := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		URL:               stripe.String(base),
		HTTPClient:        hc,
		MaxNetworkRetries: stripe.Int64(maxNetworkRetries),
		// stripe-go's logger prints Stripe's error objects whole (payment
		// method, client secrets) and response bodies at debug level; the
		// provider returns what matters in its errors instead.
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
		// Telemetry headers would tell Stripe our request timings; off, so
		// the requests are exactly what the tests check.
		EnableTelemetry: stripe.Bool(false),
	})
	// Only the API backend is used; the others are set so that nothing in
	// client.New falls back to stripe's package-global backends.
	backends := &stripe.Backends{API: backend, Connect: backend, Uploads: backend}
	return &Provider{
		api:     client.New(key, backends),
		baseURL: base,
		scrub:   newScrubber(key),
	}, nil
}

// String describes the provider without its key, so that logging the
// provider (fmt's %v, %+v) cannot print the client and its key.
func (p *Provider) String() string { return "stripepay.Provider{url: " + p.baseURL + "}" }

// GoString is String for %#v, which would otherwise print every field.
func (p *Provider) GoString() string { return p.String() }

// LogValue is String for log/slog.
func (p *Provider) LogValue() slog.Value { return slog.StringValue(p.String()) }

// Charge implements payment.Provider: one PaymentIntent, created and
// confirmed at once with c.PaymentMethod, under c.IdempotencyKey.
//
// With c.SaveForOffSession, a Customer is created first (under the key
// with "-customer" appended, so that a re-driven charge finds the same
// one) and the intent saves the payment method on it for later
// off-session charges (setup_future_usage=off_session). With
// c.OffSession, the intent charges c.Customer's saved method with the
// driver absent (off_session=true); a card that would need authentication
// then fails with a decline instead of waiting.
func (p *Provider) Charge(ctx context.Context, c payment.Charge) (payment.Receipt, error) {
	if err := checkCharge(c); err != nil {
		return payment.Receipt{}, err
	}
	params := &stripe.PaymentIntentParams{
		Params: stripe.Params{
			Context:        ctx,
			IdempotencyKey: stripe.String(c.IdempotencyKey),
		},
		Amount:        stripe.Int64(c.Amount),
		Currency:      stripe.String(c.Currency),
		PaymentMethod: stripe.String(c.PaymentMethod),
		// Cards only: with no redirecting payment method types allowed,
		// Stripe needs no return_url for a confirm at creation.
		PaymentMethodTypes: stripe.StringSlice([]string{"card"}),
		Confirm:            stripe.Bool(true),
		Description:        stripe.String(description(c.Metadata)),
		Metadata:           maps.Clone(c.Metadata),
	}
	switch {
	case c.OffSession:
		if c.Customer == "" || !idShape.MatchString(c.Customer) {
			return payment.Receipt{}, &payment.DeclineError{Code: "missing_customer", Reason: "no payment method was saved for charges without the driver"}
		}
		params.Customer = stripe.String(c.Customer)
		params.OffSession = stripe.Bool(true)
	case c.SaveForOffSession:
		cus, err := p.api.Customers.New(&stripe.CustomerParams{
			Params: stripe.Params{
				Context:        ctx,
				IdempotencyKey: stripe.String(c.IdempotencyKey + "-customer"),
			},
			Description: stripe.String(description(c.Metadata)),
			Metadata:    maps.Clone(c.Metadata),
		})
		if err != nil {
			return payment.Receipt{}, p.chargeError(ctx, err, c.PaymentMethod)
		}
		if cus == nil || !idShape.MatchString(cus.ID) {
			return payment.Receipt{}, p.unavailable(ctx, "charge", "stripe answered without a customer")
		}
		params.Customer = stripe.String(cus.ID)
		params.SetupFutureUsage = stripe.String(string(stripe.PaymentIntentSetupFutureUsageOffSession))
	}
	pi, err := p.api.PaymentIntents.New(params)
	if err != nil {
		return payment.Receipt{}, p.chargeError(ctx, err, c.PaymentMethod)
	}
	r, err := p.settle(ctx, pi, c.PaymentMethod, true)
	if err == nil && params.Customer != nil {
		// The customer the payment method is (or stays) saved on, as
		// sent: an answer need not expand it.
		r.Customer = *params.Customer
	}
	return r, err
}

// Lookup implements payment.Provider: it retrieves the PaymentIntent.
func (p *Provider) Lookup(ctx context.Context, ref string) (payment.Receipt, error) {
	if !idShape.MatchString(ref) {
		return payment.Receipt{}, fmt.Errorf("stripepay: lookup of %q refused: not a payment intent id", word(ref))
	}
	pi, err := p.api.PaymentIntents.Get(ref, &stripe.PaymentIntentParams{Params: stripe.Params{Context: ctx}})
	if err != nil {
		return payment.Receipt{}, p.chargeError(ctx, err, "")
	}
	return p.settle(ctx, pi, "", false)
}

// Cancel implements payment.Provider: it cancels the PaymentIntent
// (cancellation_reason abandoned: the cardholder did not authenticate in
// time).
func (p *Provider) Cancel(ctx context.Context, ref string) error {
	if !idShape.MatchString(ref) {
		return fmt.Errorf("stripepay: cancel of %q refused: not a payment intent id", word(ref))
	}
	pi, err := p.api.PaymentIntents.Cancel(ref, &stripe.PaymentIntentCancelParams{
		Params:             stripe.Params{Context: ctx},
		CancellationReason: stripe.String(string(stripe.PaymentIntentCancellationReasonAbandoned)),
	})
	if err != nil {
		return p.chargeError(ctx, err, "")
	}
	if pi == nil || pi.Status != stripe.PaymentIntentStatusCanceled {
		return p.unavailable(ctx, "cancel", "stripe did not cancel the payment intent")
	}
	return nil
}

// settle turns a PaymentIntent into the caller's outcome. A status that is
// not final (processing, …) is looked up once more: Stripe replays the
// stored answer of the first request to a retry with the same idempotency
// key, so without a fresh read a retry would see "processing" for 24 hours
// even after the payment went through.
func (p *Provider) settle(ctx context.Context, pi *stripe.PaymentIntent, pm string, lookAgain bool) (payment.Receipt, error) {
	if pi == nil || !idShape.MatchString(pi.ID) || (pi.Object != "" && pi.Object != "payment_intent") {
		// A proxy or a wrong api_url answering 200 with something else.
		return payment.Receipt{}, p.unavailable(ctx, "charge", "stripe answered without a payment intent")
	}
	var customer string
	if pi.Customer != nil && idShape.MatchString(pi.Customer.ID) {
		customer = pi.Customer.ID
	}
	switch pi.Status {
	case stripe.PaymentIntentStatusSucceeded:
		return payment.Receipt{Ref: pi.ID, Status: payment.StatusSucceeded, Customer: customer}, nil
	case stripe.PaymentIntentStatusRequiresPaymentMethod:
		// The attempt failed and the intent waits for another method:
		// Stripe puts the reason in last_payment_error.
		return payment.Receipt{}, p.lastErrorDecline(pi.LastPaymentError, pm)
	case stripe.PaymentIntentStatusRequiresAction:
		// 3-D Secure: the driver's app completes it with the client
		// secret (Stripe.js handleNextAction); a webhook or a lookup
		// tells the outcome.
		return payment.Receipt{Ref: pi.ID, Status: payment.StatusRequiresAction, ClientSecret: pi.ClientSecret, Customer: customer}, nil
	case stripe.PaymentIntentStatusCanceled:
		// Final and nothing charged; a new attempt (new key) may succeed.
		return payment.Receipt{}, &payment.DeclineError{Code: "payment_canceled", Reason: "the payment was cancelled; please try again"}
	}
	if lookAgain {
		fresh, err := p.api.PaymentIntents.Get(pi.ID, &stripe.PaymentIntentParams{Params: stripe.Params{Context: ctx}})
		if err != nil {
			return payment.Receipt{}, p.chargeError(ctx, err, pm)
		}
		return p.settle(ctx, fresh, pm, false)
	}
	// processing, requires_capture, requires_confirmation: money may yet
	// move. Unknown outcome; the caller keeps the attempt and retries
	// with the same key, which finds this same intent.
	return payment.Receipt{}, p.unavailable(ctx, "charge", fmt.Sprintf("payment intent %s is %q, not final yet; retry with the same key", pi.ID, word(string(pi.Status))))
}

// Refund implements payment.Provider: one Refund of the PaymentIntent
// r.ChargeRef, under r.IdempotencyKey.
func (p *Provider) Refund(ctx context.Context, r payment.Refund) (payment.Receipt, error) {
	if err := checkRefund(r); err != nil {
		return payment.Receipt{}, err
	}
	md := maps.Clone(r.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	// Stripe's reason is an enumeration of its own; parkgate's reason is
	// kept in metadata so the dashboard shows why the money went back.
	md["parkgate_reason"] = r.Reason
	params := &stripe.RefundParams{
		Params: stripe.Params{
			Context:        ctx,
			IdempotencyKey: stripe.String(r.IdempotencyKey),
		},
		PaymentIntent: stripe.String(r.ChargeRef),
		Amount:        stripe.Int64(r.Amount),
		Metadata:      md,
		// Currency is not sent: a refund is always in the intent's own
		// currency, and Stripe's currency parameter is for refunds to a
		// customer balance.
	}
	if reason := refundReason(r.Reason); reason != "" {
		params.Reason = stripe.String(reason)
	}
	re, err := p.api.Refunds.New(params)
	if err != nil {
		return payment.Receipt{}, p.refundError(ctx, err)
	}
	if re == nil || !idShape.MatchString(re.ID) || (re.Object != "" && re.Object != "refund") {
		return payment.Receipt{}, p.unavailable(ctx, "refund", "stripe answered without a refund")
	}
	switch re.Status {
	case stripe.RefundStatusFailed, stripe.RefundStatusCanceled:
		reason := "stripe could not refund this payment"
		if re.FailureReason != "" {
			reason += " (" + p.scrub.text(string(re.FailureReason), "") + ")"
		}
		return payment.Receipt{}, &payment.DeclineError{Code: "refund_" + word(string(re.Status)), Reason: reason}
	}
	// succeeded, pending (card refunds settle over days) and
	// requires_action (not for cards) are accepted refunds: the money is on
	// its way and the id is what the records need.
	return payment.Receipt{Ref: re.ID}, nil
}

// refundReason maps parkgate's reason to Stripe's enumeration (duplicate,
// fraudulent, requested_by_customer). Only a cancellation is the driver's
// request; an early departure or a no-show refund is parkgate's policy,
// for which Stripe has no reason, so none is sent (stripe-mock refuses
// values outside the enumeration, as Stripe does).
func refundReason(r string) string {
	switch r {
	case "cancelled", "canceled":
		return string(stripe.RefundReasonRequestedByCustomer)
	case "duplicate":
		return string(stripe.RefundReasonDuplicate)
	}
	return ""
}

// description is the intent's description on the dashboard and in exports.
func description(md map[string]string) string {
	if id := md["reservation_id"]; id != "" {
		return "parkgate reservation " + id
	}
	return "parkgate reservation"
}

// pmShape is a payment method reference: Stripe ids are letters, digits
// and underscores. Anything else (a card number with spaces, JSON, …) is
// refused before it is sent anywhere.
var pmShape = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,254}$`)

// checkCharge refuses a charge that is wrong on our side before it is
// sent. A bad payment method is the driver's to fix, so it is a decline;
// the rest are programming errors.
func checkCharge(c payment.Charge) error {
	switch {
	case c.IdempotencyKey == "":
		// Without a key a retry could charge twice.
		return errors.New("stripepay: charge without an idempotency key refused")
	case len(c.IdempotencyKey) > 255:
		return errors.New("stripepay: idempotency key longer than Stripe's 255 characters")
	case c.Amount <= 0:
		return fmt.Errorf("stripepay: charge of %d refused: want a positive amount", c.Amount)
	case c.Currency == "":
		return errors.New("stripepay: charge without a currency refused")
	case c.PaymentMethod == "":
		return &payment.DeclineError{Code: "missing_payment_method", Reason: "no payment method was given"}
	case !pmShape.MatchString(c.PaymentMethod):
		// Never repeat it: it could be card data.
		return &payment.DeclineError{Code: "invalid_payment_method", Reason: "the payment method is not a valid reference such as pm_…"}
	}
	return nil
}

// checkRefund refuses a refund that is wrong on our side before it is sent.
func checkRefund(r payment.Refund) error {
	switch {
	case r.IdempotencyKey == "":
		return errors.New("stripepay: refund without an idempotency key refused")
	case len(r.IdempotencyKey) > 255:
		return errors.New("stripepay: idempotency key longer than Stripe's 255 characters")
	case r.ChargeRef == "":
		return errors.New("stripepay: refund without a charge reference refused")
	case r.Amount <= 0:
		return fmt.Errorf("stripepay: refund of %d refused: want a positive amount", r.Amount)
	}
	return nil
}
