// Package reservation holds what a reservation is: a car's claim on one spot
// for a time window, and the states it may pass through. It does no I/O; the
// booking package applies these rules and the store persists the result.
package reservation

import (
	"fmt"
	"time"
)

// State is where a reservation stands in its life.
type State string

// The states. Reserved, Paid and Taken are live: they hold their window, and
// no other live reservation of the same spot may overlap it. The others are
// final.
const (
	Reserved  State = "reserved"  // created, waiting for payment
	Paid      State = "paid"      // paid (or settled by an operator), car not in yet
	Taken     State = "taken"     // the car has checked in
	Left      State = "left"      // the car has checked out; the spot is free again
	Expired   State = "expired"   // not paid within the payment hold
	NoShow    State = "no_show"   // paid, but the car never came within the grace
	Cancelled State = "cancelled" // cancelled by the driver or an operator
)

// States lists every state, live ones first.
var States = []State{Reserved, Paid, Taken, Left, Expired, NoShow, Cancelled}

// LiveStates are the states that hold a window.
var LiveStates = []State{Reserved, Paid, Taken}

// Valid reports whether s is one of the known states.
func (s State) Valid() bool {
	for _, k := range States {
		if s == k {
			return true
		}
	}
	return false
}

// Live reports whether a reservation in state s holds its window.
func (s State) Live() bool { return s == Reserved || s == Paid || s == Taken }

// transitions lists, for each state, the states it may move to. Everything
// else is a conflict.
var transitions = map[State][]State{
	Reserved: {Paid, Expired, Cancelled},
	Paid:     {Taken, NoShow, Cancelled},
	// Taken -> Paid is the operator undoing a check-in that did not happen
	// (a false read at the gate); the reservation keeps its window.
	Taken: {Left, Paid},
}

// CanMove reports whether a reservation may move from one state to another;
// the error says why not in words an operator understands.
func CanMove(from, to State) error {
	for _, ok := range transitions[from] {
		if ok == to {
			return nil
		}
	}
	return &StateError{From: from, To: to}
}

// StateError is a transition the state machine does not allow.
type StateError struct {
	From, To State
}

// Error says why the move is refused, in words for an operator.
func (e *StateError) Error() string {
	switch {
	case !e.From.Live():
		return fmt.Sprintf("the reservation is %s, which is final; it cannot become %s", e.From, e.To)
	case e.To == Paid && e.From == Paid:
		return "the reservation is already paid"
	case e.To == Paid:
		return fmt.Sprintf("the reservation is %s and cannot be paid", e.From)
	case e.To == Taken && e.From == Reserved:
		return "the reservation is not paid yet; pay before checking in"
	case e.To == Taken && e.From == Taken:
		return "the car has already checked in"
	case e.To == Left:
		return fmt.Sprintf("the reservation is %s: only a car that has checked in can check out", e.From)
	default:
		return fmt.Sprintf("a %s reservation cannot become %s", e.From, e.To)
	}
}

// Source says who created a reservation.
type Source string

// Sources.
const (
	SourceDriver   Source = "driver"   // reserved through the API, pays by card
	SourceOperator Source = "operator" // pushed by an operator, settled outside the card flow
)

// Window is a half-open time interval [From, Until).
type Window struct {
	From  time.Time
	Until time.Time
}

// Overlaps reports whether two windows share any instant.
func (w Window) Overlaps(o Window) bool {
	return w.From.Before(o.Until) && o.From.Before(w.Until)
}

// Contains reports whether t lies in the window.
func (w Window) Contains(t time.Time) bool {
	return !t.Before(w.From) && t.Before(w.Until)
}

// Duration is the window's length.
func (w Window) Duration() time.Duration { return w.Until.Sub(w.From) }

// Reservation is one car's claim on a spot. Times are UTC; a zero time means
// "not set". The token itself is never kept: only its SHA-256.
type Reservation struct {
	ID        string    `json:"id"`
	SpotID    string    `json:"spotId"`
	State     State     `json:"state"`
	Source    Source    `json:"source"`
	From      time.Time `json:"reservedFrom"`
	Until     time.Time `json:"reservedUntil"`
	CreatedAt time.Time `json:"reservationCreatedAt"`
	CarID     string    `json:"carId,omitempty"`
	Amount    int64     `json:"amount"`
	Currency  string    `json:"currency"`
	// Reference is free text an operator attaches to a pushed reservation
	// (fleet, invoice number).
	Reference   string    `json:"reference,omitempty"`
	PaidAt      time.Time `json:"paidAt,omitzero"`
	CheckedInAt time.Time `json:"checkedInAt,omitzero"`
	LeftAt      time.Time `json:"leftAt,omitzero"`
	// EndedAt is when the reservation reached a final state.
	EndedAt time.Time `json:"endedAt,omitzero"`

	TokenHash []byte `json:"-"`
	// PaymentAttempts counts started payment attempts; the provider's
	// idempotency key is derived from the reservation id and this number.
	PaymentAttempts int `json:"-"`
	// PaymentRef is the provider's object id of the successful charge.
	PaymentRef string `json:"-"`
	// PaymentStartedAt is set while a payment attempt is in flight, so that
	// the payment hold does not expire a reservation mid-charge.
	PaymentStartedAt time.Time `json:"-"`
}

// Window returns the reservation's window.
func (r *Reservation) Window() Window { return Window{From: r.From, Until: r.Until} }
