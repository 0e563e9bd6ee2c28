package bench

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
)

// HistoryLoad is what LoadHistory writes: years of a site's reservations,
// through the store's own transactions, as the booking rules would have
// left them.
type HistoryLoad struct {
	// Reservations in all; Future of them (a share, 0 to 1) are still to
	// come (paid, in the next days), the rest finished over the Years
	// before Now.
	Reservations int
	Future       float64
	// OnlyFuture writes the future ones alone: the same site with no
	// history, what the history is compared with.
	OnlyFuture bool
	// Spots "1" to Spots, which must exist.
	Spots int
	Years int
	Now   time.Time
	// Batch reservations go in one transaction; Writers transactions run
	// at once (PostgreSQL takes several; SQLite has one writer anyway).
	Batch, Writers int
	// Progress, if set, is called after every batch with the count done;
	// calls never overlap.
	Progress func(done int)
}

// HistoryLoaded counts what LoadHistory wrote, by kind.
type HistoryLoaded struct {
	Reservations int
	ByState      map[reservation.State]int
	Attempts     int
	Refunds      int
	Changes      int
}

// HistoryPlate is the plate of the i-th loaded reservation: 300,000 cars,
// each coming back now and then, as regulars do.
func HistoryPlate(i int) string { return fmt.Sprintf("HB%06d", i%300_000) }

// HistoryID is the id of the i-th loaded reservation.
func HistoryID(i int) string { return fmt.Sprintf("hist-%08d", i) }

// LoadHistory writes h.Reservations reservations. Spot k's finished
// reservations are spread evenly over the years (so windows never
// overlap), each as the booking rules end one: mostly left (a fifth of
// them early, with a refund of the unused hours), and some expired
// unpaid, no-show (the no-show fee kept, the rest refunded) or cancelled
// (refunded if paid). Every paid one has its succeeded payment attempt,
// with a payment method and an idempotency key like a driver's; every one
// its plate and token hash, and one change-log entry: its last change,
// where a live site logs two to four (created, paid, checked in, left).
// The future ones are paid, a few days ahead: an unpaid one would be
// expired by the sweeper within the payment hold, a burst of writes in
// the middle of a measurement, where a live site has only a handful.
// The ids are HistoryID(i), the plates HistoryPlate(i); the data is the
// same for the same h.
func LoadHistory(ctx context.Context, st store.Store, h HistoryLoad) (HistoryLoaded, error) {
	if h.Reservations <= 0 || h.Spots <= 0 || h.Years <= 0 || h.Future < 0 || h.Future > 1 || h.Now.IsZero() {
		return HistoryLoaded{}, fmt.Errorf("history load: bad plan %+v", h)
	}
	h.Batch, h.Writers = max(h.Batch, 1), max(h.Writers, 1)
	future := int(float64(h.Reservations) * h.Future)
	finished := h.Reservations - future
	perSpot := (finished + h.Spots - 1) / h.Spots
	g := historyGen{h: h, finished: finished, perSpot: max(perSpot, 1),
		slot: time.Duration(h.Years) * 365 * 24 * time.Hour / time.Duration(max(perSpot, 1))}

	first0 := 0
	if h.OnlyFuture {
		first0 = finished
	}
	var (
		mu    sync.Mutex
		total = HistoryLoaded{ByState: map[reservation.State]int{}}
		next  atomic.Int64
		done  int // under mu
		wg    sync.WaitGroup
		first error
		once  sync.Once
	)
	next.Store(int64(first0))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range h.Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				from := int(next.Add(int64(h.Batch))) - h.Batch
				if from >= h.Reservations {
					return
				}
				to := min(from+h.Batch, h.Reservations)
				var part HistoryLoaded
				err := st.Write(ctx, func(tx store.Tx) error {
					part = HistoryLoaded{ByState: map[reservation.State]int{}}
					for i := from; i < to; i++ {
						if err := g.write(tx, i, &part); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					once.Do(func() { first = fmt.Errorf("history load, reservations %d to %d: %w", from, to-1, err) })
					cancel()
					return
				}
				mu.Lock()
				total.Reservations += part.Reservations
				total.Attempts += part.Attempts
				total.Refunds += part.Refunds
				total.Changes += part.Changes
				for s, n := range part.ByState {
					total.ByState[s] += n
				}
				done += to - from
				if h.Progress != nil {
					h.Progress(done)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return total, first
}

// historyGen makes the i-th reservation of a load; the same i always
// gives the same rows.
type historyGen struct {
	h        HistoryLoad
	finished int
	perSpot  int
	slot     time.Duration // the time between two finished windows of a spot
}

const (
	historyPrice = 250 // per hour, in cents, as the default config
	historyFee   = 250 // the default no-show fee
)

func (g historyGen) write(tx store.Tx, i int, out *HistoryLoaded) error {
	r, attempt, refund := g.make(i)
	if err := tx.Insert(r); err != nil {
		return err
	}
	out.Reservations++
	out.ByState[r.State]++
	if attempt != nil {
		if err := tx.PutAttempt(*attempt); err != nil {
			return err
		}
		out.Attempts++
	}
	if refund != nil {
		if err := tx.PutRefund(*refund); err != nil {
			return err
		}
		out.Refunds++
	}
	kind, at := store.KindLeft, r.EndedAt
	switch r.State {
	case reservation.Expired:
		kind = store.KindExpired
	case reservation.NoShow:
		kind = store.KindNoShow
	case reservation.Cancelled:
		kind = store.KindCancelled
	case reservation.Reserved:
		kind, at = store.KindCreated, r.CreatedAt
	case reservation.Paid:
		kind, at = store.KindPaid, r.PaidAt
	}
	actor := "system"
	if kind == store.KindCancelled || kind == store.KindCreated || kind == store.KindPaid {
		actor = "driver"
	}
	if err := tx.Log(store.Change{At: at, Kind: kind, SpotID: r.SpotID, ReservationID: r.ID, Actor: actor, Reservation: &r}); err != nil {
		return err
	}
	out.Changes++
	return nil
}

// make returns the i-th reservation with its payment attempt and refund
// (nil when its state implies none).
func (g historyGen) make(i int) (reservation.Reservation, *store.PaymentAttempt, *store.Refund) {
	rng := rand.New(rand.NewPCG(uint64(i), 0x9e3779b97f4a7c15))
	spots := g.h.Spots
	id := HistoryID(i)
	tok := sha256.Sum256(binary.BigEndian.AppendUint64([]byte("history-token"), uint64(i)))
	r := reservation.Reservation{ID: id, Source: reservation.SourceDriver, CarID: HistoryPlate(i),
		Currency: "eur", TokenHash: tok[:]}
	hours := 1 + rng.IntN(8)
	r.Amount = int64(hours * historyPrice)
	now := g.h.Now.UTC().Truncate(time.Hour)
	if i >= g.finished {
		// Future: spot k's j-th, on day 1+3j (a free window of its own).
		k := i - g.finished
		r.SpotID = strconv.Itoa(1 + k%spots)
		r.From = now.Add(time.Duration(24*(1+3*(k/spots))+8+rng.IntN(8)) * time.Hour)
		r.Until = r.From.Add(time.Duration(hours) * time.Hour)
		r.CreatedAt = now.Add(-time.Duration(1+rng.IntN(72)) * time.Hour)
		r.State = reservation.Paid
		r.PaidAt = r.CreatedAt.Add(time.Minute)
		r.PaymentRef = "pi_hist_" + id
		r.PaymentAttempts = 1
		return r, historyAttempt(r, tok[:]), nil
	}
	// Finished: spot k's j-th, in the j-th slot of the years before now.
	k, j := i%spots, i/spots
	r.SpotID = strconv.Itoa(1 + k)
	start := now.Add(-time.Duration(g.h.Years) * 365 * 24 * time.Hour).Add(time.Duration(j) * g.slot)
	r.From = start.Add(time.Duration(rng.IntN(max(int(g.slot/time.Hour)-12, 1))) * time.Hour)
	r.Until = r.From.Add(time.Duration(hours) * time.Hour)
	if !r.Until.Before(now) { // the last slot of a short history: end it before now
		r.Until = now.Add(-time.Hour)
		r.From = r.Until.Add(-time.Duration(hours) * time.Hour)
	}
	r.CreatedAt = r.From.Add(-time.Duration(1+rng.IntN(14*24)) * time.Hour)
	paid := func() {
		r.PaidAt = r.CreatedAt.Add(time.Minute)
		r.PaymentRef = "pi_hist_" + id
		r.PaymentAttempts = 1
	}
	var refund *store.Refund
	refundOf := func(reason string, amount int64, at time.Time) {
		if amount <= 0 {
			return
		}
		refund = &store.Refund{ReservationID: id, Number: 1, Reason: reason, Amount: amount, Currency: r.Currency,
			ChargeRef: r.PaymentRef, ProviderKey: "parkgate-refund-" + id + "-1", Status: store.RefundSucceeded,
			ProviderRef: "re_hist_" + id, Tries: 1, CreatedAt: at, FinishedAt: at.Add(2 * time.Second)}
	}
	switch p := rng.IntN(100); {
	case p < 80:
		paid()
		r.State = reservation.Left
		r.CheckedInAt = r.From.Add(time.Duration(rng.IntN(15)) * time.Minute)
		r.LeftAt = r.Until.Add(-time.Duration(rng.IntN(15)) * time.Minute)
		if rng.IntN(5) == 0 && hours > 1 { // left early: the unused hours back
			used := 1 + rng.IntN(hours-1)
			r.LeftAt = r.From.Add(time.Duration(used)*time.Hour - 5*time.Minute)
			refundOf("early_departure", int64((hours-used)*historyPrice), r.LeftAt)
		}
		r.EndedAt = r.LeftAt
	case p < 86:
		r.State = reservation.Expired
		r.EndedAt = r.CreatedAt.Add(15 * time.Minute)
	case p < 91:
		paid()
		r.State = reservation.NoShow
		r.EndedAt = r.From.Add(30 * time.Minute)
		refundOf("no_show", r.Amount-historyFee, r.EndedAt)
	default:
		r.State = reservation.Cancelled
		r.EndedAt = r.CreatedAt.Add(time.Duration(1+rng.IntN(24)) * time.Hour)
		if r.EndedAt.After(r.From) {
			r.EndedAt = r.From.Add(-time.Minute)
		}
		if rng.IntN(2) == 0 {
			paid()
			refundOf("cancelled", r.Amount, r.EndedAt)
		}
	}
	if r.PaymentRef == "" {
		return r, nil, refund
	}
	return r, historyAttempt(r, tok[:]), refund
}

// historyAttempt is the succeeded payment of r, as a driver's card
// payment with an Idempotency-Key leaves it.
func historyAttempt(r reservation.Reservation, seed []byte) *store.PaymentAttempt {
	key := sha256.Sum256(append([]byte("key"), seed...))
	req := sha256.Sum256(append([]byte("req"), seed...))
	return &store.PaymentAttempt{ReservationID: r.ID, Number: 1, KeyHash: key[:], RequestHash: req[:],
		ProviderKey: "parkgate-" + r.ID + "-1", Outcome: store.AttemptSucceeded, ProviderRef: r.PaymentRef,
		Amount: r.Amount, Currency: r.Currency, CarID: r.CarID, PaymentMethod: "pm_card_visa",
		StartedAt: r.PaidAt.Add(-2 * time.Second), FinishedAt: r.PaidAt}
}
