package sqlitestore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/central/store/storetest"
)

// The contract holds with every Write in a transaction of its own too.
func TestContractWithoutGroupCommit(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "central.db"), WithGroupCommit(false))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// waitUntil polls cond until it holds, failing the test after a deadline.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

var errWrongState = errors.New("wrong state")

// Requests that share one transaction: a double booking, a request failing
// on a rule after it wrote, and a panic each fail alone; every other request
// commits, in the same single commit, and the change log has no gap.
func TestGroupCommitViolationFailsOnlyItsRequest(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, filepath.Join(t.TempDir(), "central.db"))
	if err := s.SetSpots(ctx, []string{"1", "2"}, t0); err != nil {
		t.Fatal(err)
	}
	held := reservation.Reservation{ID: "held", SpotID: "1", State: reservation.Paid, Source: reservation.SourceDriver,
		From: t0, Until: t0.Add(time.Hour)}
	if err := s.Write(ctx, func(tx store.Tx) error { return tx.Insert(held) }); err != nil {
		t.Fatal(err)
	}
	v0, err := s.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// A first request holds the batch open until all the others wait, so
	// that they all join it.
	release := make(chan struct{})
	var wg sync.WaitGroup
	errs := map[string]error{}
	var mu sync.Mutex
	queued := 0
	run := func(name string, fn func(tx store.Tx) error) {
		// Each waits its turn to queue, so that the batch's order is known.
		defer func() {
			if name != "first" {
				queued++
				waitUntil(t, name+" waiting", func() bool { return s.gc.waiting() == queued })
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			func() {
				defer func() {
					if p := recover(); p != nil {
						err = fmt.Errorf("panicked: %v", p)
					}
				}()
				err = s.Write(ctx, fn)
			}()
			mu.Lock()
			errs[name] = err
			mu.Unlock()
		}()
	}
	reserve := func(id, spot string, h int) func(tx store.Tx) error {
		return func(tx store.Tx) error {
			r := reservation.Reservation{ID: id, SpotID: spot, State: reservation.Reserved, Source: reservation.SourceDriver,
				From: t0.Add(time.Duration(h) * time.Hour), Until: t0.Add(time.Duration(h+1) * time.Hour)}
			if err := tx.Insert(r); err != nil {
				return err
			}
			return tx.Log(store.Change{At: t0, Kind: store.KindCreated, SpotID: spot, ReservationID: id, Actor: "driver", Reservation: &r})
		}
	}
	_, commits0 := s.CommitStats()
	started := make(chan struct{})
	run("first", func(tx store.Tx) error {
		close(started)
		<-release
		return reserve("first", "2", 0)(tx)
	})
	<-started
	run("ok1", reserve("ok1", "2", 1))
	run("double", reserve("double", "1", 0)) // overlaps "held"
	run("ok2", reserve("ok2", "2", 2))
	run("wrote-then-refused", func(tx store.Tx) error {
		if err := reserve("refused", "2", 3)(tx); err != nil {
			return err
		}
		return errWrongState
	})
	run("ok3", reserve("ok3", "2", 4))
	run("panics", func(tx store.Tx) error {
		if err := reserve("panicked", "2", 5)(tx); err != nil {
			return err
		}
		panic("boom")
	})
	run("same-window", reserve("ok4", "2", 3))      // the refused request's window: free again
	run("clash-in-batch", reserve("clash", "2", 1)) // ok1's window, taken earlier in this batch
	waitUntil(t, "8 requests waiting", func() bool { return s.gc.waiting() == 8 })
	close(release)
	wg.Wait()

	want := map[string]string{
		"first": "<nil>", "ok1": "<nil>", "ok2": "<nil>", "ok3": "<nil>", "same-window": "<nil>",
		"panics": "panicked: boom", "wrote-then-refused": errWrongState.Error(),
	}
	for name, err := range errs {
		switch name {
		case "double", "clash-in-batch":
			if !errors.Is(err, store.ErrOverlap) {
				t.Errorf("%s: %v, want an overlap", name, err)
			}
		default:
			if fmt.Sprint(err) != want[name] {
				t.Errorf("%s: %v, want %s", name, err, want[name])
			}
		}
	}
	if _, commits := s.CommitStats(); commits != commits0+1 {
		t.Errorf("%d commits for the batch, want 1 shared one", commits-commits0)
	}
	for _, id := range []string{"first", "ok1", "ok2", "ok3", "ok4"} {
		if _, err := s.Get(ctx, id); err != nil {
			t.Errorf("committed request %s: %v", id, err)
		}
	}
	for _, id := range []string{"double", "refused", "panicked", "clash"} {
		if _, err := s.Get(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("failed request %s left its reservation: %v", id, err)
		}
	}
	cs, err := s.Changes(ctx, v0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, c := range cs {
		got = append(got, c.ReservationID)
		if c.Version != v0+int64(i)+1 {
			t.Errorf("change %d has version %d, want %d: the log has a gap", i, c.Version, v0+int64(i)+1)
		}
	}
	if fmt.Sprint(got) != "[first ok1 ok2 ok3 ok4]" {
		t.Errorf("logged %v, want [first ok1 ok2 ok3 ok4] in order", got)
	}
}

// A request whose context ends while it waits changes nothing and gets its
// context's error; the rest of the batch commits.
func TestGroupCommitCancelledWhileWaiting(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, filepath.Join(t.TempDir(), "central.db"))
	if err := s.SetSpots(ctx, []string{"1"}, t0); err != nil {
		t.Fatal(err)
	}
	release, started := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() { first <- s.Write(ctx, func(tx store.Tx) error { close(started); <-release; return nil }) }()
	<-started
	cctx, cancel := context.WithCancel(ctx)
	second := make(chan error, 1)
	go func() {
		second <- s.Write(cctx, func(tx store.Tx) error {
			return tx.Insert(reservation.Reservation{ID: "late", SpotID: "1", State: reservation.Reserved,
				Source: reservation.SourceDriver, From: t0, Until: t0.Add(time.Hour)})
		})
	}()
	waitUntil(t, "the second request waiting", func() bool { return s.gc.waiting() == 1 })
	cancel()
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if err := <-second; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request: %v", err)
	}
	if _, err := s.Get(ctx, "late"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a cancelled request wrote: %v", err)
	}
}

// Writes after Close fail instead of hanging.
func TestGroupCommitClosed(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "central.db"))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Write(context.Background(), func(store.Tx) error { return nil }); !errors.Is(err, errClosed) {
		t.Fatalf("write after close: %v", err)
	}
}

// A request refused before anything in its batch changed anything read
// only committed data: it is answered at once, without waiting for the
// batch's commit; one refused after another request's change waits for it.
func TestGroupCommitCleanRefusalAnsweredAtOnce(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t, filepath.Join(t.TempDir(), "central.db"))
	if err := s.SetSpots(ctx, []string{"1"}, t0); err != nil {
		t.Fatal(err)
	}
	held := reservation.Reservation{ID: "held", SpotID: "1", State: reservation.Paid, Source: reservation.SourceDriver,
		From: t0, Until: t0.Add(time.Hour)}
	if err := s.Write(ctx, func(tx store.Tx) error { return tx.Insert(held) }); err != nil {
		t.Fatal(err)
	}
	insert := func(id string, h int) func(tx store.Tx) error {
		return func(tx store.Tx) error {
			return tx.Insert(reservation.Reservation{ID: id, SpotID: "1", State: reservation.Reserved, Source: reservation.SourceDriver,
				From: t0.Add(time.Duration(h) * time.Hour), Until: t0.Add(time.Duration(h+1) * time.Hour)})
		}
	}
	// Hold the committer with a first request that changes nothing and
	// fails, so that the next three queue and join its batch, in order.
	hold, started := make(chan struct{}), make(chan struct{})
	holding := make(chan error, 1)
	go func() {
		holding <- s.Write(ctx, func(tx store.Tx) error { close(started); <-hold; return errWrongState })
	}()
	<-started
	release := make(chan struct{})
	refused, winner, late := make(chan error, 1), make(chan error, 1), make(chan error, 1)
	go func() { refused <- s.Write(ctx, insert("refused", 0)) }() // overlaps "held", committed
	waitUntil(t, "the refused request waiting", func() bool { return s.gc.waiting() == 1 })
	go func() {
		winner <- s.Write(ctx, func(tx store.Tx) error {
			if err := insert("winner", 1)(tx); err != nil {
				return err
			}
			<-release // keeps the batch open until the test has seen the refusal
			return nil
		})
	}()
	waitUntil(t, "the winner waiting", func() bool { return s.gc.waiting() == 2 })
	go func() { late <- s.Write(ctx, insert("late", 1)) }() // overlaps the winner, not yet committed
	waitUntil(t, "the late request waiting", func() bool { return s.gc.waiting() == 3 })
	close(hold)
	// Both failures come while the winner still holds the batch open;
	// without early answers they would only come once it is released.
	var once sync.Once
	defer once.Do(func() { close(release) }) // on failure too: Close waits for the batch
	for name, ch := range map[string]chan error{"holding": holding, "refused": refused} {
		want := store.ErrOverlap
		if name == "holding" {
			want = errWrongState
		}
		select {
		case err := <-ch:
			if !errors.Is(err, want) {
				t.Fatalf("%s request: %v", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the %s request, refused on committed data, waited for the rest of its batch", name)
		}
	}
	once.Do(func() { close(release) })
	if err := <-winner; err != nil {
		t.Fatal(err)
	}
	if err := <-late; !errors.Is(err, store.ErrOverlap) {
		t.Fatalf("late request: %v", err)
	}
}

// A refusal waits for its batch's commit only when it may rest on what an
// earlier request of the batch wrote: a spot that request touched, or
// anything at all when either of them ran a statement that is not about one
// spot (footprint.go).
func TestGroupCommitRefusalWaitsOnlyForWhatItRead(t *testing.T) {
	insert := func(id, spot string, h int) func(tx store.Tx) error {
		return func(tx store.Tx) error {
			return tx.Insert(reservation.Reservation{ID: id, SpotID: spot, State: reservation.Reserved, Source: reservation.SourceDriver,
				From: t0.Add(time.Duration(h) * time.Hour), Until: t0.Add(time.Duration(h+1) * time.Hour)})
		}
	}
	// Checked as booking checks: the spot's availability, then the insert.
	reserve := func(id, spot string, h int) func(tx store.Tx) error {
		return func(tx store.Tx) error {
			a, err := tx.Availability(spot, reservation.Window{From: t0.Add(time.Duration(h) * time.Hour), Until: t0.Add(time.Duration(h+1) * time.Hour)})
			if err != nil {
				return err
			}
			if a.BlockerID != "" {
				return store.ErrOverlap
			}
			return insert(id, spot, h)(tx)
		}
	}
	lookupThen := func(fn func(tx store.Tx) error) func(tx store.Tx) error {
		return func(tx store.Tx) error {
			if _, err := tx.Get("held"); err != nil {
				return err
			}
			return fn(tx)
		}
	}
	refuse := func(tx store.Tx) error { return errWrongState }
	cases := []struct {
		name  string
		fns   []func(tx store.Tx) error
		early []bool
		errs  []error
	}{
		{"refused on another spot's committed reservation: at once",
			[]func(store.Tx) error{reserve("w", "1", 0), reserve("r", "2", 0)}, []bool{false, true}, []error{nil, store.ErrOverlap}},
		{"refused on the spot an earlier request reserved: after the commit",
			[]func(store.Tx) error{reserve("w", "1", 0), reserve("r", "1", 0)}, []bool{false, false}, []error{nil, store.ErrOverlap}},
		{"refused by the trigger on that spot: after the commit",
			[]func(store.Tx) error{reserve("w", "1", 0), insert("r", "1", 0)}, []bool{false, false}, []error{nil, store.ErrOverlap}},
		{"refused after a read that is not about one spot: after the commit",
			[]func(store.Tx) error{reserve("w", "1", 0), lookupThen(refuse)}, []bool{false, false}, []error{nil, errWrongState}},
		{"refused after a request that read beyond one spot: after the commit",
			[]func(store.Tx) error{lookupThen(reserve("w", "3", 0)), reserve("r", "2", 0)}, []bool{false, false}, []error{nil, store.ErrOverlap}},
		{"refused with nothing changed before it: at once",
			[]func(store.Tx) error{lookupThen(refuse), reserve("r", "2", 0)}, []bool{true, true}, []error{errWrongState, store.ErrOverlap}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			s := openTemp(t, filepath.Join(t.TempDir(), "central.db"))
			if err := s.SetSpots(ctx, []string{"1", "2", "3"}, t0); err != nil {
				t.Fatal(err)
			}
			held := reservation.Reservation{ID: "held", SpotID: "2", State: reservation.Paid, Source: reservation.SourceDriver,
				From: t0, Until: t0.Add(time.Hour)}
			if err := s.Write(ctx, func(tx store.Tx) error { return tx.Insert(held) }); err != nil {
				t.Fatal(err)
			}
			// The first request holds the committer, so that the others
			// queue and join one batch in order; the last keeps that batch
			// open until the test has looked at who was answered.
			hold, started := make(chan struct{}), make(chan struct{})
			holding := make(chan error, 1)
			go func() { holding <- s.Write(ctx, func(store.Tx) error { close(started); <-hold; return errWrongState }) }()
			<-started
			reqs := make([]*writeReq, len(c.fns))
			for i, fn := range c.fns {
				req, err := s.enqueue(ctx, fn)
				if err != nil {
					t.Fatal(err)
				}
				reqs[i] = req
			}
			release, last := make(chan struct{}), make(chan struct{})
			lastDone := make(chan error, 1)
			go func() {
				lastDone <- s.Write(ctx, func(store.Tx) error { close(last); <-release; return nil })
			}()
			waitUntil(t, "the last request waiting", func() bool { return s.gc.waiting() == len(c.fns)+1 })
			var once sync.Once
			defer once.Do(func() { close(release) }) // Close waits for the batch
			close(hold)
			<-last
			// The committer answers a request early before it runs the
			// next one: by now every early answer is on its channel, and
			// no other can come before the last request lets the batch
			// commit.
			got := make([]writeRes, len(c.fns))
			answered := make([]bool, len(c.fns))
			for i, req := range reqs {
				select {
				case got[i] = <-req.done:
					answered[i] = true
				default:
				}
				if answered[i] != c.early[i] {
					t.Errorf("request %d: answered before its batch committed: %v, want %v", i, answered[i], c.early[i])
				}
			}
			once.Do(func() { close(release) })
			for i, req := range reqs {
				if !answered[i] {
					got[i] = <-req.done
				}
				if err := got[i].err; !errors.Is(err, c.errs[i]) || (c.errs[i] == nil && err != nil) {
					t.Errorf("request %d: %v, want %v", i, err, c.errs[i])
				}
			}
			if err := <-lastDone; err != nil {
				t.Fatal(err)
			}
			if err := <-holding; !errors.Is(err, errWrongState) {
				t.Fatalf("holding request: %v", err)
			}
		})
	}
}
