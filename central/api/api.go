// Package api is centrald's HTTP interface (documented in
// docs/api.md): it decodes and validates requests, asks the booking service,
// and writes JSON answers and errors in the one shape of the contract.
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"net/http/pprof"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parkgate/parkgate/central/apijson"
	"github.com/parkgate/parkgate/central/booking"
	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
)

// Options configure the handler.
type Options struct {
	// AdminToken opens the operator endpoints; empty disables them.
	AdminToken string
	// PublicKey is the site's ticket verification key in the form
	// tickets.public_key takes, and KeyID its id; served to gates.
	PublicKey string
	KeyID     string
	// Gates sends commands to gates (nil: no gates).
	Gates GateCommander
	// PaymentHold is shown to drivers as paymentDueBy.
	PaymentHold time.Duration
	// StripeWebhookSecret (whsec_…) serves POST /webhooks/stripe; empty
	// does not. A secret: never logged.
	StripeWebhookSecret string
	// Registry collects the HTTP metrics and serves /metrics; nil serves
	// the default gatherer without HTTP metrics.
	Registry *prometheus.Registry
	Log      *slog.Logger
	// Routes are more routes served by the same handler (the operator
	// console's), which check their own callers.
	Routes []Route
}

// Route is one route mounted from outside the package, with the query
// parameters it takes (any other is refused before it runs).
type Route struct {
	Pattern string
	Handler http.HandlerFunc
	Params  []string
}

// Handler is centrald's HTTP handler.
type Handler struct {
	svc *booking.Service
	opt Options
	log *slog.Logger
	mux *http.ServeMux
	// params lists the query parameters each route takes; any other is
	// refused before the route's handler runs.
	params map[string][]string
	ready  atomic.Bool
	dur    *prometheus.HistogramVec
	// observers caches dur's histograms by obsKey: looking one up by its
	// label values hashes and checks them on every request.
	observers sync.Map
}

// obsKey names one of dur's histograms.
type obsKey struct {
	route, method string
	code          int
}

// observer returns dur's histogram for a request. The method is one of
// HTTP's own or "other": a client choosing the method of a request no
// route takes must not be able to grow the metrics (or this cache) without
// bound.
func (h *Handler) observer(route, method string, code int) prometheus.Observer {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
	default:
		method = "other"
	}
	k := obsKey{route, method, code}
	if o, ok := h.observers.Load(k); ok {
		return o.(prometheus.Observer)
	}
	o, _ := h.observers.LoadOrStore(k, h.dur.WithLabelValues(route, method, strconv.Itoa(code)))
	return o.(prometheus.Observer)
}

// New returns the handler. It answers /readyz with 503 until SetReady.
func New(svc *booking.Service, opt Options) *Handler {
	h := &Handler{svc: svc, opt: opt, log: opt.Log, mux: http.NewServeMux(), params: map[string][]string{}}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.dur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "parkgate_http_request_duration_seconds",
		Help:    "HTTP requests by route, method and status code.",
		Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1},
	}, []string{"route", "method", "code"})
	var metrics http.Handler = promhttp.Handler()
	if opt.Registry != nil {
		opt.Registry.MustRegister(h.dur)
		metrics = promhttp.HandlerFor(opt.Registry, promhttp.HandlerOpts{})
	}
	// Every route with the query parameters it takes (none unless listed).
	// Every route is wrapped so that the mux, which routes each request
	// once, tells ServeHTTP which route it chose (for the metrics) and
	// refuses the query parameters the route does not take before it runs.
	route := func(pattern string, fn http.HandlerFunc, params ...string) {
		h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if rec, ok := w.(*statusRecorder); ok {
				rec.route = pattern
			}
			if err := checkQuery(r.URL, params); err != nil {
				h.fail(w, r, err)
				return
			}
			fn(w, r)
		})
		h.params[pattern] = params
	}
	route("GET /parkings", h.listSpots)
	route("GET /parkings/{id}", h.getSpot)
	route("POST /reserve/parking/{id}", h.reserve)
	route("POST /pay/parking/{id}", h.pay)
	route("POST /park/parking/{id}", h.park, "is_parking", "leaving_at")
	route("POST /parking/{id}/status/{status}", h.admin(h.force))
	route("GET /parking/{id}/ticket", h.ticket)
	route("GET /parking/{id}/ticket.png", h.ticketPNG, "size")
	route("GET /reservations/{id}", h.getReservation)
	route("DELETE /reservations/{id}", h.cancel)
	route("POST /admin/reservations", h.admin(h.push))
	route("GET /admin/reservations", h.admin(h.listReservations), "spot", "state", "limit")
	route("GET /admin/changes", h.admin(h.changes), "after", "limit")
	route("GET /admin/reservations/{id}/payments", h.admin(h.payments))
	route("GET /gates", h.admin(h.gates))
	route("POST /gates/{id}/open", h.admin(h.openGate))
	route("POST /gates/{id}/resync", h.admin(h.resyncGate))
	route("GET /admin/exceptions", h.admin(h.gateEvents(store.EventException)), "gate", "limit")
	route("GET /admin/gate-events", h.admin(h.gateEvents("")), "gate", "limit")
	route("GET /admin/payment-exceptions", h.admin(h.paymentExceptions), "limit")
	if opt.StripeWebhookSecret != "" {
		route("POST /webhooks/stripe", h.stripeWebhook)
	}
	route("GET /tickets/public-key", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, apijson.PublicKey{KeyID: opt.KeyID, PublicKey: opt.PublicKey})
	})
	route("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	route("GET /readyz", h.readyz)
	route("GET /metrics", metrics.ServeHTTP)
	// Go's profiler, for the operator who must find where centrald's time
	// goes under their load; behind the admin token, because a profile
	// shows the code's internals and costs CPU while it runs.
	route("GET /debug/pprof/profile", h.admin(pprof.Profile), "seconds")
	route("GET /debug/pprof/trace", h.admin(pprof.Trace), "seconds")
	for _, name := range []string{"heap", "allocs", "goroutine", "mutex", "block"} {
		route("GET /debug/pprof/"+name, h.admin(pprof.Handler(name).ServeHTTP), "debug", "gc", "seconds")
	}
	for _, rt := range opt.Routes {
		route(rt.Pattern, rt.Handler, rt.Params...)
	}
	return h
}

// SetReady marks the server ready (or not) for /readyz.
func (h *Handler) SetReady(ok bool) { h.ready.Store(ok) }

// ServeHTTP routes, recovers from panics, logs and measures every request.
// The mux routes once: a route's wrapper (New) names itself on the
// recorder; a request no route took is one the mux answers itself (404,
// 405, a redirect to a cleaned path), and the recorder holds that answer
// back so that unmatched can give it in the API's error shape.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		if p := recover(); p != nil {
			// A bug must cost one request, never the daemon.
			h.log.Error("panic in handler", "route", rec.route, "panic", p)
			if rec.route == "" {
				rec.route = "unmatched" // let the error through
			}
			if !rec.wrote {
				writeError(rec, http.StatusInternalServerError, "internal", "internal error")
			}
		}
		route := rec.route
		if route == "" {
			route = "unmatched"
		}
		h.observer(route, r.Method, rec.status).Observe(time.Since(start).Seconds())
		// Paths and status only: never headers (tokens) or bodies. Asked
		// first, because building the arguments costs allocations on every
		// request even when debug logging is off.
		if h.log.Enabled(r.Context(), slog.LevelDebug) {
			h.log.Debug("http", "method", r.Method, "route", route, "status", rec.status, "dur", time.Since(start))
		}
	}()
	h.mux.ServeHTTP(rec, r)
	if rec.route == "" {
		h.unmatched(rec, r)
	}
}

// unmatched answers 404 and 405 in the API's error shape instead of the
// mux's plain text, which the recorder held back (held is its status).
func (h *Handler) unmatched(rec *statusRecorder, r *http.Request) {
	held := rec.heldStatus
	rec.route = "unmatched" // from here on, writes go through
	hdr := rec.Header()
	allow := hdr.Get("Allow")
	// What the mux's answer set: not ours to send.
	hdr.Del("Content-Type")
	hdr.Del("X-Content-Type-Options")
	hdr.Del("Location")
	if held == http.StatusMethodNotAllowed {
		writeError(rec, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; allowed: "+allow)
		return
	}
	hdr.Del("Allow")
	writeError(rec, http.StatusNotFound, "not_found", "no such endpoint; see docs/api.md")
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
	// route is the pattern of the route that took the request, set by
	// its wrapper; while it is empty, whatever the mux writes is its own
	// answer to an unmatched request, held back (heldStatus).
	route      string
	heldStatus int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.route == "" {
		s.heldStatus = code
		return
	}
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (flushing an
// event stream, lifting its write deadline).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.route == "" {
		return len(b), nil // the mux's own answer, held back
	}
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// fail writes err as the API's error shape with the status its kind has.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) { Fail(h.log, w, r, err) }

// Fail writes err as the API's error shape with the status its kind has;
// an unexpected error is logged and answered 500.
func Fail(log *slog.Logger, w http.ResponseWriter, r *http.Request, err error) {
	var br *badRequest
	if errors.As(err, &br) {
		writeError(w, br.status, br.code, br.msg)
		return
	}
	if e, ok := booking.AsError(err); ok {
		writeError(w, statusOf(e.Kind), e.Code, e.Message)
		return
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client left
	}
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "not found")
		return
	}
	log.Error("request failed", "method", r.Method, "path", maskCardNumber(r.URL.Path), "err", err)
	writeError(w, http.StatusInternalServerError, "internal", "internal error; the request may be retried")
}

func statusOf(k booking.Kind) int {
	switch k {
	case booking.Invalid:
		return http.StatusBadRequest
	case booking.Unauthorized:
		return http.StatusUnauthorized
	case booking.Forbidden:
		return http.StatusForbidden
	case booking.NotFound:
		return http.StatusNotFound
	case booking.Conflict:
		return http.StatusConflict
	case booking.Unprocessable:
		return http.StatusUnprocessableEntity
	case booking.Declined:
		return http.StatusPaymentRequired
	case booking.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) string {
	a := r.Header.Get("Authorization")
	if len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:])
	}
	return ""
}

func (h *Handler) isAdmin(tok string) bool {
	return h.opt.AdminToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(h.opt.AdminToken)) == 1
}

// caller says who the request comes from.
func (h *Handler) caller(r *http.Request) booking.Caller {
	tok := bearer(r)
	if h.isAdmin(tok) {
		return booking.Caller{Operator: true}
	}
	return booking.Caller{Token: tok}
}

// admin wraps an operator-only handler.
func (h *Handler) admin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok := bearer(r)
		switch {
		case h.opt.AdminToken == "":
			writeError(w, http.StatusForbidden, "admin_disabled", "operator endpoints are disabled: set auth.admin_token")
		case tok == "":
			writeError(w, http.StatusUnauthorized, "missing_token", "send the admin token as 'Authorization: Bearer <token>'")
		case !h.isAdmin(tok):
			writeError(w, http.StatusForbidden, "not_operator", "this endpoint needs the admin token")
		default:
			next(w, r)
		}
	}
}

func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) {
	if !h.ready.Load() {
		writeError(w, http.StatusServiceUnavailable, "not_ready", "centrald is starting or stopping")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := h.svc.Store().Ping(ctx); err != nil {
		writeError(w, http.StatusServiceUnavailable, "db_unavailable", "the database does not answer")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// plateViewer says which plates (carId) a spot view may show: a plate is
// personal data. The admin token sees every one, a reservation's token
// the plate of its own reservation, anybody else none.
type plateViewer struct {
	all bool
	own string // the reservation the caller's token opens
}

func (v plateViewer) sees(r *reservation.Reservation) bool {
	return v.all || v.own != "" && r.ID == v.own
}

// viewer identifies the caller of a public read. A token that opens
// nothing is refused rather than answered as anonymous, so a client that
// sent one is not left guessing why its plate is missing.
func (h *Handler) viewer(r *http.Request) (plateViewer, error) {
	tok := bearer(r)
	switch {
	case tok == "":
		return plateViewer{}, nil
	case h.isAdmin(tok):
		return plateViewer{all: true}, nil
	}
	id, err := h.svc.Holder(r.Context(), tok)
	return plateViewer{own: id}, err
}

func (h *Handler) listSpots(w http.ResponseWriter, r *http.Request) {
	pv, err := h.viewer(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	vs, err := h.svc.Spots(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]apijson.Parking, len(vs))
	for i, v := range vs {
		out[i] = spotJSON(v, pv)
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) getSpot(w http.ResponseWriter, r *http.Request) {
	pv, err := h.viewer(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v, err := h.svc.Spot(r.Context(), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, spotJSON(v, pv))
}

// ReserveRequest is the body of POST /reserve/parking/{id}.
type ReserveRequest struct {
	ReservedFrom  string `json:"reservedFrom"`
	ReservedUntil string `json:"reservedUntil"`
}

var reserveSchema = schemaOf(reflect.TypeFor[ReserveRequest]())

// DecodeReserve parses and checks a reservation request body.
func DecodeReserve(b []byte) (reservation.Window, error) {
	var req ReserveRequest
	if err := decodeStrict(b, reserveSchema, &req); err != nil {
		return reservation.Window{}, err
	}
	from, err := parseTime("reservedFrom", req.ReservedFrom)
	if err != nil {
		return reservation.Window{}, err
	}
	until, err := parseTime("reservedUntil", req.ReservedUntil)
	if err != nil {
		return reservation.Window{}, err
	}
	return reservation.Window{From: from, Until: until}, nil
}

func (h *Handler) reserve(w http.ResponseWriter, r *http.Request) {
	b, err := readBody(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	win, err := DecodeReserve(b)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	res, err := h.svc.Reserve(r.Context(), r.PathValue("id"), win)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, issuedJSON(res, h.opt.PaymentHold))
}

// PayRequest is the body of POST /pay/parking/{id}.
type PayRequest struct {
	CarID       string       `json:"carId"`
	CardDetails *CardDetails `json:"cardDetails"`
}

// CardDetails holds the only thing parkgate accepts about a card: a
// reference to a payment method the provider holds.
type CardDetails struct {
	PaymentMethod string `json:"paymentMethod"`
}

var paySchema = schemaOf(reflect.TypeFor[PayRequest]())

// DecodePay parses and checks a payment request body. A card number
// anywhere in the body (decoded: escapes do not hide one) is refused
// before anything else is said about it.
func DecodePay(b []byte) (booking.PayRequest, error) {
	var req PayRequest
	if err := decodeStrict(b, paySchema, &req); err != nil {
		var br *badRequest
		if errors.As(err, &br) && br.code == "invalid_field" && br.field == "cardDetails" {
			return booking.PayRequest{}, invalid("invalid_card_details", "cardDetails must be an object such as {\"paymentMethod\":\"pm_card_visa\"}")
		}
		return booking.PayRequest{}, err
	}
	if req.CardDetails == nil {
		return booking.PayRequest{}, invalid("missing_field", "cardDetails is required, e.g. {\"paymentMethod\":\"pm_card_visa\"}")
	}
	if !validPaymentMethod(req.CardDetails.PaymentMethod) {
		return booking.PayRequest{}, invalid("invalid_payment_method", "cardDetails.paymentMethod must be a payment method id: pm_ followed by letters, digits and _, such as pm_card_visa")
	}
	return booking.PayRequest{CarID: req.CarID, PaymentMethod: req.CardDetails.PaymentMethod}, nil
}

// validPaymentMethod reports whether pm has the form of the provider's
// payment method ids.
func validPaymentMethod(pm string) bool {
	if !strings.HasPrefix(pm, "pm_") || len(pm) == 3 || len(pm) > 255 {
		return false
	}
	for _, c := range pm {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// requestHash identifies a payment request for its Idempotency-Key:
// method, path and the canonical body (the decoded fields, the plate
// normalised, in a fixed order), hashed so that the plate is not kept.
// Two bodies that differ only in spacing, escapes, member order or the
// plate's case are one request.
func requestHash(r *http.Request, req booking.PayRequest) []byte {
	car := req.CarID
	if n, err := booking.NormaliseCarID(car); err == nil {
		car = n
	}
	body, _ := json.Marshal(PayRequest{CarID: car, CardDetails: &CardDetails{PaymentMethod: req.PaymentMethod}})
	h := sha256.New()
	h.Write([]byte(r.Method))
	h.Write([]byte{0})
	h.Write([]byte(r.URL.EscapedPath()))
	h.Write([]byte{0})
	h.Write(body)
	return h.Sum(nil)
}

func (h *Handler) pay(w http.ResponseWriter, r *http.Request) {
	b, err := readBody(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	req, err := DecodePay(b)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	req.IdempotencyKey = r.Header.Get("Idempotency-Key")
	if req.IdempotencyKey != "" {
		req.RequestHash = requestHash(r, req)
	}
	res, err := h.svc.Pay(r.Context(), r.PathValue("id"), h.caller(r), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if a := res.Action; a != nil {
		writeJSON(w, http.StatusAccepted, apijson.PaymentAction{Status: "requires_action", ClientSecret: a.ClientSecret, PaymentID: a.PaymentID, ReservationID: res.ID})
		return
	}
	writeJSON(w, http.StatusOK, issuedJSON(res, h.opt.PaymentHold))
}

func (h *Handler) park(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var (
		res reservation.Reservation
		err error
	)
	switch q.Get("is_parking") {
	case "true":
		if q.Has("leaving_at") {
			h.fail(w, r, invalid("invalid_query", "leaving_at goes with is_parking=false"))
			return
		}
		res, err = h.svc.CheckIn(r.Context(), r.PathValue("id"), h.caller(r))
	case "false":
		var at time.Time
		if q.Has("leaving_at") {
			if at, err = parseTime("leaving_at", q.Get("leaving_at")); err != nil {
				h.fail(w, r, err)
				return
			}
		}
		res, err = h.svc.CheckOut(r.Context(), r.PathValue("id"), h.caller(r), at)
	default:
		err = invalid("invalid_query", "is_parking must be true (check in) or false (check out)")
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toJSON(res, h.opt.PaymentHold))
}

func (h *Handler) force(w http.ResponseWriter, r *http.Request) {
	v, err := h.svc.Force(r.Context(), r.PathValue("id"), r.PathValue("status"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, spotJSON(v, plateViewer{all: true}))
}

func (h *Handler) ticket(w http.ResponseWriter, r *http.Request) {
	t, err := h.svc.Ticket(r.Context(), r.PathValue("id"), h.caller(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"ticket": t})
}

func (h *Handler) getReservation(w http.ResponseWriter, r *http.Request) {
	res, err := h.svc.Reservation(r.Context(), r.PathValue("id"), h.caller(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	j := toJSON(res, h.opt.PaymentHold)
	if j.Overstay, err = h.overstay(r.Context(), res.ID); err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

func (h *Handler) cancel(w http.ResponseWriter, r *http.Request) {
	res, err := h.svc.Cancel(r.Context(), r.PathValue("id"), h.caller(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toJSON(res, h.opt.PaymentHold))
}

// PushRequest is the body of POST /admin/reservations.
type PushRequest struct {
	Reservations []PushItem `json:"reservations"`
}

// PushItem is one pushed reservation.
type PushItem struct {
	SpotID        string `json:"spotId"`
	ReservedFrom  string `json:"reservedFrom"`
	ReservedUntil string `json:"reservedUntil"`
	CarID         string `json:"carId"`
	Reference     string `json:"reference"`
}

// maxPush bounds one push request.
const maxPush = 1000

var pushSchema = schemaOf(reflect.TypeFor[PushRequest]())

// DecodePush parses and checks a push request body.
func DecodePush(b []byte) ([]booking.PushItem, error) {
	var req PushRequest
	if err := decodeStrict(b, pushSchema, &req); err != nil {
		return nil, err
	}
	if len(req.Reservations) == 0 {
		return nil, invalid("missing_field", "reservations must list at least one reservation")
	}
	if len(req.Reservations) > maxPush {
		return nil, invalid("too_many", "push at most %d reservations per request", maxPush)
	}
	items := make([]booking.PushItem, len(req.Reservations))
	for i, p := range req.Reservations {
		from, err := parseTime("reservedFrom", p.ReservedFrom)
		if err == nil {
			var until time.Time
			until, err = parseTime("reservedUntil", p.ReservedUntil)
			items[i] = booking.PushItem{SpotID: p.SpotID, Window: reservation.Window{From: from, Until: until}, CarID: p.CarID, Reference: p.Reference}
		}
		if err != nil {
			br := err.(*badRequest)
			return nil, invalid(br.code, "reservation %d: %s", i+1, br.msg)
		}
		if p.SpotID == "" {
			return nil, invalid("missing_field", "reservation %d: spotId is required", i+1)
		}
	}
	return items, nil
}

func (h *Handler) push(w http.ResponseWriter, r *http.Request) {
	b, err := readBody(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	items, err := DecodePush(b)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	res, err := h.svc.Push(r.Context(), items)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]apijson.Reservation, len(res))
	for i, x := range res {
		out[i] = issuedJSON(x, h.opt.PaymentHold)
	}
	writeJSON(w, http.StatusCreated, map[string]any{"reservations": out})
}

func (h *Handler) listReservations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.Filter{SpotID: q.Get("spot"), Limit: 1000}
	if s := q.Get("state"); s != "" {
		for _, st := range strings.Split(s, ",") {
			if !reservation.State(st).Valid() {
				h.fail(w, r, invalid("invalid_query", "state must be one of reserved, paid, taken, left, expired, no_show, cancelled"))
				return
			}
			f.States = append(f.States, reservation.State(st))
		}
	}
	var err error
	if f.Limit, err = queryInt(q, "limit", f.Limit, 1, 10000); err != nil {
		h.fail(w, r, err)
		return
	}
	rs, err := h.svc.Store().List(r.Context(), f)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]apijson.Reservation, len(rs))
	for i, x := range rs {
		out[i] = toJSON(x, h.opt.PaymentHold)
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) changes(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, err := queryInt(q, "after", 0, 0, math.MaxInt)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	limit, err := queryInt(q, "limit", 500, 1, 5000)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	cs, err := h.svc.Store().Changes(r.Context(), int64(after), limit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if cs == nil {
		cs = []store.Change{}
	}
	writeJSON(w, http.StatusOK, cs)
}

func (h *Handler) payments(w http.ResponseWriter, r *http.Request) {
	ctx, id := r.Context(), r.PathValue("id")
	if _, err := h.svc.Reservation(ctx, id, booking.Caller{Operator: true}); err != nil {
		h.fail(w, r, err)
		return
	}
	st := h.svc.Store()
	atts, err := st.PaymentAttempts(ctx, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	refs, err := st.Refunds(ctx, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := apijson.Payments{ReservationID: id, Attempts: []apijson.PaymentAttempt{}, Refunds: []apijson.Refund{}}
	for _, a := range atts {
		out.Attempts = append(out.Attempts, apijson.PaymentAttempt{Number: a.Number, Outcome: a.Outcome, Purpose: a.Purpose, Amount: a.Amount,
			Currency: a.Currency, ProviderRef: a.ProviderRef, Message: a.Message, StartedAt: a.StartedAt, FinishedAt: a.FinishedAt})
	}
	for _, f := range refs {
		out.Refunds = append(out.Refunds, RefundJSON(f))
	}
	writeJSON(w, http.StatusOK, out)
}

// RefundJSON is a refund as the API shows it.
func RefundJSON(f store.Refund) apijson.Refund {
	return apijson.Refund{Number: f.Number, Reason: f.Reason, Amount: f.Amount,
		Currency: f.Currency, Status: f.Status, ProviderRef: f.ProviderRef, Message: f.Message, Tries: f.Tries,
		CreatedAt: f.CreatedAt, FinishedAt: f.FinishedAt}
}

func (h *Handler) gates(w http.ResponseWriter, r *http.Request) {
	gs, err := h.svc.Store().Gates(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]apijson.Gate, len(gs))
	for i, g := range gs {
		out[i] = GateJSON(g)
	}
	writeJSON(w, http.StatusOK, out)
}

// GateJSON is a gate as GET /gates shows it.
func GateJSON(g store.Gate) apijson.Gate {
	j := apijson.Gate{ID: g.ID, Role: g.Role, Online: g.Online, LastSeen: g.LastSeen,
		CacheVersion: g.CacheVersion, Outbox: g.Outbox, Barrier: g.Barrier, Software: g.Software,
		Faults: make([]apijson.GateFault, len(g.Faults))}
	for i, f := range g.Faults {
		j.Faults[i] = apijson.GateFault{Kind: f.Kind, Error: f.Error, Since: f.Since, At: f.At}
	}
	return j
}

// GateEventJSON is a gate event as GET /admin/gate-events shows it.
func GateEventJSON(e store.GateEvent) apijson.GateEvent {
	return apijson.GateEvent{EventID: e.EventID, GateID: e.GateID, Seq: e.Seq, Kind: e.Kind, Role: e.Role,
		Time: e.Time, Source: e.Source, Granted: e.Granted, Reason: e.Reason, ReservationID: e.ReservationID,
		SpotID: e.SpotID, CarID: e.CarID, Plate: e.Plate, Detail: e.Detail, Overstay: e.Overstay, PresenceUnknown: e.PresenceUnknown,
		ClockTrusted: e.ClockTrusted, ReceivedAt: e.ReceivedAt, Outcome: e.Outcome, Note: e.Note,
		ResolvedAt: e.ResolvedAt, ResolvedBy: e.ResolvedBy, Resolution: e.Resolution}
}

// WriteJSON writes v as the API's JSON answer.
func WriteJSON(w http.ResponseWriter, status int, v any) { writeJSON(w, status, v) }

// WriteError writes the API's error shape.
func WriteError(w http.ResponseWriter, status int, code, msg string) {
	writeError(w, status, code, msg)
}

// ReservationJSON is a reservation as the API shows it to an operator.
func ReservationJSON(r reservation.Reservation, hold time.Duration) apijson.Reservation {
	return toJSON(r, hold)
}

// gateEvents lists stored gate events, newest first (only exceptions when
// outcome is set); ?gate= and ?limit= narrow it.
func (h *Handler) gateEvents(outcome string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f := store.EventFilter{GateID: q.Get("gate"), Outcome: outcome, Limit: 500}
		var err error
		if f.Limit, err = queryInt(q, "limit", f.Limit, 1, 10000); err != nil {
			h.fail(w, r, err)
			return
		}
		es, err := h.svc.Store().GateEvents(r.Context(), f)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		out := make([]apijson.GateEvent, len(es))
		for i, e := range es {
			out[i] = GateEventJSON(e)
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// queryInt reads an optional integer query parameter within [lo, hi].
func queryInt(q url.Values, name string, def, lo, hi int) (int, error) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		if hi == math.MaxInt {
			return 0, invalid("invalid_query", "%s must be a number ≥ %d", name, lo)
		}
		return 0, invalid("invalid_query", "%s must be a number from %d to %d", name, lo, hi)
	}
	return n, nil
}

// GateCommander sends commands to gates over the sync.
type GateCommander interface {
	// OpenGate asks gate id to open its barrier and returns its answer.
	OpenGate(ctx context.Context, id, reason string) (ok bool, refusal string, err error)
	// ResyncGate asks gate id to request a snapshot of the reservation
	// list and returns its answer (that it asked, not that the snapshot
	// arrived).
	ResyncGate(ctx context.Context, id string) (ok bool, refusal string, err error)
}

func (h *Handler) openGate(w http.ResponseWriter, r *http.Request) {
	h.gateCommand(w, r, "open", func(id string) (bool, string, error) {
		return h.opt.Gates.OpenGate(r.Context(), id, "operator")
	}, "opened")
}

func (h *Handler) resyncGate(w http.ResponseWriter, r *http.Request) {
	h.gateCommand(w, r, "resync", func(id string) (bool, string, error) {
		return h.opt.Gates.ResyncGate(r.Context(), id)
	}, "resyncing")
}

// gateCommand sends a known gate a command and answers with its result:
// {"gateId":id, done:true} when the gate carried it out.
func (h *Handler) gateCommand(w http.ResponseWriter, r *http.Request, what string, send func(id string) (bool, string, error), done string) {
	id := r.PathValue("id")
	if h.opt.Gates == nil {
		writeError(w, http.StatusServiceUnavailable, "no_gates", "centrald has no MQTT broker configured, so it cannot reach gates")
		return
	}
	if _, err := h.svc.Store().Gate(r.Context(), id); errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "unknown_gate", "there is no gate "+strconv.Quote(id))
		return
	} else if err != nil {
		h.fail(w, r, err)
		return
	}
	ok, refusal, err := send(id)
	switch {
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "gate_unreachable", "the gate did not answer: "+err.Error())
	case !ok:
		writeError(w, http.StatusConflict, "gate_refused", "the gate refused to "+what+": "+refusal)
	default:
		writeJSON(w, http.StatusOK, map[string]any{"gateId": id, done: true})
	}
}
