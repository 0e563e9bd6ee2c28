// Package gatesync is the gate side of the gate ↔ central sync of
// docs/sync.md: one MQTT connection (paho, clean session) that keeps the
// gate's reservation cache (gate/localdb) at central's version, delivers
// the outbox to central until central acknowledges it, announces the
// gate's presence (retained birth, again at each new central birth; will
// with a session number), and
// executes central's commands (remote open, resync) at most once.
//
// Everything runs in Serve's goroutine: the connection loop with its
// backoff, and, while connected, one event loop that owns every piece of
// protocol state (the version waited for, the snapshot being assembled,
// the events in flight). paho's message callback only hands messages to
// that loop without ever blocking, so that paho keeps reading PUBACKs
// while the loop waits for one. Nothing in the state needs a lock, and
// the order central sent things in is the order they are handled in.
//
// The cache, the outbox and the session counter live on disk; what lives
// in memory (in-flight bookkeeping, a snapshot in progress) is rebuilt at
// every connection by asking again: a snapshot request at every connect,
// every unacknowledged event sent again at every connect. Duplicates are
// the receivers' to drop (central by event id, the gate by version), so
// nothing here tries to be exactly-once on the wire.
package gatesync

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/gate/lane"
	"github.com/parkgate/parkgate/gate/localdb"
	"github.com/parkgate/parkgate/internal/mqtturl"
	"github.com/parkgate/parkgate/internal/version"
	"github.com/parkgate/parkgate/sync/syncmsg"
)

// Defaults of Config's durations (docs/sync.md).
const (
	// DefaultKeepalive is the MQTT keepalive: a silently dead connection
	// is noticed within about this plus the ping timeout.
	DefaultKeepalive = syncmsg.Keepalive
	// DefaultRetryMax caps the reconnect backoff, so that a lane is back
	// within seconds of the broker.
	DefaultRetryMax = syncmsg.RetryMax
	// DefaultResendAfter is how long an event may wait for central's
	// acknowledgement before the unacknowledged events are sent again.
	DefaultResendAfter = syncmsg.ResendAfter
	// DefaultHeartbeatTimeout is how long without a heartbeat or change
	// from central the gate reports itself not online.
	DefaultHeartbeatTimeout = syncmsg.HeartbeatTimeout
	// DefaultSnapshotTimeout is how long the gate waits for a snapshot (or
	// its next part) before asking again.
	DefaultSnapshotTimeout = syncmsg.SnapshotTimeout
	// DefaultPollInterval is how often the outbox is checked for new
	// events when nobody calls Kick.
	DefaultPollInterval = 200 * time.Millisecond
	// DefaultBirthInterval is the least time between two births: the
	// outbox depth changes at every decision and acknowledgement, and
	// central needs the trend, not every step.
	DefaultBirthInterval = 2 * time.Second
)

// Bounds that are not configuration: they follow from the protocol or
// protect the gate, and no site needs another value.
const (
	// opTimeout bounds a network round trip of a connection that is up
	// (PUBACK). A broker that does not answer within it is treated as
	// gone: the connection is dropped and made again, which is what
	// recovers it.
	opTimeout = 10 * time.Second
	// connectTimeout bounds a connection attempt: TCP (and TLS), CONNECT
	// to CONNACK, and the SUBACK of the connect sequence. A broker on a
	// LAN answers in milliseconds (a gate's argon2id check at the
	// embedded broker takes tens); a listener that accepts TCP and then
	// says nothing (a centrald still starting, a half-dead broker) must
	// not hold the gate longer than this, so that with the backoff the
	// next attempt still starts within RetryMax.
	connectTimeout = 3 * time.Second
	// minBackoff is the first reconnect delay, doubled up to RetryMax.
	minBackoff = 100 * time.Millisecond
	// inboxSize is how many received messages may wait for the loop.
	// When it is full, messages are dropped rather than block paho (see
	// the package doc); every message is one the protocol recovers from
	// losing (gap → resync, snapshot timeout → ask again, no ack →
	// resend), except a command, which central then reports unanswered.
	inboxSize = 1024
	// maxInFlight bounds the events sent and not yet acknowledged: ten
	// batches. With central away, the gate resends these every
	// ResendAfter instead of its whole outbox.
	maxInFlight = 1000
	// maxOpenRequests bounds the sync requests whose answers the gate
	// still takes: a request is asked again every SnapshotTimeout, and
	// an answer to one older than the last few is not worth waiting for.
	maxOpenRequests = 8
	// maxBuffered bounds the batches of changes held while a snapshot is
	// awaited; the oldest go first, as the snapshot most likely covers
	// them.
	maxBuffered = 1000
	// seenCommands is how many command ids are remembered to refuse a
	// repeat. Commands expire after seconds; a thousand is hours of
	// operator clicks.
	seenCommands = 1024
	// failureLogEvery is how often a broker that stays unreachable is
	// logged again at warning level (every attempt is logged at debug).
	failureLogEvery = time.Minute
	// goodbyeTimeout bounds the offline status published at shutdown.
	goodbyeTimeout = time.Second
	// birthCheckEvery is how often the lane's status is compared with the
	// last birth (a few database reads).
	birthCheckEvery = time.Second
)

// Config is the sync's identity, broker and timing. Zero durations take
// the defaults above.
type Config struct {
	// Site and GateID name the topics (syncmsg.ValidID both).
	Site, GateID string
	// Role is the lane's role, syncmsg.RoleEntry or RoleExit, for the
	// birth.
	Role string
	// URL is the broker, tcp://host:port or ssl://host:port, or the
	// nodes of a clustered broker separated by commas (mqtturl.Split).
	URL string
	// Username and Password log the gate in; both empty for an anonymous
	// broker (labs).
	Username, Password string
	// TLS configures an ssl:// connection (nil: the system's roots), e.g.
	// to trust the CA that enrollment handed over.
	TLS *tls.Config
	// ClientID is the MQTT client id. Empty: Username when one is set
	// (centrald's embedded broker admits a gate only with client id =
	// username = gate id), otherwise "gate-{site}-{gate}", which keeps
	// gates of different sites on one anonymous broker apart.
	ClientID string
	// Keepalive is the MQTT keepalive (DefaultKeepalive; at least 1 s,
	// MQTT counts it in seconds).
	Keepalive time.Duration
	// RetryMax caps the reconnect backoff (DefaultRetryMax).
	RetryMax time.Duration
	// ResendAfter is when unacknowledged events are sent again
	// (DefaultResendAfter).
	ResendAfter time.Duration
	// HeartbeatTimeout is when the gate stops calling itself online
	// without news from central (DefaultHeartbeatTimeout).
	HeartbeatTimeout time.Duration
	// SnapshotTimeout is when a snapshot request is asked again
	// (DefaultSnapshotTimeout).
	SnapshotTimeout time.Duration
	// PollInterval is how often the outbox is checked for new events
	// (DefaultPollInterval).
	PollInterval time.Duration
	// BirthInterval is the least time between two births
	// (DefaultBirthInterval).
	BirthInterval time.Duration
	// Software is the release the birth reports (empty:
	// internal/version's Version).
	Software string
}

// Lane is what the sync needs of the lane; *lane.Lane implements it.
//
// Status feeds the birth (barrier, outbox depth, cache version, clock
// trust) and tells whether the clock is trusted before a command's expiry
// is checked. Handle executes a remote open: the sync calls it with
// lane.Read{Source: localdb.SourceRemote, Value: the command id}, and the
// lane must record the decision in its outbox (source remote) before it
// opens the barrier, and report it as Result.Granted; a Result that is
// not granted is answered to central with its Reason.
type Lane interface {
	Status(ctx context.Context) (lane.Status, error)
	Handle(ctx context.Context, r lane.Read) (lane.Result, error)
}

var _ Lane = (*lane.Lane)(nil)

// SessionCounter keeps the session number S of docs/sync.md. NextSession
// stores and returns max(previous + 1, atLeast), durably before it
// returns; it is called before every connection attempt, so that a will of
// an older connection always carries a smaller number than the births
// after it.
//
// The sync passes the clock in milliseconds as atLeast, as centrald does
// for its own sessions: central keeps the highest session it has seen of a
// gate and ignores statuses below it, so a gate whose counter was lost (a
// new SD card, a database restored from a backup) would otherwise be
// ignored for good; with the floor it is back above its old numbers as
// soon as its clock is right. FileSessions is a SessionCounter; so will
// gate/localdb be once it keeps one (a meta key), and Deps picks that up
// by itself.
type SessionCounter interface {
	NextSession(ctx context.Context, atLeast int64) (int64, error)
}

// Deps are the sync's collaborators.
type Deps struct {
	// DB is the gate's database: cache, outbox. Required.
	DB *localdb.DB
	// Lane reports status and executes remote opens. Required.
	Lane Lane
	// Sessions keeps the session counter. Nil: DB, if it implements
	// SessionCounter; Serve fails otherwise.
	Sessions SessionCounter
	// Clock tells the time for every protocol deadline (nil: the wall
	// clock). Network round trips (opTimeout) use real time, since they
	// measure the network, not the protocol.
	Clock clock.Clock
	// StatusChanged, if set, returns a channel that is closed at the next
	// change of what the birth reports that is news at once (the gate's
	// faults: faults.Register's Changed); the sync then publishes a new
	// birth without waiting for its next check. Other changes (outbox
	// depth, cache version) are found by the check every second.
	StatusChanged func() <-chan struct{}
	// Log receives the sync's log (nil: discarded).
	Log *slog.Logger
}

// Sync is the gate's side of the sync. Create it with New and run it with
// Serve; Online and Kick may be called from any goroutine.
type Sync struct {
	cfg      Config
	clientID string
	topics   syncmsg.Topics
	db       *localdb.DB
	lane     Lane
	sessions SessionCounter
	clk      clock.Clock
	log      *slog.Logger
	changed  func() <-chan struct{}
	cfgErr   error
	brokers  []string // cfg.URL's list

	served    atomic.Bool
	kick      chan struct{}
	connected atomic.Bool
	// heard is when central was last heard of (a heartbeat or a batch),
	// nil when not since its will; a time.Time keeps the monotonic
	// reading, so Online is immune to wall-clock steps.
	heard   atomic.Pointer[time.Time]
	dropped atomic.Int64 // messages dropped because the loop was behind

	// Owned by Serve's goroutine; they outlive a connection.
	seen         seenIDs           // command ids answered already
	centralBirth int64             // session of central's latest birth
	rotation     *mqtturl.Rotation // the order of the brokers for the next attempt
	unsendable   map[string]bool   // event ids refused by the codec, logged once
	requests     int64             // sync request counter, for request ids
}

// New returns a sync; it checks cfg and deps, and Serve reports what is
// wrong with them.
func New(cfg Config, d Deps) *Sync {
	cfg.withDefaults()
	s := &Sync{cfg: cfg, db: d.DB, lane: d.Lane, sessions: d.Sessions, clk: d.Clock, log: d.Log, changed: d.StatusChanged,
		kick: make(chan struct{}, 1), unsendable: map[string]bool{}}
	s.seen.init(seenCommands)
	if s.clk == nil {
		s.clk = clock.Real{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "sync")
	if s.sessions == nil && d.DB != nil {
		// localdb has no session counter yet; once it has one, it is used
		// without a change here.
		if sc, ok := any(d.DB).(SessionCounter); ok {
			s.sessions = sc
		}
	}
	s.clientID = cfg.ClientID
	if s.clientID == "" {
		if cfg.Username != "" {
			s.clientID = cfg.Username
		} else {
			s.clientID = "gate-" + cfg.Site + "-" + cfg.GateID
		}
	}
	s.topics, s.cfgErr = syncmsg.NewTopics(cfg.Site)
	if s.cfgErr == nil {
		s.brokers, s.cfgErr = mqtturl.Split(cfg.URL)
		s.rotation = mqtturl.NewRotation(s.brokers)
	}
	if s.cfgErr == nil {
		s.cfgErr = s.check()
	}
	if s.cfgErr != nil {
		s.cfgErr = fmt.Errorf("gatesync: %w", s.cfgErr)
	}
	return s
}

func (c *Config) withDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Keepalive, DefaultKeepalive)
	def(&c.RetryMax, DefaultRetryMax)
	def(&c.ResendAfter, DefaultResendAfter)
	def(&c.HeartbeatTimeout, DefaultHeartbeatTimeout)
	def(&c.SnapshotTimeout, DefaultSnapshotTimeout)
	def(&c.PollInterval, DefaultPollInterval)
	def(&c.BirthInterval, DefaultBirthInterval)
	if c.Software == "" {
		c.Software = version.Version
	}
	// A build stamp longer than the birth allows must not cost the birth.
	c.Software = clean(c.Software, 64)
}

func (s *Sync) check() error {
	switch {
	case syncmsg.ValidID(s.cfg.GateID) != nil:
		return fmt.Errorf("gate id: %w", syncmsg.ValidID(s.cfg.GateID))
	case s.cfg.Role != syncmsg.RoleEntry && s.cfg.Role != syncmsg.RoleExit:
		return fmt.Errorf("role %q: want entry or exit", s.cfg.Role)
	case len(s.brokers) == 0:
		return errors.New("no broker URL")
	case s.cfg.Keepalive < time.Second:
		// paho counts in whole seconds: less would turn keepalive off.
		return fmt.Errorf("keepalive %s: want at least 1s", s.cfg.Keepalive)
	case s.db == nil:
		return errors.New("no database")
	case s.lane == nil:
		return errors.New("no lane")
	case s.sessions == nil:
		return errors.New("no session counter: give Deps.Sessions (FileSessions) or a DB that keeps one")
	}
	return nil
}

// Online reports whether the gate is connected to the broker and has
// heard from central (a heartbeat or a change) within HeartbeatTimeout:
// what /v1/status calls online. Connected alone is not enough, since
// central may be down behind a live broker.
func (s *Sync) Online() bool {
	if !s.connected.Load() {
		return false
	}
	t := s.heard.Load()
	return t != nil && s.clk.Now().Sub(*t) < s.cfg.HeartbeatTimeout
}

// statusChanged is Deps.StatusChanged's channel, nil (never ready) without
// one.
func (s *Sync) statusChanged() <-chan struct{} {
	if s.changed == nil {
		return nil
	}
	return s.changed()
}

// Kick tells the sync that the outbox has new events, so that they leave
// now rather than at the next poll (PollInterval). The lane may call it
// after Record; it never blocks.
func (s *Sync) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Serve connects and reconnects (backoff from 100 ms doubling to RetryMax)
// until ctx ends, then publishes the gate's offline status, disconnects
// and returns nil. It returns an error only for a configuration that can
// never work (New's checks); a broker or central that is away is waited
// for, while the lane keeps deciding from its cache. Serve may be called
// once; it returns only after its goroutines (and paho's, as far as paho
// lets it) have ended.
func (s *Sync) Serve(ctx context.Context) error {
	if s.cfgErr != nil {
		return s.cfgErr
	}
	if !s.served.CompareAndSwap(false, true) {
		return errors.New("gatesync: Serve called twice")
	}
	backoff := minBackoff
	var (
		failures  int
		downSince time.Time // when the last connection ended (or Serve began)
		lastErr   string
		warnedAt  time.Time
	)
	downSince = s.clk.Now()
	for ctx.Err() == nil {
		started := s.clk.Now()
		connected, err := s.connection(ctx)
		if ctx.Err() != nil {
			break
		}
		now := s.clk.Now()
		wait := jitter(backoff)
		if connected {
			// A connection that held for a while earns a quick retry; one
			// that drops at once keeps the backoff growing, so a broker
			// that accepts and closes is not hammered.
			if now.Sub(started) >= 2*s.cfg.RetryMax {
				backoff = minBackoff
				wait = jitter(backoff)
			}
			failures, lastErr, downSince = 0, "", now
			s.log.Warn("mqtt connection lost; reconnecting", "url", s.cfg.URL, "err", err, "in", wait, "next", s.rotation.Next())
		} else {
			// The backoff spaces the starts of the attempts: an attempt
			// that hung until connectTimeout has used up its share of the
			// wait, so that the next one still starts within RetryMax of
			// the last and a lane is back within seconds of its broker.
			wait = max(0, wait-now.Sub(started))
			failures++
			// Every failure is logged; at warning level the first, a new
			// kind of failure, and then once a minute while it lasts, so
			// that a gate that cannot reach its broker says so without
			// filling the log.
			msg := fmt.Sprint(err)
			lvl := slog.LevelDebug
			if failures == 1 || msg != lastErr || now.Sub(warnedAt) >= failureLogEvery {
				lvl, warnedAt = slog.LevelWarn, now
			}
			lastErr = msg
			s.log.Log(ctx, lvl, "mqtt connection attempt failed; retrying", "url", s.cfg.URL, "err", err,
				"attempt", failures, "down_for", now.Sub(downSince).Round(time.Millisecond), "in", wait.Round(time.Millisecond))
		}
		if !clock.Sleep(ctx, s.clk, wait) {
			break
		}
		backoff = min(2*backoff, s.cfg.RetryMax)
	}
	return nil
}

// jitter takes 5 to 20 % off d, so that gates that lost the broker
// together do not all come back in the same millisecond, and so that the
// wait stays below the cap (RetryMax) even with an attempt's own time.
func jitter(d time.Duration) time.Duration {
	if d < 20 {
		return d
	}
	return d - d/20 - rand.N(d*3/20)
}

// inbound is one message handed from paho to the loop.
type inbound struct {
	topic    string
	payload  []byte
	retained bool // kept by the broker from before this connection
}

// connection makes one connection and runs it until it ends. connected
// reports whether the broker accepted it.
func (s *Sync) connection(ctx context.Context) (connected bool, err error) {
	session, err := s.sessions.NextSession(ctx, s.clk.Now().UnixMilli())
	if err != nil {
		// Without a fresh session number a late will could mark this
		// connection offline; better not to connect. The lane decides on
		// meanwhile, as it does with no broker.
		s.log.Error("session counter failed; not connecting", "err", err)
		return false, fmt.Errorf("session counter: %w", err)
	}
	will, err := syncmsg.EncodeGateStatus(syncmsg.GateStatus{Online: false, Session: session, GateID: s.cfg.GateID})
	if err != nil {
		return false, err
	}
	in := make(chan inbound, inboxSize)
	lost := make(chan error, 1)
	opts := paho.NewClientOptions()
	// paho tries the brokers in this order, each for up to
	// connectTimeout, and takes the first that accepts. The list starts
	// after the node this gate last used or failed on, so that a gate
	// whose node died goes straight to another one.
	s.rotation.Apply(opts)
	defer s.rotation.Done()
	opts.SetClientID(s.clientID).
		SetUsername(s.cfg.Username).
		SetPassword(s.cfg.Password).
		SetTLSConfig(s.cfg.TLS).
		SetProtocolVersion(4). // 3.1.1, what both brokers and the ACL tests speak
		SetCleanSession(true). // nothing queued for an absent gate is replayed
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetResumeSubs(false).
		SetKeepAlive(s.cfg.Keepalive).
		SetPingTimeout(min(s.cfg.Keepalive, opTimeout)).
		SetConnectTimeout(connectTimeout).
		SetWriteTimeout(opTimeout).
		SetOrderMatters(true). // in order, in paho's router goroutine: the handler must not block
		SetBinaryWill(s.topics.GateStatus(s.cfg.GateID), will, syncmsg.PublishQoS, true).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			select {
			case in <- inbound{m.Topic(), m.Payload(), m.Retained()}:
			default:
				s.dropped.Add(1)
			}
		}).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	cl := paho.NewClient(opts)
	tok := cl.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		<-tok.Done() // bounded by connectTimeout; paho cannot cancel it
		if tok.Error() == nil {
			cl.Disconnect(0)
		}
		return false, ctx.Err()
	}
	if err := tok.Error(); err != nil {
		return false, err
	}
	broker := s.cfg.URL
	if u := s.rotation.Tried(); u != "" {
		broker = u
	}
	c := newConn(s, cl, session, broker)
	err = c.run(ctx, in, lost)
	s.connected.Store(false)
	if ctx.Err() != nil {
		c.goodbye()
	}
	cl.Disconnect(250)
	return true, err
}
