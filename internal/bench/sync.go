package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Targets of issue 5 for the sync over MQTT (section g).
const (
	// PropagationP99Target bounds the p99 from a committed payment at
	// centrald to the gate's cache holding its version.
	PropagationP99Target = 100 * time.Millisecond
	// ResyncTarget bounds a fresh gate's full resync of the plan's
	// reservations.
	ResyncTarget = 2 * time.Second
)

// syncSite is PARKING_SITE of the sync section's centrald and gates.
const syncSite = "parkbench"

// SyncReport holds the figures of section g.
type SyncReport struct {
	Spots int
	// Propagation: a reservation paid at centrald (the 200 of the pay) to
	// the gate's cacheVersion reaching the latest change-log version,
	// over PropagationN payments one at a time; PropagationLost counts
	// those the gate did not reach within propagationWait.
	Propagation     Latency
	PropagationN    int
	PropagationLost int

	// Resync: a gate with an empty database, started with ResyncEntries
	// paid reservations at centrald (change-log version ResyncVersion):
	// from exec to the HTTP API answering (ResyncReady) and to its
	// cacheVersion equal to centrald's (Resync, 0 if not reached);
	// ResyncDB is the size of its database files then.
	ResyncEntries int
	ResyncVersion int64
	ResyncReady   time.Duration
	Resync        time.Duration
	ResyncDB      int64
	Push          time.Duration // the POST /admin/reservations that made them

	// Events: Granted scans with centrald stopped (in ScanTime), of
	// ScanTarget planned, left Queued events in the outbox; after centrald's restart (ready
	// after CentraldReady) the outbox began draining after FirstAck and
	// was empty after Drained (both from centrald's exec; 0 if not).
	ScanTarget    int
	Granted       int
	Queued        int
	ScanTime      time.Duration
	CentraldReady time.Duration
	FirstAck      time.Duration
	Drained       time.Duration
}

// propagationWait bounds the wait for one change to reach the gate.
const propagationWait = 5 * time.Second

// syncCentrald is a centrald for section g: fixed ports, so that it can
// be stopped and started again on the same database and broker address.
type syncCentrald struct {
	bin, dir    string
	env         []string
	url, broker string
	admin       string
	proc        *child
	client      *http.Client
}

func newSyncCentrald(bin, parent string, spots int) (*syncCentrald, error) {
	dir, err := os.MkdirTemp(parent, "parkbench-sync-")
	if err != nil {
		return nil, err
	}
	hp, err := freePort()
	if err != nil {
		return nil, err
	}
	mp, err := freePort()
	if err != nil {
		return nil, err
	}
	c := &syncCentrald{bin: bin, dir: dir, admin: "parkbench-sync-admin", client: &http.Client{Timeout: 30 * time.Second, Transport: loopbackTransport(2)}}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(hp))
	c.url, c.broker = "http://"+addr, net.JoinHostPort("127.0.0.1", strconv.Itoa(mp))
	c.env = append(baseEnv(os.Environ()),
		"PARKING_SITE="+syncSite,
		"PARKING_HTTP_ADDR="+addr,
		"PARKING_MQTT_LISTEN="+c.broker,
		"PARKING_DB_DSN="+filepath.Join(dir, "c.db"),
		"PARKING_TICKETS_KEY_FILE="+filepath.Join(dir, "t.key"),
		"PARKING_SPOTS_COUNT="+strconv.Itoa(spots),
		"PARKING_AUTH_ADMIN_TOKEN="+c.admin,
		"PARKING_LOG_LEVEL=warn",
		"PARKING_RESERVATIONS_MAX_ADVANCE="+strconv.Itoa(MaxAdvanceHours)+"h",
	)
	return c, nil
}

// gateAdd provisions a gate (`centrald gate add ID --role ROLE`, before
// centrald starts) and returns its MQTT password, the last line printed.
func (c *syncCentrald) gateAdd(ctx context.Context, id, role string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, "gate", "add", id, "--role", role)
	cmd.Env, cmd.Dir = c.env, c.dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("centrald gate add %s: %v: %s", id, err, strings.TrimSpace(stderr.String()))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1]), nil
}

// start starts centrald and waits for /readyz.
func (c *syncCentrald) start(ctx context.Context) error {
	cmd := exec.Command(c.bin)
	cmd.Env, cmd.Dir = c.env, c.dir
	p, err := startChild("centrald", cmd)
	if err != nil {
		return err
	}
	c.proc = p
	if err := p.waitHTTP(ctx, c.url+"/readyz", 30*time.Second, nil); err != nil {
		c.stop()
		return err
	}
	return nil
}

// stop stops and reaps centrald if it runs.
func (c *syncCentrald) stop() error {
	if c.proc == nil {
		return nil
	}
	err := c.proc.stop()
	c.proc = nil
	return err
}

// call sends a JSON request (as admin if admin is set, else with bearer
// token) and decodes a 2xx answer into out.
func (c *syncCentrald) call(ctx context.Context, method, path, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(data)))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// latest returns the latest change-log version after after (after if
// there is none newer).
func (c *syncCentrald) latest(ctx context.Context, after int64) (int64, error) {
	for range 1000 { // bounded: 5,000 changes a page
		var cs []struct {
			Version int64 `json:"version"`
		}
		if err := c.call(ctx, http.MethodGet, "/admin/changes?limit=5000&after="+strconv.FormatInt(after, 10), c.admin, nil, &cs); err != nil {
			return 0, err
		}
		if len(cs) == 0 {
			return after, nil
		}
		after = cs[len(cs)-1].Version
		if len(cs) < 5000 {
			return after, nil
		}
	}
	return after, errors.New("change log too long")
}

// window is a reservation window in the JSON of the API.
func window(from time.Time, d time.Duration) (string, string) {
	return from.UTC().Format(time.RFC3339), from.Add(d).UTC().Format(time.RFC3339)
}

// payOne reserves and pays spot for [from, from+1h) as a driver.
func (c *syncCentrald) payOne(ctx context.Context, spot int, from time.Time) error {
	f, u := window(from, time.Hour)
	var r struct {
		Token string `json:"token"`
	}
	id := strconv.Itoa(spot)
	if err := c.call(ctx, http.MethodPost, "/reserve/parking/"+id, "", map[string]string{"reservedFrom": f, "reservedUntil": u}, &r); err != nil {
		return err
	}
	return c.call(ctx, http.MethodPost, "/pay/parking/"+id, r.Token, map[string]any{
		"carId": "B-PG " + id, "cardDetails": map[string]string{"paymentMethod": "pm_card_visa"}}, nil)
}

// pushItem is one item of POST /admin/reservations.
type pushItem struct {
	Spot  string `json:"spotId"`
	From  string `json:"reservedFrom"`
	Until string `json:"reservedUntil"`
	Car   string `json:"carId"`
}

// push creates items (paid, by the operator) in requests of at most
// 1,000 and returns their tickets.
func (c *syncCentrald) push(ctx context.Context, items []pushItem) ([]string, error) {
	var tickets []string
	for len(items) > 0 {
		n := min(len(items), 1000)
		var out struct {
			Reservations []struct {
				Ticket string `json:"ticket"`
			} `json:"reservations"`
		}
		if err := c.call(ctx, http.MethodPost, "/admin/reservations", c.admin, map[string]any{"reservations": items[:n]}, &out); err != nil {
			return nil, err
		}
		for _, r := range out.Reservations {
			tickets = append(tickets, r.Ticket)
		}
		items = items[n:]
	}
	return tickets, nil
}

// gateStatus is what the benchmark reads of gated's GET /v1/status.
type gateStatus struct {
	CacheVersion int64 `json:"cacheVersion"`
	Outbox       int   `json:"outbox"`
	Online       bool  `json:"online"`
}

func status(ctx context.Context, client *http.Client, base string) (gateStatus, error) {
	var st gateStatus
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/status", nil)
	if err != nil {
		return st, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return st, fmt.Errorf("/v1/status: %d", resp.StatusCode)
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

// pollUntil asks the gate's status every every until ok accepts it, the
// gate exits, ctx ends or within passes; it returns when ok first held,
// measured from start.
func pollUntil(ctx context.Context, g *gatedProc, client *http.Client, start time.Time, every, within time.Duration, ok func(gateStatus) bool) (time.Duration, error) {
	deadline := time.Now().Add(within)
	for {
		if st, err := status(ctx, client, g.url); err == nil && ok(st) {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("gated: not there within %s", within)
		}
		select {
		case <-g.exited:
			return 0, fmt.Errorf("gated exited (%v):\n%s", g.exitErr, g.log.String())
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(every):
		}
	}
}

// startSyncGate starts gated as gate id of the sync site with database
// db, connected to broker, and waits for its HTTP API (any cache).
func startSyncGate(ctx context.Context, bin, dir, db, id, password, broker, pubKey string) (*gatedProc, error) {
	return onFreePorts(ctx, func() (*gatedProc, error) {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		cmd := exec.Command(bin)
		cmd.Env = append(gatedEnv(addr, db, pubKey),
			"PARKING_SITE="+syncSite,
			"PARKING_GATE_ID="+id,
			"PARKING_MQTT_URL=tcp://"+broker,
			"PARKING_MQTT_PASSWORD="+password,
		)
		cmd.Dir = dir
		c, err := startChild("gated "+id, cmd)
		if err != nil {
			return nil, err
		}
		g := &gatedProc{child: c, url: "http://" + addr}
		if err = c.waitHTTP(ctx, g.url+"/v1/status", 30*time.Second, nil); err != nil {
			c.stop()
			return nil, err
		}
		return g, nil
	})
}

// filesSize sums the sizes of path and its -wal and -shm files.
func filesSize(path string) int64 {
	var n int64
	for _, s := range []string{"", "-wal", "-shm"} {
		if fi, err := os.Stat(path + s); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// syncSection runs section g: one centrald with its embedded broker and
// two gates of the same site, every process stopped and reaped at the end.
func (b *runner) syncSection(ctx context.Context) (rep *SyncReport, err error) {
	p := b.p
	spots := max(p.Spots, p.SyncEvents)
	rep = &SyncReport{Spots: spots, ScanTarget: p.SyncEvents}
	c, err := newSyncCentrald(b.o.Centrald, b.parent, spots)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(c.dir)
	defer c.client.CloseIdleConnections()
	var gates []*gatedProc
	defer func() {
		for _, g := range gates {
			err = errors.Join(err, g.stop())
		}
		err = errors.Join(err, c.stop())
	}()
	stopGate := func(g *gatedProc) error {
		for i, h := range gates {
			if h == g {
				gates = append(gates[:i], gates[i+1:]...)
			}
		}
		return g.stop()
	}
	pw := map[string]string{}
	for _, id := range []string{"entry-1", "entry-2"} {
		if pw[id], err = c.gateAdd(ctx, id, "entry"); err != nil {
			return nil, err
		}
	}
	b.progress("g. sync: centrald (%d spots, broker on %s)", spots, c.broker)
	if err := c.start(ctx); err != nil {
		return nil, err
	}
	var pub struct {
		PublicKey string `json:"publicKey"`
	}
	if err := c.call(ctx, http.MethodGet, "/tickets/public-key", "", nil, &pub); err != nil {
		return nil, err
	}
	client := &http.Client{Transport: loopbackTransport(2)}
	defer client.CloseIdleConnections()

	// 1. Propagation to a synced gate.
	g1, err := startSyncGate(ctx, b.o.Gated, c.dir, filepath.Join(c.dir, "entry-1.db"), "entry-1", pw["entry-1"], c.broker, pub.PublicKey)
	if err != nil {
		return nil, err
	}
	gates = append(gates, g1)
	v, err := c.latest(ctx, 0)
	if err != nil {
		return nil, err
	}
	if _, err := pollUntil(ctx, g1, client, time.Now(), 10*time.Millisecond, 30*time.Second, func(s gateStatus) bool {
		return s.Online && s.CacheVersion >= v
	}); err != nil {
		return nil, fmt.Errorf("entry-1 online and synced: %w", err)
	}
	b.progress("g. sync: propagation, %d reservations paid one at a time", p.SyncPropagations)
	base := time.Now().UTC().Truncate(time.Hour).Add(24 * time.Hour)
	var lat []time.Duration
	for i := range p.SyncPropagations {
		spot := i%spots + 1
		if err := c.payOne(ctx, spot, base.Add(time.Duration(i/spots)*2*time.Hour)); err != nil {
			return nil, err
		}
		t0 := time.Now()
		if v, err = c.latest(ctx, v); err != nil {
			return nil, err
		}
		d, err := pollUntil(ctx, g1, client, t0, time.Millisecond, propagationWait, func(s gateStatus) bool { return s.CacheVersion >= v })
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			rep.PropagationLost++
			continue
		}
		lat = append(lat, d)
	}
	rep.PropagationN = len(lat) + rep.PropagationLost
	rep.Propagation = LatencyOf(lat)
	b.progress("  done: p50 %s, p99 %s, max %s, %d lost", ms(rep.Propagation.P50), ms(rep.Propagation.P99), ms(rep.Propagation.Max), rep.PropagationLost)

	// 2. Reservations: tickets valid now for the events (one per spot),
	// then future ones up to SyncResync in all.
	now := time.Now().UTC()
	var valid, future []pushItem
	for i := range p.SyncEvents {
		f, u := window(now.Add(time.Minute).Truncate(time.Second), 3*time.Hour)
		valid = append(valid, pushItem{Spot: strconv.Itoa(i%spots + 1), From: f, Until: u, Car: fmt.Sprintf("B-EV %d", i)})
	}
	for i := range max(p.SyncResync-p.SyncEvents-p.SyncPropagations, 0) {
		f, u := window(base.Add(48*time.Hour+time.Duration(i/spots)*2*time.Hour), time.Hour)
		future = append(future, pushItem{Spot: strconv.Itoa(i%spots + 1), From: f, Until: u, Car: fmt.Sprintf("B-RS %d", i)})
	}
	t0 := time.Now()
	tickets, err := c.push(ctx, valid)
	if err != nil {
		return nil, err
	}
	if _, err := c.push(ctx, future); err != nil {
		return nil, err
	}
	rep.Push = time.Since(t0)
	rep.ResyncEntries = p.SyncPropagations + len(valid) + len(future)
	if err := stopGate(g1); err != nil {
		return nil, err
	}
	if rep.ResyncVersion, err = c.latest(ctx, 0); err != nil {
		return nil, err
	}
	b.progress("g. sync: full resync of %d reservations (version %d) by a fresh gate", rep.ResyncEntries, rep.ResyncVersion)
	db2 := filepath.Join(c.dir, "entry-2.db")
	t0 = time.Now()
	g2, err := startSyncGate(ctx, b.o.Gated, c.dir, db2, "entry-2", pw["entry-2"], c.broker, pub.PublicKey)
	if err != nil {
		return nil, err
	}
	gates = append(gates, g2)
	rep.ResyncReady = time.Since(t0)
	rep.Resync, err = pollUntil(ctx, g2, client, t0, time.Millisecond, 60*time.Second, func(s gateStatus) bool {
		return s.CacheVersion >= rep.ResyncVersion
	})
	if err != nil {
		b.progress("  resync not complete: %v", err)
	}
	rep.ResyncDB = filesSize(db2)
	b.progress("  done: ready %s, synced %s, db %s", ms(rep.ResyncReady), ms(rep.Resync), mib(rep.ResyncDB))

	// 3. Events queued while centrald is down, delivered at its restart.
	if err := c.stop(); err != nil {
		return nil, fmt.Errorf("stopping centrald: %w", err)
	}
	b.progress("g. sync: centrald stopped; scanning up to %d tickets (at most %s)", len(tickets), dur(p.SyncScanDuration))
	scanCtx, cancel := context.WithTimeout(ctx, p.SyncScanDuration)
	t0 = time.Now()
	for _, code := range tickets {
		if scanCtx.Err() != nil {
			break
		}
		s := scanOnce(scanCtx, client, g2.url, scanBody(code))
		if s.Code == http.StatusOK && s.Reason == reasonTicket {
			rep.Granted++
		}
	}
	rep.ScanTime = time.Since(t0)
	cancel()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	st, err := status(ctx, client, g2.url)
	if err != nil {
		return nil, err
	}
	queued := st.Outbox
	rep.Queued = queued
	b.progress("  %d granted scans in %s, outbox %d; starting centrald again", rep.Granted, ms(rep.ScanTime), queued)
	t0 = time.Now()
	if err := c.start(ctx); err != nil {
		return nil, err
	}
	rep.CentraldReady = time.Since(t0)
	if rep.FirstAck, err = pollUntil(ctx, g2, client, t0, 2*time.Millisecond, 60*time.Second, func(s gateStatus) bool { return s.Outbox < queued }); err != nil {
		b.progress("  outbox never drained: %v", err)
		return rep, nil
	}
	if rep.Drained, err = pollUntil(ctx, g2, client, t0, 2*time.Millisecond, 120*time.Second, func(s gateStatus) bool { return s.Outbox == 0 }); err != nil {
		b.progress("  outbox not empty: %v", err)
		return rep, nil
	}
	b.progress("  done: centrald ready %s, first ack %s, outbox empty %s", ms(rep.CentraldReady), ms(rep.FirstAck), ms(rep.Drained))
	return rep, nil
}
