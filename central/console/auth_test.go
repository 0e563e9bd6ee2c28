package console_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/clock/clocktest"
)

// TestUnauthenticatedIsRefused: every console route and /admin/events
// refuses a caller without a session or the admin token (the sign-in page
// and the static files, which hold no data, excepted), and changes
// nothing.
func TestUnauthenticatedIsRefused(t *testing.T) {
	e := newEnv(t, clock.Real{}, false, "1")
	b := e.browser()
	before := e.versions(0)
	for _, rt := range e.con.Routes() {
		method, path, _ := strings.Cut(rt.Pattern, " ")
		path = strings.NewReplacer("{id}", "1", "{file...}", "console.css", "{$}", "").Replace(path)
		if path == "/console/login" || strings.HasPrefix(path, "/console/static/") || path == "/console" {
			continue
		}
		body := ""
		if method == "POST" {
			body = `{"reason":"x"}`
		}
		for _, hdr := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Cookie", "parkgate_session=forged"}} {
			r := b.do(method, path+"?q=x", body, hdr...)
			if path != "/console/api/lookup" {
				r = b.do(method, path, body, hdr...)
			}
			switch {
			case path == "/console/" || path == "/console/logout":
				// Pages send people to the sign-in page (or refuse a token).
				if r.Status != http.StatusSeeOther && r.Status != http.StatusForbidden || strings.Contains(string(r.Body), "csrf-token") {
					t.Errorf("%s %s %v: %d %s", method, path, hdr, r.Status, r.Body)
				}
				if r.Status == http.StatusSeeOther && r.Header.Get("Location") != "/console/login" {
					t.Errorf("%s %s: redirected to %q", method, path, r.Header.Get("Location"))
				}
			default:
				if r.Status != http.StatusUnauthorized && r.Status != http.StatusForbidden {
					t.Errorf("%s %s %v: %d %s", method, path, hdr, r.Status, r.Body)
					continue
				}
				r.code(t)
			}
		}
	}
	if after := e.versions(0); !equal(before, after) {
		t.Errorf("refused requests changed the log: %v → %v", before, after)
	}
}

// TestAdminTokenStillWorks: scripts use the console's JSON routes with
// the admin token, without a session or CSRF token; the change log says
// "operator".
func TestAdminTokenStillWorks(t *testing.T) {
	e := newEnv(t, clock.Real{}, false, "1")
	id := e.reserve("1", 1)
	r := e.browser().do("POST", "/console/api/reservations/"+id+"/cancel", `{"reason":"double booking"}`, admin()...)
	if r.Status != 200 {
		t.Fatalf("cancel with the admin token: %d %s", r.Status, r.Body)
	}
	cs, _ := e.st.Changes(context.Background(), 0, 0)
	last := cs[len(cs)-1]
	if last.Kind != store.KindCancelled || last.Actor != "operator" || last.Note != "double booking" {
		t.Errorf("logged %+v", last)
	}
}

// TestCSRF: a signed-in operator's state change without the session's
// CSRF token is refused and changes nothing; with it, it is done and
// recorded under the operator's name with the reason.
func TestCSRF(t *testing.T) {
	e := newEnv(t, clock.Real{}, false, "1")
	pw := e.operator("alice")
	b := e.browser()
	if r := b.login("alice", pw); r.Status != http.StatusSeeOther {
		t.Fatalf("login: %d %s", r.Status, r.Body)
	}
	id := e.reserve("1", 1)
	for _, tok := range []string{"", "wrong-token"} {
		r := b.do("POST", "/console/api/reservations/"+id+"/cancel", `{"reason":"driver called"}`, "X-CSRF-Token", tok)
		if r.Status != http.StatusForbidden || r.code(t) != "csrf" {
			t.Fatalf("token %q: %d %s", tok, r.Status, r.Body)
		}
	}
	if res, _ := e.st.Get(context.Background(), id); res.State != reservation.Reserved {
		t.Fatalf("refused cancel changed the reservation: %s", res.State)
	}
	// Logout is a state change too.
	if r := b.do("POST", "/console/logout", "csrf=wrong", "Content-Type", "application/x-www-form-urlencoded"); r.Status != http.StatusForbidden {
		t.Fatalf("logout without the CSRF token: %d", r.Status)
	}
	r := b.do("POST", "/console/api/reservations/"+id+"/cancel", `{"reason":"driver called"}`, "X-CSRF-Token", b.csrf)
	if r.Status != 200 {
		t.Fatalf("with the token: %d %s", r.Status, r.Body)
	}
	cs, _ := e.st.Changes(context.Background(), 0, 0)
	last := cs[len(cs)-1]
	if last.Kind != store.KindCancelled || last.Actor != "operator:alice" || last.Note != "driver called" {
		t.Errorf("logged %+v", last)
	}
}

// TestLogout: after signing out the session opens nothing.
func TestLogout(t *testing.T) {
	e := newEnv(t, clock.Real{}, false, "1")
	pw := e.operator("alice")
	b := e.browser()
	b.login("alice", pw)
	if r := b.do("GET", "/console/api/state", ""); r.Status != 200 {
		t.Fatalf("state while signed in: %d", r.Status)
	}
	cookie := b.c.Jar.Cookies(mustURL(t, e.srv.URL))
	r := b.do("POST", "/console/logout", "csrf="+b.csrf, "Content-Type", "application/x-www-form-urlencoded")
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/console/login" {
		t.Fatalf("logout: %d %v", r.Status, r.Header)
	}
	// The old cookie, replayed, is dead.
	b2 := e.browser()
	b2.c.Jar.SetCookies(mustURL(t, e.srv.URL), cookie)
	if r := b2.do("GET", "/console/api/state", ""); r.Status != http.StatusUnauthorized {
		t.Fatalf("state with the old cookie: %d", r.Status)
	}
}

// TestSessionCookie: HttpOnly and SameSite=Strict always, Secure under
// TLS.
func TestSessionCookie(t *testing.T) {
	for _, tls := range []bool{false, true} {
		e := newEnv(t, clock.Real{}, tls, "1")
		pw := e.operator("alice")
		r := e.browser().do("POST", "/console/login", "name=alice&password="+pw, "Content-Type", "application/x-www-form-urlencoded")
		if r.Status != http.StatusSeeOther {
			t.Fatalf("login: %d", r.Status)
		}
		c := (&http.Response{Header: r.Header}).Cookies()
		if len(c) != 1 || c[0].Name != "parkgate_session" || !c[0].HttpOnly || c[0].SameSite != http.SameSiteStrictMode || c[0].Secure != tls {
			t.Errorf("tls %v: cookie %+v", tls, c)
		}
	}
}

// TestIdleTimeout: a session unused for longer than the idle timeout is
// over; use keeps it open.
func TestIdleTimeout(t *testing.T) {
	clk := clocktest.New(time.Now())
	e := newEnv(t, clk, false, "1")
	pw := e.operator("alice")
	b := e.browser()
	b.login("alice", pw)
	for range 3 {
		clk.Advance(29 * time.Minute)
		if r := b.do("GET", "/console/api/state", ""); r.Status != 200 {
			t.Fatalf("after 29 min: %d %s", r.Status, r.Body)
		}
	}
	clk.Advance(31 * time.Minute)
	if r := b.do("GET", "/console/api/state", ""); r.Status != http.StatusUnauthorized {
		t.Fatalf("after 31 idle minutes: %d %s", r.Status, r.Body)
	}
	if r := b.do("GET", "/console/", ""); r.Status != http.StatusSeeOther {
		t.Fatalf("page after the timeout: %d", r.Status)
	}
}

// TestLoginThrottle: after five failed sign-ins for a name even the right
// password waits; the wait passes with time.
func TestLoginThrottle(t *testing.T) {
	clk := clocktest.New(time.Now())
	e := newEnv(t, clk, false, "1")
	pw := e.operator("alice")
	b := e.browser()
	for i := range 5 {
		if r := b.login("alice", "wrong"); r.Status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i+1, r.Status)
		}
	}
	r := b.login("alice", pw)
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("right password while throttled: %d %v", r.Status, r.Header)
	}
	// Another name from the same address is throttled too: guessing
	// across names does not get around it.
	e.operator("bob")
	if r := b.login("bob", "wrong"); r.Status != http.StatusTooManyRequests {
		t.Fatalf("another name from the same address: %d", r.Status)
	}
	clk.Advance(31 * time.Second)
	if r := b.login("alice", pw); r.Status != http.StatusSeeOther {
		t.Fatalf("after the wait: %d %s", r.Status, r.Body)
	}
}

// TestOperatorNames: names that could confuse the log are refused.
func TestOperatorNames(t *testing.T) {
	e := newEnv(t, clock.Real{}, false, "1")
	for _, n := range []string{"", "Alice", "a b", "a:b", strings.Repeat("a", 65), "-a"} {
		if _, err := addOperator(e, n); err == nil {
			t.Errorf("name %q accepted", n)
		}
	}
}
