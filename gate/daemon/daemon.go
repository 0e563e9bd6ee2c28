// Package daemon assembles gated from its parts — local database, ticket
// verifier, the lane's hardware (simulated or Raspberry Pi GPIO), barrier
// state machine, lane, QR reader, local HTTP API, watchdog — and runs them
// as supervised services until its context ends. cmd/gated only parses
// flags, loads the config and handles signals.
package daemon

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/gate/authz"
	"github.com/parkgate/parkgate/gate/barrier"
	"github.com/parkgate/parkgate/gate/config"
	"github.com/parkgate/parkgate/gate/faults"
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
	// CameraStarted, if set, is called with the camera's own listener's
	// address (http.anpr_addr) once it listens, before Started.
	CameraStarted func(anprAddr string)
	// GPIO, if set, replaces the Raspberry Pi's GPIO in hardware.mode rpi.
	GPIO GPIO
	// Clock, if set, replaces the wall clock (tests move time by hand).
	Clock clock.Clock
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

// GPIO is how gated reaches the lane's pins in hardware.mode rpi: the
// Raspberry Pi's GPIO character device unless Options.GPIO replaces it
// (tests pass fakes).
type GPIO interface {
	// Output claims the line called name as a relay output that is at its
	// inactive level from the moment it is claimed.
	Output(name string, activeLow bool) (Output, error)
	// Input claims the line called name as a debounced input; pull is a
	// hardware.loop_pull word.
	Input(name string, activeLow bool, pull string, debounce time.Duration) (Input, error)
}

// Output is a claimed relay output. Close drives it inactive and lets the
// line go.
type Output interface {
	hardware.Output
	Close() error
}

// Input is a claimed input. Close lets the line go.
type Input interface {
	hardware.Input
	Close() error
}

// piGPIO is the Raspberry Pi's GPIO, through hardware/rpi.
type piGPIO struct{}

func (piGPIO) Output(name string, activeLow bool) (Output, error) {
	if err := rpi.Init(); err != nil {
		return nil, err
	}
	o, err := rpi.NewOutput(name, activeLow)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return o, nil
}

func (piGPIO) Input(name string, activeLow bool, pull string, d time.Duration) (Input, error) {
	if err := rpi.Init(); err != nil {
		return nil, err
	}
	p, err := rpi.ParsePull(pull)
	if err != nil {
		return nil, err
	}
	in, err := rpi.NewInput(name, activeLow, p, d)
	if err != nil {
		return nil, err
	}
	return in, nil
}

func gpioOf(opt Options) GPIO {
	if opt.GPIO != nil {
		return opt.GPIO
	}
	return piGPIO{}
}

// claimOutputs claims the relay outputs (OPEN, and hold when wired), each
// driven inactive as it is claimed. On error, those claimed are closed
// (driven inactive again).
func claimOutputs(cfg config.Config, g GPIO) (open, hold Output, err error) {
	h := cfg.Hardware
	low := h.RelayLow()
	if open, err = g.Output(h.RelayPin, low); err != nil {
		return nil, nil, fmt.Errorf("hardware.relay_pin: %w", err)
	}
	if h.HoldPin != "" {
		if hold, err = g.Output(h.HoldPin, low); err != nil {
			open.Close()
			return nil, nil, fmt.Errorf("hardware.hold_pin: %w", err)
		}
	}
	return open, hold, nil
}

// rpiPins wires GPIO: the outputs first, each at its inactive level from
// the moment it is claimed, then the inputs, whose faults go to inputs.
func rpiPins(cfg config.Config, g GPIO, inputs *inputFaults) (lanePins, error) {
	h := cfg.Hardware
	open, hold, err := claimOutputs(cfg, g)
	if err != nil {
		return lanePins{}, err
	}
	closers := []func() error{open.Close}
	p := barrier.Pins{Open: open}
	if hold != nil {
		closers = append(closers, hold.Close)
		p.Hold = hold
	}
	fail := func(err error) (lanePins, error) {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
		return lanePins{}, err
	}
	input := func(role, name string, activeLow bool, pull string) (hardware.Input, error) {
		key := "hardware." + role + "_pin"
		in, err := g.Input(name, activeLow, pull, h.Debounce)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		closers = append(closers, in.Close)
		inputs.watch(in, role, key, name, h.NoiseLimit)
		return in, nil
	}
	if p.Loop, err = input(roleLoop, h.LoopPin, h.LoopLow(), h.LoopPull); err != nil {
		return fail(err)
	}
	if h.OpenStatusPin != "" {
		if p.OpenedStatus, err = input(roleOpenStatus, h.OpenStatusPin, h.ActiveLow, ""); err != nil {
			return fail(err)
		}
	}
	if h.ClosedStatusPin != "" {
		if p.ClosedStatus, err = input(roleClosedStatus, h.ClosedStatusPin, h.ActiveLow, ""); err != nil {
			return fail(err)
		}
	}
	return lanePins{pins: p, closer: func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}}, nil
}

// Safe drives the lane's relay outputs inactive and lets the lines go:
// `gated safe`, which systemd runs after every stop of gated, however it
// ended (see docs/gated.md, "Fail-safe behaviour"). Raspberry Pi OS
// kernels keep a released output at its last level, so a gated killed
// mid-pulse would otherwise leave the barrier asked to open. It does
// nothing in sim mode.
func Safe(cfg config.Config, opt Options) error {
	if cfg.Hardware.Mode != "rpi" {
		return nil
	}
	open, hold, err := claimOutputs(cfg, gpioOf(opt))
	if err != nil {
		return err
	}
	var errs []error
	if hold != nil {
		errs = append(errs, hold.Close())
	}
	errs = append(errs, open.Close())
	return errors.Join(errs...)
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
	var clk clock.Clock = clock.Real{}
	if opt.Clock != nil {
		clk = opt.Clock
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every part reports its faults here, the inputs from their claim on;
	// /v1/status, the MQTT birth and the parkgate_gate_fault gauge show
	// them.
	flt := faults.New(clk, reg, append([]string{faults.Record, faults.Barrier}, inputKinds(cfg)...)...)
	inputs := newInputFaults(clk, flt, log)
	// The lane's hardware first, before anything that can fail: a relay
	// left energised by a crashed run (Raspberry Pi kernels keep a
	// released line's level) is driven inactive even if the database
	// then fails to open, and stays so while systemd restarts gated.
	var hw lanePins
	switch cfg.Hardware.Mode {
	case "sim":
		hw = simPins(cfg, clk)
	case "rpi":
		var err error
		if hw, err = rpiPins(cfg, gpioOf(opt), inputs); err != nil {
			return err
		}
	}
	defer hw.closer()
	for _, w := range cfg.BootWarnings() {
		log.Warn(w)
	}

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

	var ln *lane.Lane
	bar, err := barrier.New(barrier.Config{
		Mode: barrier.Mode(cfg.Hardware.BarrierMode), Pulse: cfg.Hardware.Pulse,
		NoVehicleTimeout: cfg.Hardware.NoVehicleTimeout, CloseTimeout: cfg.Hardware.CloseTimeout,
	}, hw.pins, clk, func(e barrier.Event) { ln.BarrierEvent(e) })
	if err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	// A faulted loop input is unknown presence: the barrier then holds no
	// passage (nor a hold) on its level.
	inputs.OnLoop(bar.LoopFaulted)
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
		StrictExit: cfg.Gate.StrictExit, Faults: flt,
	}, db, verifier, bar, clk, tc.Check, log, reg)

	var online func() bool
	var syncSvc []service.Named
	if cfg.MQTT.URL != "" {
		user := cfg.MQTT.Username
		if user == "" && cfg.MQTT.Password != "" {
			user = cfg.Gate.ID // the embedded broker's login is the gate id
		}
		tlsCfg, err := cfg.MQTT.TLSConfig()
		if err != nil {
			return err
		}
		gs := gatesync.New(gatesync.Config{
			Site: cfg.Site, GateID: cfg.Gate.ID, Role: cfg.Gate.Role,
			URL: cfg.MQTT.URL, Username: user, Password: cfg.MQTT.Password, Keepalive: cfg.MQTT.Keepalive,
			TLS: tlsCfg,
		}, gatesync.Deps{DB: db, Lane: ln, Sessions: gatesync.FileSessions(cfg.DB.Path + ".session"), Clock: clk, Log: log,
			StatusChanged: flt.Changed})
		online = gs.Online
		syncSvc = append(syncSvc, service.Named{Name: "sync", Service: gs})
	} else {
		log.Warn("mqtt.url is empty: this lane runs alone (no sync with centrald)")
	}
	allow, err := cfg.AllowedSources()
	if err != nil {
		return fmt.Errorf("anpr.allow_from: %w", err)
	}
	apiOpt := httpapi.Options{
		Lane: ln, Sim: hw.sim, Registry: reg, Log: log, Online: online,
		ANPR:   anpr.Options{Preset: cfg.ANPR.Preset},
		Filter: &anpr.Filter{MinConfidence: cfg.ANPR.MinConfidence, Window: cfg.ANPR.DedupWindow, Clock: clk},
		Camera: httpapi.Camera{AllowFrom: allow, Username: cfg.ANPR.Username, Password: cfg.ANPR.Password},
		// The camera on its own listener: the API answers it nothing.
		CameraElsewhere: cfg.HTTP.ANPRAddr != "",
	}
	api := httpapi.New(apiOpt)
	l, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("http.addr: %w", err)
	}
	anprAddr := l.Addr().String()
	var cameraSvc []service.Named
	if cfg.HTTP.ANPRAddr != "" {
		cl, err := net.Listen("tcp", cfg.HTTP.ANPRAddr)
		if err != nil {
			l.Close()
			return fmt.Errorf("http.anpr_addr: %w", err)
		}
		anprAddr = cl.Addr().String()
		cameraSvc = append(cameraSvc, service.Named{Name: "http-anpr", Service: &httpserve.Server{Listener: cl, Handler: httpapi.NewCamera(apiOpt), Log: log}})
	}
	services := append(syncSvc, cameraSvc...)
	services = append(services, []service.Named{
		{Name: "barrier", Service: bar},
		{Name: "lane", Service: ln},
		{Name: "http", Service: &httpserve.Server{Listener: l, Handler: api, Log: log}},
		{Name: "watchdog", Service: sdnotify.Watchdog{Interval: sdnotify.WatchdogInterval(), Healthy: healthy(db, inputs)}},
	}...)
	if dev := cfg.Hardware.ReaderDevice; dev != "" {
		// A scanner unplugged and plugged back is reopened, not fatal.
		reader := &serial.Device{Path: dev, Baud: cfg.Hardware.ReaderBaud, Options: serial.Options{Clock: clk}, Log: log}
		handle := func(ctx context.Context, code string) error {
			_, err := ln.Handle(ctx, lane.Read{Source: localdb.SourceQR, Value: code})
			return err
		}
		services = append(services, service.Named{Name: "reader", Service: readerService(reader, handle, log)})
	}
	log.Info("gated started", "version", version.Version, "site", cfg.Site, "gate", cfg.Gate.ID, "role", cfg.Gate.Role,
		"mode", cfg.Hardware.Mode, "http", l.Addr().String(), "anpr", anprAddr, "anpr_allow_from", cfg.ANPR.AllowFrom,
		"anpr_basic_auth", cfg.ANPR.Username != "", "keys", len(mustKeys(cfg)))
	if len(allow) == 0 {
		log.Warn("anpr.allow_from is empty: every camera push is refused")
	}
	if opt.CameraStarted != nil && cfg.HTTP.ANPRAddr != "" {
		opt.CameraStarted(anprAddr)
	}
	if opt.Started != nil {
		opt.Started(l.Addr().String())
	}
	_, _ = sdnotify.Notify(sdnotify.Ready)
	defer func() { _, _ = sdnotify.Notify(sdnotify.Stopping) }()
	return service.Run(ctx, log, services...)
}

// healthy is the watchdog's check: the database answers, and no input has
// been unreadable past InputRestartAfter (see inputFaults.Healthy). While
// it fails, systemd is not pinged, so it restarts gated after WatchdogSec;
// the reason goes to systemd's status line (systemctl status) meanwhile.
// It is called from the watchdog's goroutine alone.
func healthy(db *localdb.DB, inputs *inputFaults) func(ctx context.Context) error {
	last := ""
	return func(ctx context.Context) error {
		_, err := db.Version(ctx)
		if err == nil {
			err = inputs.Healthy()
		}
		status := "STATUS=running"
		if err != nil {
			status = "STATUS=unhealthy, not pinging the watchdog: " + faults.Sentence(err.Error())
		}
		if status != last {
			last = status
			_, _ = sdnotify.Notify(status)
		}
		return err
	}
}

func mustKeys(cfg config.Config) []ed25519.PublicKey {
	k, _ := cfg.PublicKeys()
	return k
}

// readerService feeds scanned codes to the lane. The reader calls back
// from goroutines of its own, outside the supervisor: a panic there would
// kill the process without the barrier's safe state. It is recovered and
// fails the service instead, so that the supervisor stops every service
// and the barrier drives its outputs inactive on the way out.
func readerService(r hardware.CodeReader, handle func(ctx context.Context, code string) error, log *slog.Logger) service.Service {
	return service.Func(func(ctx context.Context) error {
		ctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		err := r.Serve(ctx, func(code string) {
			defer func() {
				if p := recover(); p != nil {
					perr := fmt.Errorf("panic handling a scan: %v", p)
					log.Error("reader: recovered a panic; stopping gated", "err", perr, "stack", string(debug.Stack()))
					cancel(perr)
				}
			}()
			if ctx.Err() != nil {
				return
			}
			if err := handle(ctx, code); err != nil && ctx.Err() == nil {
				log.Error("scan not decided", "err", err)
			}
		})
		if ctx.Err() != nil {
			if cause := context.Cause(ctx); !errors.Is(cause, context.Canceled) {
				return cause // the recovered panic
			}
			return nil
		}
		return err
	})
}
