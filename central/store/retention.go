package store

import (
	"context"
	"time"
)

// Eraser erases the personal data of finished reservations, for the
// retention of personal data (retention.personal_data): once a reservation
// has been final for longer than that, nothing may tie it to a car or a
// card any more, while the money records and the counts stay.
//
// What is personal, and erased:
//   - a reservation's plate (carId) and token hash;
//   - its payment attempts' plate, payment-method and customer references,
//     and idempotency records (the key's hash and the request's hash, which
//     is a hash of a body that held the plate);
//   - the plate in every change-log snapshot of the reservation, and the
//     note (an operator's free text: a cancellation's reason, …) of every
//     change-log entry of it;
//   - of every gate event received before the cut, the exceptions ledger
//     included: the plate (read and as the reservation had it), the gate's
//     free text for a person (detail: a gate may name the plate it read
//     there) and the operator's note on resolving it;
//   - the note of every change-log entry logged before the cut that
//     belongs to no reservation (an operator's gate opening, a resolved
//     gate exception, …): free text, which may name a driver or a plate.
//
// Kept: the reservation itself (spot, window, state, times, amount,
// currency, the operator's reference), every payment attempt's and
// refund's amount, outcome and provider object ids, payment exceptions
// and their resolution (the money's record; they hold no plate), every
// change-log entry with who acted, and every gate event's reason, outcome
// and central's own note on it.
type Eraser interface {
	// PersonalData reports, changing nothing, what ErasePersonalData with
	// the same before would erase in all: the reservations finished
	// before it, and the gate events received and notes logged before it,
	// that still hold personal data.
	PersonalData(ctx context.Context, before time.Time) (Erasure, error)
	// ErasePersonalData erases, in one transaction, the personal data of
	// up to limit of the reservations finished before before (the
	// longest finished first), of up to limit gate events received before
	// it and of up to limit change-log notes logged before it, and reports
	// what it erased. A call that erased nothing
	// means there is nothing left to erase. Calls may run at once (from
	// several instances): each row is erased by one of them.
	ErasePersonalData(ctx context.Context, before time.Time, limit int) (Erasure, error)
}

// Erasure counts personal data erased (or, from PersonalData, to erase).
type Erasure struct {
	// Reservations whose plate or token hash went, with the oldest and
	// newest time they finished (EndedAt, else the window's end).
	Reservations             int
	OldestEnded, NewestEnded time.Time
	// Attempts: their payment attempts that held personal data.
	Attempts int
	// Changes: change-log entries of theirs whose snapshot held a plate or
	// that held a note.
	Changes int
	// GateEvents that held a plate or free text, with the oldest and
	// newest receipt.
	GateEvents                     int
	OldestReceived, NewestReceived time.Time
	// Notes: change-log entries of no reservation that held a note.
	Notes int
}

// Zero reports whether nothing was (or is to be) erased.
func (e Erasure) Zero() bool { return e.Reservations == 0 && e.GateEvents == 0 && e.Notes == 0 }

// Add adds o's counts to e and widens e's time ranges to cover o's.
func (e *Erasure) Add(o Erasure) {
	e.Reservations += o.Reservations
	e.Attempts += o.Attempts
	e.Changes += o.Changes
	e.GateEvents += o.GateEvents
	e.Notes += o.Notes
	e.OldestEnded, e.NewestEnded = widen(e.OldestEnded, e.NewestEnded, o.OldestEnded, o.NewestEnded)
	e.OldestReceived, e.NewestReceived = widen(e.OldestReceived, e.NewestReceived, o.OldestReceived, o.NewestReceived)
}

// widen returns the range [lo, hi] grown to cover [olo, ohi]; zero times
// are "no range".
func widen(lo, hi, olo, ohi time.Time) (time.Time, time.Time) {
	if !olo.IsZero() && (lo.IsZero() || olo.Before(lo)) {
		lo = olo
	}
	if !ohi.IsZero() && (hi.IsZero() || ohi.After(hi)) {
		hi = ohi
	}
	return lo, hi
}
