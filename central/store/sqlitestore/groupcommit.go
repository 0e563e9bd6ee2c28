package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/parkgate/parkgate/central/store"
)

// Group commit.
//
// With synchronous=FULL every commit waits for an fsync of the WAL, and
// that wait, not the SQL, is most of what a winning reservation costs. So
// concurrent Writes share one transaction and one fsync:
//
//   - Write hands its fn to one committer goroutine and waits for the
//     outcome; it is answered only once the transaction holding its
//     changes has committed (or once its own fn failed).
//   - The committer begins an IMMEDIATE transaction and runs the waiting
//     fns one after another, each between SAVEPOINT and RELEASE. A fn that
//     fails (a double booking, a wrong state, a panic) is rolled back to
//     its savepoint: it fails alone, and the others go on as if it had
//     never run. While one fn runs, more Writes arrive; they join the
//     batch until it holds maxBatch or none is waiting, then the batch
//     commits with one fsync.
//   - The fns run in order, each on what the ones before it wrote, exactly
//     as if their transactions had run one after another in that order:
//     the change log's versions stay in commit order and no rule check
//     sees anything another request could not have seen.
//   - If the shared transaction itself fails (the commit's fsync, a full
//     disk, an error that makes SQLite roll back the whole transaction),
//     no request of the batch can be told it committed. The fns that had
//     succeeded are run again, each in a transaction of its own, so that
//     one bad moment fails no more than it must (store.Store allows a fn to
//     run more than once; its effects are all in the transaction).
//
// A request that fails is answered after the batch ends too when an earlier
// fn of the batch had changed something: its refusal may rest on that
// write, which is only true once it commits. A request that fails before
// any fn of the batch changed anything read only committed data, and is
// answered at once.
//
// Payment provider calls never happen inside Write (booking splits pay into
// a transaction before the call and one after), so no batch waits on the
// network.

// maxBatch bounds a batch, so that the first request of a long run of
// arrivals is not kept waiting for the commit indefinitely.
const maxBatch = 256

// errClosed answers Writes after Close.
var errClosed = errors.New("sqlitestore: the store is closed")

// writeReq is one Write waiting for the committer.
type writeReq struct {
	ctx  context.Context
	fn   func(tx store.Tx) error
	done chan writeRes // capacity 1: the committer never blocks on it
}

type writeRes struct {
	err      error
	panicked bool
	panicVal any
}

// committer owns the writer connection while group commit is on.
type committer struct {
	mu      sync.Mutex
	pending []*writeReq // waiting for the next batch, in arrival order
	closed  bool

	wake    chan struct{} // capacity 1: "pending is not empty"
	quit    chan struct{}
	stopped chan struct{}
	once    sync.Once
}

func (s *Store) startCommitter() {
	s.gc = &committer{wake: make(chan struct{}, 1), quit: make(chan struct{}), stopped: make(chan struct{})}
	go s.commitLoop()
}

// stopCommitter lets the batch in progress finish and fails the requests
// still waiting; Writes after it get errClosed.
func (s *Store) stopCommitter() {
	s.gc.mu.Lock()
	s.gc.closed = true
	s.gc.mu.Unlock()
	s.gc.once.Do(func() { close(s.gc.quit) })
	<-s.gc.stopped
	for _, r := range s.gc.take(-1) {
		r.done <- writeRes{err: errClosed}
	}
}

// take removes up to n waiting requests (all of them if n < 0).
func (c *committer) take(n int) []*writeReq {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n < 0 || n > len(c.pending) {
		n = len(c.pending)
	}
	out := c.pending[:n:n]
	c.pending = c.pending[n:]
	if len(c.pending) == 0 {
		c.pending = nil
	}
	return out
}

// waiting is how many requests wait for the next batch.
func (c *committer) waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// groupWrite is Write with group commit.
func (s *Store) groupWrite(ctx context.Context, fn func(tx store.Tx) error) error {
	req, err := s.enqueue(ctx, fn)
	if err != nil {
		return err
	}
	// The request is always answered, after its batch ends, even if ctx
	// ends meanwhile: until then nobody knows whether it committed. (The
	// committer skips a request whose ctx has ended before its turn.)
	res := <-req.done
	if res.panicked {
		panic(res.panicVal)
	}
	return res.err
}

// enqueue hands fn to the committer; its outcome comes on the request's
// done channel.
func (s *Store) enqueue(ctx context.Context, fn func(tx store.Tx) error) (*writeReq, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	req := &writeReq{ctx: ctx, fn: fn, done: make(chan writeRes, 1)}
	c := s.gc
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errClosed
	}
	c.pending = append(c.pending, req)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
	return req, nil
}

func (s *Store) commitLoop() {
	defer close(s.gc.stopped)
	for {
		select {
		case <-s.gc.wake:
		case <-s.gc.quit:
			return
		}
		for {
			reqs := s.gc.take(maxBatch)
			if len(reqs) == 0 {
				break
			}
			s.runBatch(reqs)
			// The writer is free between batches: prepare what the
			// batch ran unprepared (wstmt.go).
			if s.wst.anyNoted() {
				s.wst.prepareNoted()
			}
		}
	}
}

// batchItem is a request of the batch with its outcome so far.
type batchItem struct {
	req      *writeReq
	res      writeRes
	ok       bool // fn succeeded and its changes are in the shared transaction
	logged   bool
	answered bool // told its outcome already (runBatch)
}

// runBatch runs first and whatever arrives while the batch is open in one
// transaction, commits it and answers every request.
func (s *Store) runBatch(reqs []*writeReq) {
	items := make([]*batchItem, 0, len(reqs))
	// Counted as they join, before any of them is answered, so that a
	// client reading the counters after its answer finds itself counted.
	s.writes.Add(int64(len(reqs)))
	for _, r := range reqs {
		items = append(items, &batchItem{req: r})
	}
	// The transaction is not bound to any one request's context: one
	// client going away must not roll back the others' work.
	sqlTx, err := s.db.W.BeginTx(context.Background(), nil)
	if err != nil {
		s.answer(items, fmt.Errorf("begin: %w", err))
		return
	}
	broken := error(nil)
	var dirty batchFootprint // what the requests with changes not yet committed touched
	for i := 0; i < len(items) && broken == nil; i++ {
		it := items[i]
		var fp footprint
		broken = s.runOne(sqlTx, it, &fp)
		failed := it.res.err != nil || it.res.panicked
		if broken == nil && failed && (dirty.empty() || (!it.res.panicked && dirty.independent(&fp))) {
			// Failed, and everything it read was committed already (no
			// request before it in this batch changed anything it
			// touched): its answer rests on nothing this batch may still
			// lose, and it changed nothing to wait for. Answered now, not
			// after the fsync, so that a refusal costs no more than it
			// did alone (footprint.go).
			it.req.done <- it.res
			it.answered = true
		}
		if it.ok {
			dirty.add(&fp)
		}
		// Take in whoever is waiting now, without waiting for anyone.
		if i == len(items)-1 {
			more := s.gc.take(maxBatch - len(items))
			s.writes.Add(int64(len(more)))
			for _, r := range more {
				items = append(items, &batchItem{req: r})
			}
		}
	}
	if broken == nil {
		committed := false
		for _, it := range items {
			committed = committed || it.ok
		}
		if !committed {
			// Nothing to keep: a rollback needs no fsync.
			sqlTx.Rollback()
			s.answer(items, nil)
			return
		}
		if err := sqlTx.Commit(); err != nil {
			broken = fmt.Errorf("commit: %w", err)
		} else {
			s.commits.Add(1)
			s.answer(items, nil)
			return
		}
	} else {
		sqlTx.Rollback()
	}
	// The shared transaction is gone, and with it what each fn saw. Every
	// request runs again alone, those that had failed included (a refusal
	// may have rested on a write that is now undone); only a panic keeps
	// its answer.
	for _, it := range items {
		if !it.res.panicked && !it.answered {
			it.ok, it.logged, it.res = false, false, writeRes{}
			s.runAlone(it)
		}
	}
	s.answer(items, nil)
}

// runOne runs its fn inside the open transaction between a savepoint and
// its release. It returns an error only when the shared transaction can no
// longer be used.
func (s *Store) runOne(sqlTx *sql.Tx, it *batchItem, fp *footprint) error {
	if err := it.req.ctx.Err(); err != nil {
		it.res.err = err
		return nil
	}
	// Statements run without the request's cancellation: an interrupted
	// statement may make SQLite roll back the whole transaction, and with
	// it the other requests of the batch. The request was still waiting
	// when its turn came, and a fn is short.
	ctx := context.WithoutCancel(it.req.ctx)
	q := wtx{tx: sqlTx, st: s.wst}
	if _, err := q.ExecContext(ctx, `SAVEPOINT w`); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	t := &tx{ctx: ctx, q: wtx{tx: sqlTx, st: s.wst, fp: fp}}
	it.res = call(it.req.fn, t)
	if it.res.err == nil && !it.res.panicked {
		if _, err := q.ExecContext(ctx, `RELEASE w`); err != nil {
			return fmt.Errorf("release savepoint: %w", err)
		}
		it.ok, it.logged = true, t.logged
		return nil
	}
	// Undo this fn's changes only. If SQLite has already rolled back the
	// whole transaction (some I/O errors do), the savepoint is gone and
	// so is the batch.
	if _, err := q.ExecContext(ctx, `ROLLBACK TO w`); err != nil {
		return fmt.Errorf("rollback to savepoint: %w", err)
	}
	if _, err := q.ExecContext(ctx, `RELEASE w`); err != nil {
		return fmt.Errorf("release savepoint: %w", err)
	}
	return nil
}

// runAlone runs it in a transaction of its own, as Write does without
// group commit.
func (s *Store) runAlone(it *batchItem) {
	if err := it.req.ctx.Err(); err != nil {
		it.res.err = err
		return
	}
	var t *tx
	var res writeRes
	err := s.db.Write(context.WithoutCancel(it.req.ctx), func(sqlTx *sql.Tx) error {
		t = &tx{ctx: context.WithoutCancel(it.req.ctx), q: wtx{tx: sqlTx, st: s.wst}}
		res = call(it.req.fn, t)
		if res.panicked {
			return errors.New("panicked")
		}
		return res.err
	})
	switch {
	case res.panicked || res.err != nil:
		it.res = res
	case err != nil:
		it.res.err = err
	default:
		s.commits.Add(1)
		it.ok, it.logged = true, t.logged
	}
}

// call runs fn, turning a panic into a result that the caller's goroutine
// raises again.
func call(fn func(store.Tx) error, t *tx) (res writeRes) {
	defer func() {
		if p := recover(); p != nil {
			res = writeRes{panicked: true, panicVal: p, err: fmt.Errorf("panic: %v", p)}
		}
	}()
	return writeRes{err: fn(t)}
}

// answer wakes every request of the batch, err (if not nil) for those
// without an outcome of their own, and the change listeners once if any
// committed request logged a change.
func (s *Store) answer(items []*batchItem, err error) {
	logged := false
	for _, it := range items {
		if err != nil && it.res.err == nil && !it.res.panicked {
			it.res.err = err
		}
		logged = logged || (it.ok && it.logged && err == nil)
	}
	if logged {
		// Before anyone is answered: a client that reads right after its
		// answer must find the sequence moved.
		s.logSeq.Add(1)
	}
	for _, it := range items {
		if !it.answered {
			it.req.done <- it.res
		}
	}
	if logged {
		s.signal()
	}
}
