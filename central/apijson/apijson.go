// Package apijson holds the JSON documents of centrald's HTTP API (see
// docs/api.md), shared by the server (central/api) and the Go client
// (central/client) so the two cannot drift apart. It has no behaviour.
package apijson

import "time"

// Parking is a spot as GET /parkings shows it: its status as of now and,
// when there is one, the reservation that explains it (the car inside, the
// one whose window covers now, one that left early in its window) or else
// its next one. Field names are the API contract's (docs/api.md).
type Parking struct {
	ID                   string    `json:"id"`
	Status               string    `json:"status"` // free, reserved, taken
	ReservationID        string    `json:"reservationId,omitempty"`
	ReservationStatus    string    `json:"reservationStatus,omitempty"`
	ReservationCreatedAt time.Time `json:"reservationCreatedAt,omitzero"`
	ReservedFrom         time.Time `json:"reservedFrom,omitzero"`
	ReservedUntil        time.Time `json:"reservedUntil,omitzero"`
	PaidAt               time.Time `json:"paidAt,omitzero"`
	LeftAt               time.Time `json:"leftAt,omitzero"`
	CarID                string    `json:"carId,omitempty"`
}

// Reservation is a reservation as the API shows it. Amount is in the
// currency's minor unit (cents). Token is set only in the answer that
// created the reservation, Ticket only in answers that issue one (payment,
// push): the server keeps neither.
type Reservation struct {
	ReservationID        string    `json:"reservationId"`
	SpotID               string    `json:"spotId"`
	Status               string    `json:"status"` // the reservation's state
	Source               string    `json:"source"` // driver, operator
	ReservedFrom         time.Time `json:"reservedFrom"`
	ReservedUntil        time.Time `json:"reservedUntil"`
	ReservationCreatedAt time.Time `json:"reservationCreatedAt"`
	Amount               int64     `json:"amount"`
	Currency             string    `json:"currency"`
	CarID                string    `json:"carId,omitempty"`
	Reference            string    `json:"reference,omitempty"`
	PaymentDueBy         time.Time `json:"paymentDueBy,omitzero"`
	PaidAt               time.Time `json:"paidAt,omitzero"`
	CheckedInAt          time.Time `json:"checkedInAt,omitzero"`
	LeftAt               time.Time `json:"leftAt,omitzero"`
	EndedAt              time.Time `json:"endedAt,omitzero"`
	Token                string    `json:"token,omitempty"`
	Ticket               string    `json:"ticket,omitempty"`
	// Overstay is the fee for leaving after reservedUntil + the grace
	// (GET /reservations/{id} only).
	Overstay *Overstay `json:"overstay,omitempty"`
}

// Overstay is a reservation's overstay fee, charged off-session.
type Overstay struct {
	Amount    int64     `json:"amount"`
	Currency  string    `json:"currency"`
	Status    string    `json:"status"` // pending, unknown, succeeded, declined (an operator collects it)
	ChargedAt time.Time `json:"chargedAt,omitzero"`
}

// PublicKey is the site's ticket verification key, in the form gated's
// tickets.public_key takes, and its key id.
type PublicKey struct {
	KeyID     string `json:"keyId"`
	PublicKey string `json:"publicKey"`
}

// Error is the one error shape of the API.
type Error struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is a machine word and a sentence for a person.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Payments is every money movement of one reservation (GET
// /admin/reservations/{id}/payments): the charge attempts and the refunds,
// with the provider's object ids. Never card data.
type Payments struct {
	ReservationID string           `json:"reservationId"`
	Attempts      []PaymentAttempt `json:"attempts"`
	Refunds       []Refund         `json:"refunds"`
}

// PaymentAction is the 202 answer of POST /pay/parking/{id} when the
// cardholder must authenticate (3-D Secure): the driver's app completes it
// with ClientSecret (Stripe.js handleNextAction), then repeats the request
// with the same Idempotency-Key, or waits for the reservation to be paid.
type PaymentAction struct {
	Status        string `json:"status"` // requires_action
	ClientSecret  string `json:"clientSecret"`
	PaymentID     string `json:"paymentId"`
	ReservationID string `json:"reservationId"`
}

// PaymentAttempt is one try to charge a reservation.
type PaymentAttempt struct {
	Number      int       `json:"number"`
	Outcome     string    `json:"outcome"`           // pending, unknown, requires_action, succeeded, declined, failed
	Purpose     string    `json:"purpose,omitempty"` // overstay; empty for the reservation's price
	Amount      int64     `json:"amount"`
	Currency    string    `json:"currency"`
	ProviderRef string    `json:"providerRef,omitempty"`
	Message     string    `json:"message,omitempty"`
	StartedAt   time.Time `json:"startedAt"`
	FinishedAt  time.Time `json:"finishedAt,omitzero"`
}

// PaymentException is money an operator must settle by hand (GET
// /admin/payment-exceptions): a dispute, an overstay fee the card
// declined.
type PaymentException struct {
	ID            string    `json:"id"`
	Kind          string    `json:"kind"` // dispute, overstay_unpaid
	ReservationID string    `json:"reservationId,omitempty"`
	Amount        int64     `json:"amount"`
	Currency      string    `json:"currency"`
	ProviderRef   string    `json:"providerRef,omitempty"`
	Reason        string    `json:"reason"`
	CreatedAt     time.Time `json:"createdAt"`
	// Set once an operator resolved it: when, who (an operator's name
	// or "admin token") and the note.
	ResolvedAt time.Time `json:"resolvedAt,omitzero"`
	ResolvedBy string    `json:"resolvedBy,omitempty"`
	Resolution string    `json:"resolution,omitempty"`
}

// Refund is money owed back to the driver.
type Refund struct {
	Number      int       `json:"number"`
	Reason      string    `json:"reason"` // early_departure, no_show, cancelled, expired, duplicate
	Amount      int64     `json:"amount"`
	Currency    string    `json:"currency"`
	Status      string    `json:"status"` // pending, succeeded, refused
	ProviderRef string    `json:"providerRef,omitempty"`
	Message     string    `json:"message,omitempty"`
	Tries       int       `json:"tries"`
	CreatedAt   time.Time `json:"createdAt"`
	FinishedAt  time.Time `json:"finishedAt,omitzero"`
}

// Gate is one gate as GET /gates lists it (docs/api.md).
type Gate struct {
	ID           string    `json:"id"`
	Role         string    `json:"role"`
	Online       bool      `json:"online"`
	LastSeen     time.Time `json:"lastSeen,omitzero"`
	CacheVersion int64     `json:"cacheVersion"`
	Outbox       int       `json:"outbox"`
	Barrier      string    `json:"barrier,omitempty"`
	Software     string    `json:"software,omitempty"`
	// Faults are the gate's active faults as it last reported them; []
	// when none.
	Faults []GateFault `json:"faults"`
}

// GateFault is one active fault of a gate, as its GET /v1/status shows it.
type GateFault struct {
	Kind  string    `json:"kind"`
	Error string    `json:"error"`
	Since time.Time `json:"since"`
	At    time.Time `json:"at"`
}

// GateEvent is an event a gate delivered, as GET /admin/exceptions (and
// GET /admin/gate-events) list them.
type GateEvent struct {
	EventID         string    `json:"eventId"`
	GateID          string    `json:"gateId"`
	Seq             int64     `json:"seq"`
	Kind            string    `json:"kind"`
	Role            string    `json:"role"`
	Time            time.Time `json:"time"`
	Source          string    `json:"source,omitempty"`
	Granted         bool      `json:"granted"`
	Reason          string    `json:"reason,omitempty"`
	ReservationID   string    `json:"reservationId,omitempty"`
	SpotID          string    `json:"spotId,omitempty"`
	CarID           string    `json:"carId,omitempty"`
	Plate           string    `json:"plate,omitempty"`
	Detail          string    `json:"detail,omitempty"`
	Overstay        bool      `json:"overstay,omitempty"`
	PresenceUnknown bool      `json:"presenceUnknown,omitempty"`
	ClockTrusted    bool      `json:"clockTrusted"`
	ReceivedAt      time.Time `json:"receivedAt"`
	Outcome         string    `json:"outcome"`
	Note            string    `json:"note,omitempty"`
	// Set once an operator resolved the exception.
	ResolvedAt time.Time `json:"resolvedAt,omitzero"`
	ResolvedBy string    `json:"resolvedBy,omitempty"`
	Resolution string    `json:"resolution,omitempty"`
}
