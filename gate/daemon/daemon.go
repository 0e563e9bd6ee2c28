// Package daemon assembles gated from its parts — local database, ticket
// verifier, the lane's hardware (simulated or Raspberry Pi GPIO), barrier
// state machine, lane, QR reader, local HTTP API, watchdog — and runs them
// as supervised services until its context ends. cmd/gated only parses
// flags, loads the config and handles signals.
package daemon

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"periph.io/x/conn/v3/gpio"

	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/gate/authz"
	"github.com/parkgate/parkgate/gate/barrier"
	"github.com/parkgate/parkgate/gate/config"
	"github.com/parkgate/parkgate/gate/httpapi"
	"github.com/parkgate/parkgate/gate/lane"
	"github.com/parkgate/parkgate/gate/localdb"
	"github.com/parkgate/parkgate/hardware"
	"github.com/parkgate/parkgate/hardware/anpr"
	"github.com/parkgate/parkgate/hardware/rpi"
	"github.com/parkgate/parkgate/hardware/serial"
	"github.com/parkgate/parkgate/hardware/sim"
	"github.com/parkgate/parkgate/internal/httpserve"
	"github.com/parkgate/parkgate/internal/sdnotify"
	"github.com/parkgate/parkgate/internal/service"
	"github.com/parkgate/parkgate/internal/version"
	"github.com/parkgate/parkgate/sync/gatesync"
	"github.com/parkgate/parkgate/ticket"
)

// Options are what the caller decides beyond the config.
type Options struct {
	Log *slog.Logger
	// Started, if set, is called once the local API listens.
	Started func(httpAddr string)
}

// lanePins is the lane's hardware, whatever implements it.
type lanePins struct {
	pins   barrier.Pins
	sim    httpapi.Sim // nil outside simulator mode
	closer func()
}

// simPins wires the simulator: a simulated barrier board drives the status
// contacts, and the simulator's vehicle endpoint moves a car over the loop.
func simPins(cfg config.Config, clk clock.Clock) lanePins {
	open := sim.NewOutput(clk)
	loop := sim.NewInput(clk, 0, false)
	hold := cfg.Hardware.BarrierMode == "hold"
	var holdOut *sim.Output
	drive := open
	if hold {
		holdOut = sim.NewOutput(clk)
		drive = holdOut
	}
	board := sim.NewBoard(sim.BoardConfig{Clock: clk, Hold: hold, Loop: loop, Travel: 500 * time.Millisecond}, drive)
	p := barrier.Pins{Open: open, Loop: loop, OpenedStatus: board.OpenedStatus(), ClosedStatus: board.ClosedStatus()}
	if holdOut != nil {
		p.Hold = holdOut
	}
	return lanePins{pins: p, sim: board, closer: func() { board.Close() }}
}

// rpiPins wires GPIO. Outputs are driven to their inactive level as they
// are opened, before anything else touches the lane.
func rpiPins(cfg config.Config) (lanePins, error) {
	h := cfg.Hardware
	if err := rpi.Init(); err != nil {
		return lanePins{}, err
	}
	var closers []func() error
	fail := func(err error) (lanePins, error) {
		for _, c := range closers {
			c()
		}
		return lanePins{}, err
	}
	open, err := rpi.NewOutput(h.RelayPin, h.ActiveLow)
	if err != nil {
		return fail(fmt.Errorf("hardware.relay_pin: %w", err))
	}
	closers = append(closers, open.Close)
	p := barrier.Pins{Open: open}
	if h.HoldPin != "" {
		hold, err := rpi.NewOutput(h.HoldPin, h.ActiveLow)
		if err != nil {
			return fail(fmt.Errorf("hardware.hold_pin: %w", err))
		}
		closers = append(closers, hold.Close)
		p.Hold = hold
	}
	input := func(key, name string) (hardware.Input, error) {
		in, err := rpi.NewInput(name, h.ActiveLow, gpio.PullNoChange, h.Debounce)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		closers = append(closers, in.Close)
		return in, nil
	}
	if p.Loop, err = input("hardware.loop_pin", h.LoopPin); err != nil {
		return fail(err)
	}
	if h.OpenStatusPin != "" {
		if p.OpenedStatus, err = input("hardware.open_status_pin", h.OpenStatusPin); err != nil {
			return fail(err)
		}
	}
	if h.ClosedStatusPin != "" {
		if p.ClosedStatus, err = input("hardware.closed_status_pin", h.ClosedStatusPin); err != nil {
			return fail(err)
		}
	}
	return lanePins{pins: p, closer: func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}}, nil
}

// Verifier builds the ticket verifier from tickets.public_key (nil if no
// key is configured yet).
func Verifier(cfg config.Config) (*ticket.Verifier, error) {
	keys, err := cfg.PublicKeys()
	if err != nil || len(keys) == 0 {
		return nil, err
	}
	return ticket.NewVerifier([]ed25519.PublicKey(keys)...)
}

// Run runs gated until ctx ends.
func Run(ctx context.Context, cfg config.Config, opt Options) error {
	log := opt.Log
	clk := clock.Real{}
	db, err := localdb.Open(ctx, cfg.DB.Path)
	if err != nil {
		return fmt.Errorf("db.path: %w", err)
	}
	defer db.Close()
	verifier, err := Verifier(cfg)
	if err != nil {
		return fmt.Errorf("tickets.public_key: %w", err)
	}
	if verifier == nil {
		log.Warn("tickets.public_key is not set: every ticket is denied (no_key) until it is")
	}

	var hw lanePins
	switch cfg.Hardware.Mode {
	case "sim":
		hw = simPins(cfg, clk)
	case "rpi":
		if hw, err = rpiPins(cfg); err != nil {
			return err
		}
	}
	defer hw.closer()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var ln *lane.Lane
	bar, err := barrier.New(barrier.Config{
		Mode: barrier.Mode(cfg.Hardware.BarrierMode), Pulse: cfg.Hardware.Pulse,
		NoVehicleTimeout: cfg.Hardware.NoVehicleTimeout, CloseTimeout: cfg.Hardware.CloseTimeout,
	}, hw.pins, clk, func(e barrier.Event) { ln.BarrierEvent(e) })
	if err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	floor, _ := cfg.ClockFloor()
	if bf := authz.BuildFloor(); bf.After(floor) {
		floor = bf
	}
	tc := authz.TrustedClock{Clock: clk, Floor: floor, Newest: db.NewestTime}
	policy, err := authz.ParseOfflinePolicy(cfg.Gate.OfflinePolicy)
	if err != nil {
		return fmt.Errorf("gate.offline_policy: %w", err)
	}
	ln = lane.New(lane.Config{
		GateID: cfg.Gate.ID, Role: localdb.Role(cfg.Gate.Role), OfflinePolicy: policy,
		EarlyArrival: cfg.Gate.EarlyArrival, Repeat: cfg.Gate.RepeatWindow, AlwaysTrusted: cfg.Hardware.Mode == "sim",
		StrictExit: cfg.Gate.StrictExit,
	}, db, verifier, bar, clk, tc.Check, log, reg)

	var online func() bool
	var syncSvc []service.Named
	if cfg.MQTT.URL != "" {
		user := cfg.MQTT.Username
		if user == "" && cfg.MQTT.Password != "" {
			user = cfg.Gate.ID // the embedded broker's login is the gate id
		}
		gs := gatesync.New(gatesync.Config{
			Site: cfg.Site, GateID: cfg.Gate.ID, Role: cfg.Gate.Role,
			URL: cfg.MQTT.URL, Username: user, Password: cfg.MQTT.Password, Keepalive: cfg.MQTT.Keepalive,
		}, gatesync.Deps{DB: db, Lane: ln, Sessions: gatesync.FileSessions(cfg.DB.Path + ".session"), Clock: clk, Log: log})
		online = gs.Online
		syncSvc = append(syncSvc, service.Named{Name: "sync", Service: gs})
	} else {
		log.Warn("mqtt.url is empty: this lane runs alone (no sync with centrald)")
	}
	api := httpapi.New(httpapi.Options{
		Lane: ln, Sim: hw.sim, Registry: reg, Log: log, Online: online,
		ANPR:   anpr.Options{Preset: cfg.ANPR.Preset},
		Filter: &anpr.Filter{MinConfidence: cfg.ANPR.MinConfidence, Window: cfg.ANPR.DedupWindow, Clock: clk},
	})
	l, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("http.addr: %w", err)
	}
	services := append(syncSvc, []service.Named{
		{Name: "barrier", Service: bar},
		{Name: "lane", Service: ln},
		{Name: "http", Service: &httpserve.Server{Listener: l, Handler: api, Log: log}},
		{Name: "watchdog", Service: sdnotify.Watchdog{Interval: sdnotify.WatchdogInterval(), Healthy: func(ctx context.Context) error {
			_, err := db.Version(ctx)
			return err
		}}},
	}...)
	if dev := cfg.Hardware.ReaderDevice; dev != "" {
		// A scanner unplugged and plugged back is reopened, not fatal.
		reader := &serial.Device{Path: dev, Baud: cfg.Hardware.ReaderBaud, Options: serial.Options{Clock: clk}, Log: log}
		services = append(services, service.Named{Name: "reader", Service: readerService(reader, ln, log)})
	}
	log.Info("gated started", "version", version.Version, "site", cfg.Site, "gate", cfg.Gate.ID, "role", cfg.Gate.Role,
		"mode", cfg.Hardware.Mode, "http", l.Addr().String(), "keys", len(mustKeys(cfg)))
	if opt.Started != nil {
		opt.Started(l.Addr().String())
	}
	_, _ = sdnotify.Notify(sdnotify.Ready)
	defer func() { _, _ = sdnotify.Notify(sdnotify.Stopping) }()
	return service.Run(ctx, log, services...)
}

func mustKeys(cfg config.Config) []ed25519.PublicKey {
	k, _ := cfg.PublicKeys()
	return k
}

// readerService feeds scanned codes to the lane.
func readerService(r hardware.CodeReader, ln *lane.Lane, log *slog.Logger) service.Service {
	return service.Func(func(ctx context.Context) error {
		err := r.Serve(ctx, func(code string) {
			if _, err := ln.Handle(ctx, lane.Read{Source: localdb.SourceQR, Value: code}); err != nil && ctx.Err() == nil {
				log.Error("scan not decided", "err", err)
			}
		})
		if ctx.Err() != nil {
			return nil
		}
		return err
	})
}
