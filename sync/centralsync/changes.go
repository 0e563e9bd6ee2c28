package centralsync

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"time"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/sync/syncmsg"
)

// relayState is the relay loop's own memory between steps.
type relayState struct {
	// leading: this instance held the leadership at the last step.
	leading bool
	// fresh: relayed still holds the version read when Serve started,
	// so the first leadership needs no new read.
	fresh bool
	// lastSent is when central/changes last got a batch or heartbeat
	// (zero: a heartbeat is due at once).
	lastSent time.Time
	// failing keeps a failure streak to one log line.
	failing bool
}

// relayLoop publishes the change log every Poll (or at once on Wake).
func (r *Relay) relayLoop(ctx context.Context) {
	s := relayState{fresh: true}
	for {
		r.relayStep(ctx, &s)
		t := r.clk.NewTimer(r.cfg.Poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		case <-r.wake:
			t.Stop()
		}
	}
}

// relayStep publishes what the log holds after the last relayed version,
// in batches of at most MaxChangesEntries, each only after the previous
// one's PUBACK; a failure leaves the version where it was, so the next
// step sends the same changes again (gates ignore what they hold). With
// nothing new it sends the heartbeat when one is due.
func (r *Relay) relayStep(ctx context.Context, s *relayState) {
	if !r.cfg.Leader(ctx) {
		if s.leading {
			r.log.Info("no longer the relaying instance")
		}
		s.leading, s.fresh = false, false
		r.leading.Store(false)
		return
	}
	if !s.leading {
		if !s.fresh {
			// Another instance relayed meanwhile: go on from where it
			// recorded it had got to.
			v, err := r.startVersion(ctx)
			if err != nil {
				r.relayFailed(s, "reading the change log version", err)
				return
			}
			r.relayed.Store(v)
			r.log.Info("relaying the change log", "version", v)
		}
		s.leading, s.fresh, s.lastSent = true, false, time.Time{}
		r.leading.Store(true)
	}
	if r.announce.Swap(false) {
		s.lastSent = time.Time{}
	}
	if _, leads := r.connected(); !leads {
		// Paused: the log keeps everything until the broker is back, or
		// until the connection that speaks for central (made after this
		// instance became the leader) is up.
		return
	}
	for ctx.Err() == nil {
		after := r.relayed.Load()
		log, err := r.st.Changes(ctx, after, syncmsg.MaxChangesEntries)
		if err != nil {
			r.relayFailed(s, "reading the change log", err)
			return
		}
		if len(log) == 0 {
			now := r.clk.Now()
			if !s.lastSent.IsZero() && now.Sub(s.lastSent) < r.cfg.Heartbeat {
				return
			}
			p, err := syncmsg.EncodeChanges(syncmsg.Heartbeat(after))
			if err == nil {
				err = r.publish(ctx, r.topics.Changes(), p)
			}
			if err != nil {
				r.relayFailed(s, "publishing the heartbeat", err)
				return
			}
			s.lastSent, s.failing = now, false
			return
		}
		batch, err := batchFromLog(after, log)
		if err != nil {
			r.relayFailed(s, "building a batch", err)
			return
		}
		p, err := syncmsg.EncodeChanges(batch)
		if err != nil {
			// An entry the gates would refuse: relaying past it would
			// let them skip a change, so the relay stops here and says
			// so; gates see no heartbeat and report central stale.
			r.relayFailed(s, "encoding a batch", err)
			return
		}
		if err := r.publish(ctx, r.topics.Changes(), p); err != nil {
			r.relayFailed(s, "publishing a batch", err)
			return
		}
		r.recordPosition(ctx, batch.To)
		r.relayed.Store(batch.To)
		s.lastSent = r.clk.Now()
		if s.failing {
			r.log.Info("relaying again", "version", batch.To)
			s.failing = false
		}
		r.log.Debug("relayed", "from", batch.From, "to", batch.To, "entries", len(batch.Entries), "bytes", len(p))
		if len(log) < syncmsg.MaxChangesEntries {
			return
		}
	}
}

// maxReplay is how far behind the log's head a recorded relay position may
// be for a starting relay to go on from it with batches; further behind
// (the relay was down for long), one snapshot per gate is cheaper than
// replaying the log to every gate.
const maxReplay = 10 * syncmsg.MaxChangesEntries

// startVersion is where a relay that starts (at Serve, or on becoming the
// leader) takes up the version line: where the last relay recorded it had
// got to, so that the gates get the changes since as batches, as if the
// relay had never stopped; or, with no usable position (none recorded,
// ahead of the log after a restore, or too far behind), the log's head:
// gates that hold less learn it from the first heartbeat and resync.
func (r *Relay) startVersion(ctx context.Context) (int64, error) {
	head, err := r.st.Version(ctx)
	if err != nil {
		return 0, err
	}
	pos, err := r.st.RelayPosition(ctx)
	if err != nil {
		return 0, err
	}
	if pos > 0 && pos <= head && head-pos <= maxReplay {
		return pos, nil
	}
	return head, nil
}

// recordPosition stores the relay's position after every batch the broker
// acknowledged, for the next relay to go on from (startVersion). A batch
// published but not recorded (a crash in between) is sent again by the
// next relay; gates holding it see a repeat, or an overlap they repair with
// a snapshot. A failure here is logged and does not stop the relay: the
// position only saves gates a snapshot.
//
// It runs even when ctx has just ended: the batch is out, and a shutdown
// is no reason to forget so.
func (r *Relay) recordPosition(ctx context.Context, v int64) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := r.st.Write(ctx, func(tx store.Tx) error { return tx.SetRelayPosition(v) }); err != nil {
		r.log.Warn("recording the relay position failed", "version", v, "err", err)
	}
}

func (r *Relay) relayFailed(s *relayState, what string, err error) {
	if errors.Is(err, context.Canceled) {
		return // shutting down
	}
	if s.failing || errors.Is(err, ErrNotConnected) {
		r.log.Debug("relay step failed", "what", what, "err", err)
		return
	}
	s.failing = true
	r.log.Warn("relay paused; retrying from the same version", "what", what, "version", r.relayed.Load(), "err", err)
}

// syncLoop answers sync requests, one snapshot in flight per gate (a
// request made meanwhile is answered after it) and at most maxSnapshots
// at once.
func (r *Relay) syncLoop(ctx context.Context, wg *sync.WaitGroup) {
	for {
		m, ok := r.syncs.pop(ctx)
		if !ok {
			return
		}
		req, err := syncmsg.DecodeSyncRequest(m.payload)
		if err != nil {
			r.log.Warn("ignoring an invalid sync request", "gate", m.gate, "err", err)
			continue
		}
		if m.retained {
			continue // an old request kept by the broker: the gate asks again if it still needs one
		}
		if !r.leading.Load() {
			r.log.Debug("not the relaying instance; leaving the sync request to it", "gate", m.gate)
			continue
		}
		r.snapMu.Lock()
		busy := r.snapping[m.gate]
		r.snapping[m.gate] = true
		if busy {
			r.snapNext[m.gate] = req
		}
		r.snapMu.Unlock()
		if busy {
			// Answered when the snapshot on its way is sent, with a
			// snapshot of its own that echoes its id: the gate takes
			// only answers to what it asked since its last snapshot, and
			// it asks again when the first answer is slow or lost. Only
			// the newest of such requests is kept: one answer after it
			// covers them all.
			r.log.Info("a snapshot for this gate is on its way; this request is answered after it", "gate", m.gate, "request", req.ID, "reason", req.Reason)
			continue
		}
		wg.Go(func() {
			// done ends the gate's turn, in the same critical section
			// that finds no request left, so that a request arriving
			// after it starts a turn of its own.
			done := func() {
				delete(r.snapping, m.gate)
				delete(r.snapNext, m.gate)
				r.snapMu.Unlock()
			}
			select {
			case r.snapSlot <- struct{}{}:
			case <-ctx.Done():
				r.snapMu.Lock()
				done()
				return
			}
			defer func() { <-r.snapSlot }()
			for req := req; ; {
				r.answerSync(ctx, m.gate, req)
				r.snapMu.Lock()
				next, more := r.snapNext[m.gate]
				if !more || ctx.Err() != nil {
					done()
					return
				}
				delete(r.snapNext, m.gate)
				r.snapMu.Unlock()
				req = next
			}
		})
	}
}

// answerSync sends gate a snapshot at the last relayed version V. V is
// read before the reservations, so the list holds every change up to V (and
// maybe some after it); the batches after V, which the gate applies on
// top, repeat those: entries are full states, so a repeat is harmless. V is
// the relayed version rather than the log's newest because it is a point
// of the line the batches follow: the next batch starts exactly at V. A
// version between two batches' points would make the batch that spans it a
// gap at the gate, and a second resync.
func (r *Relay) answerSync(ctx context.Context, gate string, req syncmsg.SyncRequest) {
	start := r.clk.Now()
	version := r.relayed.Load()
	entries, err := r.snapshotEntries(ctx)
	if err != nil {
		r.log.Warn("reading the snapshot failed; the gate asks again", "gate", gate, "err", err)
		return
	}
	id := "snap-" + rand.Text()
	parts, err := syncmsg.SplitSnapshot(id, version, entries, 0)
	if err != nil {
		r.log.Error("building a snapshot failed", "gate", gate, "err", err)
		return
	}
	bytes := 0
	for _, p := range parts {
		p.Request = req.ID // so that the gate can tell which request this answers
		payload, err := syncmsg.EncodeSnapshotPart(p)
		if err == nil {
			err = r.publish(ctx, r.topics.Snapshot(gate), payload)
		}
		if err != nil {
			r.log.Warn("sending a snapshot failed; the gate asks again", "gate", gate, "snapshot", id, "part", p.Part, "err", err)
			return
		}
		bytes += len(payload)
	}
	r.log.Info("snapshot sent", "gate", gate, "request", req.ID, "reason", req.Reason, "have", req.Have,
		"version", version, "entries", len(entries), "parts", len(parts), "bytes", bytes,
		"took", r.clk.Now().Sub(start).Round(time.Millisecond))
}

// snapshotEntries lists what a gate needs (the rule is Config.RevokedMargin's):
// every paid or taken reservation, and the left, cancelled and no-show
// ones whose window ended less than RevokedMargin ago; only those that
// were paid (gateRelevant).
func (r *Relay) snapshotEntries(ctx context.Context) ([]syncmsg.Entry, error) {
	live, err := r.st.List(ctx, store.Filter{States: []reservation.State{reservation.Paid, reservation.Taken}})
	if err != nil {
		return nil, err
	}
	revoked, err := r.st.List(ctx, store.Filter{
		States:     []reservation.State{reservation.Left, reservation.Cancelled, reservation.NoShow},
		UntilAfter: r.clk.Now().Add(-r.cfg.RevokedMargin),
	})
	if err != nil {
		return nil, err
	}
	out := make([]syncmsg.Entry, 0, len(live)+len(revoked))
	at := make(map[string]int, len(live)+len(revoked))
	for _, list := range [][]reservation.Reservation{live, revoked} {
		for _, res := range list {
			e, ok := entryFromReservation(res)
			if !ok {
				continue
			}
			if i, dup := at[e.ID]; dup {
				// It changed state between the two reads: the second
				// read is the newer one.
				out[i] = e
				continue
			}
			at[e.ID] = len(out)
			out = append(out, e)
		}
	}
	return out, nil
}
