package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/parkgate/parkgate/central/apijson"
	"github.com/parkgate/parkgate/central/booking"
	"github.com/parkgate/parkgate/central/payment/fakepay"
	"github.com/parkgate/parkgate/central/store/sqlitestore"
	"github.com/parkgate/parkgate/clock"
)

// Section l: group commit and point reads.
//
// Writes: the contended reservations of c over HTTP on a centrald with
// group commit (its default) against the in-process rate of d with one
// transaction, and one fsync, per request (sqlitestore without group
// commit), at each concurrency in the same round, in alternating turns;
// besides them, for scale, HTTP without group commit and in-process with
// it, each alone. Reads: GET /parkings/{id} on a fresh centrald against a
// trivial Go JSON server (a child process answering the same route with
// the same body through net/http and encoding/json, nothing else), from
// the same generator at the same concurrency, in alternating turns. Every
// round runs it all again, so that the spread shows what the shared
// machine does to the ratios.

// Targets of section l.
const (
	GroupCommitRatioTarget = 1.0 // HTTP with group commit ÷ in-process, one transaction per request
	PointReadRatioTarget   = 0.8 // GET /parkings/{id} ÷ a trivial Go JSON server
)

// GroupCommitRound is one concurrency of one round of section l.
type GroupCommitRound struct {
	Round, Concurrency int
	// HTTP: centrald with group commit; HTTPOff: without. Raw: in
	// process, one transaction per request; RawGC: in process with group
	// commit.
	HTTP, HTTPOff, Raw, RawGC Summary
	// Writes and Commits are centrald's parkgate_store_writes_total and
	// parkgate_store_commits_total after the HTTP run (warm-up and setup
	// included): Writes ÷ Commits is the mean number sharing an fsync.
	Writes, Commits float64
	// Reads: GET /parkings/{id} on centrald; Trivial: the same on the
	// trivial server.
	Reads, Trivial Summary
	// CPU per request (warm-up included) in the runs that share the two
	// cores: centrald's and the load generator's (parkbench's own) in the
	// HTTP run with group commit, and the in-process run's (raw).
	HTTPServerCPU, HTTPClientCPU, RawCPU time.Duration
	// The servers' CPU per point read: centrald's and the trivial
	// server's, in their turns.
	ReadsCPU, TrivialCPU time.Duration
}

// WriteRatio is HTTP with group commit over the one-transaction-per-request
// in-process rate.
func (g GroupCommitRound) WriteRatio() float64 { return ratio(g.HTTP, g.Raw) }

// ReadRatio is centrald's point-read rate over the trivial server's.
func (g GroupCommitRound) ReadRatio() float64 { return ratio(g.Reads, g.Trivial) }

func ratio(a, b Summary) float64 {
	if b.Throughput == 0 {
		return 0
	}
	return a.Throughput / b.Throughput
}

// GroupCommitReport holds section l.
type GroupCommitReport struct {
	Rounds []GroupCommitRound
}

// spread returns the lowest and highest of f over the rounds of
// concurrency n.
func (g *GroupCommitReport) spread(n int, f func(GroupCommitRound) float64) (lo, hi float64, count int) {
	for _, r := range g.Rounds {
		if r.Concurrency != n {
			continue
		}
		v := f(r)
		if count == 0 || v < lo {
			lo = v
		}
		if count == 0 || v > hi {
			hi = v
		}
		count++
	}
	return lo, hi, count
}

func (g *GroupCommitReport) concurrencies() []int {
	var out []int
	seen := map[int]bool{}
	for _, r := range g.Rounds {
		if !seen[r.Concurrency] {
			seen[r.Concurrency] = true
			out = append(out, r.Concurrency)
		}
	}
	return out
}

func (g *GroupCommitReport) targets() []TargetResult {
	var out []TargetResult
	for _, n := range g.concurrencies() {
		lo, hi, k := g.spread(n, GroupCommitRound.WriteRatio)
		errs := 0
		for _, r := range g.Rounds {
			if r.Concurrency == n {
				errs += r.HTTP.Errors + r.Raw.Errors
			}
		}
		out = append(out, TargetResult{
			Name:     fmt.Sprintf("l. contended reservations at concurrency %d: HTTP with group commit ≥ %.1f × in-process, one transaction per request", n, GroupCommitRatioTarget),
			Measured: fmt.Sprintf("%.2f–%.2f over %d rounds", lo, hi, k),
			Pass:     k > 0 && lo >= GroupCommitRatioTarget && errs == 0,
		})
	}
	for _, n := range g.concurrencies() {
		lo, hi, k := g.spread(n, GroupCommitRound.ReadRatio)
		out = append(out, TargetResult{
			Name:     fmt.Sprintf("l. GET /parkings/{id} at concurrency %d: ≥ %.1f × a trivial Go JSON server", n, PointReadRatioTarget),
			Measured: fmt.Sprintf("%.2f–%.2f over %d rounds", lo, hi, k),
			Pass:     k > 0 && lo >= PointReadRatioTarget,
		})
	}
	return out
}

func (g *GroupCommitReport) markdown(b *bytes.Buffer, r *Report) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	p("## l. Group commit and point reads")
	p("")
	p("Per round and concurrency: the contended reservations of c over HTTP (closed loop, parkbench's own client) on a "+
		"fresh centrald with group commit (its default), and the same pattern in-process through `%s` on a fresh SQLite "+
		"store with one transaction and one fsync per request (the figure of d, **raw**), in %d alternating turns of %s "+
		"each (one then the other, then the other way round), both kept running between turns and centrald left to "+
		"settle after its start, so that the machine's drift falls on both. **HTTP ÷ raw** is the first "+
		"over the second. For scale, each alone for %s: HTTP on a centrald with `PARKING_DB_GROUP_COMMIT=false`, and "+
		"in-process with group commit. Batch is centrald's `parkgate_store_writes_total ÷ parkgate_store_commits_total` "+
		"after its turns: how many requests shared an fsync on average. Then `GET /parkings/{id}` (random spots of %d, "+
		"none reserved) on a fresh centrald and on a trivial Go JSON server (a child process: net/http and encoding/json "+
		"answering the same route with the same body, nothing else) from the same closed-loop client at the same "+
		"concurrency, in %d alternating turns of %s each.",
		RawMethod, max(r.Plan.GroupCommitTurns, 1), dur(r.Plan.ContendedDuration/time.Duration(max(r.Plan.GroupCommitTurns, 1))),
		dur(r.Plan.ContendedDuration), r.Plan.Spots,
		max(r.Plan.GroupCommitTurns, 1), dur(r.Plan.ReadDuration/time.Duration(max(r.Plan.GroupCommitTurns, 1))))
	p("")
	p("| round | concurrency | HTTP, group commit | HTTP, one tx per request | in-process, one tx per request (raw) | in-process, group commit | batch | HTTP ÷ raw | GET /parkings/{id} | trivial server | reads ÷ trivial | p99 reads / trivial |")
	p("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
	for _, g := range g.Rounds {
		batch := "–"
		if g.Commits > 0 {
			batch = fmt.Sprintf("%.1f", g.Writes/g.Commits)
		}
		p("| %d | %d | %.0f req/s | %.0f req/s | %.0f req/s | %.0f req/s | %s | **%.2f** | %.0f req/s | %.0f req/s | **%.2f** | %s / %s |",
			g.Round, g.Concurrency, g.HTTP.Throughput, g.HTTPOff.Throughput, g.Raw.Throughput, g.RawGC.Throughput, batch,
			g.WriteRatio(), g.Reads.Throughput, g.Trivial.Throughput, g.ReadRatio(), ms(g.Reads.Latency.P99), ms(g.Trivial.Latency.P99))
	}
	p("")
	p("CPU time per request (warm-ups included; user and system from `/proc`) in the turns above, which share the two " +
		"cores: per contended reservation, centrald's and the load generator's (parkbench's client) in the HTTP turns and " +
		"the in-process turns', one transaction per request; per point read, centrald's and the trivial server's.")
	p("")
	p("| round | concurrency | centrald (HTTP) | load generator | HTTP, both | in-process (raw) | centrald per point read | trivial server per point read |")
	p("|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, g := range g.Rounds {
		p("| %d | %d | %s | %s | %s | %s | %s | %s |", g.Round, g.Concurrency, us(g.HTTPServerCPU), us(g.HTTPClientCPU),
			us(g.HTTPServerCPU+g.HTTPClientCPU), us(g.RawCPU), us(g.ReadsCPU), us(g.TrivialCPU))
	}
	p("")
	for _, n := range g.concurrencies() {
		wlo, whi, k := g.spread(n, GroupCommitRound.WriteRatio)
		rlo, rhi, _ := g.spread(n, GroupCommitRound.ReadRatio)
		p("- concurrency %d: HTTP ÷ raw %.2f–%.2f, reads ÷ trivial %.2f–%.2f over %d rounds.", n, wlo, whi, rlo, rhi, k)
	}
	errs := 0
	for _, g := range g.Rounds {
		for _, s := range []Summary{g.HTTP, g.HTTPOff, g.Raw, g.RawGC, g.Reads, g.Trivial} {
			errs += s.Errors
			for _, e := range s.ErrorSamples {
				p("- error in round %d, concurrency %d, %s: %s", g.Round, g.Concurrency, s.Label, cell(e))
			}
		}
	}
	p("- wrong answers (anything but 201/409 for writes, 200 for reads): %d.", errs)
	p("")
}

// groupCommitSection runs section l.
func (b *runner) groupCommitSection(ctx context.Context) (*GroupCommitReport, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	rep := &GroupCommitReport{}
	for round := 1; round <= max(b.p.GroupCommitRounds, 1); round++ {
		for _, n := range b.p.GroupCommitConcurrencies {
			g := GroupCommitRound{Round: round, Concurrency: n}
			label := fmt.Sprintf("round %d, concurrency %d", round, n)
			if err := b.pairedWrites(ctx, label, n, &g); err != nil {
				return nil, err
			}
			// For scale, each alone: HTTP without group commit, in
			// process with it.
			err := b.withCentraldEnv(ctx, []string{"PARKING_DB_GROUP_COMMIT=false"}, func(c *Centrald) error {
				b.progress("l: %s: contended POST /reserve over HTTP, PARKING_DB_GROUP_COMMIT=false, for %s", label, b.p.ContendedDuration)
				samples, from := runHTTP(ctx, httpRun{targeter: contendedTargeter(c.URL, newContention(time.Now(), b.p.Spots)),
					workers: n, warmup: b.p.Warmup, dur: b.p.ContendedDuration, ok: okWrite})
				g.HTTPOff = Summarize("HTTP, PARKING_DB_GROUP_COMMIT=false", samples, from, okWrite)
				g.HTTPOff.Workers = n
				b.done(g.HTTPOff)
				return nil
			})
			if err != nil {
				return nil, err
			}
			b.progress("l: %s: in-process %s, group commit true, for %s", label, RawMethod, b.p.ContendedDuration)
			err = b.withInProcess(ctx, true, func(ip *inProcess) error {
				samples, from := ip.run(ctx, n, b.p.Warmup, b.p.ContendedDuration)
				g.RawGC = Summarize("in-process, group commit", samples, from, okWrite)
				g.RawGC.Workers = n
				b.done(g.RawGC)
				return nil
			})
			if err != nil {
				return nil, err
			}
			if err := b.pointReads(ctx, self, n, &g); err != nil {
				return nil, err
			}
			b.progress("l: %s: HTTP ÷ raw %.2f, reads ÷ trivial %.2f", label, g.WriteRatio(), g.ReadRatio())
			rep.Rounds = append(rep.Rounds, g)
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
		}
	}
	return rep, nil
}

// okWrite: the answers of the contended pattern.
var okWrite = OK(201, 409)

// Turns. The two figures of a ratio are measured in turns, not one after
// the other: a turn of the one, a turn of the other, GroupCommitTurns times
// each, both kept running in between. On a shared machine whose speed
// drifts by tens of percent within a minute, back-to-back runs of several
// seconds each measured the drift as much as the difference; turns of a
// second or two share it out between both figures, and every other pair
// runs in the other order (inOrder). A centrald just started is left to
// settle first.

// inOrder runs the i-th pair of turns: a then b, then b then a, and so
// on, so that a drift during the run falls on both alike.
func inOrder(i int, a, b func()) {
	if i%2 == 1 {
		a, b = b, a
	}
	a()
	b()
}

// settle waits, at most within, until the process pid has used less than a
// tenth of a core over a quarter of a second: a centrald just started is
// still busy for a moment after it answers /readyz (its broker, its relay's
// first snapshot), and that is not what a turn should measure.
func settle(ctx context.Context, pid int, within time.Duration) {
	const window = 250 * time.Millisecond
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		m := startCPU(pid)
		select {
		case <-ctx.Done():
			return
		case <-time.After(window):
		}
		if m.since() < window/10 {
			return
		}
	}
}

// turn is one turn's samples and the end of its warm-up.
type turn struct {
	samples []Sample
	from    time.Time
}

// summarizeTurns is Summarize over the turns of one side: the requests of
// every turn's measured window over the sum of those windows.
func summarizeTurns(label string, turns []turn, ok func(int) bool) Summary {
	var (
		all     []Sample
		elapsed time.Duration
	)
	for _, t := range turns {
		elapsed += Summarize(label, t.samples, t.from, ok).Elapsed
		for _, x := range t.samples {
			if !x.Start.Before(t.from) {
				all = append(all, x)
			}
		}
	}
	s := Summarize(label, all, time.Time{}, ok)
	s.Elapsed, s.Throughput = elapsed, 0
	if elapsed > 0 {
		s.Throughput = float64(s.Requests) / elapsed.Seconds()
	}
	return s
}

// turnPlan splits a run of warmup+dur into n turns of each: the first
// keeps the whole warm-up, the others a quarter of it (the connections and
// caches are warm by then, but a new turn opens new connections).
func (b *runner) turnPlan(dur time.Duration) (n int, each time.Duration, warmup func(turn int) time.Duration) {
	n = max(b.p.GroupCommitTurns, 1)
	return n, dur / time.Duration(n), func(turn int) time.Duration {
		if turn == 0 {
			return b.p.Warmup
		}
		return b.p.Warmup / 4
	}
}

// pairedWrites measures the contended pattern over HTTP on centrald with
// group commit and in process with one transaction per request, in turns.
func (b *runner) pairedWrites(ctx context.Context, label string, n int, g *GroupCommitRound) error {
	return b.withCentraldEnv(ctx, []string{"PARKING_DB_GROUP_COMMIT=true"}, func(c *Centrald) error {
		return b.withInProcess(ctx, false, func(ip *inProcess) error {
			settle(ctx, c.proc.pid(), 10*time.Second)
			turns, each, warmup := b.turnPlan(b.p.ContendedDuration)
			b.progress("l: %s: contended POST /reserve over HTTP with group commit and in-process %s with one transaction per request, in %d turns of %s each",
				label, RawMethod, turns, each)
			gen := newContention(time.Now(), b.p.Spots)
			var (
				httpTurns, rawTurns          []turn
				httpN, rawN                  int
				serverCPU, clientCPU, rawCPU time.Duration
			)
			for i := range turns {
				warm := warmup(i)
				overHTTP := func() {
					server, client := startCPU(c.proc.pid()), startCPU(os.Getpid())
					samples, from := runHTTP(ctx, httpRun{targeter: contendedTargeter(c.URL, gen), workers: n, warmup: warm, dur: each, ok: okWrite})
					serverCPU += server.since()
					clientCPU += client.since()
					httpTurns, httpN = append(httpTurns, turn{samples, from}), httpN+len(samples)
				}
				inProcess := func() {
					self := startCPU(os.Getpid())
					samples, from := ip.run(ctx, n, warm, each)
					rawCPU += self.since()
					rawTurns, rawN = append(rawTurns, turn{samples, from}), rawN+len(samples)
				}
				inOrder(i, overHTTP, inProcess)
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
			g.HTTP = summarizeTurns("HTTP, group commit", httpTurns, okWrite)
			g.Raw = summarizeTurns("in-process, one transaction per request", rawTurns, okWrite)
			g.HTTP.Workers, g.Raw.Workers = n, n
			g.HTTPServerCPU, g.HTTPClientCPU, g.RawCPU = perRequest(serverCPU, httpN), perRequest(clientCPU, httpN), perRequest(rawCPU, rawN)
			b.done(g.HTTP)
			b.done(g.Raw)
			g.Writes, _ = scrapeCounter(ctx, c.URL, "parkgate_store_writes_total")
			g.Commits, _ = scrapeCounter(ctx, c.URL, "parkgate_store_commits_total")
			return nil
		})
	})
}

// pointReads measures GET /parkings/{id} on a fresh centrald and on the
// trivial server, in turns, the trivial server first.
func (b *runner) pointReads(ctx context.Context, self string, n int, g *GroupCommitRound) error {
	ok := OK(200)
	t, err := startTrivial(ctx, self, b.parent)
	if err != nil {
		return err
	}
	defer t.proc.stop()
	err = b.withCentrald(ctx, func(c *Centrald) error {
		settle(ctx, c.proc.pid(), 10*time.Second)
		turns, each, warmup := b.turnPlan(b.p.ReadDuration)
		b.progress("l: GET /parkings/{id} on the trivial server and on centrald, concurrency %d, in %d turns of %s each", n, turns, each)
		var (
			trivial, reads       []turn
			trivialCPU, readsCPU time.Duration
			trivialN, readsN     int
		)
		for i := range turns {
			warm := warmup(i)
			run := func(base string, pid int, turns *[]turn, cpu *time.Duration, count *int) func() {
				return func() {
					m := startCPU(pid)
					samples, from := runHTTP(ctx, httpRun{targeter: spotTargeter(base, b.p.Spots), workers: n, warmup: warm, dur: each, ok: ok})
					*cpu += m.since()
					*count += len(samples)
					*turns = append(*turns, turn{samples, from})
				}
			}
			inOrder(i, run(t.url, t.proc.pid(), &trivial, &trivialCPU, &trivialN), run(c.URL, c.proc.pid(), &reads, &readsCPU, &readsN))
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		label := fmt.Sprintf("GET /parkings/{id}, concurrency %d", n)
		g.Trivial, g.Reads = summarizeTurns(label+", trivial server", trivial, ok), summarizeTurns(label+", centrald", reads, ok)
		g.Trivial.Workers, g.Reads.Workers = n, n
		g.TrivialCPU, g.ReadsCPU = perRequest(trivialCPU, trivialN), perRequest(readsCPU, readsN)
		b.done(g.Trivial)
		b.done(g.Reads)
		return nil
	})
	return errors.Join(err, t.proc.stop())
}

// spotTargeter sends GET /parkings/{id} for random spots.
func spotTargeter(base string, spots int) vegeta.Targeter {
	return func(t *vegeta.Target) error {
		*t = vegeta.Target{Method: http.MethodGet, URL: base + "/parkings/" + strconv.Itoa(1+rand.IntN(spots))}
		return nil
	}
}

// inProcess is the contended pattern through booking.Service.Reserve on a
// fresh SQLite store of its own (section d's raw figure), kept open
// between turns.
type inProcess struct {
	svc *booking.Service
	gen *contention
}

// withInProcess opens an inProcess with group commit on or off, runs fn and
// removes the store.
func (b *runner) withInProcess(ctx context.Context, groupCommit bool, fn func(ip *inProcess) error) (err error) {
	dir, err := os.MkdirTemp(b.parent, "raw-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := sqlitestore.Open(ctx, dir+"/raw.db", sqlitestore.WithGroupCommit(groupCommit))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, st.Close()) }()
	ids := make([]string, b.p.Spots)
	for i := range ids {
		ids[i] = strconv.Itoa(i + 1)
	}
	if err := st.SetSpots(ctx, ids, time.Now()); err != nil {
		return err
	}
	cfg := booking.DefaultConfig()
	cfg.MaxAdvance = MaxAdvanceHours * time.Hour
	ip := &inProcess{svc: booking.New(st, &fakepay.Provider{}, nil, clock.Real{}, cfg, nil, nil), gen: newContention(time.Now(), b.p.Spots)}
	if err := fn(ip); err != nil {
		return err
	}
	return ctx.Err()
}

// run is one closed-loop run of n workers.
func (ip *inProcess) run(ctx context.Context, n int, warmup, dur time.Duration) ([]Sample, time.Time) {
	return runLoop(ctx, n, warmup, dur, func(ctx context.Context) (int, string) {
		spot, w := ip.gen.next()
		_, err := ip.svc.Reserve(ctx, spot, w)
		return statusOf(err)
	})
}

// cpuMark is a process's CPU time (user and system) at a moment.
type cpuMark struct {
	pid   int
	ticks int64
	err   error
}

func startCPU(pid int) cpuMark {
	t, err := cpuTicks(pid)
	return cpuMark{pid: pid, ticks: t, err: err}
}

// since returns the CPU time the process spent since m; 0 if it cannot be
// read (no /proc).
func (m cpuMark) since() time.Duration {
	t, err := cpuTicks(m.pid)
	if m.err != nil || err != nil {
		return 0
	}
	return time.Duration(t-m.ticks) * (time.Second / 100)
}

// perRequest divides a CPU time among n requests.
func perRequest(cpu time.Duration, n int) time.Duration {
	if n == 0 {
		return 0
	}
	return cpu / time.Duration(n)
}

// withCentraldEnv is withCentrald with extra PARKING_* variables.
func (b *runner) withCentraldEnv(ctx context.Context, env []string, fn func(c *Centrald) error) (err error) {
	c, err := StartCentrald(ctx, b.o.Centrald, b.parent, b.p.Spots, env...)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, c.Close()) }()
	if err := fn(c); err != nil {
		return err
	}
	return ctx.Err()
}

// scrapeCounter reads one unlabelled counter from GET /metrics.
func scrapeCounter(ctx context.Context, base, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: loopbackTransport(1)}
	defer client.CloseIdleConnections()
	res, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(res.Body); err != nil {
		return 0, err
	}
	for line := range strings.Lines(buf.String()) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("%s: not in /metrics", name)
}

// The trivial server: parkbench itself, started again with TrivialServerEnv
// set to the address to serve on (see ServeTrivialIfAsked).

// TrivialServerEnv names the variable that makes parkbench serve the
// trivial JSON server instead of benchmarking.
const TrivialServerEnv = "PARKBENCH_TRIVIAL_JSON_ADDR"

// ServeTrivialIfAsked serves the trivial JSON server, and never returns,
// if TrivialServerEnv is set; cmd/parkbench calls it first thing. The
// server answers GET /parkings/{id} as centrald does for a spot with no
// reservation, with nothing else around it (no middleware, no logging, no
// metrics, no store), and /readyz.
func ServeTrivialIfAsked() {
	addr := os.Getenv(TrivialServerEnv)
	if addr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /parkings/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(apijson.Parking{ID: r.PathValue("id"), Status: booking.StatusFree})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"status": "ready"})
	})
	fmt.Fprintln(os.Stderr, http.ListenAndServe(addr, mux))
	os.Exit(1)
}

type trivialServer struct {
	url  string
	proc *child
}

func startTrivial(ctx context.Context, self, dir string) (*trivialServer, error) {
	return onFreePorts(ctx, func() (*trivialServer, error) {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		cmd := exec.Command(self)
		cmd.Env = append(baseEnv(os.Environ()), TrivialServerEnv+"="+addr)
		cmd.Dir = dir
		p, err := startChild("trivial JSON server", cmd)
		if err != nil {
			return nil, err
		}
		t := &trivialServer{url: "http://" + addr, proc: p}
		if err := p.waitHTTP(ctx, t.url+"/readyz", 10*time.Second, nil); err != nil {
			p.stop()
			return nil, err
		}
		return t, nil
	})
}

// us formats a CPU time per request in microseconds; "–" when it could not
// be read.
func us(d time.Duration) string {
	if d <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
}
