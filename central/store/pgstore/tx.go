package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
)

// tx is a store.Tx on one READ COMMITTED transaction. Where sqlitestore's
// single writer needs no locks, this one takes row locks (FOR NO KEY
// UPDATE, the lock an UPDATE itself takes) on what it reads to change:
// the reservation in Get, the gate in Gate, the spot before writing a
// reservation of it. FOR NO KEY UPDATE rather than FOR UPDATE: it
// excludes the other writers just the same, but not the FOR KEY SHARE
// locks that foreign-key checks take (inserting a payment attempt takes
// one on its reservation, inserting a reservation one on its spot), so
// two transactions that each inserted such a row and then want the lock
// cannot deadlock, each waiting for the other's key share to go.
type tx struct {
	ctx context.Context
	q   pgx.Tx
	s   *Store
	// changes are the entries Log buffered, inserted by Write at commit.
	changes []pendingChange
	// spots are the spots this transaction has locked, or tried to (see
	// lockSpot).
	spots map[string]bool
	// failed is the first statement that failed: PostgreSQL refuses the
	// rest of the transaction, and Write retries if it was a deadlock,
	// even when fn turned the error into another one.
	failed error
}

var _ store.Tx = (*tx)(nil)

// pendingChange is a change-log entry as it will be inserted.
type pendingChange struct {
	at                                 any
	kind, spotID, reservationID, actor string
	gateID, note                       string
	snap                               any // JSON text, or nil for NULL
}

// note records err as the transaction's failure (no rows is not one: it
// does not abort the transaction) and returns it.
func (t *tx) note(err error) error {
	if err != nil && t.failed == nil && !errors.Is(err, pgx.ErrNoRows) {
		t.failed = err
	}
	return err
}

// exec runs a statement that returns no rows.
func (t *tx) exec(q string, args ...any) error {
	_, err := t.q.Exec(t.ctx, q, args...)
	return t.note(err)
}

// txCollect runs a query in t and scans every row with scan.
func txCollect[T any](t *tx, scan func(pgx.Row) (T, error), q string, args ...any) ([]T, error) {
	rows, err := t.q.Query(t.ctx, q, args...)
	out, err := collect(err, rows, scan)
	return out, t.note(err)
}

func (t *tx) Spot(id string) (bool, error) {
	var active bool
	err := t.note(t.q.QueryRow(t.ctx, `SELECT active FROM spots WHERE id = $1`, id).Scan(&active))
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return active, err
}

// Get locks the reservation until the transaction ends, as store.Tx
// promises: a read-modify-write of it (pay, check in, a gate's event) does
// not lose a concurrent one, which waits and then reads the result.
func (t *tx) Get(id string) (reservation.Reservation, error) {
	r, err := getOne(t.q.QueryRow(t.ctx, `SELECT `+resCols+` FROM reservations WHERE id = $1 FOR NO KEY UPDATE`, id), id)
	if !errors.Is(err, store.ErrNotFound) {
		t.note(err)
	}
	return r, err
}

// Availability reads the spot and its first live reservation in the way
// in one statement, which sees one commit (READ COMMITTED gives each
// statement its own snapshot). Like Live it takes no lock: the spot lock
// and the overlap constraint guard the write that follows.
func (t *tx) Availability(spotID string, w reservation.Window) (store.Availability, error) {
	var (
		a           store.Availability
		from, until pgtype.Timestamptz
	)
	err := t.note(t.q.QueryRow(t.ctx, `SELECT s.active, coalesce(r.id, ''), r.reserved_from, r.reserved_until
		FROM spots s LEFT JOIN LATERAL (
			SELECT id, reserved_from, reserved_until FROM reservations
			WHERE spot_id = s.id AND state IN ('reserved', 'paid', 'taken') AND reserved_until > $2 AND reserved_from < $3
			ORDER BY reserved_from, id LIMIT 1) r ON true
		WHERE s.id = $1`, spotID, ts(w.From), ts(w.Until)).Scan(&a.Active, &a.BlockerID, &from, &until))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Availability{}, nil
	}
	a.Blocker = reservation.Window{From: fromTS(from), Until: fromTS(until)}
	return a, err
}

// Live reads without locking: it is advice for the caller's error message,
// and Insert and Update are refused by the overlap constraint anyway.
func (t *tx) Live(spotID string, w reservation.Window) ([]reservation.Reservation, error) {
	return txCollect(t, scanRes, `SELECT `+resCols+` FROM reservations
		WHERE spot_id = $1 AND state IN ('reserved', 'paid', 'taken') AND reserved_until > $2 AND reserved_from < $3
		ORDER BY reserved_from, id`, spotID, ts(w.From), ts(w.Until))
}

// lockSpot takes the spot's row lock, so that the transactions writing a
// reservation of one spot run one after the other: the second's overlap
// check then finds the first's row committed (and refuses at once) instead
// of in progress, where two inserts waiting on each other's rows deadlock.
// Retries alone do not make up for it: a retry's check can meet another
// retry's row before the winner's and deadlock again, and under slow
// commits some callers then run out of attempts (TestRacingInstances, no
// spot lock).
// An unknown spot is not an error here: the insert's guard says so.
//
// Only the first spot lock of a transaction waits. A transaction that
// holds one spot and waits for another can be part of a cycle (another
// holds that one and wants this one), which PostgreSQL detects only after
// deadlock_timeout (1s by default) and then breaks by failing one of
// them. So a further spot is locked NOWAIT: if it is taken, the
// transaction fails at once with lock_not_available, which Write retries
// like a deadlock; the retry then takes the spots it needed in id order
// (see Store.writeOnce). No booking writes two spots today; a move or a
// multi-spot booking would.
func (t *tx) lockSpot(spotID string) error {
	if t.s.noSpotLock || t.spots[spotID] {
		return nil
	}
	q := `SELECT 1 FROM spots WHERE id = $1 FOR NO KEY UPDATE`
	if len(t.spots) > 0 {
		q += ` NOWAIT`
	}
	// Recorded before trying: the spot that was taken is the one the
	// next run most needs to take in order.
	t.addSpot(spotID)
	if err := t.exec(q, spotID); err != nil {
		return fmt.Errorf("lock spot %s: %w", spotID, err)
	}
	return nil
}

// addSpot records that the transaction locked the spot (or tried to).
func (t *tx) addSpot(spotID string) {
	if t.spots == nil {
		t.spots = map[string]bool{}
	}
	t.spots[spotID] = true
}

// Insert locks the spot first when r is live; a final reservation holds no
// window, so it cannot conflict.
func (t *tx) Insert(r reservation.Reservation) error {
	if r.State.Live() {
		if err := t.lockSpot(r.SpotID); err != nil {
			return err
		}
	}
	err := t.exec(`INSERT INTO reservations (`+resCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)`, resArgs(r)...)
	if err != nil {
		return mapErr(err, "insert reservation "+r.ID, store.ErrUnknownSpot)
	}
	return nil
}

// Update locks r's spot first, whatever r's state: a reservation leaving
// its window (cancelled, left) still holds it until this transaction
// commits, and an insert on that spot waits for it; were the spot not
// locked, this transaction writing a second reservation of the spot next
// would wait for that insert, a deadlock.
func (t *tx) Update(r reservation.Reservation) error {
	if err := t.lockSpot(r.SpotID); err != nil {
		return err
	}
	tag, err := t.q.Exec(t.ctx, `UPDATE reservations SET spot_id = $2, state = $3, source = $4,
		reserved_from = $5, reserved_until = $6, created_at = $7, car_id = $8, amount = $9, currency = $10,
		reference = $11, paid_at = $12, checked_in_at = $13, left_at = $14, ended_at = $15, token_hash = $16,
		payment_attempts = $17, payment_ref = $18, payment_started_at = $19 WHERE id = $1`, resArgs(r)...)
	if t.note(err) != nil {
		return mapErr(err, "update reservation "+r.ID, store.ErrUnknownSpot)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("update reservation %s: %w", r.ID, store.ErrNotFound)
	}
	return nil
}

// resArgs lists r's fields in resCols order.
func resArgs(r reservation.Reservation) []any {
	return []any{r.ID, r.SpotID, string(r.State), string(r.Source), ts(r.From), ts(r.Until), ts(r.CreatedAt),
		r.CarID, r.Amount, r.Currency, r.Reference, ts(r.PaidAt), ts(r.CheckedInAt), ts(r.LeftAt),
		ts(r.EndedAt), blob(r.TokenHash), r.PaymentAttempts, r.PaymentRef, ts(r.PaymentStartedAt)}
}

// Log checks and encodes c now (so that a bad entry fails fn, as in
// sqlitestore) but only buffers it: Write inserts the buffered entries at
// commit, which is when their versions are handed out. The snapshot is
// JSON: its tags already leave out the token hash and payment internals,
// which followers must not see.
func (t *tx) Log(c store.Change) error {
	var snap any
	if c.Reservation != nil {
		b, err := json.Marshal(normalize(*c.Reservation))
		if err != nil {
			return fmt.Errorf("log %s: %w", c.Kind, err)
		}
		snap = b
	}
	if c.At.IsZero() {
		return fmt.Errorf("log %s: the change has no time", c.Kind)
	}
	t.changes = append(t.changes, pendingChange{at: ts(c.At), kind: c.Kind, spotID: c.SpotID,
		reservationID: c.ReservationID, actor: c.Actor, snap: snap, gateID: c.GateID, note: c.Note})
	return nil
}

// Attempt takes no lock of its own: the payment flow reads the attempts of
// a reservation it has locked with Get.
func (t *tx) Attempt(reservationID string, keyHash []byte) (store.PaymentAttempt, error) {
	a, err := scanAttempt(t.q.QueryRow(t.ctx, `SELECT `+attemptCols+` FROM payment_attempts
		WHERE reservation_id = $1 AND key_hash = $2`, reservationID, blob(keyHash)))
	if errors.Is(err, pgx.ErrNoRows) {
		return a, fmt.Errorf("payment attempt of %s: %w", reservationID, store.ErrNotFound)
	}
	return a, t.note(err)
}

func (t *tx) PutAttempt(a store.PaymentAttempt) error {
	err := t.exec(`INSERT INTO payment_attempts (`+attemptCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
		ON CONFLICT (reservation_id, number) DO UPDATE SET key_hash = excluded.key_hash, request_hash = excluded.request_hash,
			provider_key = excluded.provider_key, outcome = excluded.outcome, provider_ref = excluded.provider_ref,
			message = excluded.message, amount = excluded.amount, currency = excluded.currency,
			car_id = excluded.car_id, payment_method = excluded.payment_method,
			purpose = excluded.purpose, customer_ref = excluded.customer_ref,
			started_at = excluded.started_at, finished_at = excluded.finished_at`,
		a.ReservationID, a.Number, blob(a.KeyHash), blob(a.RequestHash), a.ProviderKey, a.Outcome, a.ProviderRef, a.Message, a.Amount,
		a.Currency, a.CarID, a.PaymentMethod, a.Purpose, a.CustomerRef, ts(a.StartedAt), ts(a.FinishedAt))
	if err != nil {
		return mapErr(err, fmt.Sprintf("payment attempt %s/%d", a.ReservationID, a.Number), store.ErrNotFound)
	}
	return nil
}

// Attempts lists a reservation's attempts; like Attempt, it relies on the
// reservation's lock.
func (t *tx) Attempts(reservationID string) ([]store.PaymentAttempt, error) {
	return txCollect(t, scanAttempt, `SELECT `+attemptCols+` FROM payment_attempts WHERE reservation_id = $1 ORDER BY number`, reservationID)
}

// AttemptByRef finds an attempt by its provider object id; the caller
// locks its reservation with Get.
func (t *tx) AttemptByRef(ref string) (store.PaymentAttempt, error) {
	a, err := scanAttempt(t.q.QueryRow(t.ctx, `SELECT `+attemptCols+` FROM payment_attempts
		WHERE provider_ref = $1 AND provider_ref <> '' ORDER BY started_at DESC LIMIT 1`, ref))
	if errors.Is(err, pgx.ErrNoRows) {
		return a, fmt.Errorf("payment attempt of %s: %w", ref, store.ErrNotFound)
	}
	return a, t.note(err)
}

// PutWebhookEvent records an applied event id.
func (t *tx) PutWebhookEvent(id, typ string, at time.Time) error {
	err := t.exec(`INSERT INTO webhook_events (id, type, received_at) VALUES ($1, $2, $3)`, id, typ, ts(at))
	if err != nil {
		return mapErr(err, "webhook event "+id, nil)
	}
	return nil
}

// PutPaymentException records an exception for an operator.
func (t *tx) PutPaymentException(e store.PaymentException) error {
	err := t.exec(`INSERT INTO payment_exceptions (`+paymentExceptionCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		e.ID, e.Kind, e.ReservationID, e.Amount, e.Currency, e.ProviderRef, e.Reason, ts(e.CreatedAt),
		ts(e.ResolvedAt), e.ResolvedBy, e.Resolution)
	if err != nil {
		return mapErr(err, "payment exception "+e.ID, nil)
	}
	return nil
}

// PutRefund inserts or replaces (by reservation and number) a refund.
func (t *tx) PutRefund(r store.Refund) error {
	err := t.exec(`INSERT INTO refunds (`+refundCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		ON CONFLICT (reservation_id, number) DO UPDATE SET reason = excluded.reason, amount = excluded.amount,
			currency = excluded.currency, charge_ref = excluded.charge_ref, provider_key = excluded.provider_key,
			status = excluded.status, provider_ref = excluded.provider_ref, message = excluded.message,
			tries = excluded.tries, created_at = excluded.created_at, finished_at = excluded.finished_at`,
		r.ReservationID, r.Number, r.Reason, r.Amount, r.Currency, r.ChargeRef, r.ProviderKey, r.Status, r.ProviderRef,
		r.Message, r.Tries, ts(r.CreatedAt), ts(r.FinishedAt))
	if err != nil {
		return mapErr(err, fmt.Sprintf("refund %s/%d", r.ReservationID, r.Number), store.ErrNotFound)
	}
	return nil
}

// Refunds lists a reservation's refunds inside the transaction.
func (t *tx) Refunds(reservationID string) ([]store.Refund, error) {
	return txCollect(t, scanRefund, `SELECT `+refundCols+` FROM refunds WHERE reservation_id = $1 ORDER BY number`, reservationID)
}

// Gate returns one gate, locked until the transaction ends: its presence
// is read, compared (session counters) and written back, and two relays
// doing so at once must not lose one's update.
func (t *tx) Gate(id string) (store.Gate, error) {
	g, err := scanGate(t.q.QueryRow(t.ctx, `SELECT `+gateCols+` FROM gates WHERE id = $1 FOR NO KEY UPDATE`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return g, fmt.Errorf("gate %s: %w", id, store.ErrNotFound)
	}
	return g, t.note(err)
}

// PutGate inserts or replaces a gate.
func (t *tx) PutGate(g store.Gate) error {
	err := t.exec(`INSERT INTO gates (`+gateCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (id) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role,
			online = excluded.online, session = excluded.session, last_seen = excluded.last_seen,
			cache_version = excluded.cache_version, outbox = excluded.outbox, barrier = excluded.barrier,
			software = excluded.software, added_at = excluded.added_at, faults = excluded.faults`,
		g.ID, blob(g.PasswordHash), g.Role, g.Online, g.Session, ts(g.LastSeen), g.CacheVersion, g.Outbox,
		g.Barrier, g.Software, ts(g.AddedAt), store.EncodeFaults(g.Faults))
	if err != nil {
		return mapErr(err, "gate "+g.ID, nil)
	}
	return nil
}

// PutGateEvent stores an event once.
func (t *tx) PutGateEvent(e store.GateEvent) error {
	err := t.exec(`INSERT INTO gate_events (`+gateEventCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`,
		e.EventID, e.GateID, e.Seq, e.Kind, e.Role, ts(e.Time), e.Source, e.Granted, e.Reason,
		e.ReservationID, e.SpotID, e.CarID, e.Overstay, e.PresenceUnknown, e.ClockTrusted,
		ts(e.ReceivedAt), e.Outcome, e.Note, e.Plate, e.Detail)
	if err != nil {
		return mapErr(err, "gate event "+e.EventID, nil)
	}
	return nil
}

// ResolveGateEvent records an operator's resolution of an event.
func (t *tx) ResolveGateEvent(eventID, by, note string, at time.Time) error {
	tag, err := t.q.Exec(t.ctx, `UPDATE gate_events SET resolved_at = $1, resolved_by = $2, resolution = $3
		WHERE event_id = $4`, ts(at), by, note, eventID)
	if err := t.note(err); err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("gate event %s: %w", eventID, store.ErrNotFound)
	}
	return nil
}

// ResolvePaymentException records an operator's resolution of a payment
// exception.
func (t *tx) ResolvePaymentException(id, by, note string, at time.Time) error {
	tag, err := t.q.Exec(t.ctx, `UPDATE payment_exceptions SET resolved_at = $1, resolved_by = $2, resolution = $3
		WHERE id = $4`, ts(at), by, note, id)
	if err := t.note(err); err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("payment exception %s: %w", id, store.ErrNotFound)
	}
	return nil
}

// PutOperator inserts or replaces an operator account.
func (t *tx) PutOperator(o store.Operator) error {
	err := t.exec(`INSERT INTO operators (name, password_hash, created_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, created_at = excluded.created_at`,
		o.Name, o.PasswordHash, ts(o.CreatedAt))
	if err != nil {
		return mapErr(err, "operator "+o.Name, nil)
	}
	return nil
}

// SetRelayPosition moves the relay's position forward to v.
func (t *tx) SetRelayPosition(v int64) error {
	return t.exec(`UPDATE relay_position SET version = greatest(version, $1) WHERE id = 1`, v)
}

// Enrollment returns one enrollment code, locked until the transaction
// ends, so that a second redemption of the same code waits and then sees
// it used.
func (t *tx) Enrollment(key []byte) (store.Enrollment, error) {
	var (
		e                    store.Enrollment
		created, exp, usedAt pgtype.Timestamptz
	)
	err := t.q.QueryRow(t.ctx, `SELECT key, gate_id, role, created_at, expires_at, used_at FROM enrollments WHERE key = $1 FOR UPDATE`, key).
		Scan(&e.Key, &e.GateID, &e.Role, &created, &exp, &usedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, fmt.Errorf("enrollment: %w", store.ErrNotFound)
	}
	e.CreatedAt, e.ExpiresAt, e.UsedAt = fromTS(created), fromTS(exp), fromTS(usedAt)
	return e, t.note(err)
}

// PutEnrollment inserts or replaces an enrollment code.
func (t *tx) PutEnrollment(e store.Enrollment) error {
	if len(e.Key) == 0 {
		return errors.New("enrollment: empty key")
	}
	err := t.exec(`INSERT INTO enrollments (key, gate_id, role, created_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (key) DO UPDATE SET gate_id = excluded.gate_id, role = excluded.role, created_at = excluded.created_at,
			expires_at = excluded.expires_at, used_at = excluded.used_at`,
		e.Key, e.GateID, e.Role, ts(e.CreatedAt), ts(e.ExpiresAt), ts(e.UsedAt))
	if err != nil {
		return mapErr(err, "enrollment for gate "+e.GateID, nil)
	}
	return nil
}
