package console

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/parkgate/parkgate/central/api"
	"github.com/parkgate/parkgate/central/apijson"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/clock"
)

// hub follows the store for every open event stream at once, so that 50
// consoles cost one reader, not 50: it keeps the latest change-log entries,
// the gates' presence and the latest gate events, refunds and payment
// exceptions in memory, and wakes the streams when any of them moved. Streams pull what they have not sent
// yet; a stream that fell behind the kept entries reads the store itself,
// so a slow client never loses a change.
//
// It reads only while a stream is open.
type hub struct {
	st   store.Store
	clk  clock.Clock
	poll time.Duration
	log  *slog.Logger

	// stepping serializes reads of the store: the poll loop's and the
	// one a stream's subscription starts when nobody was following.
	stepping sync.Mutex

	mu      sync.Mutex
	subs    map[*stream]struct{}
	fresh   bool           // state below follows the store
	from    int64          // changes holds the log's entries in (from, version]
	version int64          // the last version read
	changes []keptChange   // oldest first
	gates   []apijson.Gate // by id
	// events are the gate events, refunds and payment exceptions that
	// appeared or changed since the hub started following, numbered from
	// eventSeq-len(events)+1 to eventSeq.
	events   []hubEvent
	eventSeq int64
	seen     map[string]bool                     // gate event ids of the last read
	refunds  map[string]RefundEvent              // the last read, by reservation/number
	payments map[string]apijson.PaymentException // the last read, by id
}

// keptChange is a change-log entry with its JSON, encoded once for every
// stream that sends it.
type keptChange struct {
	version int64
	data    []byte
}

// hubEvent is one event the streams send without an id: its name and data.
type hubEvent struct {
	name string
	data any
}

// RefundEvent is the data of the event stream's "refund" event: a refund
// recorded (status pending) or settled (succeeded, or refused for good).
type RefundEvent struct {
	ReservationID string `json:"reservationId"`
	apijson.Refund
}

func refundEvent(r store.Refund) RefundEvent {
	return RefundEvent{ReservationID: r.ReservationID, Refund: api.RefundJSON(r)}
}

// Kept in memory: a stream further behind reads the store.
const (
	keepChanges = 2000
	keepEvents  = 200
	// eventsPerRead is how many of the newest gate events each poll
	// reads; more arriving within one poll are read from the store by
	// the ledger, not pushed.
	eventsPerRead = 100
)

func newHub(st store.Store, clk clock.Clock, poll time.Duration, log *slog.Logger) *hub {
	return &hub{st: st, clk: clk, poll: poll, log: log, subs: map[*stream]struct{}{}}
}

// stream is one open /admin/events connection's place in the hub.
type stream struct {
	wake chan struct{} // capacity 1: "something moved"
}

// subscribe adds a stream and returns the number of the last event it
// need not send. When the hub was not following the store, its starting
// point is read here, before the stream answers: a refund or payment
// exception written after the stream's "hello" is news to it, not part of
// a starting point read a poll later (the page reloads its state on
// "hello" for what came before).
func (h *hub) subscribe(ctx context.Context) (*stream, int64, error) {
	s := &stream{wake: make(chan struct{}, 1)}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	seq, fresh := h.eventSeq, h.fresh
	h.mu.Unlock()
	if !fresh {
		// The starting point adds no events: seq, taken before it,
		// still marks where this stream's news begins.
		if err := h.step(ctx); err != nil {
			h.unsubscribe(s)
			return nil, 0, err
		}
	}
	return s, seq, nil
}

func (h *hub) unsubscribe(s *stream) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, s)
}

// Serve polls the store while streams are open, until ctx ends.
func (h *hub) Serve(ctx context.Context) error {
	failing := false
	for {
		if err := h.step(ctx); err != nil && ctx.Err() == nil {
			if !failing {
				h.log.Warn("console events: reading the store failed; retrying", "err", err)
			}
			failing = true
		} else {
			failing = false
		}
		if !clock.Sleep(ctx, h.clk, h.poll) {
			return nil
		}
	}
}

func (h *hub) step(ctx context.Context) error {
	h.stepping.Lock()
	defer h.stepping.Unlock()
	h.mu.Lock()
	n, fresh, version := len(h.subs), h.fresh, h.version
	if n == 0 {
		h.fresh = false // nobody listens: stop following
	}
	h.mu.Unlock()
	if n == 0 {
		return nil
	}
	var (
		cs  []store.Change
		err error
	)
	if !fresh {
		if version, err = h.st.Version(ctx); err != nil {
			return err
		}
	} else {
		for {
			page, err := h.st.Changes(ctx, version, changesPerRead)
			if err != nil {
				return err
			}
			cs = append(cs, page...)
			if len(page) < changesPerRead {
				break
			}
			version = page[len(page)-1].Version
		}
	}
	gs, err := h.st.Gates(ctx)
	if err != nil {
		return err
	}
	gates := make([]apijson.Gate, len(gs))
	for i, g := range gs {
		gates[i] = api.GateJSON(g)
	}
	es, err := h.st.GateEvents(ctx, store.EventFilter{Limit: eventsPerRead})
	if err != nil {
		return err
	}
	rs, err := h.st.LatestRefunds(ctx, eventsPerRead)
	if err != nil {
		return err
	}
	ps, err := h.st.PaymentExceptions(ctx, eventsPerRead)
	if err != nil {
		return err
	}
	refunds := make(map[string]RefundEvent, len(rs))
	for _, r := range rs {
		refunds[fmt.Sprintf("%s/%d", r.ReservationID, r.Number)] = refundEvent(r)
	}
	payments := make(map[string]apijson.PaymentException, len(ps))
	for _, p := range ps {
		payments[p.ID] = api.PaymentExceptionJSON(p)
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	moved := false
	if !fresh {
		h.from, h.version, h.changes, h.fresh = version, version, nil, true
		h.seen = map[string]bool{}
		for _, e := range es {
			h.seen[e.EventID] = true
		}
		h.gates, h.refunds, h.payments = gates, refunds, payments
		moved = true // streams that joined meanwhile catch up
	} else {
		for _, c := range cs {
			if c.Version > h.version {
				data, err := json.Marshal(c)
				if err != nil {
					return err
				}
				h.changes = append(h.changes, keptChange{version: c.Version, data: data})
				h.version = c.Version
				moved = true
			}
		}
		if over := len(h.changes) - keepChanges; over > 0 {
			h.from = h.changes[over-1].version
			h.changes = append([]keptChange(nil), h.changes[over:]...)
		}
		if !reflect.DeepEqual(gates, h.gates) {
			h.gates, moved = gates, true
		}
		seen := make(map[string]bool, len(es))
		for i := len(es) - 1; i >= 0; i-- { // oldest first
			e := es[i]
			seen[e.EventID] = true
			if !h.seen[e.EventID] {
				h.add("gate_event", api.GateEventJSON(e))
				moved = true
			}
		}
		h.seen = seen
		// Refunds and payment exceptions new or changed (settled,
		// resolved) since the last read, oldest first. One that left the
		// newest read and comes back has changed (a refund settled).
		for i := len(rs) - 1; i >= 0; i-- {
			r := refundEvent(rs[i])
			if prev, ok := h.refunds[fmt.Sprintf("%s/%d", r.ReservationID, r.Number)]; !ok || prev != r {
				h.add("refund", r)
				moved = true
			}
		}
		for i := len(ps) - 1; i >= 0; i-- {
			p := api.PaymentExceptionJSON(ps[i])
			if prev, ok := h.payments[p.ID]; !ok || prev != p {
				h.add("payment_exception", p)
				moved = true
			}
		}
		h.refunds, h.payments = refunds, payments
		if over := len(h.events) - keepEvents; over > 0 {
			h.events = append([]hubEvent(nil), h.events[over:]...)
		}
	}
	if moved {
		for s := range h.subs {
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
	}
	return nil
}

// changesPerRead bounds one read of the log.
const changesPerRead = 1000

// since returns the kept changes after version after; ok is false when
// the hub does not hold them all (not following yet, or after is older
// than what it keeps): the caller reads the store.
func (h *hub) since(after int64) (cs []keptChange, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.fresh || after < h.from {
		return nil, false
	}
	// Versions rise: find the first one after after instead of scanning
	// the kept entries for every stream at every wake.
	i := sort.Search(len(h.changes), func(i int) bool { return h.changes[i].version > after })
	return append([]keptChange(nil), h.changes[i:]...), true
}

// add numbers an event for the streams; h.mu is held.
func (h *hub) add(name string, data any) {
	h.events = append(h.events, hubEvent{name: name, data: data})
	h.eventSeq++
}

// snapshot returns the gates as last read (nil before the first read),
// and the events numbered after seq with the newest number.
func (h *hub) snapshot(seq int64) ([]apijson.Gate, []hubEvent, int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var es []hubEvent
	if n := h.eventSeq - seq; n > 0 {
		n = min(n, int64(len(h.events)))
		es = append(es, h.events[int64(len(h.events))-n:]...)
	}
	return h.gates, es, h.eventSeq
}
