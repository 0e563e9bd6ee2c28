package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	zxqr "github.com/makiuchi-d/gozxing/qrcode"

	"github.com/parkgate/parkgate/central/client"
	"github.com/parkgate/parkgate/central/client/clienttest"
	"github.com/parkgate/parkgate/clock/clocktest"
)

// harness runs parkctl in-process against the real handler. The server's
// clock starts at the real time, because "reserve --for" counts from
// parkctl's own clock, as it does for a real driver.
type harness struct {
	t   *testing.T
	srv *clienttest.Server
	clk *clocktest.Clock
	env map[string]string
	// tty makes parkctl's stdout say it is a terminal.
	tty bool
	// secrets must not appear in any output but the one that issued them.
	secrets []string
}

func newHarness(t *testing.T, spots ...string) *harness {
	clk := clocktest.New(time.Now().UTC().Truncate(time.Second))
	srv := clienttest.Start(t, clk, spots...)
	return &harness{t: t, srv: srv, clk: clk, env: map[string]string{envServer: srv.URL}, secrets: []string{clienttest.AdminToken}}
}

type result struct {
	code        int
	out, errOut string
}

// run runs parkctl and checks that no known secret was printed.
func (h *harness) run(args ...string) result {
	h.t.Helper()
	r := h.runSecret(args...)
	for _, s := range h.secrets {
		if strings.Contains(r.out+r.errOut, s) {
			h.t.Fatalf("parkctl %s printed a secret:\n%s%s", strings.Join(args, " "), r.out, r.errOut)
		}
	}
	return r
}

// runSecret runs a command that may print a secret: one that issues it.
func (h *harness) runSecret(args ...string) result {
	h.t.Helper()
	var out, errOut bytes.Buffer
	var stdout io.Writer = &out
	if h.tty {
		stdout = terminal{&out}
	}
	code := run(args, func(k string) string { return h.env[k] }, stdout, &errOut)
	return result{code, out.String(), errOut.String()}
}

// terminal stands in for a terminal on stdout.
type terminal struct{ io.Writer }

func (terminal) IsTerminal() bool { return true }

func (h *harness) want(r result, code int, outHas, errHas []string) {
	h.t.Helper()
	if r.code != code {
		h.t.Fatalf("exit %d, want %d\nstdout:\n%sstderr:\n%s", r.code, code, r.out, r.errOut)
	}
	for _, s := range outHas {
		if !strings.Contains(r.out, s) {
			h.t.Fatalf("stdout lacks %q:\n%s", s, r.out)
		}
	}
	for _, s := range errHas {
		if !strings.Contains(r.errOut, s) {
			h.t.Fatalf("stderr lacks %q:\n%s", s, r.errOut)
		}
	}
}

// field returns the value of the "key  value" line of a summary.
func field(t *testing.T, out, key string) string {
	t.Helper()
	for l := range strings.SplitSeq(out, "\n") {
		if k, v, ok := strings.Cut(l, "  "); ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %q line in:\n%s", key, out)
	return ""
}

// tableRow returns the whitespace-separated cells of the table row whose
// first cell is first.
func tableRow(t *testing.T, out, first string) []string {
	t.Helper()
	for l := range strings.SplitSeq(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == first {
			return f
		}
	}
	t.Fatalf("no row %q in:\n%s", first, out)
	return nil
}

func rfc(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func TestDriverFlow(t *testing.T) {
	h := newHarness(t, "1", "2")

	r := h.run("spots")
	h.want(r, 0, []string{"ID", "STATUS", "FROM", "UNTIL", "CAR"}, nil)
	if got := tableRow(t, r.out, "1"); strings.Join(got, " ") != "1 free - - -" {
		t.Fatalf("spot 1 row: %q", got)
	}

	r = h.runSecret("reserve", "1", "--for", "2h")
	h.want(r, 0, []string{"reserved spot 1 from ", "amount       5.00 EUR", "export PARKING_TOKEN="}, nil)
	token, id := field(t, r.out, "token"), field(t, r.out, "reservation")
	if !strings.Contains(r.out, "export PARKING_TOKEN="+token+"\n") || field(t, r.out, "pay by") == "" {
		t.Fatalf("reserve output:\n%s", r.out)
	}
	h.secrets = append(h.secrets, token)
	h.env[envToken] = token

	h.want(h.run("reserve", "1", "--from", rfc(h.clk.Now().Add(time.Hour)), "--for", "1h"), 1, nil,
		[]string{"parkctl: spot 1 is already reserved from ", " (overlap, HTTP 409)\n"})

	// A decline: exit 1 in the contract's words, with the key printed first.
	r = h.run("pay", "1", "--car", "kl-42", "--method", "pm_card_chargeDeclined")
	h.want(r, 1, nil, []string{"parkctl: idempotency key parkctl-", "(payment_declined, HTTP 402)\n", "try another --method"})

	r = h.run("pay", "1", "--car", "kl-42", "--idempotency-key", "visa-1")
	h.want(r, 0, []string{"paid reservation " + id + " for car KL-42\n"}, nil)
	if r.errOut != "" {
		t.Fatalf("a given key is not printed again: %q", r.errOut)
	}
	tk := field(t, r.out, "ticket")
	h.want(h.run("pay", "1", "--car", "kl-42", "--idempotency-key", "visa-1"), 0, []string{"ticket       " + tk}, nil)
	if n := h.srv.Pay.Charges(); n != 1 {
		t.Fatalf("%d charges, want 1", n)
	}
	h.want(h.run("ticket", "1"), 0, nil, nil)
	if r := h.run("ticket", "1"); r.out != tk+"\n" {
		t.Fatalf("ticket prints the bare payload: %q, want %q", r.out, tk)
	}

	h.want(h.run("park", "1"), 0, []string{"checked in on spot 1 at " + rfc(h.clk.Now())}, nil)
	if got := tableRow(t, h.run("spots").out, "1"); got[1] != "taken" || got[4] != "KL-42" {
		t.Fatalf("spots while parked: %q", got)
	}

	h.clk.Advance(10 * time.Minute)
	leftAt := h.clk.Now().Add(-time.Minute)
	h.want(h.run("leave", "1", "--at", rfc(leftAt)), 0, []string{"checked out of spot 1 at " + rfc(leftAt) + "; the spot is free"}, nil)
	r = h.run("spot", "1")
	if field(t, r.out, "status") != "free" || field(t, r.out, "left at") != rfc(leftAt) {
		t.Fatalf("spot after leaving:\n%s", r.out)
	}
	r = h.run("show", id)
	if field(t, r.out, "status") != "left" || field(t, r.out, "car") != "KL-42" || field(t, r.out, "amount") != "5.00 EUR" {
		t.Fatalf("show:\n%s", r.out)
	}
	h.want(h.run("cancel", id), 1, nil, []string{"(wrong_state, HTTP 409)"})

	// --json prints the server's answer, wherever the flag stands.
	for _, args := range [][]string{{"--json", "spot", "1"}, {"spot", "1", "--json"}, {"spot", "--json", "1"}} {
		r := h.run(args...)
		var p client.Parking
		if r.code != 0 || json.Unmarshal([]byte(r.out), &p) != nil || p.ID != "1" || p.Status != "free" || !p.LeftAt.Equal(leftAt) {
			t.Fatalf("%q: %d %q", args, r.code, r.out)
		}
	}

	// A new reservation, cancelled by its driver, the token given as a flag.
	r = h.runSecret("reserve", "2", "--from", rfc(h.clk.Now().Add(time.Hour)), "--until", rfc(h.clk.Now().Add(2*time.Hour)), "--json")
	var res client.Reservation
	if r.code != 0 || json.Unmarshal([]byte(r.out), &res) != nil || res.Token == "" || res.SpotID != "2" {
		t.Fatalf("reserve --json: %d %s", r.code, r.out)
	}
	h.secrets = append(h.secrets, res.Token)
	h.want(h.run("show", res.ReservationID), 1, nil, []string{"(wrong_reservation, HTTP 403)"})
	h.want(h.run("cancel", res.ReservationID, "--token", res.Token), 0, []string{"cancelled reservation " + res.ReservationID + " of spot 2"}, nil)
}

func TestOperatorCommands(t *testing.T) {
	h := newHarness(t, "1", "2", "3")
	now := h.clk.Now()
	from, until := rfc(now.Add(time.Hour)), rfc(now.Add(3*time.Hour))

	h.want(h.run("status", "1", "free"), 2, nil, []string{"PARKING_AUTH_ADMIN_TOKEN"})
	h.env[envAdmin] = clienttest.AdminToken

	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bad := write("bad.csv", "spot,from,until,car,reference\n"+
		"1,"+from+","+until+",F1,INV-1\n"+
		","+from+","+until+",,\n"+
		"2,tomorrow,"+until+",,\n"+
		"# a comment line\n"+
		"3,"+from+","+until+",this-plate-is-far-too-long,\n"+
		"2,"+until+","+from+"\n"+
		"3,"+until+","+from+",,\n")
	h.want(h.run("push", bad), 2, nil, []string{
		bad + ":3: spot is empty\n",
		bad + ":4: from \"tomorrow\" is not an RFC 3339 time",
		bad + ":6: car \"this-plate-is-far-too-long\" is not a licence plate",
		bad + ":7: 3 field(s), but the header has 5\n",
		bad + ":8: until must be after from\n",
		bad + ": 5 bad row(s); nothing was pushed\n",
	})
	if strings.Contains(h.run("push", bad).errOut, ":2:") {
		t.Fatal("the good row was reported")
	}
	c := h.srv.Client(t)
	if rs, err := c.Reservations(context.Background(), "", nil, 0); err != nil || len(rs) != 0 {
		t.Fatalf("a bad file sent something: %v %v", rs, err)
	}

	// Columns in any order, car and reference optional, a spreadsheet's
	// byte order mark and blank lines tolerated.
	good := write("good.csv", "\ufeffFrom,until,spot,reference\n"+
		from+","+until+",1,INV-1\n"+
		"\n"+
		from+","+until+",2,\n")
	r := h.runSecret("push", good)
	h.want(r, 0, []string{"pushed 2 reservation(s)", "LINE", "TOKEN"}, nil)
	row1, row2 := tableRow(t, r.out, "2"), tableRow(t, r.out, "4")
	if len(row1) != 7 || row1[1] != "1" || row1[2] != from || row1[4] != "-" || row2[1] != "2" {
		t.Fatalf("push table:\n%s", r.out)
	}
	h.secrets = append(h.secrets, row1[6], row2[6])

	// The server refuses item 2 (overlap) and keeps none: the line is named.
	overlap := write("overlap.csv", "spot,from,until\n# spot 3 is free\n3,"+from+","+until+"\n1,"+from+","+until+"\n")
	h.want(h.run("push", overlap), 1, nil, []string{
		"parkctl: reservation 2: spot 1 is already reserved from ",
		"(overlap, HTTP 409)\n",
		"parkctl: reservation 2 is " + overlap + ":4\n",
		"parkctl: nothing was pushed\n",
	})
	if rs, _ := c.Reservations(context.Background(), "3", nil, 0); len(rs) != 0 {
		t.Fatalf("a refused push kept %v", rs)
	}

	r = h.run("reservations", "--state", "paid")
	h.want(r, 0, []string{"RESERVATION", "SPOT", "STATUS"}, nil)
	if n := strings.Count(r.out, " paid "); n != 2 || !strings.Contains(r.out, "INV-1") {
		t.Fatalf("reservations:\n%s", r.out)
	}
	h.want(h.run("reservations", "--state", "parked"), 1, nil, []string{"(invalid_query, HTTP 400)"})

	h.clk.Advance(time.Hour)
	r = h.run("status", "1", "taken")
	h.want(r, 0, nil, nil)
	if field(t, r.out, "status") != "taken" {
		t.Fatalf("status taken:\n%s", r.out)
	}
	h.want(h.run("status", "1", "parked"), 2, nil, []string{"status must be free, reserved or taken"})
	h.want(h.run("status", "3", "taken"), 1, nil, []string{"(no_reservation, HTTP 409)"})
	// An operator checks a car out without its token.
	h.want(h.run("leave", "1"), 0, []string{"checked out of spot 1"}, nil)
	r = h.run("reservations", "--spot", "1", "--state", "left,no_show", "--limit", "5")
	if got := tableRow(t, r.out, row1[5]); got[2] != "left" || got[3] != "operator" {
		t.Fatalf("reservations of spot 1: %q", got)
	}

	// Three spots were added first; the page after them starts with the
	// first push.
	r = h.run("changes", "--limit", "3")
	h.want(r, 0, []string{"VERSION", "KIND", "spot.added", "\nnext page: parkctl changes --after "}, nil)
	if n := strings.Count(r.out, "spot.added"); n != 3 {
		t.Fatalf("changes --limit 3:\n%s", r.out)
	}
	last := strings.TrimSpace(r.out[strings.LastIndex(r.out, " ")+1:])
	r = h.run("changes", "--after", last, "--json")
	var cs []client.Change
	if r.code != 0 || json.Unmarshal([]byte(r.out), &cs) != nil || len(cs) == 0 {
		t.Fatalf("changes --json: %d %s", r.code, r.out)
	}
	var kinds []string
	for _, c := range cs {
		kinds = append(kinds, c.Kind+"/"+c.Actor)
	}
	if got := strings.Join(kinds, " "); got != "reservation.created/operator reservation.created/operator reservation.checked_in/operator reservation.left/operator" {
		t.Fatalf("changes: %s", got)
	}
	h.want(h.run("changes", "--after", "-1"), 2, nil, nil)
}

func TestUsageErrorsSendNothing(t *testing.T) {
	// Exit 2 promises that nothing was sent: this server fails the test
	// if anything reaches it.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a request was sent: %s %s", r.Method, r.URL)
	}))
	defer srv.Close()
	now := rfc(time.Now())
	for _, tc := range []struct {
		env    map[string]string
		args   []string
		errHas string
	}{
		{nil, nil, "usage: parkctl"},
		{nil, []string{"bogus"}, `unknown command "bogus"`},
		{nil, []string{"help", "bogus"}, `no help for "bogus"`},
		{nil, []string{"spots", "--nope"}, "flag provided but not defined: -nope"},
		{nil, []string{"--nope", "spots"}, "flag provided but not defined: -nope"},
		{nil, []string{"spot"}, "usage: parkctl spot ID"},
		{nil, []string{"spot", "1", "2"}, `unexpected argument "2"`},
		{nil, []string{"version", "x"}, `unexpected argument "x"`},
		{nil, []string{"reserve", "1"}, "give the window"},
		{nil, []string{"reserve", "1", "--from", "tomorrow", "--until", now}, `--from "tomorrow" is not an RFC 3339 time`},
		{nil, []string{"reserve", "1", "--until", now}, "--until needs --from"},
		{nil, []string{"reserve", "1", "--for", "2h", "--until", now}, "not both"},
		{nil, []string{"reserve", "1", "--for", "-2h"}, "--for must be positive"},
		{nil, []string{"reserve", "1", "--for", "soon"}, "invalid value"},
		{nil, []string{"pay", "1", "--car", "X1"}, "needs the reservation's token: set PARKING_TOKEN"},
		{map[string]string{envAdmin: "a"}, []string{"pay", "1", "--car", "X1"}, "set PARKING_TOKEN"},
		{map[string]string{envToken: "t"}, []string{"pay", "1"}, "--car PLATE is required"},
		{map[string]string{envToken: "t"}, []string{"pay", "1", "--car", "X1", "--method", "4242 4242 4242 4242"}, "never a card number"},
		{nil, []string{"park", "1"}, "needs the reservation's token (PARKING_TOKEN or --token), or an operator's admin token"},
		{map[string]string{envToken: "t"}, []string{"leave", "1", "--at", "now"}, `--at "now" is not an RFC 3339 time`},
		{map[string]string{envToken: "t"}, []string{"ticket", "1", "--server", "ftp://x"}, "--server: server URL"},
		{nil, []string{"ticket", "1", "--qr"}, "needs the reservation's token: set PARKING_TOKEN"},
		{map[string]string{envToken: "t"}, []string{"ticket", "1", "--qr", "--png", "t.png"}, "give --qr or --png, not both"},
		{map[string]string{envToken: "t"}, []string{"ticket", "1", "--qr", "--json"}, "does not go with --qr or --png"},
		{map[string]string{envToken: "t"}, []string{"--json", "ticket", "1", "--png", "t.png"}, "does not go with --qr or --png"},
		{map[string]string{envToken: "t"}, []string{"ticket", "1", "--size", "300"}, "--size goes with --png"},
		{map[string]string{envToken: "t"}, []string{"ticket", "1", "--png", "t.png", "--size", "-1"}, "--size must be positive"},
		{map[string]string{envToken: "t"}, []string{"ticket", "1", "--png"}, "flag needs an argument: -png"},
		{map[string]string{envToken: "t"}, []string{"changes"}, "changes is for operators: set PARKING_AUTH_ADMIN_TOKEN"},
		{map[string]string{envAdmin: "a"}, []string{"push", "/does/not/exist.csv"}, "no such file"},
		{map[string]string{envAdmin: "a"}, []string{"reservations", "--limit", "-1"}, "--limit must be positive"},
	} {
		env := map[string]string{envServer: srv.URL}
		for k, v := range tc.env {
			env[k] = v
		}
		var out, errOut bytes.Buffer
		code := run(tc.args, func(k string) string { return env[k] }, &out, &errOut)
		if code != exitUsage || !strings.Contains(errOut.String(), tc.errHas) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tc.args, code, errOut.String(), tc.errHas)
		}
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		var out, errOut bytes.Buffer
		if code := run(args, nil, &out, &errOut); code != 0 || errOut.Len() != 0 {
			t.Fatalf("%q: %d %q", args, code, errOut.String())
		}
		for name := range helps {
			if !strings.Contains(out.String(), "\n  "+name) {
				t.Errorf("%q does not list %s", args, name)
			}
		}
	}
	for name := range helps {
		for _, args := range [][]string{{"help", name}, {name, "-h"}} {
			var out, errOut bytes.Buffer
			if code := run(args, nil, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "usage: parkctl "+name) {
				t.Errorf("%q: %d %q %q", args, code, out.String(), errOut.String())
			}
		}
	}
	var out bytes.Buffer
	if code := run([]string{"version"}, nil, &out, &out); code != 0 || out.String() != "dev\n" {
		t.Fatalf("version: %d %q", code, out.String())
	}
}

func TestServerDown(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	var out, errOut bytes.Buffer
	code := run([]string{"spots", "--server", url}, nil, &out, &errOut)
	if code != exitFailure || !strings.Contains(errOut.String(), "is centrald running there?") {
		t.Fatalf("%d %q", code, errOut.String())
	}
}

func TestServerDefaultsAndEnvironment(t *testing.T) {
	cl := &cli{getenv: func(string) string { return "" }}
	if _, err := cl.connect(needNone); err != nil || cl.server != defaultServer {
		t.Fatalf("default server: %q %v", cl.server, err)
	}
	env := map[string]string{envServer: "http://env:1", envToken: "tok", envAdmin: "adm"}
	cl = &cli{getenv: func(k string) string { return env[k] }, server: "http://flag:2"}
	if _, err := cl.connect(needNone); err != nil || cl.server != "http://flag:2" || cl.token != "tok" || cl.admin != "adm" {
		t.Fatalf("flag over environment: %+v %v", cl, err)
	}
}

func TestReadPushCSV(t *testing.T) {
	const a, b = "2026-11-26T10:00:00Z", "2026-11-26T12:00:00+01:00"
	for _, tc := range []struct {
		name, in string
		rows     int
		errHas   string
	}{
		{"api names", "spotId,reservedFrom,reservedUntil,carId\n1," + a + "," + b + ",ab 12\n", 1, ""},
		{"quoted", "spot,from,until,reference\n1," + a + "," + b + ",\"INV, 7\"\n", 1, ""},
		{"empty", "", 0, "the file is empty"},
		{"header only", "spot,from,until\n# nothing\n", 0, "no reservations"},
		{"unknown column", "spot,from,until,colour\n", 0, `line 1: unknown column "colour"`},
		{"twice", "spot,from,until,spot\n", 0, `column "spot" appears twice`},
		{"missing", "spot,from\n", 0, `no "until" column`},
		{"until before from", "spot,from,until\n1," + b + "," + a + "\n", 0, "until must be after from"},
		{"bad quote", "spot,from,until\n1," + a + "," + b + "\n2,\"x\"y," + b + "\n", 0, "line 3: "},
		{"bad spot", "spot,from,until\n1/2," + a + "," + b + "\n", 0, `spot "1/2" is not a spot id`},
	} {
		rows, err := readPushCSV(strings.NewReader(tc.in))
		if tc.errHas == "" {
			if err != nil || len(rows) != tc.rows {
				t.Errorf("%s: %v %v", tc.name, rows, err)
			}
			continue
		}
		msg := ""
		if be, ok := err.(*csvErrors); ok {
			for _, p := range be.problems {
				msg += "line " + strconv.Itoa(p.line) + ": " + p.msg + "\n"
			}
		} else if err != nil {
			msg = err.Error()
		}
		if !strings.Contains(msg, tc.errHas) {
			t.Errorf("%s: got %q, want %q", tc.name, msg, tc.errHas)
		}
	}
	rows, err := readPushCSV(strings.NewReader("spot,from,until,car,reference\n 7 , " + a + " , " + b + " , ab-1 , INV 9 \n"))
	if err != nil {
		t.Fatal(err)
	}
	want := client.PushItem{SpotID: "7", CarID: "ab-1", Reference: "INV 9"}
	got := rows[0].item
	if rows[0].line != 2 || got.SpotID != want.SpotID || got.CarID != want.CarID || got.Reference != want.Reference ||
		!got.ReservedFrom.Equal(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)) || !got.ReservedUntil.Equal(time.Date(2026, 11, 26, 11, 0, 0, 0, time.UTC)) {
		t.Fatalf("row: %+v", rows[0])
	}
}

func TestMoney(t *testing.T) {
	for _, tc := range []struct {
		amount int64
		cur    string
		want   string
	}{{500, "eur", "5.00 EUR"}, {5, "eur", "0.05 EUR"}, {-1250, "usd", "-12.50 USD"}, {500, "jpy", "500 JPY"}, {0, "eur", "0.00 EUR"}} {
		if got := money(tc.amount, tc.cur); got != tc.want {
			t.Errorf("money(%d, %s) = %q, want %q", tc.amount, tc.cur, got, tc.want)
		}
	}
}

// readQR decodes the QR code in img with a real QR decoder (ZXing's Go
// port), as a phone would.
func readQR(t *testing.T, img image.Image) string {
	t.Helper()
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	// PURE_BARCODE: the image is the code alone, as rendered. gozxing's
	// finder-pattern detector misses about 1 in 70 valid codes of this
	// size (zbar reads them all), which made this test fail at random.
	res, err := zxqr.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
	if err != nil {
		t.Fatalf("no readable QR code: %v", err)
	}
	return res.GetText()
}

// screenshot turns the half-block drawing of "ticket --qr" into the image
// a camera would see: 4×4 pixels a module, black on white. With colors
// (escapes around every line) and plain (none), blocks are dark modules;
// with NO_COLOR on a terminal, light ones.
func screenshot(t *testing.T, out string, style qrStyle) image.Image {
	colors := style == qrColour
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	var rows [][]bool // true: dark
	for i, l := range lines {
		if colors {
			var ok bool
			if l, ok = strings.CutPrefix(l, qrColors); !ok {
				t.Fatalf("line %d does not set the colours: %q", i+1, l)
			}
			if l, ok = strings.CutSuffix(l, qrReset); !ok {
				t.Fatalf("line %d does not reset the colours: %q", i+1, l)
			}
		} else if strings.Contains(l, "\x1b") {
			t.Fatalf("an escape sequence without colours: %q", l)
		}
		var top, bottom []bool
		for _, r := range l {
			var tp, bt bool
			switch r {
			case '█':
				tp, bt = true, true
			case '▀':
				tp = true
			case '▄':
				bt = true
			case ' ':
			default:
				t.Fatalf("line %d: unexpected %q", i+1, r)
			}
			if style == qrLightBlocks {
				tp, bt = !tp, !bt
			}
			top, bottom = append(top, tp), append(bottom, bt)
		}
		rows = append(rows, top, bottom)
	}
	// A QR code has an odd number of modules a side, so the last line's
	// lower half is one more row of quiet zone.
	n := len(rows[0])
	for i, row := range rows {
		if len(row) != n {
			t.Fatalf("line %d has %d modules, line 1 %d", i/2+1, len(row), n)
		}
	}
	if n%2 != 1 || len(rows) != n+1 {
		t.Fatalf("not square: %d columns, %d rows of modules", n, len(rows))
	}
	const scale = 4
	w, h := n*scale, len(rows)*scale
	img := image.NewGray(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.Gray{Y: 0xff}
			if rows[y/scale][x/scale] {
				c.Y = 0
			}
			img.SetGray(x, y, c)
		}
	}
	// The quiet zone: at least four light modules on each side.
	for i, row := range rows {
		for j, dark := range row {
			if dark && (i < 4 || j < 4 || j >= len(row)-4 || i >= len(rows)-4) {
				t.Fatalf("dark module (%d, %d) in the quiet zone", j, i)
			}
		}
	}
	return img
}

func TestTicketQRAndPNG(t *testing.T) {
	h := newHarness(t, "1")
	r := h.runSecret("reserve", "1", "--for", "2h")
	h.want(r, 0, nil, nil)
	token := field(t, r.out, "token")
	h.secrets = append(h.secrets, token)
	h.env[envToken] = token

	// No ticket before payment, in the server's words; nothing saved.
	dir := t.TempDir()
	file := filepath.Join(dir, "ticket.png")
	h.want(h.run("ticket", "1", "--qr"), 1, nil, []string{"(wrong_state, HTTP 409)"})
	h.want(h.run("ticket", "1", "--png", file), 1, nil, []string{"(wrong_state, HTTP 409)"})
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("a refused ticket left a file: %v", err)
	}

	r = h.run("pay", "1", "--car", "kl-42", "--idempotency-key", "k1")
	h.want(r, 0, nil, nil)
	tk := field(t, r.out, "ticket")

	// --qr draws a code that reads back as the ticket: on a terminal in
	// colour or not, and piped without escape codes.
	h.tty = true
	r = h.run("ticket", "1", "--qr")
	h.want(r, 0, nil, nil)
	if got := readQR(t, screenshot(t, r.out, qrColour)); got != tk {
		t.Fatalf("--qr reads %q, want %q", got, tk)
	}
	h.env["NO_COLOR"] = "1"
	r = h.run("ticket", "1", "--qr")
	delete(h.env, "NO_COLOR")
	h.tty = false
	h.want(r, 0, nil, nil)
	if got := readQR(t, screenshot(t, r.out, qrLightBlocks)); got != tk {
		t.Fatalf("--qr with NO_COLOR reads %q, want %q", got, tk)
	}
	r = h.run("ticket", "1", "--qr")
	h.want(r, 0, nil, nil)
	if got := readQR(t, screenshot(t, r.out, qrDarkBlocks)); got != tk {
		t.Fatalf("--qr piped reads %q, want %q", got, tk)
	}
	if r.errOut != "" || strings.Contains(r.out, tk) {
		t.Fatalf("--qr prints the drawing only: %q", r.errOut)
	}

	// --png saves the server's PNG (0600), --size sets its width.
	readPNG := func(b []byte) image.Image {
		t.Helper()
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("not a PNG: %v", err)
		}
		return img
	}
	r = h.run("ticket", "1", "--png", file)
	h.want(r, 0, []string{"saved the ticket of spot 1 as a QR code to " + file + " ("}, nil)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	img := readPNG(b)
	if got := readQR(t, img); got != tk || img.Bounds().Dx()%8 != 0 || !strings.Contains(r.out, strconv.Itoa(img.Bounds().Dx())+"×") {
		t.Fatalf("--png: reads %q (want %q), %v; %s", got, tk, img.Bounds(), r.out)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode: %v %v", fi.Mode(), err)
	}
	h.want(h.run("ticket", "1", "--png", file, "--size", "256"), 0, []string{"256×256 pixels"}, nil)
	if b, _ := os.ReadFile(file); readPNG(b).Bounds().Dx() != 256 || readQR(t, readPNG(b)) != tk {
		t.Fatal("--size 256 did not give a 256 pixel ticket")
	}
	// "-" writes the PNG to stdout, and nothing else.
	r = h.run("ticket", "1", "--png", "-", "--size", "128")
	h.want(r, 0, nil, nil)
	if img := readPNG([]byte(r.out)); img.Bounds().Dx() != 128 || readQR(t, img) != tk || r.errOut != "" {
		t.Fatalf("--png -: %v %q", img.Bounds(), r.errOut)
	}
	// A size the server refuses: its words, exit 1, the file untouched.
	before, _ := os.ReadFile(file)
	h.want(h.run("ticket", "1", "--png", file, "--size", "100"), 1, nil, []string{"128 to 1024", "(invalid_query, HTTP 400)"})
	if after, _ := os.ReadFile(file); !bytes.Equal(before, after) {
		t.Fatal("a refused request changed the file")
	}
	h.want(h.run("ticket", "1", "--png", filepath.Join(dir, "no", "such", "dir.png")), 1, nil, []string{"no such file or directory"})

	// The plain form is unchanged.
	if r := h.run("ticket", "1"); r.code != 0 || r.out != tk+"\n" {
		t.Fatalf("ticket: %d %q", r.code, r.out)
	}
}

// A spot freed by an early departure lists no window or car of the booking
// that ended (with that booking's token set, which sees its plate); once
// another booking follows, the list shows that one: the spot is free until
// then.
func TestSpotsFreeShowsNoFinishedBooking(t *testing.T) {
	h := newHarness(t, "1")
	r := h.runSecret("reserve", "1", "--for", "2h")
	h.want(r, 0, nil, nil)
	h.env[envToken] = field(t, r.out, "token")
	h.secrets = append(h.secrets, h.env[envToken])
	h.want(h.run("pay", "1", "--car", "kl-42"), 0, nil, nil)
	h.want(h.run("park", "1"), 0, nil, nil)
	h.clk.Advance(10 * time.Minute)
	h.want(h.run("leave", "1"), 0, nil, nil)
	if got := tableRow(t, h.run("spots").out, "1"); strings.Join(got, " ") != "1 free - - -" {
		t.Fatalf("free spot after an early departure: %q, want no window or car", got)
	}
	// The detail view still says what happened, labelled.
	if r := h.run("spot", "1"); !strings.Contains(field(t, r.out, "reservation"), "(left)") {
		t.Fatalf("spot 1:\n%s", r.out)
	}

	from := h.clk.Now().Add(30 * time.Minute).Truncate(time.Second)
	r = h.runSecret("reserve", "1", "--from", rfc(from), "--for", "1h")
	h.want(r, 0, nil, nil)
	h.secrets = append(h.secrets, field(t, r.out, "token"))
	got := tableRow(t, h.run("spots").out, "1")
	if want := "1 free " + rfc(from) + " " + rfc(from.Add(time.Hour)) + " -"; strings.Join(got, " ") != want {
		t.Fatalf("free spot with a booking ahead: %q, want %q", got, want)
	}
}

// The real binary with its stdout on a pipe (parkctl ticket 1 --qr | lpr):
// a code without a single escape code, dark modules as blocks, that reads
// back as the ticket.
func TestTicketQRPipedFromBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("process test skipped in -short mode")
	}
	bin := filepath.Join(t.TempDir(), "parkctl")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	h := newHarness(t, "1")
	r := h.runSecret("reserve", "1", "--for", "2h")
	h.want(r, 0, nil, nil)
	h.env[envToken] = field(t, r.out, "token")
	h.secrets = append(h.secrets, h.env[envToken])
	r = h.run("pay", "1", "--car", "kl-42")
	h.want(r, 0, nil, nil)
	tk := field(t, r.out, "ticket")

	cmd := exec.Command(bin, "ticket", "1", "--qr")
	cmd.Env = append(os.Environ(), envServer+"="+h.srv.URL, envToken+"="+h.env[envToken], "NO_COLOR=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output() // stdout is a pipe
	if err != nil {
		t.Fatalf("parkctl ticket 1 --qr: %v\n%s", err, stderr.String())
	}
	if bytes.Contains(out, []byte("\x1b")) {
		t.Fatalf("escape codes on a pipe: %q", out)
	}
	if got := readQR(t, screenshot(t, string(out), qrDarkBlocks)); got != tk {
		t.Fatalf("reads %q, want %q", got, tk)
	}
}

// The shipped examples/fleet.csv parses with the push parser, all its rows
// lie on the one day the README's sed moves to tomorrow, and, so moved, the
// server takes every row.
func TestShippedFleetExample(t *testing.T) {
	const path, day = "../../examples/fleet.csv", "2027-01-15"
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := readPushCSV(bytes.NewReader(raw))
	if err != nil || len(rows) != 3 {
		t.Fatalf("%s: %d rows, %v", path, len(rows), err)
	}
	for _, r := range rows {
		if r.item.ReservedFrom.Format(time.DateOnly) != day || r.item.ReservedUntil.Format(time.DateOnly) != day {
			t.Errorf("%s line %d is not on %s, which the README's sed replaces", path, r.line, day)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, []byte(`sed "s/`+day+`/$(date -u -d tomorrow +%F)/g" examples/fleet.csv > fleet.csv`)) {
		t.Errorf("README.md does not move %s to tomorrow as examples/fleet.csv says", day)
	}

	h := newHarness(t, "8", "9", "10")
	h.env[envAdmin] = clienttest.AdminToken
	moved := filepath.Join(t.TempDir(), "fleet.csv")
	tomorrow := h.clk.Now().Add(24 * time.Hour).Format(time.DateOnly)
	if err := os.WriteFile(moved, bytes.ReplaceAll(raw, []byte(day), []byte(tomorrow)), 0o600); err != nil {
		t.Fatal(err)
	}
	r := h.runSecret("push", moved)
	h.want(r, 0, []string{"pushed 3 reservation(s)"}, nil)
}
