package centralsync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parkgate/parkgate/central/api"
	"github.com/parkgate/parkgate/central/apijson"
	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/clock/clocktest"
	"github.com/parkgate/parkgate/gate/barrier"
	"github.com/parkgate/parkgate/gate/faults"
	"github.com/parkgate/parkgate/gate/httpapi"
	"github.com/parkgate/parkgate/gate/lane"
	"github.com/parkgate/parkgate/gate/localdb"
	"github.com/parkgate/parkgate/hardware/sim"
	"github.com/parkgate/parkgate/sync/gatesync"
	"github.com/parkgate/parkgate/sync/syncmsg"
)

// laneGate is a whole gate in-process, wired as gated wires it: a real
// SQLite file, the lane and barrier state machine on simulated hardware,
// the fault register, the local HTTP API and the sync over MQTT.
type laneGate struct {
	id    string
	db    *localdb.DB
	clk   *clocktest.Clock // the lane's and the fault register's clock
	ln    *lane.Lane
	bar   *barrier.Barrier
	relay *sim.Output // the barrier's OPEN relay
	http  *httptest.Server
}

func startLaneGate(t *testing.T, e *env, id string) *laneGate {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	db, err := localdb.Open(ctx, filepath.Join(dir, "gate.db"))
	if err != nil {
		t.Fatal(err)
	}
	clk := clocktest.New(time.Now().UTC().Truncate(time.Second))
	reg := prometheus.NewRegistry()
	flt := faults.New(clk, reg, faults.Record, faults.Barrier)
	log := testLogger(t)

	// The barrier board and the relay run on the real clock: they time
	// pulses and travel, which this test does not look into.
	open := sim.NewOutput(clock.Real{})
	loop := sim.NewInput(clock.Real{}, 0, false)
	board := sim.NewBoard(sim.BoardConfig{Clock: clock.Real{}, Loop: loop, Travel: 10 * time.Millisecond}, open)
	var ln *lane.Lane
	bar, err := barrier.New(barrier.Config{Mode: barrier.ModePulse},
		barrier.Pins{Open: open, Loop: loop, OpenedStatus: board.OpenedStatus(), ClosedStatus: board.ClosedStatus()},
		clock.Real{}, func(ev barrier.Event) { ln.BarrierEvent(ev) })
	if err != nil {
		t.Fatal(err)
	}
	ln = lane.New(lane.Config{GateID: id, Role: localdb.RoleEntry, AlwaysTrusted: true, Faults: flt},
		db, nil, bar, clk, nil, log, reg)
	gs := gatesync.New(gatesync.Config{Site: e.site, GateID: id, Role: syncmsg.RoleEntry, URL: e.url,
		RetryMax: 500 * time.Millisecond, BirthInterval: 50 * time.Millisecond},
		gatesync.Deps{DB: db, Lane: ln, Sessions: gatesync.FileSessions(filepath.Join(dir, "session")),
			Log: log, StatusChanged: flt.Changed})

	var wg sync.WaitGroup
	for name, serve := range map[string]func(context.Context) error{"barrier": bar.Serve, "lane": ln.Serve, "sync": gs.Serve} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := serve(ctx); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}()
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Options{Lane: ln, Sim: board, Registry: reg, Log: log, Online: gs.Online}))
	t.Cleanup(func() {
		srv.Close()
		cancel()
		wg.Wait()
		board.Close()
		loop.Close()
		db.Close()
	})
	return &laneGate{id: id, db: db, clk: clk, ln: ln, bar: bar, relay: open, http: srv}
}

func (g *laneGate) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(g.http.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (g *laneGate) scan(t *testing.T, code string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(g.http.URL+"/v1/sim/scan", "application/json", strings.NewReader(`{"code":"`+code+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// status is GET /v1/status; faults must be an array, never null.
func (g *laneGate) status(t *testing.T) httpapi.StatusJSON {
	t.Helper()
	code, b := g.get(t, "/v1/status")
	if code != http.StatusOK {
		t.Fatalf("GET /v1/status = %d %s", code, b)
	}
	if !bytes.Contains(b, []byte(`"faults":[`)) {
		t.Fatalf("GET /v1/status has no faults array: %s", b)
	}
	var s httpapi.StatusJSON
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

// metric returns the line of /metrics that starts with name{labels}.
func (g *laneGate) metric(t *testing.T, series string) string {
	t.Helper()
	_, b := g.get(t, "/metrics")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, series+" ") {
			return l
		}
	}
	return ""
}

// fill writes small events until the capped file has no room left, as a
// gate whose outbox filled the SD card while centrald was away.
func (g *laneGate) fill(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	if _, err := g.db.LimitPages(ctx, 1); err != nil { // the file's present size
		t.Fatal(err)
	}
	for i := range 100000 {
		_, err := g.db.Record(ctx, localdb.Event{GateID: g.id, Role: localdb.RoleEntry, Time: g.clk.Now(),
			Source: localdb.SourceQR, Reason: "invalid"}, localdb.NoPresenceChange)
		if err != nil {
			if !strings.Contains(err.Error(), "full") {
				t.Fatalf("filler %d: %v, want the disk full", i, err)
			}
			return
		}
	}
	t.Fatal("the capped database never filled up")
}

// centralGates is centrald's GET /gates.
func centralGates(t *testing.T, h http.Handler) map[string]apijson.Gate {
	t.Helper()
	req := httptest.NewRequest("GET", "/gates", nil)
	req.Header.Set("Authorization", "Bearer "+faultsAdmin)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /gates = %d %s", rec.Code, rec.Body)
	}
	if rec.Body.String() != "[]\n" && !strings.Contains(rec.Body.String(), `"faults":[`) {
		t.Fatalf("GET /gates has no faults arrays: %s", rec.Body)
	}
	var gs []apijson.Gate
	if err := json.Unmarshal(rec.Body.Bytes(), &gs); err != nil {
		t.Fatal(err)
	}
	out := map[string]apijson.Gate{}
	for _, g := range gs {
		out[g.ID] = g
	}
	return out
}

const faultsAdmin = "admin-token-for-the-faults-test"

// statusWatcher keeps the gate's status messages as the broker delivers
// them.
type statusWatcher struct {
	mu   sync.Mutex
	msgs []syncmsg.GateStatus
}

func watchStatus(t *testing.T, url string, topic string) *statusWatcher {
	t.Helper()
	w := &statusWatcher{}
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("watch-" + uniqueSite()).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(wait))
	if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("watcher: connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(0) })
	tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		s, err := syncmsg.DecodeGateStatus(m.Payload())
		if err != nil {
			t.Errorf("gate status %s: %v", m.Payload(), err)
			return
		}
		w.mu.Lock()
		w.msgs = append(w.msgs, s)
		w.mu.Unlock()
	})
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("watcher: subscribe: %v", tok.Error())
	}
	return w
}

func (w *statusWatcher) last() (syncmsg.GateStatus, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.msgs) == 0 {
		return syncmsg.GateStatus{}, false
	}
	return w.msgs[len(w.msgs)-1], true
}

// A gate whose disk is full refuses to open (it cannot record the
// decision) and says why everywhere an operator looks: its /v1/status,
// its metrics, its MQTT status and so centrald's GET /gates; once the
// disk has room again, the next decision passes and the fault is gone
// from all of them.
func TestFullDiskFaultShowsEverywhere(t *testing.T) {
	url := startBroker(t, "127.0.0.1:0").url()
	e := newEnv(t, url)
	central := api.New(e.svc, api.Options{AdminToken: faultsAdmin})
	g := startLaneGate(t, e, "entry-1")
	watch := watchStatus(t, url, e.topics.GateStatus(g.id))
	ctx := context.Background()

	waitUntil(t, "central shows the gate online", func() bool { return centralGates(t, central)[g.id].Online })
	if s := g.status(t); len(s.Faults) != 0 {
		t.Fatalf("a healthy gate shows faults: %+v", s.Faults)
	}
	if l := g.metric(t, `parkgate_gate_fault{kind="record"}`); l != `parkgate_gate_fault{kind="record"} 0` {
		t.Fatalf("healthy gate's fault gauge: %q", l)
	}

	// centrald goes away: nothing acknowledges the outbox any more, and the
	// card fills up.
	e.stop()
	g.fill(t)

	first := g.clk.Now()
	if code, b := g.scan(t, "NOT-A-TICKET"); code != http.StatusServiceUnavailable || !strings.Contains(string(b), "lane_failed") {
		t.Fatalf("scan on a full disk = %d %s, want 503 lane_failed", code, b)
	}
	g.clk.Advance(3 * time.Second)
	last := g.clk.Now()
	if _, err := g.ln.Handle(ctx, lane.Read{Source: localdb.SourceRemote, Value: "cmd-1"}); err == nil {
		t.Fatal("a remote open was granted on a full disk: its decision cannot have been recorded")
	}
	if n := g.relay.Activations(); n != 0 || g.bar.State().Barrier() != "closed" {
		t.Fatalf("the barrier moved without a recorded decision: %d relay activations, %s", n, g.bar.State().Barrier())
	}

	s := g.status(t)
	if len(s.Faults) != 1 {
		t.Fatalf("/v1/status faults on a full disk = %+v, want the record fault", s.Faults)
	}
	f := s.Faults[0]
	if f.Kind != faults.Record || !f.Since.Equal(first) || !f.At.Equal(last) || !strings.Contains(f.Error, "database or disk is full") {
		t.Errorf("/v1/status fault = %+v, want kind record since %s at %s saying the disk is full", f, first, last)
	}
	if l := g.metric(t, `parkgate_gate_fault{kind="record"}`); l != `parkgate_gate_fault{kind="record"} 1` {
		t.Errorf("fault gauge on a full disk: %q", l)
	}
	if l := g.metric(t, `parkgate_gate_fault_events_total{kind="record"}`); l != `parkgate_gate_fault_events_total{kind="record"} 1` {
		t.Errorf("fault counter after one outage: %q", l)
	}

	// The gate tells the broker (its retained status), though no central
	// listens: a fault is news at once, not at the next heartbeat.
	waitUntil(t, "the gate's MQTT status carries the fault", func() bool {
		st, ok := watch.last()
		return ok && st.Online && len(st.Faults) == 1 && st.Faults[0].Kind == faults.Record &&
			st.Faults[0].Since.Equal(first) && strings.Contains(st.Faults[0].Error, "database or disk is full")
	})
	// centrald comes back and reads it from the retained status.
	e.relay, e.stop = e.startRelay()
	waitUntil(t, "central's GET /gates shows the fault", func() bool {
		cg := centralGates(t, central)[g.id]
		return len(cg.Faults) == 1 && cg.Faults[0].Kind == faults.Record && cg.Faults[0].Since.Equal(first) &&
			strings.Contains(cg.Faults[0].Error, "database or disk is full")
	})

	// Room again: the next decision is recorded and opens, and the fault
	// clears everywhere.
	if _, err := g.db.LimitPages(ctx, 1<<30); err != nil {
		t.Fatal(err)
	}
	g.clk.Advance(time.Second)
	res, err := g.ln.Handle(ctx, lane.Read{Source: localdb.SourceRemote, Value: "cmd-2"})
	if err != nil || !res.Granted || res.Seq == 0 {
		t.Fatalf("remote open with room on the disk: %+v, %v", res, err)
	}
	if n := g.relay.Activations(); n != 1 {
		t.Errorf("relay activations after the granted open: %d, want 1", n)
	}
	if s := g.status(t); len(s.Faults) != 0 {
		t.Errorf("/v1/status still shows faults after a recorded decision: %+v", s.Faults)
	}
	if l := g.metric(t, `parkgate_gate_fault{kind="record"}`); l != `parkgate_gate_fault{kind="record"} 0` {
		t.Errorf("fault gauge after recovery: %q", l)
	}
	waitUntil(t, "the gate's MQTT status has no fault", func() bool {
		st, ok := watch.last()
		return ok && st.Online && st.Faults != nil && len(st.Faults) == 0
	})
	waitUntil(t, "central's GET /gates shows no fault", func() bool {
		cg := centralGates(t, central)[g.id]
		return cg.Online && len(cg.Faults) == 0
	})
	if code, b := g.scan(t, "NOT-A-TICKET-EITHER"); code != http.StatusOK {
		t.Errorf("scan with room on the disk = %d %s, want a recorded denial", code, b)
	}
}
