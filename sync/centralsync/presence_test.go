package centralsync_test

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/sync/centralsync"
	"github.com/parkgate/parkgate/sync/syncmsg"
)

func TestPresenceAfterARestart(t *testing.T) {
	testPresenceAfterARestart(t, startBroker(t, "127.0.0.1:0").url())
}

func TestPresenceAfterARestartMosquitto(t *testing.T) {
	url := os.Getenv("PARKING_TEST_MQTT_URL")
	if url == "" {
		t.Skip("PARKING_TEST_MQTT_URL is not set (e.g. tcp://127.0.0.1:1883): skipping the scenario against an external Mosquitto")
	}
	testPresenceAfterARestart(t, url)
}

// testPresenceAfterARestart: centrald restarts on a broker that stays up
// (an external one) and still holds two retained births: one of a gate
// that is connected, one of a gate whose connection ended without a will
// (as when a broker restarts from its retained messages on disk, or
// centrald's embedded broker died with the gate's connection). The
// restarted centrald shows online only the gate that announces itself on
// its new connection, which a connected gate does when central's birth
// comes; the other one is offline, although the gates table said online
// before the restart and its retained birth says so still.
func testPresenceAfterARestart(t *testing.T, url string) {
	e := newEnv(t, url)
	gone := connectGate(t, url, e.topics, "gone")
	gone.publish(e.topics.GateStatus("gone"), status("gone", true, 7, 1), true)
	alive := connectGate(t, url, e.topics, "alive", withWill(e.topics.GateStatus("alive"), status("alive", false, 3, 0)))
	alive.publish(e.topics.GateStatus("alive"), status("alive", true, 3, 1), true)
	waitUntil(t, "both gates online", func() bool {
		g, _ := e.gate("gone")
		a, _ := e.gate("alive")
		return g.Online && a.Online
	})
	// The connection ends without a will and leaves the retained birth.
	gone.c.Disconnect(0)
	var before int64 // the sessions of central so far
	for drained := false; !drained; {
		select {
		case r := <-alive.central:
			if s, err := syncmsg.DecodeCentralStatus(r.payload); err == nil {
				before = max(before, s.Session)
			}
		default:
			drained = true
		}
	}
	if before == 0 {
		t.Fatal("the gate never saw central's birth")
	}

	e.stop()
	restarted := time.Now()
	e.startRelay()
	// The connected gate answers the new central birth with its own, as
	// gatesync does.
	for end := time.After(wait); ; {
		select {
		case r := <-alive.central:
			s, err := syncmsg.DecodeCentralStatus(r.payload)
			if err != nil || !s.Online || r.retained || s.Session <= before {
				continue
			}
		case <-end:
			t.Fatalf("no central birth within %s", wait)
		}
		break
	}
	alive.publish(e.topics.GateStatus("alive"), status("alive", true, 3, 2), true)
	waitUntil(t, "the connected gate online after its birth", func() bool {
		a, _ := e.gate("alive")
		return a.Online && a.CacheVersion == 2 && a.LastSeen.After(restarted)
	})
	// Central handles presence in arrival order: whatever the restart did
	// to the gone gate is done by now.
	if g, _ := e.gate("gone"); g.Online {
		t.Errorf("a gate with no birth since centrald's restart is shown online: %+v", g)
	}
}

// The relay's connection attempt to a listener that accepts TCP but never
// answers CONNECT (a half-dead broker) is given up, and the relay is
// connected to the real broker within 5 s of it being back on that port,
// even when it comes back just as the hanging attempt began.
func TestRelayReconnectsWithin5sPastASilentListener(t *testing.T) {
	e := newEnv(t, startBroker(t, "127.0.0.1:0").url())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c // kept open and silent
		}
	}()
	defer func() {
		ln.Close()
		for len(accepted) > 0 {
			(<-accepted).Close()
		}
	}()
	addr := ln.Addr().String()
	r := centralsync.New(centralsync.Config{Site: e.site, URL: "tcp://" + addr}, e.st, e.svc, clock.Real{}, testLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	var first net.Conn
	select {
	case first = <-accepted:
	case <-time.After(wait):
		t.Fatal("the relay never tried the listener")
	}
	defer first.Close()
	ln.Close()
	startBroker(t, addr)
	back := time.Now()
	waitUntil(t, "the relay connected", r.Connected)
	if took := time.Since(back); took > 5*time.Second {
		t.Errorf("connected %s after the broker was back, want within 5s", took)
	}
}
