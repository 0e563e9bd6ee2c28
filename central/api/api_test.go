package api_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/apijson"
	"github.com/parkgate/parkgate/central/client/clienttest"
	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/clock/clocktest"
)

var update = flag.Bool("update", false, "rewrite golden files")

const admin = clienttest.AdminToken

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

type server struct {
	t   *testing.T
	srv *httptest.Server
	st  store.Store
	clk *clocktest.Clock
}

func newServer(t *testing.T, clk clock.Clock, spots []string) *server {
	t.Helper()
	ts := clienttest.Start(t, clk, spots...)
	s := &server{t: t, srv: ts.HTTP, st: ts.Store}
	s.clk, _ = clk.(*clocktest.Clock)
	return s
}

type resp struct {
	Status int
	Body   []byte
}

func (r resp) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decoding %s: %v", r.Body, err)
	}
}

// errCode returns the error code of an error response, failing the test
// if the body is not in the contract's error shape.
func (r resp) errCode(t *testing.T) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	r.decode(t, &e)
	if e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("status %d: not the error shape: %s", r.Status, r.Body)
	}
	return e.Error.Code
}

func (s *server) do(method, path, token, body string, hdr ...string) resp {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := s.srv.Client().Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if ct := res.Header.Get("Content-Type"); res.StatusCode != 200 || !strings.HasPrefix(path, "/metrics") && !strings.HasPrefix(path, "/debug/pprof/") {
		if !strings.HasPrefix(ct, "application/json") {
			s.t.Fatalf("%s %s: content type %q", method, path, ct)
		}
	}
	return resp{res.StatusCode, b}
}

func window(from, until time.Time) string {
	return fmt.Sprintf(`{"reservedFrom":%q,"reservedUntil":%q}`, from.Format(time.RFC3339), until.Format(time.RFC3339))
}

type reserved struct {
	ReservationID string `json:"reservationId"`
	Token         string `json:"token"`
	Status        string `json:"status"`
	Ticket        string `json:"ticket"`
	PaidAt        string `json:"paidAt"`
	CarID         string `json:"carId"`
	LeftAt        string `json:"leftAt"`
	Amount        int64  `json:"amount"`
	Currency      string `json:"currency"`
}

func TestSeedFlowOverHTTP(t *testing.T) {
	clk := clocktest.New(t0)
	s := newServer(t, clk, []string{"1", "2"})
	r := s.do("POST", "/reserve/parking/1", "", window(t0, t0.Add(2*time.Hour)))
	if r.Status != 201 {
		t.Fatalf("reserve: %d %s", r.Status, r.Body)
	}
	var res reserved
	r.decode(t, &res)
	if res.Token == "" || res.Status != "reserved" || res.Amount != 500 || res.Currency != "eur" {
		t.Fatalf("reserve answer %s", r.Body)
	}
	if r := s.do("POST", "/reserve/parking/1", "", window(t0.Add(time.Hour), t0.Add(3*time.Hour))); r.Status != 409 || r.errCode(t) != "overlap" {
		t.Fatalf("overlap: %d %s", r.Status, r.Body)
	}
	if r := s.do("POST", "/pay/parking/1", "", `{"carId":"X1","cardDetails":{"paymentMethod":"pm_card_visa"}}`); r.Status != 401 {
		t.Fatalf("pay without token: %d", r.Status)
	}
	if r := s.do("POST", "/pay/parking/1", res.Token, `{"carId":"X1","cardDetails":{"paymentMethod":"pm_card_chargeDeclined"}}`); r.Status != 402 || r.errCode(t) != "payment_declined" {
		t.Fatalf("declined: %d %s", r.Status, r.Body)
	}
	r = s.do("POST", "/pay/parking/1", res.Token, `{"carId":"k-lm 42","cardDetails":{"paymentMethod":"pm_card_visa"}}`, "Idempotency-Key", "abc")
	var paid reserved
	r.decode(t, &paid)
	if r.Status != 200 || paid.PaidAt == "" || paid.CarID != "K-LM 42" || paid.Status != "paid" {
		t.Fatalf("pay: %d %s", r.Status, r.Body)
	}
	if r := s.do("POST", "/park/parking/1?is_parking=true", "wrong-token", ""); r.Status != 401 {
		t.Fatalf("park with a wrong token: %d", r.Status)
	}
	if r := s.do("POST", "/park/parking/1?is_parking=true", res.Token, ""); r.Status != 200 {
		t.Fatalf("park: %d %s", r.Status, r.Body)
	}
	var spots []map[string]any
	s.do("GET", "/parkings", "", "").decode(t, &spots)
	if len(spots) != 2 || spots[0]["id"] != "1" || spots[0]["status"] != "taken" || spots[0]["carId"] != nil || spots[1]["status"] != "free" {
		t.Fatalf("parkings: %v", spots)
	}
	s.do("GET", "/parkings", res.Token, "").decode(t, &spots)
	if spots[0]["carId"] != "K-LM 42" {
		t.Fatalf("parkings for the reservation's token: %v", spots)
	}
	clk.Advance(30 * time.Minute)
	leave := t0.Add(29 * time.Minute).Format(time.RFC3339)
	if r := s.do("POST", "/park/parking/1?is_parking=false&leaving_at="+leave, res.Token, ""); r.Status != 200 {
		t.Fatalf("leave: %d %s", r.Status, r.Body)
	}
	// Left 29 minutes into a 2-hour window: one unused whole hour is
	// owed back, recorded with the payment.
	var pays struct {
		Attempts []struct {
			Outcome     string
			ProviderRef string
		}
		Refunds []struct {
			Reason string
			Amount int64
			Status string
		}
	}
	s.do("GET", "/admin/reservations/"+res.ReservationID+"/payments", admin, "").decode(t, &pays)
	if len(pays.Attempts) != 2 || pays.Attempts[0].Outcome != "declined" || pays.Attempts[1].ProviderRef == "" ||
		len(pays.Refunds) != 1 || pays.Refunds[0].Amount != 250 || pays.Refunds[0].Reason != "early_departure" {
		t.Fatalf("payments %+v", pays)
	}
	var one map[string]any
	s.do("GET", "/parkings/1", "", "").decode(t, &one)
	if one["status"] != "free" || one["leftAt"] != leave {
		t.Fatalf("after leaving: %v", one)
	}
	// Reservable again at once.
	if r := s.do("POST", "/reserve/parking/1", "", window(clk.Now(), t0.Add(2*time.Hour))); r.Status != 201 {
		t.Fatalf("re-reserve: %d %s", r.Status, r.Body)
	}
}

func TestAdminEndpoints(t *testing.T) {
	clk := clocktest.New(t0)
	s := newServer(t, clk, []string{"1", "2"})
	if r := s.do("POST", "/parking/1/status/free", "", ""); r.Status != 401 {
		t.Fatalf("no token: %d", r.Status)
	}
	if r := s.do("POST", "/parking/1/status/free", "not-the-admin", ""); r.Status != 403 {
		t.Fatalf("wrong token: %d", r.Status)
	}
	if r := s.do("POST", "/parking/1/status/bogus", admin, ""); r.Status != 400 {
		t.Fatalf("bad status: %d", r.Status)
	}
	push := fmt.Sprintf(`{"reservations":[{"spotId":"1","reservedFrom":%q,"reservedUntil":%q,"carId":"F1","reference":"INV-1"},{"spotId":"2","reservedFrom":%q,"reservedUntil":%q}]}`,
		t0.Format(time.RFC3339), t0.Add(time.Hour).Format(time.RFC3339), t0.Format(time.RFC3339), t0.Add(time.Hour).Format(time.RFC3339))
	if r := s.do("POST", "/admin/reservations", "", push); r.Status != 401 {
		t.Fatalf("push without token: %d", r.Status)
	}
	r := s.do("POST", "/admin/reservations", admin, push)
	var out struct{ Reservations []reserved }
	r.decode(t, &out)
	if r.Status != 201 || len(out.Reservations) != 2 || out.Reservations[0].Status != "paid" || out.Reservations[0].Token == "" {
		t.Fatalf("push: %d %s", r.Status, r.Body)
	}
	if r := s.do("POST", "/admin/reservations", admin, push); r.Status != 409 {
		t.Fatalf("push again: %d %s", r.Status, r.Body)
	}
	if r := s.do("POST", "/parking/1/status/taken", admin, ""); r.Status != 200 {
		t.Fatalf("force taken: %d %s", r.Status, r.Body)
	}
	if r := s.do("POST", "/parking/1/status/free", admin, ""); r.Status != 200 {
		t.Fatalf("force free: %d %s", r.Status, r.Body)
	}
	var rs []reserved
	s.do("GET", "/admin/reservations?state=left", admin, "").decode(t, &rs)
	if len(rs) != 1 || rs[0].LeftAt == "" {
		t.Fatalf("left reservations: %+v", rs)
	}
	var pays struct {
		Attempts []map[string]any
		Refunds  []map[string]any
	}
	if r := s.do("GET", "/admin/reservations/"+out.Reservations[0].ReservationID+"/payments", admin, ""); r.Status != 200 {
		t.Fatalf("payments: %d %s", r.Status, r.Body)
	} else if r.decode(t, &pays); len(pays.Attempts) != 0 || len(pays.Refunds) != 0 {
		t.Fatalf("a pushed reservation has payments: %s", r.Body)
	}
	if r := s.do("GET", "/admin/reservations/nope/payments", admin, ""); r.Status != 404 {
		t.Fatalf("payments of an unknown reservation: %d", r.Status)
	}
	if r := s.do("GET", "/admin/reservations/x/payments", "", ""); r.Status != 401 {
		t.Fatalf("payments without a token: %d", r.Status)
	}
	var cs []store.Change
	s.do("GET", "/admin/changes?after=0&limit=100", admin, "").decode(t, &cs)
	if len(cs) == 0 || cs[len(cs)-1].Kind != store.KindLeft || cs[len(cs)-1].Actor != "operator" {
		t.Fatalf("changes %+v", cs)
	}
	for _, q := range []string{"after=-1", "after=x", "limit=0", "limit=999999"} {
		if r := s.do("GET", "/admin/changes?"+q, admin, ""); r.Status != 400 {
			t.Fatalf("%s: %d", q, r.Status)
		}
	}
	if r := s.do("GET", "/admin/reservations?state=bogus", admin, ""); r.Status != 400 {
		t.Fatalf("bad state: %d", r.Status)
	}
	// Gates and their events (fed by the sync): empty lists, admin only.
	for _, path := range []string{"/gates", "/admin/exceptions", "/admin/gate-events?gate=entry-1&limit=5"} {
		if r := s.do("GET", path, admin, ""); r.Status != 200 || strings.TrimSpace(string(r.Body)) != "[]" {
			t.Fatalf("%s: %d %s", path, r.Status, r.Body)
		}
		if r := s.do("GET", path, "", ""); r.Status != 401 {
			t.Fatalf("%s without a token: %d", path, r.Status)
		}
	}
	if r := s.do("GET", "/admin/exceptions?limit=x", admin, ""); r.Status != 400 {
		t.Fatalf("bad limit: %d", r.Status)
	}
	// A denied plate at the entry, as the sync stores it: listed with what
	// the camera read.
	err := s.st.Write(context.Background(), func(tx store.Tx) error {
		return tx.PutGateEvent(store.GateEvent{EventID: "ev-plate", GateID: "entry-1", Seq: 1, Kind: "decision", Role: "entry",
			Time: t0, Source: "plate", Reason: "unknown_plate", Plate: "BXY123", Detail: "no reservation for the plate read",
			ReceivedAt: t0, Outcome: store.EventRecorded})
	})
	if err != nil {
		t.Fatal(err)
	}
	var evs []apijson.GateEvent
	s.do("GET", "/admin/gate-events?gate=entry-1", admin, "").decode(t, &evs)
	if len(evs) != 1 || evs[0].Plate != "BXY123" || evs[0].Detail != "no reservation for the plate read" || evs[0].Granted {
		t.Fatalf("gate events %+v", evs)
	}
}

// Every kind of bad input gets a 4xx in the error shape and changes nothing.
func TestBadInputChangesNothing(t *testing.T) {
	clk := clocktest.New(t0)
	s := newServer(t, clk, []string{"1"})
	good := s.do("POST", "/reserve/parking/1", "", window(t0.Add(5*time.Hour), t0.Add(6*time.Hour)))
	var res reserved
	good.decode(t, &res)
	before, _ := s.st.Changes(context.Background(), 0, 10000)

	from, until := t0.Add(time.Hour).Format(time.RFC3339), t0.Add(2*time.Hour).Format(time.RFC3339)
	huge := `{"reservedFrom":"` + strings.Repeat("x", 2<<20) + `"}`
	for _, tc := range []struct {
		method, path, token, body string
		status                    int
		code                      string
	}{
		{"POST", "/reserve/parking/1", "", `{`, 400, "malformed_json"},
		{"POST", "/reserve/parking/1", "", ``, 400, "missing_body"},
		{"POST", "/reserve/parking/1", "", `[]`, 400, "invalid_field"},
		{"POST", "/reserve/parking/1", "", `{"reservedFrom":"` + from + `"}`, 400, "missing_field"},
		{"POST", "/reserve/parking/1", "", `{"reservedFrom":"` + from + `","reservedUntil":"` + until + `","x":1}`, 400, "unknown_field"},
		{"POST", "/reserve/parking/1", "", `{"reservedFrom":"` + from + `","reservedUntil":"` + until + `"} {}`, 400, "malformed_json"},
		{"POST", "/reserve/parking/1", "", `{"reservedFrom":"tomorrow","reservedUntil":"` + until + `"}`, 400, "invalid_time"},
		{"POST", "/reserve/parking/1", "", `{"reservedFrom":"2026-11-26 11:00","reservedUntil":"` + until + `"}`, 400, "invalid_time"},
		{"POST", "/reserve/parking/1", "", `{"reservedFrom":12,"reservedUntil":"` + until + `"}`, 400, "invalid_field"},
		{"POST", "/reserve/parking/1", "", window(t0.Add(2*time.Hour), t0.Add(time.Hour)), 422, "invalid_window"},
		{"POST", "/reserve/parking/1", "", window(t0.Add(-time.Hour), t0.Add(time.Hour)), 422, "window_in_past"},
		{"POST", "/reserve/parking/1", "", window(t0, t0.Add(30*24*time.Hour)), 422, "window_too_long"},
		{"POST", "/reserve/parking/42", "", window(t0.Add(time.Hour), t0.Add(2*time.Hour)), 404, "unknown_spot"},
		{"POST", "/reserve/parking/" + strings.Repeat("9", 500), "", window(t0.Add(time.Hour), t0.Add(2*time.Hour)), 404, "unknown_spot"},
		{"POST", "/reserve/parking/%00", "", window(t0.Add(time.Hour), t0.Add(2*time.Hour)), 404, "unknown_spot"},
		{"POST", "/reserve/parking/1", "", huge, 413, "body_too_large"},
		{"POST", "/pay/parking/1", res.Token, `{"carId":"X","cardDetails":{"number":"4242 4242 4242 4242","exp":"12/30"}}`, 400, "card_number_refused"},
		{"POST", "/pay/parking/1", res.Token, `{"carId":"X","cardDetails":{"paymentMethod":"pm_card_visa","n":4242424242424242}}`, 400, "card_number_refused"},
		{"POST", "/pay/parking/1", res.Token, `{"carId":"X","cardDetails":{"paymentMethod":"pm_card_visa","cvc":"123"}}`, 400, "unknown_field"},
		{"POST", "/pay/parking/1", res.Token, `{"carId":"X","cardDetails":"pm_card_visa"}`, 400, "invalid_card_details"},
		{"POST", "/pay/parking/1", res.Token, `{"carId":"X"}`, 400, "missing_field"},
		{"POST", "/pay/parking/1", res.Token, `{"carId":"X","cardDetails":{"paymentMethod":"visa; drop table"}}`, 400, "invalid_payment_method"},
		{"POST", "/pay/parking/1", res.Token, `{"carId":"<script>","cardDetails":{"paymentMethod":"pm_card_visa"}}`, 400, "invalid_car_id"},
		{"POST", "/pay/parking/1", res.Token, `{"carId":"X1","cardDetails":{"paymentMethod":"pm_card_visa"}}`, 400, "invalid_idempotency_key"},
		{"POST", "/park/parking/1", res.Token, ``, 400, "invalid_query"},
		{"POST", "/park/parking/1?is_parking=yes", res.Token, ``, 400, "invalid_query"},
		{"POST", "/park/parking/1?is_parking=false&leaving_at=soon", res.Token, ``, 400, "invalid_time"},
		{"POST", "/park/parking/1?is_parking=true&leaving_at=" + from, res.Token, ``, 400, "invalid_query"},
		{"POST", "/park/parking/1?is_parking=true", res.Token, ``, 409, "wrong_state"},
		{"GET", "/parkings/nope", "", ``, 404, "unknown_spot"},
		{"GET", "/nowhere", "", ``, 404, "not_found"},
		{"DELETE", "/parkings", "", ``, 405, "method_not_allowed"},
		{"GET", "/parkings/../parkings", "", ``, 404, "not_found"}, // the mux would redirect: not an endpoint
		{"GET", "/reservations/" + res.ReservationID, "", ``, 401, "missing_token"},
		{"DELETE", "/reservations/" + res.ReservationID, "bad", ``, 401, "invalid_token"},
	} {
		var hdr []string
		if tc.code == "invalid_idempotency_key" {
			hdr = []string{"Idempotency-Key", strings.Repeat("k", 300)}
		}
		r := s.do(tc.method, tc.path, tc.token, tc.body, hdr...)
		if r.Status != tc.status || r.errCode(t) != tc.code {
			t.Errorf("%s %s %.60s: got %d %.200s, want %d %s", tc.method, tc.path, tc.body, r.Status, r.Body, tc.status, tc.code)
		}
		if strings.Contains(string(r.Body), "4242") {
			t.Errorf("card digits echoed: %s", r.Body)
		}
	}
	after, _ := s.st.Changes(context.Background(), 0, 10000)
	if len(after) != len(before) {
		t.Fatalf("bad input changed state: %d changes before, %d after", len(before), len(after))
	}
}

// Golden file: the whole GET /parkings answer for a known state.
func TestParkingsGolden(t *testing.T) {
	clk := clocktest.New(t0)
	s := newServer(t, clk, []string{"A1", "A2", "A3", "B1"})
	var a, b reserved
	s.do("POST", "/reserve/parking/A1", "", window(t0, t0.Add(2*time.Hour))).decode(t, &a)
	s.do("POST", "/pay/parking/A1", a.Token, `{"carId":"B-XY 1","cardDetails":{"paymentMethod":"pm_card_visa"}}`)
	s.do("POST", "/park/parking/A1?is_parking=true", a.Token, "")
	s.do("POST", "/reserve/parking/A2", "", window(t0.Add(-time.Minute), t0.Add(time.Hour))).decode(t, &b)
	s.do("POST", "/reserve/parking/A3", "", window(t0.Add(3*time.Hour), t0.Add(4*time.Hour)))
	r := s.do("GET", "/parkings", "", "")
	// Reservation ids are random: replace them for the comparison.
	got := string(r.Body)
	for _, id := range []string{a.ReservationID, b.ReservationID} {
		got = strings.ReplaceAll(got, id, "RESERVATION-ID")
	}
	var list []map[string]any
	json.Unmarshal([]byte(got), &list)
	if id, _ := list[2]["reservationId"].(string); id != "" {
		got = strings.ReplaceAll(got, id, "RESERVATION-ID")
	}
	var pretty []json.RawMessage
	json.Unmarshal([]byte(got), &pretty)
	out, _ := json.MarshalIndent(pretty, "", "  ")
	golden := filepath.Join("testdata", "parkings.golden.json")
	if *update {
		os.WriteFile(golden, append(out, '\n'), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != string(out)+"\n" {
		t.Fatalf("GET /parkings differs from %s (run with -update to accept):\n%s", golden, out)
	}
}

// Hundreds of clients race for overlapping windows on a few spots through
// the real handler and a real SQLite file: afterwards no two live
// reservations of a spot overlap, and every window slot had exactly one
// winner.
func TestConcurrentReservationsNeverDoubleBook(t *testing.T) {
	s := newServer(t, clock.Real{}, []string{"1", "2", "3"})
	base := time.Now().UTC().Truncate(time.Hour).Add(2 * time.Hour)
	const clients = 300
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := map[string]int{}
	statuses := map[int]int{}
	type spotWindow struct {
		spot string
		win  reservation.Window
	}
	requested := map[string]spotWindow{}
	client := s.srv.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			spot := fmt.Sprint(i%3 + 1)
			slot := (i / 3) % 4 // 4 one-hour slots per spot, many clients each
			// Half ask for the slot exactly, half for a window straddling
			// it and the next: these overlap the exact ones.
			from := base.Add(time.Duration(slot) * time.Hour)
			until := from.Add(time.Hour)
			if i%2 == 1 {
				from, until = from.Add(30*time.Minute), until.Add(30*time.Minute)
			}
			req, _ := http.NewRequest("POST", s.srv.URL+"/reserve/parking/"+spot, strings.NewReader(window(from, until)))
			res, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			key := fmt.Sprintf("%s@%s", spot, from.Format(time.Kitchen))
			mu.Lock()
			statuses[res.StatusCode]++
			requested[key] = spotWindow{spot, reservation.Window{From: from, Until: until}}
			if res.StatusCode == 201 {
				wins[key]++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if statuses[201]+statuses[409] != clients {
		t.Fatalf("statuses %v: only 201 and 409 expected", statuses)
	}
	for k, n := range wins {
		if n != 1 {
			t.Errorf("window %s won %d times", k, n)
		}
	}
	// The checker reads the final database.
	rs, err := s.st.List(context.Background(), store.Filter{States: reservation.LiveStates})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != statuses[201] {
		t.Fatalf("%d live reservations, %d created", len(rs), statuses[201])
	}
	for i := range rs {
		for j := i + 1; j < len(rs); j++ {
			if rs[i].SpotID == rs[j].SpotID && rs[i].Window().Overlaps(rs[j].Window()) {
				t.Fatalf("double booking: %+v and %+v", rs[i], rs[j])
			}
		}
	}
	// Every 409 was justified: each requested window that nobody won
	// overlaps a winner of its spot (no client lost to a phantom).
	for key, w := range requested {
		if wins[key] == 1 {
			continue
		}
		blocked := false
		for _, r := range rs {
			if r.SpotID == w.spot && r.Window().Overlaps(w.win) {
				blocked = true
			}
		}
		if !blocked {
			t.Errorf("window %s: every request was refused but nothing overlaps it", key)
		}
	}
	t.Logf("statuses %v, %d winners", statuses, len(rs))
}

func TestHealthReadyMetrics(t *testing.T) {
	s := newServer(t, clocktest.New(t0), []string{"1"})
	if r := s.do("GET", "/healthz", "", ""); r.Status != 200 {
		t.Fatal(r.Status)
	}
	if r := s.do("GET", "/readyz", "", ""); r.Status != 200 {
		t.Fatal(r.Status)
	}
	s.do("GET", "/parkings", "", "")
	req, _ := http.NewRequest("GET", s.srv.URL+"/metrics", nil)
	res, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(b), `parkgate_http_request_duration_seconds_count{code="200",method="GET",route="GET /parkings"} 1`) {
		t.Fatalf("metrics lack the request: %s", b)
	}
}

// A client sending made-up methods cannot grow the metrics: every method
// that is not HTTP's own is counted as "other".
func TestMetricsBoundMethods(t *testing.T) {
	s := newServer(t, clocktest.New(t0), []string{"1"})
	for i := range 20 {
		req, _ := http.NewRequest(fmt.Sprintf("X%d", i), s.srv.URL+"/parkings", nil)
		res, err := s.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("method X%d: %d", i, res.StatusCode)
		}
	}
	res, err := s.srv.Client().Get(s.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if strings.Contains(string(b), `method="X`) {
		t.Fatalf("a made-up method is a label value: %s", b)
	}
	if !strings.Contains(string(b), `parkgate_http_request_duration_seconds_count{code="405",method="other",route="unmatched"} 20`) {
		t.Fatalf("the made-up methods are not counted as other: %s", b)
	}
}

// A request no route takes is answered once, in the API's error shape: a
// 405 names the methods allowed, and nothing of the mux's own plain-text
// answer gets through.
func TestUnmatchedAnsweredInTheAPIShape(t *testing.T) {
	s := newServer(t, clocktest.New(t0), []string{"1"})
	req, _ := http.NewRequest("DELETE", s.srv.URL+"/parkings", nil)
	res, err := s.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 405 || !strings.Contains(res.Header.Get("Allow"), "GET") ||
		res.Header.Get("Content-Type") != "application/json" || strings.Contains(string(b), "Method Not Allowed") {
		t.Fatalf("DELETE /parkings: %d Allow %q Content-Type %q %s", res.StatusCode, res.Header.Get("Allow"), res.Header.Get("Content-Type"), b)
	}
}
