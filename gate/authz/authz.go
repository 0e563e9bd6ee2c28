// Package authz is the lane's decision: does this ticket or this plate open
// the barrier, and if not, why. Decide is a pure function of its Input —
// the read, the time, the clock's trust, the policy, the ticket verifier and
// a read-only view of the local cache — so every outcome can be tested
// without a database, a clock or hardware (docs/gated.md, docs/tickets.md).
//
// The rules:
//
//   - A valid signature is proof of payment. A ticket opens even when its
//     reservation has not reached the gate's cache yet; the cache only adds
//     to it: revocations (cancelled, released as no-show, expired), plates
//     and anti-passback.
//   - Entry: the window, widened by the early-arrival grace, must cover now
//     (too_early, expired); a ticket whose car is inside cannot enter again
//     before it has exited (already_inside); a reservation whose car has
//     left is over (already_left). A plate opens when it matches a paid
//     reservation whose window covers now.
//   - Exit: a car known to be inside goes out, even after its window
//     (granted, flagged Overstay past the exit grace), even if its
//     reservation was revoked meanwhile. A car known to be out — this gate
//     let it out, or central says it left — does not go out twice
//     (not_inside). A car the gate knows nothing about (it may have entered
//     while the entry lane could not reach central, since entry and exit
//     are separate gates) goes out on an authentic, unrevoked ticket or a
//     paid plate, flagged PresenceUnknown for central to check, unless
//     Input.StrictExit asks for proof that it is inside.
//   - Time-window checks happen only on a trusted clock. Until the clock is
//     trusted, the offline policy decides (see OfflinePolicy); the time
//     known to have passed (Input.TimeFloor) still exposes tickets that
//     ended before it.
package authz

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/parkgate/parkgate/plate"

	"github.com/parkgate/parkgate/gate/localdb"
	"github.com/parkgate/parkgate/ticket"
)

// Reason is the stable word for a decision. Gates report it (the "reason"
// of the simulator's answer, the outbox event) and count it in metrics, so
// the values never change; new ones may be added.
type Reason string

// The reasons for granting.
const (
	// ReasonTicket: granted on a valid ticket.
	ReasonTicket Reason = "ticket"
	// ReasonPlate: granted on a plate that matches a paid reservation.
	ReasonPlate Reason = "plate"
)

// The ticket package's rejections, passed through unchanged so that the
// word a gate reports is the word the ticket package documents.
const (
	// ReasonMalformed: not a ticket of this format (ticket.ReasonMalformed).
	ReasonMalformed = Reason(ticket.ReasonMalformed)
	// ReasonTooShort: a partial read (ticket.ReasonTooShort).
	ReasonTooShort = Reason(ticket.ReasonTooShort)
	// ReasonTooLong: longer than any ticket (ticket.ReasonTooLong).
	ReasonTooLong = Reason(ticket.ReasonTooLong)
	// ReasonUnknownKey: signed by a key this gate does not know
	// (ticket.ReasonUnknownKey).
	ReasonUnknownKey = Reason(ticket.ReasonUnknownKey)
	// ReasonBadSignature: forged or altered (ticket.ReasonBadSignature).
	ReasonBadSignature = Reason(ticket.ReasonBadSignature)
	// ReasonExpired: the reservation window has ended (at entry; at the
	// exit an ended window is an overstay, not a denial). Same word as
	// ticket.ReasonExpired, and also given for plates.
	ReasonExpired = Reason(ticket.ReasonExpired)
)

// The gate's own reasons for denying.
const (
	// ReasonTooEarly: before reservedFrom minus the early-arrival grace.
	ReasonTooEarly Reason = "too_early"
	// ReasonRevoked: the cache says the reservation was cancelled,
	// released as a no-show or expired.
	ReasonRevoked Reason = "revoked"
	// ReasonAlreadyInside: entry anti-passback; the reservation's car is
	// inside and has not exited.
	ReasonAlreadyInside Reason = "already_inside"
	// ReasonAlreadyLeft: entry with a reservation whose car has checked
	// out; a reservation ends with its exit (central frees the spot).
	ReasonAlreadyLeft Reason = "already_left"
	// ReasonNotInside: exit for a reservation whose car is known to be out
	// (already exited), or not known to be inside with StrictExit, or
	// whose window has not started (it cannot have brought a car in).
	ReasonNotInside Reason = "not_inside"
	// ReasonUnknownPlate: no cached reservation has this plate (or the
	// read was empty).
	ReasonUnknownPlate Reason = "unknown_plate"
	// ReasonNotPaid: the plate's reservation exists but is not paid.
	ReasonNotPaid Reason = "not_paid"
	// ReasonNoKey: a ticket was read, but no site public key is
	// configured (nor synced) to verify it.
	ReasonNoKey Reason = "no_key"
	// ReasonClockUntrusted: the clock is not trusted yet and the offline
	// policy denies this decision.
	ReasonClockUntrusted Reason = "clock_untrusted"
	// ReasonCacheError: the local database could not be read. The lane
	// could not record the decision either, so it does not open.
	ReasonCacheError Reason = "cache_error"
	// ReasonInvalidInput: the lane called Decide wrongly (unknown role,
	// source or policy, no time, no cache): a bug, never a driver's fault.
	ReasonInvalidInput Reason = "invalid_input"
)

// Reasons lists every reason word Decide can give, for metrics (a counter
// per word from the start) and documentation.
var Reasons = []Reason{
	ReasonTicket, ReasonPlate,
	ReasonMalformed, ReasonTooShort, ReasonTooLong, ReasonUnknownKey, ReasonBadSignature, ReasonExpired,
	ReasonTooEarly, ReasonRevoked, ReasonAlreadyInside, ReasonAlreadyLeft, ReasonNotInside,
	ReasonUnknownPlate, ReasonNotPaid, ReasonNoKey, ReasonClockUntrusted, ReasonCacheError, ReasonInvalidInput,
}

// OfflinePolicy (gate.offline_policy) is what the lane does while its clock
// is not trusted.
type OfflinePolicy string

// The offline policies.
const (
	// PolicySignatureOnly accepts authentic tickets without checking their
	// window (revocations and anti-passback still apply, and a ticket that
	// ended before Input.TimeFloor is still expired). Plates carry no
	// signature, so plate entries wait for a trusted clock; exits go on,
	// without the overstay flag unless TimeFloor shows one.
	PolicySignatureOnly OfflinePolicy = "signature_only"
	// PolicyDeny denies every decision with ReasonClockUntrusted.
	PolicyDeny OfflinePolicy = "deny"
	// PolicyExitOnly denies entries with ReasonClockUntrusted and decides
	// exits as PolicySignatureOnly does.
	PolicyExitOnly OfflinePolicy = "exit_only"
)

// DefaultOfflinePolicy is PolicySignatureOnly. The clock is untrusted right
// after a Pi boots without network, which is exactly when the lane must
// work from its cache (valid cars keep getting in and out
// with the network down). A signature still proves payment; what is lost
// is only the window check, a bounded risk (a car let in early or on an
// old ticket), further limited by revocations, anti-passback and the time
// floor. PolicyDeny would lock out every paying driver until NTP answers,
// and PolicyExitOnly every arriving one.
const DefaultOfflinePolicy = PolicySignatureOnly

// ParseOfflinePolicy reads gate.offline_policy; the empty string is the
// default.
func ParseOfflinePolicy(s string) (OfflinePolicy, error) {
	switch p := OfflinePolicy(s); p {
	case "":
		return DefaultOfflinePolicy, nil
	case PolicySignatureOnly, PolicyDeny, PolicyExitOnly:
		return p, nil
	}
	return "", fmt.Errorf("offline policy %q: want signature_only, deny or exit_only", s)
}

// Defaults for the graces.
const (
	// DefaultEarlyArrival is how long before reservedFrom a car may enter
	// (reservations.early_arrival at central, gate.early_arrival here).
	DefaultEarlyArrival = 15 * time.Minute
	// DefaultExitGrace is how long after reservedUntil an exit is still on
	// time: the car was on its way out when the window ended.
	DefaultExitGrace = 15 * time.Minute
)

// Cache is what Decide reads: the reservation cache and the presence
// records. *localdb.DB satisfies it; tests use a fake.
type Cache interface {
	// Lookup returns the cached entry of a reservation, ok false if none.
	Lookup(ctx context.Context, reservationID string) (e localdb.Entry, ok bool, err error)
	// ByPlate returns the cached entries whose normalised plate is plate.
	ByPlate(ctx context.Context, plate string) ([]localdb.Entry, error)
	// Presence returns what the gate knows about a reservation's car.
	Presence(ctx context.Context, reservationID string) (localdb.Presence, error)
}

var _ Cache = (*localdb.DB)(nil)

// Input is everything a decision depends on.
type Input struct {
	// Role is the lane's role (localdb.RoleEntry or RoleExit).
	Role localdb.Role
	// Source is what was read: localdb.SourceQR (Code) or SourcePlate
	// (Plate).
	Source localdb.Source
	// Code is the scanned ticket text, for SourceQR.
	Code string
	// Plate is the plate read, for SourcePlate; Decide normalises it.
	Plate string
	// Now is the wall-clock time of the read.
	Now time.Time
	// ClockTrusted says whether Now can be used for window checks (see
	// TrustedClock; in sim mode the clock counts as trusted).
	ClockTrusted bool
	// TimeFloor is a time known to have passed (ClockStatus.Floor): when
	// the clock is not trusted, a ticket whose window ended before it is
	// still expired and an exit after it is still an overstay. Zero when
	// unknown.
	TimeFloor time.Time
	// OfflinePolicy applies while the clock is not trusted; empty means
	// DefaultOfflinePolicy.
	OfflinePolicy OfflinePolicy
	// Verifier checks tickets; nil means no public key is configured, and
	// every ticket is denied with ReasonNoKey.
	Verifier *ticket.Verifier
	// EarlyArrival widens the start of a window at entry: zero means
	// DefaultEarlyArrival, a negative value no grace at all.
	EarlyArrival time.Duration
	// ExitGrace is how long after the window an exit is not an overstay:
	// zero means DefaultExitGrace, a negative value none.
	ExitGrace time.Duration
	// StrictExit denies (ReasonNotInside) an exit whose car the gate does
	// not know to be inside, instead of granting it flagged
	// PresenceUnknown. Off by default: entry and exit are different gates,
	// and a car that entered while they could not sync would be trapped.
	StrictExit bool
	// Cache is the local cache and presence.
	Cache Cache
}

func (in *Input) early() time.Duration { return grace(in.EarlyArrival, DefaultEarlyArrival) }
func (in *Input) exitGrace() time.Duration {
	return grace(in.ExitGrace, DefaultExitGrace)
}

func grace(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

// reference is the time windows are compared with: now on a trusted
// clock, otherwise the floor (possibly zero: nothing known).
func (in *Input) reference() time.Time {
	if in.ClockTrusted {
		return in.Now
	}
	return in.TimeFloor
}

// Decision is the outcome, with what the lane needs to act on it and to
// record it.
type Decision struct {
	// Granted says whether the barrier opens.
	Granted bool
	// Reason is the stable word for the outcome.
	Reason Reason
	// Detail explains the outcome to a person (logs, status); its wording
	// may change. It never contains the ticket text.
	Detail string
	// Role, Source, Time and ClockTrusted repeat the input, so that the
	// decision can be recorded on its own (Event).
	Role         localdb.Role
	Source       localdb.Source
	Time         time.Time
	ClockTrusted bool
	// ReservationID, SpotID and CarID identify the reservation the
	// decision was about (from the cache when it holds it, else from the
	// ticket); empty when there was none (a malformed code, an unknown
	// plate).
	ReservationID string
	SpotID        string
	CarID         string
	// Plate is the normalised plate read, or the reservation's.
	Plate string
	// From and Until are the reservation window used.
	From, Until time.Time
	// KeyID is the id of the key that signed the ticket, for logs.
	KeyID string
	// Overstay flags a granted exit after Until plus the exit grace.
	Overstay bool
	// PresenceUnknown flags a granted exit for a car the gate did not know
	// to be inside.
	PresenceUnknown bool
	// Presence is what recording the decision does to presence:
	// localdb.Entered for a granted entry, Exited for a granted exit.
	Presence localdb.PresenceChange
}

// Event is the outbox event that records d for the gate gateID; the lane
// passes it with d.Presence to localdb.DB.Record before opening.
func (d Decision) Event(gateID string) localdb.Event {
	return localdb.Event{
		Kind: localdb.KindDecision, GateID: gateID, Role: d.Role, Time: d.Time, Source: d.Source,
		Granted: d.Granted, Reason: string(d.Reason), ReservationID: d.ReservationID, SpotID: d.SpotID,
		CarID: d.CarID, Plate: d.Plate, Overstay: d.Overstay, PresenceUnknown: d.PresenceUnknown,
		ClockTrusted: d.ClockTrusted, Detail: d.Detail,
	}
}

func (d Decision) deny(r Reason, format string, args ...any) Decision {
	d.Granted, d.Reason, d.Detail = false, r, fmt.Sprintf(format, args...)
	d.Overstay, d.PresenceUnknown, d.Presence = false, false, localdb.NoPresenceChange
	return d
}

// Decide decides one read. It never panics on bad input and never writes:
// recording the decision (and the presence change it carries) is the
// caller's next step, before the barrier opens.
//
// The order of the checks: the input itself (invalid_input), the offline
// policy when the clock is not trusted (clock_untrusted), then for a
// ticket the key (no_key) and the signature (the ticket package's words),
// then the cache: revocation, the window, and presence.
func Decide(ctx context.Context, in Input) Decision {
	d := Decision{Role: in.Role, Source: in.Source, Time: in.Now, ClockTrusted: in.ClockTrusted}
	policy, err := ParseOfflinePolicy(string(in.OfflinePolicy))
	switch {
	case !in.Role.Valid():
		return d.deny(ReasonInvalidInput, "role %q: want entry or exit", in.Role)
	case in.Source != localdb.SourceQR && in.Source != localdb.SourcePlate:
		return d.deny(ReasonInvalidInput, "source %q: want qr or plate", in.Source)
	case err != nil:
		return d.deny(ReasonInvalidInput, "%v", err)
	case in.Now.IsZero():
		return d.deny(ReasonInvalidInput, "no time given")
	case in.Cache == nil:
		return d.deny(ReasonInvalidInput, "no cache given")
	}
	if !in.ClockTrusted {
		switch {
		case policy == PolicyDeny:
			return d.deny(ReasonClockUntrusted, "the clock is not trusted yet and the offline policy is deny")
		case policy == PolicyExitOnly && in.Role == localdb.RoleEntry:
			return d.deny(ReasonClockUntrusted, "the clock is not trusted yet and the offline policy lets nobody in")
		case in.Role == localdb.RoleEntry && in.Source == localdb.SourcePlate:
			return d.deny(ReasonClockUntrusted, "the clock is not trusted yet: a plate carries no signature, and its window cannot be checked")
		}
	}
	if in.Source == localdb.SourceQR {
		return decideTicket(ctx, &in, d)
	}
	return decidePlate(ctx, &in, d)
}

func decideTicket(ctx context.Context, in *Input, d Decision) Decision {
	if in.Verifier == nil {
		return d.deny(ReasonNoKey, "no ticket public key is configured")
	}
	t, err := in.Verifier.VerifySignature(in.Code)
	if err != nil {
		r := Reason(ticket.ReasonOf(err))
		if r == "" {
			r = ReasonMalformed
		}
		return d.deny(r, "%v", err)
	}
	d.KeyID = t.KeyID
	e, cached, err := in.Cache.Lookup(ctx, t.ReservationID)
	if err != nil {
		return d.deny(ReasonCacheError, "reading the cache: %v", err)
	}
	if !cached {
		// Not synced yet: the signed ticket stands for the reservation.
		e = localdb.Entry{ReservationID: t.ReservationID, SpotID: t.SpotID, From: t.From, Until: t.Until,
			CarID: t.CarID, Plate: plate.Normalize(t.CarID)}
	}
	p, err := in.Cache.Presence(ctx, t.ReservationID)
	if err != nil {
		return d.deny(ReasonCacheError, "reading presence: %v", err)
	}
	return judge(in, d, candidate{e: e, cached: cached, p: p})
}

func decidePlate(ctx context.Context, in *Input, d Decision) Decision {
	plate := plate.Normalize(in.Plate)
	d.Plate = plate
	if plate == "" {
		return d.deny(ReasonUnknownPlate, "empty plate read")
	}
	es, err := in.Cache.ByPlate(ctx, plate)
	if err != nil {
		return d.deny(ReasonCacheError, "reading the cache: %v", err)
	}
	if len(es) == 0 {
		// Not named here: the plate is in d.Plate, which central's
		// retention erases; free text (Detail) would keep it.
		return d.deny(ReasonUnknownPlate, "no reservation for the plate read")
	}
	// Judge every reservation of the plate and take the best outcome:
	// a grant over a denial, then the most relevant reservation by time.
	type judged struct {
		c candidate
		d Decision
	}
	js := make([]judged, 0, len(es))
	for _, e := range es {
		p, err := in.Cache.Presence(ctx, e.ReservationID)
		if err != nil {
			return d.deny(ReasonCacheError, "reading presence: %v", err)
		}
		c := candidate{e: e, cached: true, p: p, plate: true}
		js = append(js, judged{c, judge(in, d, c)})
	}
	ref := in.reference()
	rank := func(j judged) int {
		switch {
		case j.d.Granted && !j.d.PresenceUnknown:
			return 0
		case j.d.Granted:
			return 1
		}
		return 2
	}
	best := slices.MinFunc(js, func(a, b judged) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return relevance(a.c.e, ref, in.Role).compare(relevance(b.c.e, ref, in.Role))
	})
	return best.d
}

// candidate is one reservation a read may stand for.
type candidate struct {
	e      localdb.Entry // from the cache, or made from the ticket
	cached bool          // e came from the cache (and its State is central's)
	p      localdb.Presence
	plate  bool // the read was a plate, not a signed ticket
}

// whereabouts combines presence and central's state: a final "left" wins
// (central saw the exit), then the gate's presence record (the newest
// fact it holds), then central's "taken".
type whereabouts int

const (
	unknown whereabouts = iota
	inside
	out
)

func (c *candidate) where() whereabouts {
	switch {
	case c.cached && c.e.State == localdb.StateLeft:
		return out
	case c.p.Known && c.p.Inside:
		return inside
	case c.p.Known:
		return out
	case c.cached && c.e.State == localdb.StateTaken:
		return inside
	}
	return unknown
}

func judge(in *Input, d Decision, c candidate) Decision {
	e := &c.e
	d.ReservationID, d.SpotID, d.CarID, d.From, d.Until = e.ReservationID, e.SpotID, e.CarID, e.From, e.Until
	if d.Plate == "" {
		d.Plate = plate.Normalize(e.CarID)
	}
	grant := ReasonTicket
	if c.plate {
		grant = ReasonPlate
	}
	if in.Role == localdb.RoleEntry {
		return judgeEntry(in, d, &c, grant)
	}
	return judgeExit(in, d, &c, grant)
}

func judgeEntry(in *Input, d Decision, c *candidate, grant Reason) Decision {
	e := &c.e
	if c.cached {
		switch {
		case e.State.Revoked():
			return d.deny(ReasonRevoked, "reservation %s is %s", e.ReservationID, e.State)
		case e.State == localdb.StateLeft:
			return d.deny(ReasonAlreadyLeft, "the car of reservation %s has already left; the reservation is over", e.ReservationID)
		case c.plate && e.State == localdb.StateReserved:
			return d.deny(ReasonNotPaid, "reservation %s is not paid", e.ReservationID)
		}
	}
	if in.ClockTrusted {
		if opens := e.From.Add(-in.early()); in.Now.Before(opens) {
			return d.deny(ReasonTooEarly, "reservation %s can enter from %s", e.ReservationID, opens.UTC().Format(time.RFC3339))
		}
		if !in.Now.Before(e.Until) {
			return d.deny(ReasonExpired, "reservation %s ended at %s", e.ReservationID, e.Until.UTC().Format(time.RFC3339))
		}
	} else if !in.TimeFloor.IsZero() && !in.TimeFloor.Before(e.Until) {
		return d.deny(ReasonExpired, "reservation %s ended at %s, before the last trusted time %s",
			e.ReservationID, e.Until.UTC().Format(time.RFC3339), in.TimeFloor.UTC().Format(time.RFC3339))
	}
	if c.where() == inside {
		return d.deny(ReasonAlreadyInside, "the car of reservation %s is inside and has not exited", e.ReservationID)
	}
	d.Granted, d.Reason, d.Presence = true, grant, localdb.Entered
	d.Detail = fmt.Sprintf("reservation %s, spot %s", e.ReservationID, e.SpotID)
	if !in.ClockTrusted {
		d.Detail += "; window not checked (clock not trusted)"
	}
	return d
}

func judgeExit(in *Input, d Decision, c *candidate, grant Reason) Decision {
	e := &c.e
	w := c.where()
	switch {
	case c.cached && e.State == localdb.StateLeft:
		return d.deny(ReasonNotInside, "central recorded the car of reservation %s leaving", e.ReservationID)
	case w == inside:
		// A car inside always gets out, even if its reservation was
		// revoked after it entered; the flags tell central the rest.
	case c.cached && e.State.Revoked():
		return d.deny(ReasonRevoked, "reservation %s is %s", e.ReservationID, e.State)
	case w == out:
		return d.deny(ReasonNotInside, "the car of reservation %s already exited at %s", e.ReservationID,
			c.p.At.UTC().Format(time.RFC3339))
	case c.plate && e.State == localdb.StateReserved:
		return d.deny(ReasonNotPaid, "reservation %s is not paid", e.ReservationID)
	case in.StrictExit:
		return d.deny(ReasonNotInside, "the car of reservation %s is not known to be inside", e.ReservationID)
	case in.ClockTrusted && in.Now.Before(e.From.Add(-in.early())):
		return d.deny(ReasonNotInside, "reservation %s starts at %s: it cannot have brought a car in yet",
			e.ReservationID, e.From.UTC().Format(time.RFC3339))
	default:
		d.PresenceUnknown = true
	}
	d.Granted, d.Reason, d.Presence = true, grant, localdb.Exited
	d.Detail = fmt.Sprintf("reservation %s, spot %s", e.ReservationID, e.SpotID)
	if d.PresenceUnknown {
		d.Detail += "; the gate did not know the car was inside"
	}
	if ref := in.reference(); !ref.IsZero() && !ref.Before(e.Until.Add(in.exitGrace())) {
		d.Overstay = true
		d.Detail += fmt.Sprintf("; overstay: the window ended at %s", e.Until.UTC().Format(time.RFC3339))
	}
	return d
}

// rel orders a plate's reservations by how well their window fits the
// time of the read: a window covering it first, then the others by
// distance, in the order that suits the role (at entry the next window
// before past ones, at the exit past ones before future ones).
type rel struct {
	class int
	key   int64
	id    string
}

func (a rel) compare(b rel) int {
	switch {
	case a.class != b.class:
		return a.class - b.class
	case a.key < b.key:
		return -1
	case a.key > b.key:
		return 1
	case a.id < b.id:
		return -1
	case a.id > b.id:
		return 1
	}
	return 0
}

func relevance(e localdb.Entry, t time.Time, role localdb.Role) rel {
	future, past := 1, 2
	if role == localdb.RoleExit {
		future, past = 2, 1
	}
	switch {
	case t.Before(e.From):
		return rel{future, e.From.UnixMicro(), e.ReservationID}
	case !t.Before(e.Until):
		return rel{past, -e.Until.UnixMicro(), e.ReservationID}
	}
	return rel{0, e.From.UnixMicro(), e.ReservationID}
}
