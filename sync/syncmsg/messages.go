package syncmsg

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"
)

// FormatVersion is the payload format version this package reads and
// writes, the "v" of every message. Fields may be added without changing
// it (receivers ignore unknown fields); a change of meaning gets a new one.
const FormatVersion = 1

// Size and count bounds. They are far above what a site produces and keep
// a faulty or hostile peer from making a receiver (a Raspberry Pi at the
// lane) allocate without limit.
const (
	// MaxPayload bounds every message but a snapshot part: a batch of
	// MaxChangesEntries entries or MaxEvents events is a few hundred KiB
	// at most.
	MaxPayload = 1 << 20
	// MaxSnapshotPayload bounds a snapshot part: DefaultPartSize bytes of
	// gzip are 4/3 as many in base64, plus the part's other fields.
	MaxSnapshotPayload = 400 << 10
	// MaxEvents is the most events one Events message carries
	// (docs/sync.md: batches of at most 100).
	MaxEvents = 100
	// MaxAckIDs is the most event ids one Ack carries. Central answers
	// one Events message with one Ack, so 100 would do; the margin lets
	// central merge acknowledgements without a new format version.
	MaxAckIDs = 1000
	// MaxChangesEntries is the most entries one Changes batch carries.
	// The relay reads at most this many change-log entries per batch, so
	// the bound never splits what one read returned.
	MaxChangesEntries = 1000
)

// Errors the decoders and encoders return, wrapped with the details;
// test with errors.Is.
var (
	// ErrVersion: the payload's "v" is missing or not FormatVersion. The
	// error is a *VersionError naming the version.
	ErrVersion = errors.New("syncmsg: unsupported payload format version")
	// ErrTooLarge: the payload is over the size bound of its message.
	ErrTooLarge = errors.New("syncmsg: payload too large")
	// ErrInvalid: the payload is not the message's JSON, or a field is
	// missing or out of range.
	ErrInvalid = errors.New("syncmsg: invalid message")
)

// VersionError is a payload whose format version this build does not
// read. errors.Is(err, ErrVersion) is true for it.
type VersionError struct {
	// Got is the "v" as it appeared in the payload (JSON text, cut to 32
	// bytes), or "" when there was none.
	Got string
}

// Error names the version, so that an operator sees at once that a peer
// runs a newer (or older) release.
func (e *VersionError) Error() string {
	if e.Got == "" {
		return fmt.Sprintf(`syncmsg: payload has no "v" format version (this build reads "v":%d)`, FormatVersion)
	}
	return fmt.Sprintf(`syncmsg: payload format version "v":%s is not supported (this build reads "v":%d)`, e.Got, FormatVersion)
}

// Is makes errors.Is(err, ErrVersion) true.
func (e *VersionError) Is(target error) bool { return target == ErrVersion }

// Roles of a gate's lane.
const (
	// RoleEntry lets cars in.
	RoleEntry = "entry"
	// RoleExit lets cars out.
	RoleExit = "exit"
)

// ---- central status ----

// CentralStatus is central's retained presence on CentralStatus(): a birth
// {"v":1,"online":true,"session":S,"version":V,"at":T}, or the will
// {"v":1,"online":false,"session":S}. Session lets a gate tell a restart
// of central from a repeat of the same birth.
type CentralStatus struct {
	// V is the format version; encoders set it.
	V int `json:"v"`
	// Online says whether this is a birth (true) or the will (false).
	Online bool `json:"online"`
	// Session counts central's connections; 1 or more.
	Session int64 `json:"session"`
	// Version is the change log's latest version (birth only).
	Version int64 `json:"version"`
	// At is when central published the birth (birth only).
	At time.Time `json:"at"`
}

// MarshalJSON writes a will without the birth's fields, so that a will
// never claims a version or a time.
func (s CentralStatus) MarshalJSON() ([]byte, error) {
	if !s.Online {
		return json.Marshal(struct {
			V       int   `json:"v"`
			Online  bool  `json:"online"`
			Session int64 `json:"session"`
		}{s.V, false, s.Session})
	}
	type plain CentralStatus
	return json.Marshal(plain(s))
}

func (s *CentralStatus) validate() error {
	if s.Session < 1 {
		return invalid("central status: session %d: want 1 or more", s.Session)
	}
	if !s.Online {
		return nil
	}
	if s.Version < 0 {
		return invalid("central status: version %d is negative", s.Version)
	}
	if s.At.IsZero() {
		return invalid("central status: at is missing")
	}
	return nil
}

// EncodeCentralStatus returns the payload of s, with "v" set.
func EncodeCentralStatus(s CentralStatus) ([]byte, error) {
	s.V = FormatVersion
	return encode(&s)
}

// DecodeCentralStatus reads a central status payload.
func DecodeCentralStatus(b []byte) (CentralStatus, error) {
	var s CentralStatus
	if err := decode(b, MaxPayload, "central status", &s); err != nil {
		return CentralStatus{}, err
	}
	return s, nil
}

// ---- changes ----

// State is a reservation's state as gates are told it. Only states of
// reservations that were paid travel: the two that admit and the three
// that revoke.
type State string

// The states an Entry may have.
const (
	// StatePaid: paid, the car not in yet; a ticket or plate admits.
	StatePaid State = "paid"
	// StateTaken: the car has checked in.
	StateTaken State = "taken"
	// StateLeft: the car has checked out.
	StateLeft State = "left"
	// StateCancelled: cancelled after payment; a revocation.
	StateCancelled State = "cancelled"
	// StateNoShow: released because the car did not come; a revocation.
	StateNoShow State = "no_show"
)

// Valid reports whether s is one of the five states gates are sent.
func (s State) Valid() bool {
	switch s {
	case StatePaid, StateTaken, StateLeft, StateCancelled, StateNoShow:
		return true
	}
	return false
}

// Entry is one reservation as a gate caches it.
type Entry struct {
	// ID is central's reservation id.
	ID string `json:"id"`
	// SpotID is the reserved spot.
	SpotID string `json:"spotId"`
	// From and Until are the reservation window [From, Until).
	From  time.Time `json:"reservedFrom"`
	Until time.Time `json:"reservedUntil"`
	// CarID is the licence plate as central stored it ("" when none).
	CarID string `json:"carId"`
	// State is the reservation's state at central.
	State State `json:"state"`
}

// Bounds of an entry's text fields. Central's own limits are tighter
// (16-character reservation ids and plates, 32-character spot ids); the
// margin lets central relax them without breaking gates.
const (
	maxIDLen   = 64
	maxSpotLen = 64
	maxCarLen  = 64
)

func (e *Entry) validate() error {
	if err := checkText("id", e.ID, maxIDLen, true); err != nil {
		return err
	}
	if err := checkText("spotId", e.SpotID, maxSpotLen, true); err != nil {
		return err
	}
	if err := checkText("carId", e.CarID, maxCarLen, false); err != nil {
		return err
	}
	switch {
	case e.From.IsZero():
		return errors.New("reservedFrom is missing")
	case e.Until.IsZero():
		return errors.New("reservedUntil is missing")
	case !e.Until.After(e.From):
		return fmt.Errorf("reservedUntil %s is not after reservedFrom %s",
			e.Until.UTC().Format(time.RFC3339), e.From.UTC().Format(time.RFC3339))
	case !e.State.Valid():
		return fmt.Errorf("state %q: want paid, taken, left, cancelled or no_show", e.State)
	}
	return nil
}

// VersionedEntry is one entry of a Changes batch: the reservation as it is
// after the change-log entry Version.
type VersionedEntry struct {
	// Version is the change-log version that produced the entry.
	Version int64 `json:"version"`
	// Entry is the reservation after that change.
	Entry Entry `json:"entry"`
}

// Changes is a batch of differential updates on Changes(): it covers the
// change-log versions (From, To]; versions that concern no gate are
// covered without an entry. From == To is the heartbeat, which tells the
// latest version when nothing changed.
type Changes struct {
	// V is the format version; encoders set it.
	V int `json:"v"`
	// From is the version the batch applies on top of.
	From int64 `json:"from"`
	// To is the version a gate holds after applying the batch.
	To int64 `json:"to"`
	// Entries are the gate-relevant changes, in version order, each
	// within (From, To].
	Entries []VersionedEntry `json:"entries,omitempty"`
}

// Heartbeat returns the empty batch {"v":1,"from":V,"to":V} that central
// sends every 10 s.
func Heartbeat(version int64) Changes {
	return Changes{V: FormatVersion, From: version, To: version}
}

// IsHeartbeat reports whether c is a heartbeat (it covers no version). A
// gate behind a heartbeat asks for a resync with ReasonStale, behind a
// batch with ReasonGap.
func (c Changes) IsHeartbeat() bool { return c.From == c.To }

// Above returns the part of c above have, for a gate holding a version
// inside the batch (From < have < To): the batch (have, To] with the
// entries whose version is above have. The versions up to have are in the
// gate's cache already, and an entry is a reservation's full state, so
// applying the rest on top of have gives what applying all of c on top of
// From gives. For any other have, c is returned as it is.
func (c Changes) Above(have int64) Changes {
	if have <= c.From || have >= c.To {
		return c
	}
	out := Changes{V: c.V, From: have, To: c.To}
	for _, ve := range c.Entries {
		if ve.Version > have {
			out.Entries = append(out.Entries, ve)
		}
	}
	return out
}

func (c *Changes) validate() error {
	switch {
	case c.From < 0:
		return invalid("changes: from %d is negative", c.From)
	case c.From > c.To:
		return invalid("changes: from %d is after to %d", c.From, c.To)
	case len(c.Entries) > MaxChangesEntries:
		return invalid("changes: %d entries, more than %d", len(c.Entries), MaxChangesEntries)
	}
	prev := c.From
	for i := range c.Entries {
		ve := &c.Entries[i]
		if ve.Version <= prev || ve.Version > c.To {
			return invalid("changes: entry %d has version %d: want increasing versions within (%d, %d]",
				i+1, ve.Version, c.From, c.To)
		}
		prev = ve.Version
		if err := ve.Entry.validate(); err != nil {
			return invalid("changes: entry %d (version %d, %q): %v", i+1, ve.Version, ve.Entry.ID, err)
		}
	}
	return nil
}

// EncodeChanges returns the payload of c, with "v" set.
func EncodeChanges(c Changes) ([]byte, error) {
	c.V = FormatVersion
	return encode(&c)
}

// DecodeChanges reads a Changes payload.
func DecodeChanges(b []byte) (Changes, error) {
	var c Changes
	if err := decode(b, MaxPayload, "changes", &c); err != nil {
		return Changes{}, err
	}
	return c, nil
}

// ---- gate status ----

// GateStatus is a gate's retained presence on GateStatus(gate): a birth
// {"v":1,"online":true,"session":S,"gateId",…,"at"} or the will
// {"v":1,"online":false,"session":S,"gateId"}. Central ignores a will whose
// session is older than the latest birth's, so a late will cannot mark a
// newer connection offline. Central must also check that GateID is the
// gate of the topic.
type GateStatus struct {
	// V is the format version; encoders set it.
	V int `json:"v"`
	// Online says whether this is a birth (true) or the will (false).
	Online bool `json:"online"`
	// Session is the gate's connection counter, kept in its database;
	// 1 or more.
	Session int64 `json:"session"`
	// GateID is the gate's id (ValidID).
	GateID string `json:"gateId"`
	// Role is RoleEntry or RoleExit (birth only).
	Role string `json:"role"`
	// Software is the gate's release (birth only).
	Software string `json:"software"`
	// CacheVersion is the version the gate's cache holds (birth only).
	CacheVersion int64 `json:"cacheVersion"`
	// Outbox is the number of unacknowledged events (birth only).
	Outbox int64 `json:"outbox"`
	// Barrier is the barrier's state word, e.g. closed, open, fault
	// (birth only).
	Barrier string `json:"barrier"`
	// ClockTrusted says whether the gate's clock is trusted (birth only).
	ClockTrusted bool `json:"clockTrusted"`
	// Faults are the gate's active faults, at most MaxFaults (birth only;
	// encoded as [] when there are none, and a birth without the field,
	// from an older gate, has none).
	Faults []GateFault `json:"faults"`
	// At is when the gate published the birth (birth only).
	At time.Time `json:"at"`
}

// MaxFaults is the most faults one gate status carries.
const MaxFaults = 32

// GateFault is one active fault of a gate (gate/faults): a kind word, the
// last error as a sentence, when it was raised and last reported.
type GateFault struct {
	Kind  string    `json:"kind"`
	Error string    `json:"error"`
	Since time.Time `json:"since"`
	At    time.Time `json:"at"`
}

// MarshalJSON writes a will without the birth's fields, so that a will
// never claims a cache version or an outbox depth.
func (s GateStatus) MarshalJSON() ([]byte, error) {
	if !s.Online {
		return json.Marshal(struct {
			V       int    `json:"v"`
			Online  bool   `json:"online"`
			Session int64  `json:"session"`
			GateID  string `json:"gateId"`
		}{s.V, false, s.Session, s.GateID})
	}
	if s.Faults == nil {
		s.Faults = []GateFault{}
	}
	type plain GateStatus
	return json.Marshal(plain(s))
}

func (s *GateStatus) validate() error {
	if s.Session < 1 {
		return invalid("gate status: session %d: want 1 or more", s.Session)
	}
	if err := ValidID(s.GateID); err != nil {
		return invalid("gate status: gateId: %v", err)
	}
	if !s.Online {
		return nil
	}
	switch {
	case s.Role != RoleEntry && s.Role != RoleExit:
		return invalid("gate status: role %q: want entry or exit", s.Role)
	case s.CacheVersion < 0:
		return invalid("gate status: cacheVersion %d is negative", s.CacheVersion)
	case s.Outbox < 0:
		return invalid("gate status: outbox %d is negative", s.Outbox)
	case s.At.IsZero():
		return invalid("gate status: at is missing")
	}
	if err := checkText("software", s.Software, 64, false); err != nil {
		return invalid("gate status: %v", err)
	}
	if err := checkText("barrier", s.Barrier, 32, false); err != nil {
		return invalid("gate status: %v", err)
	}
	if len(s.Faults) > MaxFaults {
		return invalid("gate status: %d faults: want at most %d", len(s.Faults), MaxFaults)
	}
	for i, f := range s.Faults {
		if err := checkText("kind", f.Kind, 32, true); err != nil {
			return invalid("gate status: fault %d: %v", i, err)
		}
		if err := checkText("error", f.Error, 256, false); err != nil {
			return invalid("gate status: fault %d: %v", i, err)
		}
		if f.Since.IsZero() || f.At.IsZero() {
			return invalid("gate status: fault %d (%s): since and at are required", i, f.Kind)
		}
	}
	return nil
}

// EncodeGateStatus returns the payload of s, with "v" set.
func EncodeGateStatus(s GateStatus) ([]byte, error) {
	s.V = FormatVersion
	return encode(&s)
}

// DecodeGateStatus reads a gate status payload.
func DecodeGateStatus(b []byte) (GateStatus, error) {
	var s GateStatus
	if err := decode(b, MaxPayload, "gate status", &s); err != nil {
		return GateStatus{}, err
	}
	return s, nil
}

// ---- events ----

// Event is one outbox record of a gate as it travels to central: the
// fields of gate/localdb's Event but the gate id, which the topic carries.
type Event struct {
	// EventID is unique per event; central stores events idempotently on
	// it.
	EventID string `json:"eventId"`
	// Seq is the gate's sequence number, increasing.
	Seq int64 `json:"seq"`
	// Kind is the sort of event (decision, barrier_fault); central stores
	// an event of a kind it does not know as an exception.
	Kind string `json:"kind"`
	// Role is the lane's role, RoleEntry or RoleExit.
	Role string `json:"role"`
	// Time is when the lane decided or saw it, by the gate's clock.
	Time time.Time `json:"time"`
	// Source is what triggered it (qr, plate, remote, manual), "" when no
	// read did.
	Source string `json:"source,omitempty"`
	// Granted and Reason are the decision and its stable reason word.
	Granted bool   `json:"granted"`
	Reason  string `json:"reason,omitempty"`
	// ReservationID, SpotID and CarID identify the reservation the event
	// is about ("" when none).
	ReservationID string `json:"reservationId,omitempty"`
	SpotID        string `json:"spotId,omitempty"`
	CarID         string `json:"carId,omitempty"`
	// Overstay flags an exit after the reservation's end.
	Overstay bool `json:"overstay"`
	// PresenceUnknown flags an exit of a car the gate did not know to be
	// inside.
	PresenceUnknown bool `json:"presenceUnknown"`
	// ClockTrusted says whether Time came from a trusted clock.
	ClockTrusted bool `json:"clockTrusted"`
	// Plate is the normalised plate that was read, which for a denied
	// plate is the only trace of the car.
	Plate string `json:"plate,omitempty"`
	// Detail is free text for a person.
	Detail string `json:"detail,omitempty"`
}

// maxEventIDLen is gate/localdb's bound on event ids.
const maxEventIDLen = 128

func (ev *Event) validate() error {
	if err := checkToken("eventId", ev.EventID, maxEventIDLen); err != nil {
		return err
	}
	switch {
	case ev.Seq < 1:
		return fmt.Errorf("seq %d: want 1 or more", ev.Seq)
	case ev.Role != RoleEntry && ev.Role != RoleExit:
		return fmt.Errorf("role %q: want entry or exit", ev.Role)
	case ev.Time.IsZero():
		return errors.New("time is missing")
	}
	for _, f := range []struct {
		name, v  string
		max      int
		required bool
	}{
		{"kind", ev.Kind, 32, true},
		{"source", ev.Source, 32, false},
		{"reason", ev.Reason, 64, false},
		{"reservationId", ev.ReservationID, maxIDLen, false},
		{"spotId", ev.SpotID, maxSpotLen, false},
		{"carId", ev.CarID, maxCarLen, false},
		{"plate", ev.Plate, maxCarLen, false},
		{"detail", ev.Detail, 1024, false},
	} {
		if err := checkText(f.name, f.v, f.max, f.required); err != nil {
			return err
		}
	}
	return nil
}

// Events is a batch of outbox events on Events(gate), in Seq order.
type Events struct {
	// V is the format version; encoders set it.
	V int `json:"v"`
	// Events are 1 to MaxEvents events, Seq increasing, ids distinct.
	Events []Event `json:"events"`
}

func (m *Events) validate() error {
	switch {
	case len(m.Events) == 0:
		return invalid("events: no events")
	case len(m.Events) > MaxEvents:
		return invalid("events: %d events, more than %d", len(m.Events), MaxEvents)
	}
	ids := make(map[string]struct{}, len(m.Events))
	for i := range m.Events {
		ev := &m.Events[i]
		if err := ev.validate(); err != nil {
			return invalid("events: event %d (%q): %v", i+1, ev.EventID, err)
		}
		if i > 0 && ev.Seq <= m.Events[i-1].Seq {
			return invalid("events: event %d has seq %d after seq %d: want increasing", i+1, ev.Seq, m.Events[i-1].Seq)
		}
		if _, dup := ids[ev.EventID]; dup {
			return invalid("events: event id %q appears twice", ev.EventID)
		}
		ids[ev.EventID] = struct{}{}
	}
	return nil
}

// EncodeEvents returns the payload of m, with "v" set.
func EncodeEvents(m Events) ([]byte, error) {
	m.V = FormatVersion
	return encode(&m)
}

// DecodeEvents reads an Events payload.
func DecodeEvents(b []byte) (Events, error) {
	var m Events
	if err := decode(b, MaxPayload, "events", &m); err != nil {
		return Events{}, err
	}
	return m, nil
}

// ---- sync request ----

// Reasons of a SyncRequest. Central answers every request the same way
// and only logs the reason, so decoders accept any short word: a newer
// gate may give a reason this build does not know.
const (
	// ReasonStart: the gate (re)connected and wants a cache it can trust.
	ReasonStart = "start"
	// ReasonGap: a batch did not follow the version the gate holds.
	ReasonGap = "gap"
	// ReasonStale: a heartbeat says central is ahead of the gate.
	ReasonStale = "stale"
	// ReasonCommand: central's resync command asked for it, so that
	// central's log tells a requested resync from a repair.
	ReasonCommand = "command"
)

// SyncRequest asks central for a snapshot, on Sync(gate).
type SyncRequest struct {
	// V is the format version; encoders set it.
	V int `json:"v"`
	// ID identifies the request (the gate's choice); central echoes it
	// in the snapshot that answers it (SnapshotPart.Request).
	ID string `json:"id"`
	// Have is the version the gate's cache holds.
	Have int64 `json:"have"`
	// Reason says why (ReasonStart, ReasonGap, ReasonStale, …).
	Reason string `json:"reason"`
}

func (r *SyncRequest) validate() error {
	if err := checkToken("id", r.ID, 64); err != nil {
		return invalid("sync request: %v", err)
	}
	if r.Have < 0 {
		return invalid("sync request: have %d is negative", r.Have)
	}
	if err := checkWord("reason", r.Reason); err != nil {
		return invalid("sync request: %v", err)
	}
	return nil
}

// EncodeSyncRequest returns the payload of r, with "v" set.
func EncodeSyncRequest(r SyncRequest) ([]byte, error) {
	r.V = FormatVersion
	return encode(&r)
}

// DecodeSyncRequest reads a SyncRequest payload.
func DecodeSyncRequest(b []byte) (SyncRequest, error) {
	var r SyncRequest
	if err := decode(b, MaxPayload, "sync request", &r); err != nil {
		return SyncRequest{}, err
	}
	return r, nil
}

// ---- ack ----

// Ack tells a gate, on Ack(gate), which events central has stored; the
// gate deletes exactly those from its outbox.
type Ack struct {
	// V is the format version; encoders set it.
	V int `json:"v"`
	// EventIDs are 1 to MaxAckIDs event ids.
	EventIDs []string `json:"eventIds"`
}

func (a *Ack) validate() error {
	switch {
	case len(a.EventIDs) == 0:
		return invalid("ack: no event ids")
	case len(a.EventIDs) > MaxAckIDs:
		return invalid("ack: %d event ids, more than %d", len(a.EventIDs), MaxAckIDs)
	}
	for i, id := range a.EventIDs {
		if err := checkToken("eventId", id, maxEventIDLen); err != nil {
			return invalid("ack: event id %d: %v", i+1, err)
		}
	}
	return nil
}

// EncodeAck returns the payload of a, with "v" set.
func EncodeAck(a Ack) ([]byte, error) {
	a.V = FormatVersion
	return encode(&a)
}

// DecodeAck reads an Ack payload.
func DecodeAck(b []byte) (Ack, error) {
	var a Ack
	if err := decode(b, MaxPayload, "ack", &a); err != nil {
		return Ack{}, err
	}
	return a, nil
}

// ---- command and result ----

// Command types.
const (
	// CmdOpen opens the barrier once (an operator's remote open).
	CmdOpen = "open"
	// CmdResync makes the gate request a snapshot.
	CmdResync = "resync"
)

// Command is an instruction from central on Cmd(gate). It is never
// retained; the gate executes it only before Expires on a trusted clock
// and only once per ID, and answers with a Result.
type Command struct {
	// V is the format version; encoders set it.
	V int `json:"v"`
	// ID identifies the command; the gate answers and de-duplicates by it.
	ID string `json:"id"`
	// Type is CmdOpen or CmdResync.
	Type string `json:"type"`
	// Expires is when the command stops being valid.
	Expires time.Time `json:"expires"`
	// Reason is free text for the record (who asked and why).
	Reason string `json:"reason,omitempty"`
}

// Expired reports whether c must no longer be executed at now, which must
// come from a trusted clock.
func (c Command) Expired(now time.Time) bool { return !now.Before(c.Expires) }

func (c *Command) validate() error {
	if err := checkToken("id", c.ID, 64); err != nil {
		return invalid("command: %v", err)
	}
	if c.Type != CmdOpen && c.Type != CmdResync {
		return invalid("command %q: type %q: want open or resync", c.ID, c.Type)
	}
	if c.Expires.IsZero() {
		return invalid("command %q: expires is missing", c.ID)
	}
	if err := checkText("reason", c.Reason, 256, false); err != nil {
		return invalid("command %q: %v", c.ID, err)
	}
	return nil
}

// EncodeCommand returns the payload of c, with "v" set.
func EncodeCommand(c Command) ([]byte, error) {
	c.V = FormatVersion
	return encode(&c)
}

// DecodeCommand reads a Command payload. Unlike the other decoders it
// returns, with a validation error, the command as far as it was decoded:
// a gate given a command it cannot run (say, an unknown type from a newer
// central) can still answer its ID with a failed Result rather than leave
// the operator waiting.
func DecodeCommand(b []byte) (Command, error) {
	var c Command
	err := decode(b, MaxPayload, "command", &c)
	return c, err
}

// The error words of a failed Result that central and operators rely on.
const (
	// RefusedExpired: the command arrived after its expiry.
	RefusedExpired = "expired"
	// RefusedDuplicate: the gate had already seen the command's id.
	RefusedDuplicate = "duplicate"
	// RefusedUnknownType: the gate does not know the command's type.
	RefusedUnknownType = "unknown_type"
	// RefusedClockUntrusted: the gate cannot check the expiry because its
	// clock is not trusted yet.
	RefusedClockUntrusted = "clock_untrusted"
)

// Result answers a Command, on Result(gate).
type Result struct {
	// V is the format version; encoders set it.
	V int `json:"v"`
	// ID is the command's id.
	ID string `json:"id"`
	// OK says whether the command was executed.
	OK bool `json:"ok"`
	// Error says why not (a Refused* word or a message); "" when OK.
	Error string `json:"error,omitempty"`
}

func (r *Result) validate() error {
	if err := checkToken("id", r.ID, 64); err != nil {
		return invalid("result: %v", err)
	}
	if !r.OK && r.Error == "" {
		return invalid("result %q: a failure needs an error", r.ID)
	}
	if err := checkText("error", r.Error, 1024, false); err != nil {
		return invalid("result %q: %v", r.ID, err)
	}
	return nil
}

// EncodeResult returns the payload of r, with "v" set.
func EncodeResult(r Result) ([]byte, error) {
	r.V = FormatVersion
	return encode(&r)
}

// DecodeResult reads a Result payload.
func DecodeResult(b []byte) (Result, error) {
	var r Result
	if err := decode(b, MaxPayload, "result", &r); err != nil {
		return Result{}, err
	}
	return r, nil
}

// ---- snapshot part (cutting and assembling: snapshot.go) ----

// SnapshotPart is one part of a snapshot, on Snapshot(gate): the
// gzip-compressed JSON array of every Entry at Version, cut into Parts
// parts. Gzip is base64 in JSON (encoding/json's []byte form).
type SnapshotPart struct {
	// V is the format version; encoders set it.
	V int `json:"v"`
	// ID names the snapshot; every part of one snapshot carries it.
	ID string `json:"id"`
	// Version is the change-log version the snapshot stands for.
	Version int64 `json:"version"`
	// Part is this part's number, 1 to Parts.
	Part int `json:"part"`
	// Parts is the number of parts, 1 to MaxParts.
	Parts int `json:"parts"`
	// Count is the number of entries in the whole snapshot.
	Count int `json:"count"`
	// Gzip is this part's share of the compressed array, at most
	// DefaultPartSize bytes: the compressed bytes are cut first and each
	// slice is base64-encoded on its own, so a receiver decodes every
	// part and joins the bytes (never the base64 text).
	Gzip []byte `json:"gzip"`
	// Request is the id of the sync request this snapshot answers (every
	// part carries it), so that a gate that asked again can tell which
	// request an answer belongs to. "" from a central that does not echo
	// it, and in a snapshot nobody asked for.
	Request string `json:"request,omitempty"`
}

func (p *SnapshotPart) validate() error {
	if err := checkToken("id", p.ID, 64); err != nil {
		return invalid("snapshot part: %v", err)
	}
	if p.Request != "" {
		if err := checkToken("request", p.Request, 64); err != nil {
			return invalid("snapshot %q: %v", p.ID, err)
		}
	}
	switch {
	case p.Version < 0:
		return invalid("snapshot %q: version %d is negative", p.ID, p.Version)
	case p.Parts < 1 || p.Parts > MaxParts:
		return invalid("snapshot %q: parts %d: want 1 to %d", p.ID, p.Parts, MaxParts)
	case p.Part < 1 || p.Part > p.Parts:
		return invalid("snapshot %q: part %d: want 1 to %d", p.ID, p.Part, p.Parts)
	case p.Count < 0 || p.Count > MaxSnapshotEntries:
		return invalid("snapshot %q: count %d: want 0 to %d", p.ID, p.Count, MaxSnapshotEntries)
	case len(p.Gzip) == 0:
		return invalid("snapshot %q: part %d has no data", p.ID, p.Part)
	case len(p.Gzip) > DefaultPartSize:
		return invalid("snapshot %q: part %d has %d bytes, more than %d", p.ID, p.Part, len(p.Gzip), DefaultPartSize)
	}
	return nil
}

// EncodeSnapshotPart returns the payload of p, with "v" set.
func EncodeSnapshotPart(p SnapshotPart) ([]byte, error) {
	p.V = FormatVersion
	return encode(&p)
}

// DecodeSnapshotPart reads a snapshot part payload (at most
// MaxSnapshotPayload bytes). Give the result to an Assembler.
func DecodeSnapshotPart(b []byte) (SnapshotPart, error) {
	var p SnapshotPart
	if err := decode(b, MaxSnapshotPayload, "snapshot part", &p); err != nil {
		return SnapshotPart{}, err
	}
	return p, nil
}

// ---- shared machinery ----

// message is what every payload type implements.
type message interface{ validate() error }

func encode(m message) ([]byte, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// decode checks the size and the version, unmarshals b into m and
// validates it. The Decode functions return the zero message with an
// error, so that callers never act on half a message.
func decode(b []byte, limit int, what string, m message) error {
	if len(b) > limit {
		return fmt.Errorf("%w: %s of %d bytes, more than %d", ErrTooLarge, what, len(b), limit)
	}
	if err := checkVersion(b, what); err != nil {
		return err
	}
	if err := json.Unmarshal(b, m); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrInvalid, what, err)
	}
	return m.validate()
}

// checkVersion reads only "v", before the rest, so that a payload of
// another format version is reported as such rather than as whatever
// field of the new format fails to parse.
func checkVersion(b []byte, what string) error {
	var probe struct {
		V json.RawMessage `json:"v"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return fmt.Errorf("%w: %s: not a JSON object: %v", ErrInvalid, what, err)
	}
	v := bytes.TrimSpace(probe.V)
	switch {
	case len(v) == 0 || string(v) == "null":
		return &VersionError{}
	case string(v) != "1":
		if len(v) > 32 {
			v = v[:32]
		}
		return &VersionError{Got: string(v)}
	}
	return nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// checkText accepts valid UTF-8 without control characters, at most max
// bytes; required says whether "" is refused. Control characters in an id
// or plate would corrupt logs and terminals downstream.
func checkText(name, s string, max int, required bool) error {
	switch {
	case s == "" && required:
		return fmt.Errorf("%s is empty", name)
	case len(s) > max:
		return fmt.Errorf("%s is longer than %d bytes", name, max)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s is not valid UTF-8", name)
	case containsControl(s):
		return fmt.Errorf("%s contains control characters", name)
	}
	return nil
}

func containsControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// checkToken accepts 1 to max printable ASCII characters without spaces:
// the form of the ids the protocol de-duplicates on, which end up as
// database keys and log fields.
func checkToken(name, s string, max int) error {
	if s == "" {
		return fmt.Errorf("%s is empty", name)
	}
	if len(s) > max {
		return fmt.Errorf("%s is longer than %d characters", name, max)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return fmt.Errorf("%s must be printable ASCII without spaces", name)
		}
	}
	return nil
}

// checkWord accepts 1 to 32 lower-case letters, digits and '_'.
func checkWord(name, s string) error {
	if s == "" || len(s) > 32 {
		return fmt.Errorf("%s %q: want 1-32 lower-case letters, digits or '_'", name, s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return fmt.Errorf("%s %q: want 1-32 lower-case letters, digits or '_'", name, s)
		}
	}
	return nil
}
