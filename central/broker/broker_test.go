package broker

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	pahopackets "github.com/eclipse/paho.mqtt.golang/packets"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/parkgate/parkgate/internal/syncbuf"
)

const (
	testSite        = "lab"
	centralUser     = "centrald"
	centralPassword = "central-secret"
	wait            = 10 * time.Second
)

// passwords of the provisioned test gates.
var passwords = map[string]string{"gate-a": "secret-a", "gate-b": "secret-b"}

// testCreds hashes the gates' passwords once: argon2id is slow on purpose.
var testCreds = sync.OnceValue(func() StaticCredentials {
	c := StaticCredentials{}
	for g, pw := range passwords {
		h, err := HashPassword(pw)
		if err != nil {
			panic(err)
		}
		c[g] = h
	}
	return c
})

func topic(rest string) string { return "parking/" + testSite + "/" + rest }

// startBroker serves a broker on a free loopback port until the test ends.
func startBroker(t *testing.T, mutate func(*Config)) *Broker {
	t.Helper()
	return startBrokerWith(t, testCreds(), mutate)
}

// startBrokerWith is startBroker with the given gate credentials.
func startBrokerWith(t *testing.T, creds Credentials, mutate func(*Config)) *Broker {
	t.Helper()
	cfg := Config{Site: testSite, Listen: "127.0.0.1:0", CentralUser: centralUser, CentralPassword: centralPassword}
	if mutate != nil {
		mutate(&cfg)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	b, err := New(cfg, creds, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(wait):
			t.Error("Serve did not return after cancel")
		}
	})
	return b
}

// testWriter sends the broker's log to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// clientOpts are a paho client's options as gated and centrald would use
// them (MQTT 3.1.1, clean session), without automatic reconnection so
// that a refusal or disconnection stays visible.
func clientOpts(addr, clientID, user, pass string) *paho.ClientOptions {
	return paho.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(clientID).
		SetUsername(user).
		SetPassword(pass).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(wait).
		SetKeepAlive(30 * time.Second)
}

func dial(t *testing.T, o *paho.ClientOptions) (paho.Client, error) {
	t.Helper()
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(wait) {
		return nil, errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

func mustDial(t *testing.T, o *paho.ClientOptions) paho.Client {
	t.Helper()
	c, err := dial(t, o)
	if err != nil {
		t.Fatalf("connect as %q: %v", o.Username, err)
	}
	return c
}

func gate(addr, id string) *paho.ClientOptions {
	return clientOpts(addr, id, id, passwords[id])
}

func central(addr, clientID string) *paho.ClientOptions {
	return clientOpts(addr, clientID, centralUser, centralPassword)
}

// inbox collects the messages of a subscription.
type inbox chan paho.Message

func (in inbox) handle(_ paho.Client, m paho.Message) { in <- m }

func subscribe(t *testing.T, c paho.Client, filter string) inbox {
	t.Helper()
	in := make(inbox, 1000)
	tok := c.Subscribe(filter, 1, in.handle)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	if code := subCode(tok); code != 1 {
		t.Fatalf("subscribe %s: granted %#x, want QoS 1", filter, code)
	}
	return in
}

func publish(t *testing.T, c paho.Client, topic string, qos byte, retained bool, payload string) {
	t.Helper()
	tok := c.Publish(topic, qos, retained, payload)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func (in inbox) next(t *testing.T) paho.Message {
	t.Helper()
	select {
	case m := <-in:
		return m
	case <-time.After(wait):
		t.Fatal("no message")
		return nil
	}
}

// none checks that nothing arrives for a while.
func (in inbox) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case m := <-in:
		t.Fatalf("unexpected message on %s: %q", m.Topic(), m.Payload())
	case <-time.After(d):
	}
}

func TestAuthentication(t *testing.T) {
	b := startBroker(t, nil)
	addr := b.Addr()

	mustDial(t, gate(addr, "gate-a"))
	mustDial(t, central(addr, "centrald-test"))

	for name, o := range map[string]*paho.ClientOptions{
		"bad password":            clientOpts(addr, "gate-a", "gate-a", "secret-b"),
		"empty password":          clientOpts(addr, "gate-a", "gate-a", ""),
		"unknown gate":            clientOpts(addr, "gate-x", "gate-x", "secret-a"),
		"anonymous":               clientOpts(addr, "anon", "", ""),
		"central bad password":    clientOpts(addr, "c2", centralUser, "nope"),
		"gate with other id":      clientOpts(addr, "gate-b", "gate-a", "secret-a"), // would take gate-b's session over
		"not a gate id":           clientOpts(addr, "Gate/A", "Gate/A", "secret-a"),
		"will on other gate":      gate(addr, "gate-a").SetWill(topic("gates/gate-b/status"), `{"online":false}`, 1, true),
		"will on own events":      gate(addr, "gate-a").SetWill(topic("gates/gate-a/events"), `{}`, 1, false),
		"central retained will x": central(addr, "c3").SetWill(topic("central/changes"), `{}`, 1, true),
	} {
		t.Run(name, func(t *testing.T) {
			if c, err := dial(t, o); err == nil {
				c.Disconnect(0)
				t.Fatal("connection accepted")
			}
		})
	}
}

func TestAnonymousOnlyWhenAllowed(t *testing.T) {
	b := startBroker(t, func(c *Config) { c.AllowAnonymous = true })
	addr := b.Addr()
	c := mustDial(t, central(addr, "centrald-test"))
	events := subscribe(t, c, topic("gates/+/events"))

	anon := mustDial(t, clientOpts(addr, "sim-gate", "", ""))
	publish(t, anon, topic("gates/sim/events"), 1, false, "e1")
	if m := events.next(t); string(m.Payload()) != "e1" {
		t.Fatalf("got %q", m.Payload())
	}
	// A username is still checked: no fallback to anonymous rights.
	if c, err := dial(t, clientOpts(addr, "gate-a", "gate-a", "wrong")); err == nil {
		c.Disconnect(0)
		t.Fatal("bad password accepted with anonymous access on")
	}
}

func TestGateEventsReachCentral(t *testing.T) {
	b := startBroker(t, nil)
	c := mustDial(t, central(b.Addr(), "centrald-test"))
	events := subscribe(t, c, topic("gates/+/events"))
	a := mustDial(t, gate(b.Addr(), "gate-a"))

	publish(t, a, topic("gates/gate-a/events"), 1, false, `{"v":1,"events":[]}`)
	m := events.next(t)
	if m.Topic() != topic("gates/gate-a/events") || string(m.Payload()) != `{"v":1,"events":[]}` {
		t.Fatalf("got %s %q", m.Topic(), m.Payload())
	}
}

func TestGateCannotPublishUnderAnotherGate(t *testing.T) {
	b := startBroker(t, nil)
	c := mustDial(t, central(b.Addr(), "centrald-test"))
	all := subscribe(t, c, topic("#"))

	var lost atomic.Bool
	a := mustDial(t, gate(b.Addr(), "gate-a").SetConnectionLostHandler(func(paho.Client, error) { lost.Store(true) }))

	// QoS 0: dropped silently. The gate's own message, sent after it on
	// the same connection, proves the broker has processed the first.
	publish(t, a, topic("gates/gate-b/events"), 0, false, "forged")
	publish(t, a, topic("central/changes"), 0, false, "forged")
	publish(t, a, topic("gates/gate-a/in/cmd"), 0, false, "forged")
	publish(t, a, topic("gates/gate-a/events"), 0, false, "own")
	if m := all.next(t); string(m.Payload()) != "own" || m.Topic() != topic("gates/gate-a/events") {
		t.Fatalf("central got %s %q, want gate-a's own event", m.Topic(), m.Payload())
	}

	// QoS 1 (MQTT 3.1.1): not delivered, and the gate is disconnected.
	a.Publish(topic("gates/gate-b/status"), 1, true, "forged").WaitTimeout(2 * time.Second)
	deadline := time.Now().Add(wait)
	for !lost.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !lost.Load() {
		t.Error("gate-a still connected after a QoS 1 publish to gate-b's status")
	}
	all.none(t, 300*time.Millisecond)

	// Nothing was retained on gate-b's status either.
	c2 := mustDial(t, central(b.Addr(), "centrald-test-2"))
	subscribe(t, c2, topic("gates/gate-b/status")).none(t, 300*time.Millisecond)
}

func TestGateCannotSubscribeToAnotherGate(t *testing.T) {
	b := startBroker(t, nil)
	c := mustDial(t, central(b.Addr(), "centrald-test"))
	a := mustDial(t, gate(b.Addr(), "gate-a"))

	// paho routes every message to all handlers whose filter matches it,
	// whatever the SUBACK said, so the refused filters share one recorder
	// and the test looks for gate-b's message there.
	var mu sync.Mutex
	var seen []string
	record := func(_ paho.Client, m paho.Message) {
		mu.Lock()
		seen = append(seen, m.Topic()+" "+string(m.Payload()))
		mu.Unlock()
	}
	forbidden := []string{
		topic("gates/gate-b/in/#"),
		topic("gates/gate-b/in/cmd"),
		topic("gates/+/in/#"),
		topic("gates/#"),
		topic("#"),
		"parking/#",
		"#",
		"$SYS/#",
		"$share/g/" + topic("central/#"),
	}
	for _, f := range forbidden {
		tok := a.Subscribe(f, 1, record)
		if !tok.WaitTimeout(wait) {
			t.Fatalf("subscribe %s timed out", f)
		}
		if code := subCode(tok); code != 0x80 {
			t.Errorf("gate-a subscribe %s: granted %#x, want failure 0x80", f, code)
		}
	}
	own := subscribe(t, a, topic("gates/gate-a/in/#"))
	changes := subscribe(t, a, topic("central/#"))

	publish(t, c, topic("gates/gate-b/in/cmd"), 1, false, "for b")
	publish(t, c, topic("gates/gate-a/in/cmd"), 1, false, "for a")
	publish(t, c, topic("central/changes"), 1, false, "changes")
	if m := own.next(t); string(m.Payload()) != "for a" {
		t.Fatalf("gate-a got %q", m.Payload())
	}
	if m := changes.next(t); string(m.Payload()) != "changes" {
		t.Fatalf("gate-a got %q", m.Payload())
	}
	own.none(t, 300*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for _, m := range seen {
		if strings.Contains(m, "gate-b") {
			t.Errorf("gate-a received gate-b's message: %s", m)
		}
	}
}

// subCode is the SUBACK code of a one-filter subscription (paho keys the
// result by the filter without its $share/group/ prefix).
func subCode(tok paho.Token) byte {
	for _, code := range tok.(*paho.SubscribeToken).Result() {
		return code
	}
	return 0xff
}

func TestRetainedStatusAndWill(t *testing.T) {
	b := startBroker(t, nil)
	addr := b.Addr()

	// gate-a's connection is opened here, so the test can cut it without
	// a DISCONNECT, as a crash or a pulled cable would.
	raw := make(chan net.Conn, 1)
	o := gate(addr, "gate-a").
		SetWill(topic("gates/gate-a/status"), `{"v":1,"online":false,"session":1}`, 1, true).
		SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			c, err := net.Dial("tcp", u.Host)
			if err == nil {
				raw <- c
			}
			return c, err
		})
	a := mustDial(t, o)
	// mochi acknowledges a publish before it hands it to subscribers: a
	// subscriber present from the start shows when the event has gone
	// through, so the later one below can only get it as retained.
	witness := subscribe(t, mustDial(t, central(addr, "centrald-witness")), topic("gates/+/events"))
	publish(t, a, topic("gates/gate-a/status"), 1, true, `{"v":1,"online":true,"session":1}`)
	publish(t, a, topic("gates/gate-a/events"), 1, true, `retained event?`)
	witness.next(t)

	// A subscriber arriving later gets the birth, retained; and no event.
	c := mustDial(t, central(addr, "centrald-test"))
	status := subscribe(t, c, topic("gates/+/status"))
	m := status.next(t)
	if !m.Retained() || string(m.Payload()) != `{"v":1,"online":true,"session":1}` {
		t.Fatalf("got retained=%v %q", m.Retained(), m.Payload())
	}
	events := subscribe(t, c, topic("gates/+/events"))
	select {
	case m := <-events:
		t.Fatalf("later subscriber got %q (retained=%v)", m.Payload(), m.Retained())
	case <-time.After(300 * time.Millisecond):
	}

	if err := (<-raw).Close(); err != nil {
		t.Fatal(err)
	}
	m = status.next(t)
	if string(m.Payload()) != `{"v":1,"online":false,"session":1}` {
		t.Fatalf("will: got %q", m.Payload())
	}
	// ... and the will replaced the retained birth.
	c2 := mustDial(t, central(addr, "centrald-test-2"))
	if m := subscribe(t, c2, topic("gates/gate-a/status")).next(t); !m.Retained() || string(m.Payload()) != `{"v":1,"online":false,"session":1}` {
		t.Fatalf("retained after will: %v %q", m.Retained(), m.Payload())
	}
}

// TestQoS1BurstPastOldLimit sends more QoS 1 messages to one subscriber
// than mochi's default limit of 8,192 unacknowledged messages per client:
// with it, the messages past 8,192 were dropped without a word. The
// subscriber acknowledges nothing, so every message stays in flight at the
// broker until the last one has arrived.
func TestQoS1BurstPastOldLimit(t *testing.T) {
	const n = 12000
	b := startBroker(t, nil)
	var got atomic.Int64
	all := make(chan struct{})
	sub := mustDial(t, central(b.Addr(), "centrald-test").SetAutoAckDisabled(true))
	tok := sub.Subscribe(topic("gates/gate-a/events"), 1, func(_ paho.Client, m paho.Message) {
		if got.Add(1) == n {
			close(all)
		}
	})
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}

	a := mustDial(t, gate(b.Addr(), "gate-a"))
	pad := strings.Repeat("x", 180) // ~210-byte messages, as measured in issue 5
	toks := make([]paho.Token, n)
	for i := range n {
		toks[i] = a.Publish(topic("gates/gate-a/events"), 1, false, fmt.Sprintf(`{"v":1,"seq":%d,"pad":%q}`, i, pad))
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		t.Fatalf("subscriber got %d of %d messages", got.Load(), n)
	}
}

func TestServeStopsCleanly(t *testing.T) {
	b, err := New(Config{Site: testSite, Listen: "127.0.0.1:0", CentralUser: centralUser, CentralPassword: centralPassword}, testCreds(), nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Serve(ctx) }()

	var lost atomic.Bool
	mustDial(t, gate(addr, "gate-a").SetConnectionLostHandler(func(paho.Client, error) { lost.Store(true) }))
	// A socket that never sends CONNECT must not hold the shutdown up.
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Serve did not return")
	}
	if !lost.Load() {
		time.Sleep(200 * time.Millisecond)
		if !lost.Load() {
			t.Error("client still connected after Serve returned")
		}
	}
	// Serve owns its goroutines: none of the broker's (nor mochi's) is
	// left once it has returned. mochi's housekeeping loop ends on its
	// own just after Close, hence the short wait.
	var left string
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		left = brokerGoroutines()
		if left == "" || time.Now().After(deadline) {
			break
		}
	}
	if left != "" {
		t.Errorf("goroutines left after Serve returned:\n%s", left)
	}
	if err := b.Serve(context.Background()); err == nil {
		t.Error("second Serve succeeded")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port not released: %v", err)
	}
	ln.Close()
}

// brokerGoroutines returns the stacks of goroutines running broker or
// mochi code.
func brokerGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "mochi-mqtt/server") || strings.Contains(g, "central/broker.(*") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

func TestNewReportsErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	ok := Config{Site: testSite, Listen: "127.0.0.1:0", CentralUser: centralUser, CentralPassword: centralPassword}
	tlsCert, tlsKey, _ := selfSigned(t, t.TempDir())
	for name, mutate := range map[string]func(*Config){
		"port in use":  func(c *Config) { c.Listen = busy.Addr().String() },
		"bad site":     func(c *Config) { c.Site = "a/b" },
		"no central":   func(c *Config) { c.CentralPassword = "" },
		"cert, no key": func(c *Config) { c.CertFile = "x.pem" },
		"missing cert": func(c *Config) { c.CertFile, c.KeyFile = "/nonexistent.pem", "/nonexistent.key" },
		"bad listen":   func(c *Config) { c.Listen = "nonsense" },
		"tls, no cert": func(c *Config) { c.TLSListen = "127.0.0.1:0" },
		"tls port busy": func(c *Config) {
			c.TLSListen, c.TLSCertFile, c.TLSKeyFile = busy.Addr().String(), tlsCert, tlsKey
		},
		"another listen": func(c *Config) { c.Listen = "256.0.0.1:1" },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := ok
			mutate(&cfg)
			b, err := New(cfg, testCreds(), nil)
			if err == nil {
				b.Close()
				t.Fatal("New succeeded")
			}
			t.Log(err)
		})
	}
	b, err := New(ok, testCreds(), nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("Close did not release the port: %v", err)
	}
	ln.Close()
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	b := startBroker(t, func(c *Config) { c.CertFile, c.KeyFile = certFile, keyFile })

	overTLS := func(o *paho.ClientOptions) *paho.ClientOptions {
		o.Servers = nil
		return o.AddBroker("ssl://" + b.Addr()).SetTLSConfig(&tls.Config{RootCAs: pool, ServerName: "localhost"})
	}
	c := mustDial(t, overTLS(central(b.Addr(), "centrald-test")))
	events := subscribe(t, c, topic("gates/+/events"))
	a := mustDial(t, overTLS(gate(b.Addr(), "gate-a")))
	publish(t, a, topic("gates/gate-a/events"), 1, false, "over tls")
	if m := events.next(t); string(m.Payload()) != "over tls" {
		t.Fatalf("got %q", m.Payload())
	}

	if c, err := dial(t, gate(b.Addr(), "gate-a").SetConnectTimeout(2*time.Second)); err == nil {
		c.Disconnect(0)
		t.Fatal("plain TCP accepted by a TLS listener")
	}
}

// TestTLSListener: the second listener speaks TLS with the gates while
// the first stays plain TCP for centrald, one broker behind both; a gate
// that trusts another CA cannot connect.
func TestTLSListener(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	b := startBroker(t, func(c *Config) { c.TLSListen, c.TLSCertFile, c.TLSKeyFile = "127.0.0.1:0", certFile, keyFile })
	if b.TLSAddr() == "" || b.TLSAddr() == b.Addr() {
		t.Fatalf("TLSAddr = %q (plain %q)", b.TLSAddr(), b.Addr())
	}
	c := mustDial(t, central(b.Addr(), "centrald-test")) // plain
	events := subscribe(t, c, topic("gates/+/events"))
	overTLS := func(o *paho.ClientOptions, roots *x509.CertPool) *paho.ClientOptions {
		o.Servers = nil
		return o.AddBroker("ssl://" + b.TLSAddr()).SetTLSConfig(&tls.Config{RootCAs: roots}).SetConnectTimeout(2 * time.Second)
	}
	a := mustDial(t, overTLS(gate(b.Addr(), "gate-a"), pool))
	publish(t, a, topic("gates/gate-a/events"), 1, false, "over tls")
	if m := events.next(t); string(m.Payload()) != "over tls" {
		t.Fatalf("got %q", m.Payload())
	}
	_, _, otherPool := selfSigned(t, t.TempDir())
	if c, err := dial(t, overTLS(gate(b.Addr(), "gate-b"), otherPool)); err == nil {
		c.Disconnect(0)
		t.Fatal("a gate trusting another CA connected")
	}
	if c, err := dial(t, gate(b.TLSAddr(), "gate-b").SetConnectTimeout(2*time.Second)); err == nil {
		c.Disconnect(0)
		t.Fatal("plain TCP accepted by the TLS listener")
	}
}

// selfSigned writes a certificate for localhost/127.0.0.1 and its key.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true,
		// self-signed: the certificate is its own CA
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// A gate with the right password but another client id is refused with
// CONNACK 5, as a wrong password is; the operator learns from central's
// log which of the two it was, and which client id to use.
func TestClientIDMismatchHasItsOwnReason(t *testing.T) {
	var logs syncbuf.Buffer
	b, err := New(Config{Site: testSite, Listen: "127.0.0.1:0", CentralUser: centralUser, CentralPassword: centralPassword},
		testCreds(), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	addr := b.Addr()

	for _, c := range []struct{ name, client, password, reason string }{
		{"client id mismatch", "gate-a-test", "secret-a", `reason="client id mismatch`},
		{"bad password", "gate-a", "secret-b", `reason="bad password"`},
	} {
		_, err := dial(t, clientOpts(addr, c.client, "gate-a", c.password))
		if err == nil || !strings.Contains(err.Error(), pahopackets.ErrorRefusedNotAuthorised.Error()) {
			t.Errorf("%s: connect error %v, want CONNACK 5 (%v)", c.name, err, pahopackets.ErrorRefusedNotAuthorised)
		}
		// The broker logs before it sends the CONNACK.
		var line string
		for l := range strings.SplitSeq(logs.String(), "\n") {
			if strings.Contains(l, "client="+c.client+" ") && strings.Contains(l, "refused") {
				line = l
			}
		}
		if !strings.Contains(line, c.reason) {
			t.Errorf("%s: log line %q, want %s", c.name, line, c.reason)
		}
	}
	if l := logs.String(); !strings.Contains(l, "want_client=gate-a") {
		t.Errorf("the mismatch's log does not name the client id to use:\n%s", l)
	}
}

// TestDroppedMessagesAreLogged: mochi drops a message for a client whose
// write queue is full; the broker says so (once a second, with the
// count), since the queue is sized for bursts and a drop means a client
// that does not read.
func TestDroppedMessagesAreLogged(t *testing.T) {
	var buf bytes.Buffer
	h := newHook(newRules("test"), nil, "central", "pw", false, 1, slog.New(slog.NewTextHandler(&buf, nil)))
	cl := &mqtt.Client{ID: "entry-1"}
	for range 3 {
		h.OnPublishDropped(cl, packets.Packet{TopicName: "parking/test/changes"})
	}
	out := buf.String()
	if strings.Count(out, "write queue is full") != 1 || !strings.Contains(out, "client=entry-1") || !strings.Contains(out, "dropped_total=1") {
		t.Fatalf("log: %s", out)
	}
	if h.dropped.Load() != 3 {
		t.Fatalf("counted %d drops, want 3", h.dropped.Load())
	}
	if !h.Provides(mqtt.OnPublishDropped) {
		t.Fatal("the hook does not ask mochi for dropped messages")
	}
}
