package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parkgate/parkgate/internal/childproc"
)

// Process-level tests: the real gated binary in simulator mode, tickets
// issued by a real centrald, everything over HTTP, SIGKILL for crashes.

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func binaries(t *testing.T) (centrald, gated string) {
	t.Helper()
	if testing.Short() {
		t.Skip("process test skipped in -short mode")
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "parkgate-bin")
		if buildErr != nil {
			return
		}
		for _, c := range []string{"centrald", "gated"} {
			out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, c), "../"+c).CombinedOutput()
			if err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", c, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "centrald"), filepath.Join(binDir, "gated")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	base string
	mqtt string // centrald's embedded broker, if it said
	tls  string // its TLS listener, if it said
	done chan struct{}
	mu   sync.Mutex
	logs strings.Builder
}

var (
	addrRe = regexp.MustCompile(`serving (?:the parking API )?on (http://\S+) `)
	mqttRe = regexp.MustCompile(`MQTT broker for the gates listens on (\S+)`)
	tlsRe  = regexp.MustCompile(`MQTT broker for the gates listens with TLS on (\S+)`)
)

// start runs a daemon binary with env and waits until it says where it
// serves.
func start(t *testing.T, bin string, env ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), env...)
	return startCmd(t, cmd)
}

// startCmd runs cmd (a daemon) and waits until it says where it serves.
func startCmd(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	bin := cmd.Path
	p := &proc{t: t, cmd: cmd, done: make(chan struct{})}
	stdout, _ := p.cmd.StdoutPipe()
	p.cmd.Stderr = writerFunc(func(b []byte) (int, error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.logs.Write(b)
	})
	p.cmd.SysProcAttr = childproc.Attr()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(p.kill)
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := mqttRe.FindStringSubmatch(sc.Text()); m != nil {
				p.mu.Lock()
				p.mqtt = m[1]
				p.mu.Unlock()
			}
			if m := tlsRe.FindStringSubmatch(sc.Text()); m != nil {
				p.mu.Lock()
				p.tls = m[1]
				p.mu.Unlock()
			}
			if m := addrRe.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	select {
	case p.base = <-addr:
	case <-p.done:
		t.Fatalf("%s exited at start:\n%s", bin, p.logText())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not start within 30s:\n%s", bin, p.logText())
	}
	return p
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func (p *proc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *proc) call(method, path, token, body string) (int, map[string]any) {
	p.t.Helper()
	req, _ := http.NewRequest(method, p.base+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var m map[string]any
	json.Unmarshal(b, &m)
	return res.StatusCode, m
}

func (p *proc) scan(code string) map[string]any {
	p.t.Helper()
	b, _ := json.Marshal(map[string]string{"code": code})
	status, m := p.call("POST", "/v1/sim/scan", "", string(b))
	if status != 200 {
		p.t.Fatalf("scan: %d %v", status, m)
	}
	return m
}

// scanAfterRepeat waits out the repeat window (200 ms in these tests; a
// read inside it would extend it) and scans again.
func (p *proc) scanAfterRepeat(code string) map[string]any {
	p.t.Helper()
	time.Sleep(2 * repeatWindow)
	return p.scan(code)
}

const repeatWindow = 200 * time.Millisecond

func (p *proc) status() map[string]any {
	p.t.Helper()
	_, m := p.call("GET", "/v1/status", "", "")
	return m
}

const admin = "gated-process-test-admin"

// issueTicket reserves and pays spot at a real centrald and returns the
// ticket.
func issueTicket(t *testing.T, c *proc, spot string) string {
	code, _ := issue(t, c, spot)
	return code
}

// issue reserves and pays spot and returns the ticket and the reservation id.
func issue(t *testing.T, c *proc, spot string) (string, string) {
	t.Helper()
	now := time.Now().UTC()
	body := fmt.Sprintf(`{"reservedFrom":%q,"reservedUntil":%q}`, now.Add(time.Minute).Format(time.RFC3339), now.Add(2*time.Hour).Format(time.RFC3339))
	status, r := c.call("POST", "/reserve/parking/"+spot, "", body)
	if status != 201 {
		t.Fatalf("reserve: %d %v", status, r)
	}
	status, paid := c.call("POST", "/pay/parking/"+spot, r["token"].(string), `{"carId":"B-XY 123","cardDetails":{"paymentMethod":"pm_card_visa"}}`)
	if status != 200 {
		t.Fatalf("pay: %d %v", status, paid)
	}
	return paid["ticket"].(string), paid["reservationId"].(string)
}

func TestLaneWithRealTickets(t *testing.T) {
	centraldBin, gatedBin := binaries(t)
	dir := t.TempDir()
	c := start(t, centraldBin, "PARKING_HTTP_ADDR=127.0.0.1:0", "PARKING_MQTT_LISTEN=127.0.0.1:0", "PARKING_DB_DSN="+filepath.Join(dir, "c.db"),
		"PARKING_TICKETS_KEY_FILE="+filepath.Join(dir, "t.key"), "PARKING_AUTH_ADMIN_TOKEN="+admin,
		"PARKING_PAYMENT_FAKE_STATE_FILE="+filepath.Join(dir, "fakepay.json"))
	_, pub := c.call("GET", "/tickets/public-key", "", "")
	key := pub["publicKey"].(string)
	gate := func(id, role, db string) []string {
		return []string{"PARKING_HTTP_ADDR=127.0.0.1:0", "PARKING_MQTT_URL=", "PARKING_GATE_ID=" + id, "PARKING_GATE_ROLE=" + role,
			"PARKING_DB_PATH=" + filepath.Join(dir, db), "PARKING_TICKETS_PUBLIC_KEY=" + key,
			"PARKING_GATE_REPEAT_WINDOW=" + repeatWindow.String(), "PARKING_LOG_FORMAT=json"}
	}
	entry := start(t, gatedBin, gate("entry-1", "entry", "entry.db")...)
	exit := start(t, gatedBin, gate("exit-1", "exit", "exit.db")...)
	code := issueTicket(t, c, "3")

	if d := entry.scan(code); d["granted"] != true || d["reason"] != "ticket" || d["spotId"] != "3" {
		t.Fatalf("valid ticket at entry: %v", d)
	}
	if s := entry.status(); s["barrier"] != "open" || s["outbox"] != 1.0 {
		t.Fatalf("after a granted entry: %v", s)
	}
	if d := entry.scan(code); d["granted"] != false || d["reason"] != "duplicate" {
		t.Fatalf("the same read again at once: %v", d)
	}
	if d := entry.scanAfterRepeat(code); d["granted"] != false || d["reason"] != "already_inside" {
		t.Fatalf("the same ticket entering again: %v", d)
	}
	// Every single-character change is denied.
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	for _, i := range []int{2, len(code) / 2, len(code) - 1} {
		b := []byte(code)
		b[i] = alphabet[(strings.IndexByte(alphabet, b[i])+1)%len(alphabet)]
		if d := entry.scan(string(b)); d["granted"] != false {
			t.Fatalf("changed ticket (position %d) granted: %v", i, d)
		}
	}
	// An exit gate that requires proof of presence refuses a car it did
	// not see enter (until the sync tells it); the lenient one lets it out
	// and says so.
	strict := start(t, gatedBin, append(gate("exit-2", "exit", "exit2.db"), "PARKING_GATE_STRICT_EXIT=true")...)
	if d := strict.scan(code); d["granted"] != false || d["reason"] != "not_inside" {
		t.Fatalf("strict exit, car not known inside: %v", d)
	}
	if d := exit.scan(code); d["granted"] != true || d["presenceUnknown"] != true {
		t.Fatalf("valid ticket at exit: %v", d)
	}
	// The vehicle passes the exit: the simulated board closes behind it.
	exit.call("POST", "/v1/sim/vehicle", "", `{"present":true}`)
	exit.call("POST", "/v1/sim/vehicle", "", `{"present":false}`)
	deadline := time.Now().Add(10 * time.Second)
	for exit.status()["barrier"] != "closed" {
		if time.Now().After(deadline) {
			t.Fatalf("exit barrier did not close after the vehicle passed: %v", exit.status())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SIGKILL right after a granted decision, while the barrier is still open:
// the decision's outbox record survives.
func TestDecisionSurvivesSIGKILL(t *testing.T) {
	centraldBin, gatedBin := binaries(t)
	dir := t.TempDir()
	c := start(t, centraldBin, "PARKING_HTTP_ADDR=127.0.0.1:0", "PARKING_MQTT_LISTEN=127.0.0.1:0", "PARKING_DB_DSN="+filepath.Join(dir, "c.db"),
		"PARKING_TICKETS_KEY_FILE="+filepath.Join(dir, "t.key"),
		"PARKING_PAYMENT_FAKE_STATE_FILE="+filepath.Join(dir, "fakepay.json"))
	_, pub := c.call("GET", "/tickets/public-key", "", "")
	env := []string{"PARKING_HTTP_ADDR=127.0.0.1:0", "PARKING_MQTT_URL=", "PARKING_DB_PATH=" + filepath.Join(dir, "g.db"),
		"PARKING_TICKETS_PUBLIC_KEY=" + pub["publicKey"].(string)}
	g := start(t, gatedBin, env...)
	var granted []string
	for _, spot := range []string{"1", "2", "3"} {
		d := g.scan(issueTicket(t, c, spot))
		if d["granted"] != true {
			t.Fatalf("scan: %v", d)
		}
		granted = append(granted, d["eventId"].(string))
	}
	if s := g.status(); s["barrier"] != "open" {
		t.Fatalf("barrier should still be open: %v", s)
	}
	g.kill()
	g = start(t, gatedBin, env...)
	if s := g.status(); s["outbox"] != float64(len(granted)) {
		t.Fatalf("outbox after SIGKILL = %v, want %d", s["outbox"], len(granted))
	}
	if s := g.status(); s["barrier"] != "closed" {
		t.Fatalf("a restarted lane must start closed: %v", s)
	}
}

func TestImportAndCommands(t *testing.T) {
	_, gatedBin := binaries(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "cache.json")
	os.WriteFile(file, []byte(`{"version": 7, "reservations": [
		{"reservationId":"r1","spotId":"1","reservedFrom":"2026-01-01T10:00:00Z","reservedUntil":"2030-11-26T12:00:00Z","carId":"K-LM 42","status":"paid"}]}`), 0o600)
	cmd := exec.Command(gatedBin, "import", file)
	cmd.Env = append(os.Environ(), "PARKING_DB_PATH="+filepath.Join(dir, "g.db"))
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "imported 1 reservations at version 7") {
		t.Fatalf("import: %v %s", err, out)
	}
	g := start(t, gatedBin, "PARKING_HTTP_ADDR=127.0.0.1:0", "PARKING_MQTT_URL=", "PARKING_DB_PATH="+filepath.Join(dir, "g.db"))
	if s := g.status(); s["cacheVersion"] != 7.0 {
		t.Fatalf("status after import: %v", s)
	}
	// Plate entry from the imported cache, plates compared normalised.
	b, _ := json.Marshal(map[string]string{"plate": "klm 42"})
	if _, d := g.call("POST", "/v1/sim/plate", "", string(b)); d["granted"] != true || d["reason"] != "plate" {
		t.Fatalf("plate entry: %v", d)
	}
	os.WriteFile(file, []byte(`{"version": 8, "reservations": [{"reservationId":"r1"}]}`), 0o600)
	cmd = exec.Command(gatedBin, "import", file)
	cmd.Env = append(os.Environ(), "PARKING_DB_PATH="+filepath.Join(dir, "other.db"))
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "r1") {
		t.Fatalf("a bad import file must fail naming the entry: %v %s", err, out)
	}
	if status, _ := g.call("POST", "/v1/sim/scan", "", `{"code": 5}`); status != 400 {
		t.Fatalf("bad scan body: %d", status)
	}
}

// waitUntil polls cond until it holds, failing the test after within.
func waitUntil(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (p *proc) mqttAddr(t *testing.T) string {
	t.Helper()
	var a string
	waitUntil(t, "centrald's MQTT address", 10*time.Second, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		a = p.mqtt
		return a != ""
	})
	return a
}

// The whole system over MQTT: centrald with its embedded broker, an entry
// and an exit gate with their own credentials. A ticket paid at centrald
// opens the entry; the gate's event reaches centrald, which shows the spot
// taken; the exit opens and the spot is free; a cancellation reaches the
// gate's cache and stops the ticket.
func TestSyncEndToEnd(t *testing.T) {
	centraldBin, gatedBin := binaries(t)
	dir := t.TempDir()
	cenv := []string{"PARKING_SITE=e2e", "PARKING_HTTP_ADDR=127.0.0.1:0", "PARKING_MQTT_LISTEN=127.0.0.1:0",
		"PARKING_DB_DSN=" + filepath.Join(dir, "c.db"), "PARKING_TICKETS_KEY_FILE=" + filepath.Join(dir, "t.key"),
		"PARKING_PAYMENT_FAKE_STATE_FILE=" + filepath.Join(dir, "fakepay.json"),
		"PARKING_AUTH_ADMIN_TOKEN=" + admin}
	passwords := map[string]string{}
	for _, id := range []string{"entry-1", "exit-1"} {
		passwords[id] = addGate(t, centraldBin, cenv, id, strings.TrimSuffix(id, "-1"))
	}
	c := start(t, centraldBin, cenv...)
	broker := c.mqttAddr(t)
	_, pub := c.call("GET", "/tickets/public-key", "", "")
	gate := func(id, role string) *proc {
		return start(t, gatedBin, "PARKING_SITE=e2e", "PARKING_HTTP_ADDR=127.0.0.1:0", "PARKING_GATE_ID="+id,
			"PARKING_GATE_ROLE="+role, "PARKING_DB_PATH="+filepath.Join(dir, id+".db"),
			"PARKING_TICKETS_PUBLIC_KEY="+pub["publicKey"].(string), "PARKING_MQTT_URL=tcp://"+broker,
			"PARKING_MQTT_PASSWORD="+passwords[id], "PARKING_GATE_REPEAT_WINDOW="+repeatWindow.String())
	}
	entry, exit := gate("entry-1", "entry"), gate("exit-1", "exit")
	waitUntil(t, "both gates online at centrald", 20*time.Second, func() bool {
		req, _ := http.NewRequest("GET", c.base+"/gates", nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer res.Body.Close()
		var gs []map[string]any
		json.NewDecoder(res.Body).Decode(&gs)
		return len(gs) == 2 && gs[0]["online"] == true && gs[1]["online"] == true
	})
	waitUntil(t, "gates report themselves online", 20*time.Second, func() bool {
		return entry.status()["online"] == true && exit.status()["online"] == true
	})
	// A healthy gate's faults: an empty list in its status and at
	// centrald, and the fault gauge at 0 (gated wires one register).
	if f, ok := entry.status()["faults"].([]any); !ok || len(f) != 0 {
		t.Errorf("a healthy gate's /v1/status faults: %#v", entry.status()["faults"])
	}
	if res, err := http.Get(entry.base + "/metrics"); err != nil {
		t.Error(err)
	} else {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if !strings.Contains(string(b), "\nparkgate_gate_fault{kind=\"record\"} 0\n") {
			t.Errorf("gated's /metrics lacks parkgate_gate_fault{kind=\"record\"} 0")
		}
	}
	req, _ := http.NewRequest("GET", c.base+"/gates", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	if res, err := http.DefaultClient.Do(req); err != nil {
		t.Error(err)
	} else {
		var gs []map[string]any
		json.NewDecoder(res.Body).Decode(&gs)
		res.Body.Close()
		for _, g := range gs {
			if f, ok := g["faults"].([]any); !ok || len(f) != 0 {
				t.Errorf("GET /gates: %v's faults %#v, want []", g["id"], g["faults"])
			}
		}
	}

	code, resID := issue(t, c, "3")
	if d := entry.scan(code); d["granted"] != true {
		t.Fatalf("entry: %v", d)
	}
	spot := func() string { _, m := c.call("GET", "/parkings/3", "", ""); s, _ := m["status"].(string); return s }
	waitUntil(t, "the entry reaching centrald (spot taken)", 10*time.Second, func() bool { return spot() == "taken" })
	if d := exit.scan(code); d["granted"] != true {
		t.Fatalf("exit: %v", d)
	}
	waitUntil(t, "the exit reaching centrald (spot free)", 10*time.Second, func() bool { return spot() == "free" })
	waitUntil(t, "outboxes drained (events acknowledged)", 10*time.Second, func() bool {
		return entry.status()["outbox"] == 0.0 && exit.status()["outbox"] == 0.0
	})
	if _, r := c.call("GET", "/reservations/"+resID, admin, ""); r["status"] != "left" {
		t.Fatalf("reservation after entry and exit: %v", r)
	}

	// An operator opens the exit barrier remotely: the gate records it in
	// its outbox as a decision (source remote) and centrald stores it.
	if status, m := c.call("POST", "/gates/exit-1/open", admin, ""); status != 200 || m["opened"] != true {
		t.Fatalf("remote open: %d %v", status, m)
	}
	if status, _ := c.call("POST", "/gates/nope/open", admin, ""); status != 404 {
		t.Fatalf("remote open of an unknown gate: %d", status)
	}
	// An operator makes the entry gate reload its list: the gate answers
	// once it has asked for the snapshot.
	if status, m := c.call("POST", "/gates/entry-1/resync", admin, ""); status != 200 || m["resyncing"] != true {
		t.Fatalf("resync: %d %v", status, m)
	}
	if status, m := c.call("POST", "/gates/nope/resync", admin, ""); status != 404 || m["error"] == nil {
		t.Fatalf("resync of an unknown gate: %d %v", status, m)
	}
	waitUntil(t, "the remote opening recorded at centrald", 10*time.Second, func() bool {
		req, _ := http.NewRequest("GET", c.base+"/admin/gate-events?gate=exit-1", nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer res.Body.Close()
		var evs []map[string]any
		json.NewDecoder(res.Body).Decode(&evs)
		return len(evs) > 0 && evs[0]["source"] == "remote" && evs[0]["granted"] == true
	})

	// A cancellation stops the ticket once the gate has the change.
	code2, res2 := issue(t, c, "4")
	if status, m := c.call("DELETE", "/reservations/"+res2, admin, ""); status != 200 {
		t.Fatalf("cancel: %d %v", status, m)
	}
	waitUntil(t, "the cancellation reaching the entry gate", 10*time.Second, func() bool {
		req, _ := http.NewRequest("GET", c.base+"/admin/changes?limit=5000", nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		defer res.Body.Close()
		var cs []map[string]any
		json.NewDecoder(res.Body).Decode(&cs)
		return len(cs) > 0 && entry.status()["cacheVersion"] == cs[len(cs)-1]["version"]
	})
	if d := entry.scan(code2); d["granted"] != false || d["reason"] != "revoked" {
		t.Fatalf("a cancelled ticket after the sync: %v", d)
	}
}

// freePort returns a loopback port nothing listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// centrald (and with it the broker) is SIGKILLed; the entry gate keeps
// deciding from its cache and its signature check, and is itself SIGKILLed
// with events queued; after both restart every event reaches centrald
// exactly once and the spots are right.
func TestSyncSurvivesOutagesAndSIGKILL(t *testing.T) {
	centraldBin, gatedBin := binaries(t)
	dir := t.TempDir()
	httpAddr, mqttAddr := freePort(t), freePort(t)
	cenv := []string{"PARKING_SITE=outage", "PARKING_HTTP_ADDR=" + httpAddr, "PARKING_MQTT_LISTEN=" + mqttAddr,
		"PARKING_DB_DSN=" + filepath.Join(dir, "c.db"), "PARKING_TICKETS_KEY_FILE=" + filepath.Join(dir, "t.key"),
		"PARKING_PAYMENT_FAKE_STATE_FILE=" + filepath.Join(dir, "fakepay.json"),
		"PARKING_AUTH_ADMIN_TOKEN=" + admin}
	pw := addGate(t, centraldBin, cenv, "entry-1", "entry")
	c := start(t, centraldBin, cenv...)
	_, pub := c.call("GET", "/tickets/public-key", "", "")
	genv := []string{"PARKING_SITE=outage", "PARKING_HTTP_ADDR=127.0.0.1:0", "PARKING_GATE_ID=entry-1",
		"PARKING_DB_PATH=" + filepath.Join(dir, "g.db"), "PARKING_TICKETS_PUBLIC_KEY=" + pub["publicKey"].(string),
		"PARKING_MQTT_URL=tcp://" + mqttAddr, "PARKING_MQTT_PASSWORD=" + pw}
	g := start(t, gatedBin, genv...)
	waitUntil(t, "the gate online", 20*time.Second, func() bool { return g.status()["online"] == true })
	codes := []string{issueTicket(t, c, "1"), issueTicket(t, c, "2"), issueTicket(t, c, "3")}

	c.kill() // centrald and its broker are gone
	for _, code := range codes[:2] {
		if d := g.scan(code); d["granted"] != true {
			t.Fatalf("offline entry: %v", d)
		}
	}
	if s := g.status(); s["outbox"] != 2.0 {
		t.Fatalf("events queued while offline: %v", s)
	}
	g.kill() // and the gate crashes with its events queued
	g = start(t, gatedBin, genv...)
	if d := g.scan(codes[2]); d["granted"] != true {
		t.Fatalf("entry after the gate's restart: %v", d)
	}
	c = start(t, centraldBin, cenv...)
	spot := func(id string) string {
		_, m := c.call("GET", "/parkings/"+id, "", "")
		s, _ := m["status"].(string)
		return s
	}
	waitUntil(t, "every queued event applied", 30*time.Second, func() bool {
		return spot("1") == "taken" && spot("2") == "taken" && spot("3") == "taken"
	})
	waitUntil(t, "the outbox drained", 15*time.Second, func() bool { return g.status()["outbox"] == 0.0 })
	req, _ := http.NewRequest("GET", c.base+"/admin/gate-events?gate=entry-1", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var evs []map[string]any
	json.NewDecoder(res.Body).Decode(&evs)
	if len(evs) != 3 {
		t.Fatalf("centrald stored %d events, want exactly 3: %v", len(evs), evs)
	}
	for _, e := range evs {
		if e["outcome"] != "applied" {
			t.Fatalf("event not applied: %v", e)
		}
	}

	// A change made while the gate is down reaches it after its restart
	// (it finds itself behind and resyncs): the cancelled ticket stops.
	code4, res4 := issue(t, c, "4")
	g.kill()
	if status, m := c.call("DELETE", "/reservations/"+res4, admin, ""); status != 200 {
		t.Fatalf("cancel: %d %v", status, m)
	}
	latest := func() float64 {
		req, _ := http.NewRequest("GET", c.base+"/admin/changes?limit=5000", nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return -1
		}
		defer res.Body.Close()
		var cs []map[string]any
		json.NewDecoder(res.Body).Decode(&cs)
		if len(cs) == 0 {
			return -1
		}
		return cs[len(cs)-1]["version"].(float64)
	}
	g = start(t, gatedBin, genv...)
	waitUntil(t, "the restarted gate catching up", 20*time.Second, func() bool { return g.status()["cacheVersion"] == latest() })
	if d := g.scan(code4); d["granted"] != false || d["reason"] != "revoked" {
		t.Fatalf("a ticket cancelled while the gate was down: %v", d)
	}
}

// addGate provisions a gate at centrald (centrald gate add) and returns the
// broker password it printed as its last line.
func addGate(t *testing.T, centraldBin string, cenv []string, id, role string) string {
	t.Helper()
	cmd := exec.Command(centraldBin, "gate", "add", id, "--role", role)
	cmd.Env = append(os.Environ(), cenv...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("centrald gate add %s: %v", id, err)
	}
	pw := strings.TrimSpace(string(out))
	return pw[strings.LastIndex(pw, "\n")+1:]
}
