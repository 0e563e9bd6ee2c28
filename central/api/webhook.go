package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/parkgate/parkgate/central/apijson"
	"github.com/parkgate/parkgate/central/booking"
	"github.com/parkgate/parkgate/central/store"
)

// webhookTolerance is how old a signed event may be: Stripe's own
// default, which also bounds how long a captured event can be replayed.
const webhookTolerance = 5 * time.Minute

// stripeWebhook serves POST /webhooks/stripe: it verifies the
// Stripe-Signature header against the endpoint's secret (HMAC-SHA256 of
// "t.body", at most webhookTolerance old), reads the event as stripe-go
// v76 reads it (its api_version must be the one stripe-go expects, or the
// objects could be misread), and applies it once. A bad or stale signature
// or a body that is not an event is 400 and changes nothing. The secret is
// never logged; the event is logged by id and type only.
func (h *Handler) stripeWebhook(w http.ResponseWriter, r *http.Request) {
	b, err := readBody(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	sig := r.Header.Get("Stripe-Signature")
	if sig == "" {
		h.fail(w, r, invalid("missing_signature", "the Stripe-Signature header is missing"))
		return
	}
	if !signedAt(sig) {
		// stripe-go would call a header without its time stale.
		h.fail(w, r, invalid("invalid_signature", "the Stripe-Signature header has no time (t=…)"))
		return
	}
	ev, err := webhook.ConstructEventWithOptions(b, sig, h.opt.StripeWebhookSecret, webhook.ConstructEventOptions{Tolerance: webhookTolerance})
	switch {
	case errors.Is(err, webhook.ErrTooOld):
		h.fail(w, r, invalid("stale_signature", "the event's signature is older than 5 minutes"))
		return
	case errors.Is(err, webhook.ErrNoValidSignature), errors.Is(err, webhook.ErrInvalidHeader), errors.Is(err, webhook.ErrNotSigned):
		h.fail(w, r, invalid("invalid_signature", "the Stripe-Signature header does not sign this body with this endpoint's secret"))
		return
	case err != nil && ev.ID != "" && ev.APIVersion != stripe.APIVersion:
		h.fail(w, r, invalid("api_version_mismatch", "the event has api_version %q; this server reads %s (create the webhook endpoint with that version)", truncateText(ev.APIVersion, 32), stripe.APIVersion))
		return
	case err != nil:
		h.fail(w, r, invalid("invalid_event", "the body is not a Stripe event"))
		return
	case ev.ID == "" || ev.Type == "" || ev.Data == nil:
		h.fail(w, r, invalid("invalid_event", "the event has no id, type or data"))
		return
	}
	pe, err := paymentEvent(ev)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	dup, err := h.svc.ApplyPaymentEvent(r.Context(), pe)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("stripe event", "event", ev.ID, "type", ev.Type, "duplicate", dup)
	writeJSON(w, http.StatusOK, map[string]any{"received": true, "duplicate": dup})
}

// paymentEvent reads what booking needs from the event's object.
func paymentEvent(ev stripe.Event) (booking.PaymentEvent, error) {
	pe := booking.PaymentEvent{ID: ev.ID, Type: string(ev.Type)}
	bad := invalid("invalid_event", "the event's data.object is not a %s", objectOf(pe.Type))
	switch pe.Type {
	case booking.EventPaymentSucceeded, booking.EventPaymentFailed:
		var pi stripe.PaymentIntent
		if err := json.Unmarshal(ev.Data.Raw, &pi); err != nil || pi.ID == "" {
			return pe, bad
		}
		pe.PaymentRef, pe.ReservationID = pi.ID, pi.Metadata["reservation_id"]
		if le := pi.LastPaymentError; le != nil {
			pe.Message = le.Msg
		}
	case booking.EventChargeRefunded:
		var ch stripe.Charge
		if err := json.Unmarshal(ev.Data.Raw, &ch); err != nil || ch.ID == "" {
			return pe, bad
		}
		if ch.PaymentIntent != nil {
			pe.PaymentRef = ch.PaymentIntent.ID
		}
		pe.Amount, pe.Currency, pe.ObjectRef = ch.AmountRefunded, string(ch.Currency), ch.ID
	case booking.EventDisputeCreated:
		var dp stripe.Dispute
		if err := json.Unmarshal(ev.Data.Raw, &dp); err != nil || dp.ID == "" {
			return pe, bad
		}
		if dp.PaymentIntent != nil {
			pe.PaymentRef = dp.PaymentIntent.ID
		}
		pe.Amount, pe.Currency, pe.ObjectRef, pe.Message = dp.Amount, string(dp.Currency), dp.ID, string(dp.Reason)
	}
	return pe, nil
}

// signedAt reports whether a Stripe-Signature header carries its time.
func signedAt(header string) bool {
	for _, part := range strings.Split(header, ",") {
		if t, ok := strings.CutPrefix(strings.TrimSpace(part), "t="); ok {
			if _, err := strconv.ParseInt(t, 10, 64); err == nil {
				return true
			}
		}
	}
	return false
}

func objectOf(typ string) string {
	switch typ {
	case booking.EventChargeRefunded:
		return "charge"
	case booking.EventDisputeCreated:
		return "dispute"
	}
	return "payment intent"
}

func truncateText(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// paymentExceptions serves GET /admin/payment-exceptions: disputes and
// declined overstay fees, newest first.
func (h *Handler) paymentExceptions(w http.ResponseWriter, r *http.Request) {
	limit, err := queryInt(r.URL.Query(), "limit", 100, 1, 10000)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	es, err := h.svc.PaymentExceptions(r.Context(), limit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]apijson.PaymentException, len(es))
	for i, e := range es {
		out[i] = PaymentExceptionJSON(e)
	}
	writeJSON(w, http.StatusOK, out)
}

// overstay is the overstay fee of reservation id as its driver sees it
// (nil: none).
func (h *Handler) overstay(ctx context.Context, id string) (*apijson.Overstay, error) {
	a, ok, err := h.svc.Overstay(ctx, id)
	if err != nil || !ok {
		return nil, err
	}
	return &apijson.Overstay{Amount: a.Amount, Currency: a.Currency, Status: a.Outcome, ChargedAt: a.FinishedAt}, nil
}

// PaymentExceptionJSON is a payment exception as the API shows it, with
// its resolution once it has one.
func PaymentExceptionJSON(e store.PaymentException) apijson.PaymentException {
	return apijson.PaymentException{ID: e.ID, Kind: e.Kind, ReservationID: e.ReservationID, Amount: e.Amount,
		Currency: e.Currency, ProviderRef: e.ProviderRef, Reason: e.Reason, CreatedAt: e.CreatedAt,
		ResolvedAt: e.ResolvedAt, ResolvedBy: e.ResolvedBy, Resolution: e.Resolution}
}
