// Package localdb is the gate's one SQLite file (gated's db.path): the
// reservation cache the lane decides against, what the gate knows about
// which cars are inside (anti-passback), and the outbox of every decision
// until central has stored it.
//
// The three live in one file so that a decision and its consequence commit
// together: Record writes the event and the presence change in one
// transaction, synchronously to disk, before the caller opens the barrier.
// A power cut can then never lose an entry, nor leave a car recorded inside
// without the event that says so (PRODUCT.md §10).
//
// The file is opened the way centrald's sqlitestore opens its own: WAL
// journal, synchronous=FULL (a commit is on disk when it returns, which the
// usual WAL choice NORMAL does not promise), one writer connection whose
// transactions begin IMMEDIATE so that writes queue in database/sql instead
// of failing with SQLITE_BUSY, a pool of query-only readers that WAL lets
// run beside the writer, and embedded migrations.
//
// The cache is versioned for the sync with central (docs/sync.md): it holds
// central's change-log version, takes full snapshots (ApplySnapshot) and
// differential changes only on top of the version it holds (ApplyChange,
// ErrVersionGap otherwise). Until the sync exists, `gated import` fills it
// from a JSON file (ReadImport).
package localdb

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver, "sqlite"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Every connection waits this long for a lock rather than failing at once:
// the writer can still meet another process (a backup, the sqlite3 shell),
// and readers meet checkpoints.
const busyTimeout = "busy_timeout(5000)"

// DB is the gate's database. It is safe for concurrent use; writes are
// serialised on one connection.
type DB struct {
	w  *sql.DB    // the only connection that writes
	r  *sql.DB    // query-only pool for reads
	rq *stmtCache // prepared statements of the read pool
}

// Open opens (creating it and its directory if needed) the database at path
// and brings its schema up to date. The path must not contain '?', which the
// driver reads as the start of its parameters.
//
// A new file is created with mode 0600: it holds licence plates, which are
// personal data, and SQLite gives its -wal and -shm files the same mode.
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("localdb: empty database path")
	}
	if strings.Contains(path, "?") {
		return nil, fmt.Errorf("localdb: path %q must not contain '?'", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("localdb: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("localdb: %w", err)
	}
	f.Close()
	// synchronous=FULL syncs the WAL on every commit: a committed decision
	// survives a power cut.
	w, err := sql.Open("sqlite", dsn(path, "_txlock=immediate",
		busyTimeout, "foreign_keys(1)", "journal_mode(WAL)", "synchronous(FULL)"))
	if err != nil {
		return nil, fmt.Errorf("localdb: %w", err)
	}
	w.SetMaxOpenConns(1)
	// Keep the writer's connection for the life of the DB: reopening it
	// costs the pragmas and a schema read on the decision path.
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("localdb: migrate %s: %w", path, err)
	}
	// Readers leave the journal mode alone (the writer set it, and changing
	// it needs the write lock). synchronous matters to them only when one
	// closes last and checkpoints the WAL into the main file.
	r, err := sql.Open("sqlite", dsn(path, "", busyTimeout, "synchronous(FULL)", "query_only(1)"))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("localdb: %w", err)
	}
	n := max(2, min(4, runtime.GOMAXPROCS(0)))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	db := &DB{w: w, r: r, rq: newStmtCache(r)}
	if err := errors.Join(w.PingContext(ctx), r.PingContext(ctx)); err != nil {
		db.Close()
		return nil, fmt.Errorf("localdb: %w", err)
	}
	return db, nil
}

// dsn builds a modernc DSN. Pragmas go through _pragma, which every driver
// version understands.
func dsn(path, extra string, pragmas ...string) string {
	q := make([]string, 0, len(pragmas)+1)
	for _, p := range pragmas {
		q = append(q, "_pragma="+p)
	}
	if extra != "" {
		q = append(q, extra)
	}
	return path + "?" + strings.Join(q, "&")
}

// migrate applies the embedded migrations not yet recorded, all in one
// transaction, so a crash mid-way leaves the schema as it was.
func migrate(ctx context.Context, db *sql.DB) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	type mig struct {
		v    int
		name string
	}
	var ms []mig
	for _, n := range names {
		base := filepath.Base(n)
		num, _, _ := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if err != nil || v <= 0 {
			return fmt.Errorf("migration %s: name must start with a positive number and '_'", base)
		}
		ms = append(ms, mig{v, n})
	}
	slices.SortFunc(ms, func(a, b mig) int { return a.v - b.v })
	for i := 1; i < len(ms); i++ {
		if ms[i].v == ms[i-1].v {
			return fmt.Errorf("migrations %s and %s share version %d", ms[i-1].name, ms[i].name, ms[i].v)
		}
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
		if m.v <= cur {
			continue
		}
		body, err := migrations.ReadFile(m.name)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			m.v, filepath.Base(m.name), time.Now().UnixMicro()); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Close closes the readers first, so that the writer's connection is the
// last one and SQLite checkpoints the WAL into the main file on the way out.
func (db *DB) Close() error {
	db.rq.close()
	return errors.Join(db.r.Close(), db.w.Close())
}

// write runs fn in one IMMEDIATE transaction on the writer and commits it;
// with synchronous=FULL the commit is on disk when write returns. fn must
// not call write itself, which would wait forever for the one connection.
func (db *DB) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("localdb: begin: %w", err)
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
		return fmt.Errorf("localdb: commit: %w", err)
	}
	return nil
}

// micros stores a time as unix microseconds UTC, the zero time as NULL.
func micros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

// norm gives t the precision and zone it has once stored, so that what a
// caller gets back from a write equals what a later read returns.
func norm(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.UnixMicro(t.UnixMicro()).UTC()
}

type scanner interface{ Scan(dest ...any) error }

func collect[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
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

// getMeta reads one counter of the meta table inside a write transaction.
func getMeta(ctx context.Context, tx *sql.Tx, key string) (int64, error) {
	var v int64
	err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v)
	return v, err
}

func setMeta(ctx context.Context, tx *sql.Tx, key string, v int64) error {
	_, err := tx.ExecContext(ctx, `UPDATE meta SET value = ? WHERE key = ?`, v, key)
	return err
}

// stmtCache prepares each distinct read query once and reuses it: parsing
// and planning costs as much as running the cheap lookups of a decision,
// and the scan-to-relay budget is a few milliseconds.
type stmtCache struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func newStmtCache(db *sql.DB) *stmtCache { return &stmtCache{db: db, m: map[string]*sql.Stmt{}} }

func (c *stmtCache) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	c.mu.Lock()
	s, ok := c.m[q]
	c.mu.Unlock()
	if ok {
		return s, nil
	}
	// Prepared without the lock: preparing may wait for a connection.
	s, err := c.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.m[q]; ok {
		s.Close()
		return prev, nil
	}
	c.m[q] = s
	return s, nil
}

func (c *stmtCache) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	s, err := c.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

// queryRow runs a cached statement; one that does not prepare is run
// uncached, so that its error reaches the caller's Scan.
func (c *stmtCache) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	s, err := c.stmt(ctx, q)
	if err != nil {
		return c.db.QueryRowContext(ctx, q, args...)
	}
	return s.QueryRowContext(ctx, args...)
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.m {
		s.Close()
	}
	c.m = map[string]*sql.Stmt{}
}
