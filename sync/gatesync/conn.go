package gatesync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/parkgate/parkgate/sync/syncmsg"
)

// conn is one connection's protocol state. Only its loop (run) touches
// it; a new connection starts from a fresh conn, because everything in it
// is either asked for again at connect (a snapshot) or sent again (the
// unacknowledged events).
type conn struct {
	s       *Sync
	cl      paho.Client
	session int64
	broker  string // the URL of the node this connection reached
	gate    string
	log     *slog.Logger

	// The resync: at most one request outstanding. While it is, batches of
	// changes are buffered (they may follow the snapshot's version) and
	// applied after it; heartbeats are not, since they say where central
	// was, not what changed.
	awaiting    bool
	reason      string
	requestID   string
	asked       []string // the requests made since the last snapshot applied, oldest first
	requestedAt time.Time
	progressAt  time.Time // last new part of the snapshot being assembled
	asm         *syncmsg.Assembler
	buffered    []syncmsg.Changes

	// The events: sent up to lastSent this connection; inflight maps the
	// ids not yet acknowledged to their batch, batches is in send order.
	lastSent int64
	inflight map[string]*batch
	batches  []*batch

	// The birth last published, and when.
	lastBirth      birthKey
	lastBirthAt    time.Time
	lastBirthCheck time.Time
}

// batch is one Events message in flight.
type batch struct {
	sentAt  time.Time
	pending int // events of it not yet acknowledged
}

// birthKey is what a birth reports that may change while connected.
type birthKey struct {
	barrier string
	outbox  int
	cache   int64
	trusted bool
	faults  string // the faults' kinds, errors and since, to compare
}

func newConn(s *Sync, cl paho.Client, session int64, broker string) *conn {
	return &conn{s: s, cl: cl, session: session, broker: broker, gate: s.cfg.GateID, log: s.log.With("session", session),
		asm: &syncmsg.Assembler{Now: s.clk.Now}, inflight: map[string]*batch{}}
}

// run performs docs/sync.md's connect sequence (subscribe, birth, resync
// request, resend the outbox) and then handles messages and timers until
// ctx ends or the connection fails.
func (c *conn) run(ctx context.Context, in <-chan inbound, lost <-chan error) error {
	// Subscribed before anything is asked, so that no answer is missed.
	if err := c.subscribe(ctx); err != nil {
		return err
	}
	// Taken before the birth, so that a fault raised while it is
	// published is not missed.
	changed := c.s.statusChanged()
	if err := c.birth(ctx, true); err != nil {
		return err
	}
	c.s.connected.Store(true)
	c.log.Info("connected to the broker", "url", c.broker, "client", c.s.clientID)
	if err := c.request(ctx, syncmsg.ReasonStart); err != nil {
		return err
	}
	if err := c.sendEvents(ctx); err != nil {
		return err
	}
	tick := c.s.clk.NewTimer(c.s.cfg.PollInterval)
	defer func() { tick.Stop() }()
	for {
		var err error
		select {
		case <-changed:
			// A fault raised or cleared: told now, not at the next check
			// (still no sooner than BirthInterval after the last birth).
			changed = c.s.statusChanged()
			c.lastBirthCheck = time.Time{}
			err = c.birth(ctx, false)
		case <-ctx.Done():
			return nil
		case err := <-lost:
			return fmt.Errorf("connection lost: %w", err)
		case m := <-in:
			err = c.handle(ctx, m)
		case <-c.s.kick:
			err = c.sendEvents(ctx)
		case <-tick.C():
			err = c.periodic(ctx)
			tick = c.s.clk.NewTimer(c.s.cfg.PollInterval)
		}
		if err != nil {
			return err
		}
	}
}

func (c *conn) subscribe(ctx context.Context) error {
	t := c.s.topics
	q := syncmsg.SubscribeQoS
	filters := map[string]byte{t.GateInbox(c.gate): q, t.Changes(): q, t.CentralStatus(): q}
	tok := c.cl.SubscribeMultiple(filters, nil) // nil: the default handler, the loop's queue
	// Part of connecting: a broker that accepted CONNECT but does not
	// answer SUBSCRIBE is as good as none.
	if err := c.waitWithin(ctx, tok, "subscribe", connectTimeout); err != nil {
		return err
	}
	for f, code := range tok.(*paho.SubscribeToken).Result() {
		if code == 0x80 { // MQTT 3.1.1 SUBACK failure
			return fmt.Errorf("the broker refused the subscription to %s (check its ACL for gate %q)", f, c.gate)
		}
	}
	return nil
}

// wait waits for a paho operation's answer from the broker, at most
// opTimeout: a broker that takes longer is treated as gone.
func (c *conn) wait(ctx context.Context, tok paho.Token, what string) error {
	return c.waitWithin(ctx, tok, what, opTimeout)
}

// waitWithin is wait with another bound than opTimeout.
func (c *conn) waitWithin(ctx context.Context, tok paho.Token, what string, within time.Duration) error {
	t := time.NewTimer(within)
	defer t.Stop()
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("%s: no answer from the broker within %s", what, within)
	}
}

// publish sends at QoS 1 and waits for the PUBACK. An error ends the
// connection: the loop then reconnects, which resends whatever needs it.
func (c *conn) publish(ctx context.Context, topic string, retained bool, payload []byte) error {
	return c.wait(ctx, c.cl.Publish(topic, syncmsg.PublishQoS, retained, payload), "publish to "+topic)
}

func (c *conn) handle(ctx context.Context, m inbound) error {
	t := c.s.topics
	switch m.topic {
	case t.Changes():
		return c.onChanges(ctx, m.payload)
	case t.Snapshot(c.gate):
		return c.onSnapshot(ctx, m.payload)
	case t.Ack(c.gate):
		return c.onAck(ctx, m.payload)
	case t.Cmd(c.gate):
		return c.onCommand(ctx, m.payload)
	case t.CentralStatus():
		return c.onCentralStatus(ctx, m.payload, m.retained)
	}
	c.log.Debug("message on an unexpected topic ignored", "topic", m.topic)
	return nil
}

// periodic runs every PollInterval: deadlines, the outbox poll, births.
func (c *conn) periodic(ctx context.Context) error {
	now := c.s.clk.Now()
	if n := c.s.dropped.Swap(0); n > 0 {
		c.log.Warn("messages from the broker dropped: the sync fell behind; the protocol will repair it", "dropped", n)
	}
	if c.awaiting && now.Sub(later(c.requestedAt, c.progressAt)) >= c.s.cfg.SnapshotTimeout {
		id, got, parts := c.asm.Pending()
		c.log.Warn("no complete snapshot in time; asking again", "request", c.requestID, "snapshot", id,
			"parts", got, "of", parts, "timeout", c.s.cfg.SnapshotTimeout)
		c.asm.Reset()
		c.awaiting = false
		if err := c.request(ctx, c.reason); err != nil {
			return err
		}
	}
	if c.resendDue(now) {
		if err := c.resend(ctx); err != nil {
			return err
		}
	}
	if err := c.sendEvents(ctx); err != nil {
		return err
	}
	return c.birth(ctx, false)
}

// localFailure logs a failure of the database or the lane and returns
// nil, so that the loop goes on (the protocol repairs what was missed);
// unless Serve is stopping, when such failures are only the context
// canceled under a query: then it returns that, quietly, and the loop ends.
func (c *conn) localFailure(ctx context.Context, msg string, args ...any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.log.Error(msg, args...)
	return nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// ---- presence ----

// status reads what the birth reports. A lane that cannot tell still gets
// a birth: the database's own figures, the barrier unknown.
func (c *conn) status(ctx context.Context) (birthKey, []syncmsg.GateFault) {
	st, err := c.s.lane.Status(ctx)
	if err != nil {
		c.log.Warn("lane status failed; birth from the database alone", "err", err)
		v, _ := c.s.db.Version(ctx)
		d, _ := c.s.db.Depth(ctx)
		return birthKey{barrier: "unknown", outbox: d, cache: v}, nil
	}
	word := st.Barrier
	if st.Fault != "" {
		word = "fault"
	}
	fs := make([]syncmsg.GateFault, 0, min(len(st.Faults), syncmsg.MaxFaults))
	var key strings.Builder
	for _, f := range st.Faults {
		if len(fs) == syncmsg.MaxFaults {
			break
		}
		// At (the last report) changes at every failed write; a birth per
		// failed decision would tell central nothing new.
		fs = append(fs, syncmsg.GateFault{Kind: clean(f.Kind, 32), Error: clean(f.Error, 256), Since: f.Since.UTC(), At: f.At.UTC()})
		fmt.Fprintf(&key, "%s\x00%s\x00%d\x00", f.Kind, f.Error, f.Since.UnixNano())
	}
	return birthKey{barrier: word, outbox: st.Outbox, cache: st.CacheVersion, trusted: st.ClockTrusted, faults: key.String()}, fs
}

// birth publishes the retained birth: always when forced (at connect),
// otherwise when what it reports changed and the last one is at least
// BirthInterval old.
func (c *conn) birth(ctx context.Context, force bool) error {
	now := c.s.clk.Now()
	if !force && now.Sub(c.lastBirthCheck) < birthCheckEvery {
		return nil
	}
	c.lastBirthCheck = now
	k, fs := c.status(ctx)
	if !force && (k == c.lastBirth || now.Sub(c.lastBirthAt) < c.s.cfg.BirthInterval) {
		return nil
	}
	payload, err := syncmsg.EncodeGateStatus(syncmsg.GateStatus{Online: true, Session: c.session, GateID: c.gate,
		Role: c.s.cfg.Role, Software: c.s.cfg.Software, CacheVersion: k.cache, Outbox: int64(k.outbox),
		Barrier: clean(k.barrier, 32), ClockTrusted: k.trusted, Faults: fs, At: now.UTC()})
	if err != nil {
		c.log.Error("birth not encodable", "err", err)
		return nil
	}
	if err := c.publish(ctx, c.s.topics.GateStatus(c.gate), true, payload); err != nil {
		return err
	}
	c.lastBirth, c.lastBirthAt = k, now
	c.log.Debug("birth published", "cacheVersion", k.cache, "outbox", k.outbox, "barrier", k.barrier, "faults", len(fs))
	return nil
}

// goodbye publishes the offline status at shutdown: a clean disconnect
// discards the will, and central should not wait for a keepalive to learn
// that the gate has gone. Only on a connection paho still holds open:
// Publish itself, not only its PUBACK, waits up to opTimeout for a
// connection that is going, and the gate would take that long to stop.
func (c *conn) goodbye() {
	payload, err := syncmsg.EncodeGateStatus(syncmsg.GateStatus{Online: false, Session: c.session, GateID: c.gate})
	if err != nil || !c.cl.IsConnectionOpen() {
		return
	}
	if !c.cl.Publish(c.s.topics.GateStatus(c.gate), syncmsg.PublishQoS, true, payload).WaitTimeout(goodbyeTimeout) {
		c.log.Warn("offline status not acknowledged at shutdown; the will may tell central later")
	}
}

func (c *conn) onCentralStatus(ctx context.Context, p []byte, retained bool) error {
	cs, err := syncmsg.DecodeCentralStatus(p)
	if err != nil {
		c.log.Warn("central status ignored", "err", err)
		return nil
	}
	if !cs.Online {
		// A will older than the latest birth is a late one: central is
		// back already.
		if cs.Session < c.s.centralBirth {
			c.log.Debug("late will of central ignored", "session", cs.Session, "birth", c.s.centralBirth)
			return nil
		}
		if c.s.heard.Swap(nil) != nil {
			c.log.Warn("central is offline", "session", cs.Session)
		}
		return nil
	}
	fresh := cs.Session != c.s.centralBirth
	c.s.centralBirth = cs.Session
	if !fresh {
		return nil // the retained birth again, at a reconnect
	}
	c.log.Info("central is online", "session", cs.Session, "version", cs.Version)
	if !retained {
		// Central has just connected (a restart, a new leader) and counts
		// a gate online only after a birth it receives as it is published
		// (docs/sync.md, Presence): a retained one may be from a
		// connection that no longer exists. Announce this one again. A
		// retained central birth is met only at our own connect, right
		// after our birth.
		if err := c.birth(ctx, true); err != nil {
			return err
		}
	}
	if c.awaiting {
		return nil
	}
	// A new central session announcing less than the cache holds was
	// restored from a backup: resync at once, before a batch of its new
	// line could land on top of versions it no longer has.
	have, err := c.s.db.Version(ctx)
	if err != nil {
		return c.localFailure(ctx, "reading the cache version failed", "err", err)
	}
	if cs.Version < have {
		c.log.Warn("central's version is behind the cache (restored from a backup?); resyncing", "central", cs.Version, "have", have)
		return c.request(ctx, syncmsg.ReasonStale)
	}
	return nil
}

// ---- the cache ----

// request asks central for a snapshot, unless a request is outstanding
// already (one answer repairs everything; asking twice only costs central
// a second snapshot).
func (c *conn) request(ctx context.Context, reason string) error {
	if c.awaiting {
		return nil
	}
	have, err := c.s.db.Version(ctx)
	if err != nil {
		// The request still helps: a snapshot replaces whatever is held.
		if err := c.localFailure(ctx, "reading the cache version failed; asking from 0", "err", err); err != nil {
			return err
		}
		have = 0
	}
	c.s.requests++
	id := fmt.Sprintf("%d-%d", c.session, c.s.requests)
	payload, err := syncmsg.EncodeSyncRequest(syncmsg.SyncRequest{ID: id, Have: have, Reason: reason})
	if err != nil {
		return err // cannot happen: every field is ours
	}
	c.awaiting, c.reason, c.requestID = true, reason, id
	if len(c.asked) == maxOpenRequests {
		c.asked = append(c.asked[:0], c.asked[1:]...)
	}
	c.asked = append(c.asked, id)
	c.requestedAt, c.progressAt = c.s.clk.Now(), time.Time{}
	c.log.Info("asking central for a snapshot", "reason", reason, "have", have, "request", id)
	return c.publish(ctx, c.s.topics.Sync(c.gate), false, payload)
}

func (c *conn) onChanges(ctx context.Context, p []byte) error {
	ch, err := syncmsg.DecodeChanges(p)
	if err != nil {
		c.log.Warn("changes ignored", "err", err)
		return nil
	}
	now := c.s.clk.Now()
	c.s.heard.Store(&now)
	if c.awaiting {
		if !ch.IsHeartbeat() {
			c.buffer(ch)
		}
		return nil
	}
	return c.apply(ctx, ch)
}

// buffer keeps a batch for after the snapshot, the newest maxBuffered.
func (c *conn) buffer(ch syncmsg.Changes) {
	if len(c.buffered) == maxBuffered {
		c.buffered = append(c.buffered[:0], c.buffered[1:]...)
	}
	c.buffered = append(c.buffered, ch)
}

// apply handles a batch or heartbeat by docs/sync.md's rule.
func (c *conn) apply(ctx context.Context, ch syncmsg.Changes) error {
	have, err := c.s.db.Version(ctx)
	if err != nil {
		return c.localFailure(ctx, "reading the cache version failed; batch dropped", "err", err, "from", ch.From, "to", ch.To)
	}
	if ch.IsHeartbeat() {
		switch {
		case ch.To > have:
			c.log.Info("central is ahead of the cache; resyncing", "central", ch.To, "have", have)
			return c.request(ctx, syncmsg.ReasonStale)
		case ch.To < have:
			// Central is the authority, even when it forgot versions.
			c.log.Warn("central is behind the cache (restored from a backup?); resyncing", "central", ch.To, "have", have)
			return c.request(ctx, syncmsg.ReasonStale)
		}
		return nil
	}
	// A batch the cache is inside of (a relay that went on from an older
	// position, or a buffered batch that began before the snapshot's
	// version) is applied from the version held.
	ch = ch.Above(have)
	switch syncmsg.Classify(have, ch) {
	case syncmsg.Repeat:
		c.log.Debug("changes already held", "from", ch.From, "to", ch.To, "have", have)
		return nil
	case syncmsg.Apply:
		n, err := c.s.db.ApplyChanges(ctx, localChanges(ch)...)
		if err == nil {
			c.log.Debug("changes applied", "from", ch.From, "to", ch.To, "entries", n)
			return nil
		}
		// A gap here means the cache moved under us; anything else is
		// the database. Either way the batch is lost and a snapshot
		// repairs it.
		if err := c.localFailure(ctx, "applying changes failed; resyncing", "from", ch.From, "to", ch.To, "err", err); err != nil {
			return err
		}
	default:
		c.log.Info("gap in the changes; resyncing", "from", ch.From, "to", ch.To, "have", have)
	}
	if err := c.request(ctx, syncmsg.ReasonGap); err != nil {
		return err
	}
	c.buffer(ch)
	return nil
}

func (c *conn) onSnapshot(ctx context.Context, p []byte) error {
	part, err := syncmsg.DecodeSnapshotPart(p)
	if err != nil {
		c.log.Warn("snapshot part ignored", "err", err)
		return nil
	}
	if !c.awaiting {
		// Only a snapshot that was asked for replaces the cache: an
		// unsolicited or late one could take it back in time.
		c.log.Debug("snapshot part not asked for; ignored", "snapshot", part.ID, "part", part.Part)
		return nil
	}
	if part.Request != "" && !slices.Contains(c.asked, part.Request) {
		// The answer to a request already answered (a snapshot applied
		// since may be newer than it) or made on an earlier connection.
		c.log.Debug("snapshot part answering another request ignored", "snapshot", part.ID, "part", part.Part,
			"answers", part.Request, "request", c.requestID)
		return nil
	}
	entries, version, done, err := c.asm.Add(part)
	switch {
	case errors.Is(err, syncmsg.ErrStaleSnapshot):
		c.log.Debug("part of a stale snapshot ignored", "snapshot", part.ID, "part", part.Part)
		return nil
	case err != nil:
		// A broken snapshot is abandoned by the Assembler; the timeout
		// asks again, as for a part that never came.
		c.log.Warn("snapshot part refused", "snapshot", part.ID, "part", part.Part, "err", err)
		return nil
	case !done:
		c.progressAt = c.s.clk.Now()
		return nil
	}
	if err := c.s.db.ApplySnapshot(ctx, version, localEntries(entries)); err != nil {
		// Asking again at once would loop as fast as central answers;
		// the timeout asks again.
		c.progressAt = c.s.clk.Now()
		return c.localFailure(ctx, "applying the snapshot failed", "snapshot", part.ID, "version", version, "err", err)
	}
	c.awaiting, c.asked = false, nil
	c.log.Info("snapshot applied", "snapshot", part.ID, "version", version, "entries", len(entries),
		"answers", part.Request, "request", c.requestID, "buffered", len(c.buffered))
	buf := c.buffered
	c.buffered = nil
	for _, ch := range buf {
		if c.awaiting { // a buffered batch showed a gap: keep the rest for the next snapshot
			c.buffer(ch)
			continue
		}
		if err := c.apply(ctx, ch); err != nil {
			return err
		}
	}
	return nil
}
