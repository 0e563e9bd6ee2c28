package gatesync

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/broker"
	"github.com/parkgate/parkgate/sync/syncmsg"
)

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

// TestEmbeddedBrokerWithCredentials runs the gate against centrald's own
// broker with a provisioned gate: its login (client id = username = gate
// id), its will, and everything it subscribes to and publishes must pass
// the ACL, which drops and disconnects on the first refusal.
func TestEmbeddedBrokerWithCredentials(t *testing.T) {
	site := uniqueSite(t)
	hash, err := broker.HashPassword("gate-secret")
	if err != nil {
		t.Fatal(err)
	}
	br, err := broker.New(broker.Config{Site: site, Listen: "127.0.0.1:0", CentralUser: "centrald", CentralPassword: "central-secret"},
		broker.StaticCredentials{gateID: hash}, testLog(t, slog.LevelWarn))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- br.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-served:
		case <-time.After(deadline):
			t.Error("broker did not stop")
		}
	})
	url := "tcp://" + br.Addr()
	c := startCentral(t, url, site, "centrald", "central-secret")
	c.autoAck.Store(true)
	cfg := testConfig(site, url)
	cfg.Username, cfg.Password = gateID, "gate-secret"
	g := startGate(t, cfg)

	eventually(t, "the birth", func() bool { return len(c.births(0)) > 0 })
	s1 := c.births(0)[0].Session
	answerStart(t, c, g, 3, []syncmsg.Entry{entry("r1", "1", syncmsg.StatePaid)})
	c.changes(3, 4, syncmsg.VersionedEntry{Version: 4, Entry: entry("r1", "1", syncmsg.StateTaken)})
	eventually(t, "the batch", func() bool { return g.version() == 4 })
	g.record(3)
	eventually(t, "the events acknowledged", func() bool { return g.depth() == 0 })
	c.command(syncmsg.Command{ID: "open-1", Type: syncmsg.CmdOpen, Expires: time.Now().Add(10 * time.Second)})
	eventually(t, "the open's result", func() bool { return len(c.results()["open-1"]) == 1 })
	if r := c.results()["open-1"][0]; !r.OK {
		t.Errorf("open-1 = %+v", r)
	}
	// One connection throughout: nothing the gate did was refused (a
	// refusal disconnects, and the gate would have come back with a new
	// session).
	if s := sessionOf(t, g); s != s1 || len(c.wills()) != 0 {
		t.Errorf("the gate reconnected (session %d, then %d; wills %+v): the broker refused something", s1, s, c.wills())
	}
}

// TestMosquitto runs the protocol against the machine's Mosquitto
// (PARKING_TEST_MQTT_URL, anonymous access), under a site name of its own
// so that it never meets another run; it clears the retained status it
// leaves behind.
func TestMosquitto(t *testing.T) {
	url := os.Getenv("PARKING_TEST_MQTT_URL")
	if url == "" {
		t.Skip("PARKING_TEST_MQTT_URL is not set (e.g. tcp://127.0.0.1:1883, anonymous access); skipping the Mosquitto test")
	}
	site := uniqueSite(t)
	p := startProxy(t, hostPort(t, url))
	c := startCentral(t, url, site, "central", "")
	t.Cleanup(c.clearRetained)
	cfg := testConfig(site, p.url())
	cfg.Keepalive = time.Second
	g := startGate(t, cfg)

	eventually(t, "the birth", func() bool { return len(c.births(0)) > 0 })
	s1 := c.births(0)[0].Session
	answerStart(t, c, g, 20, []syncmsg.Entry{entry("r1", "1", syncmsg.StatePaid), entry("r2", "2", syncmsg.StatePaid)})
	c.changes(21, 22) // a gap
	c.ping("p1")
	if n := len(c.requestsFor(syncmsg.ReasonGap)); n != 1 {
		t.Fatalf("%d gap requests, want 1", n)
	}
	c.snapshot("snap-22", 22, []syncmsg.Entry{entry("r1", "1", syncmsg.StateTaken)}, 64)
	eventually(t, "the snapshot at 22", func() bool { return g.version() == 22 })
	c.heartbeat(22)
	eventually(t, "online", g.sync.Online)

	// Events: in order, and deleted once acknowledged.
	evs := g.record(120)
	eventually(t, "every event", func() bool { return len(c.eventIDs()) == 120 })
	c.autoAck.Store(true)
	eventually(t, "the outbox emptied", func() bool { return g.depth() == 0 })
	if ids := c.eventIDs(); ids[0] != evs[0].EventID || ids[119] != evs[119].EventID {
		t.Error("events out of order")
	}

	// A cut connection: the will, then a newer birth; events recorded
	// meanwhile arrive.
	p.cut()
	more := g.record(5)
	eventually(t, "the will of the first session", func() bool {
		for _, w := range c.wills() {
			if w.Session == s1 {
				return true
			}
		}
		return false
	})
	eventually(t, "a birth of a newer session", func() bool { return c.lastSession() > s1 })
	eventually(t, "the events of the cut", func() bool { return g.depth() == 0 })
	got := map[string]bool{}
	for _, id := range c.eventIDs() {
		got[id] = true
	}
	for _, ev := range more {
		if !got[ev.EventID] {
			t.Errorf("event %d lost across the cut", ev.Seq)
		}
	}

	c.command(syncmsg.Command{ID: "open-1", Type: syncmsg.CmdOpen, Expires: time.Now().Add(10 * time.Second)})
	c.command(syncmsg.Command{ID: "open-1", Type: syncmsg.CmdOpen, Expires: time.Now().Add(10 * time.Second)})
	eventually(t, "both answers", func() bool { return len(c.results()["open-1"]) == 2 })
	if rs := c.results()["open-1"]; !rs[0].OK || rs[1].Error != syncmsg.RefusedDuplicate {
		t.Errorf("open-1 answers %+v", rs)
	}
	if n := len(g.lane.reads()); n != 1 {
		t.Errorf("%d opens executed, want 1", n)
	}
}

// hostPort takes host:port out of a tcp:// URL.
func hostPort(t *testing.T, url string) string {
	t.Helper()
	for _, p := range []string{"tcp://", "mqtt://"} {
		if len(url) > len(p) && url[:len(p)] == p {
			return url[len(p):]
		}
	}
	t.Fatalf("PARKING_TEST_MQTT_URL %q: want tcp://host:port", url)
	return ""
}
