package bench

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/central/store/pgstore"
	"github.com/parkgate/parkgate/ticket"
)

// scaleInstances are the setups of section h, in the order they run: the
// shipped HAProxy configuration in front of one centrald, then of three.
var scaleInstances = []int{1, 3}

// haproxyServers is how many servers configs/haproxy.cfg lists (through
// PARKGATE_CENTRALD_1..3). With fewer instances, several of those names
// point at the same instance, so that the configuration runs unchanged.
const haproxyServers = 3

// DefaultHAProxyConfig is where Options.HAProxyConfig points when empty:
// the configuration the project ships, relative to the repository's root,
// from where `make bench` runs parkbench.
const DefaultHAProxyConfig = "configs/haproxy.cfg"

// ScaleReport holds section h: centrald scaled out on PostgreSQL behind
// HAProxy, and the store's conditional insert straight into PostgreSQL.
type ScaleReport struct {
	// Skip says why the section did not run (no PostgreSQL, no haproxy);
	// everything else is then empty.
	Skip string
	// Postgres describes the database server the runs shared.
	Postgres PostgresInfo
	// HAProxy is the first line of `haproxy -v`; HAProxyConfig the
	// configuration file, as given.
	HAProxy       string
	HAProxyConfig string
	// Setups are the runs through HAProxy, one per entry of
	// scaleInstances.
	Setups []ScaleSetup
	// Raw is the conditional insert over pgx at every concurrency of
	// Plan.ScaleConcurrencies; RawCheck what its schema held after.
	Raw      []Summary
	RawCheck ScaleCheck
}

// PostgresInfo describes the PostgreSQL server: where it is (never the
// DSN itself, which may hold a password) and the settings that decide what
// a commit costs.
type PostgresInfo struct {
	Addr              string // host:port/database
	Version           string // server_version
	SynchronousCommit string
	Fsync             string
	SharedBuffers     string
	MaxConnections    int
	// OtherSessions counts the client sessions of others connected when
	// the section started: a database shared with other work makes the
	// figures noisy and can run out of connections.
	OtherSessions int
}

// ScaleSetup is one setup of section h: Instances centrald processes on
// one fresh schema behind HAProxy.
type ScaleSetup struct {
	Instances int
	// Runs are the contended runs, by Plan.ScaleConcurrencies.
	Runs []Summary
	// Attempts are the reservation attempts each instance counted on its
	// /metrics over the setup's runs (warm-ups included): how HAProxy
	// spread the load.
	Attempts []int
	// Check is what the schema held after the runs.
	Check ScaleCheck
}

// ScaleCheck holds a setup's answers (warm-ups included) against what its
// schema held afterwards: the correctness half of section h.
type ScaleCheck struct {
	// Created counts 201 answers; Unanswered requests that got no answer
	// at all (a client timeout), which may or may not have committed.
	Created    int
	Unanswered int
	// Rows counts the reservations in the schema, Logged the change-log
	// entries of kind reservation.created (-1: not counted, as for the
	// raw inserts, which write no change log).
	Rows   int64
	Logged int64
	// Overlaps counts live reservations whose window overlaps an earlier
	// live one of the same spot: a double booking. The exclusion
	// constraint forbids it; the check reads the table to show it.
	Overlaps int64
	// Err says why the schema could not be read; the figures are then
	// not meaningful.
	Err string
}

// OK reports whether the schema holds exactly the reservations that were
// answered 201 (give or take the unanswered requests), each logged once
// where the log is counted, and no double booking.
func (c ScaleCheck) OK() bool {
	return c.Err == "" && c.Overlaps == 0 && c.Rows >= int64(c.Created) && c.Rows <= int64(c.Created+c.Unanswered) &&
		(c.Logged < 0 || c.Logged == c.Rows)
}

// scaleSection runs section h, or returns it with Skip set when
// PostgreSQL or HAProxy is missing or unusable. Every schema it creates is
// dropped and every process it starts is stopped before it returns, on
// errors and interruptions too.
func (b *runner) scaleSection(ctx context.Context) (*ScaleReport, error) {
	rep := &ScaleReport{HAProxyConfig: b.o.HAProxyConfig}
	if rep.HAProxyConfig == "" {
		rep.HAProxyConfig = DefaultHAProxyConfig
	}
	cfg, skip := b.scaleProbe(ctx, rep)
	if skip != "" {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		rep.Skip = skip
		b.progress("h: skipped: %s", skip)
		return rep, nil
	}
	b.progress("h: PostgreSQL %s at %s (synchronous_commit %s), %s, %s",
		rep.Postgres.Version, rep.Postgres.Addr, rep.Postgres.SynchronousCommit, rep.HAProxy, rep.HAProxyConfig)
	schemas := &pgSchemas{base: b.o.Postgres}
	defer func() {
		if err := schemas.dropAll(); err != nil {
			b.progress("h: %v", err)
		}
	}()
	for _, n := range scaleInstances {
		s, err := b.scaleSetup(ctx, schemas, cfg, n)
		if err != nil {
			return nil, fmt.Errorf("%d instance(s): %w", n, err)
		}
		rep.Setups = append(rep.Setups, s)
	}
	if err := b.scaleRaw(ctx, schemas, rep); err != nil {
		return nil, fmt.Errorf("raw inserts: %w", err)
	}
	return rep, ctx.Err()
}

// scaleProbe checks that PostgreSQL and HAProxy can be used, fills in
// what describes them, and returns the configuration's absolute path, or
// why the section is skipped.
func (b *runner) scaleProbe(ctx context.Context, rep *ScaleReport) (cfg, skip string) {
	if b.o.Postgres == "" {
		return "", "no PostgreSQL was given (parkbench -postgres DSN, or PARKING_TEST_POSTGRES_DSN)"
	}
	if b.o.HAProxy == "" {
		return "", "haproxy (Debian package haproxy) is not on PATH nor in /usr/sbin, and -haproxy was not given"
	}
	addr, err := localPostgres(b.o.Postgres)
	if err != nil {
		return "", err.Error()
	}
	rep.Postgres.Addr = addr
	// The connections open at once: the three instances' pools, or the
	// raw run's, and the benchmark's own.
	need := max(haproxyServers*pgstore.DefaultMaxConns, slices.Max(append([]int{0}, b.p.ScaleConcurrencies...))) + 3
	if err := probePostgres(ctx, b.o.Postgres, need, &rep.Postgres); err != nil {
		return "", fmt.Sprintf("PostgreSQL at %s cannot be used: %v", addr, err)
	}
	cfg, err = filepath.Abs(rep.HAProxyConfig)
	if err == nil {
		_, err = os.Stat(cfg)
	}
	if err != nil {
		return "", fmt.Sprintf("the HAProxy configuration %s cannot be read (run parkbench from the repository's root, or give -haproxy-config): %v",
			rep.HAProxyConfig, err)
	}
	if rep.HAProxy, err = probeHAProxy(ctx, b.o.HAProxy, cfg); err != nil {
		return "", fmt.Sprintf("%s cannot be used: %v", b.o.HAProxy, err)
	}
	return cfg, ""
}

// localPostgres returns host:port/database of a postgres:// URL (the form
// centrald's db.dsn takes) on this machine, or why it cannot be used: the
// benchmark talks to nothing beyond this machine, and its figures assume
// the database shares the CPUs.
func localPostgres(dsn string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", errors.New("the PostgreSQL DSN is not a postgres:// URL (the form centrald's db.dsn takes)")
	}
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "", fmt.Errorf("the PostgreSQL DSN cannot be parsed: %v", err)
	}
	hosts := []string{cfg.Host}
	for _, f := range cfg.Fallbacks {
		hosts = append(hosts, f.Host)
	}
	for _, h := range hosts {
		if !strings.HasPrefix(h, "/") && h != "localhost" && h != "127.0.0.1" && h != "::1" {
			return "", fmt.Errorf("PostgreSQL at %s is not on this machine: the benchmark only talks to 127.0.0.1 (or a Unix socket)", h)
		}
	}
	return net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))) + "/" + cfg.Database, nil
}

// probePostgres connects, reads the server's version and commit settings,
// and checks that btree_gist (which the store's overlap constraint needs)
// is there or installable, that max_connections leaves room for need
// connections, and that a schema can be created.
func probePostgres(ctx context.Context, dsn string, need int, info *PostgresInfo) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var gist bool
	err = conn.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('synchronous_commit'),
		current_setting('fsync'), current_setting('shared_buffers'), current_setting('max_connections')::int,
		EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'btree_gist'),
		(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid())`).
		Scan(&info.Version, &info.SynchronousCommit, &info.Fsync, &info.SharedBuffers, &info.MaxConnections, &gist, &info.OtherSessions)
	if err != nil {
		return err
	}
	if !gist {
		return errors.New("the btree_gist extension is not available (Debian: postgresql-contrib)")
	}
	if info.MaxConnections < need {
		return fmt.Errorf("max_connections is %d; the runs need up to %d", info.MaxConnections, need)
	}
	name := schemaName()
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		return fmt.Errorf("creating a schema: %w", err)
	}
	if _, err := conn.Exec(ctx, "DROP SCHEMA "+name); err != nil {
		return fmt.Errorf("dropping schema %s: %w", name, err)
	}
	return nil
}

// probeHAProxy returns the first line of `haproxy -v` once `haproxy -c`
// has accepted cfg with the addresses the runs give it.
func probeHAProxy(ctx context.Context, bin, cfg string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-v").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("haproxy -v: %v: %s", err, strings.TrimSpace(string(out)))
	}
	// "HAProxy version 2.6.12-1 2023/12/15 - https://haproxy.org/": the
	// version and its date are enough.
	version, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	version, _, _ = strings.Cut(version, " - ")
	check := exec.CommandContext(ctx, bin, "-c", "-f", cfg)
	check.Env = haproxyEnv("127.0.0.1:1", "127.0.0.1:2", []string{"127.0.0.1:3", "127.0.0.1:4", "127.0.0.1:5"})
	if out, err := check.CombinedOutput(); err != nil {
		return "", fmt.Errorf("haproxy -c -f %s: %v: %s", cfg, err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(version), nil
}

// haproxyEnv is the environment configs/haproxy.cfg reads its addresses
// from: where clients connect, the stats page, and the instances.
func haproxyEnv(lb, stats string, backends []string) []string {
	env := append(baseEnv(os.Environ()), "PARKGATE_LB_ADDR="+lb, "PARKGATE_LB_STATS="+stats)
	for i, a := range backends {
		env = append(env, fmt.Sprintf("PARKGATE_CENTRALD_%d=%s", i+1, a))
	}
	return env
}

// schemaName is a fresh schema name; the prefix says who left it behind
// should a run be killed before it could drop it.
func schemaName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "parkbench_" + hex.EncodeToString(b[:])
}

// schemaDSN is dsn with search_path set to schema (then public, where the
// store installs btree_gist): the store creates its tables in the first
// schema of the search_path.
func schemaDSN(dsn, schema string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("search_path", schema+",public")
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// pgSchemas creates the schemas of section h and drops them again.
type pgSchemas struct {
	base string
	made []string
}

// create makes a fresh schema and returns its name and a DSN whose
// search_path starts with it.
func (s *pgSchemas) create(ctx context.Context) (name, dsn string, err error) {
	name = schemaName()
	if dsn, err = schemaDSN(s.base, name); err != nil {
		return "", "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.base)
	if err != nil {
		return "", "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		return "", "", fmt.Errorf("creating schema %s: %w", name, err)
	}
	s.made = append(s.made, name)
	return name, dsn, nil
}

// drop drops a schema made by create, with everything in it. It does not
// take a context: it runs on the way out of an interrupted run too, and is
// bounded by a time limit of its own.
func (s *pgSchemas) drop(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.base)
	if err != nil {
		return fmt.Errorf("dropping schema %s: %w", name, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+name+" CASCADE"); err != nil {
		return fmt.Errorf("dropping schema %s: %w", name, err)
	}
	for i, m := range s.made {
		if m == name {
			s.made = append(s.made[:i], s.made[i+1:]...)
			break
		}
	}
	return nil
}

// dropAll drops the schemas not dropped yet.
func (s *pgSchemas) dropAll() error {
	var errs []error
	for _, name := range append([]string(nil), s.made...) {
		errs = append(errs, s.drop(name))
	}
	return errors.Join(errs...)
}

// scaleSetup runs one setup: n centrald instances on a fresh schema, with
// a ticket key they share (as instances of one site must), behind HAProxy;
// the contended pattern at every concurrency; then the check of the
// schema. It stops HAProxy, then the instances, then drops the schema.
func (b *runner) scaleSetup(ctx context.Context, schemas *pgSchemas, cfg string, n int) (s ScaleSetup, err error) {
	s.Instances = n
	schema, dsn, err := schemas.create(ctx)
	if err != nil {
		return s, err
	}
	defer func() { err = errors.Join(err, schemas.drop(schema)) }()
	dir, err := os.MkdirTemp(b.parent, "parkbench-scale-")
	if err != nil {
		return s, err
	}
	defer os.RemoveAll(dir)
	keyFile := filepath.Join(dir, "tickets.key")
	if _, err := ticket.LoadOrCreateKey(keyFile); err != nil {
		return s, err
	}

	b.progress("h: %s of centrald on PostgreSQL schema %s behind HAProxy", instancesLabel(n), schema)
	var insts []*pgCentrald
	defer func() {
		for _, c := range insts {
			err = errors.Join(err, c.proc.stop())
		}
	}()
	for range n {
		c, err := startPGCentrald(ctx, b.o.Centrald, dir, dsn, keyFile, b.p.Spots)
		if err != nil {
			return s, err
		}
		insts = append(insts, c)
	}
	backends := make([]string, haproxyServers)
	for i := range backends {
		backends[i] = insts[i%n].addr
	}
	lb, err := startHAProxy(ctx, b.o.HAProxy, cfg, dir, backends)
	if err != nil {
		return s, err
	}
	defer func() { err = errors.Join(err, lb.proc.stop()) }()

	// One generator for the whole setup: the runs share the schema, and
	// a second generator would start over on the windows the first run
	// already filled.
	gen := newContention(time.Now(), b.p.Spots)
	ok := OK(201, 409)
	for _, c := range b.p.ScaleConcurrencies {
		b.progress("h: contended POST /reserve/parking/{id} through HAProxy to %s, concurrency %d for %s", instancesLabel(n), c, b.p.ScaleDuration)
		samples, from := runHTTP(ctx, httpRun{targeter: contendedTargeter(lb.url, gen), workers: c,
			warmup: b.p.Warmup, dur: b.p.ScaleDuration, ok: ok})
		sum := Summarize(fmt.Sprintf("%s through HAProxy, concurrency %d", instancesLabel(n), c), samples, from, ok)
		sum.Workers = c
		s.Runs = append(s.Runs, sum)
		b.done(sum)
		s.Check.count(samples)
		if ctx.Err() != nil {
			return s, ctx.Err()
		}
	}
	for _, c := range insts {
		a, err := c.attempts(ctx)
		if err != nil {
			return s, err
		}
		s.Attempts = append(s.Attempts, a)
	}
	s.Check.read(ctx, dsn, true)
	b.checkDone(s.Check)
	return s, ctx.Err()
}

// count adds the answers of a run, warm-up included, to c.
func (c *ScaleCheck) count(samples []Sample) {
	for _, x := range samples {
		switch x.Code {
		case 201:
			c.Created++
		case 0:
			c.Unanswered++
		}
	}
}

// read fills in what the schema at dsn holds; logged says whether the
// change log is to be counted.
func (c *ScaleCheck) read(ctx context.Context, dsn string, logged bool) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// A few tries: on a PostgreSQL shared with other work, all
	// connections may be taken for a moment ("too many clients").
	var conn *pgx.Conn
	var err error
	for try := 0; ; try++ {
		if conn, err = pgx.Connect(ctx, dsn); err == nil || try == 4 || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		c.Err = err.Error()
		return
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// Live windows of a spot in order of start: one overlaps an earlier
	// one if it starts before the latest end among those before it.
	err = conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM reservations), count(*) FILTER (WHERE ends > reserved_from)
		FROM (SELECT reserved_from, max(reserved_until) OVER (PARTITION BY spot_id ORDER BY reserved_from, id
			ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS ends
			FROM reservations WHERE state IN ('reserved', 'paid', 'taken')) w`).Scan(&c.Rows, &c.Overlaps)
	if err == nil && logged {
		err = conn.QueryRow(ctx, `SELECT count(*) FROM changes WHERE kind = $1`, store.KindCreated).Scan(&c.Logged)
	} else if !logged {
		c.Logged = -1
	}
	if err != nil {
		c.Err = err.Error()
	}
}

func (b *runner) checkDone(c ScaleCheck) {
	if c.Err != "" {
		b.progress("  check: the schema could not be read: %s", c.Err)
		return
	}
	logged := ""
	if c.Logged >= 0 {
		logged = fmt.Sprintf(", %d logged as created", c.Logged)
	}
	verdict := "as answered"
	if !c.OK() {
		verdict = "NOT as answered"
	}
	b.progress("  check: %d answered 201 (%d unanswered), %d reservations in the schema%s, %d overlapping: %s",
		c.Created, c.Unanswered, c.Rows, logged, c.Overlaps, verdict)
}

// pgCentrald is a centrald child process on PostgreSQL.
type pgCentrald struct {
	url, addr string
	proc      *child
	client    *http.Client
}

// startPGCentrald starts bin on the schema of dsn with spots spots, no
// MQTT at all (no embedded broker, no broker URL: no gates take part), the
// shared ticket key, on a free 127.0.0.1 port, and waits until GET
// /readyz answers 200. It tries three ports, as StartCentrald does.
func startPGCentrald(ctx context.Context, bin, dir, dsn, keyFile string, spots int) (*pgCentrald, error) {
	return onFreePorts(ctx, func() (*pgCentrald, error) {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		cmd := exec.Command(bin)
		cmd.Dir = dir
		cmd.Env = append(baseEnv(os.Environ()),
			"PARKING_HTTP_ADDR="+addr,
			"PARKING_DB_DRIVER=postgres",
			"PARKING_DB_DSN="+dsn,
			"PARKING_MQTT_EMBEDDED=false",
			"PARKING_MQTT_URL=",
			"PARKING_TICKETS_KEY_FILE="+keyFile,
			"PARKING_SPOTS_COUNT="+strconv.Itoa(spots),
			"PARKING_AUTH_ADMIN_TOKEN=parkbench-scale-admin",
			"PARKING_LOG_LEVEL=warn",
			"PARKING_RESERVATIONS_MAX_ADVANCE="+strconv.Itoa(MaxAdvanceHours)+"h",
		)
		p, err := startChild("centrald", cmd)
		if err != nil {
			return nil, err
		}
		c := &pgCentrald{url: "http://" + addr, addr: addr, proc: p,
			client: &http.Client{Timeout: 10 * time.Second, Transport: loopbackTransport(1)}}
		if err := p.waitHTTP(ctx, c.url+"/readyz", 30*time.Second, nil); err != nil {
			p.stop()
			return nil, err
		}
		return c, nil
	})
}

var attemptsRe = regexp.MustCompile(`(?m)^parkgate_reservation_attempts_total\{outcome="\w+"\} (\d+)`)

// attempts sums the instance's reservation attempts, every outcome, from
// its /metrics.
func (c *pgCentrald) attempts(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s/metrics: %s", c.url, resp.Status)
	}
	n := 0
	for _, m := range attemptsRe.FindAllSubmatch(body, -1) {
		v, _ := strconv.Atoi(string(m[1]))
		n += v
	}
	return n, nil
}

// haproxy is an HAProxy child process.
type haproxy struct {
	url, stats string
	proc       *child
}

// startHAProxy runs bin with cfg in the foreground (-db, whatever the
// file says), clients on a free port, and waits until /readyz answers 200
// through it and its stats page shows every server of the centrald
// backend UP, so that a run does not begin with part of the backend still
// out.
func startHAProxy(ctx context.Context, bin, cfg, dir string, backends []string) (*haproxy, error) {
	return onFreePorts(ctx, func() (*haproxy, error) {
		lp, err := freePort()
		if err != nil {
			return nil, err
		}
		sp, err := freePort()
		if err != nil {
			return nil, err
		}
		lb, st := net.JoinHostPort("127.0.0.1", strconv.Itoa(lp)), net.JoinHostPort("127.0.0.1", strconv.Itoa(sp))
		cmd := exec.Command(bin, "-db", "-f", cfg)
		cmd.Dir, cmd.Env = dir, haproxyEnv(lb, st, backends)
		p, err := startChild("haproxy", cmd)
		if err != nil {
			return nil, err
		}
		h := &haproxy{url: "http://" + lb, stats: "http://" + st, proc: p}
		err = p.waitHTTP(ctx, h.url+"/readyz", 20*time.Second, nil)
		if err == nil {
			err = p.waitHTTP(ctx, h.stats+"/;csv", 15*time.Second, backendUp(len(backends)))
		}
		if err != nil {
			p.stop()
			return nil, err
		}
		return h, nil
	})
}

// backendUp accepts HAProxy's stats CSV once the centrald backend has n
// servers and all of them are UP.
func backendUp(n int) func(body []byte) error {
	return func(body []byte) error {
		st, err := backendStatus(body)
		if err != nil {
			return err
		}
		up := 0
		for _, s := range st {
			if s == "UP" {
				up++
			}
		}
		if len(st) != n || up != n {
			return fmt.Errorf("backend centrald: %d of %d servers UP (%v)", up, n, st)
		}
		return nil
	}
}

// backendStatus reads the status of every server of the centrald backend
// from HAProxy's stats CSV (its header line starts with "# ").
func backendStatus(body []byte) ([]string, error) {
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(body), "# ")))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) == 0 {
		return nil, fmt.Errorf("stats CSV: %v", err)
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	px, sv, status := col["pxname"], col["svname"], col["status"]
	if status == 0 {
		return nil, errors.New("stats CSV has no status column")
	}
	var out []string
	for _, row := range rows[1:] {
		if len(row) <= status || row[px] != "centrald" || row[sv] == "FRONTEND" || row[sv] == "BACKEND" {
			continue
		}
		out = append(out, row[status])
	}
	return out, nil
}

// RawScaleMethod says how the raw figure of section h is taken.
const RawScaleMethod = "the statements of pgstore's `Tx.Insert`"

// scaleRaw takes the raw figure: on a fresh schema made by pgstore.Open
// (so the table, its exclusion constraint, indexes and triggers are the
// store's) with the same spots, a pgx pool of as many connections as
// workers, each worker running what the store runs for Tx.Insert of a live
// reservation, in a READ COMMITTED transaction of its own, as Write
// begins it: the spot's row lock, then the INSERT, then COMMIT. An
// exclusion violation (23P01) is the 409. Left out, as the store's
// Tx.Insert leaves them to its caller: booking's Spot and Live reads
// before it, and the change-log entry that booking adds to every created
// reservation (which pgstore's Write inserts under an advisory lock at
// commit).
func (b *runner) scaleRaw(ctx context.Context, schemas *pgSchemas, rep *ScaleReport) (err error) {
	schema, dsn, err := schemas.create(ctx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, schemas.drop(schema)) }()
	st, err := pgstore.Open(ctx, dsn)
	if err != nil {
		return err
	}
	ids := make([]string, b.p.Spots)
	for i := range ids {
		ids[i] = strconv.Itoa(i + 1)
	}
	err = st.SetSpots(ctx, ids, time.Now())
	st.Close()
	if err != nil {
		return err
	}
	gen := newContention(time.Now(), b.p.Spots)
	ok := OK(201, 409)
	for _, n := range b.p.ScaleConcurrencies {
		b.progress("h: raw: %s, pgx pool of %d, concurrency %d for %s", RawScaleMethod, n, n, b.p.ScaleDuration)
		samples, from, err := rawInserts(ctx, dsn, n, b.p.Warmup, b.p.ScaleDuration, gen)
		if err != nil {
			return err
		}
		s := Summarize("raw, concurrency "+strconv.Itoa(n), samples, from, ok)
		s.Workers = n
		rep.Raw = append(rep.Raw, s)
		b.done(s)
		rep.RawCheck.count(samples)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	rep.RawCheck.read(ctx, dsn, false)
	b.checkDone(rep.RawCheck)
	return ctx.Err()
}

// rawInserts runs the raw inserts from n workers on a pool of n
// connections, opened before the clock starts.
func rawInserts(ctx context.Context, dsn string, n int, warmup, d time.Duration, gen *contention) ([]Sample, time.Time, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, time.Time{}, err
	}
	cfg.MaxConns, cfg.MinConns = int32(n), int32(n)
	cfg.ConnConfig.RuntimeParams["application_name"] = "parkbench"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer pool.Close()
	price := func(from, until time.Time) int64 { return int64((until.Sub(from)+time.Hour-1)/time.Hour) * 250 }
	op := func(ctx context.Context) (int, string) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		spot, w := gen.next()
		var id [10]byte
		hash := make([]byte, 32)
		_, _ = rand.Read(id[:])
		_, _ = rand.Read(hash)
		now := time.Now().UTC().Truncate(time.Microsecond)
		err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT 1 FROM spots WHERE id = $1 FOR NO KEY UPDATE`, spot); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO reservations (id, spot_id, state, source, reserved_from, reserved_until,
				created_at, car_id, amount, currency, reference, paid_at, checked_in_at, left_at, ended_at, token_hash,
				payment_attempts, payment_ref, payment_started_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)`,
				strings.ToLower(base32.StdEncoding.EncodeToString(id[:])), spot, "reserved", "driver", w.From.UTC(), w.Until.UTC(),
				now, "", price(w.From, w.Until), "eur", "", nil, nil, nil, nil, hash, 0, "", nil)
			return err
		})
		var pe *pgconn.PgError
		switch {
		case err == nil:
			return 201, ""
		case errors.As(err, &pe) && pe.Code == "23P01": // exclusion_violation
			return 409, ""
		case ctx.Err() != nil:
			return 0, err.Error()
		}
		return 500, err.Error()
	}
	// The pool opens MinConns in the background: wait for them, so that
	// the warm-up is spent on inserts rather than on connecting.
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for pool.Stat().IdleConns() < int32(n) && wctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	samples, from := runLoop(ctx, n, warmup, d, op)
	return samples, from, nil
}
