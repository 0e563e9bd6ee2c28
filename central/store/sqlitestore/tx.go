package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/parkgate/parkgate/internal/sqlitedb"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
)

// tx is a store.Tx on the writer's transaction. Its reads need no row
// locks: the transaction holds SQLite's write lock from its BEGIN IMMEDIATE,
// so nothing else changes the database until it ends.
type tx struct {
	ctx context.Context
	q   wtx
	// logged: the transaction appended to the change log (Write then
	// notifies, once it has committed).
	logged bool
}

var _ store.Tx = (*tx)(nil)

func (t *tx) Spot(id string) (bool, error) {
	defer t.q.fp.keyed(id)()
	var active bool
	err := t.q.QueryRowContext(t.ctx, `SELECT active FROM spots WHERE id = ?`, id).Scan(&active)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return active, err
}

// availabilityQuery reads store.Availability in one statement: the
// writer's check of a new reservation is one read, not two. Live windows
// of a spot never overlap (the guard triggers), so ordered by end they are
// ordered by start, and the first live reservation ending after the window
// starts is the only one that can be the first to overlap it: one step
// down reservations_live, however long the spot's history or its list of
// future reservations. No row: no such spot.
const availabilityQuery = `SELECT s.active, coalesce(r.id, ''), r.reserved_from, r.reserved_until
	FROM spots s LEFT JOIN reservations r ON r.id = (
		SELECT l.id FROM reservations l
		WHERE l.spot_id = s.id AND l.state IN ('reserved', 'paid', 'taken') AND l.reserved_until > ?2
		ORDER BY l.reserved_until LIMIT 1) AND r.reserved_from < ?3
	WHERE s.id = ?1`

// scanAvailability reads availabilityQuery's row.
func scanAvailability(row *sql.Row) (store.Availability, error) {
	var (
		a           store.Availability
		from, until sql.NullInt64
	)
	err := row.Scan(&a.Active, &a.BlockerID, &from, &until)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Availability{}, nil
	}
	a.Blocker = reservation.Window{From: sqlitedb.FromMicros(from), Until: sqlitedb.FromMicros(until)}
	return a, err
}

func (t *tx) Availability(spotID string, w reservation.Window) (store.Availability, error) {
	defer t.q.fp.keyed(spotID)()
	return scanAvailability(t.q.QueryRowContext(t.ctx, availabilityQuery, spotID, sqlitedb.Micros(w.From), sqlitedb.Micros(w.Until)))
}

func (t *tx) Get(id string) (reservation.Reservation, error) {
	return getOne(t.q.QueryRowContext(t.ctx, `SELECT `+resCols+` FROM reservations WHERE id = ?`, id), id)
}

func (t *tx) Live(spotID string, w reservation.Window) ([]reservation.Reservation, error) {
	defer t.q.fp.keyed(spotID)()
	rows, err := t.q.QueryContext(t.ctx, `SELECT `+resCols+` FROM reservations
		WHERE spot_id = ? AND state IN ('reserved', 'paid', 'taken') AND reserved_until > ? AND reserved_from < ?
		ORDER BY reserved_from, id`, spotID, sqlitedb.Micros(w.From), sqlitedb.Micros(w.Until))
	if err != nil {
		return nil, err
	}
	return sqlitedb.Collect(rows, scanRes)
}

func (t *tx) Insert(r reservation.Reservation) error {
	defer t.q.fp.keyed(r.SpotID)()
	_, err := t.q.ExecContext(t.ctx, `INSERT INTO reservations (`+resCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, resArgs(r)...)
	if err != nil {
		return mapErr(err, "insert reservation "+r.ID, store.ErrUnknownSpot)
	}
	return nil
}

func (t *tx) Update(r reservation.Reservation) error {
	res, err := t.q.ExecContext(t.ctx, `UPDATE reservations SET spot_id = ?2, state = ?3, source = ?4,
		reserved_from = ?5, reserved_until = ?6, created_at = ?7, car_id = ?8, amount = ?9, currency = ?10,
		reference = ?11, paid_at = ?12, checked_in_at = ?13, left_at = ?14, ended_at = ?15, token_hash = ?16,
		payment_attempts = ?17, payment_ref = ?18, payment_started_at = ?19 WHERE id = ?1`, resArgs(r)...)
	if err != nil {
		return mapErr(err, "update reservation "+r.ID, store.ErrUnknownSpot)
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return fmt.Errorf("update reservation %s: %w", r.ID, store.ErrNotFound)
	}
	return nil
}

// resArgs lists r's fields in resCols order.
func resArgs(r reservation.Reservation) []any {
	return []any{r.ID, r.SpotID, string(r.State), string(r.Source), sqlitedb.Micros(r.From), sqlitedb.Micros(r.Until), sqlitedb.Micros(r.CreatedAt),
		r.CarID, r.Amount, r.Currency, r.Reference, sqlitedb.Micros(r.PaidAt), sqlitedb.Micros(r.CheckedInAt), sqlitedb.Micros(r.LeftAt),
		sqlitedb.Micros(r.EndedAt), blob(r.TokenHash), r.PaymentAttempts, r.PaymentRef, sqlitedb.Micros(r.PaymentStartedAt)}
}

// Log stores the reservation snapshot as JSON: its tags already leave out
// the token hash and payment internals, which followers must not see. The
// version is the AUTOINCREMENT rowid taken now, which is commit order
// because SQLite has one writer at a time.
func (t *tx) Log(c store.Change) error {
	var snap any
	if c.Reservation != nil {
		b, err := json.Marshal(normalize(*c.Reservation))
		if err != nil {
			return fmt.Errorf("log %s: %w", c.Kind, err)
		}
		snap = string(b)
	}
	if c.At.IsZero() {
		return fmt.Errorf("log %s: the change has no time", c.Kind)
	}
	t.logged = true
	defer t.q.fp.keyed("")()
	_, err := t.q.ExecContext(t.ctx, `INSERT INTO changes (at, kind, spot_id, reservation_id, actor, reservation, gate_id, note)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, sqlitedb.Micros(c.At), c.Kind, c.SpotID, c.ReservationID, c.Actor, snap, c.GateID, c.Note)
	if err != nil {
		return fmt.Errorf("log %s: %w", c.Kind, err)
	}
	return nil
}

func (t *tx) Attempt(reservationID string, keyHash []byte) (store.PaymentAttempt, error) {
	a, err := scanAttempt(t.q.QueryRowContext(t.ctx, `SELECT `+attemptCols+` FROM payment_attempts
		WHERE reservation_id = ? AND key_hash = ?`, reservationID, blob(keyHash)))
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("payment attempt of %s: %w", reservationID, store.ErrNotFound)
	}
	return a, err
}

func (t *tx) PutAttempt(a store.PaymentAttempt) error {
	_, err := t.q.ExecContext(t.ctx, `INSERT INTO payment_attempts (`+attemptCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (reservation_id, number) DO UPDATE SET key_hash = excluded.key_hash, request_hash = excluded.request_hash,
			provider_key = excluded.provider_key, outcome = excluded.outcome, provider_ref = excluded.provider_ref,
			message = excluded.message, amount = excluded.amount, currency = excluded.currency,
			car_id = excluded.car_id, payment_method = excluded.payment_method,
			purpose = excluded.purpose, customer_ref = excluded.customer_ref,
			started_at = excluded.started_at, finished_at = excluded.finished_at`,
		a.ReservationID, a.Number, blob(a.KeyHash), blob(a.RequestHash), a.ProviderKey, a.Outcome, a.ProviderRef, a.Message, a.Amount,
		a.Currency, a.CarID, a.PaymentMethod, a.Purpose, a.CustomerRef, sqlitedb.Micros(a.StartedAt), sqlitedb.Micros(a.FinishedAt))
	if err != nil {
		return mapErr(err, fmt.Sprintf("payment attempt %s/%d", a.ReservationID, a.Number), store.ErrNotFound)
	}
	return nil
}

// Attempts lists a reservation's attempts inside the transaction.
func (t *tx) Attempts(reservationID string) ([]store.PaymentAttempt, error) {
	rows, err := t.q.QueryContext(t.ctx, `SELECT `+attemptCols+` FROM payment_attempts WHERE reservation_id = ? ORDER BY number`, reservationID)
	if err != nil {
		return nil, err
	}
	return sqlitedb.Collect(rows, scanAttempt)
}

// AttemptByRef finds an attempt by its provider object id.
func (t *tx) AttemptByRef(ref string) (store.PaymentAttempt, error) {
	a, err := scanAttempt(t.q.QueryRowContext(t.ctx, `SELECT `+attemptCols+` FROM payment_attempts
		WHERE provider_ref = ? AND provider_ref <> '' ORDER BY started_at DESC LIMIT 1`, ref))
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("payment attempt of %s: %w", ref, store.ErrNotFound)
	}
	return a, err
}

// PutWebhookEvent records an applied event id.
func (t *tx) PutWebhookEvent(id, typ string, at time.Time) error {
	_, err := t.q.ExecContext(t.ctx, `INSERT INTO webhook_events (id, type, received_at) VALUES (?, ?, ?)`, id, typ, sqlitedb.Micros(at))
	if err != nil {
		return mapErr(err, "webhook event "+id, nil)
	}
	return nil
}

// PutPaymentException records an exception for an operator.
func (t *tx) PutPaymentException(e store.PaymentException) error {
	_, err := t.q.ExecContext(t.ctx, `INSERT INTO payment_exceptions (`+paymentExceptionCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ID, e.Kind, e.ReservationID, e.Amount, e.Currency, e.ProviderRef, e.Reason, sqlitedb.Micros(e.CreatedAt),
		sqlitedb.Micros(e.ResolvedAt), e.ResolvedBy, e.Resolution)
	if err != nil {
		return mapErr(err, "payment exception "+e.ID, nil)
	}
	return nil
}

// PutRefund inserts or replaces (by reservation and number) a refund.
func (t *tx) PutRefund(r store.Refund) error {
	_, err := t.q.ExecContext(t.ctx, `INSERT INTO refunds (`+refundCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (reservation_id, number) DO UPDATE SET reason = excluded.reason, amount = excluded.amount,
			currency = excluded.currency, charge_ref = excluded.charge_ref, provider_key = excluded.provider_key,
			status = excluded.status, provider_ref = excluded.provider_ref, message = excluded.message,
			tries = excluded.tries, created_at = excluded.created_at, finished_at = excluded.finished_at`,
		r.ReservationID, r.Number, r.Reason, r.Amount, r.Currency, r.ChargeRef, r.ProviderKey, r.Status, r.ProviderRef,
		r.Message, r.Tries, sqlitedb.Micros(r.CreatedAt), sqlitedb.Micros(r.FinishedAt))
	if err != nil {
		return mapErr(err, fmt.Sprintf("refund %s/%d", r.ReservationID, r.Number), store.ErrNotFound)
	}
	return nil
}

// Refunds lists a reservation's refunds inside the transaction.
func (t *tx) Refunds(reservationID string) ([]store.Refund, error) {
	rows, err := t.q.QueryContext(t.ctx, `SELECT `+refundCols+` FROM refunds WHERE reservation_id = ? ORDER BY number`, reservationID)
	if err != nil {
		return nil, err
	}
	return sqlitedb.Collect(rows, scanRefund)
}

const gateCols = `id, password_hash, role, online, session, last_seen, cache_version, outbox, barrier, software, added_at, faults`

func scanGate(sc sqlitedb.Scanner) (store.Gate, error) {
	var (
		g           store.Gate
		seen, added sql.NullInt64
		faults      string
	)
	err := sc.Scan(&g.ID, &g.PasswordHash, &g.Role, &g.Online, &g.Session, &seen, &g.CacheVersion, &g.Outbox,
		&g.Barrier, &g.Software, &added, &faults)
	g.LastSeen, g.AddedAt = sqlitedb.FromMicros(seen), sqlitedb.FromMicros(added)
	if err == nil {
		g.Faults, err = store.DecodeFaults(faults)
	}
	return g, err
}

// Gate returns one gate.
func (t *tx) Gate(id string) (store.Gate, error) {
	g, err := scanGate(t.q.QueryRowContext(t.ctx, `SELECT `+gateCols+` FROM gates WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return g, fmt.Errorf("gate %s: %w", id, store.ErrNotFound)
	}
	return g, err
}

// PutGate inserts or replaces a gate.
func (t *tx) PutGate(g store.Gate) error {
	_, err := t.q.ExecContext(t.ctx, `INSERT INTO gates (`+gateCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role,
			online = excluded.online, session = excluded.session, last_seen = excluded.last_seen,
			cache_version = excluded.cache_version, outbox = excluded.outbox, barrier = excluded.barrier,
			software = excluded.software, added_at = excluded.added_at, faults = excluded.faults`,
		g.ID, blob(g.PasswordHash), g.Role, g.Online, g.Session, sqlitedb.Micros(g.LastSeen), g.CacheVersion, g.Outbox,
		g.Barrier, g.Software, sqlitedb.Micros(g.AddedAt), store.EncodeFaults(g.Faults))
	if err != nil {
		return mapErr(err, "gate "+g.ID, nil)
	}
	return nil
}

const gateEventCols = `event_id, gate_id, seq, kind, role, at, source, granted, reason, reservation_id, spot_id, car_id,
	overstay, presence_unknown, clock_trusted, received_at, outcome, note, plate, detail`

// gateEventReadCols are gateEventCols and the operator's resolution,
// which PutGateEvent never writes.
const gateEventReadCols = gateEventCols + `, resolved_at, resolved_by, resolution`

func scanGateEvent(sc sqlitedb.Scanner) (store.GateEvent, error) {
	var (
		e                      store.GateEvent
		at, received, resolved sql.NullInt64
	)
	err := sc.Scan(&e.EventID, &e.GateID, &e.Seq, &e.Kind, &e.Role, &at, &e.Source, &e.Granted, &e.Reason,
		&e.ReservationID, &e.SpotID, &e.CarID, &e.Overstay, &e.PresenceUnknown, &e.ClockTrusted, &received,
		&e.Outcome, &e.Note, &e.Plate, &e.Detail, &resolved, &e.ResolvedBy, &e.Resolution)
	e.Time, e.ReceivedAt, e.ResolvedAt = sqlitedb.FromMicros(at), sqlitedb.FromMicros(received), sqlitedb.FromMicros(resolved)
	return e, err
}

// PutGateEvent stores an event once.
func (t *tx) PutGateEvent(e store.GateEvent) error {
	_, err := t.q.ExecContext(t.ctx, `INSERT INTO gate_events (`+gateEventCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.EventID, e.GateID, e.Seq, e.Kind, e.Role, sqlitedb.Micros(e.Time), e.Source, e.Granted, e.Reason,
		e.ReservationID, e.SpotID, e.CarID, e.Overstay, e.PresenceUnknown, e.ClockTrusted,
		sqlitedb.Micros(e.ReceivedAt), e.Outcome, e.Note, e.Plate, e.Detail)
	if err != nil {
		return mapErr(err, "gate event "+e.EventID, nil)
	}
	return nil
}

// ResolveGateEvent records an operator's resolution of an event.
func (t *tx) ResolveGateEvent(eventID, by, note string, at time.Time) error {
	res, err := t.q.ExecContext(t.ctx, `UPDATE gate_events SET resolved_at = ?, resolved_by = ?, resolution = ?
		WHERE event_id = ?`, sqlitedb.Micros(at), by, note, eventID)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return fmt.Errorf("gate event %s: %w", eventID, store.ErrNotFound)
	}
	return nil
}

// ResolvePaymentException records an operator's resolution of a payment
// exception.
func (t *tx) ResolvePaymentException(id, by, note string, at time.Time) error {
	res, err := t.q.ExecContext(t.ctx, `UPDATE payment_exceptions SET resolved_at = ?, resolved_by = ?, resolution = ?
		WHERE id = ?`, sqlitedb.Micros(at), by, note, id)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return fmt.Errorf("payment exception %s: %w", id, store.ErrNotFound)
	}
	return nil
}

// PutOperator inserts or replaces an operator account.
func (t *tx) PutOperator(o store.Operator) error {
	_, err := t.q.ExecContext(t.ctx, `INSERT INTO operators (name, password_hash, created_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, created_at = excluded.created_at`,
		o.Name, o.PasswordHash, sqlitedb.Micros(o.CreatedAt))
	if err != nil {
		return mapErr(err, "operator "+o.Name, nil)
	}
	return nil
}

// SetRelayPosition moves the relay's position forward to v.
func (t *tx) SetRelayPosition(v int64) error {
	_, err := t.q.ExecContext(t.ctx, `UPDATE relay_position SET version = max(version, ?) WHERE id = 1`, v)
	return err
}

// Enrollment returns one enrollment code. SQLite's write transaction
// already excludes every other writer.
func (t *tx) Enrollment(key []byte) (store.Enrollment, error) {
	var (
		e                    store.Enrollment
		created, exp, usedAt sql.NullInt64
	)
	err := t.q.QueryRowContext(t.ctx, `SELECT key, gate_id, role, created_at, expires_at, used_at FROM enrollments WHERE key = ?`, key).
		Scan(&e.Key, &e.GateID, &e.Role, &created, &exp, &usedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("enrollment: %w", store.ErrNotFound)
	}
	e.CreatedAt, e.ExpiresAt, e.UsedAt = sqlitedb.FromMicros(created), sqlitedb.FromMicros(exp), sqlitedb.FromMicros(usedAt)
	return e, err
}

// PutEnrollment inserts or replaces an enrollment code.
func (t *tx) PutEnrollment(e store.Enrollment) error {
	if len(e.Key) == 0 {
		return errors.New("enrollment: empty key")
	}
	_, err := t.q.ExecContext(t.ctx, `INSERT INTO enrollments (key, gate_id, role, created_at, expires_at, used_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET gate_id = excluded.gate_id, role = excluded.role, created_at = excluded.created_at,
			expires_at = excluded.expires_at, used_at = excluded.used_at`,
		e.Key, e.GateID, e.Role, sqlitedb.Micros(e.CreatedAt), sqlitedb.Micros(e.ExpiresAt), sqlitedb.Micros(e.UsedAt))
	if err != nil {
		return mapErr(err, "enrollment for gate "+e.GateID, nil)
	}
	return nil
}
