// Package sqlitestore is the embedded default store.Store: one SQLite file,
// pure Go (modernc.org/sqlite), so centrald needs no database server and
// cross-compiles without cgo.
//
// SQLite allows one writer at a time. Instead of letting connections fight
// for the write lock (and fail with SQLITE_BUSY under load), every write goes
// through a single connection whose transactions begin IMMEDIATE, so writes
// queue in database/sql; reads use a separate pool of query-only connections,
// which WAL mode lets run alongside the writer (internal/sqlitedb).
package sqlitestore

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/internal/sqlitedb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is a store.Store on one SQLite file.
type Store struct {
	db *sqlitedb.DB

	// listeners are the channels of NotifyChanges, signalled after a
	// commit that logged changes. With SQLite every writer is in this
	// process, so this is the whole story.
	mu        sync.Mutex
	listeners map[chan struct{}]struct{}

	// gc is the group committer (groupcommit.go); nil when every Write
	// has a transaction of its own.
	gc *committer
	// wst: the writer's prepared statements (wstmt.go).
	wst *wstmts
	// writes counts Write calls that reached the writer, commits the
	// transactions committed (each an fsync): their ratio is the mean
	// batch size.
	writes, commits atomic.Int64
	// logSeq counts commits that logged changes (store.LogSequencer).
	logSeq atomic.Uint64
}

// CommitStats returns how many Writes reached the writer and how many
// transactions committed since Open. Without group commit they differ by
// the Writes that failed; with it, commits may be far fewer.
func (s *Store) CommitStats() (writes, commits int64) { return s.writes.Load(), s.commits.Load() }

// Option tunes Open.
type Option func(*options)

type options struct{ groupCommit bool }

// WithGroupCommit turns group commit on (the default) or off. Off, every
// Write is one transaction with an fsync of its own; on, concurrent Writes
// share one transaction and one fsync, each failing alone (groupcommit.go).
func WithGroupCommit(on bool) Option { return func(o *options) { o.groupCommit = on } }

var (
	_ store.Store          = (*Store)(nil)
	_ store.ChangeNotifier = (*Store)(nil)
	_ store.LogSequencer   = (*Store)(nil)
)

// LogSeq counts the commits that appended to the change log since Open; it
// is raised before such a commit's Write returns.
func (s *Store) LogSeq() uint64 { return s.logSeq.Load() }

// Open opens (creating it and its directory if needed) the database at path
// and brings its schema up to date. The path must not contain '?', which the
// driver reads as the start of its parameters.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	o := options{groupCommit: true}
	for _, opt := range opts {
		opt(&o)
	}
	migs, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	db, err := sqlitedb.Open(ctx, path, migs, sqlitedb.Options{})
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}
	s := &Store{db: db, wst: newWstmts(db.W)}
	if o.groupCommit {
		s.startCommitter()
	}
	return s, nil
}

// Ping checks the writer and the readers.
func (s *Store) Ping(ctx context.Context) error { return s.db.Ping(ctx) }

// Close closes the database; the WAL is checkpointed on the way out. A
// batch being committed finishes first; later Writes fail.
func (s *Store) Close() error {
	if s.gc != nil {
		s.stopCommitter()
	}
	s.wst.close()
	return s.db.Close()
}

// Write runs fn in an IMMEDIATE transaction on the writer and returns once
// fn's changes are on disk (or fn failed, changing nothing). With group
// commit (the default) that transaction may hold other Writes' fns too, each
// behind a savepoint of its own, so one's failure undoes only its changes.
// fn normally runs once; it runs again, alone, only if the shared
// transaction fails for a reason outside it (groupcommit.go). fn must not
// call Write itself, which would wait forever for the one writer.
func (s *Store) Write(ctx context.Context, fn func(tx store.Tx) error) error {
	if s.gc != nil {
		return s.groupWrite(ctx, fn)
	}
	s.writes.Add(1)
	var t *tx
	err := s.db.Write(ctx, func(sqlTx *sql.Tx) error {
		t = &tx{ctx: ctx, q: wtx{tx: sqlTx, st: s.wst}}
		return fn(t)
	})
	if s.wst.anyNoted() {
		// Prepared once the writer is free: in the background, so that
		// this Write's caller is not kept waiting for it (wstmt.go).
		go s.wst.prepareNoted()
	}
	if err == nil {
		s.commits.Add(1)
		if t.logged {
			s.logSeq.Add(1)
			s.signal()
		}
	}
	return err
}

// NotifyChanges calls fn after every commit that logged changes (several
// commits in a row may make one call), until ctx ends.
func (s *Store) NotifyChanges(ctx context.Context, fn func()) error {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	if s.listeners == nil {
		s.listeners = map[chan struct{}]struct{}{}
	}
	s.listeners[ch] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ch)
		s.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ch:
			fn()
		}
	}
}

// signal wakes every NotifyChanges without blocking the writer.
func (s *Store) signal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.listeners {
		select {
		case ch <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
}

// SetSpots makes ids the active spots, in that order; see store.Store.
// A retired spot listed again is re-activated and logged as added, so that
// followers of the change log learn it is back.
func (s *Store) SetSpots(ctx context.Context, ids []string, at time.Time) error {
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if id == "" {
			return errors.New("sqlitestore: empty spot id")
		}
		if seen[id] {
			return fmt.Errorf("sqlitestore: spot %q listed twice: %w", id, store.ErrDuplicate)
		}
		seen[id] = true
	}
	return s.Write(ctx, func(t store.Tx) error {
		tx := t.(*tx)
		rows, err := tx.q.QueryContext(ctx, `SELECT id, active FROM spots ORDER BY id`)
		if err != nil {
			return err
		}
		type spot struct {
			id     string
			active bool
		}
		known, err := sqlitedb.Collect(rows, func(sc sqlitedb.Scanner) (sp spot, err error) { return sp, sc.Scan(&sp.id, &sp.active) })
		if err != nil {
			return err
		}
		active := map[string]bool{}
		for _, sp := range known {
			active[sp.id] = sp.active
		}
		logSpot := func(kind, id string) error {
			return tx.Log(store.Change{At: at, Kind: kind, SpotID: id, Actor: "system"})
		}
		for i, id := range ids {
			if _, err := tx.q.ExecContext(ctx, `INSERT INTO spots (id, position, active, added_at) VALUES (?, ?, 1, ?)
				ON CONFLICT (id) DO UPDATE SET position = excluded.position, active = 1`, id, i, sqlitedb.Micros(at)); err != nil {
				return err
			}
			if !active[id] {
				if err := logSpot(store.KindSpotAdded, id); err != nil {
					return err
				}
			}
		}
		// known is in id order, so retirements are logged the same on every run.
		for _, sp := range known {
			if !sp.active || seen[sp.id] {
				continue
			}
			if _, err := tx.q.ExecContext(ctx, `UPDATE spots SET active = 0 WHERE id = ?`, sp.id); err != nil {
				return err
			}
			if err := logSpot(store.KindSpotRetired, sp.id); err != nil {
				return err
			}
		}
		return nil
	})
}

// Spots lists the active spots in SetSpots order.
func (s *Store) Spots(ctx context.Context) ([]string, error) {
	rows, err := s.db.Query(ctx, `SELECT id FROM spots WHERE active = 1 ORDER BY position, id`)
	if err != nil {
		return nil, err
	}
	return sqlitedb.Collect(rows, func(sc sqlitedb.Scanner) (id string, err error) { return id, sc.Scan(&id) })
}

// Get returns one reservation, or store.ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (reservation.Reservation, error) {
	return getOne(s.db.QueryRow(ctx, `SELECT `+resCols+` FROM reservations WHERE id = ?`, id), id)
}

// ByTokenHash returns the reservation whose token hashes to h.
func (s *Store) ByTokenHash(ctx context.Context, h []byte) (reservation.Reservation, error) {
	if len(h) == 0 {
		return reservation.Reservation{}, fmt.Errorf("reservation by token: %w", store.ErrNotFound)
	}
	return getOne(s.db.QueryRow(ctx, `SELECT `+resCols+` FROM reservations WHERE token_hash = ?`, h), "by token")
}

// Spot reports whether id is an active spot.
func (s *Store) Spot(ctx context.Context, id string) (bool, error) {
	var active bool
	err := s.db.QueryRow(ctx, `SELECT active FROM spots WHERE id = ?`, id).Scan(&active)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return active, err
}

// Current picks, per spot, at most three rows through the partial indexes
// on live and left reservations, so its cost does not grow with a spot's
// history or its number of future reservations.
func (s *Store) Current(ctx context.Context, spotID string, now time.Time) ([]reservation.Reservation, error) {
	rows, err := s.db.Query(ctx, `SELECT `+resCols+` FROM reservations WHERE id IN (
		SELECT id FROM reservations WHERE state = 'taken'
			AND spot_id IN (SELECT id FROM spots WHERE active = 1 AND (?2 = '' OR id = ?2))
		UNION ALL
		SELECT (SELECT r.id FROM reservations r
			WHERE r.spot_id = s.id AND r.state IN ('reserved', 'paid', 'taken') AND r.reserved_until > ?1
			ORDER BY r.reserved_until LIMIT 1)
		FROM spots s WHERE s.active = 1 AND (?2 = '' OR s.id = ?2)
		UNION ALL
		SELECT (SELECT r.id FROM reservations r
			WHERE r.spot_id = s.id AND r.state = 'left' AND r.reserved_until > ?1
			ORDER BY r.left_at DESC LIMIT 1)
		FROM spots s WHERE s.active = 1 AND (?2 = '' OR s.id = ?2))
		ORDER BY spot_id, reserved_from, id`, sqlitedb.Micros(now), spotID)
	if err != nil {
		return nil, err
	}
	return sqlitedb.Collect(rows, scanRes)
}

// List returns the reservations matching f, by spot position then window.
//
// A page (f.Limit) filtered at most by spot and states walks the spots in
// their order (spots_position) and each spot's reservations in theirs
// (reservations_spot_order, or reservations_state_spot for states), and
// stops at the limit: the first page costs the same after years of
// history. Without
// a limit every match is read anyway, and the other filters have indexes
// of their own (states and window end or creation, plate), so those
// queries find their rows first and sort only them.
func (s *Store) List(ctx context.Context, f store.Filter) ([]reservation.Reservation, error) {
	q, args := listQuery(f)
	rows, err := s.db.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return sqlitedb.Collect(rows, scanRes)
}

// listQuery is List's query for f, and its arguments.
func listQuery(f store.Filter) (string, []any) {
	walk := f.Limit > 0 && f.UntilAfter.IsZero() && f.FromBefore.IsZero() && f.CreatedBefore.IsZero() && f.CarID == ""
	var (
		where []string
		args  []any
	)
	add := func(cond string, a ...any) { where = append(where, cond); args = append(args, a...) }
	if f.SpotID != "" {
		add(`r.spot_id = ?`, f.SpotID)
		if walk {
			add(`sp.id = ?`, f.SpotID) // the spot by its key, not a walk of them all
		}
	}
	if len(f.States) > 0 {
		ph := strings.TrimSuffix(strings.Repeat("?, ", len(f.States)), ", ")
		a := make([]any, len(f.States))
		for i, st := range f.States {
			a[i] = string(st)
		}
		add(`r.state IN (`+ph+`)`, a...)
	}
	if !f.UntilAfter.IsZero() {
		add(`r.reserved_until > ?`, sqlitedb.Micros(f.UntilAfter))
	}
	if !f.FromBefore.IsZero() {
		add(`r.reserved_from < ?`, sqlitedb.Micros(f.FromBefore))
	}
	if !f.CreatedBefore.IsZero() {
		add(`r.created_at < ?`, sqlitedb.Micros(f.CreatedBefore))
	}
	if f.CarID != "" {
		// car_id <> '' lets SQLite use the partial index reservations_car,
		// which it cannot prove from car_id = ?.
		add(`r.car_id = ? AND r.car_id <> ''`, f.CarID)
	}
	cols := prefixed("r.", resCols)
	q := `SELECT ` + cols + ` FROM reservations r`
	order := ` ORDER BY (SELECT position FROM spots WHERE id = r.spot_id), r.spot_id, r.reserved_from, r.id`
	if walk {
		// CROSS JOIN keeps the spots as the outer loop; INDEXED BY makes
		// SQLite, which keeps no statistics, take the index that yields
		// the order, or fail loudly rather than sort years of history.
		idx := `reservations_spot_order`
		if len(f.States) > 0 {
			idx = `reservations_state_spot`
		}
		q = `SELECT ` + cols + ` FROM spots sp CROSS JOIN reservations r INDEXED BY ` + idx + ` ON r.spot_id = sp.id`
		order = ` ORDER BY sp.position, sp.id, r.reserved_from, r.id`
	}
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += order
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	return q, args
}

// prefixed qualifies each column of a column list with p.
func prefixed(p, cols string) string {
	fields := strings.Split(cols, ",")
	for i, f := range fields {
		fields[i] = p + strings.TrimSpace(f)
	}
	return strings.Join(fields, ", ")
}

// Version returns the latest change-log version.
func (s *Store) Version(ctx context.Context) (int64, error) {
	var v int64
	err := s.db.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM changes`).Scan(&v)
	return v, err
}

// Changes returns up to limit entries after version after (all of them if
// limit <= 0).
func (s *Store) Changes(ctx context.Context, after int64, limit int) ([]store.Change, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.db.Query(ctx, `SELECT version, at, kind, spot_id, reservation_id, actor, reservation, gate_id, note
		FROM changes WHERE version > ? ORDER BY version LIMIT ?`, after, limit)
	if err != nil {
		return nil, err
	}
	return sqlitedb.Collect(rows, func(sc sqlitedb.Scanner) (store.Change, error) {
		var (
			c    store.Change
			at   sql.NullInt64
			snap sql.NullString
		)
		if err := sc.Scan(&c.Version, &at, &c.Kind, &c.SpotID, &c.ReservationID, &c.Actor, &snap, &c.GateID, &c.Note); err != nil {
			return c, err
		}
		c.At = sqlitedb.FromMicros(at)
		if snap.Valid {
			var r reservation.Reservation
			if err := json.Unmarshal([]byte(snap.String), &r); err != nil {
				return c, fmt.Errorf("change %d: %w", c.Version, err)
			}
			r = normalize(r)
			c.Reservation = &r
		}
		return c, nil
	})
}

// RelayPosition returns the relay's recorded position in the log.
func (s *Store) RelayPosition(ctx context.Context) (int64, error) {
	var v int64
	err := s.db.QueryRow(ctx, `SELECT version FROM relay_position WHERE id = 1`).Scan(&v)
	return v, err
}

// PaymentAttempts lists a reservation's attempts by number.
func (s *Store) PaymentAttempts(ctx context.Context, reservationID string) ([]store.PaymentAttempt, error) {
	rows, err := s.db.Query(ctx, `SELECT `+attemptCols+` FROM payment_attempts
		WHERE reservation_id = ? ORDER BY number`, reservationID)
	if err != nil {
		return nil, err
	}
	return sqlitedb.Collect(rows, scanAttempt)
}

// UnsettledAttempts lists attempts whose outcome is open, oldest first.
func (s *Store) UnsettledAttempts(ctx context.Context, startedAfter, startedBefore time.Time, limit int) ([]store.PaymentAttempt, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.db.Query(ctx, `SELECT `+attemptCols+` FROM payment_attempts
		WHERE outcome IN ('pending', 'unknown', 'requires_action') AND started_at >= ? AND started_at < ?
		ORDER BY started_at, reservation_id, number LIMIT ?`, sqlitedb.Micros(startedAfter), sqlitedb.Micros(startedBefore), limit)
	if err != nil {
		return nil, err
	}
	return sqlitedb.Collect(rows, scanAttempt)
}

const paymentExceptionCols = `id, kind, reservation_id, amount, currency, provider_ref, reason, created_at,
	resolved_at, resolved_by, resolution`

// PaymentExceptions lists payment exceptions, newest first.
func (s *Store) PaymentExceptions(ctx context.Context, limit int) ([]store.PaymentException, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.db.Query(ctx, `SELECT `+paymentExceptionCols+` FROM payment_exceptions
		ORDER BY created_at DESC, id LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	return sqlitedb.Collect(rows, scanPaymentException)
}

// PaymentException returns one payment exception by its key.
func (s *Store) PaymentException(ctx context.Context, id string) (store.PaymentException, error) {
	e, err := scanPaymentException(s.db.QueryRow(ctx, `SELECT `+paymentExceptionCols+` FROM payment_exceptions WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("payment exception %s: %w", id, store.ErrNotFound)
	}
	return e, err
}

func scanPaymentException(sc sqlitedb.Scanner) (store.PaymentException, error) {
	var (
		e            store.PaymentException
		at, resolved sql.NullInt64
	)
	err := sc.Scan(&e.ID, &e.Kind, &e.ReservationID, &e.Amount, &e.Currency, &e.ProviderRef, &e.Reason, &at,
		&resolved, &e.ResolvedBy, &e.Resolution)
	e.CreatedAt, e.ResolvedAt = sqlitedb.FromMicros(at), sqlitedb.FromMicros(resolved)
	return e, err
}

// Error mapping. RAISE(ABORT) in the guard triggers arrives as
// SQLITE_CONSTRAINT_TRIGGER with the trigger's message in the text.
const (
	msgOverlap     = "parkgate: overlap"
	msgUnknownSpot = "parkgate: unknown spot"
)

// mapErr turns constraint failures into store errors; fk is what a foreign
// key failure means for the statement at hand.
func mapErr(err error, what string, fk error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return fmt.Errorf("%s: %w", what, err)
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_TRIGGER:
		switch {
		case strings.Contains(se.Error(), msgOverlap):
			return fmt.Errorf("%s: %w", what, store.ErrOverlap)
		case strings.Contains(se.Error(), msgUnknownSpot):
			return fmt.Errorf("%s: %w", what, store.ErrUnknownSpot)
		}
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return fmt.Errorf("%s: %w", what, store.ErrDuplicate)
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		if fk != nil {
			return fmt.Errorf("%s: %w", what, fk)
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// blob stores an empty hash as NULL, so that "no token" never collides in
// the unique index and reads back as nil.
func blob(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// normalize gives r the precision and zone it has once stored, so that the
// change-log snapshot equals what Get returns.
func normalize(r reservation.Reservation) reservation.Reservation {
	for _, t := range []*time.Time{&r.From, &r.Until, &r.CreatedAt, &r.PaidAt, &r.CheckedInAt, &r.LeftAt, &r.EndedAt} {
		*t = sqlitedb.Norm(*t)
	}
	return r
}

const resCols = `id, spot_id, state, source, reserved_from, reserved_until, created_at, car_id, amount, currency,
	reference, paid_at, checked_in_at, left_at, ended_at, token_hash, payment_attempts, payment_ref, payment_started_at`

func scanRes(sc sqlitedb.Scanner) (reservation.Reservation, error) {
	var (
		r                                                          reservation.Reservation
		from, until, created, paid, checkedIn, left, end, payStart sql.NullInt64
	)
	err := sc.Scan(&r.ID, &r.SpotID, &r.State, &r.Source, &from, &until, &created, &r.CarID, &r.Amount, &r.Currency,
		&r.Reference, &paid, &checkedIn, &left, &end, &r.TokenHash, &r.PaymentAttempts, &r.PaymentRef, &payStart)
	r.From, r.Until, r.CreatedAt = sqlitedb.FromMicros(from), sqlitedb.FromMicros(until), sqlitedb.FromMicros(created)
	r.PaidAt, r.CheckedInAt, r.LeftAt, r.EndedAt = sqlitedb.FromMicros(paid), sqlitedb.FromMicros(checkedIn), sqlitedb.FromMicros(left), sqlitedb.FromMicros(end)
	r.PaymentStartedAt = sqlitedb.FromMicros(payStart)
	return r, err
}

func getOne(row *sql.Row, what string) (reservation.Reservation, error) {
	r, err := scanRes(row)
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("reservation %s: %w", what, store.ErrNotFound)
	}
	return r, err
}

const attemptCols = `reservation_id, number, key_hash, request_hash, provider_key, outcome, provider_ref, message, amount, currency,
	car_id, payment_method, purpose, customer_ref, started_at, finished_at`

func scanAttempt(sc sqlitedb.Scanner) (store.PaymentAttempt, error) {
	var (
		a                 store.PaymentAttempt
		started, finished sql.NullInt64
	)
	err := sc.Scan(&a.ReservationID, &a.Number, &a.KeyHash, &a.RequestHash, &a.ProviderKey, &a.Outcome, &a.ProviderRef, &a.Message,
		&a.Amount, &a.Currency, &a.CarID, &a.PaymentMethod, &a.Purpose, &a.CustomerRef, &started, &finished)
	a.StartedAt, a.FinishedAt = sqlitedb.FromMicros(started), sqlitedb.FromMicros(finished)
	return a, err
}

const refundCols = `reservation_id, number, reason, amount, currency, charge_ref, provider_key, status, provider_ref,
	message, tries, created_at, finished_at`

func scanRefund(sc sqlitedb.Scanner) (store.Refund, error) {
	var (
		r                 store.Refund
		created, finished sql.NullInt64
	)
	err := sc.Scan(&r.ReservationID, &r.Number, &r.Reason, &r.Amount, &r.Currency, &r.ChargeRef, &r.ProviderKey,
		&r.Status, &r.ProviderRef, &r.Message, &r.Tries, &created, &finished)
	r.CreatedAt, r.FinishedAt = sqlitedb.FromMicros(created), sqlitedb.FromMicros(finished)
	return r, err
}

// latestRefundsQuery reads refunds_activity, declared in this order:
// without INDEXED BY, SQLite chose to sort every refund of the history.
const latestRefundsQuery = `SELECT ` + refundCols + ` FROM refunds INDEXED BY refunds_activity
	ORDER BY coalesce(finished_at, created_at) DESC, reservation_id, number LIMIT ?`

// LatestRefunds lists refunds, the latest recorded or settled first.
func (s *Store) LatestRefunds(ctx context.Context, limit int) ([]store.Refund, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.db.Query(ctx, latestRefundsQuery, limit)
	if err != nil {
		return nil, err
	}
	return sqlitedb.Collect(rows, scanRefund)
}

// Refunds lists a reservation's refunds by number.
func (s *Store) Refunds(ctx context.Context, reservationID string) ([]store.Refund, error) {
	rows, err := s.db.Query(ctx, `SELECT `+refundCols+` FROM refunds WHERE reservation_id = ? ORDER BY number`, reservationID)
	if err != nil {
		return nil, err
	}
	return sqlitedb.Collect(rows, scanRefund)
}

// PendingRefunds lists refunds still to settle, oldest first.
func (s *Store) PendingRefunds(ctx context.Context, limit int) ([]store.Refund, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.db.Query(ctx, `SELECT `+refundCols+` FROM refunds WHERE status = 'pending'
		ORDER BY created_at, reservation_id, number LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	return sqlitedb.Collect(rows, scanRefund)
}

// Gates lists every known gate by id.
func (s *Store) Gates(ctx context.Context) ([]store.Gate, error) {
	rows, err := s.db.Query(ctx, `SELECT `+gateCols+` FROM gates ORDER BY id`)
	if err != nil {
		return nil, err
	}
	return sqlitedb.Collect(rows, scanGate)
}

// GateEvents returns stored gate events, newest first.
func (s *Store) GateEvents(ctx context.Context, f store.EventFilter) ([]store.GateEvent, error) {
	q, args := gateEventsQuery(f)
	rows, err := s.db.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return sqlitedb.Collect(rows, scanGateEvent)
}

// gateEventsQuery is GateEvents' query for f, and its arguments. Each
// filter has an index that yields the order (migration 020), named with
// INDEXED BY: SQLite keeps no statistics, and without it chose to sort
// every event. The exception outcome is written out, not bound, because
// SQLite uses a partial index only when the query's terms prove the
// index's WHERE.
func gateEventsQuery(f store.EventFilter) (string, []any) {
	var (
		where []string
		args  []any
	)
	exception := f.Outcome == store.EventException
	if f.GateID != "" {
		where, args = append(where, `gate_id = ?`), append(args, f.GateID)
	}
	if exception {
		where = append(where, `outcome = 'exception'`)
	} else if f.Outcome != "" {
		// No caller lists the other outcomes; they are read in the
		// order of all events and filtered.
		where, args = append(where, `outcome = ?`), append(args, f.Outcome)
	}
	idx := `gate_events_feed`
	switch {
	case f.GateID != "" && exception:
		idx = `gate_events_gate_exceptions`
	case f.GateID != "":
		idx = `gate_events_gate`
	case exception:
		idx = `gate_events_exceptions`
	}
	q := `SELECT ` + gateEventReadCols + ` FROM gate_events INDEXED BY ` + idx
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY received_at DESC, gate_id, seq DESC`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	return q, args
}

// GateEvent returns one stored gate event by its key.
func (s *Store) GateEvent(ctx context.Context, eventID string) (store.GateEvent, error) {
	e, err := scanGateEvent(s.db.QueryRow(ctx, `SELECT `+gateEventReadCols+` FROM gate_events WHERE event_id = ?`, eventID))
	if errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("gate event %s: %w", eventID, store.ErrNotFound)
	}
	return e, err
}

// Gate returns one gate.
func (s *Store) Gate(ctx context.Context, id string) (store.Gate, error) {
	g, err := scanGate(s.db.QueryRow(ctx, `SELECT `+gateCols+` FROM gates WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return g, fmt.Errorf("gate %s: %w", id, store.ErrNotFound)
	}
	return g, err
}

// Operator returns one operator account.
func (s *Store) Operator(ctx context.Context, name string) (store.Operator, error) {
	var (
		o  store.Operator
		at sql.NullInt64
	)
	err := s.db.QueryRow(ctx, `SELECT name, password_hash, created_at FROM operators WHERE name = ?`, name).
		Scan(&o.Name, &o.PasswordHash, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return o, fmt.Errorf("operator %s: %w", name, store.ErrNotFound)
	}
	o.CreatedAt = sqlitedb.FromMicros(at)
	return o, err
}
