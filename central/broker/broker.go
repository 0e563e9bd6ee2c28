// Package broker is centrald's embedded MQTT broker (mqtt.embedded: true,
// the single-node default): mochi-mqtt with parkgate's authentication and
// the ACL of docs/sync.md, so that a gate can publish only under its own
// topics. configs/mosquitto.conf and configs/mosquitto.acl enforce the same
// rules on an external Mosquitto.
//
// Who may connect:
//   - a gate, with username = its gate id, its password (checked against
//     the argon2id hash Credentials returns) and client id = its gate id;
//   - centrald's own client, with Config.CentralUser/CentralPassword;
//   - with Config.AllowAnonymous (labs only), a client without a username,
//     which gets centrald's rights: everything under parking/{site}/.
//     Gates in a lab can then run unprovisioned; the broker logs a warning
//     at start, because anyone who reaches the port can then impersonate
//     any gate and centrald.
//
// What they may do (parking/{site}/ is the prefix):
//   - a gate g publishes only to gates/g/{status,events,sync,result} and
//     subscribes only within gates/g/in/# and central/# (no wildcard that
//     reaches other gates, no '#', $SYS or shared subscriptions); its will
//     must be its own gates/g/status;
//   - centrald (and anonymous clients) publish and subscribe anywhere under
//     the prefix, shared subscriptions ($share/group/...) included;
//   - messages are retained only on status topics (gates/g/status,
//     central/status): the broker drops the retain flag elsewhere, so no
//     command is ever replayed.
//
// A publish that the ACL refuses is not delivered: mochi drops it at QoS 0
// and, for an MQTT 3.1.1 client at QoS 1, also disconnects the client (MQTT
// 5 clients get a PUBACK "not authorized"). A refused subscription gets
// the failure return code (0x80) in its SUBACK.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// Config is the embedded broker's configuration (centrald's mqtt.* keys
// plus what centrald generates).
type Config struct {
	// Site names the topic root parking/{Site}/.
	Site string
	// Listen is the TCP address (mqtt.listen); "127.0.0.1:0" picks a free
	// port, which Addr reports.
	Listen string
	// AllowAnonymous (mqtt.allow_anonymous, labs only) admits clients
	// without a username, with site-wide rights.
	AllowAnonymous bool
	// CertFile and KeyFile (PEM) switch the Listen listener itself to TLS
	// (1.2 or later); both or neither (mqtt.cert_file, mqtt.key_file).
	CertFile, KeyFile string
	// TLSListen, when set, is a second listener, for the gates, with TLS
	// (1.2 or later) from TLSCertFile and TLSKeyFile (mqtt.tls.*), so that
	// Listen can stay plain TCP on loopback for centrald itself.
	TLSListen               string
	TLSCertFile, TLSKeyFile string
	// CentralUser and CentralPassword are centrald's own credentials,
	// generated at each start and kept in memory only. A gate whose id
	// equals CentralUser could never log in, so gate ids must differ from it.
	CentralUser, CentralPassword string
}

// Limits, set deliberately (mochi's defaults of 8,192 in-flight and 8,192
// pending writes per client silently stopped a 10,000-message QoS 1
// resync at 8,192).
const (
	// maxInflight is the number of unacknowledged QoS 1/2 messages the
	// broker keeps per client: the whole 16-bit packet id space, so the
	// limit is MQTT's own and a burst to a slow subscriber is never
	// dropped for lack of room below it. Entries cost memory only when
	// used.
	maxInflight = 65535
	// maxPending is the per-client queue of messages waiting to be
	// written to the socket. mochi allocates it when a connection opens
	// (8 bytes a slot) and the garbage collector scans it at every cycle,
	// so it is most of a connection's cost: at 32,768 slots, 1,000 gates
	// held 256 MiB of queues (centrald ~300 KiB a gate, 540 MiB after a
	// restart); at 4,096, ~155 KiB a gate and 200 MiB; 8,192 costs 32 KiB more. The largest burst
	// to one client is centrald's own at a restart: every gate's retained
	// status plus its birth, 2 a gate, so 8,192 slots hold it for
	// maxConns gates even if centrald read none of it meanwhile (it reads
	// all along); a resync is a few snapshot parts, not a message per
	// reservation. A message dropped on a full queue is logged
	// (OnPublishDropped): a gate resends an event until central acks it
	// and a gate that missed a change resyncs, but a lost birth leaves its
	// gate shown offline until its next one.
	maxPending = 2 * maxConns
	// maxPacket bounds an incoming packet: a snapshot part is 256 KiB of
	// gzip, ~342 KiB as base64 in its JSON, so 1 MiB leaves room for
	// parts up to ~700 KiB while refusing absurd packets.
	maxPacket = 1 << 20
	// maxSessionExpiry (seconds) is how long a persistent session (clean
	// session false) survives its client: long enough for a restart or a
	// network cut, short enough that an abandoned one does not keep
	// queueing forever. Gates use clean sessions and are not affected.
	maxSessionExpiry = 3600
	// sysInterval (seconds) between $SYS updates: no client may read
	// $SYS under our ACL, so only rarely.
	sysInterval = 60
)

// Broker is the embedded MQTT broker. Create it with New, run it with
// Serve.
type Broker struct {
	cfg    Config
	log    *slog.Logger
	server *mqtt.Server
	ln     *listener
	tlsLn  *listener // nil: no TLS listener

	mu      sync.Mutex
	started bool
	closed  bool
}

// New checks cfg, binds the listener (so a port in use is reported here,
// before anything else starts) and prepares the broker. The caller must
// then either Serve it or Close it to release the port.
func New(cfg Config, creds Credentials, log *slog.Logger) (*Broker, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !idPattern.MatchString(cfg.Site) {
		return nil, fmt.Errorf("broker: site %q: use 1-32 lower-case letters, digits, '-' or '_'", cfg.Site)
	}
	if cfg.CentralUser == "" || cfg.CentralPassword == "" {
		return nil, errors.New("broker: centrald's user and password are required")
	}
	if creds == nil {
		return nil, errors.New("broker: no credentials store")
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("broker: TLS needs both a certificate and a key file")
	}
	var tlsConfig, tlsConfig2 *tls.Config
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("broker: TLS: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if cfg.TLSListen != "" {
		if cfg.TLSCertFile == "" || cfg.TLSKeyFile == "" {
			return nil, errors.New("broker: the TLS listener needs a certificate and a key file")
		}
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("broker: TLS: %w", err)
		}
		tlsConfig2 = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	log = log.With("component", "mqtt")

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumInflight = maxInflight
	caps.ReceiveMaximum = maxInflight // QoS 2 messages a client may have unconfirmed towards us
	caps.MaximumClientWritesPending = maxPending
	caps.MaximumPacketSize = maxPacket
	// 0: no expiry imposed by the broker. mochi's default (one day) also
	// deletes retained messages a day after they were published, which
	// would erase the status of a gate that has been offline since.
	// Clients can still set an expiry on their own messages (MQTT 5).
	caps.MaximumMessageExpiryInterval = 0
	caps.MaximumSessionExpiryInterval = maxSessionExpiry
	server := mqtt.New(&mqtt.Options{
		Capabilities:           caps,
		SysTopicResendInterval: sysInterval,
		// mochi logs every start, connection and hook at info; warnings
		// (quotas reached, dropped packets, protocol errors) are what an
		// operator needs from it.
		Logger: slog.New(minLevel{log.Handler(), slog.LevelWarn}),
	})

	hk := newHook(newRules(cfg.Site), creds, cfg.CentralUser, cfg.CentralPassword, cfg.AllowAnonymous,
		min(max(runtime.GOMAXPROCS(0), 2), 8), log)
	if err := server.AddHook(hk, nil); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("broker: listen on %s: %w", cfg.Listen, err)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	l := newListener("parkgate", ln, log)
	if err := server.AddListener(l); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("broker: %w", err)
	}
	b := &Broker{cfg: cfg, log: log, server: server, ln: l}
	if tlsConfig2 != nil {
		ln2, err := net.Listen("tcp", cfg.TLSListen)
		if err != nil {
			l.Close(func(string) {})
			return nil, fmt.Errorf("broker: listen on %s (TLS): %w", cfg.TLSListen, err)
		}
		b.tlsLn = newListener("parkgate-tls", tls.NewListener(ln2, tlsConfig2), log)
		if err := server.AddListener(b.tlsLn); err != nil {
			l.Close(func(string) {})
			b.tlsLn.Close(func(string) {})
			return nil, fmt.Errorf("broker: %w", err)
		}
	}
	return b, nil
}

// listeners are the broker's listeners.
func (b *Broker) listeners() []*listener {
	if b.tlsLn != nil {
		return []*listener{b.ln, b.tlsLn}
	}
	return []*listener{b.ln}
}

// TLSAddr is the TLS listener's address ("" without one).
func (b *Broker) TLSAddr() string {
	if b.tlsLn == nil {
		return ""
	}
	return b.tlsLn.Address()
}

// Addr is the address the broker listens on (with the real port when
// Config.Listen asked for port 0).
func (b *Broker) Addr() string { return b.ln.Address() }

// Serve runs the broker until ctx ends, then disconnects every client,
// waits for all connection goroutines and returns nil. It may be called
// once.
func (b *Broker) Serve(ctx context.Context) error {
	b.mu.Lock()
	if b.started || b.closed {
		b.mu.Unlock()
		return errors.New("broker: Serve called twice or after Close")
	}
	b.started = true
	b.mu.Unlock()

	if b.cfg.AllowAnonymous {
		b.log.Warn("mqtt.allow_anonymous is on: clients without credentials get full access under parking/"+b.cfg.Site+"/; use only in a lab",
			"addr", b.Addr())
	}
	for _, l := range b.listeners() {
		l.serving.Add(1) // mochi starts each accept loop in a goroutine of its own
	}
	if err := b.server.Serve(); err != nil {
		// mochi fails only before it starts the listeners.
		for _, l := range b.listeners() {
			l.serving.Done()
			l.Close(func(string) {})
		}
		return fmt.Errorf("broker: %w", err)
	}
	b.log.Info("mqtt broker listening", "addr", b.Addr(), "tls", b.cfg.CertFile != "", "tls_addr", b.TLSAddr(), "site", b.cfg.Site)
	<-ctx.Done()
	_ = b.server.Close() // closes the listeners, which wait for the connections
	for _, l := range b.listeners() {
		l.serving.Wait()
	}
	b.log.Info("mqtt broker stopped")
	return nil
}

// Close releases the listener of a broker that was never served (for
// a caller whose setup failed between New and Serve). It does nothing
// once Serve has been called: cancelling Serve's context stops it.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started || b.closed {
		return nil
	}
	b.closed = true
	for _, l := range b.listeners() {
		l.Close(func(string) {})
	}
	return nil
}

// minLevel passes on records at or above min only.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.min}
}
