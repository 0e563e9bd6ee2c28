package daemon

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/parkgate/parkgate/central/booking"
	"github.com/parkgate/parkgate/central/broker"
	"github.com/parkgate/parkgate/central/brokercert"
	"github.com/parkgate/parkgate/central/config"
	"github.com/parkgate/parkgate/central/leader"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/internal/service"
	"github.com/parkgate/parkgate/sync/centralsync"
)

// syncParts are the services that talk to the gates: the embedded broker
// (when configured), the relay and, on PostgreSQL, the election of the
// instance that relays.
type syncParts struct {
	services []service.Named
	relay    *centralsync.Relay // nil: no gates (mqtt.url empty, not embedded)
	addr     string             // the embedded broker's address
	tlsAddr  string             // its TLS listener's address ("": none)
	ca       []byte             // the CA (PEM) gates are to trust for tlsAddr (nil: their system roots)
}

// relayPoll is how often the relay reads the change log: a reservation
// reaches the gates within about this long (docs/benchmarks.md).
const relayPoll = 20 * time.Millisecond

// brokerGrace is the longest the embedded broker waits, on shutdown, for
// the relay to say goodbye through it.
const brokerGrace = 3 * time.Second

func startSync(ctx context.Context, cfg config.Config, st store.Store, svc *booking.Service, clk clock.Clock, log *slog.Logger) (syncParts, error) {
	var p syncParts
	var embedded *broker.Broker
	url, user, pass := cfg.MQTT.URL, cfg.MQTT.Username, cfg.MQTT.Password
	if cfg.MQTT.Embedded {
		if cfg.DB.Driver == "postgres" {
			log.Warn("mqtt.embedded with db.driver postgres: every centrald instance runs a broker of its own; " +
				"with more than one instance, point them all at one external broker (mqtt.embedded false, mqtt.url)")
		}
		// The broker starts with this process: no gate is connected to it
		// yet, whatever the gates table says from before a restart.
		if n, err := centralsync.ResetPresence(ctx, st); err != nil {
			return p, fmt.Errorf("resetting the gates' presence: %w", err)
		} else if n > 0 {
			log.Info("gates shown offline until they announce themselves to the new broker", "gates", n)
		}
		var b [24]byte
		if _, err := rand.Read(b[:]); err != nil {
			return p, err
		}
		// centrald's own broker login lives only in this process's memory.
		user, pass = CentralUser, base64.RawURLEncoding.EncodeToString(b[:])
		bc := broker.Config{
			Site: cfg.Site, Listen: cfg.MQTT.Listen, AllowAnonymous: cfg.MQTT.AllowAnonymous,
			CertFile: cfg.MQTT.CertFile, KeyFile: cfg.MQTT.KeyFile, CentralUser: user, CentralPassword: pass,
		}
		if err := brokerTLS(cfg, &bc, &p, clk, log); err != nil {
			return p, err
		}
		br, err := broker.New(bc, GateCredentials{Store: st}, log)
		if err != nil {
			return p, fmt.Errorf("mqtt.listen: %w", err)
		}
		p.addr, p.tlsAddr = br.Addr(), br.TLSAddr()
		scheme := "tcp://"
		if cfg.MQTT.CertFile != "" {
			scheme = "ssl://"
		}
		url = scheme + br.Addr()
		embedded = br
	}
	if url == "" { // (and so not embedded)
		log.Warn("no MQTT broker configured (mqtt.embedded false, mqtt.url empty): gates will not sync")
		return p, nil
	}
	rc := centralsync.Config{Site: cfg.Site, URL: url, Username: user, Password: pass, Poll: relayPoll, Shared: cfg.MQTT.Shared,
		// With anonymous clients on the embedded broker anyone may speak
		// for any gate, so a provisioned role protects nothing there.
		RoleFromBirth: cfg.MQTT.Embedded && cfg.MQTT.AllowAnonymous}
	if cfg.DB.Driver == "postgres" {
		// Any number of instances may share the database: the one holding
		// the site's advisory lock relays. With SQLite there is one
		// centrald, which always relays.
		lock := &leader.Lock{DSN: cfg.DB.DSN, Key: leader.Key(cfg.Site), Clock: clk, Log: log}
		rc.Leader = lock.Leader
		p.services = append(p.services, service.Named{Name: "leader", Service: lock})
	}
	p.relay = centralsync.New(rc, st, svc, clk, log)
	relay := service.Service(p.relay)
	if embedded != nil {
		// The broker stops after the relay: the relay's last words, the
		// retained "central offline" that gates act on at once, go
		// through it, and a broker that closed the relay's connection
		// mid-publish left it waiting for paho's write timeout.
		var relayDone <-chan struct{}
		relay, relayDone = service.Tracked(p.relay)
		p.services = append(p.services, service.Named{Name: "broker",
			Service: service.Outlive{Service: embedded, Until: relayDone, Grace: brokerGrace}})
	}
	p.services = append(p.services, service.Named{Name: "sync", Service: relay})
	if n, ok := st.(store.ChangeNotifier); ok {
		p.services = append(p.services, service.Named{Name: "change-wakeup", Service: &wakeOnChanges{notifier: n, relay: p.relay, clk: clk, log: log}})
	}
	return p, nil
}

// brokerTLS sets up the embedded broker's TLS listener (mqtt.tls): the
// configured certificate, or centrald's own CA and certificate, created
// on first use.
func brokerTLS(cfg config.Config, bc *broker.Config, p *syncParts, clk clock.Clock, log *slog.Logger) error {
	t := cfg.MQTT.TLS
	if t.Listen == "" {
		return nil
	}
	bc.TLSListen, bc.TLSCertFile, bc.TLSKeyFile = t.Listen, t.CertFile, t.KeyFile
	if t.CertFile != "" {
		if t.CAFile != "" {
			ca, err := os.ReadFile(t.CAFile)
			if err != nil {
				return fmt.Errorf("mqtt.tls.ca_file: %w", err)
			}
			if !x509.NewCertPool().AppendCertsFromPEM(ca) {
				return fmt.Errorf("mqtt.tls.ca_file %s: no PEM certificate in it", t.CAFile)
			}
			p.ca = ca
		}
		return nil
	}
	f, err := brokercert.Ensure(t.Dir, cfg.Site, t.Hosts, clk.Now())
	if err != nil {
		return err
	}
	if f.Created != "" {
		// Paths only: the keys are never logged.
		log.Info("created the MQTT broker's TLS "+f.Created, "dir", t.Dir)
	}
	bc.TLSCertFile, bc.TLSKeyFile, p.ca = f.CertFile, f.KeyFile, f.CAPEM
	return nil
}

// wakeOnChanges wakes the relay as soon as the store says changes were
// committed (by this instance or, on PostgreSQL, any other), so that a
// change reaches the gates in about a millisecond instead of up to one
// poll later. The relay keeps polling, so a lost notification costs only
// that delay; this service therefore never fails the daemon, it retries.
type wakeOnChanges struct {
	notifier store.ChangeNotifier
	relay    *centralsync.Relay
	clk      clock.Clock
	log      *slog.Logger
}

// wakeRetryMax caps the wait before listening again after a failure.
const wakeRetryMax = 30 * time.Second

// Serve implements internal/service's contract.
func (w *wakeOnChanges) Serve(ctx context.Context) error {
	var backoff time.Duration
	for {
		err := w.notifier.NotifyChanges(ctx, w.relay.Wake)
		if ctx.Err() != nil {
			return nil
		}
		backoff = min(max(2*backoff, time.Second), wakeRetryMax)
		w.log.Warn("change notifications failed; the relay polls meanwhile", "err", err, "retry_in", backoff)
		if !clock.Sleep(ctx, w.clk, backoff) {
			return nil
		}
	}
}

// gateCommands sends commands to gates through the relay (nil relay: no
// gates).
type gateCommands struct{ relay *centralsync.Relay }

// OpenGate asks a gate to open its barrier and waits for its answer.
func (g gateCommands) OpenGate(ctx context.Context, id, reason string) (bool, string, error) {
	if g.relay == nil {
		return false, "", fmt.Errorf("no MQTT broker is configured")
	}
	res, err := g.relay.Open(ctx, id, reason, centralsync.DefaultCommandTTL)
	if err != nil {
		return false, "", err
	}
	return res.OK, res.Error, nil
}

// ResyncGate asks a gate to request a snapshot and waits for its answer.
func (g gateCommands) ResyncGate(ctx context.Context, id string) (bool, string, error) {
	if g.relay == nil {
		return false, "", fmt.Errorf("no MQTT broker is configured")
	}
	res, err := g.relay.Resync(ctx, id)
	if err != nil {
		return false, "", err
	}
	return res.OK, res.Error, nil
}
