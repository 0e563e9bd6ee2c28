package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/client"
	"github.com/parkgate/parkgate/central/client/clienttest"
	"github.com/parkgate/parkgate/clock/clocktest"
	"github.com/parkgate/parkgate/ticket"
)

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

// wantErr fails unless err is an *client.Error with that status and code.
func wantErr(t *testing.T, what string, err error, status int, code string) *client.Error {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: want *client.Error %d %s, got %T %v", what, status, code, err, err)
	}
	if e.Status != status || e.Code != code || e.Message == "" {
		t.Fatalf("%s: want %d %s, got %+v", what, status, code, e)
	}
	return e
}

func TestFlow(t *testing.T) {
	ctx := context.Background()
	clk := clocktest.New(t0)
	srv := clienttest.Start(t, clk, "1", "2")
	c := srv.Client(t)

	spots, err := c.Spots(ctx)
	if err != nil || len(spots) != 2 || spots[0].ID != "1" || spots[0].Status != client.StatusFree {
		t.Fatalf("spots: %+v %v", spots, err)
	}

	res, err := c.Reserve(ctx, "1", t0, t0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if res.Token == "" || res.ReservationID == "" || res.Status != client.StateReserved || res.SpotID != "1" ||
		res.Amount != 500 || res.Currency != "eur" || res.Source != "driver" ||
		!res.ReservedFrom.Equal(t0) || !res.ReservedUntil.Equal(t0.Add(2*time.Hour)) ||
		!res.ReservationCreatedAt.Equal(t0) || !res.PaymentDueBy.Equal(t0.Add(15*time.Minute)) {
		t.Fatalf("reserve: %+v", res)
	}
	_, err = c.Reserve(ctx, "1", t0.Add(time.Hour), t0.Add(3*time.Hour))
	wantErr(t, "overlap", err, http.StatusConflict, "overlap")
	_, err = c.Reserve(ctx, "9", t0, t0.Add(time.Hour))
	wantErr(t, "unknown spot", err, http.StatusNotFound, "unknown_spot")

	// Payment: the admin token is not a driver's, no token is nobody's.
	_, err = c.Pay(ctx, "1", "", "X1", "pm_card_visa", "")
	wantErr(t, "pay as operator", err, http.StatusForbidden, "driver_only")
	anon, err := client.New(srv.URL, client.WithHTTPClient(srv.HTTP.Client()))
	if err != nil {
		t.Fatal(err)
	}
	_, err = anon.Pay(ctx, "1", "", "X1", "pm_card_visa", "")
	wantErr(t, "pay without token", err, http.StatusUnauthorized, "missing_token")

	_, err = c.Pay(ctx, "1", res.Token, "X1", "pm_card_chargeDeclined", "declined-1")
	wantErr(t, "declined", err, http.StatusPaymentRequired, "payment_declined")
	if r, err := c.Reservation(ctx, res.ReservationID, res.Token); err != nil || r.Status != client.StateReserved {
		t.Fatalf("after a decline the reservation stays payable: %+v %v", r, err)
	}

	paid, err := c.Pay(ctx, "1", res.Token, "k-lm 42", "pm_card_visa", "visa-1")
	if err != nil {
		t.Fatal(err)
	}
	if paid.Status != client.StatePaid || paid.CarID != "K-LM 42" || !paid.PaidAt.Equal(t0) || paid.Ticket == "" || paid.Token != "" {
		t.Fatalf("pay: %+v", paid)
	}
	again, err := c.Pay(ctx, "1", res.Token, "k-lm 42", "pm_card_visa", "visa-1")
	if err != nil || !again.PaidAt.Equal(paid.PaidAt) || again.Ticket != paid.Ticket {
		t.Fatalf("retried payment: %+v %v", again, err)
	}
	if n := srv.Pay.Charges(); n != 1 {
		t.Fatalf("%d charges, want 1: a retry with the same key must not charge twice", n)
	}

	// The ticket verifies with the key the server publishes.
	tk, err := c.Ticket(ctx, "1", res.Token)
	if err != nil || tk != paid.Ticket {
		t.Fatalf("ticket: %q %v", tk, err)
	}
	pk, err := c.PublicKey(ctx)
	if err != nil || pk.PublicKey != srv.PublicKey || pk.KeyID == "" {
		t.Fatalf("public key: %+v %v", pk, err)
	}
	pub, err := ticket.ParsePublicKey(pk.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ticket.NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := v.Verify(tk, t0.Add(time.Minute)); err != nil || got.ReservationID != res.ReservationID || got.CarID != "K-LM 42" {
		t.Fatalf("verify: %+v %v", got, err)
	}

	// Park, then leave early: the spot is free and reservable at once.
	// This driver's client holds the token, so the calls pass none.
	driver := srv.Client(t, client.WithToken(res.Token), client.WithAdminToken(""))
	in, err := driver.CheckIn(ctx, "1", "")
	if err != nil || in.Status != client.StateTaken || !in.CheckedInAt.Equal(t0) {
		t.Fatalf("check in: %+v %v", in, err)
	}
	if sp, err := c.Spot(ctx, "1"); err != nil || sp.Status != client.StatusTaken || sp.CarID != "K-LM 42" || sp.ReservationID != res.ReservationID || sp.ReservationStatus != client.StateTaken {
		t.Fatalf("spot while parked: %+v %v", sp, err)
	}
	clk.Advance(30 * time.Minute)
	leftAt := t0.Add(29 * time.Minute)
	out, err := driver.CheckOut(ctx, "1", "", leftAt)
	if err != nil || out.Status != client.StateLeft || !out.LeftAt.Equal(leftAt) || !out.EndedAt.Equal(t0.Add(30*time.Minute)) {
		t.Fatalf("check out: %+v %v", out, err)
	}
	if sp, err := c.Spot(ctx, "1"); err != nil || sp.Status != client.StatusFree || !sp.LeftAt.Equal(leftAt) {
		t.Fatalf("spot after leaving: %+v %v", sp, err)
	}
	if r, err := driver.Reservation(ctx, res.ReservationID, ""); err != nil || r.Status != client.StateLeft {
		t.Fatalf("show: %+v %v", r, err)
	}
	_, err = driver.Cancel(ctx, res.ReservationID, "")
	wantErr(t, "cancel after leaving", err, http.StatusConflict, "wrong_state")

	next, err := c.Reserve(ctx, "1", clk.Now(), t0.Add(2*time.Hour))
	if err != nil {
		t.Fatalf("reservable again at once: %v", err)
	}
	_, err = c.Reservation(ctx, next.ReservationID, res.Token)
	wantErr(t, "another reservation's token", err, http.StatusForbidden, "wrong_reservation")
	if r, err := c.Cancel(ctx, next.ReservationID, next.Token); err != nil || r.Status != client.StateCancelled {
		t.Fatalf("cancel: %+v %v", r, err)
	}

	// Operators push, force and read.
	now := clk.Now()
	pushed, err := c.Push(ctx, []client.PushItem{
		{SpotID: "2", ReservedFrom: now, ReservedUntil: now.Add(time.Hour), CarID: "F1", Reference: "INV-1"},
		{SpotID: "1", ReservedFrom: now.Add(2 * time.Hour), ReservedUntil: now.Add(3 * time.Hour)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pushed) != 2 || pushed[0].Status != client.StatePaid || pushed[0].Source != "operator" || pushed[0].Reference != "INV-1" ||
		pushed[0].Token == "" || pushed[0].Ticket == "" || pushed[1].SpotID != "1" {
		t.Fatalf("push: %+v", pushed)
	}
	// All or nothing: the second item overlaps, so the first is not kept.
	_, err = c.Push(ctx, []client.PushItem{
		{SpotID: "1", ReservedFrom: now.Add(5 * time.Hour), ReservedUntil: now.Add(6 * time.Hour)},
		{SpotID: "2", ReservedFrom: now, ReservedUntil: now.Add(time.Hour)},
	})
	if e := wantErr(t, "overlapping push", err, http.StatusConflict, "overlap"); !strings.HasPrefix(e.Message, "reservation 2: ") {
		t.Fatalf("push error names the item: %q", e.Message)
	}
	if rs, err := c.Reservations(ctx, "1", []string{client.StatePaid}, 0); err != nil || len(rs) != 1 || rs[0].ReservationID != pushed[1].ReservationID {
		t.Fatalf("after a failed push: %+v %v", rs, err)
	}

	sp, err := c.ForceStatus(ctx, "2", client.StatusTaken)
	if err != nil || sp.Status != client.StatusTaken || sp.ReservationID != pushed[0].ReservationID {
		t.Fatalf("force taken: %+v %v", sp, err)
	}
	if sp, err = c.ForceStatus(ctx, "2", client.StatusFree); err != nil || sp.Status != client.StatusFree {
		t.Fatalf("force free: %+v %v", sp, err)
	}
	_, err = c.ForceStatus(ctx, "2", "bogus")
	wantErr(t, "bad status", err, http.StatusBadRequest, "invalid_status")
	_, err = driver.ForceStatus(ctx, "2", client.StatusFree)
	wantErr(t, "force without admin token", err, http.StatusUnauthorized, "missing_token")
	wrong := srv.Client(t, client.WithAdminToken("not-the-admin-token"))
	_, err = wrong.Changes(ctx, 0, 0)
	wantErr(t, "wrong admin token", err, http.StatusForbidden, "not_operator")

	rs, err := c.Reservations(ctx, "2", []string{client.StateLeft, client.StateNoShow}, 10)
	if err != nil || len(rs) != 1 || rs[0].Status != client.StateLeft || rs[0].CarID != "F1" {
		t.Fatalf("reservations: %+v %v", rs, err)
	}
	if all, err := c.Reservations(ctx, "", nil, 0); err != nil || len(all) != 4 {
		t.Fatalf("all reservations: %d %v", len(all), err)
	}
	_, err = c.Reservations(ctx, "", []string{"parked"}, 0)
	wantErr(t, "bad state", err, http.StatusBadRequest, "invalid_query")

	changes, err := c.Changes(ctx, 0, 0)
	if err != nil || len(changes) == 0 {
		t.Fatalf("changes: %v %v", changes, err)
	}
	kinds := map[string]bool{}
	for i, ch := range changes {
		if i > 0 && ch.Version <= changes[i-1].Version {
			t.Fatalf("changes out of order: %+v", changes)
		}
		kinds[ch.Kind] = true
		if ch.Reservation != nil && (ch.Reservation.ID != ch.ReservationID || ch.Reservation.State == "") {
			t.Fatalf("change %+v: reservation %+v", ch, ch.Reservation)
		}
	}
	for _, k := range []string{"reservation.created", "payment.declined", "reservation.paid", "reservation.checked_in", "reservation.left", "reservation.cancelled"} {
		if !kinds[k] {
			t.Errorf("no %s in the change log: %v", k, kinds)
		}
	}
	last := changes[len(changes)-1]
	if last.Actor != "operator" || last.Kind != "reservation.left" || last.Reservation.CarID != "F1" {
		t.Fatalf("last change: %+v", last)
	}
	if cs, err := c.Changes(ctx, last.Version, 0); err != nil || len(cs) != 0 {
		t.Fatalf("changes after the last: %+v %v", cs, err)
	}
	if cs, err := c.Changes(ctx, changes[0].Version, 2); err != nil || len(cs) != 2 || cs[0].Version != changes[1].Version {
		t.Fatalf("a page of changes: %+v %v", cs, err)
	}
	if err := c.Ready(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestPathSegmentsAreEscaped(t *testing.T) {
	srv := clienttest.Start(t, clocktest.New(t0), "1")
	c := srv.Client(t)
	for _, id := range []string{"1/../..", "..", "a?b", "%2F"} {
		// unknown_spot, not the mux's not_found: the id reached the spot
		// endpoint as one segment.
		_, err := c.Spot(context.Background(), id)
		wantErr(t, id, err, http.StatusNotFound, "unknown_spot")
	}
}

func TestResponseHookSeesRawBody(t *testing.T) {
	srv := clienttest.Start(t, clocktest.New(t0), "1")
	var mu sync.Mutex
	var bodies []string
	c := srv.Client(t, client.WithResponseHook(func(res *http.Response, b []byte) {
		mu.Lock()
		defer mu.Unlock()
		bodies = append(bodies, res.Request.Method+" "+string(b))
	}))
	if _, err := c.Spots(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(bodies) != 1 || bodies[0] != "GET "+`[{"id":"1","status":"free"}]`+"\n" {
		t.Fatalf("hook saw %q", bodies)
	}
}

func TestErrorsNotInTheAPIShape(t *testing.T) {
	var body, ctype string
	var status int
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			t.Errorf("no token was configured, yet one was sent")
		}
		w.Header().Set("Content-Type", ctype)
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	defer fake.Close()
	c, err := client.New(fake.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		status      int
		ctype, body string
		want        client.Error
	}{
		{502, "text/html", "<html>bad gateway</html>\nmore", client.Error{Status: 502, Message: "Bad Gateway: <html>bad gateway</html>"}},
		{503, "text/plain", "", client.Error{Status: 503, Message: "Service Unavailable"}},
		{500, "application/octet-stream", "\x00\x01\x02", client.Error{Status: 500, Message: "Internal Server Error"}},
		{404, "application/json", `{"error":"gone"}`, client.Error{Status: 404, Message: `Not Found: {"error":"gone"}`}},
		{409, "application/json", `{"error":{"code":"overlap"}}`, client.Error{Status: 409, Code: "overlap", Message: "Conflict"}},
		{599, "text/plain", strings.Repeat("x", 300), client.Error{Status: 599, Message: "unexpected answer: " + strings.Repeat("x", 200) + "…"}},
	} {
		status, ctype, body = tc.status, tc.ctype, tc.body
		_, err := c.Spots(context.Background())
		var e *client.Error
		if !errors.As(err, &e) || *e != tc.want {
			t.Errorf("%d %q: got %#v, want %#v", tc.status, tc.body, err, tc.want)
		}
	}
	if got := (&client.Error{Status: 502, Message: "Bad Gateway"}).Error(); got != "Bad Gateway (HTTP 502)" {
		t.Errorf("Error() without a code: %q", got)
	}
	if got := (&client.Error{Status: 409, Code: "overlap", Message: "taken"}).Error(); got != "taken (overlap, HTTP 409)" {
		t.Errorf("Error() with a code: %q", got)
	}

	// A 2xx answer that is not the expected JSON is an error, but not an
	// *Error: the server did not refuse anything.
	status, ctype, body = 200, "text/html", "<html>captive portal</html>"
	_, err = c.Spots(context.Background())
	var e *client.Error
	if err == nil || errors.As(err, &e) || !strings.Contains(err.Error(), "/parkings") {
		t.Errorf("bad 2xx body: %v", err)
	}
	if client.ErrorCode(err) != "" || client.ErrorCode(&client.Error{Code: "x"}) != "x" {
		t.Error("ErrorCode")
	}
}

func TestNewRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:8080", "ftp://host", "http://", "http://h/?q=1", "://x"} {
		if _, err := client.New(u); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
	for _, u := range []string{"http://127.0.0.1:8080", "https://parking.example.com/api/", " http://h:1 "} {
		if _, err := client.New(u); err != nil {
			t.Errorf("New(%q): %v", u, err)
		}
	}
}

func TestBasePathPrefixIsKept(t *testing.T) {
	var got string
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.RequestURI()
		w.Write([]byte(`[]`))
	}))
	defer fake.Close()
	c, err := client.New(fake.URL + "/parking-api/")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Changes(context.Background(), 7, 3); err != nil {
		t.Fatal(err)
	}
	if got != "/parking-api/admin/changes?after=7&limit=3" {
		t.Fatalf("request went to %q", got)
	}
}
