// Package fleet runs many lightweight gates in one process, each speaking
// the gate ↔ central sync protocol of docs/sync.md through sync/syncmsg and
// an MQTT client (paho) alone: no gate/* package, no gatesync. A gate here
// has no barrier, no database and no clock of its own; it keeps the cache in
// memory and does what the protocol asks of a gate:
//
//   - the birth (retained, with the session) at every connection and again
//     at each fresh central birth, and the will for the same session;
//   - the snapshot at connect, batches of changes applied by syncmsg's
//     Classify rule, buffered while a snapshot is awaited, and a resync on a
//     gap, a stale heartbeat, or a snapshot that does not come in time;
//   - events sent in batches and resent until central acknowledges them.
//
// It serves two purposes: the load of a thousand gates on one centrald
// (parkbench's fleet section), and a conformance kit, since a third-party
// gate is written from the same two packages and is expected to behave as
// these do. Only Fleet.Serve starts goroutines of its own (one ticker for
// every gate's timeouts); paho runs its few per connection.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/parkgate/parkgate/sync/syncmsg"
)

// Timings of the protocol a gate follows (docs/sync.md).
const (
	// SnapshotTimeout: a snapshot asked for that has made no progress for
	// this long is asked for again.
	SnapshotTimeout = 10 * time.Second
	// ResendAfter: events not acknowledged after this are sent again.
	ResendAfter = 5 * time.Second
	// tick is how often Serve checks those deadlines.
	tick = 500 * time.Millisecond
	// opTimeout bounds the wait for the broker's answer to a connect or a
	// subscribe.
	opTimeout = 20 * time.Second
	// maxBuffered batches are kept while a snapshot is awaited.
	maxBuffered = 64
	// publishers is the number of goroutines that hand the gates'
	// messages to paho. A message handler must never block (paho's router
	// would hold up the connection's shutdown and reconnect), and paho's
	// Publish may block while a connection dies; so handlers queue, and
	// these publish. A gate always uses the same one, keeping its order.
	publishers = 8
	// outQueue bounds each publisher's queue; a message that does not fit
	// is dropped, which the protocol repairs (events are resent, a
	// snapshot is asked for again).
	outQueue = 1 << 14
)

// outMsg is one message a gate publishes.
type outMsg struct {
	client   paho.Client
	topic    string
	retained bool
	payload  []byte
}

// Spec is one gate of the fleet.
type Spec struct {
	// ID is the gate id (syncmsg.ValidID); also its MQTT client id and
	// user name.
	ID string
	// Role is syncmsg.RoleEntry or syncmsg.RoleExit.
	Role string
	// Password is the gate's broker password; "" connects anonymously.
	Password string
}

// Config configures a fleet.
type Config struct {
	// URL is the broker, tcp://host:port, or the nodes of a clustered
	// broker separated by commas, as gated's mqtt.url. Gate i starts with
	// node i (mod the count), so the fleet spreads over the nodes; a gate
	// that loses its node starts its next attempt with the next one.
	URL string
	// Site names the topic root.
	Site string
	// Gates are the gates to run.
	Gates []Spec
	// Software is what the births report; "" means "fleet".
	Software string
	// KeepAlive of each connection; 0 means 30 s.
	KeepAlive time.Duration
	// ConnectConcurrency bounds the connects Serve runs at once; 0 means
	// 50.
	ConnectConcurrency int
	// Log receives the gates' warnings; nil discards them.
	Log *slog.Logger
	// OnVersion, if set, is called (from the gate's message handler, with
	// the gate's lock held: it must not call the gate's methods) each time
	// a gate's cache reaches a new version, with the time it did.
	OnVersion func(g *Gate, version int64, at time.Time)
}

// Fleet is a set of gates; create it with New and run it with Serve.
type Fleet struct {
	cfg     Config
	topics  syncmsg.Topics
	brokers []string // cfg.URL's list
	gates   []*Gate
	byID    map[string]*Gate
	log     *slog.Logger
	ready   chan struct{} // closed once every gate made its first connect attempt
	out     [publishers]chan outMsg
	drops   atomic.Int64
}

// New checks cfg and prepares the gates; nothing connects before Serve.
func New(cfg Config) (*Fleet, error) {
	t, err := syncmsg.NewTopics(cfg.Site)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	var brokers []string
	for _, u := range strings.Split(cfg.URL, ",") {
		if u = strings.TrimSpace(u); u == "" {
			return nil, fmt.Errorf("fleet: broker URL %q: want tcp://host:port, several separated by commas", cfg.URL)
		}
		brokers = append(brokers, u)
	}
	if cfg.Software == "" {
		cfg.Software = "fleet"
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 30 * time.Second
	}
	if cfg.ConnectConcurrency <= 0 {
		cfg.ConnectConcurrency = 50
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	f := &Fleet{cfg: cfg, topics: t, brokers: brokers, byID: map[string]*Gate{}, log: cfg.Log, ready: make(chan struct{})}
	for i := range f.out {
		f.out[i] = make(chan outMsg, outQueue)
	}
	for _, s := range cfg.Gates {
		if err := syncmsg.ValidID(s.ID); err != nil {
			return nil, fmt.Errorf("fleet: gate %q: %w", s.ID, err)
		}
		if s.Role != syncmsg.RoleEntry && s.Role != syncmsg.RoleExit {
			return nil, fmt.Errorf("fleet: gate %s: role %q: want entry or exit", s.ID, s.Role)
		}
		if f.byID[s.ID] != nil {
			return nil, fmt.Errorf("fleet: gate %s listed twice", s.ID)
		}
		g := &Gate{f: f, spec: s, idx: len(f.gates), entries: map[string]syncmsg.Entry{}, inflight: map[string]*pending{},
			asm: &syncmsg.Assembler{}}
		f.gates = append(f.gates, g)
		f.byID[s.ID] = g
	}
	return f, nil
}

// Topics returns the fleet's topic names.
func (f *Fleet) Topics() syncmsg.Topics { return f.topics }

// Gates returns the gates, in the order of Config.Gates.
func (f *Fleet) Gates() []*Gate { return f.gates }

// Gate returns a gate by id, nil if the fleet has none.
func (f *Fleet) Gate(id string) *Gate { return f.byID[id] }

// Started is closed once every gate has made its first connect attempt.
func (f *Fleet) Started() <-chan struct{} { return f.ready }

// Serve connects every gate (at most ConnectConcurrency at once; paho
// reconnects them after that), runs the deadlines until ctx ends, then
// disconnects them cleanly. A gate that cannot connect at first keeps
// trying, as a real gate does.
func (f *Fleet) Serve(ctx context.Context) error {
	pubCtx, stopPub := context.WithCancel(context.WithoutCancel(ctx))
	var pubs sync.WaitGroup
	for _, q := range f.out {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			for {
				select {
				case m := <-q:
					m.client.Publish(m.topic, syncmsg.PublishQoS, m.retained, m.payload)
				case <-pubCtx.Done():
					return
				}
			}
		}()
	}
	defer func() { stopPub(); pubs.Wait() }()
	sem := make(chan struct{}, f.cfg.ConnectConcurrency)
	var wg sync.WaitGroup
	for _, g := range f.gates {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			g.start()
		}()
	}
	wg.Wait()
	close(f.ready)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			for _, g := range f.gates {
				g.stop()
			}
			return nil
		case now := <-t.C:
			for _, g := range f.gates {
				g.periodic(now)
			}
		}
	}
}

// Dropped returns the number of messages dropped because a publisher's
// queue was full.
func (f *Fleet) Dropped() int64 { return f.drops.Load() }

// Gate is one simulated gate. Its methods are safe for concurrent use.
type Gate struct {
	f    *Fleet
	spec Spec
	idx  int

	mu     sync.Mutex
	client paho.Client
	conn   net.Conn // the socket, to cut it without a DISCONNECT (Kill)
	broker string   // the URL the socket was dialled to
	killed bool

	session      int64 // counts this gate's connections
	centralBirth int64 // central's session last seen online
	connected    bool

	version  int64 // the cache's version; -1 before the first snapshot
	hasCache bool
	entries  map[string]syncmsg.Entry

	awaiting    bool
	reason      string
	requestedAt time.Time
	progressAt  time.Time
	requests    int
	asm         *syncmsg.Assembler
	buffered    []syncmsg.Changes
	snapshots   int // snapshots applied

	seq      int64
	inflight map[string]*pending // event id → event not yet acknowledged
	acked    atomic.Int64
	dupAcks  atomic.Int64
}

// pending is an event sent and not yet acknowledged.
type pending struct {
	ev     syncmsg.Event
	sentAt time.Time
}

// ID returns the gate's id.
func (g *Gate) ID() string { return g.spec.ID }

// Role returns the gate's role.
func (g *Gate) Role() string { return g.spec.Role }

func (g *Gate) start() {
	o := paho.NewClientOptions()
	for i := range g.f.brokers {
		o.AddBroker(g.f.brokers[(g.idx+i)%len(g.f.brokers)])
	}
	o.SetClientID(g.spec.ID).
		SetCleanSession(true).SetProtocolVersion(4).SetKeepAlive(g.f.cfg.KeepAlive).
		SetConnectTimeout(opTimeout).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).SetMaxReconnectInterval(5 * time.Second).
		SetOrderMatters(true).SetWriteTimeout(5 * time.Second)
	if g.spec.Password != "" {
		o.SetUsername(g.spec.ID).SetPassword(g.spec.Password)
	}
	o.SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
		g.mu.Lock()
		killed := g.killed
		g.mu.Unlock()
		if killed {
			return nil, errors.New("fleet: gate killed")
		}
		c, err := net.DialTimeout("tcp", u.Host, opTimeout)
		if err == nil {
			g.mu.Lock()
			g.conn, g.broker = c, u.String()
			g.mu.Unlock()
		}
		return c, err
	})
	g.mu.Lock()
	g.session++
	g.setWill(o)
	g.mu.Unlock()
	// The will must carry the session of the connection it stands for, so
	// a new one is set before every reconnect.
	o.SetReconnectingHandler(func(_ paho.Client, o *paho.ClientOptions) {
		g.mu.Lock()
		g.session++
		g.setWill(o)
		// The node just lost goes last: it may be dead.
		for i, u := range o.Servers {
			if u.String() == g.broker && len(o.Servers) > 1 {
				o.Servers = append(append(o.Servers[i+1:len(o.Servers):len(o.Servers)], o.Servers[:i]...), u)
				break
			}
		}
		g.mu.Unlock()
	})
	o.SetConnectionLostHandler(func(paho.Client, error) {
		g.mu.Lock()
		g.connected = false
		g.mu.Unlock()
	})
	o.SetOnConnectHandler(func(c paho.Client) { g.onConnect(c) })
	o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { g.handle(m.Topic(), m.Payload(), m.Retained()) })
	c := paho.NewClient(o)
	g.mu.Lock()
	g.client = c
	g.mu.Unlock()
	// With ConnectRetry the token completes only once connected; the
	// fleet does not wait for it.
	tok := c.Connect()
	tok.WaitTimeout(opTimeout)
}

// publishLocked queues a message for the gate's publisher.
func (g *Gate) publishLocked(topic string, retained bool, payload []byte) {
	select {
	case g.f.out[g.idx%publishers] <- outMsg{client: g.client, topic: topic, retained: retained, payload: payload}:
	default:
		g.f.drops.Add(1)
	}
}

func (g *Gate) setWill(o *paho.ClientOptions) {
	will, err := syncmsg.EncodeGateStatus(syncmsg.GateStatus{Online: false, Session: g.session, GateID: g.spec.ID})
	if err == nil {
		o.SetBinaryWill(g.f.topics.GateStatus(g.spec.ID), will, syncmsg.PublishQoS, true)
	}
}

// onConnect runs docs/sync.md's connect sequence: subscribe, birth,
// resync request, resend of the unacknowledged events.
func (g *Gate) onConnect(c paho.Client) {
	t := g.f.topics
	q := syncmsg.SubscribeQoS
	tok := c.SubscribeMultiple(map[string]byte{t.GateInbox(g.spec.ID): q, t.Changes(): q, t.CentralStatus(): q}, nil)
	if !tok.WaitTimeout(opTimeout) || tok.Error() != nil {
		g.f.log.Warn("fleet: subscribe failed; dropping the connection", "gate", g.spec.ID, "err", tok.Error())
		g.cut()
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.connected = true
	g.awaiting = false
	g.asm.Reset()
	g.buffered = nil
	g.birthLocked()
	g.requestLocked(syncmsg.ReasonStart)
	now := time.Now()
	g.resendLocked(now, true)
}

func (g *Gate) birthLocked() {
	v := g.version
	if !g.hasCache {
		v = 0
	}
	p, err := syncmsg.EncodeGateStatus(syncmsg.GateStatus{Online: true, Session: g.session, GateID: g.spec.ID,
		Role: g.spec.Role, Software: g.f.cfg.Software, CacheVersion: v, Outbox: int64(len(g.inflight)),
		Barrier: "closed", ClockTrusted: true, At: time.Now().UTC()})
	if err != nil {
		g.f.log.Error("fleet: birth not encodable", "gate", g.spec.ID, "err", err)
		return
	}
	g.publishLocked(g.f.topics.GateStatus(g.spec.ID), true, p)
}

// requestLocked asks for a snapshot unless one is awaited already.
func (g *Gate) requestLocked(reason string) {
	if g.awaiting {
		return
	}
	have := g.version
	if !g.hasCache {
		have = 0
	}
	g.requests++
	p, err := syncmsg.EncodeSyncRequest(syncmsg.SyncRequest{ID: strconv.FormatInt(g.session, 10) + "-" + strconv.Itoa(g.requests),
		Have: have, Reason: reason})
	if err != nil {
		return
	}
	g.awaiting, g.reason, g.requestedAt, g.progressAt = true, reason, time.Now(), time.Time{}
	g.publishLocked(g.f.topics.Sync(g.spec.ID), false, p)
}

func (g *Gate) handle(topic string, payload []byte, retained bool) {
	t := g.f.topics
	g.mu.Lock()
	defer g.mu.Unlock()
	switch topic {
	case t.Changes():
		g.onChanges(payload)
	case t.Snapshot(g.spec.ID):
		g.onSnapshot(payload)
	case t.Ack(g.spec.ID):
		g.onAck(payload)
	case t.CentralStatus():
		g.onCentralStatus(payload, retained)
	case t.Cmd(g.spec.ID):
		g.onCommand(payload)
	}
}

func (g *Gate) onChanges(p []byte) {
	ch, err := syncmsg.DecodeChanges(p)
	if err != nil {
		g.f.log.Warn("fleet: changes ignored", "gate", g.spec.ID, "err", err)
		return
	}
	if g.awaiting {
		if !ch.IsHeartbeat() {
			if len(g.buffered) == maxBuffered {
				g.buffered = g.buffered[1:]
			}
			g.buffered = append(g.buffered, ch)
		}
		return
	}
	g.applyLocked(ch)
}

func (g *Gate) applyLocked(ch syncmsg.Changes) {
	if !g.hasCache {
		g.requestLocked(syncmsg.ReasonStart)
		return
	}
	switch syncmsg.Classify(g.version, ch) {
	case syncmsg.Repeat:
	case syncmsg.Gap:
		reason := syncmsg.ReasonGap
		if ch.IsHeartbeat() {
			reason = syncmsg.ReasonStale
		}
		g.requestLocked(reason)
	case syncmsg.Apply:
		for _, ve := range ch.Entries {
			g.entries[ve.Entry.ID] = ve.Entry
		}
		g.setVersionLocked(ch.To)
	}
}

func (g *Gate) setVersionLocked(v int64) {
	changed := !g.hasCache || v != g.version
	g.version, g.hasCache = v, true
	if changed && g.f.cfg.OnVersion != nil {
		g.f.cfg.OnVersion(g, v, time.Now())
	}
}

func (g *Gate) onSnapshot(p []byte) {
	part, err := syncmsg.DecodeSnapshotPart(p)
	if err != nil {
		g.f.log.Warn("fleet: snapshot part ignored", "gate", g.spec.ID, "err", err)
		return
	}
	if !g.awaiting {
		return // only a snapshot asked for replaces the cache
	}
	entries, version, done, err := g.asm.Add(part)
	switch {
	case errors.Is(err, syncmsg.ErrStaleSnapshot):
		return
	case err != nil:
		g.f.log.Warn("fleet: snapshot part refused", "gate", g.spec.ID, "err", err)
		return
	case !done:
		g.progressAt = time.Now()
		return
	}
	g.entries = make(map[string]syncmsg.Entry, len(entries))
	for _, e := range entries {
		g.entries[e.ID] = e
	}
	g.awaiting = false
	g.snapshots++
	g.setVersionLocked(version)
	buffered := g.buffered
	g.buffered = nil
	for _, ch := range buffered {
		if g.awaiting {
			break
		}
		g.applyLocked(ch)
	}
}

func (g *Gate) onAck(p []byte) {
	a, err := syncmsg.DecodeAck(p)
	if err != nil {
		g.f.log.Warn("fleet: ack ignored", "gate", g.spec.ID, "err", err)
		return
	}
	for _, id := range a.EventIDs {
		if _, ok := g.inflight[id]; ok {
			delete(g.inflight, id)
			g.acked.Add(1)
		} else {
			g.dupAcks.Add(1)
		}
	}
}

func (g *Gate) onCentralStatus(p []byte, retained bool) {
	cs, err := syncmsg.DecodeCentralStatus(p)
	if err != nil || !cs.Online {
		return
	}
	fresh := cs.Session != g.centralBirth
	g.centralBirth = cs.Session
	if !fresh {
		return
	}
	if !retained {
		// A central that has just connected counts a gate online only
		// after a birth it receives live: announce this connection again.
		g.birthLocked()
	}
	if !g.awaiting && g.hasCache && cs.Version < g.version {
		g.requestLocked(syncmsg.ReasonStale)
	}
}

// onCommand answers a command: a resync is done, an open is refused
// (a fleet gate has no barrier).
func (g *Gate) onCommand(p []byte) {
	c, err := syncmsg.DecodeCommand(p)
	if c.ID == "" {
		return
	}
	res := syncmsg.Result{ID: c.ID, OK: true}
	switch {
	case err != nil:
		res = syncmsg.Result{ID: c.ID, Error: syncmsg.RefusedUnknownType}
	case c.Expired(time.Now()):
		res = syncmsg.Result{ID: c.ID, Error: syncmsg.RefusedExpired}
	case c.Type == syncmsg.CmdResync:
		g.awaiting = false
		g.requestLocked(syncmsg.ReasonCommand)
	default:
		res = syncmsg.Result{ID: c.ID, Error: "a simulated gate has no barrier"}
	}
	if b, err := syncmsg.EncodeResult(res); err == nil {
		g.publishLocked(g.f.topics.Result(g.spec.ID), false, b)
	}
}

// periodic re-asks for an overdue snapshot and resends unacknowledged
// events.
func (g *Gate) periodic(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.connected || g.client == nil {
		return
	}
	if g.awaiting && now.Sub(later(g.requestedAt, g.progressAt)) >= SnapshotTimeout {
		g.asm.Reset()
		g.awaiting = false
		g.requestLocked(g.reason)
	}
	g.resendLocked(now, false)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Event queues one decision event and sends it; central acknowledges it
// on Ack. It returns the event's id.
func (g *Gate) Event(granted bool, reason string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seq++
	ev := syncmsg.Event{EventID: fmt.Sprintf("%s-%d-%d", g.spec.ID, time.Now().UnixNano(), g.seq), Seq: g.seq,
		Kind: "decision", Role: g.spec.Role, Time: time.Now().UTC(), Source: "qr", Granted: granted,
		Reason: reason, ClockTrusted: true}
	g.inflight[ev.EventID] = &pending{ev: ev}
	if g.connected {
		g.sendLocked([]*pending{g.inflight[ev.EventID]}, time.Now())
	}
	return ev.EventID
}

// resendLocked sends the events not acknowledged (all of them when all,
// at a new connection; else those sent more than ResendAfter ago).
func (g *Gate) resendLocked(now time.Time, all bool) {
	var due []*pending
	for _, p := range g.inflight {
		if all || now.Sub(p.sentAt) >= ResendAfter {
			due = append(due, p)
		}
	}
	if len(due) > 0 {
		g.sendLocked(due, now)
	}
}

func (g *Gate) sendLocked(ps []*pending, now time.Time) {
	// Seq order, batches of at most MaxEvents.
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && ps[j].ev.Seq < ps[j-1].ev.Seq; j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
	for len(ps) > 0 {
		n := min(len(ps), syncmsg.MaxEvents)
		evs := make([]syncmsg.Event, n)
		for i, p := range ps[:n] {
			evs[i] = p.ev
			p.sentAt = now
		}
		b, err := syncmsg.EncodeEvents(syncmsg.Events{Events: evs})
		if err != nil {
			g.f.log.Error("fleet: events not encodable", "gate", g.spec.ID, "err", err)
			return
		}
		g.publishLocked(g.f.topics.Events(g.spec.ID), false, b)
		ps = ps[n:]
	}
}

// Kill cuts the gate's socket without a DISCONNECT, as a crash or a pulled
// cable does, so that the broker publishes its will; the gate does not
// reconnect afterwards.
func (g *Gate) Kill() {
	g.mu.Lock()
	g.killed = true
	g.connected = false
	c := g.conn
	g.mu.Unlock()
	// paho's reconnects then fail at the dial (killed), so the gate stays
	// gone until Serve ends.
	if c != nil {
		_ = c.Close()
	}
}

// Reconnect cuts the gate's socket and lets it reconnect, as a network
// blip does: the broker publishes the will, the gate announces a new
// session and resends every event not yet acknowledged.
func (g *Gate) Reconnect() { g.cut() }

// cut closes the socket so that paho reconnects.
func (g *Gate) cut() {
	g.mu.Lock()
	c := g.conn
	g.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
}

func (g *Gate) stop() {
	g.mu.Lock()
	cl := g.client
	g.mu.Unlock()
	if cl != nil {
		cl.Disconnect(100)
	}
}

// State is what a gate holds, for checks.
type State struct {
	Connected bool
	HasCache  bool
	Version   int64
	Entries   int
	Awaiting  bool
	Snapshots int   // snapshots applied
	Unacked   int   // events sent and not acknowledged
	Acked     int64 // events acknowledged
	DupAcks   int64 // acknowledgements of ids no longer in flight
	Session   int64
	Broker    string // the URL of the node of its current (or last) connection
}

// State returns the gate's state now.
func (g *Gate) State() State {
	g.mu.Lock()
	defer g.mu.Unlock()
	return State{Connected: g.connected && !g.killed, HasCache: g.hasCache, Version: g.version, Entries: len(g.entries),
		Awaiting: g.awaiting, Snapshots: g.snapshots, Unacked: len(g.inflight), Acked: g.acked.Load(),
		DupAcks: g.dupAcks.Load(), Session: g.session, Broker: g.broker}
}

// Entry returns the cached entry of a reservation.
func (g *Gate) Entry(id string) (syncmsg.Entry, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	e, ok := g.entries[id]
	return e, ok
}
