// Package booking is the set of rules by which centrald changes spot and
// reservation state: reserving a window, paying, checking in and out,
// operator pushes and overrides, and the timers that expire unpaid
// reservations and release no-shows. It is the only writer of the store;
// the HTTP layer, the operator console and the gate sync (gate events,
// through sync/centralsync) call it and nothing else.
package booking

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/parkgate/parkgate/central/payment"
	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/ticket"
)

// PastTolerance is how far in the past a new window may start: "from now"
// requests and clients whose clocks run a little behind.
const PastTolerance = 5 * time.Minute

// Config holds the rules that operators tune.
type Config struct {
	// PaymentHold is how long an unpaid reservation holds its window.
	PaymentHold time.Duration
	// NoShowGrace is how long after reservedFrom a paid reservation waits
	// for its car before it is released as a no-show.
	NoShowGrace time.Duration
	// EarlyArrival is how long before reservedFrom a car may check in.
	EarlyArrival time.Duration
	// MaxDuration is the longest window one reservation may hold.
	MaxDuration time.Duration
	// MaxAdvance is how far ahead a window may start.
	MaxAdvance time.Duration
	// LeaveTolerance is how far in the future a leaving_at may lie
	// (clock skew between a phone and the server).
	LeaveTolerance time.Duration
	// PricePerHour is charged per started hour, in the currency's minor
	// unit (cents).
	PricePerHour int64
	// Currency is the ISO 4217 code, lower case.
	Currency string
	// PaymentTimeout bounds one call to the payment provider.
	PaymentTimeout time.Duration
	// RefundUnused refunds the unused whole hours of a paid window when
	// the car leaves early (and when a started reservation is cancelled).
	RefundUnused bool
	// NoShowFee is kept from a no-show's payment (minor unit); the rest is
	// refunded.
	NoShowFee int64
	// RefundInterval is how often pending refunds are retried.
	RefundInterval time.Duration
	// ActionTimeout is how long a payment may wait for the cardholder's
	// authentication (3-D Secure); the unpaid reservation is held that
	// long at most, then the payment is cancelled at the provider.
	ActionTimeout time.Duration
	// OverstayGrace is how long after reservedUntil a car may leave
	// before it owes the overstay fee.
	OverstayGrace time.Duration
	// OverstayPerHour is the overstay fee per started hour (minor unit);
	// negative means the reservation's own hourly price.
	OverstayPerHour int64
}

// DefaultConfig returns the defaults documented in configs/centrald.yaml.
func DefaultConfig() Config {
	return Config{
		PaymentHold:     15 * time.Minute,
		NoShowGrace:     30 * time.Minute,
		EarlyArrival:    15 * time.Minute,
		MaxDuration:     7 * 24 * time.Hour,
		MaxAdvance:      365 * 24 * time.Hour,
		LeaveTolerance:  5 * time.Minute,
		PricePerHour:    250,
		Currency:        "eur",
		PaymentTimeout:  10 * time.Second,
		RefundUnused:    true,
		NoShowFee:       250,
		RefundInterval:  30 * time.Second,
		ActionTimeout:   15 * time.Minute,
		OverstayGrace:   15 * time.Minute,
		OverstayPerHour: -1,
	}
}

// TicketIssuer signs the QR ticket of a paid reservation. It is an
// interface so tests can issue recognisable stand-ins.
type TicketIssuer interface {
	Issue(r reservation.Reservation) (string, error)
}

// Tickets issues real tickets (package ticket) signed with the site key.
type Tickets struct{ Signer *ticket.Signer }

// Issue binds the reservation's id, spot, window and car in a ticket.
func (t Tickets) Issue(r reservation.Reservation) (string, error) {
	return t.Signer.Issue(ticket.Ticket{ReservationID: r.ID, SpotID: r.SpotID, From: r.From, Until: r.Until, CarID: r.CarID})
}

// Service applies the booking rules. Its methods are safe for concurrent use.
type Service struct {
	store   store.Store
	pay     payment.Provider
	tickets TicketIssuer
	clock   clock.Clock
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	board   *board
	// refundDue wakes the refunder when a refund was recorded.
	refundDue chan struct{}
	// chargeDue wakes the reconciler when an overstay fee was recorded.
	chargeDue chan struct{}
}

// New returns a Service. tickets and metrics may be nil.
func New(st store.Store, pay payment.Provider, tickets TicketIssuer, clk clock.Clock, cfg Config, log *slog.Logger, m *Metrics) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Service{store: st, pay: pay, tickets: tickets, clock: clk, cfg: cfg, log: log, metrics: m, board: newBoard(st), refundDue: make(chan struct{}, 1), chargeDue: make(chan struct{}, 1)}
}

// Store returns the service's store, for read-only views.
func (s *Service) Store() store.Store { return s.store }

// now is the current time at the store's precision, so that what a client
// is told is exactly what is stored.
func (s *Service) now() time.Time { return s.clock.Now().UTC().Truncate(time.Microsecond) }

// Issued is a reservation together with the secrets handed out once, at
// creation or payment: the token and the ticket are never stored.
type Issued struct {
	reservation.Reservation
	Token  string
	Ticket string
	// Action is set when the payment waits for the cardholder's
	// authentication (3-D Secure): the reservation is not paid yet.
	Action *Action
}

// Action is a payment waiting for the cardholder's authentication.
type Action struct {
	// PaymentID is the provider's payment (PaymentIntent) id.
	PaymentID string
	// ClientSecret is what the driver's app completes the authentication
	// with (Stripe.js handleNextAction). A secret: never logged or stored.
	ClientSecret string
}

// Reserve holds spotID for w for a driver, waiting for payment.
func (s *Service) Reserve(ctx context.Context, spotID string, w reservation.Window) (Issued, error) {
	now := s.now()
	w, err := s.checkWindow(w, now)
	if err != nil {
		return Issued{}, err
	}
	r, token, err := s.newReservation(spotID, w, now)
	if err != nil {
		return Issued{}, err
	}
	r.Source = reservation.SourceDriver
	r.State = reservation.Reserved
	err = s.store.Write(ctx, func(tx store.Tx) error { return s.insert(tx, r, "driver", "") })
	s.metrics.reserve(err)
	if err != nil {
		return Issued{}, err
	}
	s.log.Info("reserved", "reservation", r.ID, "spot", spotID, "from", w.From, "until", w.Until)
	return Issued{Reservation: r, Token: token}, nil
}

// PushItem is one reservation an operator pushes: already settled outside
// the card flow (fleet, invoice), so it is created paid.
type PushItem struct {
	SpotID    string
	Window    reservation.Window
	CarID     string
	Reference string
}

// Push creates all items or none. On failure the error names the item (by
// index) that could not be placed.
func (s *Service) Push(ctx context.Context, items []PushItem) ([]Issued, error) {
	return s.PushBy(ctx, items, Caller{Operator: true})
}

// PushBy is Push by a named operator, whose name and reason the change log
// records.
func (s *Service) PushBy(ctx context.Context, items []PushItem, c Caller) ([]Issued, error) {
	if len(items) == 0 {
		return nil, newErr(Invalid, "empty_request", "push at least one reservation")
	}
	now := s.now()
	out := make([]Issued, len(items))
	for i, it := range items {
		w, err := s.checkWindow(it.Window, now)
		if err != nil {
			return nil, itemErr(i, err)
		}
		car, err := NormaliseCarID(it.CarID)
		if err != nil {
			return nil, itemErr(i, err)
		}
		if len(it.Reference) > 200 {
			return nil, itemErr(i, newErr(Invalid, "invalid_reference", "reference is longer than 200 characters"))
		}
		r, token, err := s.newReservation(it.SpotID, w, now)
		if err != nil {
			return nil, itemErr(i, err)
		}
		r.Source = reservation.SourceOperator
		r.State = reservation.Paid
		r.PaidAt = now
		r.CarID = car
		r.Reference = it.Reference
		r.Amount = 0
		out[i] = Issued{Reservation: r, Token: token}
	}
	err := s.store.Write(ctx, func(tx store.Tx) error {
		for i := range out {
			if err := s.insert(tx, out[i].Reservation, c.actor(), c.note()); err != nil {
				return itemErr(i, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range out {
		t, err := s.ticket(out[i].Reservation)
		if err != nil {
			return nil, err
		}
		out[i].Ticket = t
	}
	s.log.Info("reservations pushed", "count", len(out))
	return out, nil
}

func itemErr(i int, err error) error {
	if e, ok := AsError(err); ok {
		return &Error{Kind: e.Kind, Code: e.Code, Message: fmt.Sprintf("reservation %d: %s", i+1, e.Message), Err: e.Err}
	}
	return err
}

// insert places r after checking, inside tx, that its spot exists and its
// window is free. The database enforces the same rule; checking first gives
// the client a message naming the reservation in the way.
func (s *Service) insert(tx store.Tx, r reservation.Reservation, actor, note string) error {
	if err := checkFree(tx, r); err != nil {
		return err
	}
	if err := tx.Insert(r); err != nil {
		if errors.Is(err, store.ErrOverlap) {
			return newErr(Conflict, "overlap", "spot %s is already reserved for part of that window", r.SpotID)
		}
		if errors.Is(err, store.ErrUnknownSpot) {
			return unknownSpot(r.SpotID)
		}
		return err
	}
	c := change(store.KindCreated, actor, r, r.CreatedAt)
	c.Note = note
	return tx.Log(c)
}

// checkFree refuses r if, in what rd reads, its spot is unknown or retired
// or its window overlaps a live reservation of the spot.
func checkFree(rd store.Reader, r reservation.Reservation) error {
	a, err := rd.Availability(r.SpotID, r.Window())
	if err != nil {
		return err
	}
	if !a.Active {
		return unknownSpot(r.SpotID)
	}
	if a.BlockerID != "" {
		return overlapErr(r.SpotID, a.Blocker)
	}
	return nil
}

func overlapErr(spot string, other reservation.Window) error {
	return newErr(Conflict, "overlap", "spot %s is already reserved from %s to %s",
		spot, other.From.Format(time.RFC3339), other.Until.Format(time.RFC3339))
}

func unknownSpot(id string) error {
	return newErr(NotFound, "unknown_spot", "there is no spot %q", id)
}

// checkWindow validates a requested window against the rules and returns it
// truncated to whole seconds (tickets carry seconds).
func (s *Service) checkWindow(w reservation.Window, now time.Time) (reservation.Window, error) {
	if w.From.IsZero() || w.Until.IsZero() {
		return w, newErr(Invalid, "missing_field", "reservedFrom and reservedUntil are required")
	}
	w = reservation.Window{From: w.From.UTC().Truncate(time.Second), Until: w.Until.UTC().Truncate(time.Second)}
	switch {
	case !w.Until.After(w.From):
		return w, newErr(Unprocessable, "invalid_window", "reservedUntil must be after reservedFrom")
	case w.From.Before(now.Add(-PastTolerance)):
		return w, newErr(Unprocessable, "window_in_past", "reservedFrom may be at most %s in the past", PastTolerance)
	case w.Duration() > s.cfg.MaxDuration:
		return w, newErr(Unprocessable, "window_too_long", "a reservation may last at most %s", s.cfg.MaxDuration)
	case w.From.After(now.Add(s.cfg.MaxAdvance)):
		return w, newErr(Unprocessable, "window_too_far", "reservedFrom may be at most %s ahead", s.cfg.MaxAdvance)
	}
	return w, nil
}

// newReservation fills in what every new reservation has: id, token, price.
func (s *Service) newReservation(spotID string, w reservation.Window, now time.Time) (reservation.Reservation, string, error) {
	if err := CheckSpotID(spotID); err != nil {
		return reservation.Reservation{}, "", err
	}
	token := newToken()
	return reservation.Reservation{
		ID:        newID(),
		SpotID:    spotID,
		From:      w.From,
		Until:     w.Until,
		CreatedAt: now,
		Amount:    s.Price(w),
		Currency:  s.cfg.Currency,
		TokenHash: HashToken(token),
	}, token, nil
}

// Price is what a window costs: PricePerHour for every started hour.
func (s *Service) Price(w reservation.Window) int64 {
	hours := int64((w.Duration() + time.Hour - 1) / time.Hour)
	return hours * s.cfg.PricePerHour
}

// CheckSpotID rejects ids that cannot be a spot before any lookup.
func CheckSpotID(id string) error {
	if id == "" || len(id) > 32 {
		return newErr(NotFound, "unknown_spot", "there is no spot %q", truncate(id, 40))
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return newErr(NotFound, "unknown_spot", "there is no spot %q", truncate(id, 40))
		}
	}
	return nil
}

// NormaliseCarID checks a licence plate and returns it upper-cased with
// surrounding space removed. Empty is allowed (no plate known).
func NormaliseCarID(car string) (string, error) {
	car = strings.ToUpper(strings.TrimSpace(car))
	if len(car) > 16 {
		return "", newErr(Invalid, "invalid_car_id", "carId is longer than 16 characters")
	}
	for _, c := range car {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == ' ') {
			return "", newErr(Invalid, "invalid_car_id", "carId may hold only letters A-Z, digits, spaces and dashes")
		}
	}
	return car, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// newID returns a reservation id: 80 random bits, 16 lower-case base32
// characters (short enough for tickets, safe in paths and topics).
func newID() string {
	var b [10]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return strings.ToLower(base32.StdEncoding.EncodeToString(b[:]))
}

// newToken returns a reservation's secret: 256 random bits.
func newToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// HashToken is how tokens are kept: only their SHA-256 is stored.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

func change(kind, actor string, r reservation.Reservation, at time.Time) store.Change {
	return store.Change{At: at, Kind: kind, SpotID: r.SpotID, ReservationID: r.ID, Actor: actor, Reservation: &r}
}

func (s *Service) ticket(r reservation.Reservation) (string, error) {
	if s.tickets == nil {
		return "", nil
	}
	return s.tickets.Issue(r)
}
