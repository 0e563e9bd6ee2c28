// Package sqlitedb opens a SQLite file the way both of parkgate's embedded
// stores need it (centrald's sqlitestore and the gate's localdb), with the
// pure-Go driver modernc.org/sqlite:
//
//   - WAL mode with synchronous=FULL: a committed write survives a power
//     cut, not only a crash;
//   - one writer connection whose transactions BEGIN IMMEDIATE, so writes
//     queue in database/sql instead of failing with SQLITE_BUSY under load;
//   - a pool of query-only reader connections, which WAL lets run beside
//     the writer, with each distinct query prepared once;
//   - numbered .sql migrations, embedded in the binary and applied at open
//     in one transaction.
//
// Times are stored as INTEGER unix microseconds UTC (PostgreSQL's
// precision), the zero time as NULL.
package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver, "sqlite"

	"github.com/parkgate/parkgate/internal/migration"
)

// Every connection waits this long for a lock rather than failing at once:
// the writer can still meet another process (a backup, the sqlite3 shell),
// and readers meet checkpoints.
const busyTimeout = "busy_timeout(5000)"

// Options tune Open.
type Options struct {
	// FileMode is the mode of a newly created database file (SQLite gives
	// its -wal and -shm files the same); 0 means 0640.
	FileMode os.FileMode
	// Readers is the size of the read pool; 0 means max(4, GOMAXPROCS).
	Readers int
}

// DB is one SQLite file with its writer and readers.
type DB struct {
	// W is the only connection that writes; use Write.
	W *sql.DB
	// R is the query-only pool; Query and QueryRow use it through
	// prepared statements.
	R *sql.DB

	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

// Open opens (creating it and its directory if needed) the database at p
// and applies the migrations in the root of migrations that are not yet
// recorded. p must not contain '?', which the driver reads as the start of
// its parameters.
func Open(ctx context.Context, p string, migrations fs.FS, opt Options) (*DB, error) {
	if p == "" {
		return nil, errors.New("empty database path")
	}
	if strings.Contains(p, "?") {
		return nil, fmt.Errorf("database path %q must not contain '?'", p)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return nil, err
	}
	mode := opt.FileMode
	if mode == 0 {
		mode = 0o640
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, mode)
	if err != nil {
		return nil, err
	}
	f.Close()
	// secure_delete: deleted and overwritten content is zeroed, not left
	// in free space, so that erased personal data (plates, by retention or
	// a gate's pruning) is gone from the file too.
	//
	// temp_store stays the default (files), though it costs group commit:
	// past 64 KiB SQLite moves a transaction's savepoint journal to a
	// temporary file, which a batch of a dozen reservations passes. In
	// memory (temp_store=MEMORY) that journal is cut back at the end of
	// every statement by walking it from its start, so a large transaction
	// (an erasure batch, a bulk load) slows down with the square of its
	// size: three times slower loading 40,000 reservations in batches of
	// 2,000. TestWriterSavepointJournalSpillsToFile keeps it so.
	w, err := sql.Open("sqlite", dsn(p, "_txlock=immediate",
		busyTimeout, "foreign_keys(1)", "journal_mode(WAL)", "synchronous(FULL)", "secure_delete(1)"))
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	// Keep the writer's connection for the life of the DB: reopening it
	// costs the pragmas and a schema read on the write path.
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := migrate(ctx, w, migrations); err != nil {
		w.Close()
		return nil, fmt.Errorf("migrating %s: %w", p, err)
	}
	// The readers are opened once the file is in WAL mode: they never
	// switch it themselves, which would need the write lock. synchronous
	// matters to them only when one closes last and checkpoints.
	r, err := sql.Open("sqlite", dsn(p, "", busyTimeout, "foreign_keys(1)", "synchronous(FULL)", "query_only(1)"))
	if err != nil {
		w.Close()
		return nil, err
	}
	n := opt.Readers
	if n <= 0 {
		n = max(4, runtime.GOMAXPROCS(0))
	}
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	db := &DB{W: w, R: r, stmts: map[string]*sql.Stmt{}}
	if err := db.Ping(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// dsn builds a modernc DSN. Pragmas go through _pragma, which every driver
// version understands.
func dsn(p, extra string, pragmas ...string) string {
	q := make([]string, 0, len(pragmas)+1)
	for _, pr := range pragmas {
		q = append(q, "_pragma="+pr)
	}
	if extra != "" {
		q = append(q, extra)
	}
	return p + "?" + strings.Join(q, "&")
}

// migrate applies the migrations not yet recorded, all in one transaction,
// so a crash mid-way leaves the schema as it was. Files are named
// NNN_name.sql; the number orders them.
func migrate(ctx context.Context, db *sql.DB, migrations fs.FS) error {
	ms, err := migration.Read(migrations, "*.sql")
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`); err != nil {
		return err
	}
	var cur int
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&cur); err != nil {
		return err
	}
	for _, m := range ms {
		if m.Version <= cur {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("%s: %w", m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			m.Version, m.Name, time.Now().UnixMicro()); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Ping checks both the writer and the readers.
func (db *DB) Ping(ctx context.Context) error {
	return errors.Join(db.W.PingContext(ctx), db.R.PingContext(ctx))
}

// Close closes the readers first, so that the writer's connection is the
// last one and SQLite checkpoints the WAL into the main file on the way out.
func (db *DB) Close() error {
	db.mu.Lock()
	for _, s := range db.stmts {
		s.Close()
	}
	db.stmts = map[string]*sql.Stmt{}
	db.mu.Unlock()
	return errors.Join(db.R.Close(), db.W.Close())
}

// Write runs fn in one IMMEDIATE transaction on the writer and commits if
// fn returns nil; with synchronous=FULL the commit is on disk when Write
// returns. It rolls back on an error or a panic (and re-panics). fn must
// not call Write itself, which would wait forever for the one connection.
func (db *DB) Write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.W.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			tx.Rollback()
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// stmt returns the read pool's prepared statement for q. Parsing and
// planning a statement costs as much as running the cheap lookups, and the
// same few queries run thousands of times a second. (Only the readers
// cache: preparing on the writer would need its one connection while a
// transaction holds it.)
func (db *DB) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	db.mu.Lock()
	s, ok := db.stmts[q]
	db.mu.Unlock()
	if ok {
		return s, nil
	}
	// Prepared without the lock: preparing may wait for a connection.
	s, err := db.R.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if prev, ok := db.stmts[q]; ok {
		s.Close()
		return prev, nil
	}
	db.stmts[q] = s
	return s, nil
}

// Query runs q on the read pool.
func (db *DB) Query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	s, err := db.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

// QueryRow runs q on the read pool; a query that does not prepare is run
// unprepared, so that its error reaches the caller's Scan.
func (db *DB) QueryRow(ctx context.Context, q string, args ...any) *sql.Row {
	s, err := db.stmt(ctx, q)
	if err != nil {
		return db.R.QueryRowContext(ctx, q, args...)
	}
	return s.QueryRowContext(ctx, args...)
}

// Micros is how a time is stored: unix microseconds UTC, the zero time as
// NULL.
func Micros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// FromMicros reads a time stored by Micros, in UTC.
func FromMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

// Norm gives t the precision and zone it has once stored, so that what a
// caller gets back from a write equals what a later read returns.
func Norm(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.UnixMicro(t.UnixMicro()).UTC()
}

// Scanner is a *sql.Row or *sql.Rows.
type Scanner interface{ Scan(dest ...any) error }

// Collect scans every row with scan and closes rows.
func Collect[T any](rows *sql.Rows, scan func(Scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
