package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func lat(p50, p99, p999, max float64) Latency {
	d := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	return Latency{P50: d(p50), P99: d(p99), P999: d(p999), Max: d(max)}
}

// sampleReport is a report as a run on a small machine might produce it.
func sampleReport() *Report {
	pl := DefaultPlan()
	contended := func(workers int, rps float64) Summary {
		return Summary{Label: "concurrency", Workers: workers, Requests: int(rps * 8), Throughput: rps,
			Latency: lat(0.4, 2, 4, 8), Codes: map[int]int{201: 100, 409: int(rps*8) - 100},
			ByCode: map[int]Latency{201: lat(1, 2, 3, 4), 409: lat(0.3, 1, 2, 3)}}
	}
	return &Report{
		Date: time.Date(2030, 5, 6, 7, 8, 0, 0, time.UTC),
		Machine: Machine{CPUs: 2, GOMAXPROCS: 2, OS: "linux", Arch: "arm64", CPUModel: "Cortex-A72 | rev 3",
			GoVersion: "go1.26.8", CentraldGo: "go1.26.8", CentraldVersion: "v1.2.3", DataFS: "ext2/3/4",
			Fsync: lat(0.2, 0.5, 0.6, 0.7), FsyncN: 200},
		Plan: pl,
		List: Summary{Label: "fixed 500 req/s", Rate: 500, Requests: 5000, Throughput: 500,
			Latency: lat(1, 3, 4, 5), Codes: map[int]int{200: 5000}},
		ListMax: Summary{Label: "closed loop, 16 workers", Workers: 16, Requests: 16000, Throughput: 1600,
			Latency: lat(9, 25, 36, 67), Codes: map[int]int{200: 16000}},
		Mixed: Summary{Label: "mixed", Rate: 1000, Requests: 15000, Throughput: 1000,
			Latency: lat(1, 12, 18, 30), Codes: map[int]int{200: 12000, 201: 3000}},
		MixedRoutes: []Summary{
			{Label: routeSpot, Requests: 10500, Throughput: 700, Latency: lat(1, 10, 15, 20), Codes: map[int]int{200: 10500}},
			{Label: routeList, Requests: 1500, Throughput: 100, Latency: lat(5, 19, 25, 30), Codes: map[int]int{200: 1500}},
			{Label: routeReserve, Requests: 3000, Throughput: 200, Latency: lat(2, 11, 16, 20), Codes: map[int]int{201: 3000}},
		},
		MixedSegments: []Segment{
			{Summary: Summary{Label: "0 s–3 s", Requests: 3000, Latency: lat(1, 5, 6, 7)}, List: Summary{Latency: lat(2, 4, 5, 6)}, Created: 800},
			{Summary: Summary{Label: "12 s–15 s", Requests: 3000, Latency: lat(1, 15, 16, 17)}, List: Summary{Latency: lat(9, 19, 20, 21)}, Created: 3200},
		},
		Floor:     Summary{Label: "GET /healthz", Workers: 1, Requests: 11000, Throughput: 5500, Latency: lat(0.16, 0.3, 0.5, 1)},
		Contended: []Summary{contended(1, 1800), contended(16, 3300), contended(64, 3000)},
		Raw:       []Summary{contended(1, 4000), contended(16, 4200), contended(64, 4100)},
		RawMethod: RawMethod,
		Centrald:  true,
	}
}

func TestTargets(t *testing.T) {
	r := sampleReport()
	ts := r.Targets()
	if len(ts) != 4 {
		t.Fatalf("%d targets, want 4 (mixed + 3 concurrencies)", len(ts))
	}
	want := []bool{true, false, true, true} // 1800/4000 = 0.45 misses
	for i, tr := range ts {
		if tr.Pass != want[i] {
			t.Errorf("target %q: pass = %v, want %v (%s)", tr.Name, tr.Pass, want[i], tr.Measured)
		}
	}
	if r.AllPass() {
		t.Error("AllPass with a missed ratio")
	}

	// The p99 target is strict, and errors fail it.
	r.Mixed.Latency.P99 = MixedP99Target
	if r.Targets()[0].Pass {
		t.Error("p99 of exactly 20 ms passes a < 20 ms target")
	}
	r.Mixed.Latency.P99 = time.Millisecond
	r.Mixed.Errors = 1
	if r.Targets()[0].Pass {
		t.Error("mixed traffic with an error passes")
	}

	// A concurrency without its in-process figure is not a pass.
	r.Raw = r.Raw[:1]
	if ts := r.Targets(); ts[2].Pass || ts[2].Measured != "not measured" {
		t.Errorf("missing raw figure: %+v", ts[2])
	}
}

func TestMarkdown(t *testing.T) {
	r := sampleReport()
	md := string(r.Markdown())
	for _, want := range []string{
		"# parkgate benchmarks",
		"2030-05-06 07:08 UTC",
		"| CPUs | 2 (GOMAXPROCS 2) |",
		`| CPU model | Cortex-A72 \| rev 3 |`, // a pipe must not break the table
		"| OS/arch | linux/arm64 |",
		"| centrald version | v1.2.3 |",
		"make bench",
		"## a. GET /parkings (500 spots)",
		"| fixed 500 req/s | 5000 | 500 | 1.00 ms | 3.00 ms | 4.00 ms | 5.00 ms | 200: 5000 |",
		"| all requests | 15000 | 1000 | 1.00 ms | 12.0 ms | 18.0 ms | 30.0 ms | 200: 12000, 201: 3000 |",
		"| 12 s–15 s | 3000 | 1.00 ms | 15.0 ms | 17.0 ms | 9.00 ms | 19.0 ms | 3200 |",
		"| 1 | 14400 | 1800 |",
		"0.45 **MISS**",
		"0.79 **PASS**",
		"## Notes",
		"the ≥ 0.5 target is MISSED at concurrency 1",
		"GET /parkings slowed down as reservations accumulated",
		"No request got an unexpected answer.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if notes := r.Notes(); len(notes) != 3 {
		t.Errorf("%d notes paragraphs, want 3 (mixed and list, contended writes, errors)", len(notes))
	}
	if strings.Contains(md, "NaN") || strings.Contains(md, "%!") {
		t.Error("report holds a formatting error")
	}

	// Every row of a table has as many cells as its header.
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

func countCells(line string) int {
	return strings.Count(strings.ReplaceAll(line, `\|`, ""), "|") - 1
}

func TestNotesSayMissesPlainly(t *testing.T) {
	r := sampleReport()
	r.Mixed.Latency.P99 = 950 * time.Millisecond
	r.Mixed.Throughput = 700
	r.Contended[2].Errors = 3
	r.Contended[2].ErrorSamples = []string{"status 500"}
	notes := strings.Join(r.Notes(), " ")
	for _, want := range []string{
		"p99 950 ms, above the 20.0 ms target",
		"That target is MISSED by 930 ms.",
		"It did not keep up with the offered rate: 700 req/s were answered.",
		"The slowest route at p99 was `GET /parkings`",
		"3 requests got an unexpected answer (concurrency: 3, e.g. status 500).",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}

	r = sampleReport()
	r.MixedRoutes[0].Latency.P99 = 18 * time.Millisecond // close behind GET /parkings at 19 ms
	if notes := strings.Join(r.Notes(), " "); !strings.Contains(notes,
		"`GET /parkings` and `GET /parkings/{id}` were about as slow at p99 (19.0 ms and 18.0 ms): the server as a whole was saturated") {
		t.Errorf("two routes alike, yet:\n%s", notes)
	}

	r = sampleReport()
	r.Contended[0].Throughput = 2500
	notes = strings.Join(r.Notes(), " ")
	if !strings.Contains(notes, "meeting the ≥ 0.5 target") || strings.Contains(notes, "MISS") {
		t.Errorf("all targets met, yet:\n%s", notes)
	}
}

func TestFormatting(t *testing.T) {
	for d, want := range map[time.Duration]string{
		150 * time.Microsecond:   "0.15 ms",
		12345 * time.Microsecond: "12.3 ms",
		1234 * time.Millisecond:  "1234 ms",
	} {
		if got := ms(d); got != want {
			t.Errorf("ms(%v) = %q, want %q", d, got, want)
		}
	}
	for d, want := range map[time.Duration]string{
		10 * time.Second: "10 s", 1600 * time.Millisecond: "1600 ms", 6 * time.Hour: "6 h",
	} {
		if got := dur(d); got != want {
			t.Errorf("dur(%v) = %q, want %q", d, got, want)
		}
	}
	if got := codes(Summary{Codes: map[int]int{409: 2, 0: 1, 201: 5}}); got != "no answer: 1, 201: 5, 409: 2" {
		t.Errorf("codes = %q", got)
	}
	if got := joinAnd([]string{"1", "16", "64"}); got != "1, 16 and 64" {
		t.Errorf("joinAnd = %q", got)
	}
}

func TestCPUModel(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]struct{ text, want string }{
		"x86":  {"processor\t: 0\nmodel name\t: AMD EPYC 7B13\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n", "AMD EPYC 7B13"},
		"pi":   {"processor\t: 0\nBogoMIPS\t: 108.00\n\nHardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n", "Raspberry Pi 4 Model B Rev 1.4"},
		"bare": {"processor\t: 0\n", "unknown"},
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(c.text), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := cpuModel(p); got != c.want {
			t.Errorf("%s: cpuModel = %q, want %q", name, got, c.want)
		}
	}
	if got := cpuModel(filepath.Join(dir, "missing")); got != "unknown" {
		t.Errorf("missing file: %q", got)
	}
}

func TestBaseEnvDropsConfiguration(t *testing.T) {
	got := baseEnv([]string{"PATH=/bin", "PARKING_DB_DSN=/x", "NOTIFY_SOCKET=/run/n", "WATCHDOG_USEC=1", "HOME=/root"})
	if strings.Join(got, " ") != "PATH=/bin HOME=/root" {
		t.Errorf("baseEnv = %q", got)
	}
}
