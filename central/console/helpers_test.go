package console_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parkgate/parkgate/central/api"
	"github.com/parkgate/parkgate/central/booking"
	"github.com/parkgate/parkgate/central/console"
	"github.com/parkgate/parkgate/central/payment/fakepay"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/central/store/sqlitestore"
	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/ticket"
)

const adminToken = "console-test-admin-token-0123456789"

// writeTimeout is the test servers' http.Server.WriteTimeout.
const writeTimeout = time.Second

// env is centrald's real handler with the console mounted, on a fresh
// SQLite database.
type env struct {
	t     *testing.T
	srv   *httptest.Server
	st    store.Store
	svc   *booking.Service
	con   *console.Console
	gates *fakeGates
}

// fakeGates stands in for the MQTT relay: it records the barriers opened.
type fakeGates struct{ opened chan string }

func (f *fakeGates) OpenGate(ctx context.Context, id, reason string) (bool, string, error) {
	f.opened <- id
	return true, "", nil
}

// ResyncGate is not used by the console.
func (f *fakeGates) ResyncGate(ctx context.Context, id string) (bool, string, error) {
	return true, "", nil
}

func newEnv(t *testing.T, clk clock.Clock, tls bool, spots ...string) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "central.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.SetSpots(ctx, spots, clk.Now()); err != nil {
		t.Fatal(err)
	}
	signer, err := ticket.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	cfg := booking.DefaultConfig()
	svc := booking.New(st, &fakepay.Provider{}, booking.Tickets{Signer: signer}, clk, cfg, nil, nil)
	gates := &fakeGates{opened: make(chan string, 10)}
	con, err := console.New(svc, console.Config{AdminToken: adminToken, Site: "test", Gates: gates, Clock: clk,
		Poll: 20 * time.Millisecond, IdleTimeout: 30 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	h := api.New(svc, api.Options{AdminToken: adminToken, PaymentHold: cfg.PaymentHold, Registry: prometheus.NewRegistry(),
		Routes: con.Routes(), Gates: gates})
	h.SetReady(true)
	// A write timeout, as centrald's server has (internal/httpserve):
	// the event stream must outlive it.
	srv := httptest.NewUnstartedServer(h)
	srv.Config.WriteTimeout = writeTimeout
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- con.Serve(sctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("console.Serve: %v", err)
		}
		srv.Close()
	})
	return &env{t: t, srv: srv, st: st, svc: svc, con: con, gates: gates}
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, like a page's fetch as far as the tests care.
type browser struct {
	e    *env
	c    *http.Client
	csrf string
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	c := e.srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{e: e, c: c}
}

type resp struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r resp) code(t *testing.T) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(r.Body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("status %d: not the API's error shape: %s", r.Status, r.Body)
	}
	return e.Error.Code
}

func (b *browser) do(method, path, body string, hdr ...string) resp {
	b.e.t.Helper()
	req, err := http.NewRequest(method, b.e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		b.e.t.Fatal(err)
	}
	if strings.HasPrefix(body, "{") {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, out}
}

var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

// login signs in and reads the page's CSRF token.
func (b *browser) login(name, pw string) resp {
	b.e.t.Helper()
	r := b.do("POST", "/console/login", url.Values{"name": {name}, "password": {pw}}.Encode(),
		"Content-Type", "application/x-www-form-urlencoded")
	if r.Status != http.StatusSeeOther {
		return r
	}
	page := b.do("GET", "/console/", "")
	m := csrfMeta.FindSubmatch(page.Body)
	if page.Status != 200 || m == nil {
		b.e.t.Fatalf("console page after login: %d %s", page.Status, page.Body)
	}
	b.csrf = string(m[1])
	return r
}

func (e *env) operator(name string) string {
	e.t.Helper()
	pw, err := console.AddOperator(context.Background(), e.st, name, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return pw
}

// event is one Server-Sent Event.
type event struct {
	Name, ID string
	Data     json.RawMessage
}

// stream is an open GET /admin/events.
type stream struct {
	t      *testing.T
	res    *http.Response
	events chan event
}

func (e *env) stream(c *http.Client, hdr ...string) *stream {
	e.t.Helper()
	return e.streamAt(c, "/admin/events", hdr...)
}

func (e *env) streamAt(c *http.Client, path string, hdr ...string) *stream {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		e.t.Fatalf("GET /admin/events: %d %s", res.StatusCode, b)
	}
	s := &stream{t: e.t, res: res, events: make(chan event, 1000)}
	go func() { // ends when the body is closed
		defer close(s.events)
		sc := bufio.NewScanner(res.Body)
		var ev event
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.Name != "" {
					s.events <- ev
				}
				ev = event{}
			case strings.HasPrefix(line, "event: "):
				ev.Name = line[7:]
			case strings.HasPrefix(line, "id: "):
				ev.ID = line[4:]
			case strings.HasPrefix(line, "data: "):
				ev.Data = json.RawMessage(line[6:])
			}
		}
	}()
	e.t.Cleanup(s.close)
	return s
}

func (s *stream) close() { s.res.Body.Close() }

// next returns the next event named name (skipping others), failing the
// test if none comes within d.
func (s *stream) next(name string, d time.Duration) event {
	s.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				s.t.Fatalf("stream ended waiting for %q", name)
			}
			if ev.Name == name {
				return ev
			}
		case <-deadline:
			s.t.Fatalf("no %q event within %v", name, d)
		}
	}
}

func admin(hdr ...string) []string {
	return append([]string{"Authorization", "Bearer " + adminToken}, hdr...)
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func addOperator(e *env, name string) (string, error) {
	return console.AddOperator(context.Background(), e.st, name, time.Now())
}
