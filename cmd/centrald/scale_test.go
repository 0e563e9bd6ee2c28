package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parkgate/parkgate/central/store/pgstore/pgtest"
	"github.com/parkgate/parkgate/internal/childproc"
)

// Scale-out: several centrald processes on one PostgreSQL database
// (docs/scaling.md), each in a schema of its own so tests never meet.

// postgresDSN returns a DSN for a fresh schema of the test PostgreSQL,
// dropped when the test ends, or skips the test.
func postgresDSN(t *testing.T) string {
	t.Helper()
	dsn, _ := pgtest.Schema(t)
	return dsn
}

// instances starts n centrald processes on dsn at the same moment (so
// that they race to create the schema) and waits until all serve.
func instances(t *testing.T, n int, dsn string, env ...string) []*proc {
	t.Helper()
	dir := t.TempDir()
	env = append([]string{"PARKING_DB_DRIVER=postgres", "PARKING_DB_DSN=" + dsn, "PARKING_LOG_LEVEL=info"}, env...)
	ps := make([]*proc, n)
	for i := range ps {
		ps[i] = launch(t, dir, env...)
	}
	for _, p := range ps {
		p.waitServing()
	}
	return ps
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// loadBalancer runs HAProxy with configs/haproxy.cfg in front of ps and
// returns its base URL, or "" when PARKING_TEST_HAPROXY (the haproxy
// binary) is not set.
func loadBalancer(t *testing.T, ps []*proc) string {
	base, _ := loadBalancerWithStats(t, ps)
	return base
}

// loadBalancerWithStats is loadBalancer, also returning the base URL of
// HAProxy's stats page.
func loadBalancerWithStats(t *testing.T, ps []*proc) (base, stats string) {
	t.Helper()
	bin := os.Getenv("PARKING_TEST_HAPROXY")
	if bin == "" {
		t.Log("PARKING_TEST_HAPROXY not set (the haproxy binary): clients go to the instances directly, round robin")
		return "", ""
	}
	if len(ps) != 3 {
		t.Fatalf("configs/haproxy.cfg lists 3 instances, not %d", len(ps))
	}
	lb, statsAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, "-f", "../../configs/haproxy.cfg")
	cmd.Env = append(os.Environ(), "PARKGATE_LB_ADDR="+lb, "PARKGATE_LB_STATS="+statsAddr)
	for i, p := range ps {
		cmd.Env = append(cmd.Env, fmt.Sprintf("PARKGATE_CENTRALD_%d=%s", i+1, strings.TrimPrefix(p.base, "http://")))
	}
	var out strings.Builder
	var mu sync.Mutex
	cmd.Stdout = writerFunc(func(b []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(b) })
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = childproc.Attr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("haproxy: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	base = "http://" + lb
	waitFor(t, "HAProxy answering /readyz", 20*time.Second, func() bool {
		select {
		case <-done:
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("haproxy exited:\n%s", out.String())
		default:
		}
		res, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200
	})
	return base, "http://" + statsAddr
}

// serverStatus reads a backend server's status (UP, DOWN, …) from
// HAProxy's stats page, as CSV.
func serverStatus(t *testing.T, stats, server string) string {
	t.Helper()
	res, err := http.Get(stats + "/;csv")
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ",")
		if len(f) > 17 && f[0] == "centrald" && f[1] == server {
			return f[17] // the "status" column
		}
	}
	return ""
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

var attemptsRe = regexp.MustCompile(`(?m)^parkgate_reservation_attempts_total\{outcome="(\w+)"\} (\d+)`)

// attempts sums an instance's reservation attempts by outcome, from
// /metrics.
func (p *proc) attempts() map[string]int {
	p.t.Helper()
	a := p.call("GET", "/metrics", "", "")
	out := map[string]int{}
	for _, m := range attemptsRe.FindAllStringSubmatch(a.raw, -1) {
		n, _ := strconv.Atoi(m[2])
		out[m[1]] += n
	}
	return out
}

// Three centrald processes on one PostgreSQL, hundreds of concurrent
// reservation attempts spread across them (through HAProxy with the shipped
// config when PARKING_TEST_HAPROXY is set) for overlapping windows on three
// spots. Every attempt gets 201 or 409, never anything else; a checker
// reading the final database finds no two live reservations of a spot
// overlapping, exactly the reservations that were answered 201, and for
// every contested window exactly one winner (or a winner of a window
// overlapping it).
func TestScaleThreeInstancesNeverDoubleBook(t *testing.T) {
	dsn := postgresDSN(t)
	ps := instances(t, 3, dsn, "PARKING_SPOTS_COUNT=3", "PARKING_MQTT_EMBEDDED=false", "PARKING_MQTT_URL=")
	targets := []string{ps[0].base, ps[1].base, ps[2].base}
	if lb := loadBalancer(t, ps); lb != "" {
		targets = []string{lb}
	}

	// Slots of two hours from tomorrow; for each spot and slot, 10 clients
	// ask for exactly the slot and 3 for a window straddling it and the
	// next one.
	base := time.Now().UTC().Truncate(time.Hour).Add(24 * time.Hour)
	type attempt struct {
		spot       string
		from, till time.Time
		group      string // identical windows share a group
	}
	var jobs []attempt
	const slots = 6
	for s := 1; s <= 3; s++ {
		spot := strconv.Itoa(s)
		for k := range slots {
			from := base.Add(time.Duration(2*k) * time.Hour)
			for range 10 {
				jobs = append(jobs, attempt{spot, from, from.Add(2 * time.Hour), fmt.Sprintf("%s/slot%d", spot, k)})
			}
			if k < slots-1 {
				for range 3 {
					jobs = append(jobs, attempt{spot, from.Add(time.Hour), from.Add(3 * time.Hour), fmt.Sprintf("%s/straddle%d", spot, k)})
				}
			}
		}
	}
	mrand := func(n int) int { var b [1]byte; rand.Read(b[:]); return int(b[0]) % n }
	for i := range jobs { // shuffle, so that every group is raced for at once
		j := i + mrand(len(jobs)-i)
		jobs[i], jobs[j] = jobs[j], jobs[i]
	}

	type result struct {
		attempt
		status int
		id     string
		body   string
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	results := make([]result, len(jobs))
	var wg sync.WaitGroup
	next := make(chan int)
	for w := range 48 {
		wg.Go(func() {
			for i := range next {
				a := jobs[i]
				target := targets[(w+i)%len(targets)]
				res, err := client.Post(target+"/reserve/parking/"+a.spot, "application/json", strings.NewReader(windowJSON(a.from, a.till)))
				if err != nil {
					results[i] = result{attempt: a, status: -1, body: err.Error()}
					continue
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				var m map[string]any
				json.Unmarshal(b, &m)
				id, _ := m["reservationId"].(string)
				results[i] = result{attempt: a, status: res.StatusCode, id: id, body: string(b)}
			}
		})
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()

	winners := map[string]result{}
	wonGroups := map[string]int{}
	for _, r := range results {
		switch r.status {
		case 201:
			if r.id == "" {
				t.Fatalf("201 without a reservation id: %s", r.body)
			}
			winners[r.id] = r
			wonGroups[r.group]++
		case 409:
		default:
			t.Errorf("%s %s–%s: %d %s (want 201 or 409)", r.spot, r.from.Format("15:04"), r.till.Format("15:04"), r.status, r.body)
		}
	}
	for _, p := range ps {
		if a := p.attempts(); a["created"]+a["overlap"] == 0 {
			t.Errorf("instance %s served no reservation attempt: the load was not spread (%v)", p.base, a)
		}
	}

	// The checker: the final database.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT id, spot_id, reserved_from, reserved_until FROM reservations
		WHERE state IN ('reserved', 'paid', 'taken') ORDER BY spot_id, reserved_from`)
	if err != nil {
		t.Fatal(err)
	}
	type live struct {
		id, spot   string
		from, till time.Time
	}
	var all []live
	for rows.Next() {
		var l live
		if err := rows.Scan(&l.id, &l.spot, &l.from, &l.till); err != nil {
			t.Fatal(err)
		}
		all = append(all, l)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(all) != len(winners) {
		t.Errorf("the database holds %d live reservations; %d attempts were answered 201", len(all), len(winners))
	}
	for i, l := range all {
		if _, ok := winners[l.id]; !ok {
			t.Errorf("live reservation %s was never answered 201", l.id)
		}
		if i > 0 && all[i-1].spot == l.spot && l.from.Before(all[i-1].till) {
			t.Errorf("DOUBLE BOOKING on spot %s: %s [%s, %s) and %s [%s, %s)", l.spot, all[i-1].id,
				all[i-1].from.Format(time.RFC3339), all[i-1].till.Format(time.RFC3339), l.id, l.from.Format(time.RFC3339), l.till.Format(time.RFC3339))
		}
	}
	for s := 1; s <= 3; s++ {
		for k := range slots {
			g := fmt.Sprintf("%d/slot%d", s, k)
			switch n := wonGroups[g]; {
			case n > 1:
				t.Errorf("window %s has %d winners", g, n)
			case n == 0 && wonGroups[fmt.Sprintf("%d/straddle%d", s, k)] == 0 && (k == 0 || wonGroups[fmt.Sprintf("%d/straddle%d", s, k-1)] == 0):
				t.Errorf("window %s has no winner, and neither has a window overlapping it", g)
			}
			if n := wonGroups[fmt.Sprintf("%d/straddle%d", s, k)]; n > 1 {
				t.Errorf("window %d/straddle%d has %d winners", s, k, n)
			}
		}
	}
	t.Logf("%d attempts, %d winners, through %v", len(jobs), len(winners), targets)
}

var (
	gatedOnce sync.Once
	gatedBin  string
	gatedErr  error
)

// gatedBinary builds gated next to the centrald test binary.
func gatedBinary(t *testing.T) string {
	t.Helper()
	c := centraldBinary(t)
	gatedOnce.Do(func() {
		gatedBin = filepath.Join(filepath.Dir(c), "gated")
		out, err := exec.Command("go", "build", "-o", gatedBin, "../gated").CombinedOutput()
		if err != nil {
			gatedErr = fmt.Errorf("go build gated: %v\n%s", err, out)
		}
	})
	if gatedErr != nil {
		t.Fatal(gatedErr)
	}
	return gatedBin
}

var relayingRe = regexp.MustCompile(`(?m)^parkgate_sync_relaying (\d)`)

// relaying reports whether the instance says it relays to the gates; false
// if it does not answer.
func (p *proc) relaying() bool {
	res, err := http.Get(p.base + "/metrics")
	if err != nil {
		return false
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	m := relayingRe.FindSubmatch(b)
	return m != nil && string(m[1]) == "1"
}

// SIGKILL the instance that relays the change log while reservations keep
// being made and paid through the others: another instance takes over, and
// both gates end up holding the database's latest version, with the
// changes made around the kill (a cancellation stops its ticket), and their
// events still reach the survivors.
func TestScaleRelayFailoverOnSIGKILL(t *testing.T) {
	dsn := postgresDSN(t)
	broker := os.Getenv("PARKING_TEST_MQTT_URL")
	if broker == "" {
		t.Skip("PARKING_TEST_MQTT_URL not set (e.g. tcp://127.0.0.1:1883): the instances need an external broker")
	}
	site := "scale-" + strings.ToLower(rand.Text()[:10])
	ps := instances(t, 3, dsn, "PARKING_SITE="+site, "PARKING_SPOTS_COUNT=60", "PARKING_MQTT_EMBEDDED=false", "PARKING_MQTT_URL="+broker)
	pub := ps[0].must(200, "GET", "/tickets/public-key", "", "")["publicKey"].(string)
	dir := t.TempDir()
	gate := func(id, role string) *proc {
		cmd := exec.Command(gatedBinary(t))
		cmd.Env = append(os.Environ(), "PARKING_SITE="+site, "PARKING_HTTP_ADDR=127.0.0.1:0", "PARKING_GATE_ID="+id,
			"PARKING_GATE_ROLE="+role, "PARKING_DB_PATH="+filepath.Join(dir, id+".db"), "PARKING_TICKETS_PUBLIC_KEY="+pub,
			"PARKING_MQTT_URL="+broker, "PARKING_LOG_FORMAT=json")
		p := launchCmd(t, cmd)
		p.waitServing()
		return p
	}
	gates := []*proc{gate("entry-1", "entry"), gate("exit-1", "exit")}
	for _, g := range gates {
		waitFor(t, "the gates online", 20*time.Second, func() bool { return g.call("GET", "/v1/status", "", "").body["online"] == true })
	}
	var leader *proc
	waitFor(t, "exactly one instance relaying", 20*time.Second, func() bool {
		n := 0
		for _, p := range ps {
			if p.relaying() {
				n, leader = n+1, p
			}
		}
		return n == 1
	})
	var others []*proc
	for _, p := range ps {
		if p != leader {
			others = append(others, p)
		}
	}

	// The writer reserves and pays through the other two instances (the
	// point is the relay, not clients of the killed instance), cancelling
	// every fifth reservation; the leader dies a third of the way in.
	const n = 60
	type made struct{ id, ticket, spot string }
	var (
		mu        sync.Mutex
		paid      []made
		cancelled []made
	)
	third := make(chan struct{})
	writer := make(chan error, 1)
	now := time.Now().UTC()
	go func() {
		for i := range n {
			if i == n/3 {
				close(third)
			}
			p := others[i%2]
			spot := strconv.Itoa(i + 1) // windows from the test's start: every ticket may enter now
			from := now
			r := p.call("POST", "/reserve/parking/"+spot, "", windowJSON(from, from.Add(2*time.Hour)))
			if r.status != 201 {
				writer <- fmt.Errorf("reserve %d: %d %s", i, r.status, r.raw)
				return
			}
			pr := p.call("POST", "/pay/parking/"+spot, r.body["token"].(string), visa)
			if pr.status != 200 {
				writer <- fmt.Errorf("pay %d: %d %s", i, pr.status, pr.raw)
				return
			}
			m := made{pr.body["reservationId"].(string), pr.body["ticket"].(string), spot}
			if i%5 == 4 {
				if c := p.call("DELETE", "/reservations/"+m.id, adminToken, ""); c.status != 200 {
					writer <- fmt.Errorf("cancel %d: %d %s", i, c.status, c.raw)
					return
				}
				mu.Lock()
				cancelled = append(cancelled, m)
				mu.Unlock()
				continue
			}
			mu.Lock()
			paid = append(paid, m)
			mu.Unlock()
		}
		writer <- nil
	}()
	<-third
	leader.kill()
	if err := <-writer; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a surviving instance relaying", 20*time.Second, func() bool {
		return others[0].relaying() != others[1].relaying()
	})

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var latest int64
	if err := conn.QueryRow(ctx, `SELECT max(version) FROM changes`).Scan(&latest); err != nil {
		t.Fatal(err)
	}
	for _, g := range gates {
		waitFor(t, "the gate holding the database's latest version", 30*time.Second, func() bool {
			v, _ := g.call("GET", "/v1/status", "", "").body["cacheVersion"].(float64)
			return int64(v) == latest
		})
	}

	// What the gates hold is right: the last cancellation (made after the
	// kill) stops its ticket, the last paid ticket opens the entry, and
	// that entry reaches a surviving instance through the shared
	// subscription: the spot is taken.
	entry := gates[0]
	lastCancelled, lastPaid := cancelled[len(cancelled)-1], paid[len(paid)-1]
	scan := func(code string) map[string]any {
		b, _ := json.Marshal(map[string]string{"code": code})
		return entry.must(200, "POST", "/v1/sim/scan", "", string(b))
	}
	if d := scan(lastCancelled.ticket); d["granted"] != false || d["reason"] != "revoked" {
		t.Fatalf("a ticket cancelled after the failover: %v", d)
	}
	if d := scan(lastPaid.ticket); d["granted"] != true {
		t.Fatalf("a ticket paid after the failover: %v", d)
	}
	waitFor(t, "the entry event applied by a surviving instance", 20*time.Second, func() bool {
		return others[0].call("GET", "/parkings/"+lastPaid.spot, "", "").body["status"] == "taken"
	})
	t.Logf("%d changes relayed; leader %s killed; gates at version %d", latest, leader.base, latest)
}

// A centrald behind HAProxy is SIGKILLed between requests: clients of the
// load balancer see no error, before the health checks notice (HAProxy
// retries a failed connection on another instance) or after (the instance
// is out).
func TestScaleLoadBalancerSurvivesSIGKILL(t *testing.T) {
	if os.Getenv("PARKING_TEST_HAPROXY") == "" {
		t.Skip("PARKING_TEST_HAPROXY not set (the haproxy binary): skipping the load-balancer failover test")
	}
	dsn := postgresDSN(t)
	ps := instances(t, 3, dsn, "PARKING_SPOTS_COUNT=400", "PARKING_MQTT_EMBEDDED=false", "PARKING_MQTT_URL=")
	lb, stats := loadBalancerWithStats(t, ps)
	client := &http.Client{Timeout: 10 * time.Second}
	base := time.Now().UTC().Truncate(time.Hour).Add(24 * time.Hour)
	spot := 0
	round := func(what string, n int) {
		t.Helper()
		for range n {
			spot++
			res, err := client.Post(lb+"/reserve/parking/"+strconv.Itoa(spot), "application/json",
				strings.NewReader(windowJSON(base, base.Add(time.Hour))))
			if err != nil {
				t.Fatalf("%s: reserve spot %d: %v", what, spot, err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 201 {
				t.Fatalf("%s: reserve spot %d: %d %s", what, spot, res.StatusCode, b)
			}
			res, err = client.Get(lb + "/parkings/" + strconv.Itoa(spot))
			if err != nil {
				t.Fatalf("%s: GET spot %d: %v", what, spot, err)
			}
			b, _ = io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 || !strings.Contains(string(b), `"reserved"`) {
				t.Fatalf("%s: GET spot %d: %d %s", what, spot, res.StatusCode, b)
			}
		}
	}
	round("before the kill", 60) // every instance has served, and HAProxy holds connections to each
	ps[1].kill()
	round("right after the kill", 60)
	waitFor(t, "HAProxy marking the killed instance DOWN", 10*time.Second, func() bool {
		return strings.HasPrefix(serverStatus(t, stats, "centrald-2"), "DOWN")
	})
	round("after the health checks", 60)
	for _, i := range []int{0, 2} {
		if a := ps[i].attempts(); a["created"] == 0 {
			t.Errorf("instance %d served nothing: %v", i, a)
		}
	}
}
