package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/internal/sqlitedb"
)

// The conditions below repeat the partial indexes of migrations 014 and
// 021 word for word, so that SQLite may use them, and the queries name the index of
// the reservations: without statistics the planner picked the (state,
// created_at) index and sorted every finished reservation, a second per
// batch with a million of them. A run reads only what is left to erase,
// however long the history.
const (
	personalResIndex = `reservations INDEXED BY reservations_personal`
	personalRes      = `state IN ('left', 'expired', 'no_show', 'cancelled') AND (car_id <> '' OR token_hash IS NOT NULL)
		AND coalesce(ended_at, reserved_until) < ?`
	personalAttempt = `(car_id <> '' OR payment_method <> '' OR customer_ref <> '' OR key_hash IS NOT NULL OR request_hash IS NOT NULL)`
	// reservation_id <> '' lets SQLite use changes_reservation (it cannot
	// prove it from reservation_id IN (...)).
	personalChange = `reservation_id <> '' AND (note <> '' OR (reservation IS NOT NULL AND json_extract(reservation, '$.carId') IS NOT NULL))`
	personalEvent  = `(plate <> '' OR car_id <> '' OR detail <> '' OR resolution <> '') AND received_at < ?`
	personalNote   = `reservation_id = '' AND note <> '' AND at < ?`
	notesIndex     = `changes INDEXED BY changes_notes`
)

// PersonalData counts what ErasePersonalData would erase; see store.Eraser.
func (s *Store) PersonalData(ctx context.Context, before time.Time) (store.Erasure, error) {
	var (
		e                  store.Erasure
		oldest, newest     sql.NullInt64
		oldestEv, newestEv sql.NullInt64
		cut                = sqlitedb.Micros(before)
	)
	err := s.db.QueryRow(ctx, `SELECT count(*), min(coalesce(ended_at, reserved_until)), max(coalesce(ended_at, reserved_until))
		FROM `+personalResIndex+` WHERE `+personalRes, cut).Scan(&e.Reservations, &oldest, &newest)
	if err != nil {
		return e, err
	}
	err = s.db.QueryRow(ctx, `SELECT count(*) FROM payment_attempts WHERE `+personalAttempt+`
		AND reservation_id IN (SELECT id FROM `+personalResIndex+` WHERE `+personalRes+`)`, cut).Scan(&e.Attempts)
	if err != nil {
		return e, err
	}
	err = s.db.QueryRow(ctx, `SELECT count(*) FROM changes WHERE `+personalChange+`
		AND reservation_id IN (SELECT id FROM `+personalResIndex+` WHERE `+personalRes+`)`, cut).Scan(&e.Changes)
	if err != nil {
		return e, err
	}
	err = s.db.QueryRow(ctx, `SELECT count(*), min(received_at), max(received_at) FROM gate_events WHERE `+personalEvent, cut).
		Scan(&e.GateEvents, &oldestEv, &newestEv)
	if err != nil {
		return e, err
	}
	err = s.db.QueryRow(ctx, `SELECT count(*) FROM `+notesIndex+` WHERE `+personalNote, cut).Scan(&e.Notes)
	if err != nil {
		return e, err
	}
	e.OldestEnded, e.NewestEnded = sqlitedb.FromMicros(oldest), sqlitedb.FromMicros(newest)
	e.OldestReceived, e.NewestReceived = sqlitedb.FromMicros(oldestEv), sqlitedb.FromMicros(newestEv)
	return e, nil
}

// ErasePersonalData erases one batch on the writer; see store.Eraser. With
// one writer per database, calls cannot overlap.
func (s *Store) ErasePersonalData(ctx context.Context, before time.Time, limit int) (store.Erasure, error) {
	if limit <= 0 {
		return store.Erasure{}, fmt.Errorf("sqlitestore: erase personal data: limit %d: want > 0", limit)
	}
	// The ids become statement parameters, of which SQLite takes 32,766.
	limit = min(limit, maxEraseBatch)
	var e store.Erasure
	cut := sqlitedb.Micros(before)
	err := s.db.Write(ctx, func(tx *sql.Tx) error {
		e = store.Erasure{}
		rows, err := tx.QueryContext(ctx, `SELECT id, coalesce(ended_at, reserved_until) FROM `+personalResIndex+` WHERE `+personalRes+`
			ORDER BY coalesce(ended_at, reserved_until) LIMIT ?`, cut, limit)
		if err != nil {
			return err
		}
		var ids []any
		for rows.Next() {
			var (
				id    string
				ended sql.NullInt64
			)
			if err := rows.Scan(&id, &ended); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
			t := sqlitedb.FromMicros(ended)
			if e.OldestEnded.IsZero() {
				e.OldestEnded = t
			}
			e.NewestEnded = t
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ids) > 0 {
			in := `(` + strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", ") + `)`
			n, err := exec(ctx, tx, `UPDATE reservations SET car_id = '', token_hash = NULL WHERE id IN `+in, ids...)
			if err != nil {
				return fmt.Errorf("erase reservations: %w", err)
			}
			e.Reservations = n
			if e.Attempts, err = exec(ctx, tx, `UPDATE payment_attempts SET car_id = '', payment_method = '', customer_ref = '',
				key_hash = NULL, request_hash = NULL WHERE `+personalAttempt+` AND reservation_id IN `+in, ids...); err != nil {
				return fmt.Errorf("erase payment attempts: %w", err)
			}
			// The snapshot keeps everything but the plate, and the entry
			// who acted: the log stays a record of what happened to the
			// spot and the money. (json_remove of NULL is NULL.)
			if e.Changes, err = exec(ctx, tx, `UPDATE changes SET reservation = json_remove(reservation, '$.carId'), note = ''
				WHERE reservation_id IN `+in+` AND `+personalChange, ids...); err != nil {
				return fmt.Errorf("erase change log: %w", err)
			}
		}
		var oldest, newest sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT count(*), min(received_at), max(received_at) FROM (
			SELECT received_at FROM gate_events WHERE `+personalEvent+` ORDER BY received_at LIMIT ?)`, cut, limit).
			Scan(&e.GateEvents, &oldest, &newest); err != nil {
			return err
		}
		if e.GateEvents > 0 {
			if _, err := tx.ExecContext(ctx, `UPDATE gate_events SET plate = '', car_id = '', detail = '', resolution = '' WHERE rowid IN (
				SELECT rowid FROM gate_events WHERE `+personalEvent+` ORDER BY received_at LIMIT ?)`, cut, limit); err != nil {
				return fmt.Errorf("erase gate events: %w", err)
			}
		}
		if e.Notes, err = exec(ctx, tx, `UPDATE changes SET note = '' WHERE version IN (
			SELECT version FROM `+notesIndex+` WHERE `+personalNote+` ORDER BY at LIMIT ?)`, cut, limit); err != nil {
			return fmt.Errorf("erase change-log notes: %w", err)
		}
		e.OldestReceived, e.NewestReceived = sqlitedb.FromMicros(oldest), sqlitedb.FromMicros(newest)
		return nil
	})
	return e, err
}

// maxEraseBatch bounds one batch of ErasePersonalData.
const maxEraseBatch = 10000

// exec runs an UPDATE and returns how many rows it changed.
func exec(ctx context.Context, tx *sql.Tx, q string, args ...any) (int, error) {
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}
