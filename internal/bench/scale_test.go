package bench

import (
	"context"
	"io"
	"math"
	"net/url"
	"strings"
	"testing"
	"time"
)

// sampleScale is section h as a run on two cores might produce it.
func sampleScale() *ScaleReport {
	run := func(label string, workers int, rps float64, p99 float64) Summary {
		n := int(rps * 8)
		return Summary{Label: label, Workers: workers, Requests: n, Throughput: rps, Latency: lat(4, p99, p99*2, p99*3),
			Codes: map[int]int{201: n / 5, 409: n - n/5}}
	}
	return &ScaleReport{
		Postgres: PostgresInfo{Addr: "127.0.0.1:5432/test", Version: "15.20", SynchronousCommit: "on", Fsync: "on",
			SharedBuffers: "128MB", MaxConnections: 100},
		HAProxy:       "HAProxy version 2.6.12",
		HAProxyConfig: "configs/haproxy.cfg",
		Setups: []ScaleSetup{
			{Instances: 1, Runs: []Summary{run("1 instance, 16", 16, 3000, 14), run("1 instance, 64", 64, 3000, 35)},
				Attempts: []int{50000}, Check: ScaleCheck{Created: 9800, Rows: 9800, Logged: 9800}},
			{Instances: 3, Runs: []Summary{run("3 instances, 16", 16, 2700, 16), run("3 instances, 64", 64, 2000, 76)},
				Attempts: []int{12000, 11000, 13000}, Check: ScaleCheck{Created: 7500, Unanswered: 1, Rows: 7501, Logged: 7501}},
		},
		Raw:      []Summary{run("raw, 16", 16, 4000, 14), run("raw, 64", 64, 2500, 70)},
		RawCheck: ScaleCheck{Created: 10000, Rows: 10000, Logged: -1},
	}
}

func TestScaleRatios(t *testing.T) {
	s := sampleScale()
	for _, c := range []struct {
		got, want float64
	}{
		{s.RatioToRaw(1, 0), 0.75}, {s.RatioToRaw(1, 1), 1.2}, {s.RatioToRaw(3, 0), 0.675}, {s.RatioToRaw(3, 1), 0.8},
		{s.Speedup(0), 0.9}, {s.Speedup(1), 2000.0 / 3000},
	} {
		if math.Abs(c.got-c.want) > 1e-9 {
			t.Errorf("ratio %v, want %v", c.got, c.want)
		}
	}
	if !math.IsNaN(s.RatioToRaw(2, 0)) || !math.IsNaN(s.RatioToRaw(1, 2)) {
		t.Error("a missing setup or concurrency has a ratio")
	}
	s.Raw = s.Raw[:1]
	if !math.IsNaN(s.RatioToRaw(1, 1)) {
		t.Error("a concurrency without its raw figure has a ratio")
	}
}

func TestScaleCheckOK(t *testing.T) {
	for _, c := range []struct {
		c    ScaleCheck
		want bool
	}{
		{ScaleCheck{Created: 10, Rows: 10, Logged: 10}, true},
		{ScaleCheck{Created: 10, Rows: 10, Logged: -1}, true},                // raw: no change log
		{ScaleCheck{Created: 10, Unanswered: 2, Rows: 11, Logged: 11}, true}, // one unanswered request committed
		{ScaleCheck{Created: 10, Rows: 9, Logged: 9}, false},                 // a 201 that is not there
		{ScaleCheck{Created: 10, Rows: 11, Logged: 11}, false},               // a reservation nobody was told of
		{ScaleCheck{Created: 10, Rows: 10, Logged: 9}, false},                // one not logged
		{ScaleCheck{Created: 10, Rows: 10, Logged: 10, Overlaps: 1}, false},  // a double booking
		{ScaleCheck{Created: 10, Rows: 10, Logged: 10, Err: "refused"}, false},
	} {
		if got := c.c.OK(); got != c.want {
			t.Errorf("%+v: OK = %v, want %v", c.c, got, c.want)
		}
	}
}

func TestScaleMarkdown(t *testing.T) {
	r := &Report{Date: time.Date(2030, 5, 6, 7, 8, 0, 0, time.UTC), Machine: Machine{CPUs: 2, GOMAXPROCS: 2},
		Plan: DefaultPlan(), Scale: sampleScale()}
	md := string(r.Markdown())
	for _, want := range []string{
		"## h. Scale-out on PostgreSQL",
		"PostgreSQL 15.20 at 127.0.0.1:5432/test (`synchronous_commit` on, `fsync` on, `shared_buffers` 128MB), behind HAProxy version 2.6.12",
		"Clients are closed loops of 16 and 64 workers, 8 s each after a 1 s warm-up",
		"**The raw figure does not include the change log**",
		"| 1 instance through HAProxy | 16 | 24000 | 3000 | 4.00 ms | 14.0 ms | 28.0 ms | 201: 4800, 409: 19200 | 0.75 |",
		"| 3 instances through HAProxy | 64 | 16000 | 2000 | 4.00 ms | 76.0 ms | 152 ms | 201: 3200, 409: 12800 | 0.80 |",
		"| raw (pgx, pool of 64) | 64 | 20000 | 2500 |",
		"| 16 | 0.75 | 0.68 | 0.90 |",
		"| 64 | 1.20 | 0.80 | 0.67 |",
		"| 1 instance | 9800 | 0 | 9800 | 9800 | 0 | 50000 | as answered |",
		"| 3 instances | 7500 | 1 | 7501 | 7501 | 0 | 12000 / 11000 / 13000 | as answered |",
		"| raw (pgx) | 10000 | 0 | 10000 | not written | 0 | – | as answered |",
		"Three instances cannot scale on two cores",
		"None of the parts that ran has a target.",
		"Contended reservations through HAProxy to 1 instance on PostgreSQL ran at this share of the raw rate of the store's inserts: 0.75 at concurrency 16 (3000 against 4000 req/s) and 1.20 at concurrency 64 (3000 against 2500 req/s).",
		"At concurrency 64 one instance beat raw",
		"Raw itself fell from 4000 req/s with 16 connections to 2500 with 64",
		"Three instances against one: 0.90× at concurrency 16 and 0.67× at concurrency 64: no higher, as expected on 2 CPUs",
		"HAProxy spread the reservation attempts over the three instances as 33% / 31% / 36%.",
		"Every schema held exactly the reservations answered 201, with no double booking.",
		"the ratio to what PostgreSQL alone does with the same inserts, not absolute scaling",
		"No request got an unexpected answer.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	if strings.Contains(md, "NaN") || strings.Contains(md, "%!") || strings.Contains(md, "## a. GET /parkings") {
		t.Errorf("scale-only report holds a formatting error or another section:\n%s", md)
	}
	if ts := r.Targets(); len(ts) != 0 {
		t.Errorf("section h has targets: %+v", ts)
	}
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

	// Failures are said plainly, and the errors of h count with the rest.
	s := r.Scale
	s.Setups[1].Check.Overlaps = 1
	s.RawCheck.Err = "connection refused"
	s.Setups[0].Runs[1].Errors = 2
	s.Setups[0].Runs[1].ErrorSamples = []string{"status 503"}
	s.Postgres.OtherSessions = 3
	md = string(r.Markdown())
	for _, want := range []string{
		"When the section started, 3 other client sessions were connected to this PostgreSQL",
		"| 3 instances | 7500 | 1 | 7501 | 7501 | 1 | 12000 / 11000 / 13000 | **NOT as answered** |",
		"| raw (pgx) | 10000 | 0 | – | – | – | – | **not read**: connection refused |",
		"The schema of 3 instances and raw did NOT hold exactly the reservations answered 201",
		"2 requests got an unexpected answer (1 instance, 64: 2, e.g. status 503).",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}

	// More cores: no claim that three instances cannot scale.
	r.Machine.CPUs = 16
	if md := string(r.Markdown()); strings.Contains(md, "cannot scale on two cores") {
		t.Error("the two-core caveat on a 16-CPU machine")
	}
}

func TestScaleSkipped(t *testing.T) {
	b := &runner{o: Options{Progress: io.Discard}, p: DefaultPlan()}
	for _, c := range []struct {
		pg, haproxy, want string
	}{
		{"", "/usr/sbin/haproxy", "no PostgreSQL was given"},
		{"postgres://u@127.0.0.1:5432/x", "", "haproxy (Debian package haproxy) is not on PATH"},
		{"postgres://u@db.example:5432/x", "/usr/sbin/haproxy", "not on this machine"},
		{"host=127.0.0.1 dbname=x", "/usr/sbin/haproxy", "not a postgres:// URL"},
		// Nothing listens on port 1: the section is skipped, the bench goes on.
		{"postgres://u@127.0.0.1:1/x?connect_timeout=5", "/usr/sbin/haproxy", "PostgreSQL at 127.0.0.1:1/x cannot be used"},
	} {
		b.o.Postgres, b.o.HAProxy = c.pg, c.haproxy
		s, err := b.scaleSection(context.Background())
		if err != nil || s == nil || !strings.Contains(s.Skip, c.want) {
			t.Errorf("%q, %q: %+v, %v; want a skip saying %q", c.pg, c.haproxy, s, err, c.want)
			continue
		}
		md := string((&Report{Plan: DefaultPlan(), Scale: s}).Markdown())
		if !strings.Contains(md, "## h. Scale-out on PostgreSQL\n\nSkipped: "+s.Skip) || !strings.Contains(md, "Section h (scale-out on PostgreSQL) was skipped") {
			t.Errorf("skipped section renders as:\n%s", md)
		}
	}
}

func TestLocalPostgres(t *testing.T) {
	for dsn, want := range map[string]string{
		"postgres://postgres@127.0.0.1:5432/test?sslmode=disable": "127.0.0.1:5432/test",
		"postgresql://u:secret@localhost/db":                      "localhost:5432/db",
		"postgres://u@[::1]:6543/db":                              "[::1]:6543/db",
	} {
		got, err := localPostgres(dsn)
		if err != nil || got != want {
			t.Errorf("localPostgres(%q) = %q, %v; want %q", dsn, got, err, want)
		}
		if strings.Contains(got, "secret") {
			t.Errorf("the address shows the password: %q", got)
		}
	}
	for _, dsn := range []string{"postgres://u@10.0.0.5/db", "postgres://u@127.0.0.1,db.example/db", "user=u host=127.0.0.1", "mysql://x"} {
		if _, err := localPostgres(dsn); err == nil {
			t.Errorf("localPostgres(%q) accepted", dsn)
		}
	}
}

func TestSchemaDSN(t *testing.T) {
	got, err := schemaDSN("postgres://postgres@127.0.0.1:5432/test?sslmode=disable&search_path=other", "parkbench_x")
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	if q := u.Query(); q.Get("search_path") != "parkbench_x,public" || q.Get("sslmode") != "disable" || u.Host != "127.0.0.1:5432" {
		t.Errorf("schemaDSN = %q", got)
	}
	if n := schemaName(); !strings.HasPrefix(n, "parkbench_") || len(n) != len("parkbench_")+12 || n == schemaName() {
		t.Errorf("schemaName = %q", n)
	}
}

func TestBackendStatus(t *testing.T) {
	csv := "# pxname,svname,qcur,status,weight\n" +
		"parkgate,FRONTEND,,OPEN,\n" +
		"centrald,centrald-1,0,UP,1\n" +
		"centrald,centrald-2,0,DOWN,1\n" +
		"centrald,centrald-3,0,UP,1\n" +
		"centrald,BACKEND,0,UP,2\n" +
		"stats,FRONTEND,,OPEN,\n"
	st, err := backendStatus([]byte(csv))
	if err != nil || strings.Join(st, " ") != "UP DOWN UP" {
		t.Fatalf("backendStatus = %v, %v", st, err)
	}
	if err := backendUp(3)([]byte(csv)); err == nil {
		t.Error("a backend with a server DOWN is up")
	}
	if err := backendUp(3)([]byte(strings.ReplaceAll(csv, "DOWN", "UP"))); err != nil {
		t.Errorf("all UP: %v", err)
	}
	if err := backendUp(2)([]byte(strings.ReplaceAll(csv, "DOWN", "UP"))); err == nil {
		t.Error("three servers where two were configured")
	}
	if _, err := backendStatus([]byte("not,a\nstats page")); err == nil {
		t.Error("a page without a status column")
	}
}

func TestScaledPlanShrinksScaleOut(t *testing.T) {
	p := DefaultPlan()
	q := p.Scaled(0.2)
	if q.ScaleDuration != 1600*time.Millisecond || len(q.ScaleConcurrencies) != 2 || q.ScaleConcurrencies[1] != 64 {
		t.Errorf("scaled plan: %s, %v", q.ScaleDuration, q.ScaleConcurrencies)
	}
	if p.ScaleDuration != 8*time.Second {
		t.Errorf("default scale duration %s", p.ScaleDuration)
	}
}
