package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/parkgate/parkgate/central/store"
)

// The conditions below repeat the partial indexes of migrations 013 and
// 018 word for word, so that PostgreSQL uses them: a run reads only what
// is left to erase, however long the history.
const (
	personalRes = `state IN ('left', 'expired', 'no_show', 'cancelled') AND (car_id <> '' OR token_hash IS NOT NULL)
		AND coalesce(ended_at, reserved_until) < $1`
	personalAttempt = `(a.car_id <> '' OR a.payment_method <> '' OR a.customer_ref <> '' OR a.key_hash IS NOT NULL OR a.request_hash IS NOT NULL)`
	personalChange  = `(c.note <> '' OR (c.reservation IS NOT NULL AND (c.reservation::jsonb) ? 'carId'))`
	personalEvent   = `(plate <> '' OR car_id <> '' OR detail <> '' OR resolution <> '') AND received_at < $1`
	personalNote    = `reservation_id = '' AND note <> '' AND at < $1`
)

// PersonalData counts what ErasePersonalData would erase; see store.Eraser.
func (s *Store) PersonalData(ctx context.Context, before time.Time) (store.Erasure, error) {
	var (
		e                                  store.Erasure
		oldest, newest, oldestEv, newestEv pgtype.Timestamptz
		cut                                = ts(before)
	)
	err := s.pool.QueryRow(ctx, `SELECT count(*), min(coalesce(ended_at, reserved_until)), max(coalesce(ended_at, reserved_until))
		FROM reservations WHERE `+personalRes, cut).Scan(&e.Reservations, &oldest, &newest)
	if err != nil {
		return e, err
	}
	err = s.pool.QueryRow(ctx, `SELECT count(*) FROM payment_attempts a WHERE `+personalAttempt+`
		AND a.reservation_id IN (SELECT id FROM reservations WHERE `+personalRes+`)`, cut).Scan(&e.Attempts)
	if err != nil {
		return e, err
	}
	err = s.pool.QueryRow(ctx, `SELECT count(*) FROM changes c WHERE c.reservation_id <> '' AND `+personalChange+`
		AND c.reservation_id IN (SELECT id FROM reservations WHERE `+personalRes+`)`, cut).Scan(&e.Changes)
	if err != nil {
		return e, err
	}
	err = s.pool.QueryRow(ctx, `SELECT count(*), min(received_at), max(received_at) FROM gate_events WHERE `+personalEvent, cut).
		Scan(&e.GateEvents, &oldestEv, &newestEv)
	if err != nil {
		return e, err
	}
	err = s.pool.QueryRow(ctx, `SELECT count(*) FROM changes WHERE `+personalNote, cut).Scan(&e.Notes)
	if err != nil {
		return e, err
	}
	e.OldestEnded, e.NewestEnded = fromTS(oldest), fromTS(newest)
	e.OldestReceived, e.NewestReceived = fromTS(oldestEv), fromTS(newestEv)
	return e, nil
}

// ErasePersonalData erases one batch; see store.Eraser. The rows are
// claimed FOR UPDATE SKIP LOCKED, so instances running it at once take
// different rows, and a row a booking transaction holds is left for the
// next batch instead of waited for.
func (s *Store) ErasePersonalData(ctx context.Context, before time.Time, limit int) (store.Erasure, error) {
	if limit <= 0 {
		return store.Erasure{}, fmt.Errorf("pgstore: erase personal data: limit %d: want > 0", limit)
	}
	var e store.Erasure
	cut := ts(before)
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		e = store.Erasure{}
		rows, err := tx.Query(ctx, `SELECT id, coalesce(ended_at, reserved_until) FROM reservations WHERE `+personalRes+`
			ORDER BY coalesce(ended_at, reserved_until) LIMIT $2 FOR UPDATE SKIP LOCKED`, cut, limit)
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var (
				id    string
				ended pgtype.Timestamptz
			)
			if err := rows.Scan(&id, &ended); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
			t := fromTS(ended)
			if e.OldestEnded.IsZero() || t.Before(e.OldestEnded) {
				e.OldestEnded = t
			}
			if t.After(e.NewestEnded) {
				e.NewestEnded = t
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ids) > 0 {
			tag, err := tx.Exec(ctx, `UPDATE reservations SET car_id = '', token_hash = NULL WHERE id = ANY($1)`, ids)
			if err != nil {
				return fmt.Errorf("erase reservations: %w", err)
			}
			e.Reservations = int(tag.RowsAffected())
			tag, err = tx.Exec(ctx, `UPDATE payment_attempts a SET car_id = '', payment_method = '', customer_ref = '',
				key_hash = NULL, request_hash = NULL WHERE `+personalAttempt+` AND a.reservation_id = ANY($1)`, ids)
			if err != nil {
				return fmt.Errorf("erase payment attempts: %w", err)
			}
			e.Attempts = int(tag.RowsAffected())
			// The snapshot keeps everything but the plate, and the entry
			// who acted: the log stays a record of what happened to the
			// spot and the money. (NULL - 'carId' is NULL.)
			tag, err = tx.Exec(ctx, `UPDATE changes c SET reservation = ((c.reservation::jsonb) - 'carId')::json, note = ''
				WHERE c.reservation_id = ANY($1) AND `+personalChange, ids)
			if err != nil {
				return fmt.Errorf("erase change log: %w", err)
			}
			e.Changes = int(tag.RowsAffected())
		}
		var oldest, newest pgtype.Timestamptz
		err = tx.QueryRow(ctx, `WITH batch AS (
				SELECT event_id FROM gate_events WHERE `+personalEvent+` ORDER BY received_at LIMIT $2 FOR UPDATE SKIP LOCKED),
			erased AS (
				UPDATE gate_events g SET plate = '', car_id = '', detail = '', resolution = ''
				FROM batch WHERE g.event_id = batch.event_id RETURNING g.received_at)
			SELECT count(*), min(received_at), max(received_at) FROM erased`, cut, limit).Scan(&e.GateEvents, &oldest, &newest)
		if err != nil {
			return fmt.Errorf("erase gate events: %w", err)
		}
		e.OldestReceived, e.NewestReceived = fromTS(oldest), fromTS(newest)
		tag, err := tx.Exec(ctx, `WITH batch AS (
				SELECT version FROM changes WHERE `+personalNote+` ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED)
			UPDATE changes c SET note = '' FROM batch WHERE c.version = batch.version`, cut, limit)
		if err != nil {
			return fmt.Errorf("erase change-log notes: %w", err)
		}
		e.Notes = int(tag.RowsAffected())
		return nil
	})
	return e, err
}
