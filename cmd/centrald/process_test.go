package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
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

	"github.com/parkgate/parkgate/central/broker"
	"github.com/parkgate/parkgate/central/daemon"
	"github.com/parkgate/parkgate/central/store/sqlitestore"
	"github.com/parkgate/parkgate/internal/childproc"
	"github.com/parkgate/parkgate/ticket"
)

// The process-level tests build the real binary once and drive it over
// HTTP, killing it with SIGKILL to check that nothing committed is lost.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func centraldBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("process test skipped in -short mode")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "centrald-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "centrald")
		out, err := exec.Command("go", "build", "-race", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

const adminToken = "process-test-admin-token"

// proc is one running centrald.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	base string
	done chan struct{}
	logs *strings.Builder
	mu   *sync.Mutex
	addr chan string // where it serves, once it says
}

var servingRe = regexp.MustCompile(`serving (?:the parking API )?on (http://\S+) `)

// start runs centrald on a free port with its data in dir.
func start(t *testing.T, dir string, extraEnv ...string) *proc {
	t.Helper()
	p := launch(t, dir, extraEnv...)
	p.waitServing()
	return p
}

// launch starts centrald without waiting for it to serve (waitServing
// does), so that several can start at the same moment.
func launch(t *testing.T, dir string, extraEnv ...string) *proc {
	t.Helper()
	cmd := exec.Command(centraldBinary(t))
	cmd.Env = append(os.Environ(),
		"PARKING_HTTP_ADDR=127.0.0.1:0",
		"PARKING_MQTT_LISTEN=127.0.0.1:0",
		"PARKING_DB_DSN="+filepath.Join(dir, "centrald.db"),
		"PARKING_TICKETS_KEY_FILE="+filepath.Join(dir, "tickets.key"),
		"PARKING_PAYMENT_FAKE_STATE_FILE="+filepath.Join(dir, "fakepay.json"),
		"PARKING_SPOTS_COUNT=5",
		"PARKING_AUTH_ADMIN_TOKEN="+adminToken,
		"PARKING_LOG_FORMAT=json",
	)
	cmd.Env = append(cmd.Env, extraEnv...) // later entries win
	return launchCmd(t, cmd)
}

// launchCmd starts a daemon (centrald, or gated in the scale tests) that
// prints "serving ... on http://ADDR" when it is ready.
func launchCmd(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	stdout, _ := cmd.StdoutPipe()
	p := &proc{t: t, cmd: cmd, done: make(chan struct{}), logs: &strings.Builder{}, mu: &sync.Mutex{}, addr: make(chan string, 1)}
	cmd.Stderr = lockedWriter{p}
	cmd.SysProcAttr = childproc.Attr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := servingRe.FindStringSubmatch(sc.Text()); m != nil {
				p.addr <- m[1]
			}
		}
	}()
	return p
}

// waitServing waits until centrald says where it serves.
func (p *proc) waitServing() {
	p.t.Helper()
	select {
	case p.base = <-p.addr:
	case <-p.done:
		p.t.Fatalf("%s exited at start:\n%s", p.cmd.Path, p.logText())
	case <-time.After(60 * time.Second):
		p.t.Fatalf("%s did not start within 60s:\n%s", p.cmd.Path, p.logText())
	}
}

type lockedWriter struct{ p *proc }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.logs.Write(b)
}

func (p *proc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// kill sends SIGKILL: no shutdown code runs, as in a crash or power cut
// of the process.
func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

type answer struct {
	status int
	body   map[string]any
	raw    string
}

func (p *proc) call(method, path, token, body string) answer {
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
	a := answer{status: res.StatusCode, raw: string(b)}
	json.Unmarshal(b, &a.body)
	return a
}

func (p *proc) must(status int, method, path, token, body string) map[string]any {
	p.t.Helper()
	a := p.call(method, path, token, body)
	if a.status != status {
		p.t.Fatalf("%s %s: got %d %s, want %d", method, path, a.status, a.raw, status)
	}
	return a.body
}

func windowJSON(from, until time.Time) string {
	return fmt.Sprintf(`{"reservedFrom":%q,"reservedUntil":%q}`, from.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339))
}

const visa = `{"carId":"B-XY 123","cardDetails":{"paymentMethod":"pm_card_visa"}}`

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestProcessSeedFlowSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	// A 1 s no-show grace and a fast sweep let the test see a no-show
	// release in real time without waiting half an hour.
	env := []string{"PARKING_RESERVATIONS_NOSHOW_GRACE=1s", "PARKING_RESERVATIONS_SWEEP_INTERVAL=100ms"}
	p := start(t, dir, env...)
	now := time.Now()

	// Reserve, pay, park, leave early, reserve again.
	r1 := p.must(201, "POST", "/reserve/parking/1", "", windowJSON(now.Add(time.Minute), now.Add(3*time.Hour)))
	tok1 := r1["token"].(string)
	paid := p.must(200, "POST", "/pay/parking/1", tok1, visa)
	code, _ := paid["ticket"].(string)
	if code == "" || paid["paidAt"] == nil {
		t.Fatalf("pay answer: %v", paid)
	}
	p.must(200, "POST", "/park/parking/1?is_parking=true", tok1, "")
	if s := p.must(200, "GET", "/parkings/1", "", "")["status"]; s != "taken" {
		t.Fatalf("status after check-in: %v", s)
	}
	p.must(200, "POST", "/park/parking/1?is_parking=false&leaving_at="+time.Now().UTC().Format(time.RFC3339), tok1, "")
	spot1 := p.must(200, "GET", "/parkings/1", "", "")
	if spot1["status"] != "free" || spot1["leftAt"] == nil {
		t.Fatalf("after early departure: %v", spot1)
	}
	r2 := p.must(201, "POST", "/reserve/parking/1", "", windowJSON(now.Add(2*time.Minute), now.Add(3*time.Hour)))

	// The ticket verifies with the key centrald publishes.
	pub := p.must(200, "GET", "/tickets/public-key", "", "")
	key, err := ticket.ParsePublicKey(pub["publicKey"].(string))
	if err != nil {
		t.Fatal(err)
	}
	v, _ := ticket.NewVerifier(key)
	if tk, err := v.Verify(code, time.Now()); err != nil || tk.ReservationID != r1["reservationId"] || tk.CarID != "B-XY 123" {
		t.Fatalf("ticket: %+v %v", tk, err)
	}

	// No-show: paid, window started 4 minutes ago, grace 1 s.
	r3 := p.must(201, "POST", "/reserve/parking/2", "", windowJSON(now.Add(-4*time.Minute), now.Add(time.Hour)))
	tok3 := r3["token"].(string)
	p.must(200, "POST", "/pay/parking/2", tok3, visa)
	waitFor(t, "no-show release", 10*time.Second, func() bool {
		return p.call("GET", "/reservations/"+r3["reservationId"].(string), tok3, "").body["status"] == "no_show"
	})
	if s := p.must(200, "GET", "/parkings/2", "", "")["status"]; s != "free" {
		t.Fatalf("spot of a no-show: %v", s)
	}

	// Admin reset of a taken spot.
	r4 := p.must(201, "POST", "/reserve/parking/3", "", windowJSON(now.Add(time.Minute), now.Add(time.Hour)))
	tok4 := r4["token"].(string)
	p.must(200, "POST", "/pay/parking/3", tok4, visa)
	p.must(200, "POST", "/park/parking/3?is_parking=true", tok4, "")
	if s := p.must(200, "POST", "/parking/3/status/free", adminToken, "")["status"]; s != "free" {
		t.Fatalf("admin reset: %v", s)
	}
	unpaid := p.must(201, "POST", "/reserve/parking/4", "", windowJSON(now.Add(time.Hour), now.Add(2*time.Hour)))

	// SIGKILL and restart on the same data: everything is still there.
	before := p.call("GET", "/parkings", "", "").raw
	changes := p.call("GET", "/admin/changes?limit=5000", adminToken, "").raw
	p.kill()
	p = start(t, dir, env...)
	if after := p.call("GET", "/parkings", "", "").raw; after != before {
		t.Fatalf("spots differ after SIGKILL:\nbefore %s\nafter  %s", before, after)
	}
	if after := p.call("GET", "/admin/changes?limit=5000", adminToken, "").raw; after != changes {
		t.Fatal("change log differs after SIGKILL")
	}
	// Tokens still work: the unpaid reservation can be paid, the second
	// one of spot 1 still holds its window.
	p.must(200, "POST", "/pay/parking/4", unpaid["token"].(string), visa)
	p.must(409, "POST", "/reserve/parking/1", "", windowJSON(now.Add(time.Hour), now.Add(2*time.Hour)))
	if st := p.must(200, "GET", "/reservations/"+r2["reservationId"].(string), r2["token"].(string), "")["status"]; st != "reserved" {
		t.Fatalf("second reservation: %v", st)
	}
}

// Clients keep reserving while centrald is SIGKILLed: every 201 a client
// received is in the database after the restart (a 201 is only sent after
// the commit is durable).
func TestProcessNoAcknowledgedReservationLostOnSIGKILL(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir, "PARKING_SPOTS_COUNT=50")
	base := time.Now().Add(time.Hour).Truncate(time.Hour)
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client := &http.Client{Timeout: 5 * time.Second}
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500 && ctx.Err() == nil; i++ {
				from := base.Add(time.Duration(i) * time.Hour)
				body := windowJSON(from, from.Add(time.Hour))
				req, _ := http.NewRequestWithContext(ctx, "POST", fmt.Sprintf("%s/reserve/parking/%d", p.base, w*6+i%6+1), strings.NewReader(body))
				res, err := client.Do(req)
				if err != nil {
					return // the server died
				}
				var r map[string]any
				json.NewDecoder(res.Body).Decode(&r)
				res.Body.Close()
				if res.StatusCode == 201 {
					mu.Lock()
					acked = append(acked, r["reservationId"].(string))
					mu.Unlock()
				}
			}
		}()
	}
	waitFor(t, "some reservations", 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 50
	})
	p.kill()
	wg.Wait()
	p = start(t, dir, "PARKING_SPOTS_COUNT=50")
	for _, id := range acked {
		if a := p.call("GET", "/reservations/"+id, adminToken, ""); a.status != 200 {
			t.Fatalf("acknowledged reservation %s lost after SIGKILL: %d %s", id, a.status, a.raw)
		}
	}
	t.Logf("%d acknowledged reservations all present after SIGKILL", len(acked))
}

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	env := []string{"PARKING_TICKETS_KEY_FILE=" + filepath.Join(dir, "k")}
	var out, errb strings.Builder
	if code := run([]string{"pubkey"}, env, &out, &errb); code != 0 {
		t.Fatalf("pubkey: %d %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if _, err := ticket.ParsePublicKey(lines[len(lines)-1]); err != nil {
		t.Fatalf("pubkey's last line %q: %v", lines[len(lines)-1], err)
	}
	out.Reset()
	run([]string{"--config", "", "pubkey"}, env, &out, &errb)
	if !strings.HasSuffix(out.String(), lines[len(lines)-1]+"\n") {
		t.Fatal("pubkey changed between runs")
	}
	// Provisioning a gate prints a password whose hash the broker accepts.
	genv := []string{"PARKING_DB_DSN=" + filepath.Join(dir, "c.db")}
	out.Reset()
	if code := run([]string{"gate", "add", "entry-1", "--role", "entry"}, genv, &out, &errb); code != 0 {
		t.Fatalf("gate add: %d %s", code, errb.String())
	}
	gl := strings.Split(strings.TrimSpace(out.String()), "\n")
	pw := gl[len(gl)-1]
	// Again without --role: a new password, the role kept.
	out.Reset()
	if code := run([]string{"gate", "add", "entry-1"}, genv, &out, &errb); code != 0 {
		t.Fatalf("gate add again: %d %s", code, errb.String())
	}
	gl = strings.Split(strings.TrimSpace(out.String()), "\n")
	if gl[len(gl)-1] == pw {
		t.Fatal("adding a gate again did not rotate its password")
	}
	pw = gl[len(gl)-1]
	st, err := sqlitestore.Open(context.Background(), filepath.Join(dir, "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	hash, ok, err := daemon.GateCredentials{Store: st}.Lookup("entry-1")
	g, gerr := st.Gate(context.Background(), "entry-1")
	st.Close()
	if err != nil || !ok || !broker.CheckPassword(hash, pw) || broker.CheckPassword(hash, pw+"x") {
		t.Fatalf("the printed password does not match the stored hash: %v %v", ok, err)
	}
	// A generated password (24 random bytes, 192 bits) is stored as its
	// SHA-256, cheap to check when every gate reconnects at once.
	if len(pw) < 32 || !broker.IsTokenHash(hash) {
		t.Fatalf("gate add: password of %d characters stored as %.10q..., want >= 32 characters stored as $sha256$", len(pw), hash)
	}
	if gerr != nil || g.Role != "entry" {
		t.Fatalf("gate entry-1: role %q (%v), want entry", g.Role, gerr)
	}
	for _, bad := range [][]string{{"gate", "add", "Entry 1", "--role", "entry"}, {"gate", "add", "centrald", "--role", "exit"},
		{"gate", "remove", "x"}, {"gate"}, {"gate", "add", "exit-1", "--role", "out"}, {"check-config", "--role", "exit"}} {
		if code := run(bad, genv, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d", bad, code)
		}
	}
	// An operator account: its printed password matches the stored
	// argon2id hash; adding it again gives a new one.
	out.Reset()
	if code := run([]string{"operator", "add", "alice"}, genv, &out, &errb); code != 0 {
		t.Fatalf("operator add: %d %s", code, errb.String())
	}
	ol := strings.Split(strings.TrimSpace(out.String()), "\n")
	opw := ol[len(ol)-1]
	out.Reset()
	if code := run([]string{"operator", "add", "alice"}, genv, &out, &errb); code != 0 {
		t.Fatalf("operator add again: %d %s", code, errb.String())
	}
	ol = strings.Split(strings.TrimSpace(out.String()), "\n")
	opw2 := ol[len(ol)-1]
	st, err = sqlitestore.Open(context.Background(), filepath.Join(dir, "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	o, oerr := st.Operator(context.Background(), "alice")
	st.Close()
	if oerr != nil || opw2 == opw || !broker.CheckPassword(o.PasswordHash, opw2) || broker.CheckPassword(o.PasswordHash, opw) ||
		!strings.HasPrefix(string(o.PasswordHash), "$argon2id$") {
		t.Fatalf("operator alice: %v; the stored hash does not match the last printed password", oerr)
	}
	for _, bad := range [][]string{{"operator", "add", "Alice Smith"}, {"operator", "remove", "alice"}, {"operator"},
		{"operator", "add", "alice", "--role", "entry"}} {
		if code := run(bad, genv, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d", bad, code)
		}
	}
	// A new gate needs its role.
	errb.Reset()
	if code := run([]string{"gate", "add", "exit-1"}, genv, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--role") {
		t.Errorf("gate add without --role: exit %d, %q; want 2 and a word on --role", code, errb.String())
	}
	if code := run([]string{"check-config"}, []string{"PARKING_SPOTS_COUNT=0"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "spots.count") {
		t.Fatalf("bad config: %d %s", code, errb.String())
	}
	if code := run([]string{"frobnicate"}, nil, &out, &errb); code != 2 {
		t.Fatalf("unknown command: %d", code)
	}
	out.Reset()
	if code := run([]string{"version"}, nil, &out, &errb); code != 0 || strings.TrimSpace(out.String()) == "" {
		t.Fatalf("version: %d %q", code, out.String())
	}
	if code := run([]string{"--config", filepath.Join(dir, "missing.yaml")}, nil, &out, &errb); code != 2 {
		t.Fatalf("missing config file: %d", code)
	}
}

// A port already in use is a clear start-up error, not a hang.
func TestPortInUse(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir)
	addr := strings.TrimPrefix(p.base, "http://")
	cmd := exec.Command(centraldBinary(t))
	cmd.Env = append(os.Environ(), "PARKING_HTTP_ADDR="+addr, "PARKING_MQTT_LISTEN=127.0.0.1:0", "PARKING_DB_DSN="+filepath.Join(dir, "other.db"), "PARKING_TICKETS_KEY_FILE="+filepath.Join(dir, "tickets.key"),
		"PARKING_PAYMENT_FAKE_STATE_FILE="+filepath.Join(dir, "fakepay.json"))
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "address already in use") {
		t.Fatalf("err %v, output %s", err, out)
	}
}

// Logs, even at debug level, never hold a token, a ticket, a payment
// method or a card number — whatever the clients send.
func TestLogsHoldNoSecrets(t *testing.T) {
	p := start(t, t.TempDir(), "PARKING_LOG_LEVEL=debug")
	now := time.Now()
	r := p.must(201, "POST", "/reserve/parking/1", "", windowJSON(now.Add(time.Minute), now.Add(2*time.Hour)))
	tok := r["token"].(string)
	p.must(400, "POST", "/pay/parking/1", tok, `{"carId":"X1","cardDetails":{"number":"4242 4242 4242 4242","cvc":"123"}}`)
	p.must(402, "POST", "/pay/parking/1", tok, `{"carId":"X1","cardDetails":{"paymentMethod":"pm_card_chargeDeclined"}}`)
	paid := p.must(200, "POST", "/pay/parking/1", tok, `{"carId":"X1","cardDetails":{"paymentMethod":"pm_card_visa"}}`)
	p.must(401, "POST", "/park/parking/1?is_parking=true", "not-"+tok, "")
	p.must(200, "POST", "/park/parking/1?is_parking=true", tok, "")
	p.must(200, "POST", "/parking/1/status/free", adminToken, "")
	p.must(403, "POST", "/parking/1/status/free", "wrong-admin-token", "")
	logs := p.logText()
	if !strings.Contains(logs, `"msg":"paid"`) {
		t.Fatalf("the log did not capture the flow:\n%s", logs)
	}
	for _, secret := range []string{tok, adminToken, paid["ticket"].(string), "pm_card", "4242 4242", "4242424242424242", "wrong-admin-token"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains %q:\n%s", secret, logs)
		}
	}
}

// centrald wired to Stripe, against a real stripe-mock: the payment request
// passes Stripe's schema and comes back as a clean answer. stripe-mock
// never marks a PaymentIntent succeeded (it answers every confirm with
// requires_payment_method), so the driver sees a 402 — not a 503, which
// would mean the request was refused or never arrived.
func TestProcessStripeWiring(t *testing.T) {
	url := os.Getenv("PARKING_TEST_STRIPE_URL")
	if url == "" {
		t.Skip("PARKING_TEST_STRIPE_URL not set (e.g. http://127.0.0.1:12111 with stripe-mock running); .ci/run sets it")
	}
	p := start(t, t.TempDir(), "PARKING_PAYMENT_PROVIDER=stripe", "PARKING_PAYMENT_STRIPE_API_URL="+url,
		"PARKING_PAYMENT_STRIPE_SECRET_KEY=sk_test_parkgate")
	now := time.Now()
	r := p.must(201, "POST", "/reserve/parking/1", "", windowJSON(now.Add(time.Minute), now.Add(time.Hour)))
	a := p.call("POST", "/pay/parking/1", r["token"].(string), visa)
	if a.status != 402 {
		t.Fatalf("pay through stripe-mock: %d %s\n%s", a.status, a.raw, p.logText())
	}
	if strings.Contains(p.logText(), "sk_test_parkgate") {
		t.Fatal("the Stripe key is in the log")
	}
}
