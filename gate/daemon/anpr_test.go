package daemon

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/gate/config"
	"github.com/parkgate/parkgate/gate/localdb"

	"github.com/parkgate/parkgate/internal/syncbuf"
)

// These tests run gated as it runs on a lane — the shipped
// configs/gated.yaml through the real config loader, the real daemon
// wiring, the simulated lane hardware, a real SQLite file — and push to it
// over HTTP the way a camera (or someone else) would.

// testGated is one gated run by Run in this process.
type testGated struct {
	t      *testing.T
	api    string // http://host:port of the local API
	camera string // http://host:port where POST /v1/anpr is served
	dbPath string
	logs   *syncbuf.Buffer
	stop   func()
}

// Reservations in every test gated's cache: two paid cars, due now.
const (
	resKLM = "r-klm42"
	resBMW = "r-bmw1234"
)

// shipped is the example configuration installers start from.
const shipped = "../../configs/gated.yaml"

// startGated seeds a fresh cache and runs gated with the shipped config
// plus env (PARKING_* overrides), on free loopback ports, without MQTT.
func startGated(t *testing.T, env ...string) *testGated {
	t.Helper()
	return startGatedWith(t, shipped, env...)
}

// startGatedWith is startGated with the config file at path ("": none,
// the built-in defaults).
func startGatedWith(t *testing.T, path string, env ...string) *testGated {
	t.Helper()
	dir := t.TempDir()
	g := &testGated{t: t, dbPath: filepath.Join(dir, "gated.db"), logs: &syncbuf.Buffer{}}
	now := time.Now()
	ctx := context.Background()
	db, err := localdb.Open(ctx, g.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	err = db.ApplySnapshot(ctx, 1, []localdb.Entry{
		{ReservationID: resKLM, SpotID: "1", From: now.Add(-time.Hour), Until: now.Add(2 * time.Hour), CarID: "K-LM 42", State: localdb.StatePaid},
		{ReservationID: resBMW, SpotID: "2", From: now.Add(-time.Hour), Until: now.Add(2 * time.Hour), CarID: "B-MW 1234", State: localdb.StatePaid},
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	env = append([]string{"PARKING_DB_PATH=" + g.dbPath, "PARKING_HTTP_ADDR=127.0.0.1:0", "PARKING_MQTT_URL="}, env...)
	cfg, err := config.Load(path, env)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(g.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rctx, cancel := context.WithCancel(ctx)
	started, cameraStarted := make(chan string, 1), make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(rctx, cfg, Options{Log: log,
			Started:       func(a string) { started <- a },
			CameraStarted: func(a string) { cameraStarted <- a },
		})
	}()
	select {
	case a := <-started:
		g.api = "http://" + a
	case err := <-done:
		cancel()
		t.Fatalf("gated stopped at start: %v\n%s", err, g.logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("gated did not start within 30s\n%s", g.logs)
	}
	g.camera = g.api
	if cfg.HTTP.ANPRAddr != "" {
		g.camera = "http://" + <-cameraStarted // sent before Started
	}
	var once sync.Once
	g.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("gated stopped with %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("gated did not stop within 30s")
			}
		})
	}
	t.Cleanup(g.stop)
	return g
}

// push is one request to gated.
type push struct {
	method, url string
	contentType string
	body        []byte
	from        string            // local IP to send from; empty: any
	header      map[string]string // extra headers
	user, pass  string            // HTTP Basic, if user is set
}

// send sends p and returns the status and the decoded JSON answer.
func (g *testGated) send(p push) (int, map[string]any) {
	g.t.Helper()
	if p.method == "" {
		p.method = "POST"
	}
	req, err := http.NewRequest(p.method, p.url, bytes.NewReader(p.body))
	if err != nil {
		g.t.Fatal(err)
	}
	if p.contentType != "" {
		req.Header.Set("Content-Type", p.contentType)
	}
	for k, v := range p.header {
		req.Header.Set(k, v)
	}
	if p.user != "" {
		req.SetBasicAuth(p.user, p.pass)
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	if p.from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(p.from)}
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	defer client.CloseIdleConnections()
	res, err := client.Do(req)
	if err != nil {
		g.t.Fatalf("%s %s: %v", p.method, p.url, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var m map[string]any
	json.Unmarshal(raw, &m)
	return res.StatusCode, m
}

// metric sums the samples of a metric whose name and labels start with
// prefix, e.g. `parkgate_gate_decisions_total{` or
// `parkgate_anpr_refused_total{reason="source"}`.
func (g *testGated) metric(prefix string) float64 {
	g.t.Helper()
	res, err := http.Get(g.api + "/metrics")
	if err != nil {
		g.t.Fatal(err)
	}
	defer res.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			g.t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// waitDecisions waits until the lane has taken n decisions.
func (g *testGated) waitDecisions(n float64) {
	g.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := g.metric("parkgate_gate_decisions_total{")
		if got == n {
			return
		}
		if got > n || time.Now().After(deadline) {
			g.t.Fatalf("the lane took %v decisions, want %v\n%s", got, n, g.logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// outbox stops gated and returns the decisions it recorded.
func (g *testGated) outbox() []localdb.Event {
	g.t.Helper()
	g.stop()
	db, err := localdb.Open(context.Background(), g.dbPath)
	if err != nil {
		g.t.Fatal(err)
	}
	defer db.Close()
	evs, err := db.Pending(context.Background(), 100)
	if err != nil {
		g.t.Fatal(err)
	}
	return evs
}

// assertOnlyGranted checks that the outbox holds exactly one decision: the
// reservation's entry, granted.
func assertOnlyGranted(t *testing.T, evs []localdb.Event, reservation string) {
	t.Helper()
	if len(evs) != 1 || evs[0].Kind != localdb.KindDecision || !evs[0].Granted || evs[0].ReservationID != reservation {
		t.Fatalf("outbox = %+v, want one granted decision for %s", evs, reservation)
	}
}

func readSample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../hardware/anpr/testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// With the shipped configuration, and with no configuration at all, every
// vendor format the camera input supports opens the barrier for the plate
// of a paid reservation; events that carry no plate are answered and decide
// nothing.
func TestShippedConfigTakesEveryVendorFormat(t *testing.T) {
	samples := []struct {
		file, contentType string
		reservation       string // granted; empty: the push carries no plate
	}{
		{"hikvision_anpr.xml", "application/xml; charset=UTF-8", resKLM},
		{"hikvision_anpr_multipart.bin", "multipart/form-data; boundary=boundary", resKLM},
		{"hikvision_mixed_picture_first.bin", "multipart/mixed; boundary=MIME_boundary_hik", resBMW},
		{"hikvision_videoloss.xml", "application/xml", ""},
		{"platerecognizer_stream.json", "application/json", resKLM},
		{"platerecognizer_stream.multipart", "multipart/form-data; boundary=------------------------9a1c3e5f7b2d4a60", resBMW},
		{"axis_lpv.json", "application/json", resKLM},
		{"milesight_lpr.json", "application/json", resKLM},
		{"openalpr_group.json", "application/json", resKLM},
		{"openalpr_results.json", "application/json", resKLM},
		{"openalpr_heartbeat.json", "application/json", ""},
		{"plain.json", "application/json", resKLM},
	}
	// Every recorded sample is in the table.
	files, err := os.ReadDir("../../hardware/anpr/testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		found := f.IsDir()
		for _, s := range samples {
			found = found || s.file == f.Name()
		}
		if !found {
			t.Errorf("testdata/%s is not tried here", f.Name())
		}
	}
	for name, path := range map[string]string{"shipped": shipped, "no config file": ""} {
		for _, s := range samples {
			t.Run(name+"/"+s.file, func(t *testing.T) {
				g := startGatedWith(t, path)
				status, m := g.send(push{url: g.camera + "/v1/anpr", contentType: s.contentType, body: readSample(t, s.file)})
				if status != http.StatusOK {
					t.Fatalf("POST /v1/anpr = %d %v", status, m)
				}
				reads, _ := m["reads"].([]any)
				if s.reservation == "" {
					if len(reads) != 0 {
						t.Fatalf("answer %v, want no reads", m)
					}
					if evs := g.outbox(); len(evs) != 0 {
						t.Fatalf("outbox = %+v, want nothing decided", evs)
					}
					return
				}
				if len(reads) != 1 || reads[0].(map[string]any)["status"] != "queued" {
					t.Fatalf("answer %v, want one read queued", m)
				}
				g.waitDecisions(1)
				assertOnlyGranted(t, g.outbox(), s.reservation)
			})
		}
	}
}

// canSendFrom skips the test when this machine cannot send from ip (the
// whole of 127.0.0.0/8 is local on Linux, not everywhere).
func canSendFrom(t *testing.T, ip string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Skipf("cannot send from %s here (%v): the source check needs a second loopback address", ip, err)
	}
	c.Close()
}

// The attack: someone on the network pushes a paid car's plate. It is
// refused — whatever X-Forwarded-For says — logged with the sender's
// address, counted, and never decided, so the real car still gets in.
// Checked with the camera on the API's listener and on its own.
func TestPushFromAnUnlistedSourceIsRefused(t *testing.T) {
	canSendFrom(t, "127.0.0.2")
	for name, env := range map[string][]string{
		"api listener":    nil,
		"camera listener": {"PARKING_HTTP_ANPR_ADDR=127.0.0.1:0"},
	} {
		t.Run(name, func(t *testing.T) {
			g := startGated(t, append([]string{"PARKING_ANPR_ALLOW_FROM=127.0.0.1/32,10.20.0.0/24"}, env...)...)
			plain := []byte(`{"plate": "KLM42"}`)
			status, m := g.send(push{url: g.camera + "/v1/anpr", contentType: "application/json", body: plain, from: "127.0.0.2",
				header: map[string]string{"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1", "Forwarded": "for=127.0.0.1"}})
			if status != http.StatusForbidden || errCode(m) != "forbidden_source" {
				t.Fatalf("push from 127.0.0.2 = %d %v, want 403 forbidden_source", status, m)
			}
			if got := g.metric(`parkgate_anpr_refused_total{reason="source"}`); got != 1 {
				t.Errorf("parkgate_anpr_refused_total{reason=source} = %v, want 1", got)
			}
			if logs := g.logs.String(); !strings.Contains(logs, `level=WARN msg="camera push refused" reason=source peer=127.0.0.2:`) {
				t.Errorf("no warning naming the sender in the log:\n%s", logs)
			}
			// The camera, from an allowed address, then reads the real car.
			status, m = g.send(push{url: g.camera + "/v1/anpr", contentType: "application/json", body: plain, from: "127.0.0.1"})
			if reads, _ := m["reads"].([]any); status != http.StatusOK || len(reads) != 1 || reads[0].(map[string]any)["status"] != "queued" {
				t.Fatalf("camera push = %d %v, want its read queued", status, m)
			}
			g.waitDecisions(1)
			assertOnlyGranted(t, g.outbox(), resKLM)
		})
	}
}

// With anpr.username and anpr.password set, a push from an allowed source
// must also carry that HTTP Basic login; without it or with a wrong one it
// is refused, counted and never decided, and the password is never logged.
func TestPushWithoutTheCameraLoginIsRefused(t *testing.T) {
	const password = "pw-s3cret-9f2"
	g := startGated(t, "PARKING_ANPR_USERNAME=hikcam", "PARKING_ANPR_PASSWORD="+password, "PARKING_HTTP_ANPR_ADDR=127.0.0.1:0")
	body := readSample(t, "hikvision_anpr_multipart.bin")
	const ct = "multipart/form-data; boundary=boundary"
	for _, login := range []struct{ user, pass string }{
		{"", ""},
		{"hikcam", "wrong-pass-77"},
		{"hikcam2", password},
		{"hikcam", password + "x"},
	} {
		status, m := g.send(push{url: g.camera + "/v1/anpr", contentType: ct, body: body, user: login.user, pass: login.pass})
		if status != http.StatusForbidden || errCode(m) != "bad_credentials" {
			t.Fatalf("push with login %q = %d %v, want 403 bad_credentials", login.user, status, m)
		}
	}
	if got := g.metric(`parkgate_anpr_refused_total{reason="credentials"}`); got != 4 {
		t.Errorf("parkgate_anpr_refused_total{reason=credentials} = %v, want 4", got)
	}
	if got := g.metric(`parkgate_anpr_refused_total{reason="source"}`); got != 0 {
		t.Errorf("parkgate_anpr_refused_total{reason=source} = %v, want 0", got)
	}
	status, m := g.send(push{url: g.camera + "/v1/anpr", contentType: ct, body: body, user: "hikcam", pass: password})
	if reads, _ := m["reads"].([]any); status != http.StatusOK || len(reads) != 1 || reads[0].(map[string]any)["status"] != "queued" {
		t.Fatalf("push with the login = %d %v, want its read queued", status, m)
	}
	g.waitDecisions(1)
	logs := g.logs.String()
	if !strings.Contains(logs, `msg="camera push refused" reason=credentials peer=127.0.0.1:`) {
		t.Errorf("no warning naming the sender in the log:\n%s", logs)
	}
	for _, secret := range []string{password, "wrong-pass-77"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds a password:\n%s", logs)
		}
	}
	assertOnlyGranted(t, g.outbox(), resKLM)
}

// With http.anpr_addr set, the camera's listener serves POST /v1/anpr and
// nothing else, and the API's listener no longer takes camera pushes.
func TestCameraListenerServesOnlyTheCamera(t *testing.T) {
	g := startGated(t, "PARKING_HTTP_ANPR_ADDR=127.0.0.1:0")
	if g.camera == g.api {
		t.Fatal("no separate camera listener")
	}
	for _, p := range []push{
		{method: "GET", url: g.camera + "/v1/status"},
		{method: "GET", url: g.camera + "/metrics"},
		{method: "GET", url: g.camera + "/healthz"},
		{url: g.camera + "/v1/sim/plate", contentType: "application/json", body: []byte(`{"plate": "KLM42"}`)},
		{url: g.camera + "/v1/sim/vehicle", contentType: "application/json", body: []byte(`{"present": true}`)},
		{url: g.api + "/v1/anpr", contentType: "application/json", body: []byte(`{"plate": "KLM42"}`)},
	} {
		if status, m := g.send(p); status != http.StatusNotFound || errCode(m) != "not_found" {
			t.Errorf("%s %s = %d %v, want 404 not_found", p.method, p.url, status, m)
		}
	}
	if status, m := g.send(push{method: "GET", url: g.api + "/v1/status"}); status != http.StatusOK || m["barrier"] != "closed" {
		t.Errorf("status on the API listener = %d %v, want 200 with the barrier closed", status, m)
	}
	if evs := g.outbox(); len(evs) != 0 {
		t.Fatalf("outbox = %+v, want nothing decided", evs)
	}
}

func errCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}
