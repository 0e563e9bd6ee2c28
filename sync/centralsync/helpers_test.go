package centralsync_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/parkgate/parkgate/central/booking"
	"github.com/parkgate/parkgate/central/payment/fakepay"
	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/central/store/sqlitestore"
	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/clock/clocktest"
	"github.com/parkgate/parkgate/sync/centralsync"
	"github.com/parkgate/parkgate/sync/syncmsg"
)

// wait is the deadline of every wait for something the relay does; far
// above what anything here takes (milliseconds), so that it fails only
// when the thing never happens.
const wait = 10 * time.Second

// broker is an in-process mochi broker that lets everyone do everything
// (the ACL is central/broker's concern and tested there).
type broker struct {
	srv  *mochi.Server
	addr string
	once sync.Once
}

func startBroker(t *testing.T, addr string) *broker {
	t.Helper()
	return startBrokerWith(t, addr, new(allowAll))
}

// startBrokerWith is startBroker with another authentication and ACL hook
// than allowAll.
func startBrokerWith(t *testing.T, addr string, hook mochi.Hook) *broker {
	t.Helper()
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumMessageExpiryInterval = 0
	srv := mochi.New(&mochi.Options{Capabilities: caps, Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(hook, nil); err != nil {
		t.Fatal(err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "t", Address: addr})
	if err := srv.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	b := &broker{srv: srv, addr: l.Address()}
	t.Cleanup(b.stop)
	return b
}

// allowAll admits every client to everything, as mochi's auth.AllowHook
// does (whose package would pull in a YAML dependency for nothing).
type allowAll struct{ mochi.HookBase }

func (*allowAll) ID() string { return "allow-all" }

func (*allowAll) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}

func (*allowAll) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }

func (*allowAll) OnACLCheck(*mochi.Client, string, bool) bool { return true }

func (b *broker) url() string { return "tcp://" + b.addr }

func (b *broker) stop() { b.once.Do(func() { _ = b.srv.Close() }) }

// uniqueSite names a site no earlier run used: an external broker keeps
// retained messages across runs.
func uniqueSite() string { return "t" + strings.ToLower(rand.Text()[:12]) }

// env is centrald's side: a real store, a real booking service on a fake
// clock that reads the real time at the start (the relay runs on the real
// clock, and both must agree on "now" for windows), and the relay.
type env struct {
	t      *testing.T
	ctx    context.Context
	st     store.Store
	svc    *booking.Service
	clk    *clocktest.Clock
	url    string
	site   string
	topics syncmsg.Topics
	relay  *centralsync.Relay
	stop   func()
}

type envOption func(*centralsync.Config)

func newEnv(t *testing.T, url string, opts ...envOption) *env {
	t.Helper()
	e := newCentral(t)
	e.url = url
	e.relay, e.stop = e.startRelay(opts...)
	return e
}

// newCentral is newEnv without a relay yet (set url, then startRelay).
func newCentral(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "central.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Now().UTC().Truncate(time.Second)
	spots := make([]string, 100)
	for i := range spots {
		spots[i] = strconv.Itoa(i + 1)
	}
	if err := st.SetSpots(ctx, spots, now); err != nil {
		t.Fatal(err)
	}
	clk := clocktest.New(now)
	svc := booking.New(st, &fakepay.Provider{}, nil, clk, booking.DefaultConfig(), nil, nil)
	site := uniqueSite()
	topics, err := syncmsg.NewTopics(site)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, ctx: ctx, st: st, svc: svc, clk: clk, site: site, topics: topics}
}

// startRelay runs one more relay (one more centrald instance) on the env's
// store and site, and waits until it is connected. stop ends it.
func (e *env) startRelay(opts ...envOption) (relay *centralsync.Relay, stop func()) {
	t := e.t
	cfg := centralsync.Config{Site: e.site, URL: e.url, Heartbeat: 300 * time.Millisecond, RetryMax: 500 * time.Millisecond}
	for _, o := range opts {
		o(&cfg)
	}
	relay = centralsync.New(cfg, e.st, e.svc, clock.Real{}, testLogger(t))
	runCtx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- relay.Serve(runCtx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(wait):
				t.Errorf("Serve did not return within %s of its context ending", wait)
			}
		})
	}
	t.Cleanup(stop)
	waitUntil(t, "the relay connects", relay.Connected)
	return relay, stop
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger {
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: level}))
}

// waitUntil polls cond until it holds, failing the test after wait.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", wait, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *env) version() int64 {
	e.t.Helper()
	v, err := e.st.Version(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// caughtUp waits until the relay has published everything in the log.
func (e *env) caughtUp() int64 {
	e.t.Helper()
	var v int64
	waitUntil(e.t, "the relay has relayed the whole log", func() bool {
		v = e.version()
		return e.relay.Version() == v
	})
	return v
}

func (e *env) window(fromH, hours float64) reservation.Window {
	from := e.clk.Now().Add(time.Duration(fromH * float64(time.Hour)))
	return reservation.Window{From: from, Until: from.Add(time.Duration(hours * float64(time.Hour)))}
}

func (e *env) reserve(spot string, w reservation.Window) booking.Issued {
	e.t.Helper()
	r, err := e.svc.Reserve(e.ctx, spot, w)
	if err != nil {
		e.t.Fatalf("reserve %s: %v", spot, err)
	}
	return r
}

func (e *env) pay(r booking.Issued) booking.Issued {
	e.t.Helper()
	p, err := e.svc.Pay(e.ctx, r.SpotID, booking.Caller{Token: r.Token}, booking.PayRequest{CarID: "B-XY 123", PaymentMethod: "pm_card_visa"})
	if err != nil {
		e.t.Fatalf("pay: %v", err)
	}
	p.Token = r.Token
	return p
}

func (e *env) paid(spot string, w reservation.Window) booking.Issued {
	e.t.Helper()
	return e.pay(e.reserve(spot, w))
}

func (e *env) cancel(id string) {
	e.t.Helper()
	if _, err := e.svc.Cancel(e.ctx, id, booking.Caller{Operator: true}); err != nil {
		e.t.Fatalf("cancel %s: %v", id, err)
	}
}

func (e *env) get(id string) reservation.Reservation {
	e.t.Helper()
	r, err := e.st.Get(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// insert stores reservations as they are, with their change-log entries,
// in one transaction: for states and windows the booking rules cannot
// produce now (windows that ended days ago), and for bulk (booking's Push
// checks each window first, which under the race detector takes a minute
// for 10,000).
func (e *env) insert(rs ...reservation.Reservation) {
	e.t.Helper()
	err := e.st.Write(e.ctx, func(tx store.Tx) error {
		for _, r := range rs {
			h := sha256.Sum256([]byte(r.ID))
			r.TokenHash, r.Currency = h[:], "eur"
			if r.CreatedAt.IsZero() {
				r.CreatedAt = r.From.Add(-time.Hour)
			}
			if err := tx.Insert(r); err != nil {
				return err
			}
			if err := tx.Log(store.Change{At: e.clk.Now(), Kind: store.KindCreated, SpotID: r.SpotID, ReservationID: r.ID,
				Actor: "operator", Reservation: &r}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatalf("insert: %v", err)
	}
}

// provision registers a gate's role, as `centrald gate add ID --role ROLE`
// does: central checks the gate's events against it.
func (e *env) provision(id, role string) {
	e.t.Helper()
	err := e.st.Write(e.ctx, func(tx store.Tx) error {
		return tx.PutGate(store.Gate{ID: id, Role: role, AddedAt: e.clk.Now()})
	})
	if err != nil {
		e.t.Fatalf("provision %s: %v", id, err)
	}
}

func (e *env) gate(id string) (store.Gate, bool) {
	e.t.Helper()
	gs, err := e.st.Gates(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, g := range gs {
		if g.ID == id {
			return g, true
		}
	}
	return store.Gate{}, false
}

// received is one message a test gate got.
type received struct {
	topic    string
	payload  []byte
	retained bool
	at       time.Time
}

// testGate plays a gate with a plain paho client: it subscribes as a gate
// does (central/# and its inbox) and sorts what arrives by kind.
type testGate struct {
	t      *testing.T
	id     string
	topics syncmsg.Topics
	c      mqtt.Client
	mu     sync.Mutex
	conn   net.Conn // the socket, to cut it without a DISCONNECT

	central, changes, acks, snapshots, cmds chan received

	have int64 // the version line so far (-1: nothing yet)
}

type gateOption func(*mqtt.ClientOptions)

// withLogin logs in as a provisioned gate of the embedded broker (whose
// client id must be the gate id).
func withLogin(user, password string) gateOption {
	return func(o *mqtt.ClientOptions) { o.SetUsername(user).SetPassword(password).SetClientID(user) }
}

func withWill(topic string, payload []byte) gateOption {
	return func(o *mqtt.ClientOptions) { o.SetBinaryWill(topic, payload, 1, true) }
}

func connectGate(t *testing.T, brokerURL string, topics syncmsg.Topics, id string, opts ...gateOption) *testGate {
	t.Helper()
	g := &testGate{t: t, id: id, topics: topics, have: -1,
		central: make(chan received, 100), changes: make(chan received, 20000), acks: make(chan received, 1000),
		snapshots: make(chan received, 1000), cmds: make(chan received, 100)}
	o := mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID(id + "-" + strings.ToLower(rand.Text()[:6])).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(wait).SetProtocolVersion(4).
		SetCustomOpenConnectionFn(func(uri *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
			c, err := net.DialTimeout("tcp", uri.Host, wait)
			g.mu.Lock()
			g.conn = c
			g.mu.Unlock()
			return c, err
		})
	for _, opt := range opts {
		opt(o)
	}
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("gate %s: connect: %v", id, tok.Error())
	}
	g.c = c
	t.Cleanup(func() { c.Disconnect(0) })
	handler := func(_ mqtt.Client, m mqtt.Message) {
		r := received{topic: m.Topic(), payload: m.Payload(), retained: m.Retained(), at: time.Now()}
		var ch chan received
		switch m.Topic() {
		case topics.CentralStatus():
			ch = g.central
		case topics.Changes():
			ch = g.changes
		case topics.Ack(id):
			ch = g.acks
		case topics.Snapshot(id):
			ch = g.snapshots
		case topics.Cmd(id):
			ch = g.cmds
		default:
			return
		}
		select {
		case ch <- r:
		default:
			panic("test gate " + id + ": channel full for " + m.Topic())
		}
	}
	tok := c.SubscribeMultiple(map[string]byte{topics.CentralAll(): 1, topics.GateInbox(id): 1}, handler)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("gate %s: subscribe: %v", id, tok.Error())
	}
	return g
}

// kill cuts the gate's socket without a DISCONNECT, as a crash or a pulled
// cable does, so the broker publishes its will.
func (g *testGate) kill() {
	g.t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.conn.Close(); err != nil {
		g.t.Fatal(err)
	}
}

func (g *testGate) publish(topic string, payload []byte, retained bool) {
	g.t.Helper()
	tok := g.c.Publish(topic, 1, retained, payload)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		g.t.Fatalf("gate %s: publish on %s: %v", g.id, topic, tok.Error())
	}
}

func next(t *testing.T, ch chan received, what string) received {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(wait):
		t.Fatalf("timed out after %s waiting for %s", wait, what)
	}
	panic("unreachable")
}

// untilChanges reads batches until pred holds, checking the version line
// on the way: every batch and heartbeat starts where the previous one
// ended, so a gate holding the line applies every one of them.
func (g *testGate) untilChanges(what string, pred func(c syncmsg.Changes) bool) syncmsg.Changes {
	g.t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case m := <-g.changes:
			c, err := syncmsg.DecodeChanges(m.payload)
			if err != nil {
				g.t.Fatalf("gate %s: invalid batch %s: %v", g.id, m.payload, err)
			}
			if m.retained {
				g.t.Errorf("a batch was retained: %s", m.payload)
			}
			if g.have >= 0 && c.From != g.have {
				g.t.Errorf("version line broken: the gate holds %d and got (%d, %d]", g.have, c.From, c.To)
			}
			g.have = c.To
			if pred(c) {
				return c
			}
		case <-deadline:
			g.t.Fatalf("timed out after %s waiting for %s (holding %d)", wait, what, g.have)
		}
	}
}

func hasEntry(c syncmsg.Changes, id string, state syncmsg.State) bool {
	return slices.ContainsFunc(c.Entries, func(ve syncmsg.VersionedEntry) bool {
		return ve.Entry.ID == id && ve.Entry.State == state
	})
}

// requestSnapshot sends a sync request and assembles the answer.
func (g *testGate) requestSnapshot(reason string) (entries []syncmsg.Entry, version int64, bytes, parts int, took time.Duration) {
	g.t.Helper()
	p, err := syncmsg.EncodeSyncRequest(syncmsg.SyncRequest{ID: "req-" + strings.ToLower(rand.Text()[:8]), Have: max(g.have, 0), Reason: reason})
	if err != nil {
		g.t.Fatal(err)
	}
	start := time.Now()
	g.publish(g.topics.Sync(g.id), p, false)
	var a syncmsg.Assembler
	for {
		m := next(g.t, g.snapshots, "a snapshot part")
		part, err := syncmsg.DecodeSnapshotPart(m.payload)
		if err != nil {
			g.t.Fatalf("invalid snapshot part: %v", err)
		}
		bytes += len(m.payload)
		parts++
		entries, version, done, err := a.Add(part)
		if err != nil {
			g.t.Fatalf("assembling the snapshot: %v", err)
		}
		if done {
			return entries, version, bytes, parts, time.Since(start)
		}
	}
}

func (g *testGate) sendEvents(events ...syncmsg.Event) []byte {
	g.t.Helper()
	p, err := syncmsg.EncodeEvents(syncmsg.Events{Events: events})
	if err != nil {
		g.t.Fatal(err)
	}
	g.publish(g.topics.Events(g.id), p, false)
	return p
}

func (g *testGate) nextAck() []string {
	g.t.Helper()
	m := next(g.t, g.acks, "an ack")
	a, err := syncmsg.DecodeAck(m.payload)
	if err != nil {
		g.t.Fatal(err)
	}
	return a.EventIDs
}

// answerCommands replies to every command with result(cmd) until the test
// ends, and hands each command to seen.
func (g *testGate) answerCommands(result func(syncmsg.Command) syncmsg.Result, seen chan<- syncmsg.Command) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	g.t.Cleanup(func() { close(done); wg.Wait() })
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case m := <-g.cmds:
				cmd, err := syncmsg.DecodeCommand(m.payload)
				if err != nil {
					g.t.Errorf("invalid command: %v", err)
					continue
				}
				if m.retained {
					g.t.Errorf("a command was retained: %s", m.payload)
				}
				if seen != nil {
					seen <- cmd
				}
				p, err := syncmsg.EncodeResult(result(cmd))
				if err != nil {
					g.t.Errorf("encoding a result: %v", err)
					continue
				}
				g.c.Publish(g.topics.Result(g.id), 1, false, p)
			}
		}
	})
}

func status(gate string, online bool, session int64, cacheVersion int64) []byte {
	s := syncmsg.GateStatus{Online: online, Session: session, GateID: gate}
	if online {
		s.Role, s.Software, s.CacheVersion, s.Outbox, s.Barrier, s.ClockTrusted, s.At =
			syncmsg.RoleEntry, "test-1", cacheVersion, 2, "closed", true, time.Now().UTC()
	}
	p, err := syncmsg.EncodeGateStatus(s)
	if err != nil {
		panic(err)
	}
	return p
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}
