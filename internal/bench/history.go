package bench

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
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

	"github.com/jackc/pgx/v5"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/central/store/pgstore"
	"github.com/parkgate/parkgate/central/store/sqlitestore"
)

// Section k: ten years of history. The same requests at the same fixed
// rates against centrald on an empty database and on one holding
// HistoryN reservations over HistorySpots spots (LoadHistory), on SQLite
// and on PostgreSQL; the target is every p99 on the history within
// HistoryRatioTarget × the empty database's.
const (
	// DefaultHistoryN is `make bench`'s history: a million reservations.
	DefaultHistoryN = 1_000_000
	// HistorySpots: the spots of both databases.
	HistorySpots = 10_000
	// HistoryRatioTarget bounds p99(history) / p99(empty) per route.
	HistoryRatioTarget = 2.0
	// HistoryFuture is the share of the history still to come.
	HistoryFuture = 0.02
	// historyRounds: measurements of each database, alternating.
	historyRounds = 2
)

// historyRates are the fixed rates of each route, in requests per second:
// low enough for two shared cores, where GET /parkings of 10,000 spots is
// a large answer.
var historyRates = []struct {
	route string
	rate  int
}{
	{routeList, 10},
	{routeSpot, 200},
	{routeReserve, 100},
	{routePay, 50},
	{routeChanges, 100},
}

// Routes of section k besides those of load.go.
const (
	routePay     = "POST /pay/parking/{id}"
	routeChanges = "GET /admin/changes (the relay's read)"
)

// HistoryReport is section k.
type HistoryReport struct {
	N, Spots int
	Duration time.Duration // of each route's measured window
	Runs     []HistoryRun
	// Skip says why the PostgreSQL run did not happen, if it did not.
	Skip string
}

// HistoryRun is one store's figures.
type HistoryRun struct {
	Store string // sqlite, postgres
	// The load, through the store.
	Loaded   HistoryLoaded
	LoadTook time.Duration
	// centrald prune --dry-run, then centrald prune, on the loaded
	// database (real processes); PruneOut is prune's report.
	DryRunTook, PruneTook time.Duration
	PruneOut              string
	// Database size (SQLite: the file; PostgreSQL: the schema's tables
	// and indexes), empty and loaded (after the prune).
	SizeEmpty, SizeFull int64
	// From exec to GET /healthz answering 200, and to the first GET
	// /parkings answered (the in-memory board loaded).
	StartEmpty, StartFull time.Duration
	ListEmpty, ListFull   time.Duration
	Routes                []HistoryRoute
}

// HistoryRoute is one route on both databases.
type HistoryRoute struct {
	Route       string
	Empty, Full Summary
}

// Ratio is p99 on the history over p99 on the empty database.
func (r HistoryRoute) Ratio() float64 {
	if r.Empty.Latency.P99 <= 0 {
		return 0
	}
	return float64(r.Full.Latency.P99) / float64(r.Empty.Latency.P99)
}

func (h *HistoryReport) targets() []TargetResult {
	var out []TargetResult
	for _, run := range h.Runs {
		for _, r := range run.Routes {
			out = append(out, TargetResult{
				Name: fmt.Sprintf("k. history (%s, %d reservations): %s p99 ≤ %.0f× empty", run.Store, h.N, r.Route, HistoryRatioTarget),
				Measured: fmt.Sprintf("%.2f× (p99 %s vs %s; errors %d/%d)", r.Ratio(), ms(r.Full.Latency.P99), ms(r.Empty.Latency.P99),
					r.Full.Errors, r.Empty.Errors),
				Pass: r.Full.Requests > 0 && r.Empty.Requests > 0 && r.Full.Errors == 0 && r.Empty.Errors == 0 &&
					r.Ratio() <= HistoryRatioTarget,
			})
		}
	}
	return out
}

// markdown renders section k.
func (h *HistoryReport) markdown(b *bytes.Buffer, _ *Report) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	p("## k. Ten years of history")
	p("")
	p("The real bin/centrald on an empty database (%s spots and, so that both show the same present, the same upcoming paid "+
		"reservations as the history, none finished) and on one holding %s reservations over ten years "+
		"(internal/bench LoadHistory, through the store's transactions: %.0f %% finished — left, a fifth of them early "+
		"with a refund, expired, no-show, cancelled — with their payments and refunds, %.0f %% upcoming and paid), then "+
		"`centrald prune` (retention.personal_data, 90 days). Each route at a fixed rate for %s after a warm-up, on a "+
		"fresh centrald per round; %d rounds alternate between the databases and each keeps its lower p99 per route "+
		"(and its quicker start). Target: p99 on the history ≤ %.0f× p99 on the empty database.",
		thousands(h.Spots), thousands(h.N), 100*(1-HistoryFuture), 100*HistoryFuture, dur(h.Duration), historyRounds, HistoryRatioTarget)
	p("")
	p("| store | route | rate | empty p50 | empty p99 | history p50 | history p99 | ratio p99 | target ≤ %.0f× | errors |", HistoryRatioTarget)
	p("|---|---|--:|--:|--:|--:|--:|--:|---|--:|")
	for _, run := range h.Runs {
		for _, r := range run.Routes {
			verdict := "PASS"
			if r.Full.Errors > 0 || r.Empty.Errors > 0 || r.Ratio() > HistoryRatioTarget {
				verdict = "MISS"
			}
			p("| %s | %s | %d/s | %s | %s | %s | %s | %.2f× | %s | %d / %d |", run.Store, r.Route, r.Full.Rate,
				ms(r.Empty.Latency.P50), ms(r.Empty.Latency.P99), ms(r.Full.Latency.P50), ms(r.Full.Latency.P99),
				r.Ratio(), verdict, r.Empty.Errors, r.Full.Errors)
		}
	}
	p("")
	p("| store | load | rate | prune --dry-run | prune | size empty | size with history | start → /healthz empty | with history | → first GET /parkings empty | with history |")
	p("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, run := range h.Runs {
		p("| %s | %s | %s/s | %s | %s | %s | %s | %s | %s | %s | %s |", run.Store, sec1(run.LoadTook),
			thousands(int(float64(run.Loaded.Reservations)/max(run.LoadTook.Seconds(), 1e-9))), sec1(run.DryRunTook), sec1(run.PruneTook),
			mib(run.SizeEmpty), mib(run.SizeFull), ms(run.StartEmpty), ms(run.StartFull), ms(run.ListEmpty), ms(run.ListFull))
	}
	for _, run := range h.Runs {
		p("")
		p("%s, loaded: %s reservations (%v), %s payment attempts, %s refunds, %s change-log entries. `centrald prune` said:",
			run.Store, thousands(run.Loaded.Reservations), run.Loaded.ByState, thousands(run.Loaded.Attempts),
			thousands(run.Loaded.Refunds), thousands(run.Loaded.Changes))
		p("")
		p("```")
		p("%s", strings.TrimSpace(run.PruneOut))
		p("```")
	}
	if h.Skip != "" {
		p("")
		p("PostgreSQL run skipped: %s.", h.Skip)
	}
	p("")
}

// thousands writes n with thin separators: 1,000,000.
func thousands(n int) string {
	s := strconv.Itoa(n)
	var out []byte
	for i, c := range []byte(s) {
		if i > 0 && (len(s)-i)%3 == 0 && s[0] != '-' {
			out = append(out, ',')
		}
		out = append(out, c)
	}
	return string(out)
}

// historySection runs section k on SQLite and, with Options.Postgres, on
// PostgreSQL.
func (b *runner) historySection(ctx context.Context) (*HistoryReport, error) {
	n := b.o.HistoryN
	if n <= 0 {
		n = DefaultHistoryN
	}
	d := max(b.p.MixedDuration*2/3, time.Second)
	rep := &HistoryReport{N: n, Spots: HistorySpots, Duration: d}
	run, err := b.historyRun(ctx, "sqlite", n, d)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	rep.Runs = append(rep.Runs, run)
	if ctx.Err() != nil {
		return rep, nil
	}
	if b.o.Postgres == "" {
		rep.Skip = "no PostgreSQL given (-postgres, or $PARKING_TEST_POSTGRES_DSN)"
		return rep, nil
	}
	if _, err := localPostgres(b.o.Postgres); err != nil {
		rep.Skip = err.Error()
		return rep, nil
	}
	run, err = b.historyRun(ctx, "postgres", n, d)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	rep.Runs = append(rep.Runs, run)
	return rep, nil
}

// historyDB is one database of section k: where it is, and how centrald
// and the bench open it.
type historyDB struct {
	driver, dsn string
	dir         string // centrald's working directory (ticket key, fake provider's state)
	schema      string // postgres
	schemas     *pgSchemas
}

func (db *historyDB) open(ctx context.Context) (store.Store, error) {
	if db.driver == "postgres" {
		return pgstore.Open(ctx, db.dsn)
	}
	return sqlitestore.Open(ctx, db.dsn)
}

func (db *historyDB) env() []string {
	return []string{"PARKING_DB_DRIVER=" + db.driver, "PARKING_DB_DSN=" + db.dsn,
		"PARKING_TICKETS_KEY_FILE=" + filepath.Join(db.dir, "t.key"),
		"PARKING_PAYMENT_FAKE_STATE_FILE=" + filepath.Join(db.dir, "fakepay.json"),
		"PARKING_SPOTS_COUNT=" + strconv.Itoa(HistorySpots),
		"PARKING_RESERVATIONS_MAX_ADVANCE=" + strconv.Itoa(MaxAdvanceHours) + "h",
		"PARKING_LOG_LEVEL=warn"}
}

// size is the database's size on disk.
func (db *historyDB) size(ctx context.Context) (int64, error) {
	if db.driver == "postgres" {
		conn, err := pgx.Connect(ctx, db.schemas.base)
		if err != nil {
			return 0, err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		var n int64
		err = conn.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c
			JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'`, db.schema).Scan(&n)
		return n, err
	}
	var n int64
	for _, suffix := range []string{"", "-wal"} {
		if fi, err := os.Stat(db.dsn + suffix); err == nil {
			n += fi.Size()
		}
	}
	return n, nil
}

// newHistoryDB creates an empty database with the site's spots.
func (b *runner) newHistoryDB(ctx context.Context, driver, name string, schemas *pgSchemas) (*historyDB, error) {
	dir, err := os.MkdirTemp(b.parent, "history-"+name+"-")
	if err != nil {
		return nil, err
	}
	db := &historyDB{driver: driver, dir: dir, dsn: filepath.Join(dir, "c.db"), schemas: schemas}
	if driver == "postgres" {
		if db.schema, db.dsn, err = schemas.create(ctx); err != nil {
			return nil, err
		}
	}
	st, err := db.open(ctx)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	ids := make([]string, HistorySpots)
	for i := range ids {
		ids[i] = strconv.Itoa(i + 1)
	}
	// Spots added long ago: the history's first windows are ten years old.
	return db, st.SetSpots(ctx, ids, time.Now().Add(-11*365*24*time.Hour))
}

// historyRun measures one store: it makes the empty database and the
// loaded one (then prunes it), and measures them in alternating rounds.
func (b *runner) historyRun(ctx context.Context, driver string, n int, d time.Duration) (run HistoryRun, err error) {
	run.Store = driver
	schemas := &pgSchemas{base: b.o.Postgres}
	defer func() { err = errors.Join(err, schemas.dropAll()) }()

	b.progress("k: %s: empty database, %d spots and the upcoming reservations alone", driver, HistorySpots)
	empty, err := b.newHistoryDB(ctx, driver, "empty", schemas)
	if err != nil {
		return run, err
	}
	// The same present as the history's (its upcoming paid reservations,
	// which GET /parkings shows), with no past: what is compared is the
	// cost of the history alone.
	if err := loadInto(ctx, empty, HistoryLoad{Reservations: n, Future: HistoryFuture, OnlyFuture: true, Spots: HistorySpots,
		Years: 10, Now: time.Now(), Batch: 2000, Writers: 1}); err != nil {
		return run, err
	}
	if run.SizeEmpty, err = empty.size(ctx); err != nil {
		return run, err
	}
	defer os.RemoveAll(empty.dir)
	if ctx.Err() != nil {
		return run, nil
	}

	full, err := b.newHistoryDB(ctx, driver, "full", schemas)
	if err != nil {
		return run, err
	}
	defer os.RemoveAll(full.dir)
	st, err := full.open(ctx)
	if err != nil {
		return run, err
	}
	writers := 1
	if driver == "postgres" {
		writers = 3
	}
	b.progress("k: %s: loading %d reservations over %d spots (batches of 2,000, %d writer(s))", driver, n, HistorySpots, writers)
	start := time.Now()
	step := max(n/20, 1)
	var shown atomic.Int64
	run.Loaded, err = LoadHistory(ctx, st, HistoryLoad{Reservations: n, Future: HistoryFuture, Spots: HistorySpots, Years: 10,
		Now: time.Now(), Batch: 2000, Writers: writers, Progress: func(done int) {
			if last := shown.Load(); int64(done)-last >= int64(step) || done == n {
				if shown.CompareAndSwap(last, int64(done)) {
					el := time.Since(start)
					b.progress("k: %s:   %d/%d reservations (%.0f/s)", driver, done, n, float64(done)/el.Seconds())
				}
			}
		}})
	run.LoadTook = time.Since(start)
	st.Close()
	if err != nil {
		return run, err
	}
	b.progress("k: %s: loaded in %s: %+v", driver, run.LoadTook.Round(time.Second), run.Loaded)

	for _, dry := range []bool{true, false} {
		args := []string{"prune"}
		if dry {
			args = append(args, "--dry-run")
		}
		b.progress("k: %s: centrald %s", driver, strings.Join(args, " "))
		start := time.Now()
		out, err := b.centraldCommand(ctx, full, args...)
		took := time.Since(start)
		if err != nil {
			return run, err
		}
		b.progress("k: %s:   took %s:\n%s", driver, took.Round(time.Millisecond), strings.TrimSpace(out))
		if dry {
			run.DryRunTook = took
		} else {
			run.PruneTook, run.PruneOut = took, out
		}
	}
	if run.SizeFull, err = full.size(ctx); err != nil {
		return run, err
	}
	// Rounds alternate between the two databases, and each keeps its
	// lower p99 per route (and its quicker start): on a shared machine a
	// stall caused by something else should not decide the ratio.
	var emptyRoutes, fullRoutes []Summary
	for round := 1; round <= historyRounds && ctx.Err() == nil; round++ {
		for _, x := range []struct {
			db            *historyDB
			name          string
			routes        *[]Summary
			start, listed *time.Duration
		}{{empty, "empty", &emptyRoutes, &run.StartEmpty, &run.ListEmpty}, {full, "history", &fullRoutes, &run.StartFull, &run.ListFull}} {
			b.progress("k: %s: round %d of %d, %s database", driver, round, historyRounds, x.name)
			var start, listed time.Duration
			got, err := b.historyMeasure(ctx, x.db, d, &start, &listed)
			if err != nil {
				return run, fmt.Errorf("%s database: %w", x.name, err)
			}
			if *x.start == 0 || start < *x.start {
				*x.start = start
			}
			if *x.listed == 0 || listed < *x.listed {
				*x.listed = listed
			}
			if *x.routes == nil {
				*x.routes = got
				continue
			}
			for i := range got {
				if i < len(*x.routes) && got[i].Latency.P99 < (*x.routes)[i].Latency.P99 {
					(*x.routes)[i] = got[i]
				}
			}
		}
	}
	for i := range min(len(emptyRoutes), len(fullRoutes)) {
		run.Routes = append(run.Routes, HistoryRoute{Route: fullRoutes[i].Label, Empty: emptyRoutes[i], Full: fullRoutes[i]})
	}
	return run, nil
}

// loadInto loads h into db.
func loadInto(ctx context.Context, db *historyDB, h HistoryLoad) error {
	st, err := db.open(ctx)
	if err != nil {
		return err
	}
	_, err = LoadHistory(ctx, st, h)
	return errors.Join(err, st.Close())
}

// centraldCommand runs `centrald args...` on db and returns its output.
func (b *runner) centraldCommand(ctx context.Context, db *historyDB, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, b.o.Centrald, args...)
	cmd.Dir = db.dir
	cmd.Env = append(baseEnv(os.Environ()), db.env()...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("centrald %s: %w:\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// historyMeasure starts centrald on db, times its start, runs every route
// at its rate for d, and stops it.
func (b *runner) historyMeasure(ctx context.Context, db *historyDB, d time.Duration, startup, firstList *time.Duration) (out []Summary, err error) {
	tok := make([]byte, 16)
	for i := range tok {
		tok[i] = byte(rand.IntN(256))
	}
	admin := hex.EncodeToString(tok)
	var c *child
	var base string
	_, err = onFreePorts(ctx, func() (struct{}, error) {
		httpPort, err := freePort()
		if err != nil {
			return struct{}{}, err
		}
		mqttPort, err := freePort()
		if err != nil {
			return struct{}{}, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort))
		cmd := exec.Command(b.o.Centrald)
		cmd.Dir = db.dir
		cmd.Env = append(append(baseEnv(os.Environ()), db.env()...),
			"PARKING_HTTP_ADDR="+addr,
			"PARKING_MQTT_LISTEN="+net.JoinHostPort("127.0.0.1", strconv.Itoa(mqttPort)),
			"PARKING_AUTH_ADMIN_TOKEN="+admin)
		started := time.Now()
		if c, err = startChild("centrald", cmd); err != nil {
			return struct{}{}, err
		}
		base = "http://" + addr
		if err := c.waitHTTP(ctx, base+"/healthz", 120*time.Second, nil); err != nil {
			c.stop()
			return struct{}{}, err
		}
		*startup = time.Since(started)
		if err := c.waitHTTP(ctx, base+"/parkings", 120*time.Second, nil); err != nil {
			c.stop()
			return struct{}{}, err
		}
		*firstList = time.Since(started)
		return struct{}{}, nil
	})
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, c.stop()) }()
	b.progress("k: %s: centrald answered /healthz %s and GET /parkings %s after exec", db.driver,
		startup.Round(time.Millisecond), firstList.Round(time.Millisecond))

	client := &http.Client{Timeout: 10 * time.Second, Transport: loopbackTransport(16)}
	defer client.CloseIdleConnections()
	hours := newFutureHours(time.Now())
	for _, r := range historyRates {
		if ctx.Err() != nil {
			return out, nil
		}
		var targeter vegeta.Targeter
		ok := OK(200)
		switch r.route {
		case routeList:
			targeter = listTargeter(base)
		case routeSpot:
			targeter = func(t *vegeta.Target) error {
				*t = vegeta.Target{Method: http.MethodGet, URL: base + "/parkings/" + strconv.Itoa(1+rand.IntN(HistorySpots))}
				return nil
			}
		case routeReserve:
			// 409: a random hour another reservation of this run already
			// took on that spot (one in a thousand), a right answer.
			ok = OK(201, 409)
			targeter = func(t *vegeta.Target) error {
				*t = vegeta.Target{}
				reserveTarget(t, base, strconv.Itoa(1+rand.IntN(HistorySpots)), hours.next())
				return nil
			}
		case routePay:
			need := r.rate*int((d+b.p.Warmup)/time.Second+2) + 20
			b.progress("k: %s: reserving %d windows to pay", db.driver, need)
			toPay, err := reserveMany(ctx, client, base, need, hours)
			if err != nil {
				return out, fmt.Errorf("reserving to pay: %w", err)
			}
			var next atomic.Int64
			targeter = func(t *vegeta.Target) error {
				i := int(next.Add(1)-1) % len(toPay)
				x := toPay[i]
				*t = vegeta.Target{Method: http.MethodPost, URL: base + "/pay/parking/" + x.spot,
					Body:   fmt.Appendf(nil, `{"carId":"HB-%s","cardDetails":{"paymentMethod":"pm_card_visa"}}`, x.spot),
					Header: http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + x.token}}}
				return nil
			}
		case routeChanges:
			head, err := logHead(ctx, db)
			if err != nil {
				return out, err
			}
			after := strconv.FormatInt(max(head-100, 0), 10)
			targeter = func(t *vegeta.Target) error {
				*t = vegeta.Target{Method: http.MethodGet, URL: base + "/admin/changes?limit=500&after=" + after,
					Header: http.Header{"Authorization": {"Bearer " + admin}}}
				return nil
			}
		}
		b.progress("k: %s: %s at %d req/s for %s", db.driver, r.route, r.rate, d)
		samples, from := runHTTP(ctx, httpRun{targeter: targeter, rate: r.rate, warmup: b.p.Warmup, dur: d, ok: ok})
		s := Summarize(r.route, samples, from, ok)
		s.Rate = r.rate
		b.done(s)
		out = append(out, s)
	}
	return out, nil
}

// logHead reads the change log's latest version from the database.
func logHead(ctx context.Context, db *historyDB) (int64, error) {
	st, err := db.open(ctx)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	return st.Version(ctx)
}

type reserved struct{ spot, token string }

// reserveMany makes n reservations of random future hours over every
// spot, eight at a time, and returns their spots and tokens.
func reserveMany(ctx context.Context, client *http.Client, base string, n int, hours futureHours) ([]reserved, error) {
	var (
		mu    sync.Mutex
		out   []reserved
		first error
		wg    sync.WaitGroup
		left  atomic.Int64
	)
	left.Store(int64(n))
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 && ctx.Err() == nil {
				spot := strconv.Itoa(1 + rand.IntN(HistorySpots))
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/reserve/parking/"+spot, bytes.NewReader(reserveBody(hours.next())))
				if err != nil {
					return
				}
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					mu.Lock()
					first = cmpErr(first, err)
					mu.Unlock()
					return
				}
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
				resp.Body.Close()
				if resp.StatusCode == http.StatusConflict {
					left.Add(1) // a rare collision: draw another window
					continue
				}
				var r struct {
					Token string `json:"token"`
				}
				if resp.StatusCode != http.StatusCreated || json.Unmarshal(body, &r) != nil || r.Token == "" {
					mu.Lock()
					first = cmpErr(first, fmt.Errorf("POST /reserve/parking/%s: %d %s", spot, resp.StatusCode, body))
					mu.Unlock()
					return
				}
				mu.Lock()
				out = append(out, reserved{spot, r.Token})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first == nil && len(out) < n {
		first = ctx.Err()
	}
	return out, first
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
