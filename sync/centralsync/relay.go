package centralsync

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/internal/mqtturl"
	"github.com/parkgate/parkgate/sync/syncmsg"
)

// Defaults of Config's zero fields (docs/sync.md's figures).
const (
	// DefaultHeartbeat is how often an empty batch tells the gates the
	// latest version when nothing changes.
	DefaultHeartbeat = syncmsg.HeartbeatEvery
	// DefaultPoll is how often the change log is read. It bounds the
	// propagation delay of a change (plus the broker's sub-millisecond
	// hop); Wake cuts it short.
	DefaultPoll = 100 * time.Millisecond
	// DefaultRetryMax caps the reconnect backoff.
	DefaultRetryMax = syncmsg.RetryMax
	// DefaultKeepAlive is the MQTT keepalive: a silently dead connection
	// is noticed within about one and a half times it.
	DefaultKeepAlive = syncmsg.Keepalive
	// DefaultRevokedMargin is how long after its window ended a revoked
	// reservation stays in snapshots (see Config.RevokedMargin).
	DefaultRevokedMargin = 24 * time.Hour
	// DefaultCommandTTL is a command's validity when the caller gives
	// none (docs/sync.md: now+10s).
	DefaultCommandTTL = syncmsg.CommandTTL
	// SharedGroup is the shared-subscription group of the events topic
	// when Config.Shared is set: $share/centrald/parking/{site}/gates/+/events.
	SharedGroup = "centrald"
)

const (
	// publishTimeout bounds the wait for a PUBACK (and a SUBACK). A
	// live broker answers in well under a millisecond on a LAN; a
	// connection that does not within 10 s is dead and the keepalive
	// is about to say so.
	publishTimeout = 10 * time.Second
	// connectTimeout bounds a connection attempt (TCP, TLS, CONNECT to
	// CONNACK): a broker answers in milliseconds, and one that accepts
	// TCP and then says nothing must not hold the relay for longer than
	// this, so that with the backoff the next attempt starts within
	// RetryMax.
	connectTimeout = 3 * time.Second
	// retryMin is the first reconnect delay; it doubles up to RetryMax.
	retryMin = 100 * time.Millisecond
	// seenDebounce: any message from a gate refreshes its lastSeen, but
	// at most this often, so that a gate sending a burst of events costs
	// one write, not one per message.
	seenDebounce = 5 * time.Second
	// maxSnapshots bounds the snapshots built at once: each holds a
	// site's entries in memory, and a broker restart makes every gate ask
	// at the same moment.
	maxSnapshots = 4
	// queueLimit and queueBytes bound each inbound queue, in messages
	// and payload bytes. A site keeps them far below; past them (a
	// flooding client, a store that stopped answering) a message is
	// dropped and its sender's retry covers it (events are resent after
	// 5 s, sync requests after 10 s).
	queueLimit = 10000
	queueBytes = 64 << 20
	// maxSeen bounds the lastSeen debounce map (a site has tens of gates).
	maxSeen = 4096
)

// Errors of the command methods (test with errors.Is).
var (
	// ErrNotConnected: the relay is not connected to the broker.
	ErrNotConnected = errors.New("centralsync: not connected to the MQTT broker")
	// ErrNoAnswer: the gate did not answer a command before it expired
	// (it is offline, or the command was lost with a connection).
	ErrNoAnswer = errors.New("centralsync: no answer from the gate")
)

// EventApplier stores a gate event once and applies it to spot state:
// *booking.Service. duplicate reports an event id stored before, which
// changes nothing and is acknowledged again.
type EventApplier interface {
	ApplyGateEvent(ctx context.Context, e store.GateEvent) (outcome string, duplicate bool, err error)
}

// Config configures a Relay. Zero durations take the Default* values.
type Config struct {
	// Site names the topic root parking/{Site}/ (syncmsg.ValidID).
	Site string
	// URL is the broker, tcp://host:1883 or ssl://host:8883, or the nodes
	// of a clustered broker separated by commas (mqtturl.Split).
	URL string
	// Username and Password are centrald's MQTT credentials ("" for
	// none).
	Username, Password string
	// ClientID is the MQTT client id; "" picks centrald-{site}-{random},
	// so that two instances never take each other's connection over.
	ClientID string
	// TLS configures an ssl:// connection (nil: the system roots).
	TLS *tls.Config
	// Heartbeat is the interval of the empty heartbeat batch, counted
	// from the last publication on central/changes.
	Heartbeat time.Duration
	// Poll is how often the change log is read.
	Poll time.Duration
	// RetryMax caps the reconnect backoff.
	RetryMax time.Duration
	// KeepAlive is the MQTT keepalive.
	KeepAlive time.Duration
	// Shared subscribes to the gates' events through the shared
	// subscription $share/centrald/…, so that several centrald instances
	// each receive a share of them instead of all of them. Off, one
	// instance receives every event.
	Shared bool
	// RevokedMargin is how long after reservedUntil a revoked reservation
	// (left, cancelled, no_show) is still sent in snapshots: the snapshot
	// rule is paid and taken reservations whatever their window, plus
	// revoked ones with reservedUntil > now − RevokedMargin. A signed
	// ticket admits on its own at a gate that does not have its
	// reservation cached (authz: "a valid signature is proof of
	// payment"), limited only by its window; a revoked ticket must
	// therefore stay in the cache for as long as some gate could still
	// find its window open: until it ends, plus the error of a gate's
	// clock (an untrusted clock only checks against the last trusted
	// time). 24 hours covers a gate that rebooted without a time source
	// for a day; the cost is the revocations of one day.
	RevokedMargin time.Duration
	// Leader reports whether this instance is the one that relays (the
	// changes, the heartbeat and the snapshots, which must all follow one
	// version line) and speaks for central on central/status. nil:
	// always. It is called about once per Poll, so it must be cheap
	// (leader.Lock.Leader: a PostgreSQL advisory lock held on a
	// connection of its own). Events, presence and commands run on every
	// instance.
	Leader func(ctx context.Context) bool
	// RoleFromBirth makes a gate's role the one its latest birth
	// announces (mqtt.allow_anonymous: any client may speak for any gate
	// there). Off, a birth records the role only of a gate that has none
	// yet (provisioned before roles were, or authenticated by an external
	// broker), and never replaces a registered one.
	RoleFromBirth bool
}

// Relay is centrald's MQTT client for the gate sync. Build it with New and
// run it with Serve; Open, Resync, Wake, Connected and Version may be
// called from any goroutine.
type Relay struct {
	cfg       Config
	topics    syncmsg.Topics
	topicsErr error
	brokers   []string          // cfg.URL's list
	rotation  *mqtturl.Rotation // the order of the brokers for the next attempt (connectLoop's)
	st        store.Store
	svc       EventApplier
	clk       clock.Clock
	log       *slog.Logger

	mu      sync.Mutex
	client  mqtt.Client // nil while not connected
	session int64       // the current (or last) connection's session
	// leads says the current connection was made as the leader: it
	// carries central's will and published central's birth, so it is the
	// only one that may relay (see connection).
	leads   bool
	serving bool

	// relayed is the last version published on central/changes (or the
	// version the relay started from): a point of the gates' version
	// line, which snapshots are taken at.
	relayed atomic.Int64
	// leading says the relay loop holds the leadership and relayed is
	// valid for it; snapshots are answered only then.
	leading atomic.Bool
	// announce asks the relay loop for a heartbeat at once (after a
	// connection: docs/sync.md, "status, then a heartbeat").
	announce atomic.Bool
	wake     chan struct{}

	presence, events, syncs *queue

	seenMu sync.Mutex
	seen   map[string]time.Time

	cmdMu   sync.Mutex
	waiters map[string]waiter

	snapMu   sync.Mutex
	snapping map[string]bool
	snapNext map[string]syncmsg.SyncRequest // the newest request made while one was being answered
	snapSlot chan struct{}
}

// New returns a Relay that reads the change log and gates from st, applies
// gate events through svc, and tells time (timestamps, timers, backoff)
// by clk, whose timers must run (clock.Real outside tests). log may be
// nil. Configuration errors are Serve's to report.
func New(cfg Config, st store.Store, svc EventApplier, clk clock.Clock, log *slog.Logger) *Relay {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if clk == nil {
		clk = clock.Real{}
	}
	cfg.Heartbeat = orDefault(cfg.Heartbeat, DefaultHeartbeat)
	cfg.Poll = orDefault(cfg.Poll, DefaultPoll)
	cfg.RetryMax = orDefault(cfg.RetryMax, DefaultRetryMax)
	cfg.KeepAlive = orDefault(cfg.KeepAlive, DefaultKeepAlive)
	cfg.RevokedMargin = orDefault(cfg.RevokedMargin, DefaultRevokedMargin)
	if cfg.Leader == nil {
		cfg.Leader = func(context.Context) bool { return true }
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "centrald-" + cfg.Site + "-" + strings.ToLower(rand.Text()[:8])
	}
	topics, err := syncmsg.NewTopics(cfg.Site)
	brokers, berr := mqtturl.Split(cfg.URL)
	if err == nil && berr != nil {
		err = fmt.Errorf("broker URL: %w", berr)
	}
	return &Relay{
		cfg: cfg, topics: topics, topicsErr: err, brokers: brokers, rotation: mqtturl.NewRotation(brokers), st: st, svc: svc, clk: clk,
		log:      log.With("component", "sync"),
		wake:     make(chan struct{}, 1),
		presence: newQueue("presence"),
		events:   newQueue("events"),
		syncs:    newQueue("sync"),
		seen:     map[string]time.Time{},
		waiters:  map[string]waiter{},
		snapping: map[string]bool{},
		snapNext: map[string]syncmsg.SyncRequest{},
		snapSlot: make(chan struct{}, maxSnapshots),
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Serve connects to the broker and runs the relay, the resyncs, the event
// and presence workers until ctx ends; then it publishes central's offline
// status, disconnects, waits for every goroutine it started and returns
// nil. Broker and database failures are logged and retried (the change log
// keeps everything, gates resend); only a configuration error or a
// database that cannot tell its version at start fail Serve. It may be
// called once.
func (r *Relay) Serve(ctx context.Context) error {
	if r.topicsErr != nil {
		return fmt.Errorf("centralsync: %w", r.topicsErr)
	}
	if len(r.brokers) == 0 {
		return errors.New("centralsync: no broker URL")
	}
	r.mu.Lock()
	if r.serving {
		r.mu.Unlock()
		return errors.New("centralsync: Serve called twice")
	}
	r.serving = true
	r.mu.Unlock()

	v, err := r.startVersion(ctx)
	if err != nil {
		return fmt.Errorf("centralsync: reading the change log version: %w", err)
	}
	r.relayed.Store(v)
	r.log.Info("gate sync starting", "site", r.cfg.Site, "broker", r.cfg.URL, "client", r.cfg.ClientID, "version", v, "shared", r.cfg.Shared)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { r.connectLoop(ctx) })
	wg.Go(func() { r.relayLoop(ctx) })
	wg.Go(func() { r.eventsLoop(ctx) })
	wg.Go(func() { r.presenceLoop(ctx) })
	wg.Go(func() { r.syncLoop(ctx, &wg) })
	wg.Wait()
	r.log.Info("gate sync stopped")
	return nil
}

// Connected reports whether the relay is connected to the broker (for
// health and readiness).
func (r *Relay) Connected() bool { return r.currentClient() != nil }

// Relaying reports whether this instance relays the change log now: it
// holds the leadership and its connection speaks for central.
func (r *Relay) Relaying() bool {
	_, leads := r.connected()
	return leads && r.leading.Load()
}

// Version returns the last version relayed to the gates (or, before the
// first batch, the version the relay started from).
func (r *Relay) Version() int64 { return r.relayed.Load() }

// Wake makes the relay read the change log now instead of at the next
// Poll; a writer may call it after a commit to cut the propagation delay.
// It never blocks.
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *Relay) currentClient() mqtt.Client {
	c, _ := r.connected()
	return c
}

// connected returns the current connection and whether it was made as
// the leader's.
func (r *Relay) connected() (mqtt.Client, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.client, r.leads
}

func (r *Relay) setClient(c mqtt.Client, leads bool) {
	r.mu.Lock()
	r.client, r.leads = c, leads && c != nil
	r.mu.Unlock()
}

// errLeadershipChanged ends a connection made for the other role.
var errLeadershipChanged = errors.New("the relay leadership changed")

// nextSession numbers a new connection: the wall clock in milliseconds,
// and above the previous session of this process. centrald keeps no
// counter on disk, and the clock makes a restarted centrald's session
// higher than its predecessor's all the same (unless the clock went back
// by more than the restart took), which is what gates compare.
func (r *Relay) nextSession() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.session = max(r.session+1, r.clk.Now().UnixMilli())
	return r.session
}

// connectLoop keeps one connection up, reconnecting with an exponential
// backoff capped at RetryMax. paho's own reconnect is off: it would reuse
// the will of the first connection, whose session a gate has already seen.
func (r *Relay) connectLoop(ctx context.Context) {
	var backoff time.Duration
	failures := 0
	for {
		started := r.clk.Now()
		up, err := r.connection(ctx)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errLeadershipChanged) {
			backoff, failures = 0, 0
			continue // reconnect at once, in the new role
		}
		if up {
			backoff, failures = 0, 0
		}
		failures++
		backoff = min(max(2*backoff, retryMin), r.cfg.RetryMax)
		wait := backoff
		if !up {
			// The backoff spaces the starts of the attempts: one that hung
			// until connectTimeout has waited its share already.
			wait = max(0, backoff-r.clk.Now().Sub(started))
		}
		// The first failure and then one a minute or so, not one every
		// 5 s for as long as the broker is down.
		if failures == 1 || failures%12 == 0 {
			r.log.Warn("MQTT connection down; retrying", "broker", r.cfg.URL, "err", err, "attempts", failures, "retry_in", wait)
		} else {
			r.log.Debug("MQTT connection attempt failed", "broker", r.cfg.URL, "err", err, "attempts", failures)
		}
		if !clock.Sleep(ctx, r.clk, wait) {
			return
		}
	}
}

// connection makes one connection and holds it until it is lost (an error),
// the leadership changes (errLeadershipChanged) or ctx ends (nil). up says
// whether it got as far as being ready (subscribed, and for a leader the
// birth published), which resets the backoff.
//
// Only the leader's connection carries central's will and publishes its
// birth: with several instances, a follower's will would tell the gates
// that central is offline whenever any one instance died. The will is
// fixed when a connection is made, so a change of leadership is a new
// connection in the new role. A deposed leader disconnects without a
// word: the new leader's birth, with a higher session, replaces its
// status, and its will never fires.
func (r *Relay) connection(ctx context.Context) (up bool, err error) {
	session := r.nextSession()
	lead := r.cfg.Leader(ctx)
	lost := make(chan error, 1)
	opts := mqtt.NewClientOptions()
	// paho tries the brokers in this order, each for up to
	// connectTimeout; the list starts after the node the last connection
	// reached (or tried last), so that when a node of a cluster dies the
	// next attempt goes straight to another one.
	r.rotation.Apply(opts)
	broker := func() string {
		if u := r.rotation.Tried(); u != "" {
			return u
		}
		return r.cfg.URL
	}
	defer r.rotation.Done()
	opts.SetClientID(r.cfg.ClientID).
		SetUsername(r.cfg.Username).
		SetPassword(r.cfg.Password).
		SetTLSConfig(r.cfg.TLS).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(r.cfg.KeepAlive).
		SetPingTimeout(5 * time.Second).
		SetConnectTimeout(connectTimeout).
		SetWriteTimeout(publishTimeout).
		SetOrderMatters(true).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	if lead {
		will, err := syncmsg.EncodeCentralStatus(syncmsg.CentralStatus{Online: false, Session: session})
		if err != nil {
			return false, err
		}
		opts.SetBinaryWill(r.topics.CentralStatus(), will, syncmsg.PublishQoS, true)
	}
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		tok.WaitTimeout(connectTimeout + time.Second) // paho bounds the attempt by connectTimeout
		c.Disconnect(0)
		return false, ctx.Err()
	}
	if err := tok.Error(); err != nil {
		return false, fmt.Errorf("connecting: %w", err)
	}
	// Subscribe before the birth: a gate that sees central's new birth
	// may ask for a resync at once.
	if err := r.subscribe(ctx, c); err != nil {
		c.Disconnect(0)
		return false, err
	}
	if lead {
		// A gate is online only with a birth on the connection it has
		// now; the retained births the subscription brought may be of
		// connections that are gone. Queued before central's birth, which
		// every connected gate answers with a birth, so that the reset
		// never undoes one of those (see applyStatus).
		r.presence.push(inMsg{reset: true, at: r.clk.Now()})
		if err := r.publishBirth(ctx, c, session); err != nil {
			c.Disconnect(0)
			return false, fmt.Errorf("publishing the birth: %w", err)
		}
	}
	r.setClient(c, lead)
	r.announce.Store(true)
	r.Wake()
	role := "follower"
	if lead {
		role = "leader"
	}
	r.log.Info("connected to the MQTT broker", "broker", broker(), "session", session, "role", role)
	for {
		t := r.clk.NewTimer(r.cfg.Poll)
		select {
		case <-ctx.Done():
			t.Stop()
			r.setClient(nil, false)
			if lead {
				// A clean disconnect sends no will: say it ourselves,
				// so that gates do not wait for a heartbeat that will
				// not come. Only on a connection paho still holds open:
				// Publish itself (not only the PUBACK) waits up to the
				// write timeout for a connection that is going.
				if p, err := syncmsg.EncodeCentralStatus(syncmsg.CentralStatus{Online: false, Session: session}); err == nil && c.IsConnectionOpen() {
					c.Publish(r.topics.CentralStatus(), syncmsg.PublishQoS, true, p).WaitTimeout(time.Second)
				}
			}
			c.Disconnect(250)
			return true, nil
		case err := <-lost:
			t.Stop()
			r.setClient(nil, false)
			return true, fmt.Errorf("connection lost: %w", err)
		case <-t.C():
			if r.cfg.Leader(ctx) != lead {
				r.setClient(nil, false)
				c.Disconnect(250)
				r.log.Info("the relay leadership changed; reconnecting in the new role", "was", role)
				return true, errLeadershipChanged
			}
		}
	}
}

func (r *Relay) subscribe(ctx context.Context, c mqtt.Client) error {
	events := r.topics.AllEvents()
	if r.cfg.Shared {
		events = "$share/" + SharedGroup + "/" + events
	}
	q := syncmsg.SubscribeQoS
	filters := map[string]byte{
		r.topics.AllGateStatus(): q,
		events:                   q,
		r.topics.AllSync():       q,
		r.topics.AllResults():    q,
	}
	tok := c.SubscribeMultiple(filters, r.onMessage)
	if err := r.await(ctx, tok); err != nil {
		return fmt.Errorf("subscribing: %w%s", err, r.sharedHint())
	}
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		for f, code := range st.Result() {
			if code >= 0x80 {
				hint := ""
				if f == events {
					hint = r.sharedHint()
				}
				return fmt.Errorf("subscribing: the broker refused %s (code %#x)%s", f, code, hint)
			}
		}
	}
	return nil
}

// sharedHint says, when the relay asked for a shared subscription, what a
// broker without them does with it: NATS refuses it, RabbitMQ closes the
// connection, and either way centrald would retry for ever without a word
// on the cause.
func (r *Relay) sharedHint() string {
	if !r.cfg.Shared {
		return ""
	}
	return "; the events subscription is shared ($share/" + SharedGroup + "/…), which a broker without shared subscriptions (NATS, RabbitMQ) refuses or answers by closing the connection: set mqtt.shared: false for such a broker"
}

func (r *Relay) publishBirth(ctx context.Context, c mqtt.Client, session int64) error {
	v, err := r.st.Version(ctx)
	if err != nil {
		return err
	}
	p, err := syncmsg.EncodeCentralStatus(syncmsg.CentralStatus{Online: true, Session: session, Version: v, At: r.clk.Now().UTC()})
	if err != nil {
		return err
	}
	return r.await(ctx, c.Publish(r.topics.CentralStatus(), syncmsg.PublishQoS, true, p))
}

// publish sends a QoS 1 message on the current connection and waits for
// its PUBACK: what the caller does next (a later batch, forgetting a
// version) relies on the broker having it.
func (r *Relay) publish(ctx context.Context, topic string, payload []byte) error {
	c := r.currentClient()
	if c == nil {
		return ErrNotConnected
	}
	return r.await(ctx, c.Publish(topic, syncmsg.PublishQoS, false, payload))
}

// await waits for a paho token, at most publishTimeout.
func (r *Relay) await(ctx context.Context, tok mqtt.Token) error {
	t := r.clk.NewTimer(publishTimeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C():
		return fmt.Errorf("no answer from the broker within %s", publishTimeout)
	}
}

// onMessage is paho's callback for every subscription. It never blocks
// (see the package comment): it checks the topic, refreshes the gate's
// lastSeen, delivers command results and queues the rest.
func (r *Relay) onMessage(_ mqtt.Client, m mqtt.Message) {
	gate, leaf, ok := r.topics.ParseGateTopic(m.Topic())
	if !ok {
		// An invalid gate id never reaches the store or a reply topic.
		r.log.Debug("ignoring a message on an unexpected topic", "topic", m.Topic())
		return
	}
	in := inMsg{gate: gate, leaf: leaf, payload: m.Payload(), retained: m.Retained()}
	if len(in.payload) == 0 {
		return // a retained message being cleared
	}
	// A retained message is old news, and a will is the broker speaking
	// for a gate that is gone: neither says the gate was just seen.
	if !in.retained && leaf != syncmsg.LeafStatus {
		r.touch(gate)
	}
	var q *queue
	switch leaf {
	case syncmsg.LeafStatus:
		q = r.presence
	case syncmsg.LeafEvents:
		q = r.events
	case syncmsg.LeafSync:
		q = r.syncs
	case syncmsg.LeafResult:
		r.deliverResult(gate, in.payload)
		return
	default:
		return
	}
	if !q.push(in) {
		r.log.Warn("inbound queue full; dropping a message (its sender retries)", "queue", q.name, "gate", gate)
	}
}

// inMsg is a message from a gate waiting for a worker, or (touch) a
// lastSeen refresh, or (reset) the presence reset of a new leader
// connection: gates not heard from since at are shown offline.
type inMsg struct {
	gate, leaf string
	payload    []byte
	retained   bool
	touch      bool
	reset      bool
	at         time.Time
}

// queue is an unbounded-but-capped FIFO between paho's callback, which
// must not block, and one worker.
type queue struct {
	name  string
	mu    sync.Mutex
	items []inMsg
	bytes int
	ready chan struct{}
}

func newQueue(name string) *queue { return &queue{name: name, ready: make(chan struct{}, 1)} }

func (q *queue) push(m inMsg) bool {
	q.mu.Lock()
	if len(q.items) >= queueLimit || q.bytes+len(m.payload) > queueBytes {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, m)
	q.bytes += len(m.payload)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return true
}

func (q *queue) pop(ctx context.Context) (inMsg, bool) {
	for ctx.Err() == nil {
		q.mu.Lock()
		if len(q.items) > 0 {
			m := q.items[0]
			q.items[0] = inMsg{}
			q.items = q.items[1:]
			q.bytes -= len(m.payload)
			if len(q.items) == 0 {
				q.items = nil // let the backing array go after a burst
			}
			q.mu.Unlock()
			return m, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return inMsg{}, false
		case <-q.ready:
		}
	}
	return inMsg{}, false
}
