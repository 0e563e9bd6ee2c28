package sqlitestore

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache prepares each distinct query text once and reuses it: parsing
// and planning a statement costs as much as running the cheap ones, and a
// busy centrald runs the same few queries thousands of times a second.
// database/sql prepares a *sql.Stmt lazily on each pool connection. Only
// the read pool uses it: preparing on the writer would need its one
// connection while a transaction holds it, and a write's cost is the fsync
// of its commit anyway.
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

// QueryContext runs a cached statement.
func (c *stmtCache) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	s, err := c.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

// QueryRowContext runs a cached statement; a statement that does not
// prepare is run uncached, so that its error reaches the caller's Scan.
func (c *stmtCache) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	s, err := c.stmt(ctx, q)
	if err != nil {
		return c.db.QueryRowContext(ctx, q, args...)
	}
	return s.QueryRowContext(ctx, args...)
}

// close releases every cached statement.
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.m {
		s.Close()
	}
	c.m = map[string]*sql.Stmt{}
}
