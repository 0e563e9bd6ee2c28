package gatesync

import (
	"context"

	"github.com/parkgate/parkgate/gate/lane"
	"github.com/parkgate/parkgate/gate/localdb"
	"github.com/parkgate/parkgate/sync/syncmsg"
)

// onCommand executes a command at most once and answers it. The id is
// remembered before anything is executed, so that a repeat (a broker
// that delivered it twice, an operator's double click that central sent
// twice) is refused even when the first execution failed half-way: an
// open that might have happened must not happen twice.
func (c *conn) onCommand(ctx context.Context, p []byte) error {
	cmd, err := syncmsg.DecodeCommand(p)
	if len(cmd.ID) > maxCommandID {
		// Not a valid id, so no Result could carry it; and not worth
		// remembering.
		c.log.Warn("command with an overlong id ignored", "bytes", len(cmd.ID))
		return nil
	}
	if cmd.ID != "" && c.s.seen.has(cmd.ID) {
		c.log.Warn("repeated command refused", "command", cmd.ID, "type", cmd.Type)
		return c.answer(ctx, cmd.ID, syncmsg.RefusedDuplicate)
	}
	if cmd.ID != "" {
		c.s.seen.add(cmd.ID)
	}
	if err != nil {
		why := err.Error()
		if cmd.Type != syncmsg.CmdOpen && cmd.Type != syncmsg.CmdResync {
			why = syncmsg.RefusedUnknownType
		}
		c.log.Warn("command refused", "command", cmd.ID, "type", cmd.Type, "err", err)
		if cmd.ID == "" {
			return nil // nothing to answer to
		}
		return c.answer(ctx, cmd.ID, why)
	}
	switch cmd.Type {
	case syncmsg.CmdOpen:
		return c.open(ctx, cmd)
	default: // syncmsg.CmdResync; DecodeCommand refuses other types
		return c.resync(ctx, cmd)
	}
}

// open executes a remote open: only on a trusted clock (an untrusted one
// cannot tell an expired command from a fresh one) and before the expiry.
func (c *conn) open(ctx context.Context, cmd syncmsg.Command) error {
	st, err := c.s.lane.Status(ctx)
	if err != nil {
		if err := c.localFailure(ctx, "remote open refused: lane status failed", "command", cmd.ID, "err", err); err != nil {
			return err
		}
		return c.answer(ctx, cmd.ID, "lane status: "+err.Error())
	}
	now := c.s.clk.Now()
	switch {
	case !st.ClockTrusted:
		c.log.Warn("remote open refused: the clock is not trusted", "command", cmd.ID, "why", st.ClockWhy)
		return c.answer(ctx, cmd.ID, syncmsg.RefusedClockUntrusted)
	case cmd.Expired(now):
		c.log.Warn("remote open refused: expired", "command", cmd.ID, "expires", cmd.Expires, "now", now)
		return c.answer(ctx, cmd.ID, syncmsg.RefusedExpired)
	}
	res, err := c.s.lane.Handle(ctx, lane.Read{Source: localdb.SourceRemote, Value: cmd.ID})
	switch {
	case err != nil:
		c.log.Error("remote open failed", "command", cmd.ID, "reason", cmd.Reason, "err", err)
		return c.answer(ctx, cmd.ID, err.Error())
	case !res.Granted:
		why := string(res.Reason)
		if why == "" {
			why = "denied"
		}
		c.log.Warn("remote open denied by the lane", "command", cmd.ID, "reason", why)
		return c.answer(ctx, cmd.ID, why)
	}
	c.log.Info("remote open", "command", cmd.ID, "reason", cmd.Reason, "event", res.EventID, "seq", res.Seq)
	c.s.Kick() // the decision is in the outbox: let central see it now
	return c.answer(ctx, cmd.ID, "")
}

// resync asks for a snapshot. Unlike an open it is harmless, so a clock
// that is not trusted does not stop it (such a gate needs its cache the
// most); a trusted clock still refuses it once expired, as the protocol
// says of every command.
func (c *conn) resync(ctx context.Context, cmd syncmsg.Command) error {
	if st, err := c.s.lane.Status(ctx); err == nil && st.ClockTrusted && cmd.Expired(c.s.clk.Now()) {
		c.log.Warn("resync command refused: expired", "command", cmd.ID, "expires", cmd.Expires)
		return c.answer(ctx, cmd.ID, syncmsg.RefusedExpired)
	}
	c.log.Info("resync requested by central", "command", cmd.ID, "reason", cmd.Reason, "outstanding", c.awaiting)
	if err := c.request(ctx, syncmsg.ReasonCommand); err != nil {
		return err
	}
	return c.answer(ctx, cmd.ID, "")
}

// answer publishes a command's Result: ok when why is "".
func (c *conn) answer(ctx context.Context, id, why string) error {
	payload, err := syncmsg.EncodeResult(syncmsg.Result{ID: id, OK: why == "", Error: clean(why, 1024)})
	if err != nil {
		c.log.Warn("command result not encodable (bad command id?)", "command", id, "err", err)
		return nil
	}
	return c.publish(ctx, c.s.topics.Result(c.gate), false, payload)
}

// maxCommandID is the protocol's bound on a command id (syncmsg checks
// 1-64 printable characters).
const maxCommandID = 64

// seenIDs remembers the last n command ids.
type seenIDs struct {
	ring []string
	next int
	set  map[string]struct{}
}

func (s *seenIDs) init(n int) {
	s.ring = make([]string, n)
	s.set = make(map[string]struct{}, n)
}

func (s *seenIDs) has(id string) bool {
	_, ok := s.set[id]
	return ok
}

func (s *seenIDs) add(id string) {
	if old := s.ring[s.next]; old != "" {
		delete(s.set, old)
	}
	s.ring[s.next] = id
	s.set[id] = struct{}{}
	s.next = (s.next + 1) % len(s.ring)
}
