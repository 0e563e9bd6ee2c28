// Package localdb is the gate's one SQLite file (gated's db.path): the
// reservation cache the lane decides against, what the gate knows about
// which cars are inside (anti-passback), and the outbox of every decision
// until central has stored it.
//
// The three live in one file so that a decision and its consequence commit
// together: Record writes the event and the presence change in one
// transaction, synchronously to disk, before the caller opens the barrier.
// A power cut can then never lose an entry, nor leave a car recorded inside
// without the event that says so.
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
	"fmt"
	"io/fs"
	"runtime"

	"github.com/parkgate/parkgate/internal/sqlitedb"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver, "sqlite"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is the gate's database. It is safe for concurrent use; writes are
// serialised on one connection.
type DB struct {
	sql *sqlitedb.DB
}

// Open opens (creating it and its directory if needed) the database at path
// and brings its schema up to date (see internal/sqlitedb: WAL,
// synchronous=FULL, one writer, query-only readers).
//
// A new file is created with mode 0600: it holds licence plates, which are
// personal data, and SQLite gives its -wal and -shm files the same mode.
func Open(ctx context.Context, path string) (*DB, error) {
	migs, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	db, err := sqlitedb.Open(ctx, path, migs, sqlitedb.Options{FileMode: 0o600, Readers: max(2, min(4, runtime.GOMAXPROCS(0)))})
	if err != nil {
		return nil, fmt.Errorf("localdb: %w", err)
	}
	return &DB{sql: db}, nil
}

// Close closes the database.
func (db *DB) Close() error { return db.sql.Close() }

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

// LimitPages caps the database file at n pages for this DB's writes
// (SQLite's max_page_count) and returns the cap in effect, which SQLite
// never sets below the file's present size. A write that needs a page
// beyond it fails with SQLITE_FULL, "database or disk is full", exactly as
// on a full disk; tests fill the lane's disk this way without filling the
// machine's. n <= 0 only reads the cap.
func (db *DB) LimitPages(ctx context.Context, n int64) (int64, error) {
	q := `PRAGMA max_page_count`
	if n > 0 {
		q += fmt.Sprintf(" = %d", n)
	}
	var got int64
	if err := db.sql.W.QueryRowContext(ctx, q).Scan(&got); err != nil {
		return 0, fmt.Errorf("localdb: max_page_count: %w", err)
	}
	return got, nil
}
