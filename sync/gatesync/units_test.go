package gatesync

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/parkgate/parkgate/gate/localdb"
	"github.com/parkgate/parkgate/sync/syncmsg"
)

func TestFileSessionsCountAndPersist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "gate.db.session")
	// A fresh counter each time: what a restart sees.
	for i, tc := range []struct{ atLeast, want int64 }{{0, 1}, {0, 2}, {1000, 1000}, {5, 1001}, {0, 1002}} {
		n, err := FileSessions(path).NextSession(context.Background(), tc.atLeast)
		if err != nil || n != tc.want {
			t.Fatalf("call %d: NextSession(%d) = %d, %v; want %d", i+1, tc.atLeast, n, err, tc.want)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad")
	if err := writeFile(bad, "not a number\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := FileSessions(bad).NextSession(context.Background(), 0); err == nil {
		t.Error("a garbled session file was accepted")
	}
}

func TestClean(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"two\nlines\t!", "two lines !"},
		{"bad \xff utf8", "bad \uFFFD utf8"},
	} {
		if got := clean(tc.in, 100); got != tc.want {
			t.Errorf("clean(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	long := strings.Repeat("é", 600) // 1200 bytes
	got := clean(long, 1024)
	if len(got) > 1024 || !utf8.ValidString(got) || len(got) < 1022 {
		t.Errorf("clean cut %d bytes to %d (valid %v)", len(long), len(got), utf8.ValidString(got))
	}
}

func TestSeenIDsForgetTheOldest(t *testing.T) {
	var s seenIDs
	s.init(3)
	for _, id := range []string{"a", "b", "c", "d"} {
		s.add(id)
	}
	if s.has("a") || !s.has("b") || !s.has("d") {
		t.Errorf("seen: a %v b %v d %v; want the last three", s.has("a"), s.has("b"), s.has("d"))
	}
}

func TestServeRefusesABadConfig(t *testing.T) {
	db, err := localdb.Open(context.Background(), filepath.Join(t.TempDir(), "gate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ln := &fakeLane{db: db}
	good := Config{Site: "lab", GateID: gateID, Role: syncmsg.RoleEntry, URL: "tcp://127.0.0.1:1"}
	sessions := FileSessions(filepath.Join(t.TempDir(), "s"))
	for name, tc := range map[string]struct {
		cfg  func(*Config)
		deps Deps
	}{
		"no session counter": {func(*Config) {}, Deps{DB: db, Lane: ln}},
		"bad site":           {func(c *Config) { c.Site = "Lab/#" }, Deps{DB: db, Lane: ln, Sessions: sessions}},
		"bad gate":           {func(c *Config) { c.GateID = "" }, Deps{DB: db, Lane: ln, Sessions: sessions}},
		"bad role":           {func(c *Config) { c.Role = "both" }, Deps{DB: db, Lane: ln, Sessions: sessions}},
		"no url":             {func(c *Config) { c.URL = "" }, Deps{DB: db, Lane: ln, Sessions: sessions}},
		"no lane":            {func(*Config) {}, Deps{DB: db, Sessions: sessions}},
		"sub-second keepalive": {func(c *Config) { c.Keepalive = 500 * time.Millisecond },
			Deps{DB: db, Lane: ln, Sessions: sessions}},
	} {
		cfg := good
		tc.cfg(&cfg)
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		err := New(cfg, tc.deps).Serve(ctx)
		cancel()
		if err == nil {
			t.Errorf("%s: Serve accepted it", name)
		}
	}
}

func TestClientID(t *testing.T) {
	base := Config{Site: "lab", GateID: gateID, Role: syncmsg.RoleEntry, URL: "tcp://x:1"}
	if id := New(base, Deps{}).clientID; id != "gate-lab-g1" {
		t.Errorf("anonymous client id %q", id)
	}
	base.Username = gateID
	if id := New(base, Deps{}).clientID; id != gateID {
		t.Errorf("client id with a username %q, want the username (the embedded broker's rule)", id)
	}
	base.ClientID = "explicit"
	if id := New(base, Deps{}).clientID; id != "explicit" {
		t.Errorf("explicit client id %q", id)
	}
}

func TestMalformedEventDoesNotBlockTheOutbox(t *testing.T) {
	b := startMochi(t)
	site := uniqueSite(t)
	c := startCentral(t, b.url(), site, "centrald", "")
	c.autoAck.Store(true)
	g := startGate(t, testConfig(site, b.url()))
	ctx := context.Background()
	rec := func(ev localdb.Event) localdb.Event {
		t.Helper()
		ev.GateID, ev.Role, ev.Time = gateID, localdb.RoleEntry, time.Now()
		out, err := g.db.Record(ctx, ev, localdb.NoPresenceChange)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	// A fault detail with a newline: cleaned, delivered.
	multi := rec(localdb.Event{Kind: localdb.KindBarrierFault, Detail: "no closed signal\nafter 10s"})
	// A kind longer than the protocol allows: refused by the codec, left
	// in the outbox.
	bad := rec(localdb.Event{Kind: localdb.Kind(strings.Repeat("k", 40))})
	after := rec(localdb.Event{Source: localdb.SourceQR, Granted: true, Reason: "ticket"})
	g.sync.Kick()

	eventually(t, "the events around the malformed one", func() bool { return g.depth() == 1 })
	pending, err := g.db.Pending(ctx, 0)
	if err != nil || len(pending) != 1 || pending[0].EventID != bad.EventID {
		t.Fatalf("pending = %+v, %v; want only the malformed event", pending, err)
	}
	var details []string
	for _, batch := range c.events() {
		for _, ev := range batch {
			if ev.EventID == bad.EventID {
				t.Error("the malformed event was sent")
			}
			if ev.EventID == multi.EventID {
				details = append(details, ev.Detail)
			}
		}
	}
	if len(details) == 0 || details[0] != "no closed signal after 10s" {
		t.Errorf("fault detail sent as %q", details)
	}
	if ids := c.eventIDs(); len(ids) != 2 || ids[1] != after.EventID {
		t.Errorf("central got %v", ids)
	}
}
