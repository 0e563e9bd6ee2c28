package scripts_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parkgate/parkgate/internal/browsertest"
	"github.com/parkgate/parkgate/internal/childproc"

	"github.com/parkgate/parkgate/internal/syncbuf"
)

// The operator console in a real headless Chromium, against the demo as
// `make run` starts it: centrald with its MQTT broker and two simulated
// gates. PARKING_TEST_CHROMIUM names the browser (.ci/run sets it).

var updateScreenshot = flag.Bool("update-screenshot", false, "write the console's screenshot to docs/console.png")

func browser(t *testing.T) context.Context { return browsertest.Start(t, 1440, 1000) }

// run runs browser actions with a deadline.
func run(t *testing.T, ctx context.Context, d time.Duration, what string, actions ...chromedp.Action) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Run(c, actions...); err != nil {
		// What the page showed, for the failure's report.
		var text string
		sc, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = chromedp.Run(sc, chromedp.Evaluate(`document.body.innerText`, &text))
		t.Fatalf("%s: %v\nthe page said:\n%s", what, err, text)
	}
}

// call makes an HTTP request and decodes a JSON answer into out (if not
// nil), failing the test on an unexpected status.
func call(t *testing.T, method, url, token, body string, want int, out any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("%s %s: %d %s", method, url, res.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, b)
		}
	}
}

const demoAdmin = "demo-admin-token-not-secret"

type gateStatus struct {
	Barrier      string `json:"barrier"`
	CacheVersion int64  `json:"cacheVersion"`
}

func status(t *testing.T, gate string) gateStatus {
	t.Helper()
	var s gateStatus
	call(t, "GET", gate+"/v1/status", "", "", 200, &s)
	return s
}

// waitFor polls cond every 20 ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func headVersion(t *testing.T, api string) int64 {
	t.Helper()
	var cs []struct {
		Version int64 `json:"version"`
	}
	call(t, "GET", api+"/admin/changes?limit=5000", demoAdmin, "", 200, &cs)
	if len(cs) == 0 {
		return 0
	}
	return cs[len(cs)-1].Version
}

func TestConsoleInBrowser(t *testing.T) {
	needTools(t)
	ctx := browser(t)
	bin := buildBinaries(t)
	data := t.TempDir()
	ports := freePorts(t, 4)
	d := startDemo(t, bin, data, ports)
	api := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	entry := fmt.Sprintf("http://127.0.0.1:%d", ports[2])
	exit := fmt.Sprintf("http://127.0.0.1:%d", ports[3])
	waitReady(t, d, api)
	m := regexp.MustCompile(`sign in as: demo  password: (\S+)`).FindStringSubmatch(d.stdout.String())
	if m == nil {
		t.Fatalf("the banner does not give the demo operator's login:\n%s", d.stdout.String())
	}
	password := m[1]
	for _, g := range []string{entry, exit} {
		waitFor(t, 20*time.Second, "gate "+g+" synced", func() bool { return status(t, g).CacheVersion >= headVersion(t, api) })
	}

	// Sign in as the demo operator.
	run(t, ctx, 20*time.Second, "sign in",
		chromedp.Navigate(api+"/console/"),
		chromedp.WaitVisible(`#name`, chromedp.ByQuery),
		chromedp.SendKeys(`#name`, "demo", chromedp.ByQuery),
		chromedp.SendKeys(`#password`, password, chromedp.ByQuery),
		chromedp.Click(`#signin`, chromedp.ByQuery),
		chromedp.WaitVisible(`.tile[data-spot="1"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`.gate[data-gate="entry-1"][data-online="true"]`, chromedp.ByQuery),
		chromedp.Poll(`document.getElementById("live").textContent === "live"`, nil, chromedp.WithPollingTimeout(10*time.Second)),
	)

	// A car entering through the simulated entry gate turns its spot
	// taken on the open page within a second, without a reload.
	now := time.Now().UTC()
	var issued struct {
		Token  string `json:"token"`
		Ticket string `json:"ticket"`
	}
	call(t, "POST", api+"/reserve/parking/1", "", fmt.Sprintf(`{"reservedFrom":%q,"reservedUntil":%q}`,
		now.Format(time.RFC3339), now.Add(2*time.Hour).Format(time.RFC3339)), 201, &issued)
	call(t, "POST", api+"/pay/parking/1", issued.Token, `{"carId":"B-XY 123","cardDetails":{"paymentMethod":"pm_card_visa"}}`, 200, &issued)
	head := headVersion(t, api)
	waitFor(t, 10*time.Second, "the paid reservation reaching the entry gate", func() bool { return status(t, entry).CacheVersion >= head })
	run(t, ctx, 5*time.Second, "spot 1 reserved on the page",
		chromedp.WaitVisible(`.tile[data-spot="1"][data-status="reserved"]`, chromedp.ByQuery),
		chromedp.Evaluate(`window.__loaded = performance.timeOrigin`, nil))
	var dec struct {
		Granted bool   `json:"granted"`
		Reason  string `json:"reason"`
	}
	call(t, "POST", entry+"/v1/sim/scan", "", fmt.Sprintf(`{"code":%q}`, issued.Ticket), 200, &dec)
	scanned := time.Now()
	if !dec.Granted {
		t.Fatalf("the entry gate refused the paid ticket: %s", dec.Reason)
	}
	run(t, ctx, 3*time.Second, "spot 1 taken on the page",
		chromedp.WaitVisible(`.tile[data-spot="1"][data-status="taken"]`, chromedp.ByQuery))
	if took := time.Since(scanned); took > time.Second {
		t.Errorf("spot 1 turned taken %v after the scan; want within 1 s", took)
	} else {
		t.Logf("spot 1 turned taken %v after the scan", took)
	}
	var same bool
	run(t, ctx, 2*time.Second, "no reload", chromedp.Evaluate(`window.__loaded === performance.timeOrigin`, &same))
	if !same {
		t.Error("the page reloaded")
	}

	// Open the exit barrier from the console: the simulated gate's
	// barrier opens, and the change log names the operator and reason.
	if b := status(t, exit).Barrier; b != "closed" {
		t.Fatalf("exit barrier %q before the remote open", b)
	}
	run(t, ctx, 10*time.Second, "open the exit barrier",
		chromedp.SetValue(`#open-gate`, "exit-1", chromedp.ByQuery),
		chromedp.Click(`#f-open button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#confirm-reason`, chromedp.ByQuery),
		chromedp.SendKeys(`#confirm-reason`, "intercom: ticket lost", chromedp.ByQuery),
		chromedp.Click(`#confirm-yes`, chromedp.ByQuery),
	)
	waitFor(t, 5*time.Second, "the exit barrier open", func() bool { return status(t, exit).Barrier == "open" })
	var log []struct {
		Kind, Actor, GateID, Note string
	}
	// The gate opens before the console, answered, logs it: wait for the
	// entry.
	waitFor(t, 5*time.Second, "the remote open in the change log", func() bool {
		call(t, "GET", api+"/admin/changes?limit=5000", demoAdmin, "", 200, &log)
		return log[len(log)-1].Kind == "gate.opened"
	})
	if l := log[len(log)-1]; l.Kind != "gate.opened" || l.Actor != "operator:demo" || l.GateID != "exit-1" || l.Note != "intercom: ticket lost" {
		t.Errorf("last change %+v, want the remote open by operator:demo", l)
	}

	// Push a CSV: one bad line refuses it whole; fixed, it is pushed.
	from := now.Add(3 * time.Hour).Truncate(time.Hour)
	line := func(spot string, h int, ref string) string {
		return fmt.Sprintf("%s,%s,%s,,%s\n", spot, from.Add(time.Duration(h)*time.Hour).Format(time.RFC3339),
			from.Add(time.Duration(h+1)*time.Hour).Format(time.RFC3339), ref)
	}
	bad := "spotId,reservedFrom,reservedUntil,carId,reference\n" + line("2", 0, "csv-a") + line("99", 0, "csv-b") + line("3", 0, "csv-c")
	good := strings.Replace(bad, "99,", "4,", 1)
	before := headVersion(t, api)
	var pushDisabled bool
	run(t, ctx, 10*time.Second, "preview a CSV with a bad line",
		chromedp.SetValue(`#csv-text`, bad, chromedp.ByQuery),
		chromedp.Click(`#csv-preview`, chromedp.ByQuery),
		chromedp.WaitVisible(`#csv-out tr.bad[data-line="3"]`, chromedp.ByQuery),
		chromedp.Evaluate(`document.getElementById("csv-push").disabled`, &pushDisabled),
	)
	if !pushDisabled {
		t.Error("push enabled after a preview with a bad line")
	}
	var badRows int
	run(t, ctx, 2*time.Second, "count bad rows", chromedp.Evaluate(`document.querySelectorAll("#csv-out tr.bad").length`, &badRows))
	if badRows != 1 || headVersion(t, api) != before {
		t.Errorf("%d bad rows shown (want 1); the log moved: %v", badRows, headVersion(t, api) != before)
	}
	var summary string
	run(t, ctx, 15*time.Second, "fix and push the CSV",
		chromedp.SetValue(`#csv-text`, good, chromedp.ByQuery),
		chromedp.Click(`#csv-preview`, chromedp.ByQuery),
		chromedp.WaitVisible(`#csv-out .summary.ok`, chromedp.ByQuery),
		chromedp.WaitEnabled(`#csv-push`, chromedp.ByQuery),
		chromedp.Click(`#csv-push`, chromedp.ByQuery),
		chromedp.WaitVisible(`#confirm-reason`, chromedp.ByQuery),
		chromedp.SendKeys(`#confirm-reason`, "weekly import from the hotel", chromedp.ByQuery),
		chromedp.Click(`#confirm-yes`, chromedp.ByQuery),
		chromedp.Poll(`document.querySelector("#csv-out .summary").textContent.includes("pushed")`, nil, chromedp.WithPollingTimeout(10*time.Second)),
		chromedp.Text(`#csv-out .summary`, &summary, chromedp.ByQuery),
	)
	if !strings.HasPrefix(summary, "3 reservations pushed") {
		t.Errorf("summary %q", summary)
	}
	var pushed []struct {
		Reference string `json:"reference"`
	}
	call(t, "GET", api+"/admin/reservations?state=paid", demoAdmin, "", 200, &pushed)
	refs := map[string]bool{}
	for _, p := range pushed {
		refs[p.Reference] = true
	}
	if !refs["csv-a"] || !refs["csv-b"] || !refs["csv-c"] {
		t.Errorf("pushed references %v", refs)
	}

	// Resolve an exception, recorded under the operator's name. The
	// exception is written to the demo's database as a gate would have it
	// stored; the page learns of it through the event stream.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "centrald.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	at := time.Now().UnixMicro()
	if _, err := db.Exec(`INSERT INTO gate_events (event_id, gate_id, seq, kind, role, at, source, granted, reason, spot_id,
		received_at, outcome, note) VALUES ('exc-1', 'entry-1', 999, 'decision', 'entry', ?, 'qr', 1, 'offline_ticket', '5', ?,
		'exception', 'entry on a cancelled reservation')`, at, at); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, 10*time.Second, "resolve the exception",
		chromedp.WaitVisible(`#exceptions li.exc[data-event="exc-1"] button.resolve`, chromedp.ByQuery),
	)
	// A dispute opened by the cardholder's bank, stored as the Stripe
	// webhook stores it, reaches Needs attention and the live feed the
	// same way, with its amount and reason.
	if _, err := db.Exec(`INSERT INTO payment_exceptions (id, kind, reservation_id, amount, currency, provider_ref, reason, created_at)
		VALUES ('evt_dispute_1', 'dispute', 'res-disputed', 1250, 'eur', 'dp_1', 'fraudulent', ?)`, time.Now().UnixMicro()); err != nil {
		t.Fatal(err)
	}
	var disputeText string
	run(t, ctx, 10*time.Second, "the dispute in Needs attention and the feed",
		chromedp.WaitVisible(`#exceptions li.exc[data-payment="evt_dispute_1"] button.resolve`, chromedp.ByQuery),
		chromedp.Text(`#exceptions li.exc[data-payment="evt_dispute_1"]`, &disputeText, chromedp.ByQuery),
		// The page may reload the state (for another reason) before the
		// dispute's own event adds it to the feed.
		chromedp.Poll(`document.getElementById("feed").textContent.includes("Dispute: 12.50 EUR disputed (fraudulent)")`, nil,
			chromedp.WithPollingTimeout(5*time.Second)),
	)
	if !strings.Contains(disputeText, "12.50 EUR") || !strings.Contains(disputeText, "fraudulent") {
		t.Errorf("the dispute shows %q, want its amount and reason", disputeText)
	}
	// The screenshot: the demo with a car in, a gate about to go offline,
	// an exception and a dispute waiting.
	if *updateScreenshot {
		var png []byte
		// From the top, with the highlights of new lines stopped.
		run(t, ctx, 10*time.Second, "screenshot",
			chromedp.Evaluate(`window.scrollTo(0, 0); document.body.classList.add("still"); document.getElementById("toast").className = "toast"`, nil),
			chromedp.FullScreenshot(&png, 100))
		if err := os.WriteFile("../docs/console.png", png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(t, ctx, 10*time.Second, "resolve the exception",
		chromedp.Click(`#exceptions li.exc[data-event="exc-1"] button.resolve`, chromedp.ByQuery),
		chromedp.WaitVisible(`#confirm-reason`, chromedp.ByQuery),
		chromedp.SendKeys(`#confirm-reason`, "driver showed a receipt", chromedp.ByQuery),
		chromedp.Click(`#confirm-yes`, chromedp.ByQuery),
		chromedp.WaitVisible(`#exceptions li.resolved[data-event="exc-1"]`, chromedp.ByQuery),
	)
	var by, note string
	if err := db.QueryRow(`SELECT resolved_by, resolution FROM gate_events WHERE event_id = 'exc-1'`).Scan(&by, &note); err != nil ||
		by != "demo" || note != "driver showed a receipt" {
		t.Errorf("exception resolved by %q with %q (%v)", by, note, err)
	}
	run(t, ctx, 10*time.Second, "resolve the dispute",
		chromedp.Click(`#exceptions li.exc[data-payment="evt_dispute_1"] button.resolve`, chromedp.ByQuery),
		chromedp.WaitVisible(`#confirm-reason`, chromedp.ByQuery),
		chromedp.SendKeys(`#confirm-reason`, "evidence sent to the bank", chromedp.ByQuery),
		chromedp.Click(`#confirm-yes`, chromedp.ByQuery),
		chromedp.WaitVisible(`#exceptions li.resolved[data-payment="evt_dispute_1"]`, chromedp.ByQuery),
		chromedp.WaitNotPresent(`#exceptions li.exc[data-payment="evt_dispute_1"] button.resolve`, chromedp.ByQuery),
	)
	var disputes []struct{ ID, ResolvedBy, Resolution string }
	call(t, "GET", api+"/admin/payment-exceptions", demoAdmin, "", 200, &disputes)
	if len(disputes) != 1 || disputes[0].ResolvedBy != "demo" || disputes[0].Resolution != "evidence sent to the bank" {
		t.Errorf("payment exceptions after resolving: %+v", disputes)
	}

	// Killing a gate marks it offline on the page. (A lane of its own:
	// the demo stops when one of its daemons dies.)
	lane := startGate(t, bin, data, "exit-2", "exit", ports[1], freePorts(t, 1)[0])
	run(t, ctx, 20*time.Second, "exit-2 online on the page",
		chromedp.WaitVisible(`.gate[data-gate="exit-2"][data-online="true"]`, chromedp.ByQuery))
	if err := lane.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	run(t, ctx, 10*time.Second, "exit-2 offline on the page",
		chromedp.WaitVisible(`.gate.offline[data-gate="exit-2"]`, chromedp.ByQuery))
	t.Logf("exit-2 shown offline %v after SIGKILL", time.Since(killed))
}

// startGate provisions one more simulated lane on the running demo and
// starts its gated; it is killed when the test ends.
func startGate(t *testing.T, bin, data, id, role string, mqttPort, httpPort int) *exec.Cmd {
	t.Helper()
	central := append(os.Environ(), "PARKING_DB_DSN="+filepath.Join(data, "centrald.db"),
		"PARKING_TICKETS_KEY_FILE="+filepath.Join(data, "tickets.key"))
	last := func(args ...string) string {
		cmd := exec.Command(filepath.Join(bin, "centrald"), append([]string{"--config", "../configs/demo.yaml"}, args...)...)
		cmd.Env = central
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("centrald %v: %v", args, err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		return lines[len(lines)-1]
	}
	pw := last("gate", "add", id, "--role", role)
	key := last("pubkey")
	cmd := exec.Command(filepath.Join(bin, "gated"))
	cmd.Env = append(os.Environ(), "PARKING_GATE_ID="+id, "PARKING_GATE_ROLE="+role,
		fmt.Sprintf("PARKING_HTTP_ADDR=127.0.0.1:%d", httpPort), "PARKING_DB_PATH="+filepath.Join(data, id+".db"),
		"PARKING_TICKETS_PUBLIC_KEY="+key, "PARKING_HARDWARE_MODE=sim",
		fmt.Sprintf("PARKING_MQTT_URL=tcp://127.0.0.1:%d", mqttPort), "PARKING_MQTT_PASSWORD="+pw)
	var logs syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = childproc.Attr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("gated %s:\n%s", id, logs.String())
		}
	})
	return cmd
}
