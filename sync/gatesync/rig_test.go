package gatesync

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/parkgate/parkgate/gate/authz"
	"github.com/parkgate/parkgate/gate/lane"
	"github.com/parkgate/parkgate/gate/localdb"
	"github.com/parkgate/parkgate/sync/syncmsg"
)

// deadline bounds every wait in these tests: generous, since a loaded CI
// machine under -race is slow, and a passing test never waits it out.
const deadline = 20 * time.Second

const gateID = "g1"

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for %s", deadline, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func uniqueSite(t *testing.T) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "t" + hex.EncodeToString(b[:])
}

// testLog sends a component's log to the test's log.
func testLog(t *testing.T, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// ---- broker ----

// mochiBroker is an in-process broker that lets everyone in, which a test
// can stop and start again on the same port.
type mochiBroker struct {
	t    *testing.T
	addr string
	mu   sync.Mutex
	srv  *mqtt.Server
}

// allowAll admits every client to everything (mochi's own auth.AllowHook
// would pull a YAML module into go.mod for nothing).
type allowAll struct{ mqtt.HookBase }

func (allowAll) ID() string { return "allow-all" }

func (allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (allowAll) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

func startMochi(t *testing.T) *mochiBroker {
	t.Helper()
	b := &mochiBroker{t: t, addr: "127.0.0.1:0"}
	b.start()
	t.Cleanup(b.stop)
	return b
}

func (b *mochiBroker) url() string { return "tcp://" + b.addr }

func (b *mochiBroker) start() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv != nil {
		b.t.Fatal("broker already running")
	}
	srv := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(new(allowAll), nil); err != nil {
		b.t.Fatal(err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "tcp", Address: b.addr})
	// The port of a stopped broker may take a moment to be free again.
	end := time.Now().Add(deadline)
	for {
		err := srv.AddListener(tcp)
		if err == nil {
			break
		}
		if time.Now().After(end) {
			b.t.Fatalf("broker listen on %s: %v", b.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
		tcp = listeners.NewTCP(listeners.Config{ID: "tcp", Address: b.addr})
	}
	if err := srv.Serve(); err != nil {
		b.t.Fatal(err)
	}
	b.addr = tcp.Address()
	b.srv = srv
}

func (b *mochiBroker) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv != nil {
		_ = b.srv.Close()
		b.srv = nil
	}
}

// ---- proxy ----

// proxy forwards TCP connections to a broker, so that a test can cut a
// gate's connection (both ends see it close: a crash or a pulled cable
// the broker notices) or freeze it (nothing passes, nothing closes: a
// dead link only keepalive finds).
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	pairs  []*pair
	wg     sync.WaitGroup
}

type pair struct {
	client, server net.Conn
	frozen         atomic.Bool
	once           sync.Once
}

func (p *pair) close() {
	p.once.Do(func() {
		p.client.Close()
		p.server.Close()
	})
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) url() string { return "tcp://" + p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		pr := &pair{client: c, server: s}
		p.mu.Lock()
		p.pairs = append(p.pairs, pr)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pump(pr, s, c)
		go p.pump(pr, c, s)
	}
}

func (p *proxy) pump(pr *pair, dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !pr.frozen.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			if !pr.frozen.Load() {
				pr.close()
			}
			return
		}
	}
}

// cut closes every current connection.
func (p *proxy) cut() {
	p.mu.Lock()
	pairs := p.pairs
	p.pairs = nil
	p.mu.Unlock()
	for _, pr := range pairs {
		pr.close()
	}
}

// freeze stops every current connection without closing it; new
// connections pass.
func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pr := range p.pairs {
		pr.frozen.Store(true)
	}
}

// ---- lane ----

// fakeLane answers Status from the database and executes remote opens as
// the real lane must: the decision recorded in the outbox, then granted.
type fakeLane struct {
	db      *localdb.DB
	trusted atomic.Bool
	mu      sync.Mutex
	handled []lane.Read
}

func (l *fakeLane) Status(ctx context.Context) (lane.Status, error) {
	v, err := l.db.Version(ctx)
	if err != nil {
		return lane.Status{}, err
	}
	d, err := l.db.Depth(ctx)
	if err != nil {
		return lane.Status{}, err
	}
	return lane.Status{GateID: gateID, Role: localdb.RoleEntry, Barrier: "closed", CacheVersion: v, Outbox: d,
		ClockTrusted: l.trusted.Load()}, nil
}

func (l *fakeLane) Handle(ctx context.Context, r lane.Read) (lane.Result, error) {
	l.mu.Lock()
	l.handled = append(l.handled, r)
	l.mu.Unlock()
	d := authz.Decision{Granted: true, Reason: "remote_open", Role: localdb.RoleEntry, Source: r.Source,
		Time: time.Now(), ClockTrusted: true}
	ev, err := l.db.Record(ctx, localdb.Event{GateID: gateID, Role: localdb.RoleEntry, Time: d.Time, Source: r.Source,
		Granted: true, Reason: string(d.Reason), ClockTrusted: true, Detail: "command " + r.Value}, localdb.NoPresenceChange)
	if err != nil {
		return lane.Result{Decision: d}, err
	}
	return lane.Result{Decision: d, EventID: ev.EventID, Seq: ev.Seq}, nil
}

func (l *fakeLane) reads() []lane.Read {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]lane.Read(nil), l.handled...)
}

// ---- gate ----

// gateRig is a gate: its database, lane and sync, served until the test
// ends (or stop).
type gateRig struct {
	t        *testing.T
	db       *localdb.DB
	lane     *fakeLane
	sync     *Sync
	sessions string // the session file
	attempts *countingSessions
	cancel   context.CancelFunc
	done     chan error
	stopped  bool
}

// testConfig is fast enough for tests; mutate adjusts it.
func testConfig(site, url string) Config {
	return Config{Site: site, GateID: gateID, Role: syncmsg.RoleEntry, URL: url,
		Keepalive: 15 * time.Second, RetryMax: time.Second, ResendAfter: 500 * time.Millisecond,
		HeartbeatTimeout: 2 * time.Second, SnapshotTimeout: 10 * time.Second,
		PollInterval: 20 * time.Millisecond, BirthInterval: 100 * time.Millisecond, Software: "test"}
}

func startGate(t *testing.T, cfg Config) *gateRig {
	t.Helper()
	dir := t.TempDir()
	db, err := localdb.Open(context.Background(), filepath.Join(dir, "gate.db"))
	if err != nil {
		t.Fatal(err)
	}
	ln := &fakeLane{db: db}
	ln.trusted.Store(true)
	g := &gateRig{t: t, db: db, lane: ln, sessions: filepath.Join(dir, "gate.db.session")}
	g.attempts = &countingSessions{SessionCounter: FileSessions(g.sessions)}
	g.sync = New(cfg, Deps{DB: db, Lane: ln, Sessions: g.attempts, Log: testLog(t, slog.LevelInfo)})
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel, g.done = cancel, make(chan error, 1)
	go func() { g.done <- g.sync.Serve(ctx) }()
	t.Cleanup(func() {
		g.stop()
		db.Close()
	})
	return g
}

// countingSessions counts connection attempts (each takes a session).
type countingSessions struct {
	SessionCounter
	n atomic.Int64
}

func (c *countingSessions) NextSession(ctx context.Context, atLeast int64) (int64, error) {
	c.n.Add(1)
	return c.SessionCounter.NextSession(ctx, atLeast)
}

// stop ends Serve and checks that it returned, and returned nil.
func (g *gateRig) stop() {
	g.t.Helper()
	if g.stopped {
		return
	}
	g.stopped = true
	g.cancel()
	select {
	case err := <-g.done:
		if err != nil {
			g.t.Errorf("Serve: %v", err)
		}
	case <-time.After(deadline):
		g.t.Error("Serve did not return after cancel")
	}
}

func (g *gateRig) record(n int) []localdb.Event {
	g.t.Helper()
	out := make([]localdb.Event, n)
	for i := range out {
		ev, err := g.db.Record(context.Background(), localdb.Event{GateID: gateID, Role: localdb.RoleEntry,
			Time: time.Now(), Source: localdb.SourceQR, Granted: true, Reason: "ticket", ClockTrusted: true,
			Detail: fmt.Sprintf("test event %d", i)}, localdb.NoPresenceChange)
		if err != nil {
			g.t.Fatal(err)
		}
		out[i] = ev
	}
	g.sync.Kick()
	return out
}

func (g *gateRig) version() int64 {
	g.t.Helper()
	v, err := g.db.Version(context.Background())
	if err != nil {
		g.t.Fatal(err)
	}
	return v
}

func (g *gateRig) depth() int {
	g.t.Helper()
	d, err := g.db.Depth(context.Background())
	if err != nil {
		g.t.Fatal(err)
	}
	return d
}

func (g *gateRig) lookup(id string) (localdb.Entry, bool) {
	g.t.Helper()
	e, ok, err := g.db.Lookup(context.Background(), id)
	if err != nil {
		g.t.Fatal(err)
	}
	return e, ok
}

// ---- central ----

// received is one message central got from a gate.
type received struct {
	leaf     string
	payload  []byte
	retained bool
}

// fakeCentral plays centrald with a plain paho client: it records what
// gates publish and publishes what centrald would. With autoAck it
// acknowledges every event it receives, as centrald does once stored.
type fakeCentral struct {
	t       *testing.T
	topics  syncmsg.Topics
	cl      paho.Client
	autoAck atomic.Bool
	acks    sync.WaitGroup

	mu   sync.Mutex
	msgs []received
}

func startCentral(t *testing.T, url, site, user, pass string) *fakeCentral {
	t.Helper()
	topics, err := syncmsg.NewTopics(site)
	if err != nil {
		t.Fatal(err)
	}
	c := &fakeCentral{t: t, topics: topics}
	subscribed := make(chan struct{}, 1)
	opts := paho.NewClientOptions().AddBroker(url).SetClientID(user + "-" + site).
		SetUsername(user).SetPassword(pass).SetProtocolVersion(4).SetCleanSession(true).
		SetAutoReconnect(true).SetMaxReconnectInterval(100 * time.Millisecond).
		SetConnectRetry(true).SetConnectRetryInterval(100 * time.Millisecond).
		SetOnConnectHandler(func(cl paho.Client) {
			// A clean session forgets subscriptions: subscribe at every
			// connection (the broker restart test depends on it).
			tok := cl.Subscribe("parking/"+site+"/gates/+/+", 1, c.onMessage)
			if tok.WaitTimeout(deadline) && tok.Error() == nil {
				select {
				case subscribed <- struct{}{}:
				default:
				}
			}
		})
	c.cl = paho.NewClient(opts)
	if tok := c.cl.Connect(); !tok.WaitTimeout(deadline) || tok.Error() != nil {
		t.Fatalf("central connect: %v", tok.Error())
	}
	select {
	case <-subscribed:
	case <-time.After(deadline):
		t.Fatal("central did not subscribe")
	}
	t.Cleanup(func() {
		c.cl.Disconnect(100)
		c.acks.Wait()
	})
	return c
}

func (c *fakeCentral) onMessage(_ paho.Client, m paho.Message) {
	_, leaf, ok := c.topics.ParseGateTopic(m.Topic())
	if !ok {
		return
	}
	c.mu.Lock()
	c.msgs = append(c.msgs, received{leaf: leaf, payload: m.Payload(), retained: m.Retained()})
	c.mu.Unlock()
	if leaf == syncmsg.LeafEvents && c.autoAck.Load() {
		evs, err := syncmsg.DecodeEvents(m.Payload())
		if err != nil {
			return
		}
		ids := make([]string, len(evs.Events))
		for i, ev := range evs.Events {
			ids[i] = ev.EventID
		}
		// Not from paho's callback, which must not block on a publish.
		c.acks.Add(1)
		go func() {
			defer c.acks.Done()
			c.publishQuiet(c.topics.Ack(gateID), syncmsg.Ack{EventIDs: ids})
		}()
	}
}

func (c *fakeCentral) of(leaf string) []received {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []received
	for _, m := range c.msgs {
		if m.leaf == leaf {
			out = append(out, m)
		}
	}
	return out
}

func (c *fakeCentral) requests() []syncmsg.SyncRequest {
	var out []syncmsg.SyncRequest
	for _, m := range c.of(syncmsg.LeafSync) {
		r, err := syncmsg.DecodeSyncRequest(m.payload)
		if err != nil {
			c.t.Errorf("gate sent a bad sync request: %v", err)
			continue
		}
		out = append(out, r)
	}
	return out
}

func (c *fakeCentral) requestsFor(reason string) []syncmsg.SyncRequest {
	var out []syncmsg.SyncRequest
	for _, r := range c.requests() {
		if r.Reason == reason {
			out = append(out, r)
		}
	}
	return out
}

func (c *fakeCentral) statuses() []syncmsg.GateStatus {
	var out []syncmsg.GateStatus
	for _, m := range c.of(syncmsg.LeafStatus) {
		if len(m.payload) == 0 {
			continue // a cleared retained message
		}
		s, err := syncmsg.DecodeGateStatus(m.payload)
		if err != nil {
			c.t.Errorf("gate sent a bad status: %v", err)
			continue
		}
		out = append(out, s)
	}
	return out
}

// births returns the births of session (any when 0).
func (c *fakeCentral) births(session int64) []syncmsg.GateStatus {
	var out []syncmsg.GateStatus
	for _, s := range c.statuses() {
		if s.Online && (session == 0 || s.Session == session) {
			out = append(out, s)
		}
	}
	return out
}

// lastSession is the session of the latest birth (0 if none), read from
// one snapshot of the births: more may arrive while the caller looks.
func (c *fakeCentral) lastSession() int64 {
	bs := c.births(0)
	if len(bs) == 0 {
		return 0
	}
	return bs[len(bs)-1].Session
}

func (c *fakeCentral) wills() []syncmsg.GateStatus {
	var out []syncmsg.GateStatus
	for _, s := range c.statuses() {
		if !s.Online {
			out = append(out, s)
		}
	}
	return out
}

// events returns every Events message received, in order.
func (c *fakeCentral) events() [][]syncmsg.Event {
	var out [][]syncmsg.Event
	for _, m := range c.of(syncmsg.LeafEvents) {
		evs, err := syncmsg.DecodeEvents(m.payload)
		if err != nil {
			c.t.Errorf("gate sent bad events: %v", err)
			continue
		}
		out = append(out, evs.Events)
	}
	return out
}

// eventIDs returns the distinct event ids received, in order of first
// arrival.
func (c *fakeCentral) eventIDs() []string {
	seen := map[string]bool{}
	var out []string
	for _, batch := range c.events() {
		for _, ev := range batch {
			if !seen[ev.EventID] {
				seen[ev.EventID] = true
				out = append(out, ev.EventID)
			}
		}
	}
	return out
}

func (c *fakeCentral) results() map[string][]syncmsg.Result {
	out := map[string][]syncmsg.Result{}
	for _, m := range c.of(syncmsg.LeafResult) {
		r, err := syncmsg.DecodeResult(m.payload)
		if err != nil {
			c.t.Errorf("gate sent a bad result: %v", err)
			continue
		}
		out[r.ID] = append(out[r.ID], r)
	}
	return out
}

func encodeAny(m any) ([]byte, error) {
	switch m := m.(type) {
	case syncmsg.Changes:
		return syncmsg.EncodeChanges(m)
	case syncmsg.SnapshotPart:
		return syncmsg.EncodeSnapshotPart(m)
	case syncmsg.Ack:
		return syncmsg.EncodeAck(m)
	case syncmsg.Command:
		return syncmsg.EncodeCommand(m)
	case syncmsg.CentralStatus:
		return syncmsg.EncodeCentralStatus(m)
	case []byte:
		return m, nil
	}
	return nil, fmt.Errorf("cannot encode %T", m)
}

// publish sends m (a syncmsg message or raw bytes) at QoS 1 and waits for
// the broker's PUBACK.
func (c *fakeCentral) publish(topic string, m any) {
	c.t.Helper()
	if err := c.publishErr(topic, false, m); err != nil {
		c.t.Fatal(err)
	}
}

func (c *fakeCentral) publishQuiet(topic string, m any) { _ = c.publishErr(topic, false, m) }

func (c *fakeCentral) publishErr(topic string, retained bool, m any) error {
	b, err := encodeAny(m)
	if err != nil {
		return err
	}
	tok := c.cl.Publish(topic, 1, retained, b)
	if !tok.WaitTimeout(deadline) {
		return errors.New("publish: no PUBACK")
	}
	return tok.Error()
}

func (c *fakeCentral) changes(from, to int64, entries ...syncmsg.VersionedEntry) {
	c.t.Helper()
	c.publish(c.topics.Changes(), syncmsg.Changes{From: from, To: to, Entries: entries})
}

func (c *fakeCentral) heartbeat(v int64) {
	c.t.Helper()
	c.publish(c.topics.Changes(), syncmsg.Heartbeat(v))
}

// snapshot sends a snapshot in parts of partSize gzip bytes (0: one part);
// only the parts listed when parts is given.
func (c *fakeCentral) snapshot(id string, version int64, entries []syncmsg.Entry, partSize int, parts ...int) int {
	c.t.Helper()
	ps, err := syncmsg.SplitSnapshot(id, version, entries, partSize)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, p := range ps {
		if len(parts) > 0 && !contains(parts, p.Part) {
			continue
		}
		c.publish(c.topics.Snapshot(gateID), p)
	}
	return len(ps)
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func (c *fakeCentral) command(cmd syncmsg.Command) {
	c.t.Helper()
	c.publish(c.topics.Cmd(gateID), cmd)
}

// ping sends a command the gate does not know and waits for its answer.
// The gate handles messages in the order it receives them, so once the
// answer is here, everything central sent before it has been handled:
// the tests' way to assert that something did not happen, without sleep.
func (c *fakeCentral) ping(id string) {
	c.t.Helper()
	raw := fmt.Sprintf(`{"v":1,"id":%q,"type":"ping","expires":%q}`, id, time.Now().Add(time.Minute).Format(time.RFC3339Nano))
	c.publish(c.topics.Cmd(gateID), []byte(raw))
	eventually(c.t, "the answer to "+id, func() bool { return len(c.results()[id]) > 0 })
	if r := c.results()[id][0]; r.OK || r.Error != syncmsg.RefusedUnknownType {
		c.t.Fatalf("ping %s answered %+v, want unknown_type", id, r)
	}
}

// clearRetained removes the retained status of the gate, for a shared
// broker that persists it.
func (c *fakeCentral) clearRetained() {
	_ = c.publishErr(c.topics.GateStatus(gateID), true, []byte{})
}

// entry is a cache entry for tests.
func entry(id, spot string, state syncmsg.State) syncmsg.Entry {
	from := time.Date(2030, 1, 2, 8, 0, 0, 0, time.UTC)
	return syncmsg.Entry{ID: id, SpotID: spot, From: from, Until: from.Add(2 * time.Hour), CarID: "B-XY " + spot, State: state}
}
