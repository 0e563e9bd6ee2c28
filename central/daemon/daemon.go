// Package daemon assembles centrald from its parts — store, payment
// provider, ticket signer, booking service, HTTP API, sweeper, watchdog —
// and runs them as supervised services until its context ends. cmd/centrald
// only parses flags, loads the config and handles signals.
package daemon

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/parkgate/parkgate/central/api"
	"github.com/parkgate/parkgate/central/booking"
	"github.com/parkgate/parkgate/central/config"
	"github.com/parkgate/parkgate/central/console"
	"github.com/parkgate/parkgate/central/enroll"
	"github.com/parkgate/parkgate/central/payment"
	"github.com/parkgate/parkgate/central/payment/fakepay"
	"github.com/parkgate/parkgate/central/payment/stripepay"
	"github.com/parkgate/parkgate/central/retention"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/central/store/pgstore"
	"github.com/parkgate/parkgate/central/store/sqlitestore"
	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/internal/enrollment"
	"github.com/parkgate/parkgate/internal/httpserve"
	"github.com/parkgate/parkgate/internal/sdnotify"
	"github.com/parkgate/parkgate/internal/service"
	"github.com/parkgate/parkgate/internal/version"
	"github.com/parkgate/parkgate/ticket"
)

// Options are what the caller decides beyond the config.
type Options struct {
	Log   *slog.Logger
	Clock clock.Clock
	// Started, if set, is called once the API listens, with its address
	// and the embedded MQTT broker's plain and TLS listeners' ("" if
	// none).
	Started func(httpAddr, mqttAddr, mqttTLSAddr string)
}

// OpenStore opens the configured store.
func OpenStore(ctx context.Context, cfg config.Config) (store.Store, error) {
	switch cfg.DB.Driver {
	case "sqlite":
		return sqlitestore.Open(ctx, cfg.DB.DSN, sqlitestore.WithGroupCommit(cfg.DB.GroupCommit))
	case "postgres":
		return pgstore.Open(ctx, cfg.DB.DSN)
	}
	return nil, fmt.Errorf("db.driver %q is not supported", cfg.DB.Driver)
}

// Run runs centrald until ctx ends. It returns an error if a part fails to
// start or fails while running.
func Run(ctx context.Context, cfg config.Config, opt Options) error {
	log := opt.Log
	if opt.Clock == nil {
		opt.Clock = clock.Real{}
	}
	st, err := OpenStore(ctx, cfg)
	if err != nil {
		return fmt.Errorf("opening the database: %w", err)
	}
	defer st.Close()
	if err := st.SetSpots(ctx, cfg.SpotIDs(), opt.Clock.Now()); err != nil {
		return fmt.Errorf("setting up spots: %w", err)
	}
	signer, err := Signer(cfg)
	if err != nil {
		return err
	}

	pay, err := PaymentProvider(cfg)
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if cs, ok := st.(interface{ CommitStats() (int64, int64) }); ok {
		// How well group commit batches: writes ÷ commits is the mean
		// number of requests sharing one fsync.
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "parkgate_store_writes_total",
			Help: "Write transactions requested of the SQLite store (each a request's changes).",
		}, func() float64 { w, _ := cs.CommitStats(); return float64(w) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "parkgate_store_commits_total",
				Help: "Transactions the SQLite store committed, each with one fsync; with group commit one holds many writes.",
			}, func() float64 { _, c := cs.CommitStats(); return float64(c) }))
	}
	svc := booking.New(st, pay, booking.Tickets{Signer: signer}, opt.Clock, bookingConfig(cfg), log, booking.NewMetrics(reg))
	sp, err := startSync(ctx, cfg, st, svc, opt.Clock, log)
	if err != nil {
		return err
	}
	if sp.relay != nil {
		relay := sp.relay
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parkgate_sync_relaying",
			Help: "1 if this centrald instance relays the change log to the gates (the leader), else 0.",
		}, func() float64 {
			if relay.Relaying() {
				return 1
			}
			return 0
		}))
	}
	con, err := console.New(svc, console.Config{AdminToken: cfg.Auth.AdminToken, Site: cfg.Site, Gates: gateCommands{sp.relay},
		PaymentHold: cfg.Reservations.PaymentHold, Clock: opt.Clock, Log: log})
	if err != nil {
		return err
	}
	routes := con.Routes()
	if cfg.MQTT.Embedded {
		eh := enrollHandler(cfg, st, sp, signer, opt.Clock, log)
		routes = append(routes, api.Route{Pattern: "GET " + enrollment.Path, Handler: eh.ServeKey},
			api.Route{Pattern: "POST " + enrollment.Path, Handler: eh.ServeRedeem})
	}
	h := api.New(svc, api.Options{
		Routes:      routes,
		Gates:       gateCommands{sp.relay},
		AdminToken:  cfg.Auth.AdminToken,
		PublicKey:   ticket.FormatPublicKey(signer.PublicKey()),
		KeyID:       signer.KeyID(),
		PaymentHold: cfg.Reservations.PaymentHold,
		// A secret: handed over, never logged.
		StripeWebhookSecret: cfg.Payment.Stripe.WebhookSecret,
		Registry:            reg,
		Log:                 log,
	})
	if cfg.Auth.AdminToken == "" {
		log.Warn("auth.admin_token is not set: operator endpoints are disabled")
	}

	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("http.addr: %w", err)
	}
	h.SetReady(true)
	log.Info("centrald started", "version", version.Version, "site", cfg.Site, "http", ln.Addr().String(), "db", cfg.DB.Driver,
		"spots", len(cfg.SpotIDs()), "mqtt", sp.addr, "mqtt_tls", sp.tlsAddr)
	if opt.Started != nil {
		opt.Started(ln.Addr().String(), sp.addr, sp.tlsAddr)
	}
	_, _ = sdnotify.Notify(sdnotify.Ready)
	defer func() { _, _ = sdnotify.Notify(sdnotify.Stopping) }()

	services := append(sp.services,
		service.Named{Name: "http", Service: &httpserve.Server{Listener: ln, Handler: h, Log: log}},
		service.Named{Name: "console", Service: con},
		// /readyz says 503 from the moment shutdown starts, so that a load
		// balancer's health check takes this instance out while requests
		// in flight finish.
		service.Named{Name: "readiness", Service: service.Func(func(ctx context.Context) error {
			<-ctx.Done()
			h.SetReady(false)
			return nil
		})},
		service.Named{Name: "sweeper", Service: &booking.Sweeper{Service: svc, Interval: cfg.Reservations.SweepInterval}},
		service.Named{Name: "refunder", Service: &booking.Refunder{Service: svc, Interval: booking.DefaultConfig().RefundInterval}},
		service.Named{Name: "reconciler", Service: &booking.Reconciler{Service: svc, Interval: reconcileInterval(cfg.Payment.Timeout)}},
		service.Named{Name: "watchdog", Service: sdnotify.Watchdog{Interval: sdnotify.WatchdogInterval(), Healthy: st.Ping}},
	)
	if keep := cfg.PersonalDataKeep(); keep > 0 {
		services = append(services, service.Named{Name: "retention",
			Service: &retention.Service{Store: st, Clock: opt.Clock, Keep: keep, Log: log}})
	}
	return service.Run(ctx, log, services...)
}

func bookingConfig(cfg config.Config) booking.Config {
	b := booking.DefaultConfig()
	r := cfg.Reservations
	b.PaymentHold, b.NoShowGrace, b.EarlyArrival = r.PaymentHold, r.NoShowGrace, r.EarlyArrival
	b.MaxDuration, b.MaxAdvance = r.MaxDuration, r.MaxAdvance
	b.PricePerHour, b.Currency = cfg.PricePerHourMinor(), cfg.Payment.Currency
	b.PaymentTimeout = cfg.Payment.Timeout
	b.RefundUnused, b.NoShowFee = cfg.Payment.RefundUnused, cfg.NoShowFeeMinor()
	b.ActionTimeout, b.OverstayGrace = cfg.Payment.ActionTimeout, r.OverstayGrace
	b.OverstayPerHour, _ = cfg.OverstayPerHourMinor() // validated at load
	return b
}

// reconcileInterval is how often the reconciler looks for attempts whose
// outcome is unknown: often enough that one is settled within twice the
// payment timeout after it started.
func reconcileInterval(timeout time.Duration) time.Duration {
	return max(timeout/2, 500*time.Millisecond)
}

// PaymentProvider returns the configured payment provider.
func PaymentProvider(cfg config.Config) (payment.Provider, error) {
	switch cfg.Payment.Provider {
	case "fake":
		p, err := fakepay.Open(cfg.Payment.Fake.StateFile)
		if err != nil {
			return nil, fmt.Errorf("payment.fake.state_file: %w", err)
		}
		return p, nil
	case "stripe":
		p, err := stripepay.New(stripepay.Config{SecretKey: cfg.Payment.Stripe.SecretKey, APIURL: cfg.Payment.Stripe.APIURL})
		if err != nil {
			return nil, fmt.Errorf("payment.stripe: %w", err)
		}
		return p, nil
	}
	return nil, fmt.Errorf("payment.provider %q is not supported", cfg.Payment.Provider)
}

// Signer loads (creating it on first start) the site's ticket key.
func Signer(cfg config.Config) (*ticket.Signer, error) {
	key, err := ticket.LoadOrCreateKey(cfg.Tickets.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tickets.key_file: %w", err)
	}
	return ticket.NewSigner(key)
}

// EnrollKey loads (creating it on first use, mode 0600) central's
// enrollment signing key, whose fingerprint enrollment codes carry.
//
// A key that root creates (`centrald gate enroll` run before the service
// ever started) is given to the owner of its directory: under systemd
// that is the service's user (StateDirectory), which could not read a
// root-owned 0600 key and would then fail to start.
func EnrollKey(cfg config.Config) (ed25519.PrivateKey, error) {
	path := cfg.Enroll.KeyFile
	_, statErr := os.Stat(path)
	key, err := ticket.LoadOrCreateKey(path)
	if err != nil {
		return nil, fmt.Errorf("enroll.key_file: %w", err)
	}
	if errors.Is(statErr, fs.ErrNotExist) && os.Geteuid() == 0 {
		if fi, err := os.Stat(filepath.Dir(path)); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
				if err := os.Chown(path, int(st.Uid), int(st.Gid)); err != nil {
					return nil, fmt.Errorf("enroll.key_file: %w", err)
				}
			}
		}
	}
	return key, nil
}

// enrollHandler serves GET and POST /enroll for the embedded broker's
// gates.
func enrollHandler(cfg config.Config, st store.Store, sp syncParts, signer *ticket.Signer, clk clock.Clock, log *slog.Logger) *enroll.Handler {
	return &enroll.Handler{
		Store: st, Key: func() (ed25519.PrivateKey, error) { return EnrollKey(cfg) }, Site: cfg.Site,
		Broker:     enroll.Broker{URL: cfg.Enroll.BrokerURL, TLSPort: port(sp.tlsAddr), PlainPort: port(sp.addr), CA: string(sp.ca)},
		TicketKeys: []string{ticket.FormatPublicKey(signer.PublicKey())},
		Clock:      clk, Log: log,
	}
}

// port is the port of a host:port address (0 if none).
func port(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}
