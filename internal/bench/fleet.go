package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parkgate/parkgate/internal/fleet"
	"github.com/parkgate/parkgate/sync/syncmsg"
)

// Targets of the fleet section.
const (
	// FleetPropagationP99Target bounds the p99 from a committed payment
	// to every gate's cache holding it.
	FleetPropagationP99Target = 100 * time.Millisecond
	// FleetRestartTarget bounds the time from centrald's restart to every
	// gate back online at central and holding central's version.
	FleetRestartTarget = 30 * time.Second
)

// fleetWait bounds every wait of the fleet section.
const fleetWait = 120 * time.Second

// FleetRun is the fleet section on one broker.
type FleetRun struct {
	Broker string // "embedded" or "mosquitto"
	Gates  int
	// Connect: from the fleet's start to every gate online at central
	// (GET /gates) and holding a snapshot.
	Connect time.Duration
	// Propagation: the 200 of a pay to each gate's cache holding the
	// payment's version, over every gate and PropagationN payments.
	Propagation  Latency
	PropagationN int
	Lost         int // gate × payment pairs not reached within 5 s
	// Restart: centrald stopped (SIGTERM) and started again on the same
	// database; from its exec to every gate online and converged
	// (Restart; 0 if not within fleetWait). Snapshots counts the
	// snapshots the fleet applied meanwhile.
	Restart   time.Duration
	Snapshots int
	// centrald's resident memory before the fleet connected, with every
	// gate connected, and its peak after the restart; its CPU over
	// IdleWindow with every gate connected and idle (heartbeats only).
	RSSBefore, RSSConnected, RSSPeakRestart int64
	CPUIdle                                 float64 // fraction of one core
	IdleWindow                              time.Duration
	Dropped                                 int64
	Load                                    string // /proc/loadavg at the end
}

// FleetReport holds the fleet section's runs.
type FleetReport struct {
	Runs []FleetRun
	Skip string // why the Mosquitto run did not run, if it did not
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// cpuTicks returns utime+stime of pid in clock ticks (100 a second).
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("bad stat")
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 13 {
		return 0, errors.New("bad stat")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	return u + st, errors.Join(err1, err2)
}

// onlineAtCentral counts the gates GET /gates shows online.
func (c *syncCentrald) onlineAtCentral(ctx context.Context) (int, error) {
	var gs []struct {
		Online bool `json:"online"`
	}
	if err := c.call(ctx, http.MethodGet, "/gates", c.admin, nil, &gs); err != nil {
		return 0, err
	}
	n := 0
	for _, g := range gs {
		if g.Online {
			n++
		}
	}
	return n, nil
}

// fleetSection runs the fleet on the embedded broker and, when
// mosquittoURL is set, on that broker.
func (b *runner) fleetSection(ctx context.Context) (*FleetReport, error) {
	rep := &FleetReport{}
	n := b.p.FleetGates
	r, err := b.fleetRun(ctx, n, "")
	if err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	rep.Runs = append(rep.Runs, r)
	if b.o.FleetMQTT == "" {
		rep.Skip = "no external broker given (-fleet-mqtt, default $PARKING_TEST_MQTT_URL)"
		return rep, nil
	}
	r, err = b.fleetRun(ctx, n, b.o.FleetMQTT)
	if err != nil {
		return nil, fmt.Errorf("mosquitto: %w", err)
	}
	rep.Runs = append(rep.Runs, r)
	return rep, nil
}

func (b *runner) fleetRun(ctx context.Context, n int, external string) (run FleetRun, err error) {
	run = FleetRun{Broker: "embedded", Gates: n, IdleWindow: 10 * time.Second}
	c, err := newSyncCentrald(b.o.Centrald, b.parent, 100)
	if err != nil {
		return run, err
	}
	defer os.RemoveAll(c.dir)
	defer c.client.CloseIdleConnections()
	// A site of its own: an external broker keeps retained births.
	site := "fleet" + strings.ToLower(rand.Text()[:8])
	c.env = append(c.env, "PARKING_SITE="+site, "PARKING_LOG_LEVEL=error")
	url := "tcp://" + c.broker
	if external != "" {
		run.Broker = "mosquitto"
		url = external
		c.env = append(c.env, "PARKING_MQTT_EMBEDDED=false", "PARKING_MQTT_URL="+external)
	} else {
		// The gates connect without credentials: provisioning a thousand
		// argon2id passwords would measure the hashing, not the sync.
		c.env = append(c.env, "PARKING_MQTT_ALLOW_ANONYMOUS=true")
	}
	b.progress("fleet: %d gates on the %s broker", n, run.Broker)
	if err := c.start(ctx); err != nil {
		return run, err
	}
	defer func() { err = errors.Join(err, c.stop()) }()
	run.RSSBefore, _, _ = memory(c.proc.pid())

	specs := make([]fleet.Spec, n)
	for i := range specs {
		role := syncmsg.RoleEntry
		if i%2 == 1 {
			role = syncmsg.RoleExit
		}
		// Ids of this run only: the gate id is the MQTT client id, and a
		// broker drops a connection when another takes its client id.
		specs[i] = fleet.Spec{ID: fmt.Sprintf("%s-%04d", site, i), Role: role}
	}
	// Every gate's versions as it reaches them, with the time: a gate may
	// reach a payment's version before the pay's answer is back.
	var mu sync.Mutex
	reachedAt := map[string][]versionAt{}
	f, err := fleet.New(fleet.Config{URL: url, Site: site, Gates: specs, OnVersion: func(g *fleet.Gate, v int64, at time.Time) {
		mu.Lock()
		defer mu.Unlock()
		reachedAt[g.ID()] = append(reachedAt[g.ID()], versionAt{v, at})
	}})
	if err != nil {
		return run, err
	}
	fctx, stopFleet := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- f.Serve(fctx) }()
	defer func() {
		stopFleet()
		err = errors.Join(err, <-done)
	}()
	converged := func(version int64) (bool, error) {
		on, err := c.onlineAtCentral(ctx)
		if err != nil || on < n {
			return false, nil // centrald may be starting
		}
		for _, g := range f.Gates() {
			s := g.State()
			if !s.HasCache || s.Awaiting || s.Version < version {
				return false, nil
			}
		}
		return true, nil
	}
	waitConverged := func(version int64) (time.Duration, error) {
		t0 := time.Now()
		for time.Since(t0) < fleetWait {
			if ok, err := converged(version); err != nil {
				return 0, err
			} else if ok {
				return time.Since(t0), nil
			}
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
		return 0, nil
	}
	if _, err := waitConverged(0); err != nil {
		return run, err
	}
	run.Connect = time.Since(start)
	b.progress("  every gate online after %s", sec1(run.Connect))
	run.RSSConnected, _, _ = memory(c.proc.pid())
	idle := startCPU(c.proc.pid())
	time.Sleep(run.IdleWindow)
	run.CPUIdle = idle.since().Seconds() / run.IdleWindow.Seconds()

	// Propagation.
	var lat []time.Duration
	from := time.Now().Add(time.Hour).Truncate(time.Hour)
	for i := range b.p.FleetPropagations {
		mu.Lock()
		clear(reachedAt)
		mu.Unlock()
		paidAt, err := c.reserveAndPay(ctx, i%100+1, from.Add(time.Duration(i/100)*time.Hour))
		if err != nil {
			return run, err
		}
		v, err := c.latest(ctx, 0)
		if err != nil {
			return run, err
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			got := 0
			for _, g := range f.Gates() {
				if g.State().Version >= v {
					got++
				}
			}
			if got == n || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		mu.Lock()
		for _, g := range f.Gates() {
			at, ok := firstAt(reachedAt[g.ID()], v)
			if !ok {
				run.Lost++
				continue
			}
			lat = append(lat, max(0, at.Sub(paidAt)))
		}
		mu.Unlock()
		run.PropagationN++
	}
	slices.Sort(lat)
	run.Propagation = LatencyOf(lat)
	b.progress("  propagation to %d gates: p50 %s, p99 %s, %d lost", n, ms(run.Propagation.P50), ms(run.Propagation.P99), run.Lost)

	// Restart.
	snapsBefore := 0
	for _, g := range f.Gates() {
		snapsBefore += g.State().Snapshots
	}
	version, err := c.latest(ctx, 0)
	if err != nil {
		return run, err
	}
	if err := c.stop(); err != nil {
		return run, err
	}
	restartAt := time.Now()
	if err := c.start(ctx); err != nil {
		return run, err
	}
	d, err := waitConverged(version)
	if err != nil {
		return run, err
	}
	if d > 0 {
		run.Restart = time.Since(restartAt)
	}
	_, run.RSSPeakRestart, _ = memory(c.proc.pid())
	for _, g := range f.Gates() {
		run.Snapshots += g.State().Snapshots
	}
	run.Snapshots -= snapsBefore
	run.Dropped = f.Dropped()
	run.Load = loadavg()
	b.progress("  restart: converged after %s, %d snapshots", sec1(run.Restart), run.Snapshots)
	return run, nil
}

// sec1 formats a duration in seconds with one decimal.
func sec1(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

// reserveAndPay reserves spot for [from, from+1h) and pays it as a
// driver; it returns when the pay request was sent, so that a gate
// reached before the 200 comes back counts what it took (the relay, woken
// by the commit, often publishes before the answer reaches the client).
func (c *syncCentrald) reserveAndPay(ctx context.Context, spot int, from time.Time) (time.Time, error) {
	f, u := window(from, time.Hour)
	var r struct {
		Token string `json:"token"`
	}
	id := strconv.Itoa(spot)
	if err := c.call(ctx, http.MethodPost, "/reserve/parking/"+id, "", map[string]string{"reservedFrom": f, "reservedUntil": u}, &r); err != nil {
		return time.Time{}, err
	}
	sent := time.Now()
	return sent, c.call(ctx, http.MethodPost, "/pay/parking/"+id, r.Token, map[string]any{
		"carId": "B-FL " + id, "cardDetails": map[string]string{"paymentMethod": "pm_card_visa"}}, nil)
}

// versionAt is a version a gate reached, and when.
type versionAt struct {
	v  int64
	at time.Time
}

// firstAt returns when vs first reached v or beyond.
func firstAt(vs []versionAt, v int64) (time.Time, bool) {
	for _, x := range vs {
		if x.v >= v {
			return x.at, true
		}
	}
	return time.Time{}, false
}
