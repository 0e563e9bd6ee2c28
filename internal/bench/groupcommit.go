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
// commit), at each concurrency in the same round; besides them, for
// scale, HTTP without group commit and in-process with it. Reads: GET
// /parkings/{id} on a fresh centrald against a trivial Go JSON server (a
// child process answering the same route with the same body through
// net/http and encoding/json, nothing else), from the same generator at
// the same concurrency, one right after the other. Every round runs it all
// again, so that the spread shows what the shared machine does to the
// ratios.

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
	p("Per round and concurrency, one after the other: the contended reservations of c over HTTP (%s, closed loop) on a "+
		"fresh centrald with group commit (its default) and on one with `PARKING_DB_GROUP_COMMIT=false`, and the same "+
		"pattern in-process through `%s` on a fresh SQLite store with one transaction and one fsync per request (the "+
		"figure of d) and with group commit. **HTTP ÷ raw** is the first over the third. Batch is centrald's "+
		"`parkgate_store_writes_total ÷ parkgate_store_commits_total` after its run: how many requests shared an fsync on "+
		"average. Then `GET /parkings/{id}` (random spots of %d, none reserved) on a fresh centrald and on a trivial Go "+
		"JSON server (a child process: net/http and encoding/json answering the same route with the same body, nothing "+
		"else) from the same closed-loop generator at the same concurrency, %s each.",
		dur(r.Plan.ContendedDuration), RawMethod, r.Plan.Spots, dur(r.Plan.ReadDuration))
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
	okW := OK(201, 409)
	for round := 1; round <= max(b.p.GroupCommitRounds, 1); round++ {
		for _, n := range b.p.GroupCommitConcurrencies {
			g := GroupCommitRound{Round: round, Concurrency: n}
			label := fmt.Sprintf("round %d, concurrency %d", round, n)
			for _, on := range []bool{true, false} {
				env := "PARKING_DB_GROUP_COMMIT=" + strconv.FormatBool(on)
				err := b.withCentraldEnv(ctx, []string{env}, func(c *Centrald) error {
					b.progress("l: %s: contended POST /reserve over HTTP, %s, for %s", label, env, b.p.ContendedDuration)
					samples, from := runHTTP(ctx, httpRun{targeter: contendedTargeter(c.URL, newContention(time.Now(), b.p.Spots)),
						workers: n, warmup: b.p.Warmup, dur: b.p.ContendedDuration, ok: okW})
					s := Summarize("HTTP, "+env, samples, from, okW)
					s.Workers = n
					b.done(s)
					if on {
						g.HTTP = s
						g.Writes, _ = scrapeCounter(ctx, c.URL, "parkgate_store_writes_total")
						g.Commits, _ = scrapeCounter(ctx, c.URL, "parkgate_store_commits_total")
					} else {
						g.HTTPOff = s
					}
					return nil
				})
				if err != nil {
					return nil, err
				}
			}
			for _, on := range []bool{false, true} {
				b.progress("l: %s: in-process %s, group commit %v, for %s", label, RawMethod, on, b.p.ContendedDuration)
				what := "in-process, one transaction per request"
				if on {
					what = "in-process, group commit"
				}
				s, err := b.rawWith(ctx, n, on, what)
				if err != nil {
					return nil, err
				}
				b.done(s)
				if on {
					g.RawGC = s
				} else {
					g.Raw = s
				}
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

// pointReads measures GET /parkings/{id} on a fresh centrald and on the
// trivial server, trivial first.
func (b *runner) pointReads(ctx context.Context, self string, n int, g *GroupCommitRound) error {
	ok := OK(200)
	run := func(base string) Summary {
		samples, from := runHTTP(ctx, httpRun{targeter: spotTargeter(base, b.p.Spots), workers: n,
			warmup: b.p.Warmup, dur: b.p.ReadDuration, ok: ok})
		s := Summarize(fmt.Sprintf("GET /parkings/{id}, concurrency %d", n), samples, from, ok)
		s.Workers = n
		return s
	}
	t, err := startTrivial(ctx, self, b.parent)
	if err != nil {
		return err
	}
	b.progress("l: GET /parkings/{id} on the trivial server, concurrency %d for %s", n, b.p.ReadDuration)
	g.Trivial = run(t.url)
	b.done(g.Trivial)
	if err := t.proc.stop(); err != nil {
		return err
	}
	return b.withCentrald(ctx, func(c *Centrald) error {
		b.progress("l: GET /parkings/{id} on centrald, concurrency %d for %s", n, b.p.ReadDuration)
		g.Reads = run(c.URL)
		b.done(g.Reads)
		return nil
	})
}

// spotTargeter sends GET /parkings/{id} for random spots.
func spotTargeter(base string, spots int) vegeta.Targeter {
	return func(t *vegeta.Target) error {
		*t = vegeta.Target{Method: http.MethodGet, URL: base + "/parkings/" + strconv.Itoa(1+rand.IntN(spots))}
		return nil
	}
}

// rawWith is raw (section d) on a store with group commit on or off; its
// summary is labelled label.
func (b *runner) rawWith(ctx context.Context, n int, groupCommit bool, label string) (s Summary, err error) {
	dir, err := os.MkdirTemp(b.parent, "raw-")
	if err != nil {
		return s, err
	}
	defer os.RemoveAll(dir)
	st, err := sqlitestore.Open(ctx, dir+"/raw.db", sqlitestore.WithGroupCommit(groupCommit))
	if err != nil {
		return s, err
	}
	defer func() { err = errors.Join(err, st.Close()) }()
	ids := make([]string, b.p.Spots)
	for i := range ids {
		ids[i] = strconv.Itoa(i + 1)
	}
	if err := st.SetSpots(ctx, ids, time.Now()); err != nil {
		return s, err
	}
	cfg := booking.DefaultConfig()
	cfg.MaxAdvance = MaxAdvanceHours * time.Hour
	svc := booking.New(st, &fakepay.Provider{}, nil, clock.Real{}, cfg, nil, nil)
	gen := newContention(time.Now(), b.p.Spots)
	op := func(ctx context.Context) (int, string) {
		spot, w := gen.next()
		_, err := svc.Reserve(ctx, spot, w)
		return statusOf(err)
	}
	ok := OK(201, 409)
	samples, from := runLoop(ctx, n, b.p.Warmup, b.p.ContendedDuration, op)
	s = Summarize(label, samples, from, ok)
	s.Workers = n
	return s, ctx.Err()
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
