package localdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/parkgate/parkgate/internal/sqlitedb"
)

// Presence is what the gate knows about whether a reservation's car is
// inside the car park.
type Presence struct {
	// Known is false when the gate has no record for the reservation: the
	// car may or may not be inside (it may have entered through another
	// lane while central was out of reach).
	Known bool
	// Inside is the newest fact: the car entered (true) or left (false).
	Inside bool
	// At is the time of that newest fact.
	At time.Time
	// EnteredAt and ExitedAt are the latest entry and exit known (zero
	// when none).
	EnteredAt, ExitedAt time.Time
}

// PresenceChange is what a recorded decision does to presence.
type PresenceChange int

// The presence changes Record can commit with an event.
const (
	// NoPresenceChange: a denial, a fault, anything that moved no car.
	NoPresenceChange PresenceChange = iota
	// Entered: the car of the event's reservation is let in.
	Entered
	// Exited: the car of the event's reservation is let out.
	Exited
)

// String returns "none", "entered" or "exited".
func (c PresenceChange) String() string {
	switch c {
	case NoPresenceChange:
		return "none"
	case Entered:
		return "entered"
	case Exited:
		return "exited"
	}
	return fmt.Sprintf("PresenceChange(%d)", int(c))
}

// MarkEntered records that the reservation's car entered at at, as reported
// by central (the sync) or an operator. Reports can arrive late and out of
// order, so a report older than the newest fact held only fills in
// EnteredAt and does not flip Inside. The gate's own decisions go through
// Record, which commits the event and the presence change together.
func (db *DB) MarkEntered(ctx context.Context, reservationID string, at time.Time) error {
	return db.mark(ctx, reservationID, at, true)
}

// MarkExited records that the reservation's car left at at; see
// MarkEntered.
func (db *DB) MarkExited(ctx context.Context, reservationID string, at time.Time) error {
	return db.mark(ctx, reservationID, at, false)
}

func (db *DB) mark(ctx context.Context, id string, at time.Time, inside bool) error {
	if id == "" {
		return errors.New("localdb: presence needs a reservation id")
	}
	if at.IsZero() {
		return errors.New("localdb: presence needs a time")
	}
	return db.sql.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, mergePresence(inside), id, at.UnixMicro())
		return err
	})
}

// mergePresence is the upsert of a reported fact: the times keep their
// maximum, and inside follows the fact only when it is not older than the
// one that set it.
func mergePresence(inside bool) string {
	col, flag := "exited_at", "0"
	if inside {
		col, flag = "entered_at", "1"
	}
	return `INSERT INTO presence (reservation_id, inside, changed_at, ` + col + `) VALUES (?1, ` + flag + `, ?2, ?2)
		ON CONFLICT (reservation_id) DO UPDATE SET
			inside = CASE WHEN excluded.changed_at >= presence.changed_at THEN excluded.inside ELSE presence.inside END,
			changed_at = max(presence.changed_at, excluded.changed_at),
			` + col + ` = max(coalesce(presence.` + col + `, excluded.` + col + `), excluded.` + col + `)`
}

// observePresence is the upsert of the gate's own observation: what the
// lane just did is the freshest fact there is, whatever the timestamps say
// (the clock may be untrusted and behind).
func observePresence(inside bool) string {
	col, flag := "exited_at", "0"
	if inside {
		col, flag = "entered_at", "1"
	}
	return `INSERT INTO presence (reservation_id, inside, changed_at, ` + col + `) VALUES (?1, ` + flag + `, ?2, ?2)
		ON CONFLICT (reservation_id) DO UPDATE SET inside = excluded.inside, changed_at = excluded.changed_at,
			` + col + ` = excluded.` + col
}

// Presence returns what the gate knows about a reservation's car.
func (db *DB) Presence(ctx context.Context, reservationID string) (Presence, error) {
	var (
		p                        Presence
		changed, entered, exited sql.NullInt64
	)
	err := db.sql.QueryRow(ctx, `SELECT inside, changed_at, entered_at, exited_at FROM presence WHERE reservation_id = ?`,
		reservationID).Scan(&p.Inside, &changed, &entered, &exited)
	if errors.Is(err, sql.ErrNoRows) {
		return Presence{}, nil
	}
	if err != nil {
		return Presence{}, err
	}
	p.Known = true
	p.At, p.EnteredAt, p.ExitedAt = sqlitedb.FromMicros(changed), sqlitedb.FromMicros(entered), sqlitedb.FromMicros(exited)
	return p, nil
}

// Inside reports whether the gate knows the reservation's car to be inside,
// and since when. False covers both "known out" and "not known"; use
// Presence to tell them apart.
func (db *DB) Inside(ctx context.Context, reservationID string) (bool, time.Time, error) {
	p, err := db.Presence(ctx, reservationID)
	if err != nil || !p.Inside {
		return false, time.Time{}, err
	}
	return true, p.EnteredAt, nil
}

// InsideCount returns how many reservations the gate knows to be inside,
// for status and metrics.
func (db *DB) InsideCount(ctx context.Context) (int, error) {
	var n int
	err := db.sql.QueryRow(ctx, `SELECT count(*) FROM presence WHERE inside = 1`).Scan(&n)
	return n, err
}
