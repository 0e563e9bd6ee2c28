// Package bench is parkgate's load benchmark, which `make bench` runs
// through cmd/parkbench and which writes docs/benchmarks.md.
//
// It starts the real centrald binary as a child process (a fresh database
// in a temporary directory for every scenario, a free 127.0.0.1 port,
// configuration through PARKING_* variables) and measures it over HTTP
// with vegeta used as a library (Options.Only runs this half or the
// gated one alone):
//
//   - a: GET /parkings with 500 spots at a fixed rate, and the most a closed
//     loop of workers gets out of it;
//   - b: mixed traffic at a fixed rate (reads of single spots and of the
//     list, and reservations spread over all spots), against the p99 < 20 ms
//     target (docs/benchmarks.md, Targets);
//   - c: contended POST /reserve/parking/{id} at several concurrencies,
//     where most requests lose the race with 409 (and, for scale, the bare
//     HTTP round trip, GET /healthz);
//   - d: the same contended pattern in-process, straight through the
//     booking service on a SQLite store, as the "raw" rate that the HTTP
//     figures of c are compared with (target: HTTP ≥ 0.5 × raw).
//
// Then it measures the gate controller, gated, the same way: a cache of
// 10,000 reservations written by `gated import`, the binary in simulator
// mode as a child process, tickets signed in-process with a fresh site
// key, and closed loops of POST /v1/sim/scan:
//
//   - e: gated's resident memory after start and after the load (target
//     < 40 MiB), and the lane's own scan-to-relay latency (target p99 <
//     10 ms) and decisions per second for granted scans at concurrency 1
//     and 4, and for denied ones (tampered tickets);
//   - f: the same granted scans, shorter, against the linux/arm64 binary
//     under qemu-user, labelled as emulated (skipped with a note when the
//     binary or qemu-aarch64 is missing).
//
// Section g (sync.go) measures the sync over MQTT between the two daemons,
// and section h (scale.go) centrald scaled out on PostgreSQL:
//
// Section i (console.go) measures what operator consoles following the
// event stream cost the API:
//
//   - i: the mixed traffic of b on a fresh centrald, alone and then with
//     Plan.Consoles clients on GET /admin/events (target: p99 with them
//     ≤ 1.5 × without, and every change reaching every console).
//
// Section k (history.go) measures centrald on ten years of history
// (LoadHistory: a million reservations over 10,000 spots) against an empty
// database, on SQLite and PostgreSQL (target: every p99 ≤ 2× the empty
// database's), with the database's size, centrald's start and `centrald
// prune`.
//
// Section h:
//
//   - h: the contended pattern of c through HAProxy, with the shipped
//     configs/haproxy.cfg, to 1 and to 3 centrald instances sharing one
//     PostgreSQL database, beside the rate of the store's conditional
//     insert sent straight to PostgreSQL over pgx in the same run; each on
//     a schema of its own that the run creates and drops. It needs
//     Options.Postgres and Options.HAProxy, and is skipped with a note
//     without them.
//
// Latency percentiles are exact (nearest rank over every request of the
// measured window; see Percentile), not estimated. The package only ever
// talks to 127.0.0.1, and every run is bounded in time and count.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/parkgate/parkgate/central/booking"
)

// Plan is what the benchmark runs: rates, concurrencies and durations.
type Plan struct {
	Spots  int
	Warmup time.Duration // before every measured window, not counted

	ListRate        int
	ListDuration    time.Duration
	ListWorkers     int
	ListMaxDuration time.Duration

	MixedRate     int
	MixedDuration time.Duration

	Concurrencies     []int
	ContendedDuration time.Duration

	// gated (section e): the cache, then closed loops of scans. A run
	// ends after ScanMax measured scans or ScanDuration, whichever
	// comes first; ScanWarmup scans before it are not counted.
	GatedReservations int
	GatedSpots        int
	ScanWarmup        int
	ScanMax           int
	ScanDuration      time.Duration
	ScanConcurrencies []int
	DeniedMax         int
	DeniedDuration    time.Duration
	// The arm64 binary under qemu-user (section f), concurrency 1.
	EmulatedWarmup   int
	EmulatedMax      int
	EmulatedDuration time.Duration

	// Sync over MQTT (section g): reservations paid one at a time for
	// the propagation, reservations at centrald for the full resync
	// (those of the events included), and events queued while centrald
	// is down (one scan each, at most SyncScanDuration).
	SyncPropagations int
	SyncResync       int
	SyncEvents       int
	SyncScanDuration time.Duration

	// Scale-out on PostgreSQL (section h): the contended pattern through
	// HAProxy to 1 and to 3 centrald instances, and straight into
	// PostgreSQL, at each concurrency for ScaleDuration.
	ScaleConcurrencies []int
	ScaleDuration      time.Duration

	// Operator consoles (section i): how many follow GET /admin/events
	// during the mixed traffic of b.
	Consoles int
	// A fleet of simulated gates on one centrald (section i): how many,
	// and how many reservations are paid one at a time for the
	// propagation to all of them.
	FleetGates        int
	FleetPropagations int

	// Group commit and point reads (section l): rounds of the contended
	// pattern at each concurrency (ContendedDuration each) and of GET
	// /parkings/{id} against a trivial server (ReadDuration each).
	GroupCommitRounds        int
	GroupCommitConcurrencies []int
	ReadDuration             time.Duration
	// GroupCommitTurns: section l measures the two sides of each ratio
	// in this many alternating turns (groupcommit.go).
	GroupCommitTurns int
}

// DefaultPlan is what `make bench` runs: about two minutes on two cores
// for centrald, under a minute for gated, and about a minute for the
// scale-out section.
func DefaultPlan() Plan {
	return Plan{
		Spots:             500,
		Warmup:            time.Second,
		ListRate:          500,
		ListDuration:      10 * time.Second,
		ListWorkers:       16,
		ListMaxDuration:   10 * time.Second,
		MixedRate:         1000,
		MixedDuration:     15 * time.Second,
		Concurrencies:     []int{1, 16, 64},
		ContendedDuration: 8 * time.Second,
		GatedReservations: 10_000,
		GatedSpots:        500,
		ScanWarmup:        50,
		ScanMax:           3000,
		ScanDuration:      10 * time.Second,
		ScanConcurrencies: []int{1, 4},
		DeniedMax:         3000,
		DeniedDuration:    5 * time.Second,
		EmulatedWarmup:    20,
		EmulatedMax:       1000,
		EmulatedDuration:  5 * time.Second,
		SyncPropagations:  100,
		SyncResync:        10_000,
		SyncEvents:        2000,
		SyncScanDuration:  20 * time.Second,

		ScaleConcurrencies: []int{16, 64},
		ScaleDuration:      8 * time.Second,

		Consoles:          50,
		FleetGates:        1000,
		FleetPropagations: 20,

		GroupCommitRounds:        3,
		GroupCommitConcurrencies: []int{16, 64},
		ReadDuration:             5 * time.Second,
		GroupCommitTurns:         4,
	}
}

// Scaled returns p with every duration multiplied by f (at least 200 ms
// each), for quick smoke runs.
func (p Plan) Scaled(f float64) Plan {
	s := func(d time.Duration) time.Duration {
		return max(time.Duration(float64(d)*f), 200*time.Millisecond)
	}
	p.Warmup = s(p.Warmup)
	p.ListDuration, p.ListMaxDuration = s(p.ListDuration), s(p.ListMaxDuration)
	p.MixedDuration = s(p.MixedDuration)
	p.ContendedDuration = s(p.ContendedDuration)
	p.ScanDuration, p.DeniedDuration = s(p.ScanDuration), s(p.DeniedDuration)
	p.EmulatedDuration = s(p.EmulatedDuration)
	p.SyncScanDuration = s(p.SyncScanDuration)
	p.ScaleDuration = s(p.ScaleDuration)
	p.ReadDuration = s(p.ReadDuration)
	return p
}

// Parts of the benchmark, for Options.Only.
const (
	PartCentrald = "centrald" // scenarios a to d
	PartGated    = "gated"    // sections e and f
	PartSync     = "sync"     // section g: centrald and gated over MQTT
	PartScale    = "scale"    // section h: centrald instances on PostgreSQL behind HAProxy
	PartConsole  = "console"  // section i: mixed traffic with operator consoles on /admin/events
	PartFleet    = "fleet"    // section j: a fleet of simulated gates on one centrald
	PartHistory  = "history"  // section k: ten years of history against an empty database
	// PartGroupCommit is section l: group commit against one transaction
	// per request, and point reads against a trivial Go JSON server.
	PartGroupCommit = "groupcommit"
)

// Options configure Run.
type Options struct {
	// Only runs one part, PartCentrald, PartGated, PartSync, PartScale
	// PartConsole or PartFleet; empty runs all six.
	Only string
	// Centrald is the path of the centrald binary to measure (needed
	// unless Only is PartGated).
	Centrald string
	// Gated is the path of the gated binary for this machine (needed
	// unless Only is PartCentrald or PartScale).
	Gated string
	// GatedArm64 is the linux/arm64 gated binary to run under Qemu
	// (section f); empty skips that section with a note.
	GatedArm64 string
	// Qemu is the qemu-aarch64 user-mode emulator; empty skips section f
	// with a note.
	Qemu string
	// Postgres is the DSN of a PostgreSQL database on this machine in
	// which section h may create and drop schemas of its own; empty (or
	// a database that cannot be used) skips that section with a note.
	Postgres string
	// FleetMQTT is an external broker (tcp://host:port, e.g. Mosquitto)
	// the fleet section runs on besides the embedded one; empty skips
	// that run with a note.
	FleetMQTT string
	// HAProxy is the haproxy binary for section h; empty skips the
	// section with a note.
	HAProxy string
	// HAProxyConfig is the HAProxy configuration section h runs, the one
	// the project ships; empty means configs/haproxy.cfg, relative to the
	// working directory (the repository's root under `make bench`).
	HAProxyConfig string
	// TempDir is where the temporary data directories go; empty means
	// os.TempDir(). Its disk is the one whose fsync the writes pay for.
	TempDir string
	// HistoryN is the number of reservations of section k's history;
	// 0 means DefaultHistoryN.
	HistoryN int
	// Plan is what to run; the zero Plan means DefaultPlan().
	Plan Plan
	// Progress receives a line as every run starts and ends; nil
	// discards them.
	Progress io.Writer
}

// Targets: the product's latency, memory and envelope figures.
const (
	MixedP99Target = 20 * time.Millisecond
	RatioTarget    = 0.5
)

// Run runs the plan and returns the report. It stops early, cleaning up,
// when ctx ends.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Plan.Spots == 0 {
		o.Plan = DefaultPlan()
	}
	runCentrald := o.Only == "" || o.Only == PartCentrald
	runGated := o.Only == "" || o.Only == PartGated
	runSync := o.Only == "" || o.Only == PartSync
	runScale := o.Only == "" || o.Only == PartScale
	runConsole := o.Only == "" || o.Only == PartConsole
	runFleet := o.Only == "" || o.Only == PartFleet
	runHistory := o.Only == "" || o.Only == PartHistory
	runGroupCommit := o.Only == "" || o.Only == PartGroupCommit
	if o.Only != "" && o.Only != PartCentrald && o.Only != PartGated && o.Only != PartSync && o.Only != PartScale && o.Only != PartConsole && o.Only != PartFleet && o.Only != PartHistory && o.Only != PartGroupCommit {
		return nil, fmt.Errorf("only %q: want %s, %s, %s, %s, %s, %s, %s or %s", o.Only, PartCentrald, PartGated, PartSync, PartScale, PartConsole, PartFleet, PartHistory, PartGroupCommit)
	}
	// Absolute, because the daemons run in their data directories.
	abs := func(name, path string) (string, error) {
		if path == "" {
			return "", fmt.Errorf("%s binary: no path given", name)
		}
		bin, err := filepath.Abs(path)
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("%s binary: %w", name, err)
		}
		return bin, nil
	}
	var err error
	if runCentrald || runSync || runScale || runConsole || runFleet || runHistory || runGroupCommit {
		if o.Centrald, err = abs("centrald", o.Centrald); err != nil {
			return nil, err
		}
	}
	if runGated || runSync {
		if o.Gated, err = abs("gated", o.Gated); err != nil {
			return nil, err
		}
	}
	parent, err := os.MkdirTemp(o.TempDir, "parkbench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(parent)
	b := &runner{o: o, p: o.Plan, parent: parent}

	rep := &Report{Date: time.Now().UTC(), Plan: o.Plan, RawMethod: RawMethod, Centrald: runCentrald}
	b.progress("machine: CPU, versions, fsync probe in %s", parent)
	var centraldBin, gatedBin string
	if runCentrald || runSync || runScale || runConsole || runFleet || runHistory || runGroupCommit {
		centraldBin = o.Centrald
	}
	if runGated || runSync {
		gatedBin = o.Gated
	}
	rep.Machine = probeMachine(ctx, centraldBin, gatedBin, parent)

	if runCentrald {
		if err := b.scenarioA(ctx, rep); err != nil {
			return nil, fmt.Errorf("scenario a: %w", err)
		}
		if err := b.scenarioB(ctx, rep); err != nil {
			return nil, fmt.Errorf("scenario b: %w", err)
		}
		if err := b.scenariosCD(ctx, rep); err != nil {
			return nil, fmt.Errorf("scenarios c/d: %w", err)
		}
	}
	if runGated {
		g, err := b.gated(ctx)
		if err != nil {
			return nil, fmt.Errorf("gated: %w", err)
		}
		rep.Gated = g
	}
	if runSync {
		s, err := b.syncSection(ctx)
		if err != nil {
			return nil, fmt.Errorf("sync: %w", err)
		}
		rep.Sync = s
	}
	if runScale {
		s, err := b.scaleSection(ctx)
		if err != nil {
			return nil, fmt.Errorf("scale-out: %w", err)
		}
		rep.Scale = s
	}
	if runConsole {
		s, err := b.consoleSection(ctx)
		if err != nil {
			return nil, fmt.Errorf("consoles: %w", err)
		}
		rep.Console = s
	}
	if runFleet {
		f, err := b.fleetSection(ctx)
		if err != nil {
			return nil, fmt.Errorf("fleet: %w", err)
		}
		rep.Fleet = f
	}
	if runHistory {
		h, err := b.historySection(ctx)
		if err != nil {
			return nil, fmt.Errorf("history: %w", err)
		}
		rep.History = h
	}
	if runGroupCommit {
		g, err := b.groupCommitSection(ctx)
		if err != nil {
			return nil, fmt.Errorf("group commit: %w", err)
		}
		rep.GroupCommit = g
	}
	return rep, ctx.Err()
}

type runner struct {
	o      Options
	p      Plan
	parent string
}

func (b *runner) progress(format string, args ...any) {
	fmt.Fprintf(b.o.Progress, "parkbench: "+format+"\n", args...)
}

func (b *runner) done(s Summary) {
	b.progress("  done: %d requests, %.0f req/s, p50 %s, p99 %s, p99.9 %s, %s",
		s.Requests, s.Throughput, ms(s.Latency.P50), ms(s.Latency.P99), ms(s.Latency.P999), codes(s))
}

// withCentrald runs fn against a fresh centrald and always stops it.
func (b *runner) withCentrald(ctx context.Context, fn func(c *Centrald) error) (err error) {
	c, err := StartCentrald(ctx, b.o.Centrald, b.parent, b.p.Spots)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, c.Close()) }()
	if err := fn(c); err != nil {
		return err
	}
	return ctx.Err()
}

// scenarioA: GET /parkings at a fixed rate, then as fast as a closed loop
// of workers goes, on one fresh centrald (the runs only read).
func (b *runner) scenarioA(ctx context.Context, rep *Report) error {
	return b.withCentrald(ctx, func(c *Centrald) error {
		b.progress("a: GET /parkings (%d spots) at %d req/s for %s", b.p.Spots, b.p.ListRate, b.p.ListDuration)
		ok := OK(200)
		samples, from := runHTTP(ctx, httpRun{targeter: listTargeter(c.URL), rate: b.p.ListRate,
			warmup: b.p.Warmup, dur: b.p.ListDuration, ok: ok})
		rep.List = Summarize(fmt.Sprintf("fixed %d req/s", b.p.ListRate), samples, from, ok)
		rep.List.Rate = b.p.ListRate
		b.done(rep.List)
		if ctx.Err() != nil {
			return nil
		}

		b.progress("a: GET /parkings, closed loop of %d workers for %s", b.p.ListWorkers, b.p.ListMaxDuration)
		samples, from = runHTTP(ctx, httpRun{targeter: listTargeter(c.URL), workers: b.p.ListWorkers,
			warmup: b.p.Warmup, dur: b.p.ListMaxDuration, ok: ok})
		rep.ListMax = Summarize(fmt.Sprintf("closed loop, %d workers", b.p.ListWorkers), samples, from, ok)
		rep.ListMax.Workers = b.p.ListWorkers
		b.done(rep.ListMax)
		return nil
	})
}

// scenarioB: mixed traffic at a fixed rate.
func (b *runner) scenarioB(ctx context.Context, rep *Report) error {
	return b.withCentrald(ctx, func(c *Centrald) error {
		b.progress("b: mixed traffic (70%% GET /parkings/{id}, 10%% GET /parkings, 20%% POST /reserve) at %d req/s for %s",
			b.p.MixedRate, b.p.MixedDuration)
		ok := OK(200, 201, 409)
		samples, from := runHTTP(ctx, httpRun{targeter: mixedTargeter(c.URL, b.p.Spots, newFutureHours(time.Now())),
			rate: b.p.MixedRate, warmup: b.p.Warmup, dur: b.p.MixedDuration, ok: ok})
		rep.Mixed = Summarize(fmt.Sprintf("mixed, %d req/s", b.p.MixedRate), samples, from, ok)
		rep.Mixed.Rate = b.p.MixedRate
		byRoute := map[string][]Sample{}
		for _, s := range samples {
			byRoute[s.Route] = append(byRoute[s.Route], s)
		}
		rep.MixedRoutes = nil
		for _, r := range []string{routeSpot, routeList, routeReserve} {
			rep.MixedRoutes = append(rep.MixedRoutes, Summarize(r, byRoute[r], from, ok))
		}
		rep.MixedSegments = segments(samples, from, b.p.MixedDuration, 5, ok)
		b.done(rep.Mixed)
		return nil
	})
}

// scenariosCD runs, for every concurrency, the contended reservations over
// HTTP against a fresh centrald and then in-process on a fresh store, so
// that the two figures of one concurrency are taken close together.
func (b *runner) scenariosCD(ctx context.Context, rep *Report) error {
	ok := OK(201, 409)
	for i, n := range b.p.Concurrencies {
		err := b.withCentrald(ctx, func(c *Centrald) error {
			if i == 0 {
				// The floor: what one HTTP round trip costs with no work
				// behind it, at the same concurrency.
				d := min(2*time.Second, b.p.ContendedDuration)
				b.progress("c: floor: GET /healthz over HTTP, concurrency %d for %s", n, d)
				samples, from := runHTTP(ctx, httpRun{targeter: healthTargeter(c.URL), workers: n,
					warmup: b.p.Warmup, dur: d, ok: OK(200)})
				rep.Floor = Summarize("GET /healthz, concurrency "+strconv.Itoa(n), samples, from, OK(200))
				rep.Floor.Workers = n
				b.done(rep.Floor)
			}
			b.progress("c: contended POST /reserve/parking/{id} over HTTP, concurrency %d for %s", n, b.p.ContendedDuration)
			samples, from := runHTTP(ctx, httpRun{targeter: contendedTargeter(c.URL, newContention(time.Now(), b.p.Spots)),
				workers: n, warmup: b.p.Warmup, dur: b.p.ContendedDuration, ok: ok})
			s := Summarize("concurrency "+strconv.Itoa(n), samples, from, ok)
			s.Workers = n
			rep.Contended = append(rep.Contended, s)
			b.done(s)
			return nil
		})
		if err != nil {
			return err
		}

		b.progress("d: the same in-process (%s on sqlitestore), concurrency %d for %s", RawMethod, n, b.p.ContendedDuration)
		s, err := b.raw(ctx, n)
		if err != nil {
			return err
		}
		rep.Raw = append(rep.Raw, s)
		b.done(s)
	}
	return nil
}

// RawMethod says how the in-process figure is taken: through the booking
// service on a sqlitestore.Store.
const RawMethod = "booking.Service.Reserve"

// raw runs the contended pattern through booking.Service.Reserve on a
// fresh SQLite store with the same spots and rules as the servers. This
// is the fairer "raw" figure: the HTTP handler calls exactly this method,
// so the ratio isolates what HTTP, JSON and the process boundary cost. A
// bare st.Write with Live+Insert+Log would also leave out the window
// checks, the id and token generation and the change snapshot, which the
// HTTP path cannot skip.
func (b *runner) raw(ctx context.Context, n int) (Summary, error) {
	// One transaction and one fsync per request: the rate the HTTP
	// figures are held against (centrald itself has group commit on).
	var s Summary
	err := b.withInProcess(ctx, false, func(ip *inProcess) error {
		samples, from := ip.run(ctx, n, b.p.Warmup, b.p.ContendedDuration)
		s = Summarize("concurrency "+strconv.Itoa(n), samples, from, OK(201, 409))
		s.Workers = n
		return nil
	})
	return s, err
}

// statusOf maps what Reserve returned to the status the API would answer.
func statusOf(err error) (int, string) {
	if err == nil {
		return 201, ""
	}
	if e, ok := booking.AsError(err); ok {
		switch e.Kind {
		case booking.Conflict:
			return 409, ""
		case booking.NotFound:
			return 404, err.Error()
		case booking.Unprocessable:
			return 422, err.Error()
		case booking.Invalid:
			return 400, err.Error()
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return 0, err.Error()
	}
	return 500, err.Error()
}
