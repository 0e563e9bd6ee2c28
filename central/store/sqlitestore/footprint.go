package sqlitestore

import "slices"

// Footprints: which refusals of a batch may be answered before its commit.
//
// A request of a batch that fails changed nothing, but its refusal may rest
// on what an earlier request of the same batch wrote, which holds only once
// the batch commits; such a refusal must wait for the commit. One that rests
// only on committed data need not, and answering it at once is what keeps a
// contended spot's losers from queuing behind an fsync they have no part in.
//
// The committer cannot look inside a request's function, so the writer's
// transaction records, per request, what its statements touched:
//
//   - The methods that read or write one spot's row and reservations
//     (Spot, Availability, Live, Insert) record that spot; Log records
//     nothing, because no keyed read looks at the change log.
//   - Any other statement (Get, Update, payments, gates, SetSpots, …) makes
//     the footprint unbounded: it may have read or written anything.
//
// A failed request is answered at once when no earlier request of the batch
// changed anything, as before, or when its own footprint is bounded, no
// earlier successful request's footprint was unbounded, and none of the
// spots it touched was touched by an earlier successful request. Counting
// a successful request's reads as writes only makes the rule stricter. A
// panic keeps the first rule only: its footprint may be cut short.

// footprint is what one request's statements touched.
type footprint struct {
	unbounded bool
	spots     []string
	depth     int // > 0 while a keyed method runs its statements
}

// statement records a statement run outside any keyed method. fp may be
// nil (no batch: nothing to record).
func (fp *footprint) statement() {
	if fp != nil && fp.depth == 0 {
		fp.unbounded = true
	}
}

// keyed records that the statements until done touch only spot's row and
// reservations (none for spot "": only the change log).
func (fp *footprint) keyed(spot string) (done func()) {
	if fp == nil {
		return func() {}
	}
	if spot != "" && !slices.Contains(fp.spots, spot) {
		fp.spots = append(fp.spots, spot)
	}
	fp.depth++
	return func() { fp.depth-- }
}

// batchFootprint is what the successful requests of a batch touched so far.
type batchFootprint struct {
	unbounded bool
	spots     map[string]struct{}
}

func (b *batchFootprint) empty() bool { return !b.unbounded && len(b.spots) == 0 }

// add records a successful request's footprint.
func (b *batchFootprint) add(fp *footprint) {
	if fp.unbounded {
		b.unbounded = true
		return
	}
	if b.spots == nil {
		b.spots = make(map[string]struct{}, len(fp.spots))
	}
	for _, s := range fp.spots {
		b.spots[s] = struct{}{}
	}
}

// independent reports whether what fp read cannot have been written by the
// batch's successful requests so far.
func (b *batchFootprint) independent(fp *footprint) bool {
	if b.empty() {
		return true
	}
	if b.unbounded || fp.unbounded {
		return false
	}
	for _, s := range fp.spots {
		if _, ok := b.spots[s]; ok {
			return false
		}
	}
	return true
}
