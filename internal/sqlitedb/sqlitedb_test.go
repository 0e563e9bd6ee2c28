package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestMigrationsApplyOnceInOrder(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "sub", "x.db")
	migs := fstest.MapFS{
		"002_more.sql": {Data: []byte(`INSERT INTO t VALUES (2);`)},
		"001_init.sql": {Data: []byte(`CREATE TABLE t (v INTEGER) STRICT; INSERT INTO t VALUES (1);`)},
	}
	for range 2 { // reopening applies nothing twice
		db, err := Open(ctx, p, migs, Options{FileMode: 0o600})
		if err != nil {
			t.Fatal(err)
		}
		var n, sum int
		if err := db.QueryRow(ctx, `SELECT count(*), sum(v) FROM t`).Scan(&n, &sum); err != nil || n != 2 || sum != 3 {
			t.Fatalf("rows %d sum %d err %v", n, sum, err)
		}
		var mode string
		db.W.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode)
		if mode != "wal" {
			t.Fatalf("journal_mode %q", mode)
		}
		db.Close()
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v", st.Mode().Perm())
	}
}

func TestBadMigrationsAreRefused(t *testing.T) {
	ctx := context.Background()
	for name, migs := range map[string]fstest.MapFS{
		"unnumbered": {"init.sql": {Data: []byte(`SELECT 1;`)}},
		"twice":      {"001_a.sql": {Data: []byte(`SELECT 1;`)}, "001_b.sql": {Data: []byte(`SELECT 1;`)}},
		"broken":     {"001_a.sql": {Data: []byte(`CREATE TABLE;`)}},
	} {
		if _, err := Open(ctx, filepath.Join(t.TempDir(), "x.db"), migs, Options{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := Open(ctx, "a?b.db", fstest.MapFS{}, Options{}); err == nil || !strings.Contains(err.Error(), "?") {
		t.Errorf("a path with '?': %v", err)
	}
}

// Write commits or rolls back as a whole, and readers are query-only.
func TestWriteAndReaders(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "x.db"), fstest.MapFS{"001_t.sql": {Data: []byte(`CREATE TABLE t (v INTEGER) STRICT;`)}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	boom := errors.New("boom")
	err = db.Write(ctx, func(tx *sql.Tx) error {
		tx.ExecContext(ctx, `INSERT INTO t VALUES (1)`)
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if err := db.Write(ctx, func(tx *sql.Tx) error { _, err := tx.ExecContext(ctx, `INSERT INTO t VALUES (2)`); return err }); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(ctx, `SELECT v FROM t`)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := Collect(rows, func(s Scanner) (v int, err error) { return v, s.Scan(&v) })
	if err != nil || len(vs) != 1 || vs[0] != 2 {
		t.Fatalf("rows %v %v", vs, err)
	}
	if _, err := db.R.ExecContext(ctx, `INSERT INTO t VALUES (3)`); err == nil {
		t.Fatal("a reader wrote")
	}
}

func TestTimes(t *testing.T) {
	if Micros(time.Time{}) != nil || !FromMicros(sql.NullInt64{}).IsZero() {
		t.Fatal("zero time")
	}
	at := time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.FixedZone("X", 3600))
	got := FromMicros(sql.NullInt64{Int64: Micros(at).(int64), Valid: true})
	if !got.Equal(Norm(at)) || got.Location() != time.UTC || got.Nanosecond() != 123456000 {
		t.Fatalf("round trip %v", got)
	}
}

// The writer's savepoint journal goes to a temporary file once it passes
// SQLite's 64 KiB, not to memory, where SQLite cuts it back after every
// statement by walking it from the start (a large transaction then slows
// down with the square of its size; see Open). SQLite unlinks its
// temporary files at once, so they show only among the process's
// descriptors, as "… (deleted)".
func TestWriterSavepointJournalSpillsToFile(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("needs /proc/self/fd to see the process's open files")
	}
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "x.db"), fstest.MapFS{
		"001_init.sql": {Data: []byte(`CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL) STRICT;`)},
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// 400 rows of 1 KiB: about 100 pages of 4 KiB, all committed.
	err = db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 400)
			INSERT INTO t SELECT i, zeroblob(1024) FROM n`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	tempFiles := func() (n int) {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasSuffix(target, " (deleted)") {
				n++
			}
		}
		return n
	}
	before := tempFiles()
	err = db.Write(ctx, func(tx *sql.Tx) error {
		// A savepoint that changes all 100 pages: 400 KiB to journal.
		for _, q := range []string{`SAVEPOINT a`, `UPDATE t SET v = randomblob(1024)`} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		if tempFiles() <= before {
			t.Error("the savepoint journal of 400 KiB is not in a temporary file: is temp_store MEMORY?")
		}
		_, err := tx.ExecContext(ctx, `RELEASE a`)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
