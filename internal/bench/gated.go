package bench

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parkgate/parkgate/internal/childproc"
	"github.com/parkgate/parkgate/ticket"
)

// Targets of issue 4 for gated.
const (
	// ScanP99Target bounds the p99 of the lane's scan-to-relay latency.
	ScanP99Target = 10 * time.Millisecond
	// RSSTarget bounds gated's resident memory with the benchmark's cache
	// (40 MiB).
	RSSTarget = 40 << 20
)

// Reason words of the gate (docs/gated.md) that the benchmark expects.
const (
	reasonTicket       = "ticket"
	reasonBadSignature = "bad_signature"
)

// cacheVersion is the version of the benchmark's cache snapshot.
const cacheVersion = 1

// entryMargin is how long a reservation must stay valid after the cache
// is made for its ticket to be scanned: far longer than the runs.
const entryMargin = time.Hour

// GatedReport holds the figures of sections e and f.
type GatedReport struct {
	// The cache: how many reservations over how many spots, how many of
	// them are paid and valid now (Grantable), how many tickets were
	// issued, and what `gated import` took.
	Reservations, Spots int
	Grantable           int
	Tickets             int
	Import              time.Duration
	// Verify is what the signature check alone (ticket.Verifier's
	// VerifySignature) takes in this process, over VerifyN tickets: one
	// part of every decision.
	Verify  Latency
	VerifyN int

	// Resident memory of the gated process (VmRSS) once ready, after
	// every scan run, and its peak (VmHWM) then; RSSErr says why they are
	// missing.
	RSSStart, RSSLoad, RSSPeak int64
	RSSErr                     string

	// Runs are the native scan runs: granted at each concurrency of
	// Plan.ScanConcurrencies, then denied.
	Runs []ScanRun
	// Scans counts every decision sent to the native gated, warm-ups
	// included; Outbox is the outbox depth /v1/status reported after
	// them (every decision is recorded).
	Scans, Outbox int

	// Emulated is the arm64 binary under qemu-user (nil if skipped, and
	// then EmulatedSkip says why).
	Emulated     *EmulatedRun
	EmulatedSkip string
}

// EmulatedRun is section f: the linux/arm64 gated under qemu-user.
type EmulatedRun struct {
	Binary, Emulator string
	Version          string // what the binary's `version` printed
	Ready            time.Duration
	Run              ScanRun
}

// ScanRun is one closed loop of scans against gated.
type ScanRun struct {
	Label   string
	Workers int
	// Want is the reason every decision should have.
	Want string
	// Client holds the round trips as the client timed them (send to
	// the end of the answer); status 200 is the correct answer.
	Client Summary
	// Lane holds the lane's own latency (the answer's latencyMs: from
	// the read reaching the lane to the relay command, or to the record
	// when nothing opens) of every answered scan.
	Lane Latency
	// Reasons counts the answered decisions by reason.
	Reasons map[string]int
	// Unexpected counts answers with another reason than Want, and
	// UnexpectedSamples shows up to three.
	Unexpected        int
	UnexpectedSamples []string
}

// Errors counts the scans that went wrong: no 200, or another reason.
func (s ScanRun) Errors() int { return s.Client.Errors + s.Unexpected }

// cacheEntry is one reservation of the benchmark's cache, in the JSON of
// `gated import` (gate/localdb.ReadImport).
type cacheEntry struct {
	ID    string    `json:"id"`
	Spot  string    `json:"spotId"`
	From  time.Time `json:"reservedFrom"`
	Until time.Time `json:"reservedUntil"`
	Car   string    `json:"carId"`
	State string    `json:"state"`
}

// benchCache returns n reservations over spots spots ("1" to spots), the
// same for the same now (truncated to the second). Per 20: 16 are paid and
// valid now (started up to 6 h ago, ending 2 to 12 h from now), one is
// cancelled, one has left (a window in the past), one is paid for a
// window 1 to 72 h ahead, and one is taken (its car inside). Windows of a
// spot overlap: the gate never checks that, and the point is a cache of
// this size with thousands of distinct valid tickets. Plates look like
// "B-XY 1234" and are all distinct.
func benchCache(now time.Time, n, spots int) []cacheEntry {
	now = now.UTC().Truncate(time.Second)
	rng := mrand.New(mrand.NewPCG(4, uint64(n)))
	between := func(lo, hi time.Duration) time.Duration {
		return lo + time.Duration(rng.Int64N(int64((hi-lo)/time.Second)+1))*time.Second
	}
	out := make([]cacheEntry, n)
	for i := range out {
		e := cacheEntry{ID: fmt.Sprintf("bench-%05d", i), Spot: strconv.Itoa(i%max(spots, 1) + 1), Car: benchPlate(i), State: "paid"}
		valid := func() {
			e.From = now.Add(-between(time.Minute, 6*time.Hour))
			e.Until = now.Add(between(2*time.Hour, 12*time.Hour))
		}
		switch i % 20 {
		case 0:
			valid()
			e.State = "cancelled"
		case 1:
			e.Until = now.Add(-between(time.Hour, 72*time.Hour))
			e.From = e.Until.Add(-between(time.Hour, 4*time.Hour))
			e.State = "left"
		case 2:
			e.From = now.Add(between(time.Hour, 72*time.Hour))
			e.Until = e.From.Add(between(time.Hour, 4*time.Hour))
		case 3:
			valid()
			e.State = "taken"
		default:
			valid()
		}
		out[i] = e
	}
	return out
}

// benchPlate is the i-th plate, "B-XY 1234": distinct for i < 10,000.
func benchPlate(i int) string {
	return fmt.Sprintf("B-%c%c %04d", 'A'+byte(i/26%26), 'A'+byte(i%26), i%10000)
}

// grantable reports whether e's ticket enters at an entry lane from now
// until now+margin: paid, started, and not ending before then.
func (e cacheEntry) grantable(now time.Time, margin time.Duration) bool {
	return e.State == "paid" && !now.Before(e.From) && e.Until.After(now.Add(margin))
}

// tamper changes one character inside the signature of a ticket code,
// keeping it well-formed base32 of the right length, so that the gate
// decodes it and denies it with bad_signature.
func tamper(code string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	b := []byte(code)
	// The signature is the last 64 bytes (about 103 characters); ten
	// from the end is inside it and clear of the last character, whose
	// unused low bits must stay zero.
	i := len(b) - 10
	if i < 0 {
		return code
	}
	b[i] = alphabet[(strings.IndexByte(alphabet, b[i])+1)%len(alphabet)]
	return string(b)
}

// verifyProbe times the signature check of up to n of codes, for at most
// budget; every code must verify.
func verifyProbe(pub ed25519.PublicKey, codes []string, n int, budget time.Duration) (Latency, int, error) {
	v, err := ticket.NewVerifier(pub)
	if err != nil {
		return Latency{}, 0, err
	}
	var ds []time.Duration
	end := time.Now().Add(budget)
	for i := 0; i < n && i < len(codes) && time.Now().Before(end); i++ {
		t0 := time.Now()
		_, err := v.VerifySignature(codes[i])
		ds = append(ds, time.Since(t0))
		if err != nil {
			return Latency{}, 0, fmt.Errorf("a benchmark ticket does not verify: %w", err)
		}
	}
	return LatencyOf(ds), len(ds), nil
}

// scanBody is the JSON body of POST /v1/sim/scan.
func scanBody(code string) []byte {
	b, _ := json.Marshal(map[string]string{"code": code})
	return b
}

// parseStatusKB reads a "Name:   1234 kB" field of /proc/<pid>/status
// and returns it in bytes.
func parseStatusKB(status []byte, field string) (int64, error) {
	for line := range strings.Lines(string(status)) {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || name != field {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("%s: unexpected %q", field, strings.TrimSpace(rest))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", field, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("no %s field", field)
}

// memory reads VmRSS and VmHWM of process pid (Linux only).
func memory(pid int) (rss, peak int64, err error) {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	if rss, err = parseStatusKB(st, "VmRSS"); err != nil {
		return 0, 0, err
	}
	if peak, err = parseStatusKB(st, "VmHWM"); err != nil {
		return 0, 0, err
	}
	return rss, peak, nil
}

// gatedProc is a gated child process in simulator mode.
type gatedProc struct {
	*child
	url string
}

// gatedEnv is gated's configuration for the benchmark.
func gatedEnv(addr, db, pubKey string) []string {
	return append(baseEnv(os.Environ()),
		"PARKING_HARDWARE_MODE=sim",
		"PARKING_HTTP_ADDR="+addr,
		"PARKING_DB_PATH="+db,
		"PARKING_TICKETS_PUBLIC_KEY="+pubKey,
		"PARKING_LOG_LEVEL=warn",
		"PARKING_GATE_ROLE=entry",
	)
}

// startGated runs argv (the gated binary, possibly behind an emulator) in
// dir with the database db, on a free 127.0.0.1 port, and waits until
// /v1/status answers with the imported cache version. It retries when the
// port was taken between probe and bind.
func startGated(ctx context.Context, argv []string, dir, db, pubKey string, within time.Duration) (*gatedProc, error) {
	return onFreePorts(ctx, func() (*gatedProc, error) {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = gatedEnv(addr, db, pubKey)
		cmd.Dir = dir
		c, err := startChild("gated", cmd)
		if err != nil {
			return nil, err
		}
		g := &gatedProc{child: c, url: "http://" + addr}
		err = c.waitHTTP(ctx, g.url+"/v1/status", within, func(body []byte) error {
			var st struct {
				CacheVersion int64 `json:"cacheVersion"`
			}
			if err := json.Unmarshal(body, &st); err != nil {
				return err
			}
			if st.CacheVersion != cacheVersion {
				return fmt.Errorf("cache version %d, want %d", st.CacheVersion, cacheVersion)
			}
			return nil
		})
		if err != nil {
			c.stop()
			return nil, err
		}
		return g, nil
	})
}

// outbox asks /v1/status for the outbox depth.
func (g *gatedProc) outbox(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	client := &http.Client{Transport: loopbackTransport(1)}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.url+"/v1/status", nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var st struct {
		Outbox int `json:"outbox"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return 0, fmt.Errorf("/v1/status: %w", err)
	}
	return st.Outbox, nil
}

// importCache writes entries to dir/name.json and runs `gated import`
// into db.
func importCache(ctx context.Context, gated, dir, db string, entries []cacheEntry) (time.Duration, error) {
	file := filepath.Join(dir, "cache.json")
	data, err := json.Marshal(struct {
		Version      int          `json:"version"`
		Reservations []cacheEntry `json:"reservations"`
	}{cacheVersion, entries})
	if err != nil {
		return 0, err
	}
	if err := os.WriteFile(file, data, 0o600); err != nil {
		return 0, err
	}
	ictx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ictx, gated, "import", file)
	cmd.Env = append(baseEnv(os.Environ()), "PARKING_DB_PATH="+db, "PARKING_LOG_LEVEL=warn")
	cmd.Dir = dir
	cmd.SysProcAttr = childproc.Attr()
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(t0)
	if err != nil {
		return 0, fmt.Errorf("gated import: %v: %s", err, bytes.TrimSpace(out))
	}
	if want := fmt.Sprintf("imported %d reservations", len(entries)); !bytes.Contains(out, []byte(want)) {
		return 0, fmt.Errorf("gated import said %q, expected %q", bytes.TrimSpace(out), want)
	}
	return took, nil
}

// scanSample is one scan: the client's round trip and what gated answered.
type scanSample struct {
	Sample
	Lane   time.Duration // latencyMs of the answer
	Reason string
	Warm   bool // a warm-up scan, not counted
}

// scanPlan is one closed loop of scans.
type scanPlan struct {
	label, want     string
	workers         int
	warmup, max     int
	dur             time.Duration
	bodies          [][]byte // one per scan, in order; the run ends when they do
	timeout         time.Duration
	warmupAllowance time.Duration // the most the warm-up may take
}

// scanAnswer is the part of POST /v1/sim/scan's answer the benchmark reads.
type scanAnswer struct {
	Granted   bool    `json:"granted"`
	Reason    string  `json:"reason"`
	LatencyMs float64 `json:"latencyMs"`
}

// runScans runs p against base and returns every scan and how many bodies
// it took (a prefix of p.bodies; the last few may be unsent).
func runScans(ctx context.Context, base string, p scanPlan) ([]scanSample, int) {
	client := &http.Client{Timeout: p.timeout, Transport: loopbackTransport(p.workers)}
	defer client.CloseIdleConnections()
	limit := min(len(p.bodies), p.warmup+p.max)
	began := time.Now()
	hard := began.Add(p.warmupAllowance + p.dur)
	var (
		next     atomic.Int64
		measured atomic.Int64 // UnixNano of the first measured scan
		wg       sync.WaitGroup
		per      = make([][]scanSample, p.workers)
	)
	for w := range p.workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= limit {
					return
				}
				t0 := time.Now()
				if t0.After(hard) {
					return
				}
				warm := i < p.warmup
				if !warm {
					measured.CompareAndSwap(0, t0.UnixNano())
					if t0.Sub(time.Unix(0, measured.Load())) >= p.dur {
						return
					}
				}
				s := scanOnce(ctx, client, base, p.bodies[i])
				s.Start, s.Warm = t0, warm
				per[w] = append(per[w], s)
			}
		})
	}
	wg.Wait()
	var all []scanSample
	for _, s := range per {
		all = append(all, s...)
	}
	return all, min(int(next.Load()), len(p.bodies))
}

// scanOnce posts one scan and times it.
func scanOnce(ctx context.Context, client *http.Client, base string, body []byte) scanSample {
	t0 := time.Now()
	var s scanSample
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/sim/scan", bytes.NewReader(body))
	if err != nil {
		s.Err = err.Error()
		return s
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		s.Latency, s.Err = time.Since(t0), err.Error()
		return s
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	s.Latency, s.Code = time.Since(t0), resp.StatusCode
	switch {
	case err != nil:
		s.Code, s.Err = 0, "reading the answer: "+err.Error()
	case resp.StatusCode != http.StatusOK:
		s.Err = strings.TrimSpace(string(data))
	default:
		var a scanAnswer
		if err := json.Unmarshal(data, &a); err != nil {
			s.Code, s.Err = 0, "not a decision: "+strings.TrimSpace(string(data))
			break
		}
		s.Reason = a.Reason
		s.Lane = time.Duration(math.Round(a.LatencyMs*1000)) * time.Microsecond
	}
	return s
}

// summarizeScans reduces the measured (non-warm-up) samples of a run.
func summarizeScans(label, want string, workers int, samples []scanSample) ScanRun {
	r := ScanRun{Label: label, Workers: workers, Want: want, Reasons: map[string]int{}}
	var (
		plain []Sample
		lane  []time.Duration
		from  time.Time
		seen  = map[string]bool{}
	)
	for _, s := range samples {
		if s.Warm {
			continue
		}
		if from.IsZero() || s.Start.Before(from) {
			from = s.Start
		}
		plain = append(plain, s.Sample)
		if s.Code != http.StatusOK {
			continue
		}
		lane = append(lane, s.Lane)
		r.Reasons[s.Reason]++
		if s.Reason != want {
			r.Unexpected++
			msg := "reason " + s.Reason
			if !seen[msg] && len(r.UnexpectedSamples) < 3 {
				seen[msg] = true
				r.UnexpectedSamples = append(r.UnexpectedSamples, msg)
			}
		}
	}
	r.Client = Summarize(label, plain, from, OK(http.StatusOK))
	r.Client.Workers = workers
	r.Lane = LatencyOf(lane)
	return r
}

// gated runs sections e and f.
func (b *runner) gated(ctx context.Context) (rep *GatedReport, err error) {
	p := b.p
	dir, err := os.MkdirTemp(b.parent, "gated-")
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(dir)) }()

	// A fresh site key, in process: the gate verifies with its public half.
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	signer, err := ticket.NewSigner(priv)
	if err != nil {
		return nil, err
	}
	pubKey := ticket.FormatPublicKey(pub)

	now := time.Now().UTC().Truncate(time.Second)
	entries := benchCache(now, p.GatedReservations, p.GatedSpots)
	rep = &GatedReport{Reservations: len(entries), Spots: p.GatedSpots}

	// One ticket per distinct grantable reservation, in a shuffled order
	// so that the lookups wander over the whole cache.
	var codes []string
	for _, e := range entries {
		if !e.grantable(now, entryMargin) {
			continue
		}
		code, err := signer.Issue(ticket.Ticket{ReservationID: e.ID, SpotID: e.Spot, From: e.From, Until: e.Until, CarID: e.Car})
		if err != nil {
			return nil, fmt.Errorf("issuing a ticket for %s: %w", e.ID, err)
		}
		codes = append(codes, code)
	}
	rep.Grantable, rep.Tickets = len(codes), len(codes)
	if rep.Verify, rep.VerifyN, err = verifyProbe(pub, codes, 1000, time.Second); err != nil {
		return nil, err
	}
	mrand.New(mrand.NewPCG(7, 7)).Shuffle(len(codes), func(i, j int) { codes[i], codes[j] = codes[j], codes[i] })
	granted := make([][]byte, len(codes))
	denied := make([][]byte, len(codes))
	for i, c := range codes {
		granted[i] = scanBody(c)
		denied[len(codes)-1-i] = scanBody(tamper(c))
	}

	b.progress("e: gated: %d reservations over %d spots (%d with a valid ticket now), gated import", len(entries), p.GatedSpots, len(codes))
	db := filepath.Join(dir, "native.db")
	if rep.Import, err = importCache(ctx, b.o.Gated, dir, db, entries); err != nil {
		return nil, err
	}
	b.progress("  imported in %s", ms(rep.Import))
	if err := b.gatedNative(ctx, rep, dir, db, pubKey, granted, denied); err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err := b.gatedEmulated(ctx, rep, dir, entries, pubKey, granted); err != nil {
		return nil, err
	}
	return rep, ctx.Err()
}

// gatedNative is section e: memory, and the scan runs on this machine.
func (b *runner) gatedNative(ctx context.Context, rep *GatedReport, dir, db, pubKey string, granted, denied [][]byte) (err error) {
	p := b.p
	b.progress("e: starting %s in sim mode", b.o.Gated)
	g, err := startGated(ctx, []string{b.o.Gated}, dir, db, pubKey, 20*time.Second)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, g.stop()) }()
	if rss, _, err := memory(g.pid()); err == nil {
		rep.RSSStart = rss
		b.progress("  RSS after start: %s", mib(rss))
	} else {
		rep.RSSErr = err.Error()
	}

	used := 0
	for _, n := range p.ScanConcurrencies {
		sp := scanPlan{label: fmt.Sprintf("granted, concurrency %d", n), want: reasonTicket, workers: n,
			warmup: p.ScanWarmup, max: p.ScanMax, dur: p.ScanDuration, bodies: granted[used:],
			timeout: 10 * time.Second, warmupAllowance: 20 * time.Second}
		b.progress("e: %s: POST /v1/sim/scan with valid tickets, %d scans or %s", sp.label, sp.max, dur(sp.dur))
		samples, took := runScans(ctx, g.url, sp)
		used += took
		rep.Scans += len(samples)
		r := summarizeScans(sp.label, sp.want, n, samples)
		rep.Runs = append(rep.Runs, r)
		b.scanDone(r)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	sp := scanPlan{label: "denied (bad_signature), concurrency 1", want: reasonBadSignature, workers: 1,
		warmup: p.ScanWarmup, max: p.DeniedMax, dur: p.DeniedDuration, bodies: denied,
		timeout: 10 * time.Second, warmupAllowance: 20 * time.Second}
	b.progress("e: %s: tampered tickets, %d scans or %s", sp.label, sp.max, dur(sp.dur))
	samples, _ := runScans(ctx, g.url, sp)
	rep.Scans += len(samples)
	r := summarizeScans(sp.label, sp.want, 1, samples)
	rep.Runs = append(rep.Runs, r)
	b.scanDone(r)

	if rss, peak, err := memory(g.pid()); err == nil {
		rep.RSSLoad, rep.RSSPeak = rss, peak
		b.progress("  RSS after the load: %s (peak %s)", mib(rss), mib(peak))
	} else if rep.RSSErr == "" {
		rep.RSSErr = err.Error()
	}
	if rep.Outbox, err = g.outbox(ctx); err != nil {
		return fmt.Errorf("reading the outbox depth: %w", err)
	}
	return ctx.Err()
}

// gatedEmulated is section f: the arm64 binary under qemu-user, on a
// fresh copy of the cache (imported by the native binary: the file is
// the same on every architecture).
func (b *runner) gatedEmulated(ctx context.Context, rep *GatedReport, dir string, entries []cacheEntry, pubKey string, granted [][]byte) (err error) {
	p := b.p
	switch {
	case b.o.GatedArm64 == "":
		rep.EmulatedSkip = "no linux/arm64 gated binary was given"
		return nil
	case b.o.Qemu == "":
		rep.EmulatedSkip = "qemu-aarch64 (Debian package qemu-user) is not on PATH"
		return nil
	}
	bin, err := filepath.Abs(b.o.GatedArm64)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		rep.EmulatedSkip = fmt.Sprintf("%s does not exist (make build-arm64 builds it)", b.o.GatedArm64)
		return nil
	}
	em := &EmulatedRun{Binary: b.o.GatedArm64, Emulator: b.o.Qemu}
	_, em.Version = binaryVersion(ctx, bin, b.o.Qemu)
	db := filepath.Join(dir, "emulated.db")
	if _, err := importCache(ctx, b.o.Gated, dir, db, entries); err != nil {
		return err
	}
	b.progress("f: starting %s under %s", b.o.GatedArm64, b.o.Qemu)
	t0 := time.Now()
	g, err := startGated(ctx, []string{b.o.Qemu, bin}, dir, db, pubKey, 90*time.Second)
	if err != nil {
		return fmt.Errorf("under qemu: %w", err)
	}
	defer func() { err = errors.Join(err, g.stop()) }()
	em.Ready = time.Since(t0)
	sp := scanPlan{label: "granted, concurrency 1 (emulated)", want: reasonTicket, workers: 1,
		warmup: p.EmulatedWarmup, max: p.EmulatedMax, dur: p.EmulatedDuration, bodies: granted,
		timeout: 30 * time.Second, warmupAllowance: 60 * time.Second}
	b.progress("f: %s: %d scans or %s", sp.label, sp.max, dur(sp.dur))
	samples, _ := runScans(ctx, g.url, sp)
	em.Run = summarizeScans(sp.label, sp.want, 1, samples)
	b.scanDone(em.Run)
	rep.Emulated = em
	return ctx.Err()
}

func (b *runner) scanDone(r ScanRun) {
	s := r.Client
	b.progress("  done: %d scans, %.0f decisions/s, lane p50 %s p99 %s p99.9 %s; round trip p50 %s p99 %s; %d errors",
		s.Requests, s.Throughput, ms(r.Lane.P50), ms(r.Lane.P99), ms(r.Lane.P999), ms(s.Latency.P50), ms(s.Latency.P99), r.Errors())
}

// mib formats a byte count in MiB.
func mib(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
