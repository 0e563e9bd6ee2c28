// Package store defines what centrald needs from its database, so that the
// booking rules and the HTTP layer never depend on one engine. The embedded
// default is sqlitestore; a PostgreSQL implementation follows the same
// contract (storetest runs one suite against every implementation).
//
// Reads go straight to the Store. Every change happens inside Write, one
// transaction that the implementation serialises per spot or globally, and
// every change appends to the change log in that same transaction: the log's
// version, assigned in commit order, is the one total order the gates are
// fed from.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/parkgate/parkgate/central/reservation"
)

// Errors the implementations return (possibly wrapped).
var (
	// ErrNotFound: no such reservation (or spot, where a spot was named).
	ErrNotFound = errors.New("not found")
	// ErrUnknownSpot: the spot id is not one of the site's spots.
	ErrUnknownSpot = errors.New("unknown spot")
	// ErrOverlap: the window overlaps a live reservation of the same spot.
	// The database itself enforces this, so it holds even if a caller
	// forgot to check first.
	ErrOverlap = errors.New("window overlaps a live reservation of this spot")
	// ErrDuplicate: an id (reservation, idempotency key) is taken.
	ErrDuplicate = errors.New("duplicate id")
)

// Store is the persistent state of a site.
type Store interface {
	// SetSpots makes the site's spots exactly ids: missing ones are added
	// (with a change), spots no longer listed are retired (they keep their
	// history and stop being listed or reservable).
	SetSpots(ctx context.Context, ids []string, at time.Time) error
	// Spots lists the active spot ids, in the order SetSpots was given them.
	Spots(ctx context.Context) ([]string, error)

	// Spot reports whether id is one of the site's active spots.
	Spot(ctx context.Context, id string) (bool, error)

	// Current returns what explains the status of spotID ("" for every
	// active spot) at now: each taken reservation, the live reservation
	// with the earliest reservedUntil after now (the one covering now, or
	// else the next), and the reservation that most recently left among
	// those whose reservedUntil is after now. Its cost must not grow with
	// the number of past or future reservations of a spot.
	Current(ctx context.Context, spotID string, now time.Time) ([]reservation.Reservation, error)

	// Get returns one reservation, or ErrNotFound.
	Get(ctx context.Context, id string) (reservation.Reservation, error)
	// ByTokenHash returns the reservation whose token hashes to h.
	ByTokenHash(ctx context.Context, h []byte) (reservation.Reservation, error)
	// List returns the reservations matching f, ordered by spot (its
	// position in SetSpots, then its id: a retired spot keeps its last
	// position) then window start, then id. With f.Limit the first Limit
	// of that order are read through indexes in that order, so that the
	// cost of a page filtered at most by spot and states does not grow
	// with years of history (it grows with the spots at most).
	List(ctx context.Context, f Filter) ([]reservation.Reservation, error)

	// Version returns the change log's latest version (0 when empty).
	Version(ctx context.Context) (int64, error)
	// Changes returns up to limit change-log entries with a version above
	// after, in version order.
	Changes(ctx context.Context, after int64, limit int) ([]Change, error)
	// RelayPosition returns the last change-log version the relay to the
	// gates recorded as published (0: none yet).
	RelayPosition(ctx context.Context) (int64, error)
	// PaymentAttempts lists the payment attempts of a reservation, oldest
	// first.
	PaymentAttempts(ctx context.Context, reservationID string) ([]PaymentAttempt, error)
	// Refunds lists the refunds of a reservation, oldest first.
	Refunds(ctx context.Context, reservationID string) ([]Refund, error)
	// PendingRefunds lists up to limit refunds not yet settled, oldest
	// first.
	PendingRefunds(ctx context.Context, limit int) ([]Refund, error)
	// UnsettledAttempts lists up to limit payment attempts, of every
	// reservation, whose outcome is not known yet (pending, unknown,
	// requires_action) and that started in [startedAfter, startedBefore),
	// oldest first: the reconciler's work.
	UnsettledAttempts(ctx context.Context, startedAfter, startedBefore time.Time, limit int) ([]PaymentAttempt, error)

	// PaymentExceptions lists up to limit payment exceptions, newest
	// first.
	PaymentExceptions(ctx context.Context, limit int) ([]PaymentException, error)
	// PaymentException returns one payment exception by id (ErrNotFound
	// if unknown), through its key: its cost does not grow with the
	// exceptions of past years.
	PaymentException(ctx context.Context, id string) (PaymentException, error)
	// LatestRefunds lists up to limit refunds, of every reservation, the
	// most recently recorded or settled first (by FinishedAt, else
	// CreatedAt; then by reservation and number): what the operator
	// console's live feed follows, read through an index in that order.
	LatestRefunds(ctx context.Context, limit int) ([]Refund, error)

	// Gates lists every known gate with its presence, by id.
	Gates(ctx context.Context) ([]Gate, error)
	// Gate returns one gate (ErrNotFound if unknown).
	Gate(ctx context.Context, id string) (Gate, error)
	// GateEvents returns the stored gate events matching f, newest first
	// (by ReceivedAt, then GateID, then Seq descending). With a limit, all
	// events, a gate's, exceptions and a gate's exceptions are read
	// through an index in that order, so that a page does not cost more
	// after years of events.
	GateEvents(ctx context.Context, f EventFilter) ([]GateEvent, error)
	// GateEvent returns one stored gate event by its EventID (ErrNotFound
	// if unknown), whatever its outcome, through its key.
	GateEvent(ctx context.Context, eventID string) (GateEvent, error)

	// Write runs fn in one write transaction and commits if fn returns nil.
	// Implementations may call fn more than once (to retry a serialisation
	// failure), so fn must not have effects outside tx.
	Write(ctx context.Context, fn func(tx Tx) error) error

	// Operator returns one operator account (ErrNotFound if unknown).
	Operator(ctx context.Context, name string) (Operator, error)

	// Eraser erases personal data past its retention.
	Eraser

	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases the database.
	Close() error
}

// ChangeNotifier is what a store may offer besides Store: word, from every
// process writing to the same database, that change-log entries were
// committed, so that a follower of the log (the relay to the gates) need
// not wait for its next poll. Followers poll all the same: a notification
// may be lost (across a reconnection) or spurious.
type ChangeNotifier interface {
	// NotifyChanges calls fn after entries are committed, until ctx ends
	// (then it returns nil) or the notifications fail (an error: call it
	// again later). Calls of fn never overlap; fn must return quickly.
	NotifyChanges(ctx context.Context, fn func()) error
}

// LogSequencer is what a store may offer besides Store when the writers
// that matter are in this process (SQLite): a number that grows with every
// commit that appended to the change log, before that commit's Write
// returns. A reader that finds it unchanged since it last read the log
// knows that nothing was logged meanwhile, by this process, without asking
// the database; a write answered to a client is always counted already.
// Writes by another process on the same database are not counted.
type LogSequencer interface {
	LogSeq() uint64
}

// Reader is what the check of a new reservation reads: inside the write
// transaction, every Tx is one.
type Reader interface {
	// Availability reads, as one commit left them, what decides whether
	// a reservation of spotID for w may be placed.
	Availability(spotID string, w reservation.Window) (Availability, error)
}

// Availability is what decides whether a window of a spot may be
// reserved.
type Availability struct {
	// Active: the spot exists and is not retired.
	Active bool
	// BlockerID is the live reservation of the spot whose window overlaps
	// the one asked for and starts first, Blocker its window; "" if none
	// overlaps (whether or not the spot is active).
	BlockerID string
	Blocker   reservation.Window
}

// Tx is what a write transaction may do. Reservations read through a Tx are
// locked until the transaction ends.
type Tx interface {
	// Reader's Availability reads inside the transaction.
	Reader
	// Spot reports whether the spot exists and is active.
	Spot(id string) (bool, error)
	// Get returns a reservation, locked for this transaction.
	Get(id string) (reservation.Reservation, error)
	// Live returns the live reservations of a spot whose window overlaps w.
	Live(spotID string, w reservation.Window) ([]reservation.Reservation, error)
	// Insert adds a new reservation; ErrOverlap if it is live and overlaps
	// another live reservation of its spot, ErrUnknownSpot, ErrDuplicate.
	Insert(r reservation.Reservation) error
	// Update stores r (found by r.ID) as it now is; ErrOverlap as Insert.
	Update(r reservation.Reservation) error
	// Log appends c to the change log. The entry's version is assigned when
	// the transaction commits, in commit order, not when Log is called:
	// with several writers (PostgreSQL) a version taken mid-transaction
	// could become visible after a higher one, and the log's followers (the
	// gate relay, the in-memory board) page with version > after, so they
	// would skip it. Entries logged in one transaction keep their order.
	Log(c Change) error
	// Attempt returns the reservation's payment attempt with the given
	// idempotency key hash, or ErrNotFound.
	Attempt(reservationID string, keyHash []byte) (PaymentAttempt, error)
	// PutAttempt inserts or replaces (by reservation and number) a payment
	// attempt.
	PutAttempt(a PaymentAttempt) error
	// Attempts lists the reservation's payment attempts, oldest first.
	Attempts(reservationID string) ([]PaymentAttempt, error)
	// AttemptByRef returns the payment attempt whose provider object is
	// ref, or ErrNotFound. Lock its reservation (Get) before changing it.
	AttemptByRef(ref string) (PaymentAttempt, error)
	// PutWebhookEvent records that the provider's event id was applied;
	// ErrDuplicate if it was before (the transaction must then end).
	PutWebhookEvent(id, typ string, at time.Time) error
	// PutPaymentException records an exception for an operator;
	// ErrDuplicate if its id is known.
	PutPaymentException(e PaymentException) error
	// Refunds lists the reservation's refunds, oldest first.
	Refunds(reservationID string) ([]Refund, error)
	// Gate returns one gate (ErrNotFound if unknown).
	Gate(id string) (Gate, error)
	// PutGate inserts or replaces a gate (its credentials included).
	PutGate(g Gate) error
	// PutGateEvent stores an event; ErrDuplicate if its EventID is known.
	PutGateEvent(e GateEvent) error
	// PutRefund inserts or replaces (by reservation and number) a refund.
	PutRefund(r Refund) error
	// ResolveGateEvent records that an operator (by) settled an exception
	// with a note at at; ErrNotFound if there is no such event. Resolving
	// again replaces the resolution.
	ResolveGateEvent(eventID, by, note string, at time.Time) error
	// ResolvePaymentException records that an operator (by) settled a
	// payment exception with a note at at; ErrNotFound if there is no
	// such exception. Resolving again replaces the resolution.
	ResolvePaymentException(id, by, note string, at time.Time) error
	// PutOperator inserts or replaces (by name) an operator account.
	PutOperator(o Operator) error
	// Enrollment returns the enrollment code identified by key, locked
	// for this transaction (ErrNotFound if unknown), so that two gates
	// presenting one code cannot both use it.
	Enrollment(key []byte) (Enrollment, error)
	// PutEnrollment inserts or replaces (by key) an enrollment code.
	PutEnrollment(e Enrollment) error
	// SetRelayPosition records that the relay published the log up to v;
	// the position never moves back (two relays for a moment, a late
	// write).
	SetRelayPosition(v int64) error
}

// Filter selects reservations for List. Zero fields select everything.
type Filter struct {
	SpotID        string
	States        []reservation.State
	UntilAfter    time.Time // reservedUntil > UntilAfter
	FromBefore    time.Time // reservedFrom < FromBefore
	CreatedBefore time.Time // reservationCreatedAt < CreatedBefore
	CarID         string    // the plate, normalised as stored
	Limit         int
}

// Change is one entry of the change log.
type Change struct {
	Version       int64     `json:"version"`
	At            time.Time `json:"at"`
	Kind          string    `json:"kind"`
	SpotID        string    `json:"spotId,omitempty"`
	ReservationID string    `json:"reservationId,omitempty"`
	// Actor says who caused the change: "driver", "operator", "system",
	// later "gate:<id>".
	Actor string `json:"actor"`
	// GateID names the gate an operator's action concerned (a remote
	// open), if any.
	GateID string `json:"gateId,omitempty"`
	// Note is the reason an operator gave for the change, if any.
	Note string `json:"note,omitempty"`
	// Reservation is the reservation as it is after the change (nil for
	// spot changes).
	Reservation *reservation.Reservation `json:"reservation,omitempty"`
}

// Change kinds.
const (
	KindSpotAdded       = "spot.added"
	KindSpotRetired     = "spot.retired"
	KindCreated         = "reservation.created"
	KindPaid            = "reservation.paid"
	KindCheckedIn       = "reservation.checked_in"
	KindCheckInReverted = "reservation.check_in_reverted"
	KindLeft            = "reservation.left"
	KindExpired         = "reservation.expired"
	KindNoShow          = "reservation.no_show"
	KindCancelled       = "reservation.cancelled"
	KindPaymentDeclined = "payment.declined"
	// Operator actions that change no reservation; they carry no
	// reservation, so the gates skip them.
	KindGateOpened        = "gate.opened"
	KindExceptionResolved = "exception.resolved"
)

// Attempt outcomes.
const (
	AttemptPending   = "pending" // claimed, the provider is being asked
	AttemptSucceeded = "succeeded"
	AttemptDeclined  = "declined"
	// AttemptUnknown: the provider erred or did not answer in time; money
	// may have moved. The reconciler settles it.
	AttemptUnknown = "unknown"
	// AttemptRequiresAction: the cardholder must authenticate (3-D
	// Secure); a webhook, a repeated request or the reconciler settles it.
	AttemptRequiresAction = "requires_action"
	// AttemptFailed: the provider says nothing was charged (a reconciled
	// attempt, or an authentication that timed out and was cancelled).
	AttemptFailed = "failed"
)

// Unsettled reports whether an attempt's outcome is still open.
func Unsettled(outcome string) bool {
	return outcome == AttemptPending || outcome == AttemptUnknown || outcome == AttemptRequiresAction
}

// Attempt purposes.
const (
	PurposeReservation = ""         // the reservation's price, paid by the driver
	PurposeOverstay    = "overstay" // the overstay fee, charged off-session at the exit
)

// PaymentAttempt records one try to charge a reservation: every money
// movement is kept, with the provider's object id, never card data.
type PaymentAttempt struct {
	ReservationID string
	Number        int
	// KeyHash is the SHA-256 of the client's Idempotency-Key (nil if none).
	KeyHash []byte
	// RequestHash is the SHA-256 of the request that used KeyHash (method,
	// path and canonical body: never the body itself, which holds a
	// plate), so the key reused with another request is refused even after
	// the first one finished. Nil without a key, and on attempts recorded
	// before it was kept.
	RequestHash []byte
	ProviderKey string // idempotency key sent to the provider
	Outcome     string
	ProviderRef string // provider's object id (charge, payment intent)
	Message     string // decline reason, for replays
	Amount      int64
	Currency    string
	CarID       string
	// PaymentMethod is the provider's reference (pm_...), never card data.
	PaymentMethod string
	// Purpose is what the money is for: PurposeReservation or
	// PurposeOverstay.
	Purpose string
	// CustomerRef is the provider's customer the payment method was saved
	// to for off-session charges (cus_...), empty when none.
	CustomerRef string
	StartedAt   time.Time
	FinishedAt  time.Time
}

// Refund statuses.
const (
	RefundPending   = "pending"
	RefundSucceeded = "succeeded"
	RefundRefused   = "refused" // the provider refused for good: an operator settles it
)

// Refund is money owed back to a driver, recorded when the state change
// that owes it commits and settled later with the provider.
type Refund struct {
	ReservationID string
	Number        int
	Reason        string // early_departure, no_show, cancelled
	Amount        int64
	Currency      string
	ChargeRef     string // the charge being refunded (PaymentAttempt.ProviderRef)
	ProviderKey   string // idempotency key sent to the provider
	Status        string
	ProviderRef   string // provider's refund object id
	Message       string // why the provider refused
	Tries         int
	CreatedAt     time.Time
	FinishedAt    time.Time
}

// Payment exception kinds.
const (
	ExceptionDispute        = "dispute"         // the cardholder's bank opened a dispute
	ExceptionOverstayUnpaid = "overstay_unpaid" // the overstay fee was declined: owed
)

// PaymentException is money an operator must settle by hand.
type PaymentException struct {
	ID            string // unique: the provider's event id, or derived from the attempt
	Kind          string
	ReservationID string
	Amount        int64 // minor unit: disputed, or owed
	Currency      string
	ProviderRef   string // dispute, payment intent
	Reason        string // the provider's reason, for a person
	CreatedAt     time.Time
	// Set once an operator resolved the exception.
	ResolvedAt time.Time
	ResolvedBy string // the operator's name, or "admin token"
	Resolution string // the operator's note
}

// Gate is a gate as centrald knows it: its MQTT credentials (hashed) and
// its presence as its retained status last reported it.
type Gate struct {
	ID           string
	PasswordHash []byte // nil: no credentials here (an external broker authenticates)
	Role         string
	Online       bool
	Session      int64 // the gate's connection counter (late wills are ignored)
	LastSeen     time.Time
	CacheVersion int64
	Outbox       int
	Barrier      string
	Software     string
	AddedAt      time.Time
	// Faults are the gate's active faults as its last birth reported them
	// (a will leaves them as they were); nil or empty: none.
	Faults []GateFault
}

// GateFault is one active fault of a gate: a kind word, the last error as
// a sentence, when it was raised and when last reported.
type GateFault struct {
	Kind  string    `json:"kind"`
	Error string    `json:"error"`
	Since time.Time `json:"since"`
	At    time.Time `json:"at"`
}

// EncodeFaults is how both stores keep a gate's faults in one column: a
// JSON array, "[]" for none.
func EncodeFaults(fs []GateFault) string {
	if len(fs) == 0 {
		return "[]"
	}
	b, err := json.Marshal(fs)
	if err != nil { // times out of JSON's range; the column stays valid
		return "[]"
	}
	return string(b)
}

// DecodeFaults reads EncodeFaults' column back; none is nil.
func DecodeFaults(s string) ([]GateFault, error) {
	var fs []GateFault
	if s == "" {
		return nil, nil
	}
	if err := json.Unmarshal([]byte(s), &fs); err != nil {
		return nil, fmt.Errorf("gate faults: %w", err)
	}
	if len(fs) == 0 {
		return nil, nil
	}
	return fs, nil
}

// Gate event outcomes.
const (
	EventApplied   = "applied"   // changed spot state, as POST /park would
	EventRecorded  = "recorded"  // kept for the record (a denial, a fault)
	EventException = "exception" // contradicts central's state: for an operator
)

// GateEvent is one event a gate delivered from its outbox, stored once.
type GateEvent struct {
	EventID         string
	GateID          string
	Seq             int64
	Kind            string // decision, barrier_fault
	Role            string // entry, exit
	Time            time.Time
	Source          string // qr, plate, remote, manual
	Granted         bool
	Reason          string
	ReservationID   string
	SpotID          string
	CarID           string
	Plate           string // the normalised plate read (ANPR), also of a denied car
	Detail          string // the gate's text for a person
	Overstay        bool
	PresenceUnknown bool
	ClockTrusted    bool
	ReceivedAt      time.Time
	Outcome         string
	Note            string // why an exception, what was applied
	// Set once an operator resolved the exception.
	ResolvedAt time.Time
	ResolvedBy string // the operator's name
	Resolution string // the operator's note
}

// Operator is a named account for a person at the operator console.
type Operator struct {
	Name         string
	PasswordHash []byte // argon2id, as broker.HashPassword makes it
	CreatedAt    time.Time
}

// Enrollment is a one-time gate enrollment code as central keeps it:
// never its secret, only a public key derived from it.
type Enrollment struct {
	// Key identifies the code: the Ed25519 public key derived from its
	// secret (internal/enrollment), which also checks the gate's proof.
	Key       []byte
	GateID    string
	Role      string
	CreatedAt time.Time
	ExpiresAt time.Time
	// UsedAt is when a gate redeemed the code; zero: not yet.
	UsedAt time.Time
}

// EventFilter selects gate events. Zero fields select everything.
type EventFilter struct {
	GateID  string
	Outcome string
	Limit   int
}
