package api_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/api"
	"github.com/parkgate/parkgate/clock/clocktest"
)

// paidSpot reserves and pays spot for car and returns the reservation.
func (s *server) paidSpot(spot, car string, from time.Time) reserved {
	s.t.Helper()
	var res reserved
	if r := s.do("POST", "/reserve/parking/"+spot, "", window(from, from.Add(time.Hour))); r.Status != 201 {
		s.t.Fatalf("reserve %s: %d %s", spot, r.Status, r.Body)
	} else {
		r.decode(s.t, &res)
	}
	if r := s.do("POST", "/pay/parking/"+spot, res.Token, `{"carId":"`+car+`","cardDetails":{"paymentMethod":"pm_card_visa"}}`); r.Status != 200 {
		s.t.Fatalf("pay %s: %d %s", spot, r.Status, r.Body)
	}
	return res
}

// A plate is personal data: anonymous callers never see one, anywhere; a
// reservation's token sees its own and nobody else's; the admin token sees
// every one.
func TestPlatesOnlyForAdminAndHolder(t *testing.T) {
	s := newServer(t, clocktest.New(t0), []string{"1", "2"})
	a := s.paidSpot("1", "AA-111", t0)
	b := s.paidSpot("2", "BB-222", t0.Add(2*time.Hour)) // spot 2's next reservation
	if r := s.do("POST", "/park/parking/1?is_parking=true", a.Token, ""); r.Status != 200 {
		t.Fatalf("park: %d %s", r.Status, r.Body)
	}
	plates := func(r resp) (got []string) {
		for _, p := range []string{"AA-111", "BB-222"} {
			if strings.Contains(string(r.Body), p) {
				got = append(got, p)
			}
		}
		return got
	}
	for _, tc := range []struct {
		path, token string
		want        []string
	}{
		{"/parkings", "", nil},
		{"/parkings/1", "", nil},
		{"/parkings/2", "", nil},
		{"/parkings", admin, []string{"AA-111", "BB-222"}},
		{"/parkings/2", admin, []string{"BB-222"}},
		{"/parkings", a.Token, []string{"AA-111"}},
		{"/parkings/1", a.Token, []string{"AA-111"}},
		{"/parkings/2", a.Token, nil},
		{"/parkings", b.Token, []string{"BB-222"}},
		{"/parkings/1", b.Token, nil},
		{"/reservations/" + a.ReservationID, a.Token, []string{"AA-111"}},
		{"/reservations/" + b.ReservationID, a.Token, nil}, // 403
		{"/reservations/" + a.ReservationID, admin, []string{"AA-111"}},
		// Every other endpoint anybody may call without a token.
		{"/reservations/" + a.ReservationID, "", nil},
		{"/parking/1/ticket", "", nil},
		{"/parking/1/ticket.png", "", nil},
		{"/admin/changes", "", nil},
		{"/admin/reservations", "", nil},
		{"/admin/gate-events", "", nil},
		{"/admin/reservations/" + a.ReservationID + "/payments", "", nil},
		{"/gates", "", nil},
		{"/tickets/public-key", "", nil},
		{"/healthz", "", nil},
		{"/readyz", "", nil},
	} {
		r := s.do("GET", tc.path, tc.token, "")
		if got := plates(r); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			who := "anonymous"
			switch tc.token {
			case admin:
				who = "admin"
			case a.Token:
				who = "holder of 1"
			case b.Token:
				who = "holder of 2"
			}
			t.Errorf("GET %s as %s: plates %v, want %v (%d %s)", tc.path, who, got, tc.want, r.Status, r.Body)
		}
	}
	// /metrics is text, not JSON.
	if b := s.get("/metrics"); strings.Contains(b, "AA-111") || strings.Contains(b, "BB-222") {
		t.Errorf("/metrics shows a plate")
	}
	// A token that opens nothing is refused, not served as anonymous.
	if r := s.do("GET", "/parkings", "not-a-token", ""); r.Status != 401 || r.errCode(t) != "invalid_token" {
		t.Errorf("GET /parkings with an unknown token: %d %s", r.Status, r.Body)
	}
}

// get fetches a path without the JSON checks of do.
func (s *server) get(path string) string {
	s.t.Helper()
	res, err := s.srv.Client().Get(s.srv.URL + path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	var b strings.Builder
	_, _ = fmt.Fprint(&b, res.Status)
	buf := make([]byte, 1<<16)
	for {
		n, err := res.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}

// Strict bodies and queries: every kind of ambiguous or hidden input gets
// a 400 in the error shape, repeats no card digits, and changes nothing.
func TestStrictInputChangesNothing(t *testing.T) {
	s := newServer(t, clocktest.New(t0), []string{"1", "2"})
	var res reserved
	s.do("POST", "/reserve/parking/1", "", window(t0.Add(5*time.Hour), t0.Add(6*time.Hour))).decode(t, &res)
	before, _ := s.st.Changes(context.Background(), 0, 10000)
	from, until := t0.Add(time.Hour).Format(time.RFC3339), t0.Add(2*time.Hour).Format(time.RFC3339)
	win := `"reservedFrom":"` + from + `","reservedUntil":"` + until + `"`
	pushOf := func(item string) string {
		return `{"reservations":[{"spotId":"2",` + win + `,` + item + `}]}`
	}
	const pm = `"cardDetails":{"paymentMethod":"pm_card_visa"}`
	for _, tc := range []struct {
		what, method, path, token, body, code string
	}{
		// Card numbers, however written, wherever they are.
		{"escaped card number as the plate", "POST", "/pay/parking/1", res.Token, `{"carId":"37828224631000\u0035",` + pm + `}`, "card_number_refused"},
		{"card number all in escapes", "POST", "/pay/parking/1", res.Token, `{"carId":"\u0034\u0032\u0034\u0032\u0034\u0032\u0034\u0032\u0034\u0032\u0034\u0032\u0034\u0032\u0034\u0032",` + pm + `}`, "card_number_refused"},
		{"card number in an unknown field", "POST", "/pay/parking/1", res.Token, `{"carId":"X1",` + pm + `,"note":"4242 4242 4242 \u00342\u00342"}`, "card_number_refused"},
		{"card number as a member name", "POST", "/pay/parking/1", res.Token, `{"carId":"X1",` + pm + `,"4242424242424242":1}`, "card_number_refused"},
		{"card number as a float", "POST", "/pay/parking/1", res.Token, `{"carId":"X1","cardDetails":{"paymentMethod":"pm_card_visa","n":4.242424242424242e15}}`, "card_number_refused"},
		{"card number in a reservation", "POST", "/reserve/parking/1", "", `{` + win + `,"x":"4242\u002d4242-4242-4242"}`, "card_number_refused"},
		{"card number as a pushed plate", "POST", "/admin/reservations", admin, pushOf(`"carId":"37828224631000\u0035"`), "card_number_refused"},
		{"card number as a pushed reference", "POST", "/admin/reservations", admin, pushOf(`"reference":"\u0034242424242424242"`), "card_number_refused"},
		{"payment method not a pm_ id", "POST", "/pay/parking/1", res.Token, `{"carId":"X1","cardDetails":{"paymentMethod":"card_visa"}}`, "invalid_payment_method"},
		{"payment method pm_ alone", "POST", "/pay/parking/1", res.Token, `{"carId":"X1","cardDetails":{"paymentMethod":"pm_"}}`, "invalid_payment_method"},
		{"payment method with a dash", "POST", "/pay/parking/1", res.Token, `{"carId":"X1","cardDetails":{"paymentMethod":"pm_card-visa"}}`, "invalid_payment_method"},
		// Duplicate members, at any depth.
		{"duplicate top-level member", "POST", "/reserve/parking/1", "", `{` + win + `,"reservedUntil":"` + until + `"}`, "duplicate_field"},
		{"duplicate plate", "POST", "/pay/parking/1", res.Token, `{"carId":"X1","carId":"X2",` + pm + `}`, "duplicate_field"},
		{"duplicate nested member", "POST", "/pay/parking/1", res.Token, `{"carId":"X1","cardDetails":{"paymentMethod":"pm_card_visa","paymentMethod":"pm_card_chargeDeclined"}}`, "duplicate_field"},
		{"duplicate member in a pushed item", "POST", "/admin/reservations", admin, pushOf(`"carId":"F1","carId":"F2"`), "duplicate_field"},
		{"duplicate through an escape", "POST", "/pay/parking/1", res.Token, `{"carId":"X1","car\u0049d":"X2",` + pm + `}`, "duplicate_field"},
		// Names in another case.
		{"upper-case name", "POST", "/reserve/parking/1", "", `{"RESERVEDFROM":"` + from + `","reservedUntil":"` + until + `"}`, "unknown_field"},
		{"name case and a duplicate", "POST", "/reserve/parking/1", "", `{` + win + `,"RESERVEDFROM":"` + until + `"}`, "unknown_field"},
		{"nested name in another case", "POST", "/pay/parking/1", res.Token, `{"carId":"X1","cardDetails":{"PaymentMethod":"pm_card_visa"}}`, "unknown_field"},
		{"pushed name in another case", "POST", "/admin/reservations", admin, pushOf(`"CarId":"F1"`), "unknown_field"},
		// Control and bidi characters in text.
		{"NUL in the plate", "POST", "/pay/parking/1", res.Token, `{"carId":"X1\u0000",` + pm + `}`, "invalid_text"},
		{"DEL in the plate", "POST", "/pay/parking/1", res.Token, `{"carId":"X1\u007f",` + pm + `}`, "invalid_text"},
		{"right-to-left override", "POST", "/admin/reservations", admin, pushOf(`"reference":"INV-\u202e1"`), "invalid_text"},
		{"raw right-to-left isolate", "POST", "/admin/reservations", admin, pushOf("\"reference\":\"INV-\u20671\""), "invalid_text"},
		{"right-to-left mark", "POST", "/admin/reservations", admin, pushOf(`"reference":"INV-\u200f1"`), "invalid_text"},
		{"Arabic letter mark", "POST", "/admin/reservations", admin, pushOf(`"carId":"F\u061c1"`), "invalid_text"},
		{"newline in a time", "POST", "/reserve/parking/1", "", `{"reservedFrom":"` + from + `\n","reservedUntil":"` + until + `"}`, "invalid_text"},
		{"invalid UTF-8", "POST", "/admin/reservations", admin, pushOf("\"reference\":\"INV-\xff\""), "invalid_text"},
		// Queries.
		{"semicolon in a filter", "GET", "/admin/reservations?state=paid;drop", admin, "", "invalid_query"},
		{"unknown filter", "GET", "/admin/reservations?stat=paid", admin, "", "unknown_query_parameter"},
		{"filter given twice", "GET", "/admin/reservations?state=paid&state=left", admin, "", "invalid_query"},
		{"bidi in a filter", "GET", "/admin/reservations?spot=1%E2%80%AE", admin, "", "invalid_query"},
		{"query on a reservation", "POST", "/reserve/parking/1?dryRun=true", "", `{` + win + `}`, "unknown_query_parameter"},
		{"query on a payment", "POST", "/pay/parking/1?carId=X2", res.Token, `{"carId":"X1",` + pm + `}`, "unknown_query_parameter"},
		{"extra query on check-in", "POST", "/park/parking/1?is_parking=true&force=1", res.Token, "", "unknown_query_parameter"},
		{"query on a push", "POST", "/admin/reservations?x", admin, pushOf(`"carId":"F1"`), "unknown_query_parameter"},
	} {
		r := s.do(tc.method, tc.path, tc.token, tc.body)
		if r.Status != 400 || r.errCode(t) != tc.code {
			t.Errorf("%s: got %d %.300s, want 400 %s", tc.what, r.Status, r.Body, tc.code)
		}
		for _, digits := range []string{"4242", "378282", "31000"} {
			if strings.Contains(string(r.Body), digits) {
				t.Errorf("%s: card digits echoed: %s", tc.what, r.Body)
			}
		}
	}
	// A card number in a path is not a body, but no answer repeats it.
	for _, p := range []string{"/parkings/4242424242424242", "/reserve/parking/4242-4242-4242-4242", "/admin/reservations/4242424242424242/payments"} {
		method := "GET"
		if strings.Contains(p, "reserve/") {
			method = "POST"
		}
		r := s.do(method, p, admin, `{`+win+`}`)
		if r.Status != 404 || strings.Contains(string(r.Body), "4242") {
			t.Errorf("%s %s: %d %s", method, p, r.Status, r.Body)
		}
	}
	after, _ := s.st.Changes(context.Background(), 0, 10000)
	if len(after) != len(before) {
		t.Fatalf("strict input changed state: %d changes before, %d after", len(before), len(after))
	}
	// The same requests written plainly are accepted: the refusals above
	// are for what was hidden in them, not for their shape.
	if r := s.do("POST", "/pay/parking/1", res.Token, `{"car\u0049d":"x1", "cardDetails" : {"paymentMethod":"pm_card_visa"}}`); r.Status != 200 {
		t.Fatalf("plain payment: %d %s", r.Status, r.Body)
	}
	if r := s.do("GET", "/admin/reservations?state=paid&spot=1&limit=5", admin, ""); r.Status != 200 || !strings.Contains(string(r.Body), "X1") {
		t.Fatalf("filtered list: %d %s", r.Status, r.Body)
	}
}

// Every route refuses a query parameter it does not take.
func TestEveryRouteRefusesUnknownQuery(t *testing.T) {
	s := newServer(t, clocktest.New(t0), []string{"1"})
	paths := map[string]string{
		"GET /parkings":                         "/parkings",
		"GET /parkings/{id}":                    "/parkings/1",
		"POST /reserve/parking/{id}":            "/reserve/parking/1",
		"POST /pay/parking/{id}":                "/pay/parking/1",
		"POST /park/parking/{id}":               "/park/parking/1",
		"POST /parking/{id}/status/{status}":    "/parking/1/status/free",
		"GET /parking/{id}/ticket":              "/parking/1/ticket",
		"GET /parking/{id}/ticket.png":          "/parking/1/ticket.png",
		"GET /reservations/{id}":                "/reservations/x",
		"DELETE /reservations/{id}":             "/reservations/x",
		"POST /admin/reservations":              "/admin/reservations",
		"GET /admin/reservations":               "/admin/reservations",
		"GET /admin/changes":                    "/admin/changes",
		"GET /admin/reservations/{id}/payments": "/admin/reservations/x/payments",
		"GET /gates":                            "/gates",
		"POST /gates/{id}/open":                 "/gates/g/open",
		"POST /gates/{id}/resync":               "/gates/g/resync",
		"GET /admin/exceptions":                 "/admin/exceptions",
		"GET /admin/gate-events":                "/admin/gate-events",
		"GET /admin/payment-exceptions":         "/admin/payment-exceptions",
		"POST /webhooks/stripe":                 "/webhooks/stripe",
		"GET /tickets/public-key":               "/tickets/public-key",
		"GET /healthz":                          "/healthz",
		"GET /readyz":                           "/readyz",
		"GET /metrics":                          "/metrics",
		"GET /debug/pprof/profile":              "/debug/pprof/profile",
		"GET /debug/pprof/trace":                "/debug/pprof/trace",
		"GET /debug/pprof/heap":                 "/debug/pprof/heap",
		"GET /debug/pprof/allocs":               "/debug/pprof/allocs",
		"GET /debug/pprof/goroutine":            "/debug/pprof/goroutine",
		"GET /debug/pprof/mutex":                "/debug/pprof/mutex",
		"GET /debug/pprof/block":                "/debug/pprof/block",
	}
	for _, p := range api.RoutePatterns() {
		path, ok := paths[p]
		if !ok {
			t.Errorf("route %s: no path in this test", p)
			continue
		}
		method, _, _ := strings.Cut(p, " ")
		r := s.do(method, path+"?bogus=1", admin, "")
		if r.Status != 400 || r.errCode(t) != "unknown_query_parameter" {
			t.Errorf("%s ?bogus=1: %d %s", p, r.Status, r.Body)
		}
	}
}

// An Idempotency-Key belongs to one request: reused with another one
// (method, path or body) it is refused with 422, also after the first
// request finished; the same request again gets the first answer.
func TestIdempotencyKeyBoundToItsRequest(t *testing.T) {
	s := newServer(t, clocktest.New(t0), []string{"1", "2"})
	var res reserved
	s.do("POST", "/reserve/parking/1", "", window(t0, t0.Add(time.Hour))).decode(t, &res)
	const key = "Idempotency-Key"
	body := `{"carId":"K-LM 42","cardDetails":{"paymentMethod":"pm_card_visa"}}`

	// A declined first request: another body with its key is refused, not
	// answered with the decline.
	declined := `{"carId":"K-LM 42","cardDetails":{"paymentMethod":"pm_card_chargeDeclined"}}`
	if r := s.do("POST", "/pay/parking/1", res.Token, declined, key, "k-declined"); r.Status != 402 {
		t.Fatalf("declined: %d %s", r.Status, r.Body)
	}
	if r := s.do("POST", "/pay/parking/1", res.Token, body, key, "k-declined"); r.Status != 422 || r.errCode(t) != "idempotency_key_reused" {
		t.Fatalf("declined key with another card: %d %s", r.Status, r.Body)
	}
	if r := s.do("POST", "/pay/parking/1", res.Token, declined, key, "k-declined"); r.Status != 402 {
		t.Fatalf("declined replay: %d %s", r.Status, r.Body)
	}

	r := s.do("POST", "/pay/parking/1", res.Token, body, key, "k1")
	var first reserved
	r.decode(t, &first)
	if r.Status != 200 || first.CarID != "K-LM 42" {
		t.Fatalf("pay: %d %s", r.Status, r.Body)
	}
	charges := s.payments(res.ReservationID)
	for _, tc := range []struct{ what, path, body string }{
		{"another plate", "/pay/parking/1", `{"carId":"X-Y 9","cardDetails":{"paymentMethod":"pm_card_visa"}}`},
		{"another payment method", "/pay/parking/1", `{"carId":"K-LM 42","cardDetails":{"paymentMethod":"pm_card_mastercard"}}`},
		{"another path", "/pay/parking/2", body},
	} {
		r := s.do("POST", tc.path, res.Token, tc.body, key, "k1")
		if r.Status != 422 || r.errCode(t) != "idempotency_key_reused" {
			t.Errorf("%s with the key: %d %s", tc.what, r.Status, r.Body)
		}
		if strings.Contains(string(r.Body), "K-LM") {
			t.Errorf("%s: the first request's plate is shown: %s", tc.what, r.Body)
		}
	}
	// The same request, written differently (spacing, escapes, member
	// order, the plate's case), is the same request: the first answer.
	for _, same := range []string{body, `{ "cardDetails": {"paymentMethod":"pm_card_visa"}, "carId": "k-lm \u0034\u0032" }`} {
		r := s.do("POST", "/pay/parking/1", res.Token, same, key, "k1")
		var again reserved
		r.decode(t, &again)
		if r.Status != 200 || again.PaidAt != first.PaidAt || again.CarID != "K-LM 42" {
			t.Errorf("retry %s: %d %s", same, r.Status, r.Body)
		}
	}
	if got := s.payments(res.ReservationID); got != charges {
		t.Fatalf("%d payment attempts after the retries, %d before", got, charges)
	}
}

// payments counts a reservation's payment attempts.
func (s *server) payments(id string) int {
	s.t.Helper()
	var p struct{ Attempts []map[string]any }
	s.do("GET", "/admin/reservations/"+id+"/payments", admin, "").decode(s.t, &p)
	return len(p.Attempts)
}

// Go's profiler answers the admin token only: a profile shows the code's
// internals and costs CPU while it runs.
func TestProfilerNeedsAdminToken(t *testing.T) {
	s := newServer(t, clocktest.New(t0), []string{"1"})
	for _, tok := range []string{"", "not-the-admin-token"} {
		if r := s.do("GET", "/debug/pprof/goroutine?debug=1", tok, ""); r.Status != 401 && r.Status != 403 {
			t.Errorf("token %q: %d %.200s, want 401 or 403", tok, r.Status, r.Body)
		}
	}
	r := s.do("GET", "/debug/pprof/goroutine?debug=1", admin, "")
	if r.Status != 200 || !strings.Contains(string(r.Body), "goroutine") {
		t.Errorf("with the admin token: %d %.200s", r.Status, r.Body)
	}
}
