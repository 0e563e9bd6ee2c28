package bench

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkgate/parkgate/plate"

	"github.com/parkgate/parkgate/gate/localdb"
	"github.com/parkgate/parkgate/ticket"
)

func TestBenchCache(t *testing.T) {
	now := time.Date(2030, 5, 6, 7, 8, 9, 500, time.UTC)
	es := benchCache(now, 10_000, 500)
	if len(es) != 10_000 {
		t.Fatalf("%d entries", len(es))
	}
	// The same now gives the same cache.
	again := benchCache(now.Add(400*time.Millisecond), 10_000, 500)
	for i := range es {
		if es[i] != again[i] {
			t.Fatalf("entry %d differs between two calls: %+v, %+v", i, es[i], again[i])
		}
	}

	ids, plates := map[string]bool{}, map[string]bool{}
	states := map[string]int{}
	grantable := 0
	now = now.Truncate(time.Second)
	for _, e := range es {
		if ids[e.ID] || plates[e.Car] {
			t.Fatalf("duplicate id or plate: %+v", e)
		}
		ids[e.ID], plates[e.Car] = true, true
		states[e.State]++
		if !regexp.MustCompile(`^B-[A-Z]{2} [0-9]{4}$`).MatchString(e.Car) {
			t.Errorf("plate %q", e.Car)
		}
		if !e.Until.After(e.From) || e.Until.Sub(e.From) > ticket.MaxWindow {
			t.Errorf("window %s to %s", e.From, e.Until)
		}
		if e.From.Nanosecond() != 0 || e.Until.Nanosecond() != 0 {
			t.Errorf("window not in whole seconds: %+v", e)
		}
		if e.grantable(now, entryMargin) {
			grantable++
		}
	}
	if grantable != 8000 || states["paid"] != 8500 || states["cancelled"] != 500 || states["left"] != 500 || states["taken"] != 500 {
		t.Errorf("grantable %d, states %v; want 8000 grantable, 8500 paid (500 of them later), 500 of each other state", grantable, states)
	}

	// gated import accepts it as it is.
	data, err := json.Marshal(map[string]any{"version": cacheVersion, "reservations": es})
	if err != nil {
		t.Fatal(err)
	}
	imp, err := localdb.ReadImport(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(imp.Entries) != len(es) || imp.Entries[7].ReservationID != es[7].ID || imp.Entries[7].Plate != plate.Normalize(es[7].Car) {
		t.Errorf("import read %d entries, entry 7 %+v", len(imp.Entries), imp.Entries[7])
	}
}

func TestGrantable(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	e := cacheEntry{State: "paid", From: now.Add(-time.Hour), Until: now.Add(2 * time.Hour)}
	for _, c := range []struct {
		name string
		mod  func(*cacheEntry)
		want bool
	}{
		{"valid", func(*cacheEntry) {}, true},
		{"starts exactly now", func(e *cacheEntry) { e.From = now }, true},
		{"not started", func(e *cacheEntry) { e.From = now.Add(time.Second) }, false},
		{"ends within the margin", func(e *cacheEntry) { e.Until = now.Add(time.Hour) }, false},
		{"cancelled", func(e *cacheEntry) { e.State = "cancelled" }, false},
		{"inside already", func(e *cacheEntry) { e.State = "taken" }, false},
	} {
		x := e
		c.mod(&x)
		if got := x.grantable(now, time.Hour); got != c.want {
			t.Errorf("%s: grantable = %v", c.name, got)
		}
	}
}

func TestTamperGivesBadSignature(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize))
	s, err := ticket.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ticket.NewVerifier(s.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	for _, e := range benchCache(now, 200, 10) {
		if !e.grantable(now, entryMargin) {
			continue
		}
		code, err := s.Issue(ticket.Ticket{ReservationID: e.ID, SpotID: e.Spot, From: e.From, Until: e.Until, CarID: e.Car})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.VerifySignature(code); err != nil {
			t.Fatalf("untouched ticket: %v", err)
		}
		bad := tamper(code)
		if len(bad) != len(code) || bad == code {
			t.Fatalf("tamper(%q) = %q", code, bad)
		}
		if _, err := v.VerifySignature(bad); ticket.ReasonOf(err) != ticket.ReasonBadSignature {
			t.Fatalf("tampered ticket: %v, want bad_signature", err)
		}
	}
	if got := tamper("PG"); got != "PG" {
		t.Errorf("tamper of a short code = %q", got)
	}
}

func TestParseStatusKB(t *testing.T) {
	st := []byte("Name:\tgated\nVmPeak:\t 1300 kB\nVmHWM:\t   27648 kB\nVmRSS:\t   16384 kB\nThreads:\t7\nVmBad:\t12 MB\n")
	if v, err := parseStatusKB(st, "VmRSS"); err != nil || v != 16<<20 {
		t.Errorf("VmRSS = %d, %v", v, err)
	}
	if v, err := parseStatusKB(st, "VmHWM"); err != nil || v != 27<<20 {
		t.Errorf("VmHWM = %d, %v", v, err)
	}
	for _, f := range []string{"VmSwap", "Threads", "VmBad", "Vm"} {
		if _, err := parseStatusKB(st, f); err == nil {
			t.Errorf("%s: no error", f)
		}
	}
	// This process has an RSS (on Linux, where the benchmark measures it).
	if _, err := os.Stat("/proc/self/status"); err == nil {
		if rss, peak, err := memory(os.Getpid()); err != nil || rss <= 0 || peak < rss {
			t.Errorf("memory of this process: %d, %d, %v", rss, peak, err)
		}
	}
}

func TestSummarizeScans(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	sample := func(i int, warm bool, code int, reason string, lane time.Duration) scanSample {
		return scanSample{Sample: Sample{Start: t0.Add(time.Duration(i) * time.Millisecond), Latency: lane + time.Millisecond, Code: code},
			Lane: lane, Reason: reason, Warm: warm}
	}
	var ss []scanSample
	for i := range 5 {
		ss = append(ss, sample(i, true, 200, "ticket", time.Second)) // warm-up: ignored
	}
	for i := range 100 {
		ss = append(ss, sample(10+i, false, 200, "ticket", time.Duration(i+1)*time.Millisecond))
	}
	ss = append(ss, sample(200, false, 200, "already_inside", time.Millisecond))
	ss = append(ss, sample(201, false, 503, "", 0))
	r := summarizeScans("granted", "ticket", 1, ss)
	if r.Client.Requests != 102 || r.Client.Errors != 1 || r.Unexpected != 1 || r.Errors() != 2 {
		t.Errorf("requests %d, errors %d + %d", r.Client.Requests, r.Client.Errors, r.Unexpected)
	}
	if r.Reasons["ticket"] != 100 || r.Reasons["already_inside"] != 1 || len(r.Reasons) != 2 {
		t.Errorf("reasons %v", r.Reasons)
	}
	if r.Lane.Max != 100*time.Millisecond || r.Lane.P50 != 50*time.Millisecond {
		t.Errorf("lane latency %+v (warm-ups or failures counted?)", r.Lane)
	}
	if len(r.UnexpectedSamples) != 1 || r.UnexpectedSamples[0] != "reason already_inside" {
		t.Errorf("unexpected samples %q", r.UnexpectedSamples)
	}
	if r.Client.Elapsed <= 0 || r.Client.Throughput <= 0 {
		t.Errorf("elapsed %s, throughput %f", r.Client.Elapsed, r.Client.Throughput)
	}
	if e := summarizeScans("none", "ticket", 1, nil); e.Client.Requests != 0 || e.Errors() != 0 {
		t.Errorf("no samples: %+v", e)
	}
}

// fakeGate answers POST /v1/sim/scan like gated: the reason is "ticket"
// for codes starting with PG, bad_signature otherwise.
func fakeGate(t *testing.T, delay time.Duration) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/sim/scan" {
			http.Error(w, "no", http.StatusNotFound)
			return
		}
		var req struct{ Code string }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		n.Add(1)
		time.Sleep(delay)
		reason := "bad_signature"
		if strings.HasPrefix(req.Code, "PG") {
			reason = "ticket"
		}
		fmt.Fprintf(w, `{"granted":%t,"reason":%q,"latencyMs":1.234}`, reason == "ticket", reason)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func bodies(n int, prefix string) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = scanBody(fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}

func TestRunScansIsBoundedByCount(t *testing.T) {
	srv, served := fakeGate(t, 0)
	p := scanPlan{label: "x", want: "ticket", workers: 4, warmup: 10, max: 100, dur: time.Minute,
		bodies: bodies(1000, "PG"), timeout: 5 * time.Second, warmupAllowance: time.Minute}
	ss, took := runScans(context.Background(), srv.URL, p)
	if len(ss) != 110 || served.Load() != 110 {
		t.Fatalf("%d samples, %d served; want warm-up + max = 110", len(ss), served.Load())
	}
	if took < 110 || took > 110+p.workers {
		t.Errorf("took %d bodies", took)
	}
	r := summarizeScans("x", "ticket", 4, ss)
	if r.Client.Requests != 100 || r.Errors() != 0 || r.Lane.P50 != 1234*time.Microsecond {
		t.Errorf("summary: %d scans, %d errors, lane %+v", r.Client.Requests, r.Errors(), r.Lane)
	}

	// The bodies bound it too.
	ss, took = runScans(context.Background(), srv.URL, scanPlan{workers: 2, warmup: 1, max: 100, dur: time.Minute,
		bodies: bodies(7, "PG"), timeout: 5 * time.Second, warmupAllowance: time.Minute})
	if len(ss) != 7 || took != 7 {
		t.Errorf("7 bodies: %d samples, took %d", len(ss), took)
	}
}

func TestRunScansIsBoundedInTime(t *testing.T) {
	srv, _ := fakeGate(t, 5*time.Millisecond)
	t0 := time.Now()
	ss, _ := runScans(context.Background(), srv.URL, scanPlan{workers: 1, warmup: 2, max: 1_000_000, dur: 150 * time.Millisecond,
		bodies: bodies(10_000, "XX"), timeout: 5 * time.Second, warmupAllowance: time.Minute})
	if took := time.Since(t0); took > 2*time.Second {
		t.Errorf("ran %s for a 150 ms run", took)
	}
	r := summarizeScans("x", "bad_signature", 1, ss)
	// At most 150 ms / 5 ms = 30 scans (plus slack); at least one, however
	// loaded the machine (a busy CI machine may fit only a few).
	if r.Client.Requests < 1 || r.Client.Requests > 40 || r.Errors() != 0 {
		t.Errorf("%d scans in 150 ms of 5 ms each, %d errors", r.Client.Requests, r.Errors())
	}

	// A cancelled context stops it at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if ss, _ := runScans(ctx, srv.URL, scanPlan{workers: 2, warmup: 0, max: 10, dur: time.Minute,
		bodies: bodies(10, "PG"), timeout: time.Second, warmupAllowance: time.Minute}); len(ss) != 0 {
		t.Errorf("%d scans after cancel", len(ss))
	}
}

func TestScanOnceFailures(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/sim/scan":
			http.Error(w, `{"error":"lane_failed"}`, http.StatusServiceUnavailable)
		default:
			fmt.Fprint(w, "not json")
		}
	}))
	defer srv.Close()
	client := &http.Client{Transport: loopbackTransport(1)}
	if s := scanOnce(context.Background(), client, srv.URL, scanBody("PG1")); s.Code != 503 || !strings.Contains(s.Err, "lane_failed") {
		t.Errorf("503: %+v", s)
	}
	if s := scanOnce(context.Background(), client, srv.URL+"/other", scanBody("PG1")); s.Code != 0 || !strings.Contains(s.Err, "not a decision") {
		t.Errorf("not JSON: %+v", s)
	}
	// Never anything but 127.0.0.1.
	if s := scanOnce(context.Background(), client, "http://192.0.2.1:9", scanBody("PG1")); s.Code != 0 || !strings.Contains(s.Err, "only 127.0.0.1") {
		t.Errorf("off-host: %+v", s)
	}
}

func sampleGated() *GatedReport {
	run := func(label, want string, workers, n int, rps float64, lane Latency) ScanRun {
		return ScanRun{Label: label, Want: want, Workers: workers,
			Client:  Summary{Label: label, Workers: workers, Requests: n, Throughput: rps, Latency: lat(0.7, 1.6, 2.4, 3), Codes: map[int]int{200: n}},
			Lane:    lane,
			Reasons: map[string]int{want: n}}
	}
	return &GatedReport{
		Reservations: 10_000, Spots: 500, Grantable: 8000, Tickets: 8000, Import: 150 * time.Millisecond,
		Verify: lat(0.05, 0.07, 0.1, 0.2), VerifyN: 1000,
		RSSStart: 16 << 20, RSSLoad: 27 << 20, RSSPeak: 27 << 20,
		Runs: []ScanRun{
			run("granted, concurrency 1", "ticket", 1, 3000, 1400, lat(0.48, 1.2, 2, 2.5)),
			run("granted, concurrency 4", "ticket", 4, 3000, 1600, lat(2.1, 3.8, 5.2, 7)),
			run("denied (bad_signature), concurrency 1", "bad_signature", 1, 3000, 1450, lat(0.46, 0.9, 2, 4.4)),
		},
		Scans: 9150, Outbox: 9150,
		Emulated: &EmulatedRun{Binary: "bin/linux-arm64/gated", Emulator: "/usr/bin/qemu-aarch64", Version: "v1", Ready: time.Second,
			Run: run("granted, concurrency 1 (emulated)", "ticket", 1, 1000, 260, lat(2.7, 5.6, 44, 44))},
	}
}

func TestGatedTargets(t *testing.T) {
	g := sampleGated()
	r := &Report{Gated: g}
	ts := r.Targets()
	if len(ts) != 4 {
		t.Fatalf("%d targets, want 4 (two RSS, two granted concurrencies): %+v", len(ts), ts)
	}
	for _, tr := range ts {
		if !tr.Pass {
			t.Errorf("target %q misses: %s", tr.Name, tr.Measured)
		}
	}
	if !strings.Contains(ts[2].Name, "concurrency 1: < 10.0 ms") || !strings.Contains(ts[2].Measured, "p99 1.20 ms") {
		t.Errorf("latency target %+v", ts[2])
	}

	g.Runs[0].Lane.P99 = ScanP99Target // strict
	g.Runs[1].Unexpected = 1           // errors fail it
	g.RSSStart = RSSTarget
	g.RSSLoad = 0
	g.RSSErr = "no /proc"
	ts = r.Targets()
	for i, want := range []bool{false, false, false, false} {
		if ts[i].Pass != want {
			t.Errorf("target %q: pass %v", ts[i].Name, ts[i].Pass)
		}
	}
	if ts[1].Measured != "not measured (no /proc)" {
		t.Errorf("missing RSS: %q", ts[1].Measured)
	}
	notes := strings.Join(r.Notes(), " ")
	for _, want := range []string{"above the 10.0 ms target", "That target is MISSED by", "the 40.0 MiB target is MISSED"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
}

func TestGatedMarkdown(t *testing.T) {
	r := &Report{Date: time.Date(2030, 5, 6, 7, 8, 0, 0, time.UTC), Plan: DefaultPlan(), Gated: sampleGated(),
		Machine: Machine{CPUs: 2, GOMAXPROCS: 2, OS: "linux", Arch: "amd64", GoVersion: "go1.26.8", GatedVersion: "v1", DataFS: "tmpfs",
			Fsync: lat(0.18, 0.27, 0.3, 0.4), FsyncN: 200}}
	md := string(r.Markdown())
	for _, want := range []string{
		"| gated version | v1 |",
		"## e. gated: memory and scan-to-relay latency",
		"| after start (cache imported, ready, no scan yet) | 16.0 MiB |",
		"| granted, concurrency 1 | 3000 | 1400 | 0.48 ms | 1.20 ms | 2.00 ms | 2.50 ms | 0.70 ms | 1.60 ms | 2.40 ms | ticket: 3000 | 0 |",
		"| denied (bad_signature), concurrency 1 | 3000 |",
		"the outbox held 9150 records for the 9150 decisions sent: every decision was recorded",
		"## f. gated on arm64: emulated (qemu-user on x86-64), not a Raspberry Pi",
		"**These figures are emulated, not measured on a Raspberry Pi.**",
		"| granted, concurrency 1 (emulated) | 1000 | 260 |",
		"within the 10.0 ms target",
		"a bare 4 KiB append + fsync on this disk takes 0.18 ms",
		"the Ed25519 signature check 0.05 ms",
		"within the 40.0 MiB target",
		"5.6× the native p50",
		"No request got an unexpected answer.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// Only what ran: no centrald section, no centrald target.
	for _, not := range []string{"## a. GET /parkings", "## d. ", "mixed traffic", "centrald version", "NaN", "%!"} {
		if strings.Contains(md, not) {
			t.Errorf("gated-only report holds %q", not)
		}
	}
	checkTables(t, md)

	// Skipped emulation says why.
	r.Gated.Emulated, r.Gated.EmulatedSkip = nil, "qemu-aarch64 (Debian package qemu-user) is not on PATH"
	md = string(r.Markdown())
	if !strings.Contains(md, "Skipped: qemu-aarch64 (Debian package qemu-user) is not on PATH.") ||
		!strings.Contains(md, "The emulated arm64 run was skipped") {
		t.Error("no skip note")
	}

	// Errors of gated runs reach the errors paragraph; a lost outbox
	// record is called out.
	r.Gated.Runs[2].Unexpected, r.Gated.Runs[2].UnexpectedSamples = 2, []string{"reason malformed"}
	r.Gated.Outbox = 9149
	md = string(r.Markdown())
	for _, want := range []string{"2 requests got an unexpected answer (gated denied (bad_signature), concurrency 1: 2, e.g. reason malformed)",
		"1 decisions are MISSING from the outbox"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

func TestBothPartsInOneReport(t *testing.T) {
	r := sampleReport()
	r.Gated = sampleGated()
	if n := len(r.Targets()); n != 8 {
		t.Errorf("%d targets, want 4 of centrald and 4 of gated", n)
	}
	md := string(r.Markdown())
	a, e := strings.Index(md, "## a. "), strings.Index(md, "## e. ")
	if a < 0 || e < a || strings.Index(md, "## Notes") < e {
		t.Error("sections out of order")
	}
	if notes := r.Notes(); len(notes) != 5 {
		t.Errorf("%d notes paragraphs, want 5", len(notes))
	}
	checkTables(t, md)
}

// checkTables: every row of a table has as many cells as its header.
func checkTables(t *testing.T, md string) {
	t.Helper()
	lines := strings.Split(md, "\n")
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "|") {
			continue
		}
		cells := countCells(lines[i])
		for i++; i < len(lines) && strings.HasPrefix(lines[i], "|"); i++ {
			if n := countCells(lines[i]); n != cells {
				t.Errorf("table row %q has %d cells, header %d", lines[i], n, cells)
			}
		}
	}
}
