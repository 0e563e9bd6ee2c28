package localdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/parkgate/parkgate/plate"

	"github.com/parkgate/parkgate/internal/sqlitedb"
)

// State is a reservation's state as central reports it. The values are
// centrald's reservation states; the gate keeps its own copy of the words
// rather than import central's packages, which it never runs.
type State string

// The states a cache entry may have.
const (
	// StateReserved: created, not paid. Central does not normally send
	// these to gates; a plate of an unpaid reservation does not open.
	StateReserved State = "reserved"
	// StatePaid: paid, car not in yet (as far as central knows).
	StatePaid State = "paid"
	// StateTaken: the car has checked in (central knows it is inside).
	StateTaken State = "taken"
	// StateLeft: the car has checked out; final.
	StateLeft State = "left"
	// StateExpired: not paid in time; final, a revocation.
	StateExpired State = "expired"
	// StateNoShow: released because the car did not come; final, a
	// revocation.
	StateNoShow State = "no_show"
	// StateCancelled: cancelled by the driver or an operator; final, a
	// revocation.
	StateCancelled State = "cancelled"
)

// Valid reports whether s is one of the known states.
func (s State) Valid() bool {
	switch s {
	case StateReserved, StatePaid, StateTaken, StateLeft, StateExpired, StateNoShow, StateCancelled:
		return true
	}
	return false
}

// Revoked reports whether s takes away a reservation's right to enter:
// cancelled, released as a no-show, or expired. (Left is final too, but it
// means the car has been and gone, which the gate reports differently.)
func (s State) Revoked() bool {
	return s == StateCancelled || s == StateNoShow || s == StateExpired
}

// Final reports whether s can no longer change: the entry is kept only as a
// revocation or as the record that the car left, until Prune drops it.
func (s State) Final() bool { return s.Revoked() || s == StateLeft }

// Entry is one reservation in the cache.
type Entry struct {
	// ReservationID is central's reservation id; the key of the cache.
	ReservationID string
	// SpotID is the reserved spot.
	SpotID string
	// From and Until are the reservation window [From, Until); the gate
	// widens it by the early-arrival grace at entry.
	From, Until time.Time
	// CarID is the licence plate as central stored it.
	CarID string
	// Plate is plate.Normalize(CarID). The cache computes it on write; a
	// value given by the caller is ignored.
	Plate string
	// State is the reservation's state at central.
	State State
	// Version is the cache version that last wrote the entry. Set by the
	// cache on write; ignored on input.
	Version int64
}

// Validate reports what makes e unfit for the cache, in words for the
// operator who fed it.
func (e *Entry) Validate() error {
	switch {
	case e.ReservationID == "":
		return errors.New("reservation id is empty")
	case !printable(e.ReservationID):
		return errors.New("reservation id contains control characters or invalid UTF-8")
	case e.SpotID == "":
		return errors.New("spot id is empty")
	case !printable(e.SpotID):
		return errors.New("spot id contains control characters or invalid UTF-8")
	case !printable(e.CarID):
		return errors.New("car id contains control characters or invalid UTF-8")
	case e.From.IsZero():
		return errors.New("reservedFrom is missing")
	case e.Until.IsZero():
		return errors.New("reservedUntil is missing")
	case !e.Until.After(e.From):
		return fmt.Errorf("reservedUntil %s is not after reservedFrom %s",
			e.Until.UTC().Format(time.RFC3339), e.From.UTC().Format(time.RFC3339))
	case !e.State.Valid():
		return fmt.Errorf("state %q is not one of reserved, paid, taken, left, expired, no_show, cancelled", e.State)
	}
	return nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// ErrVersionGap is what ApplyChange returns (wrapped in a *GapError) when a
// change does not follow the version the cache holds: a change was missed,
// and the sync must ask central for a snapshot.
var ErrVersionGap = errors.New("localdb: version gap")

// GapError says which versions did not fit. errors.Is(err, ErrVersionGap)
// is true for it.
type GapError struct {
	// Held is the cache's version.
	Held int64
	// Prev is the version the change was made on top of.
	Prev int64
	// Version is the change's own version.
	Version int64
}

// Error describes the gap.
func (e *GapError) Error() string {
	return fmt.Sprintf("localdb: version gap: the cache is at version %d, the change %d applies on top of %d",
		e.Held, e.Version, e.Prev)
}

// Is makes errors.Is(err, ErrVersionGap) true.
func (e *GapError) Is(target error) bool { return target == ErrVersionGap }

// Change is one differential update of the cache: the new state of one
// reservation, at a version of central's change log.
type Change struct {
	// Prev is the version the change applies on top of: the version of
	// the previous change central sent this gate (Version-1 when central
	// numbers the gate's changes without holes).
	Prev int64
	// Version is the change's version; greater than Prev.
	Version int64
	// Entry is the reservation as it is after the change. A change to a
	// final state (cancelled, no_show, expired, left) is a revocation and
	// is kept as such.
	Entry Entry
}

// Marker reports whether c only moves the version: central's log has
// versions that concern no gate (a declined payment, an unpaid
// reservation), and the gate must still hold the batch's last version.
func (c Change) Marker() bool { return c.Entry == (Entry{}) }

// ApplySnapshot replaces the whole cache with entries, at version, in one
// transaction: a reader sees the old cache or the new one, never a mix.
// The version is taken as given, even when it is lower than the one held:
// a snapshot is central's word (central may have been restored from a
// backup), and the sync only applies snapshots it asked for. Presence
// records are the gate's own knowledge and stay.
func (db *DB) ApplySnapshot(ctx context.Context, version int64, entries []Entry) error {
	if version < 0 {
		return fmt.Errorf("localdb: snapshot version %d is negative", version)
	}
	seen := make(map[string]int, len(entries))
	for i := range entries {
		e := &entries[i]
		if err := e.Validate(); err != nil {
			return fmt.Errorf("localdb: snapshot entry %d (%q): %w", i+1, e.ReservationID, err)
		}
		if j, dup := seen[e.ReservationID]; dup {
			return fmt.Errorf("localdb: snapshot entries %d and %d are both reservation %q", j, i+1, e.ReservationID)
		}
		seen[e.ReservationID] = i + 1
	}
	return db.sql.Write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM reservations`); err != nil {
			return err
		}
		st, err := tx.PrepareContext(ctx, upsertEntry)
		if err != nil {
			return err
		}
		defer st.Close()
		for i := range entries {
			if _, err := st.ExecContext(ctx, entryArgs(&entries[i], version)...); err != nil {
				return fmt.Errorf("localdb: snapshot entry %q: %w", entries[i].ReservationID, err)
			}
		}
		return setMeta(ctx, tx, "cache_version", version)
	})
}

const upsertEntry = `INSERT INTO reservations (id, spot_id, reserved_from, reserved_until, car_id, plate, state, version)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (id) DO UPDATE SET spot_id = excluded.spot_id, reserved_from = excluded.reserved_from,
		reserved_until = excluded.reserved_until, car_id = excluded.car_id, plate = excluded.plate,
		state = excluded.state, version = excluded.version`

func entryArgs(e *Entry, version int64) []any {
	return []any{e.ReservationID, e.SpotID, e.From.UnixMicro(), e.Until.UnixMicro(), e.CarID,
		plate.Normalize(e.CarID), string(e.State), version}
}

// ApplyChange applies one differential change; see ApplyChanges.
func (db *DB) ApplyChange(ctx context.Context, c Change) (applied bool, err error) {
	n, err := db.ApplyChanges(ctx, c)
	return n == 1, err
}

// ApplyChanges applies differential changes in order, in one transaction.
// A change whose Version is not above the cache's version is old news (a
// retransmission) and is skipped. A change whose Prev is not the cache's
// version means a change was missed: ApplyChanges stops there and returns
// a *GapError (errors.Is(err, ErrVersionGap)); the changes before it are
// applied and counted in n, since they were in order. An invalid change
// fails the whole call and applies nothing. A marker (see Change.Marker)
// moves the version without touching an entry; it is not counted in n.
func (db *DB) ApplyChanges(ctx context.Context, cs ...Change) (n int, err error) {
	for i := range cs {
		c := &cs[i]
		if c.Version <= c.Prev || c.Prev < 0 {
			return 0, fmt.Errorf("localdb: change %d: version %d does not follow %d", i+1, c.Version, c.Prev)
		}
		if c.Marker() {
			continue
		}
		if err := c.Entry.Validate(); err != nil {
			return 0, fmt.Errorf("localdb: change %d (%q, version %d): %w", i+1, c.Entry.ReservationID, c.Version, err)
		}
	}
	var gap error
	err = db.sql.Write(ctx, func(tx *sql.Tx) error {
		n = 0
		held, err := getMeta(ctx, tx, "cache_version")
		if err != nil {
			return err
		}
		start := held
		for i := range cs {
			c := &cs[i]
			if c.Version <= held {
				continue
			}
			if c.Prev != held {
				gap = &GapError{Held: held, Prev: c.Prev, Version: c.Version}
				break
			}
			if c.Marker() {
				held = c.Version
				continue
			}
			if _, err := tx.ExecContext(ctx, upsertEntry, entryArgs(&c.Entry, c.Version)...); err != nil {
				return fmt.Errorf("localdb: change %d (%q): %w", c.Version, c.Entry.ReservationID, err)
			}
			held = c.Version
			n++
		}
		if held == start {
			return nil
		}
		return setMeta(ctx, tx, "cache_version", held)
	})
	if err != nil {
		return 0, err
	}
	return n, gap
}

// Version returns the cache version: the central change-log version of the
// last snapshot or change applied, 0 for an empty cache that never had one.
func (db *DB) Version(ctx context.Context) (int64, error) {
	var v int64
	err := db.sql.QueryRow(ctx, `SELECT value FROM meta WHERE key = 'cache_version'`).Scan(&v)
	return v, err
}

const entryCols = `id, spot_id, reserved_from, reserved_until, car_id, plate, state, version`

func scanEntry(sc sqlitedb.Scanner) (Entry, error) {
	var (
		e           Entry
		from, until sql.NullInt64
		state       string
	)
	err := sc.Scan(&e.ReservationID, &e.SpotID, &from, &until, &e.CarID, &e.Plate, &state, &e.Version)
	e.From, e.Until, e.State = sqlitedb.FromMicros(from), sqlitedb.FromMicros(until), State(state)
	return e, err
}

// Lookup returns the cached entry of a reservation; ok is false when the
// cache does not hold it (not synced yet, or pruned).
func (db *DB) Lookup(ctx context.Context, reservationID string) (e Entry, ok bool, err error) {
	e, err = scanEntry(db.sql.QueryRow(ctx, `SELECT `+entryCols+` FROM reservations WHERE id = ?`, reservationID))
	if errors.Is(err, sql.ErrNoRows) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, err
	}
	return e, true, nil
}

// maxPlateEntries bounds what one plate lookup returns. A car has a handful
// of cached reservations at most (pruning drops old ones); the bound keeps
// a decision cheap even if a feed misbehaves.
const maxPlateEntries = 64

// ByPlate returns the cached entries (any state) whose car has the plate
// p (compared normalised, see package plate), by window start: all of them, or the 64 that end
// last if a plate ever had more. Which of them a plate read means
// (the paid one whose window covers now at entry, the one whose car is
// inside at the exit) is the authorization's rule (package gate/authz),
// which also owns the early-arrival grace; keeping the rule in one place
// keeps entry, exit and their tests consistent.
func (db *DB) ByPlate(ctx context.Context, p string) ([]Entry, error) {
	p = plate.Normalize(p)
	if p == "" {
		return nil, nil
	}
	// The bound keeps the newest windows, which are the ones a read at
	// the lane can be about.
	rows, err := db.sql.Query(ctx, `SELECT `+entryCols+` FROM (SELECT `+entryCols+` FROM reservations
		WHERE plate = ? AND plate <> '' ORDER BY reserved_until DESC LIMIT ?) ORDER BY reserved_from, id`, p, maxPlateEntries)
	if err != nil {
		return nil, err
	}
	return sqlitedb.Collect(rows, scanEntry)
}

// Count returns the number of cached entries, for status and metrics.
func (db *DB) Count(ctx context.Context) (int, error) {
	var n int
	err := db.sql.QueryRow(ctx, `SELECT count(*) FROM reservations`).Scan(&n)
	return n, err
}

// DefaultRetention is how long after its window ended a reservation stays
// in the cache (Prune). Seven days: a revocation must outlive the ticket it
// revokes (after the window the ticket itself says expired, but only on a
// trusted clock, and an exit may come long after an overstay), and a week
// of a site's reservations is a few thousand rows.
const DefaultRetention = 7 * 24 * time.Hour

// Prune deletes what the gate no longer needs, and returns how many rows
// went: cache entries whose window ended more than retention before now
// (DefaultRetention when retention <= 0), unless the car is still inside as
// far as anyone knows (central says taken, or the state is not final and
// this gate saw it enter); and presence records of
// reservations no longer cached whose last change is that old.
//
// now must come from a trusted clock: a clock far in the future would prune
// everything. The daemon calls Prune periodically (e.g. hourly). Pruning
// does not change the cache version, since it removes only what central
// would no longer send.
func (db *DB) Prune(ctx context.Context, now time.Time, retention time.Duration) (int, error) {
	if retention <= 0 {
		retention = DefaultRetention
	}
	cutoff := now.Add(-retention).UnixMicro()
	var n int64
	err := db.sql.Write(ctx, func(tx *sql.Tx) error {
		// A final state wins over a presence record: an entry gate that
		// saw the car in never sees it leave, and central's "left" is the
		// word on it.
		res, err := tx.ExecContext(ctx, `DELETE FROM reservations WHERE reserved_until < ?1 AND state <> 'taken'
			AND (state IN ('left', 'cancelled', 'no_show', 'expired')
				OR id NOT IN (SELECT reservation_id FROM presence WHERE inside = 1))`, cutoff)
		if err != nil {
			return err
		}
		a, _ := res.RowsAffected()
		res, err = tx.ExecContext(ctx, `DELETE FROM presence WHERE changed_at < ?1
			AND reservation_id NOT IN (SELECT id FROM reservations)`, cutoff)
		if err != nil {
			return err
		}
		b, _ := res.RowsAffected()
		n = a + b
		return nil
	})
	return int(n), err
}
