package centralsync

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/sync/syncmsg"
)

// eventsLoop stores and acknowledges event batches one at a time, in the
// order they arrived, so that a gate's events are applied in its sequence
// (an entry before the exit of the same car).
func (r *Relay) eventsLoop(ctx context.Context) {
	for {
		m, ok := r.events.pop(ctx)
		if !ok {
			return
		}
		r.handleEvents(ctx, m)
	}
}

// handleEvents applies a batch and acknowledges exactly the events that
// are now stored (new or known duplicates), with one Ack. It stops at the
// first event that fails to store: that one and the rest stay in the
// gate's outbox, which sends them again in order.
func (r *Relay) handleEvents(ctx context.Context, m inMsg) {
	batch, err := syncmsg.DecodeEvents(m.payload)
	if err != nil {
		// Nothing is acknowledged: a gate that keeps sending a batch this
		// build cannot read shows in its outbox depth and in this log.
		r.log.Warn("ignoring an invalid events message", "gate", m.gate, "err", err)
		return
	}
	if claimed := claimedGate(m.payload, m.gate); claimed != "" {
		// The broker's ACL ties the topic to the sender; an event that
		// says it comes from elsewhere is a fault (or a forgery) that
		// must not be stored under either gate.
		r.log.Warn("ignoring events that claim another gate than their topic's", "gate", m.gate, "claimed", claimed)
		return
	}
	if ok, err := r.hasRole(ctx, m.gate); !ok {
		// Its birth (which records the role of a gate provisioned
		// without one) may be queued behind this batch: nothing is
		// acknowledged, and the gate sends the events again.
		if err == nil {
			r.log.Warn("holding back events of a gate whose role is not recorded yet (provision it with --role, or wait for its birth)", "gate", m.gate)
		} else if ctx.Err() == nil {
			r.log.Warn("reading a gate's role failed; the gate sends its events again", "gate", m.gate, "err", err)
		}
		return
	}
	ids := make([]string, 0, len(batch.Events))
	var fresh, dups, exceptions int
	for _, e := range batch.Events {
		outcome, dup, err := r.svc.ApplyGateEvent(ctx, toStoreEvent(e, m.gate))
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("storing a gate event failed; the gate sends it again", "gate", m.gate, "event", e.EventID, "seq", e.Seq, "err", err)
			}
			break
		}
		switch {
		case dup:
			dups++
		case outcome == store.EventException:
			exceptions++
			fresh++
		default:
			fresh++
		}
		ids = append(ids, e.EventID)
	}
	if len(ids) == 0 {
		return
	}
	p, err := syncmsg.EncodeAck(syncmsg.Ack{EventIDs: ids})
	if err == nil {
		err = r.publish(ctx, r.topics.Ack(m.gate), p)
	}
	if err != nil {
		// Stored all the same: the gate sends them again and they are
		// acknowledged as duplicates.
		r.log.Warn("acknowledging events failed", "gate", m.gate, "events", len(ids), "err", err)
		return
	}
	r.log.Debug("events acknowledged", "gate", m.gate, "new", fresh, "duplicates", dups, "exceptions", exceptions)
}

// hasRole reports whether gate has a registered role, which its events
// are checked against (booking.ApplyGateEvent).
func (r *Relay) hasRole(ctx context.Context, gate string) (bool, error) {
	g, err := r.st.Gate(ctx, gate)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil && g.Role != "", err
}

// claimedGate returns the first gate id an event of payload claims that is
// not gate, or "". Events of format 1 carry no gate id (the topic does),
// but a sender may add one (unknown fields are allowed), and then it must
// agree with the topic.
func claimedGate(payload []byte, gate string) string {
	var claims struct {
		Events []struct {
			GateID *string `json:"gateId"`
		} `json:"events"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return ""
	}
	for _, c := range claims.Events {
		if c.GateID != nil && *c.GateID != gate {
			if *c.GateID == "" {
				return `""`
			}
			return *c.GateID
		}
	}
	return ""
}

// toStoreEvent returns e as centrald stores it, for gate. The gate is the
// topic's, which the broker's ACL ties to the sender's credentials; the
// payload carries no gate id to trust instead.
func toStoreEvent(e syncmsg.Event, gate string) store.GateEvent {
	return store.GateEvent{
		EventID:         e.EventID,
		GateID:          gate,
		Seq:             e.Seq,
		Kind:            e.Kind,
		Role:            e.Role,
		Time:            e.Time.UTC(),
		Source:          e.Source,
		Granted:         e.Granted,
		Reason:          e.Reason,
		ReservationID:   e.ReservationID,
		SpotID:          e.SpotID,
		CarID:           e.CarID,
		Plate:           e.Plate,
		Detail:          e.Detail,
		Overstay:        e.Overstay,
		PresenceUnknown: e.PresenceUnknown,
		ClockTrusted:    e.ClockTrusted,
	}
}

// touch notes that gate was just heard from, and queues a lastSeen update
// at most once per seenDebounce.
func (r *Relay) touch(gate string) {
	now := r.clk.Now()
	r.seenMu.Lock()
	last, ok := r.seen[gate]
	due := !ok || now.Sub(last) >= seenDebounce || now.Before(last)
	if due {
		if len(r.seen) >= maxSeen {
			clear(r.seen)
		}
		r.seen[gate] = now
	}
	r.seenMu.Unlock()
	if due {
		r.presence.push(inMsg{gate: gate, touch: true, at: now})
	}
}

// presenceLoop applies births, wills, lastSeen updates and presence
// resets in arrival order, so that a birth and the will after it end as
// the will says, and a reset never undoes a birth that came after it.
func (r *Relay) presenceLoop(ctx context.Context) {
	for {
		m, ok := r.presence.pop(ctx)
		if !ok {
			return
		}
		var err error
		switch {
		case m.touch:
			err = r.refreshSeen(ctx, m.gate, m.at)
		case m.reset:
			var n int
			n, err = markOffline(ctx, r.st, func(g store.Gate) bool { return g.LastSeen.Before(m.at) })
			if err == nil && n > 0 {
				r.log.Info("gates not heard from on this broker connection shown offline until their birth", "gates", n)
			}
		default:
			err = r.applyStatus(ctx, m)
		}
		if err != nil && ctx.Err() == nil {
			// Presence is reported state: the next birth or message
			// corrects it.
			r.log.Warn("updating a gate's presence failed", "gate", m.gate, "err", err)
		}
	}
}

// ResetPresence shows every gate offline. centrald calls it when it starts
// its embedded broker: no gate can be connected to a broker that has not
// started yet, so whatever the gates table says from before the restart is
// stale, and each gate is online again only with its birth on the new
// broker (docs/sync.md, Presence). It returns how many gates it changed.
func ResetPresence(ctx context.Context, st store.Store) (int, error) {
	return markOffline(ctx, st, func(store.Gate) bool { return true })
}

// markOffline sets the gates that are online and match stale offline, in
// one transaction, and returns how many.
func markOffline(ctx context.Context, st store.Store, stale func(store.Gate) bool) (int, error) {
	gs, err := st.Gates(ctx)
	if err != nil {
		return 0, err
	}
	var ids []string
	for _, g := range gs {
		if g.Online && stale(g) {
			ids = append(ids, g.ID)
		}
	}
	if len(ids) == 0 {
		return 0, nil
	}
	n := 0
	err = st.Write(ctx, func(tx store.Tx) error {
		n = 0
		for _, id := range ids {
			g, err := tx.Gate(id)
			if err != nil {
				return err
			}
			if !g.Online || !stale(g) {
				continue // a birth came meanwhile
			}
			g.Online = false
			if err := tx.PutGate(g); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// applyStatus stores a birth or a will in one transaction: a status whose
// session is older than the stored one is a late will (or a stale birth)
// and changes nothing; a will of the current (or a newer) session sets the
// gate offline; a birth sets it online with what it reports — if it comes
// as it is published. A retained birth, which the broker hands over at
// subscribe time, may be from a connection that has ended without a will
// (a broker that restarted with its retained messages on disk, or one that
// died with centrald's embedded broker): it updates what the gate reports
// but not whether it is online. Central's own birth, which follows every
// connection of the relay's leader, makes every connected gate publish its
// birth again, live. A gate not known yet (an external broker
// authenticates it) is added by its first status.
func (r *Relay) applyStatus(ctx context.Context, m inMsg) error {
	s, err := syncmsg.DecodeGateStatus(m.payload)
	if err != nil {
		r.log.Warn("ignoring an invalid gate status", "gate", m.gate, "err", err)
		return nil
	}
	if s.GateID != m.gate {
		r.log.Warn("ignoring a gate status published on another gate's topic", "topic_gate", m.gate, "gate_id", s.GateID)
		return nil
	}
	now := r.clk.Now().UTC()
	var outcome, conflict string
	var stored int64
	err = r.st.Write(ctx, func(tx store.Tx) error {
		g, err := tx.Gate(m.gate)
		switch {
		case errors.Is(err, store.ErrNotFound):
			g = store.Gate{ID: m.gate, AddedAt: now}
		case err != nil:
			return err
		}
		stored = g.Session
		if s.Session < g.Session {
			outcome = "ignored"
			return nil
		}
		g.Session = s.Session
		switch {
		case !s.Online:
			outcome = "will"
			g.Online = false
		case m.retained:
			outcome = "retained"
			if g.Role == "" || r.cfg.RoleFromBirth {
				g.Role = s.Role // a provisioned role is never replaced (Config.RoleFromBirth)
			}
			g.Software, g.Barrier = s.Software, s.Barrier
			g.CacheVersion, g.Outbox = s.CacheVersion, int(s.Outbox)
			g.Faults = storeFaults(s.Faults)
			if g.LastSeen.IsZero() {
				// Met at central's start: the gate's own word for when
				// it connected is all there is (never later than now: a
				// gate's clock may be wrong).
				g.LastSeen = earlier(s.At.UTC(), now)
			}
		default:
			outcome = "birth"
			g.Online = true
			if g.Role == "" || r.cfg.RoleFromBirth {
				g.Role = s.Role // a provisioned role is never replaced (Config.RoleFromBirth)
			} else if s.Role != g.Role {
				conflict = g.Role
			}
			g.Software, g.Barrier = s.Software, s.Barrier
			g.CacheVersion, g.Outbox = s.CacheVersion, int(s.Outbox)
			g.Faults = storeFaults(s.Faults)
			g.LastSeen = later(g.LastSeen, now)
		}
		return tx.PutGate(g)
	})
	if err != nil {
		return err
	}
	switch outcome {
	case "ignored":
		r.log.Info("ignoring a status of an older session", "gate", m.gate, "online", s.Online, "session", s.Session, "current_session", stored)
	case "birth":
		r.log.Info("gate online", "gate", m.gate, "session", s.Session, "role", s.Role, "cache_version", s.CacheVersion,
			"outbox", s.Outbox, "barrier", s.Barrier, "software", s.Software)
	case "retained":
		r.log.Debug("retained gate birth noted; online once it announces itself on this connection", "gate", m.gate, "session", s.Session)
	case "will":
		r.log.Info("gate offline", "gate", m.gate, "session", s.Session, "retained", m.retained)
	}
	if conflict != "" {
		r.log.Warn("a gate announces another role than it was provisioned with: its events become exceptions", "gate", m.gate,
			"announced", s.Role, "registered", conflict)
	}
	return nil
}

// storeFaults returns a birth's faults as the store keeps them.
func storeFaults(fs []syncmsg.GateFault) []store.GateFault {
	out := make([]store.GateFault, len(fs))
	for i, f := range fs {
		out[i] = store.GateFault{Kind: f.Kind, Error: f.Error, Since: f.Since.UTC(), At: f.At.UTC()}
	}
	return out
}

// refreshSeen moves a known gate's lastSeen forward to at.
func (r *Relay) refreshSeen(ctx context.Context, gate string, at time.Time) error {
	return r.st.Write(ctx, func(tx store.Tx) error {
		g, err := tx.Gate(gate)
		if errors.Is(err, store.ErrNotFound) {
			return nil // its birth adds it
		}
		if err != nil {
			return err
		}
		if !at.After(g.LastSeen) {
			return nil
		}
		g.LastSeen = at.UTC()
		return tx.PutGate(g)
	})
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
