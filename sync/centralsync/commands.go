package centralsync

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/parkgate/parkgate/sync/syncmsg"
)

// waiter is a command waiting for its result.
type waiter struct {
	gate string
	ch   chan syncmsg.Result // buffered, 1
}

// Open asks gateID to open its barrier once (POST /gates/{id}/open, parkctl
// gate open) and waits for its result, at most ttl (DefaultCommandTTL when
// ttl <= 0), which is also the command's validity: the gate refuses it
// after now+ttl, so an answer that could still come is never one that
// opens the barrier later. reason is kept in the gate's record. A result
// with OK false (expired, duplicate, clock_untrusted, …) is returned with
// a nil error; no result in time is ErrNoAnswer.
func (r *Relay) Open(ctx context.Context, gateID, reason string, ttl time.Duration) (syncmsg.Result, error) {
	return r.command(ctx, gateID, syncmsg.CmdOpen, reason, ttl)
}

// Resync makes gateID ask for a snapshot and waits, at most
// DefaultCommandTTL, for its result (which says the request was made, not
// that the snapshot arrived).
func (r *Relay) Resync(ctx context.Context, gateID string) (syncmsg.Result, error) {
	return r.command(ctx, gateID, syncmsg.CmdResync, "", DefaultCommandTTL)
}

func (r *Relay) command(ctx context.Context, gateID, typ, reason string, ttl time.Duration) (syncmsg.Result, error) {
	if err := syncmsg.ValidID(gateID); err != nil {
		return syncmsg.Result{}, fmt.Errorf("centralsync: gate: %w", err)
	}
	if ttl <= 0 {
		ttl = DefaultCommandTTL
	}
	cmd := syncmsg.Command{ID: "cmd-" + rand.Text(), Type: typ, Expires: r.clk.Now().Add(ttl).UTC(), Reason: reason}
	payload, err := syncmsg.EncodeCommand(cmd)
	if err != nil {
		return syncmsg.Result{}, fmt.Errorf("centralsync: %w", err)
	}
	c := r.currentClient()
	if c == nil {
		return syncmsg.Result{}, ErrNotConnected
	}
	// Registered before publishing: a gate may answer before paho has
	// handed over the PUBACK.
	w := waiter{gate: gateID, ch: make(chan syncmsg.Result, 1)}
	r.cmdMu.Lock()
	r.waiters[cmd.ID] = w
	r.cmdMu.Unlock()
	defer func() {
		r.cmdMu.Lock()
		delete(r.waiters, cmd.ID)
		r.cmdMu.Unlock()
	}()
	timer := r.clk.NewTimer(ttl)
	defer timer.Stop()
	noAnswer := func() error {
		return fmt.Errorf("%w: gate %s, %s command %s, within %s", ErrNoAnswer, gateID, typ, cmd.ID, ttl)
	}
	// Never retained, and the gates' sessions are clean: a gate that is
	// not connected now never sees this command.
	tok := c.Publish(r.topics.Cmd(gateID), syncmsg.PublishQoS, false, payload)
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return syncmsg.Result{}, fmt.Errorf("centralsync: publishing the %s command: %w", typ, err)
		}
	case res := <-w.ch:
		return r.answered(gateID, cmd, res), nil
	case <-timer.C():
		return syncmsg.Result{}, noAnswer()
	case <-ctx.Done():
		return syncmsg.Result{}, ctx.Err()
	}
	r.log.Info("command sent", "gate", gateID, "type", typ, "command", cmd.ID, "expires", cmd.Expires, "reason", reason)
	select {
	case res := <-w.ch:
		return r.answered(gateID, cmd, res), nil
	case <-timer.C():
		r.log.Warn("command not answered", "gate", gateID, "type", typ, "command", cmd.ID, "ttl", ttl)
		return syncmsg.Result{}, noAnswer()
	case <-ctx.Done():
		return syncmsg.Result{}, ctx.Err()
	}
}

func (r *Relay) answered(gate string, cmd syncmsg.Command, res syncmsg.Result) syncmsg.Result {
	r.log.Info("command answered", "gate", gate, "type", cmd.Type, "command", cmd.ID, "ok", res.OK, "error", res.Error)
	return res
}

// deliverResult hands a gate's result to the command waiting for it. It
// runs in paho's callback and never blocks. A result for a command this
// instance is not waiting for (expired, or sent by another instance) is
// dropped; so is one from a gate other than the command's.
func (r *Relay) deliverResult(gate string, payload []byte) {
	res, err := syncmsg.DecodeResult(payload)
	if err != nil {
		r.log.Warn("ignoring an invalid command result", "gate", gate, "err", err)
		return
	}
	r.cmdMu.Lock()
	w, ok := r.waiters[res.ID]
	if ok && w.gate == gate {
		delete(r.waiters, res.ID)
	}
	r.cmdMu.Unlock()
	switch {
	case !ok:
		r.log.Debug("result of a command not waited for", "gate", gate, "command", res.ID, "ok", res.OK)
		return
	case w.gate != gate:
		r.log.Warn("ignoring a result from a gate the command was not sent to", "gate", gate, "command", res.ID, "sent_to", w.gate)
		return
	}
	select {
	case w.ch <- res:
	default:
	}
}
