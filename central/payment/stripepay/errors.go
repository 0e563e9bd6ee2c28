package stripepay

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/stripe/stripe-go/v76"

	"github.com/parkgate/parkgate/central/payment"
)

// Why the mapping below looks at the HTTP status before Stripe's error
// type: Stripe reports a rejected key (401), a rate limit (429) and many
// of our own mistakes all as "invalid_request_error". Only the status
// tells a refusal for good from trouble that a retry or an operator fixes.

// chargeError maps a failed PaymentIntent request.
func (p *Provider) chargeError(ctx context.Context, err error, pm string) error {
	var se *stripe.Error
	if !errors.As(err, &se) {
		return p.transport(ctx, "charge", err, pm)
	}
	switch {
	case se.Type == stripe.ErrorTypeCard:
		return p.cardDecline(se, pm)
	case retryable(se):
		return p.unavailable(ctx, "charge", p.describe(se, pm))
	case se.Type == stripe.ErrorTypeInvalidRequest && refusedForGood(se) && paymentMethodProblem(se):
		// Unknown, detached, expired or non-card payment method: the
		// driver has to pick another one. Stripe's message names the
		// payment method ("No such PaymentMethod: 'pm_…'"), so the reason
		// is ours.
		return &payment.DeclineError{
			Code:   codeOr(se, "payment_method_unusable"),
			Reason: "this payment method cannot be used (unknown, expired or not a card); please use another one",
		}
	}
	// A request Stripe refuses for a reason the driver cannot fix (amount
	// below Stripe's minimum, an unsupported currency, a bug of ours):
	// nothing was charged, and the error says what an operator must fix.
	return p.unavailable(ctx, "charge", p.describe(se, pm))
}

// refundError maps a failed Refund request. Unlike a charge, any refusal
// of the request itself is final (already refunded, amount larger than
// what is left, no such payment): it is a DeclineError, which the caller
// records for an operator, with Stripe's message (about the charge, never
// a payment method) as the reason.
func (p *Provider) refundError(ctx context.Context, err error) error {
	var se *stripe.Error
	if !errors.As(err, &se) {
		return p.transport(ctx, "refund", err, "")
	}
	switch {
	case retryable(se):
		return p.unavailable(ctx, "refund", p.describe(se, ""))
	case se.Type == stripe.ErrorTypeCard || (se.Type == stripe.ErrorTypeInvalidRequest && refusedForGood(se)):
		reason := p.scrub.text(se.Msg, "")
		if reason == "" {
			reason = "stripe refused the refund"
		}
		return &payment.DeclineError{Code: codeOr(se, "refund_refused"), Reason: reason}
	}
	return p.unavailable(ctx, "refund", p.describe(se, ""))
}

// retryable is an answer that says nothing final about the request: a
// rejected or under-privileged key (an operator fixes the config, then a
// retry works), a conflict on the idempotency key, a rate limit, an error
// inside Stripe, or an idempotency key reused with other parameters (the
// first request's outcome stands and is unknown here).
func retryable(se *stripe.Error) bool {
	switch se.HTTPStatusCode {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusConflict, http.StatusTooManyRequests:
		return true
	}
	return se.HTTPStatusCode >= 500 || se.Type == stripe.ErrorTypeAPI || se.Type == stripe.ErrorTypeIdempotency
}

// refusedForGood is a status with which Stripe refuses the request as such:
// the same request will be refused again.
func refusedForGood(se *stripe.Error) bool {
	switch se.HTTPStatusCode {
	case http.StatusBadRequest, http.StatusPaymentRequired, http.StatusNotFound:
		return true
	}
	return false
}

// paymentMethodProblem is an invalid request about the payment method
// itself rather than about the rest of the charge.
func paymentMethodProblem(se *stripe.Error) bool {
	code := string(se.Code)
	return se.Param == "payment_method" ||
		strings.HasPrefix(code, "payment_method_") ||
		se.Code == stripe.ErrorCodePaymentIntentIncompatiblePaymentMethod
}

// cardDecline is a card error: the issuer's decline code when there is one
// (insufficient_funds, …), else Stripe's code (card_declined,
// expired_card, …), with Stripe's message, which Stripe writes to be shown
// to the card holder ("Your card has insufficient funds.").
func (p *Provider) cardDecline(se *stripe.Error, pm string) error {
	code := word(string(se.DeclineCode))
	if code == "" {
		code = codeOr(se, "card_declined")
	}
	if code == string(stripe.ErrorCodeAuthenticationRequired) {
		return authenticationRequired()
	}
	reason := p.scrub.text(se.Msg, pm)
	if reason == "" {
		reason = "your card was declined"
	}
	return &payment.DeclineError{Code: code, Reason: reason}
}

// lastErrorDecline is the decline of an intent that went back to
// requires_payment_method, from its last_payment_error.
func (p *Provider) lastErrorDecline(le *stripe.Error, pm string) error {
	if le == nil {
		return &payment.DeclineError{Code: "card_declined", Reason: "your card was declined"}
	}
	if le.Type == stripe.ErrorTypeCard {
		return p.cardDecline(le, pm)
	}
	return &payment.DeclineError{
		Code:   codeOr(le, "payment_failed"),
		Reason: "the payment could not be made with this payment method; please use another one",
	}
}

// authenticationRequired is a card whose bank wants 3-D Secure: that needs
// the driver's banking app or a browser challenge, which a lane terminal
// cannot show.
func authenticationRequired() error {
	return &payment.DeclineError{
		Code:   string(stripe.ErrorCodeAuthenticationRequired),
		Reason: "your bank asks to confirm this payment (3-D Secure), which cannot be done without you present; please pay in the app",
	}
}

// transport maps a request that got no Stripe answer: no connection, a
// timeout, a cancelled context, or a body that is not Stripe's JSON.
func (p *Provider) transport(ctx context.Context, op string, err error, pm string) error {
	if ctx.Err() != nil {
		return p.unavailable(ctx, op, "no answer from stripe in time")
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return p.unavailable(ctx, op, "could not reach stripe: "+p.scrub.text(ue.Err.Error(), pm))
	}
	return p.unavailable(ctx, op, "unreadable answer from stripe: "+p.scrub.text(err.Error(), pm))
}

// unavailable is the error for an unknown or failed outcome: it wraps
// payment.ErrUnavailable, and the context's error when that is why, so
// callers can tell a deadline from an outage.
func (p *Provider) unavailable(ctx context.Context, op, detail string) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("stripepay: %s: %w: %s: %w", op, payment.ErrUnavailable, detail, cerr)
	}
	return fmt.Errorf("stripepay: %s: %w: %s", op, payment.ErrUnavailable, detail)
}

// describe is a Stripe error for an operator: status, type, code and
// request id (what Stripe support asks for), and the scrubbed message.
// Never Stripe's own Error(), which is the whole error object as JSON,
// payment method and intent included.
func (p *Provider) describe(se *stripe.Error, pm string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "stripe answered HTTP %d", se.HTTPStatusCode)
	if t := word(string(se.Type)); t != "" {
		fmt.Fprintf(&b, " %s", t)
	}
	if c := word(string(se.Code)); c != "" {
		fmt.Fprintf(&b, "/%s", c)
	}
	if idShape.MatchString(se.RequestID) {
		fmt.Fprintf(&b, " (request %s)", se.RequestID)
	}
	if msg := p.scrub.text(se.Msg, pm); msg != "" {
		fmt.Fprintf(&b, ": %s", msg)
	}
	return b.String()
}

// codeOr is Stripe's error code, or def when it gave none.
func codeOr(se *stripe.Error, def string) string {
	if c := word(string(se.Code)); c != "" {
		return c
	}
	return def
}

// wordShape is an enumeration value as Stripe writes them (codes,
// statuses, types).
var wordShape = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)

// word is s if it is shaped like one of Stripe's enumeration values, else
// "". Codes end up in logs and in the caller's records, so a server that
// is not Stripe (a proxy, a wrong api_url) cannot put anything else there.
func word(s string) string {
	if wordShape.MatchString(s) {
		return s
	}
	return ""
}

// idShape is a Stripe object id ("pi_3Nx…", "re_3Nx…").
var idShape = regexp.MustCompile(`^[a-z]+_[A-Za-z0-9_]{1,250}$`)

// scrubber removes secrets from texts that come from Stripe (or from a
// server pretending to be Stripe) before they go into an error string.
type scrubber struct{ key string }

func newScrubber(key string) *scrubber { return &scrubber{key: key} }

// secretish matches API keys (also Stripe's masked "sk_test_****1234"),
// client secrets ("pi_…_secret_…") and payment instrument ids (pm_, card_,
// src_, tok_), none of which belong in a log.
var secretish = regexp.MustCompile(`\b(?:sk|rk|pk)_(?:test|live)_[A-Za-z0-9*]*|\b[a-z]+_[A-Za-z0-9]+_secret_[A-Za-z0-9]+|\b(?:pm|card|src|tok)_[A-Za-z0-9_]+`)

// maxText bounds a message from the other side in an error string.
const maxText = 300

// text is t without the key, the payment method pm (whatever its shape)
// or anything shaped like a secret, cut to maxText bytes.
func (s *scrubber) text(t, pm string) string {
	if s.key != "" {
		t = strings.ReplaceAll(t, s.key, "[key]")
	}
	if pm != "" {
		t = strings.ReplaceAll(t, pm, "[payment method]")
	}
	t = secretish.ReplaceAllString(t, "[redacted]")
	t = strings.Join(strings.Fields(t), " ")
	if len(t) > maxText {
		t = strings.ToValidUTF8(t[:maxText], "") + " …"
	}
	return t
}
