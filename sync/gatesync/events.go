package gatesync

import (
	"context"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/parkgate/parkgate/gate/localdb"
	"github.com/parkgate/parkgate/sync/syncmsg"
)

// The outbox goes to central go-back-N style: events leave in Seq order,
// in batches of at most syncmsg.MaxEvents, up to maxInFlight unacknowledged;
// an acknowledgement deletes its events from the outbox (and only it
// does); when the oldest unacknowledged batch is ResendAfter old, or at a
// reconnect, everything unacknowledged is sent again from the oldest. The
// outbox itself is the list of what is unacknowledged, so resending needs
// no memory beyond the position reached.

// sendEvents publishes the events after lastSent while the window allows.
func (c *conn) sendEvents(ctx context.Context) error {
	for len(c.inflight) < maxInFlight {
		evs, err := c.s.db.PendingAfter(ctx, c.lastSent, min(syncmsg.MaxEvents, maxInFlight-len(c.inflight)))
		if err != nil {
			return c.localFailure(ctx, "reading the outbox failed", "err", err)
		}
		if len(evs) == 0 {
			return nil
		}
		last := evs[len(evs)-1].Seq
		msg, payload := c.s.encodeEvents(evs, c.log)
		if payload != nil {
			if err := c.publish(ctx, c.s.topics.Events(c.gate), false, payload); err != nil {
				return err
			}
			b := &batch{sentAt: c.s.clk.Now(), pending: len(msg.Events)}
			c.batches = append(c.batches, b)
			for _, ev := range msg.Events {
				c.inflight[ev.EventID] = b
			}
			c.log.Debug("events sent", "from", msg.Events[0].Seq, "to", last, "count", len(msg.Events))
		}
		c.lastSent = last
	}
	return nil
}

// encodeEvents turns outbox events into one Events payload. An event the
// codec refuses (a malformed record, which the lane should never write)
// is left out and logged once: it stays in the outbox, visible in its
// depth, rather than block every event after it. msg holds the events in
// payload; payload is nil when none could go.
func (s *Sync) encodeEvents(evs []localdb.Event, log interface{ Error(string, ...any) }) (syncmsg.Events, []byte) {
	msg := syncmsg.Events{Events: make([]syncmsg.Event, 0, len(evs))}
	for _, ev := range evs {
		w := eventFromLocal(ev)
		// Detail is free text for a person (errors, fault words), the one
		// field that may hold what the codec refuses, such as a newline.
		w.Detail = clean(w.Detail, 1024)
		msg.Events = append(msg.Events, w)
	}
	payload, err := syncmsg.EncodeEvents(msg)
	if err == nil {
		return msg, payload
	}
	ok := msg.Events[:0]
	for _, w := range msg.Events {
		if _, err := syncmsg.EncodeEvents(syncmsg.Events{Events: []syncmsg.Event{w}}); err != nil {
			if !s.unsendable[w.EventID] {
				s.unsendable[w.EventID] = true
				log.Error("outbox event cannot be sent; it stays in the outbox", "event", w.EventID, "seq", w.Seq, "err", err)
			}
			continue
		}
		ok = append(ok, w)
	}
	msg.Events = ok
	if len(ok) == 0 {
		return msg, nil
	}
	payload, err = syncmsg.EncodeEvents(msg)
	if err != nil { // each event passed alone; together they can only fail on order, which the outbox gives
		log.Error("outbox batch cannot be sent", "err", err)
		return msg, nil
	}
	return msg, payload
}

// clean makes free text fit the codec: valid UTF-8, control characters as
// spaces, at most max bytes (cut at a character boundary).
func clean(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

func (c *conn) onAck(ctx context.Context, p []byte) error {
	a, err := syncmsg.DecodeAck(p)
	if err != nil {
		c.log.Warn("ack ignored", "err", err)
		return nil
	}
	n, err := c.s.db.Ack(ctx, a.EventIDs...)
	if err != nil {
		// The events stay; central acknowledges their resend again.
		return c.localFailure(ctx, "deleting acknowledged events failed", "err", err)
	}
	for _, id := range a.EventIDs {
		if b := c.inflight[id]; b != nil {
			b.pending--
			delete(c.inflight, id)
		}
	}
	c.log.Debug("events acknowledged", "ids", len(a.EventIDs), "deleted", n)
	return c.sendEvents(ctx) // the window may have room again
}

// resendDue reports whether the oldest unacknowledged batch is
// ResendAfter old; batches acknowledged in full are dropped on the way.
func (c *conn) resendDue(now time.Time) bool {
	for len(c.batches) > 0 && c.batches[0].pending == 0 {
		c.batches = c.batches[1:]
	}
	return len(c.batches) > 0 && now.Sub(c.batches[0].sentAt) >= c.s.cfg.ResendAfter
}

// resend sends everything unacknowledged again, oldest first.
func (c *conn) resend(ctx context.Context) error {
	c.log.Info("events not acknowledged in time; sending them again", "inflight", len(c.inflight),
		"after", c.s.cfg.ResendAfter)
	c.lastSent = 0
	clear(c.inflight)
	c.batches = nil
	return c.sendEvents(ctx)
}
