// Package pgstore is the PostgreSQL store.Store, for sites that run several
// centrald instances on one database (or want the database elsewhere). It
// behaves exactly as sqlitestore does; storetest holds both to one suite.
//
// SQLite has one writer at a time, so sqlitestore gets its guarantees for
// free. Here several transactions write at once, in several processes, and
// the same guarantees come from the database:
//
//   - Double booking: an exclusion constraint on (spot, window) for live
//     reservations refuses it whatever the callers do.
//   - Writers of one spot are serialised by a row lock on the spot, taken
//     before a reservation of that spot is written. Without it, two
//     transactions inserting overlapping windows each wait for the other's
//     uncommitted row in the exclusion check: a deadlock (measured: 40P01
//     at 8 and at 64 connections).
//   - Whatever deadlock or serialisation failure remains (e.g. a
//     transaction writing two spots in the opposite order of another) is
//     retried by Write, so a losing booking still gets store.ErrOverlap.
//   - The change log's versions are handed out at commit, under an
//     advisory lock held until the commit, so they become visible in
//     version order (see Write).
package pgstore

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/internal/migration"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrateLock is the advisory lock key under which Open installs
// btree_gist and migrates. Advisory locks, like extensions, belong to the
// whole database, so one key covers every schema: instances starting at
// once apply each migration exactly once, and never race on CREATE
// EXTENSION (which fails with a unique violation when two sessions create
// the same extension at the same time). The value spells "parkgate".
const migrateLock int64 = 0x7061726b67617465

// DefaultMaxConns is the pool size when the DSN sets no pool_max_conns:
// enough for the HTTP handlers, the sweeper and the relays of one
// instance, and small enough that a few instances stay well under
// PostgreSQL's default max_connections of 100.
const DefaultMaxConns = 16

// Write retries a transaction that failed with a deadlock or a
// serialisation failure at most this many times in all, sleeping a
// jittered, doubling backoff in between (so that the transactions that
// collided do not collide again in step).
const (
	maxWriteAttempts = 10
	retryBase        = 4 * time.Millisecond
	retryMax         = 200 * time.Millisecond
)

// Store is a store.Store on a PostgreSQL database (one schema of it: the
// first existing schema of the connection's search_path).
type Store struct {
	pool *pgxpool.Pool
	// logLock serialises the end of the transactions that append to the
	// change log; spotsLock serialises SetSpots. Both are keyed by schema,
	// so that sites sharing a database do not wait for each other.
	logLock, spotsLock int64
	// channel is the LISTEN/NOTIFY channel of this schema's change log.
	channel string
	// noSpotLock turns off the spot row lock of Insert and Update, so that
	// a test can show the retries alone still give every loser
	// store.ErrOverlap.
	noSpotLock bool
	// retries counts the transactions Write ran again.
	retries atomic.Int64
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at dsn (a postgres:// URL or a keyword/value
// string, as pgxpool.ParseConfig reads them, pool_* settings included),
// installs btree_gist if needed and brings the schema up to date. Tables
// live in the first existing schema of the search_path (set search_path in
// the DSN to keep a site in its own schema).
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	// ParseConfig fills in its own default (4, or the number of CPUs), too
	// small for the booking peaks; a DSN that says otherwise wins.
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
	}
	// Names the sessions in pg_stat_activity, where an operator looks for
	// who holds a lock.
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "parkgate"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	s := &Store{pool: pool}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	var schema string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	s.logLock, s.spotsLock = lockKey("changes", schema), lockKey("spots", schema)
	// Notifications belong to the database, like advisory locks: one
	// channel per schema, so that sites sharing a database do not wake
	// each other's relays.
	s.channel = fmt.Sprintf("parkgate_changes_%016x", uint64(s.logLock))
	return s, nil
}

var _ store.ChangeNotifier = (*Store)(nil)

// NotifyChanges listens, on a connection of its own, to the notification
// every Write that logs changes sends with its commit, from any instance,
// and calls fn for each (PostgreSQL delivers them only once committed).
// It returns nil when ctx ends, or the connection's error.
func (s *Store) NotifyChanges(ctx context.Context, fn func()) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return fmt.Errorf("pgstore: listening for changes: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+s.channel); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("pgstore: listening for changes: %w", err)
	}
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("pgstore: waiting for changes: %w", err)
		}
		fn()
	}
}

// lockKey derives an advisory lock key for one purpose in one schema.
func lockKey(purpose, schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("parkgate." + purpose + "\x00" + schema))
	return int64(h.Sum64())
}

// migrate applies the embedded migrations not yet recorded in
// schema_migrations, all in one transaction that holds migrateLock: a
// second instance starting at the same time waits, then finds them
// applied. A failed migration leaves nothing behind.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migration.Read(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLock); err != nil {
			return err
		}
		var schema *string
		if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
			return err
		}
		if schema == nil {
			return errors.New("no schema of the search_path exists: create it first")
		}
		if err := ensureBtreeGist(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version bigint PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		var cur int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&cur); err != nil {
			return err
		}
		for _, m := range ms {
			if m.Version <= cur {
				continue
			}
			// No arguments: pgx sends it with the simple protocol, which
			// runs a file of several statements.
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return fmt.Errorf("%s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`,
				m.Version, path.Base(m.Name)); err != nil {
				return err
			}
		}
		return nil
	})
}

// ensureBtreeGist installs btree_gist, which the overlap constraint needs
// for "spot_id WITH =" in a GiST index, unless it is there. It goes into
// public when that schema exists, not into the site's schema: an extension
// belongs to the whole database, and if it lived in one site's schema,
// dropping that schema (CASCADE) would drop it, and with it the overlap
// constraint of every other site. Where it lives does not matter for the
// constraint: a default operator class is found whatever the search_path.
// An already installed extension needs no privilege, so a DBA may install
// it once and run centrald as a user that could not.
func ensureBtreeGist(ctx context.Context, tx pgx.Tx) error {
	var have, public bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'btree_gist'),
		EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'public')`).Scan(&have, &public); err != nil {
		return err
	}
	if have {
		return nil
	}
	q := `CREATE EXTENSION IF NOT EXISTS btree_gist`
	if public {
		q += ` WITH SCHEMA public`
	}
	if _, err := tx.Exec(ctx, q); err != nil {
		return fmt.Errorf("install btree_gist (if this user may not, have a superuser run %q once): %w", q, err)
	}
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Close closes the pool, waiting for the connections in use to be
// returned.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Write runs fn in one READ COMMITTED transaction and commits if fn returns
// nil. The locks (Tx.Get, the spot lock of Insert and Update, the log lock
// at the end) give what SQLite's single writer gives; READ COMMITTED is
// what they are designed for, whatever default_transaction_isolation says.
//
// The change-log entries fn logged are inserted last: Write takes the log's
// advisory lock, inserts them (their versions come from the table's
// identity) and commits; the lock is released after the commit. PostgreSQL
// makes a transaction visible before it releases its locks, so the next
// transaction to take a version sees every lower one committed: versions
// become visible in order. The lock is taken only once fn is done, when the
// transaction needs no further row lock, so it cannot take part in a
// deadlock; it does make the commits of logging transactions (and their
// WAL flush) one at a time.
//
// A deadlock, serialisation failure or unavailable lock (see retryable)
// anywhere in the transaction, even one fn swallowed, runs fn again in a
// new transaction after a jittered backoff, up to maxWriteAttempts times
// in all and never past ctx. A panic in fn rolls back and reaches the
// caller.
func (s *Store) Write(ctx context.Context, fn func(tx store.Tx) error) error {
	var spots []string // the spots the last run locked
	for attempt := 1; ; attempt++ {
		retry, err := s.writeOnce(ctx, fn, &spots)
		if err == nil || !retry || attempt == maxWriteAttempts {
			return err
		}
		s.retries.Add(1)
		d := min(retryBase<<(attempt-1), retryMax)
		d = d/2 + rand.N(d/2+1)
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("%w (not retried: %w)", err, ctx.Err())
		case <-timer.C:
		}
	}
}

// writeOnce runs fn in one transaction; retry says whether it failed with
// an error worth running it again for.
//
// spots carries the spots a failed run locked to the next run, which
// locks them all first, in id order, waiting for each: a transaction that
// writes several spots lost a race for one of them (see tx.lockSpot), and
// the same transactions running again in the same order would keep
// colliding, where taking them in one global order cannot deadlock.
func (s *Store) writeOnce(ctx context.Context, fn func(tx store.Tx) error, spots *[]string) (retry bool, err error) {
	ptx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	// Rolls back on every way out but a commit (a panic included), even if
	// ctx is done, so that the connection goes back to the pool clean.
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		ptx.Rollback(rctx)
	}()
	t := &tx{ctx: ctx, q: ptx, s: s}
	defer func() { *spots = slices.Sorted(maps.Keys(t.spots)) }()
	if len(*spots) > 1 {
		if err := t.exec(`SELECT 1 FROM spots WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE`, *spots); err != nil {
			return retryable(err), fmt.Errorf("lock spots %v: %w", *spots, err)
		}
		for _, id := range *spots {
			t.addSpot(id)
		}
	}
	if err := fn(t); err != nil {
		return retryable(err) || retryable(t.failed), err
	}
	if t.failed != nil {
		// fn went on after a failed statement, but PostgreSQL refuses the
		// rest of the transaction: the commit would only roll back.
		return retryable(t.failed), fmt.Errorf("pgstore: the transaction went on after a failed statement: %w", t.failed)
	}
	if len(t.changes) > 0 {
		b := &pgx.Batch{}
		b.Queue(`SELECT pg_advisory_xact_lock($1)`, s.logLock)
		// Delivered at commit, and not at all on a rollback.
		b.Queue(`SELECT pg_notify($1, '')`, s.channel)
		for _, c := range t.changes {
			b.Queue(`INSERT INTO changes (at, kind, spot_id, reservation_id, actor, reservation, gate_id, note)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, c.at, c.kind, c.spotID, c.reservationID, c.actor, c.snap, c.gateID, c.note)
		}
		if err := ptx.SendBatch(ctx, b).Close(); err != nil {
			return retryable(err), fmt.Errorf("log: %w", err)
		}
	}
	if err := ptx.Commit(ctx); err != nil {
		// Only a refusal from the server is retried: after a lost
		// connection the commit may have happened.
		return retryable(err), fmt.Errorf("commit: %w", err)
	}
	return false, nil
}

// retryable reports whether err is a deadlock (40P01), a serialisation
// failure (40001) or a lock that was not available (55P03: a second spot
// lock taken NOWAIT, see lockSpot, or a lock_timeout set on the server):
// the transaction lost a race for a lock, and the same work may succeed
// if run again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001" || pe.Code == "55P03")
}

// SetSpots makes ids the active spots, in that order; see store.Store.
// A retired spot listed again is re-activated and logged as added, so that
// followers of the change log learn it is back. Instances calling it at
// once (at startup) take turns, so each change is logged once.
func (s *Store) SetSpots(ctx context.Context, ids []string, at time.Time) error {
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if id == "" {
			return errors.New("pgstore: empty spot id")
		}
		if seen[id] {
			return fmt.Errorf("pgstore: spot %q listed twice: %w", id, store.ErrDuplicate)
		}
		seen[id] = true
	}
	return s.Write(ctx, func(st store.Tx) error {
		tx := st.(*tx)
		if err := tx.exec(`SELECT pg_advisory_xact_lock($1)`, s.spotsLock); err != nil {
			return err
		}
		type spot struct {
			id     string
			active bool
		}
		known, err := txCollect(tx, func(r pgx.Row) (sp spot, err error) { return sp, r.Scan(&sp.id, &sp.active) },
			`SELECT id, active FROM spots ORDER BY id`)
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
			if err := tx.exec(`INSERT INTO spots (id, position, active, added_at) VALUES ($1, $2, true, $3)
				ON CONFLICT (id) DO UPDATE SET position = excluded.position, active = true`, id, i, ts(at)); err != nil {
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
			if err := tx.exec(`UPDATE spots SET active = false WHERE id = $1`, sp.id); err != nil {
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
	rows, err := s.pool.Query(ctx, `SELECT id FROM spots WHERE active ORDER BY position, id`)
	return collect(err, rows, func(r pgx.Row) (id string, err error) { return id, r.Scan(&id) })
}

// Spot reports whether id is an active spot.
func (s *Store) Spot(ctx context.Context, id string) (bool, error) {
	var active bool
	err := s.pool.QueryRow(ctx, `SELECT active FROM spots WHERE id = $1`, id).Scan(&active)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return active, err
}

// Get returns one reservation, or store.ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (reservation.Reservation, error) {
	return getOne(s.pool.QueryRow(ctx, `SELECT `+resCols+` FROM reservations WHERE id = $1`, id), id)
}

// ByTokenHash returns the reservation whose token hashes to h.
func (s *Store) ByTokenHash(ctx context.Context, h []byte) (reservation.Reservation, error) {
	if len(h) == 0 {
		return reservation.Reservation{}, fmt.Errorf("reservation by token: %w", store.ErrNotFound)
	}
	return getOne(s.pool.QueryRow(ctx, `SELECT `+resCols+` FROM reservations WHERE token_hash = $1`, h), "by token")
}

// Current picks, per spot, at most three rows: the taken ones, then through
// the partial indexes on live and left reservations (one LATERAL lookup per
// spot) the live one ending first after now and the one that left last
// among those whose window is not over. Its cost does not grow with a
// spot's history or its number of future reservations. NULLS LAST keeps
// SQLite's order, where NULL sorts lowest and so last when descending.
func (s *Store) Current(ctx context.Context, spotID string, now time.Time) ([]reservation.Reservation, error) {
	rows, err := s.pool.Query(ctx, `WITH s AS (SELECT id FROM spots WHERE active AND ($2 = '' OR id = $2))
		SELECT `+resCols+` FROM reservations WHERE id IN (
			SELECT r.id FROM s JOIN reservations r ON r.spot_id = s.id AND r.state = 'taken'
			UNION ALL
			SELECT n.id FROM s CROSS JOIN LATERAL (SELECT r.id FROM reservations r
				WHERE r.spot_id = s.id AND r.state IN ('reserved', 'paid', 'taken') AND r.reserved_until > $1
				ORDER BY r.reserved_until LIMIT 1) n
			UNION ALL
			SELECT l.id FROM s CROSS JOIN LATERAL (SELECT r.id FROM reservations r
				WHERE r.spot_id = s.id AND r.state = 'left' AND r.reserved_until > $1
				ORDER BY r.left_at DESC NULLS LAST, r.id LIMIT 1) l)
		ORDER BY spot_id, reserved_from, id`, ts(now), spotID)
	return collect(err, rows, scanRes)
}

// List returns the reservations matching f, by spot position then window.
// The order names the spot's id rather than the reservation's (the same,
// through the join), so that PostgreSQL can walk spots_position and each
// spot's reservations in reservations_spot_order or
// reservations_state_spot, sorting only a spot's own rows, and stop at the
// limit; its statistics let it find the rows of a rare state through
// reservations_state_spot alone instead.
func (s *Store) List(ctx context.Context, f store.Filter) ([]reservation.Reservation, error) {
	q, args := listQuery(f)
	rows, err := s.pool.Query(ctx, q, args...)
	return collect(err, rows, scanRes)
}

// listQuery is List's query for f, and its arguments.
func listQuery(f store.Filter) (string, []any) {
	var (
		where []string
		args  []any
	)
	add := func(cond string, a any) {
		args = append(args, a)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.SpotID != "" {
		add(`r.spot_id = ?`, f.SpotID)
	}
	if len(f.States) > 0 {
		// The states are written out, as quoted constants, so that even a
		// prepared statement's generic plan tells a rare state from the
		// bulk of the history. A state that is not one of them matches no
		// row (the column's CHECK allows no other), so it is left out.
		var lits []string
		for _, x := range f.States {
			if x.Valid() {
				lits = append(lits, `'`+string(x)+`'`)
			}
		}
		if len(lits) == 0 {
			where = append(where, `false`)
		} else {
			where = append(where, `r.state IN (`+strings.Join(lits, ", ")+`)`)
		}
	}
	if !f.UntilAfter.IsZero() {
		add(`r.reserved_until > ?`, ts(f.UntilAfter))
	}
	if !f.FromBefore.IsZero() {
		add(`r.reserved_from < ?`, ts(f.FromBefore))
	}
	if !f.CreatedBefore.IsZero() {
		add(`r.created_at < ?`, ts(f.CreatedBefore))
	}
	if f.CarID != "" {
		add(`r.car_id = ?`, f.CarID)
	}
	q := `SELECT ` + prefixed("r.", resCols) + ` FROM reservations r JOIN spots sp ON sp.id = r.spot_id`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY sp.position, sp.id, r.reserved_from, r.id`
	if f.Limit > 0 {
		args = append(args, f.Limit)
		q += ` LIMIT $` + strconv.Itoa(len(args))
	}
	return q, args
}

// RelayPosition returns the relay's recorded position in the log.
func (s *Store) RelayPosition(ctx context.Context) (int64, error) {
	var v int64
	err := s.pool.QueryRow(ctx, `SELECT version FROM relay_position WHERE id = 1`).Scan(&v)
	return v, err
}

// Version returns the latest change-log version.
func (s *Store) Version(ctx context.Context) (int64, error) {
	var v int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM changes`).Scan(&v)
	return v, err
}

// Changes returns up to limit entries after version after (all of them if
// limit <= 0).
func (s *Store) Changes(ctx context.Context, after int64, limit int) ([]store.Change, error) {
	rows, err := s.pool.Query(ctx, `SELECT version, at, kind, spot_id, reservation_id, actor, reservation, gate_id, note
		FROM changes WHERE version > $1 ORDER BY version LIMIT $2`, after, noLimit(limit))
	return collect(err, rows, func(r pgx.Row) (store.Change, error) {
		var (
			c    store.Change
			at   pgtype.Timestamptz
			snap []byte
		)
		if err := r.Scan(&c.Version, &at, &c.Kind, &c.SpotID, &c.ReservationID, &c.Actor, &snap, &c.GateID, &c.Note); err != nil {
			return c, err
		}
		c.At = fromTS(at)
		if snap != nil {
			var res reservation.Reservation
			if err := json.Unmarshal(snap, &res); err != nil {
				return c, fmt.Errorf("change %d: %w", c.Version, err)
			}
			res = normalize(res)
			c.Reservation = &res
		}
		return c, nil
	})
}

// PaymentAttempts lists a reservation's attempts by number.
func (s *Store) PaymentAttempts(ctx context.Context, reservationID string) ([]store.PaymentAttempt, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+attemptCols+` FROM payment_attempts
		WHERE reservation_id = $1 ORDER BY number`, reservationID)
	return collect(err, rows, scanAttempt)
}

// UnsettledAttempts lists attempts whose outcome is open, oldest first.
func (s *Store) UnsettledAttempts(ctx context.Context, startedAfter, startedBefore time.Time, limit int) ([]store.PaymentAttempt, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+attemptCols+` FROM payment_attempts
		WHERE outcome IN ('pending', 'unknown', 'requires_action') AND started_at >= $1 AND started_at < $2
		ORDER BY started_at, reservation_id, number LIMIT $3`, ts(startedAfter), ts(startedBefore), noLimit(limit))
	return collect(err, rows, scanAttempt)
}

const paymentExceptionCols = `id, kind, reservation_id, amount, currency, provider_ref, reason, created_at,
	resolved_at, resolved_by, resolution`

// PaymentExceptions lists payment exceptions, newest first.
func (s *Store) PaymentExceptions(ctx context.Context, limit int) ([]store.PaymentException, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+paymentExceptionCols+` FROM payment_exceptions
		ORDER BY created_at DESC, id LIMIT $1`, noLimit(limit))
	return collect(err, rows, scanPaymentException)
}

// PaymentException returns one payment exception by its key.
func (s *Store) PaymentException(ctx context.Context, id string) (store.PaymentException, error) {
	e, err := scanPaymentException(s.pool.QueryRow(ctx, `SELECT `+paymentExceptionCols+` FROM payment_exceptions WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, fmt.Errorf("payment exception %s: %w", id, store.ErrNotFound)
	}
	return e, err
}

func scanPaymentException(row pgx.Row) (store.PaymentException, error) {
	var (
		e            store.PaymentException
		at, resolved pgtype.Timestamptz
	)
	err := row.Scan(&e.ID, &e.Kind, &e.ReservationID, &e.Amount, &e.Currency, &e.ProviderRef, &e.Reason, &at,
		&resolved, &e.ResolvedBy, &e.Resolution)
	e.CreatedAt, e.ResolvedAt = fromTS(at), fromTS(resolved)
	return e, err
}

// latestRefundsQuery reads refunds_activity, declared in this order.
const latestRefundsQuery = `SELECT ` + refundCols + ` FROM refunds
	ORDER BY coalesce(finished_at, created_at) DESC, reservation_id, number LIMIT $1`

// LatestRefunds lists refunds, the latest recorded or settled first.
func (s *Store) LatestRefunds(ctx context.Context, limit int) ([]store.Refund, error) {
	rows, err := s.pool.Query(ctx, latestRefundsQuery, noLimit(limit))
	return collect(err, rows, scanRefund)
}

// Refunds lists a reservation's refunds by number.
func (s *Store) Refunds(ctx context.Context, reservationID string) ([]store.Refund, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+refundCols+` FROM refunds WHERE reservation_id = $1 ORDER BY number`, reservationID)
	return collect(err, rows, scanRefund)
}

// PendingRefunds lists refunds still to settle, oldest first.
func (s *Store) PendingRefunds(ctx context.Context, limit int) ([]store.Refund, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+refundCols+` FROM refunds WHERE status = 'pending'
		ORDER BY created_at, reservation_id, number LIMIT $1`, noLimit(limit))
	return collect(err, rows, scanRefund)
}

// Gates lists every known gate by id.
func (s *Store) Gates(ctx context.Context) ([]store.Gate, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+gateCols+` FROM gates ORDER BY id`)
	return collect(err, rows, scanGate)
}

// Gate returns one gate.
func (s *Store) Gate(ctx context.Context, id string) (store.Gate, error) {
	g, err := scanGate(s.pool.QueryRow(ctx, `SELECT `+gateCols+` FROM gates WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return g, fmt.Errorf("gate %s: %w", id, store.ErrNotFound)
	}
	return g, err
}

// GateEvents returns stored gate events, newest first. The query names
// only the filters given (a bound "empty or equal" test hides from a
// generic plan which index fits) and writes the exception outcome out, so
// that the partial indexes of exceptions match; each filter has an index
// in the list's order (migration 017).
func (s *Store) GateEvents(ctx context.Context, f store.EventFilter) ([]store.GateEvent, error) {
	q, args := gateEventsQuery(f)
	rows, err := s.pool.Query(ctx, q, args...)
	return collect(err, rows, scanGateEvent)
}

// gateEventsQuery is GateEvents' query for f, and its arguments.
func gateEventsQuery(f store.EventFilter) (string, []any) {
	var (
		where []string
		args  []any
	)
	if f.GateID != "" {
		args = append(args, f.GateID)
		where = append(where, `gate_id = $`+strconv.Itoa(len(args)))
	}
	if f.Outcome == store.EventException {
		where = append(where, `outcome = 'exception'`)
	} else if f.Outcome != "" {
		args = append(args, f.Outcome)
		where = append(where, `outcome = $`+strconv.Itoa(len(args)))
	}
	q := `SELECT ` + gateEventReadCols + ` FROM gate_events`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY received_at DESC, gate_id, seq DESC`
	if f.Limit > 0 {
		args = append(args, f.Limit)
		q += ` LIMIT $` + strconv.Itoa(len(args))
	}
	return q, args
}

// GateEvent returns one stored gate event by its key.
func (s *Store) GateEvent(ctx context.Context, eventID string) (store.GateEvent, error) {
	e, err := scanGateEvent(s.pool.QueryRow(ctx, `SELECT `+gateEventReadCols+` FROM gate_events WHERE event_id = $1`, eventID))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, fmt.Errorf("gate event %s: %w", eventID, store.ErrNotFound)
	}
	return e, err
}

// noLimit turns "no limit" (<= 0) into LIMIT NULL, which PostgreSQL reads
// as none.
func noLimit(limit int) any {
	if limit <= 0 {
		return nil
	}
	return limit
}

// collect scans every row with scan; err is the error of the Query that
// returned rows (rows is unused then).
func collect[T any](err error, rows pgx.Rows, scan func(pgx.Row) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return scan(r) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Error mapping: constraint failures become store errors. The guard
// trigger's unknown spot arrives as a foreign_key_violation naming
// reservations_spot_active.
const constraintSpotActive = "reservations_spot_active"

// mapErr turns constraint failures into store errors; fk is what a foreign
// key failure means for the statement at hand. Other errors (deadlocks
// included, which Write must recognise) stay wrapped as they are.
func mapErr(err error, what string, fk error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", what, err)
	}
	switch pe.Code {
	case "23P01": // exclusion_violation
		return fmt.Errorf("%s: %w", what, store.ErrOverlap)
	case "23505": // unique_violation
		return fmt.Errorf("%s: %w", what, store.ErrDuplicate)
	case "23503": // foreign_key_violation
		if pe.ConstraintName == constraintSpotActive {
			return fmt.Errorf("%s: %w", what, store.ErrUnknownSpot)
		}
		if fk != nil {
			return fmt.Errorf("%s: %w", what, fk)
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// ts is how a time is written: microsecond precision (PostgreSQL's) in
// UTC, the zero time as NULL. Rounding here rather than in the server
// makes the stored instant the one normalize gives the change-log
// snapshot.
func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return norm(t)
}

// fromTS reads a time written by ts, in UTC (pgx returns local times).
func fromTS(v pgtype.Timestamptz) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return v.Time.UTC()
}

// norm gives t the precision and zone it has once stored, so that what a
// caller gets back from a write equals what a later read returns.
func norm(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.UnixMicro(t.UnixMicro()).UTC()
}

// normalize gives r the precision and zone it has once stored, so that the
// change-log snapshot equals what Get returns.
func normalize(r reservation.Reservation) reservation.Reservation {
	for _, t := range []*time.Time{&r.From, &r.Until, &r.CreatedAt, &r.PaidAt, &r.CheckedInAt, &r.LeftAt, &r.EndedAt} {
		*t = norm(*t)
	}
	return r
}

// blob stores an empty hash as NULL, so that "no token" never collides in
// the unique index and reads back as nil.
func blob(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// prefixed qualifies each column of a column list with p.
func prefixed(p, cols string) string {
	fields := strings.Split(cols, ",")
	for i, f := range fields {
		fields[i] = p + strings.TrimSpace(f)
	}
	return strings.Join(fields, ", ")
}

const resCols = `id, spot_id, state, source, reserved_from, reserved_until, created_at, car_id, amount, currency,
	reference, paid_at, checked_in_at, left_at, ended_at, token_hash, payment_attempts, payment_ref, payment_started_at`

func scanRes(row pgx.Row) (reservation.Reservation, error) {
	var (
		r                                                          reservation.Reservation
		state, source                                              string
		from, until, created, paid, checkedIn, left, end, payStart pgtype.Timestamptz
	)
	err := row.Scan(&r.ID, &r.SpotID, &state, &source, &from, &until, &created, &r.CarID, &r.Amount, &r.Currency,
		&r.Reference, &paid, &checkedIn, &left, &end, &r.TokenHash, &r.PaymentAttempts, &r.PaymentRef, &payStart)
	r.State, r.Source = reservation.State(state), reservation.Source(source)
	r.From, r.Until, r.CreatedAt = fromTS(from), fromTS(until), fromTS(created)
	r.PaidAt, r.CheckedInAt, r.LeftAt, r.EndedAt = fromTS(paid), fromTS(checkedIn), fromTS(left), fromTS(end)
	r.PaymentStartedAt = fromTS(payStart)
	return r, err
}

func getOne(row pgx.Row, what string) (reservation.Reservation, error) {
	r, err := scanRes(row)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("reservation %s: %w", what, store.ErrNotFound)
	}
	return r, err
}

const attemptCols = `reservation_id, number, key_hash, request_hash, provider_key, outcome, provider_ref, message, amount, currency,
	car_id, payment_method, purpose, customer_ref, started_at, finished_at`

func scanAttempt(row pgx.Row) (store.PaymentAttempt, error) {
	var (
		a                 store.PaymentAttempt
		started, finished pgtype.Timestamptz
	)
	err := row.Scan(&a.ReservationID, &a.Number, &a.KeyHash, &a.RequestHash, &a.ProviderKey, &a.Outcome, &a.ProviderRef, &a.Message,
		&a.Amount, &a.Currency, &a.CarID, &a.PaymentMethod, &a.Purpose, &a.CustomerRef, &started, &finished)
	a.StartedAt, a.FinishedAt = fromTS(started), fromTS(finished)
	return a, err
}

const refundCols = `reservation_id, number, reason, amount, currency, charge_ref, provider_key, status, provider_ref,
	message, tries, created_at, finished_at`

func scanRefund(row pgx.Row) (store.Refund, error) {
	var (
		r                 store.Refund
		created, finished pgtype.Timestamptz
	)
	err := row.Scan(&r.ReservationID, &r.Number, &r.Reason, &r.Amount, &r.Currency, &r.ChargeRef, &r.ProviderKey,
		&r.Status, &r.ProviderRef, &r.Message, &r.Tries, &created, &finished)
	r.CreatedAt, r.FinishedAt = fromTS(created), fromTS(finished)
	return r, err
}

const gateCols = `id, password_hash, role, online, session, last_seen, cache_version, outbox, barrier, software, added_at, faults`

func scanGate(row pgx.Row) (store.Gate, error) {
	var (
		g           store.Gate
		seen, added pgtype.Timestamptz
		faults      string
	)
	err := row.Scan(&g.ID, &g.PasswordHash, &g.Role, &g.Online, &g.Session, &seen, &g.CacheVersion, &g.Outbox,
		&g.Barrier, &g.Software, &added, &faults)
	g.LastSeen, g.AddedAt = fromTS(seen), fromTS(added)
	if err == nil {
		g.Faults, err = store.DecodeFaults(faults)
	}
	return g, err
}

const gateEventCols = `event_id, gate_id, seq, kind, role, at, source, granted, reason, reservation_id, spot_id, car_id,
	overstay, presence_unknown, clock_trusted, received_at, outcome, note, plate, detail`

// gateEventReadCols are gateEventCols and the operator's resolution,
// which PutGateEvent never writes.
const gateEventReadCols = gateEventCols + `, resolved_at, resolved_by, resolution`

func scanGateEvent(row pgx.Row) (store.GateEvent, error) {
	var (
		e                      store.GateEvent
		at, received, resolved pgtype.Timestamptz
	)
	err := row.Scan(&e.EventID, &e.GateID, &e.Seq, &e.Kind, &e.Role, &at, &e.Source, &e.Granted, &e.Reason,
		&e.ReservationID, &e.SpotID, &e.CarID, &e.Overstay, &e.PresenceUnknown, &e.ClockTrusted, &received,
		&e.Outcome, &e.Note, &e.Plate, &e.Detail, &resolved, &e.ResolvedBy, &e.Resolution)
	e.Time, e.ReceivedAt, e.ResolvedAt = fromTS(at), fromTS(received), fromTS(resolved)
	return e, err
}

// Operator returns one operator account.
func (s *Store) Operator(ctx context.Context, name string) (store.Operator, error) {
	var (
		o  store.Operator
		at pgtype.Timestamptz
	)
	err := s.pool.QueryRow(ctx, `SELECT name, password_hash, created_at FROM operators WHERE name = $1`, name).
		Scan(&o.Name, &o.PasswordHash, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return o, fmt.Errorf("operator %s: %w", name, store.ErrNotFound)
	}
	o.CreatedAt = fromTS(at)
	return o, err
}
