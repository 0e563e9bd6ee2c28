// Package console is the operator console centrald serves at /console/
// (documented in docs/console.md) and the event stream GET /admin/events
// (docs/api.md): server-rendered pages and plain JavaScript embedded in
// the binary, named operator accounts with sessions, and the actions an
// operator takes — each recorded in the change log with the operator's
// name and reason.
package console

import (
	"context"
	"embed"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/parkgate/parkgate/central/api"
	"github.com/parkgate/parkgate/central/booking"
	"github.com/parkgate/parkgate/central/broker"
	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/internal/throttle"
)

//go:embed web/*.html web/static/*
var web embed.FS

// Config configures the console.
type Config struct {
	// AdminToken also opens the event stream and the console's JSON
	// routes, for scripts.
	AdminToken string
	// Site names the car park in the page title.
	Site string
	// Gates opens barriers (nil: no gates).
	Gates api.GateCommander
	// PaymentHold is shown with unpaid reservations.
	PaymentHold time.Duration
	// IdleTimeout ends a session not used for this long (default 30 min).
	IdleTimeout time.Duration
	// Poll is how often the event stream reads the store while streams
	// are open (default 200 ms).
	Poll  time.Duration
	Clock clock.Clock
	Log   *slog.Logger
}

// Console serves the operator console and the event stream.
type Console struct {
	cfg       Config
	svc       *booking.Service
	clk       clock.Clock
	log       *slog.Logger
	hub       *hub
	sessions  *sessions
	throttle  *throttle.Throttle
	pages     *template.Template
	static    http.Handler
	dummyHash []byte
	stop      chan struct{}
}

// New returns the console. Run its Serve as a service.
func New(svc *booking.Service, cfg Config) (*Console, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Minute
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 200 * time.Millisecond
	}
	pages, err := template.ParseFS(web, "web/*.html")
	if err != nil {
		return nil, err
	}
	static, err := fs.Sub(web, "web/static")
	if err != nil {
		return nil, err
	}
	dummy, err := broker.HashPassword(randomToken())
	if err != nil {
		return nil, err
	}
	return &Console{
		cfg: cfg, svc: svc, clk: cfg.Clock, log: cfg.Log,
		hub:       newHub(svc.Store(), cfg.Clock, cfg.Poll, cfg.Log),
		sessions:  newSessions(cfg.Clock, cfg.IdleTimeout),
		throttle:  throttle.New(cfg.Clock),
		pages:     pages,
		static:    http.StripPrefix("/console/static/", http.FileServerFS(static)),
		dummyHash: dummy,
		stop:      make(chan struct{}),
	}, nil
}

// Serve follows the store for the event streams until ctx ends, then ends
// the open streams.
func (c *Console) Serve(ctx context.Context) error {
	go followStop(ctx, c.stop) // ends when ctx does
	return c.hub.Serve(ctx)
}

// Routes are the console's routes, to mount on the API's handler.
func (c *Console) Routes() []api.Route {
	return []api.Route{
		{Pattern: "GET /admin/events", Handler: c.events, Params: []string{"after"}},
		{Pattern: "GET /console/{$}", Handler: c.index},
		{Pattern: "GET /console", Handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/console/", http.StatusMovedPermanently)
		}},
		{Pattern: "GET /console/login", Handler: c.loginPage},
		{Pattern: "POST /console/login", Handler: c.login},
		{Pattern: "POST /console/logout", Handler: c.logout},
		{Pattern: "GET /console/static/{file...}", Handler: c.static.ServeHTTP},
		{Pattern: "GET /console/api/state", Handler: c.state},
		{Pattern: "POST /console/api/gates/{id}/open", Handler: c.openGate},
		{Pattern: "POST /console/api/spots/{id}/release", Handler: c.releaseSpot},
		{Pattern: "POST /console/api/reservations/{id}/cancel", Handler: c.cancel},
		{Pattern: "POST /console/api/exceptions/{id}/resolve", Handler: c.resolve},
		{Pattern: "POST /console/api/payment-exceptions/{id}/resolve", Handler: c.resolvePayment, Params: []string{}},
		{Pattern: "POST /console/api/csv/preview", Handler: c.csvPreview},
		{Pattern: "POST /console/api/csv/push", Handler: c.csvPush},
		{Pattern: "GET /console/api/lookup", Handler: c.lookup, Params: []string{"q"}},
	}
}
