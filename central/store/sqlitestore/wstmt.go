package sqlitestore

import (
	"context"
	"database/sql"
	"sync"
)

// Prepared statements on the writer.
//
// Parsing and planning a statement costs SQLite more than running the
// cheap lookups and inserts of a reservation: profiled under contended
// reservations, preparing the writer's statements was about a third of
// centrald's CPU, spent on the one connection every write waits for. The
// readers keep their statements prepared (sqlitedb); the writer could not,
// because preparing needs its one connection and a transaction holds it.
// So a statement is run unprepared the first time, noted, and prepared
// once the connection is free again (after the transaction, by a
// goroutine that waits for it like any writer); from then on every
// transaction runs it through Tx.StmtContext, which reuses the statement
// already prepared on that connection.

// maxWstmts bounds the statements prepared on the writer.
const maxWstmts = 256

// wstmts caches the writer's prepared statements by their text.
type wstmts struct {
	db *sql.DB

	mu      sync.Mutex
	stmts   map[string]*sql.Stmt
	pending map[string]bool // noted, being prepared
	closed  bool
}

func newWstmts(db *sql.DB) *wstmts {
	return &wstmts{db: db, stmts: map[string]*sql.Stmt{}, pending: map[string]bool{}}
}

// get returns q's prepared statement, or nil after noting q for later.
func (w *wstmts) get(q string) *sql.Stmt {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s, ok := w.stmts[q]; ok {
		return s
	}
	// The writer's statements are a fixed set of texts; the bound only
	// guards against a future caller building texts from values.
	if _, noted := w.pending[q]; !noted && !w.closed && len(w.pending) < maxWstmts {
		w.pending[q] = true
	}
	return nil
}

// prepareNoted prepares the noted statements; it must be called with no
// transaction open on the writer (it waits for the connection). A
// statement that fails to prepare stays unprepared.
func (w *wstmts) prepareNoted() {
	w.mu.Lock()
	var qs []string
	for q, todo := range w.pending {
		if todo {
			qs = append(qs, q)
			w.pending[q] = false // being prepared: not again
		}
	}
	w.mu.Unlock()
	for _, q := range qs {
		s, err := w.db.PrepareContext(context.Background(), q)
		w.mu.Lock()
		if err == nil && !w.closed {
			w.stmts[q] = s
		} else if err == nil {
			s.Close()
		}
		w.mu.Unlock()
	}
}

// anyNoted reports whether a statement waits to be prepared.
func (w *wstmts) anyNoted() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, todo := range w.pending {
		if todo {
			return true
		}
	}
	return false
}

func (w *wstmts) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	for _, s := range w.stmts {
		s.Close()
	}
	w.stmts = map[string]*sql.Stmt{}
}

// wtx is the writer's transaction with the statement cache in front. In a
// batch, fp records what each request's statements touch (footprint.go).
type wtx struct {
	tx *sql.Tx
	st *wstmts
	fp *footprint
}

func (w wtx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	w.fp.statement()
	if s := w.st.get(q); s != nil {
		return w.tx.StmtContext(ctx, s).ExecContext(ctx, args...)
	}
	return w.tx.ExecContext(ctx, q, args...)
}

func (w wtx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	w.fp.statement()
	if s := w.st.get(q); s != nil {
		return w.tx.StmtContext(ctx, s).QueryContext(ctx, args...)
	}
	return w.tx.QueryContext(ctx, q, args...)
}

func (w wtx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	w.fp.statement()
	if s := w.st.get(q); s != nil {
		return w.tx.StmtContext(ctx, s).QueryRowContext(ctx, args...)
	}
	return w.tx.QueryRowContext(ctx, q, args...)
}
