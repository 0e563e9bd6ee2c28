package booking

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
)

// board is an in-memory copy of what the spot views need — the active
// spots, and each spot's live reservations and those that left within a
// window not yet over — kept up to date by replaying the change log.
//
// GET /parkings is the busiest read: loading the ~1,000 rows it needs from
// SQLite on every request cost ~4 ms of CPU, while reading the few log
// entries since the last request costs tens of microseconds. Because it
// follows the log rather than this process's own writes, the board is
// right with several centrald instances on one database too. Every change
// carries the whole reservation after it, so replaying an entry twice, or
// one the initial load already saw, is harmless.
//
// Asking the log "anything new?" is itself a query, and GET /parkings/{id}
// is the busiest request of all: under load that query, made under the
// board's lock, was most of what a point read cost and made reads queue
// behind each other. A store that counts its logged commits
// (store.LogSequencer: SQLite, where every writer that matters is this
// process) lets a read skip it while the count has not moved since the
// last sync and that sync is less than maxStale old; the count moves
// before a write is answered, so a client always reads its own write.
// maxStale bounds how late a write by another process on the same file
// (an operator's command) shows. Stores without the count (PostgreSQL,
// where other instances write) are asked on every read, as before.
type board struct {
	store store.Store
	seq   store.LogSequencer // nil: ask the log on every read

	mu        sync.RWMutex
	loaded    bool
	syncedSeq uint64    // seq read before the last sync
	syncedAt  time.Time // when it ran
	version   int64
	spots     []string
	active    map[string]bool
	bySpot    map[string]map[string]reservation.Reservation
	nextPrune time.Time
}

// changesPerRead bounds one read of the log while catching up.
const changesPerRead = 1000

// maxStale: with a LogSequencer, the log is read at least this often all
// the same, for writes by other processes.
const maxStale = time.Second

func newBoard(st store.Store) *board {
	b := &board{store: st}
	b.seq, _ = st.(store.LogSequencer)
	return b
}

// fresh reports whether the board, as last synced, is still up to date
// without asking the log. It must be called with b.mu held (read or
// write).
func (b *board) fresh(now time.Time) bool {
	return b.seq != nil && b.loaded && b.seq.LogSeq() == b.syncedSeq && now.Sub(b.syncedAt) < maxStale
}

// sync brings the board up to the log's latest version. It must be called
// with b.mu held.
func (b *board) sync(ctx context.Context, now time.Time) error {
	// Read before the log: a commit landing while it is read moves the
	// count past this value, so the next read syncs again.
	var seq uint64
	if b.seq != nil {
		seq = b.seq.LogSeq()
	}
	if !b.loaded {
		if err := b.load(ctx, now); err != nil {
			return err
		}
	}
	reloadSpots := false
	for {
		cs, err := b.store.Changes(ctx, b.version, changesPerRead)
		if err != nil {
			return err
		}
		for _, c := range cs {
			switch {
			case c.Kind == store.KindSpotAdded || c.Kind == store.KindSpotRetired:
				reloadSpots = true
			case c.Reservation != nil:
				b.put(*c.Reservation, now)
			}
			b.version = c.Version
		}
		if len(cs) < changesPerRead {
			break
		}
	}
	if reloadSpots {
		if err := b.loadSpots(ctx); err != nil {
			return err
		}
	}
	if now.After(b.nextPrune) {
		b.prune(now)
	}
	b.syncedSeq, b.syncedAt = seq, now
	return nil
}

// load reads the current state. The version is read first: changes
// committed while the rest is read are then replayed on top.
func (b *board) load(ctx context.Context, now time.Time) error {
	v, err := b.store.Version(ctx)
	if err != nil {
		return err
	}
	live, err := b.store.List(ctx, store.Filter{States: reservation.LiveStates})
	if err != nil {
		return err
	}
	left, err := b.store.List(ctx, store.Filter{States: []reservation.State{reservation.Left}, UntilAfter: now})
	if err != nil {
		return err
	}
	b.bySpot = map[string]map[string]reservation.Reservation{}
	for _, r := range append(live, left...) {
		b.put(r, now)
	}
	if err := b.loadSpots(ctx); err != nil {
		return err
	}
	b.version, b.loaded = v, true
	return nil
}

func (b *board) loadSpots(ctx context.Context) error {
	ids, err := b.store.Spots(ctx)
	if err != nil {
		return err
	}
	b.spots = ids
	b.active = make(map[string]bool, len(ids))
	for _, id := range ids {
		b.active[id] = true
	}
	return nil
}

// put records r as it now is: kept while live or left within its window.
func (b *board) put(r reservation.Reservation, now time.Time) {
	m := b.bySpot[r.SpotID]
	if r.State.Live() || r.State == reservation.Left && r.Until.After(now) {
		if m == nil {
			m = map[string]reservation.Reservation{}
			b.bySpot[r.SpotID] = m
		}
		m[r.ID] = r
		return
	}
	delete(m, r.ID)
}

// prune drops reservations that left and whose window is over; they no
// longer explain any spot's status.
func (b *board) prune(now time.Time) {
	for _, m := range b.bySpot {
		for id, r := range m {
			if r.State == reservation.Left && !r.Until.After(now) {
				delete(m, id)
			}
		}
	}
	b.nextPrune = now.Add(time.Minute)
}

// views returns the view of each spot in ids (all active spots if ids is
// nil); ok is false if one of ids is not an active spot.
func (b *board) views(ctx context.Context, now time.Time, ids ...string) ([]SpotView, bool, error) {
	// The common case, nothing logged since the last sync: readers share
	// the lock and never touch the database.
	b.mu.RLock()
	if b.fresh(now) {
		defer b.mu.RUnlock()
		return b.viewsLocked(now, ids)
	}
	b.mu.RUnlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.fresh(now) { // another reader may have synced meanwhile
		if err := b.sync(ctx, now); err != nil {
			return nil, false, err
		}
	}
	return b.viewsLocked(now, ids)
}

// viewsLocked computes the views; b.mu must be held (read or write).
func (b *board) viewsLocked(now time.Time, ids []string) ([]SpotView, bool, error) {
	if ids == nil {
		ids = b.spots
	}
	out := make([]SpotView, len(ids))
	var rs []reservation.Reservation
	for i, id := range ids {
		if !b.active[id] {
			return nil, false, nil
		}
		rs = rs[:0]
		for _, r := range b.bySpot[id] {
			rs = append(rs, r)
		}
		// Map order is random; view's choices must not be.
		slices.SortFunc(rs, func(a, b reservation.Reservation) int { return a.From.Compare(b.From) })
		out[i] = view(id, rs, now)
	}
	return out, true, nil
}
