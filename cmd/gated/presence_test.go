package main

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// gateShownOnline asks centrald's GET /gates whether gate is shown online;
// ok is false when centrald does not answer (it is restarting).
func gateShownOnline(c *proc, gate string) (online, ok bool) {
	online, _, ok = gateShown(c, gate)
	return online, ok
}

// gateShown returns what GET /gates shows of gate.
func gateShown(c *proc, gate string) (online bool, lastSeen time.Time, ok bool) {
	req, _ := http.NewRequest("GET", c.base+"/gates", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, time.Time{}, false
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return false, time.Time{}, false
	}
	var gs []struct {
		ID       string    `json:"id"`
		Online   bool      `json:"online"`
		LastSeen time.Time `json:"lastSeen"`
	}
	if json.NewDecoder(res.Body).Decode(&gs) != nil {
		return false, time.Time{}, false
	}
	for _, g := range gs {
		if g.ID == gate {
			return g.Online, g.LastSeen, true
		}
	}
	return false, time.Time{}, true
}

// connects counts the connections the gate has logged (one per birth made
// at connect).
func (p *proc) connects() int { return strings.Count(p.logText(), "connected to the broker") }

// centrald (with its embedded broker) is SIGKILLed and started again on the
// same database and ports, ten times; each time the gate is SIGKILLed a
// random 0–10 s later, whether or not it has reconnected by then, and
// started again. Throughout, GET /gates shows the gate online only after a
// birth it made since the restart, shows it online within a second of
// that birth, and shows it offline within two keepalives of its death.
func TestPresenceAcrossCentraldRestarts(t *testing.T) {
	centraldBin, gatedBin := binaries(t)
	const (
		keepalive = 2 * time.Second
		rounds    = 10
		maxDelay  = 10 * time.Second
		// birthShown bounds the time from a birth (the gate's log line
		// follows its PUBACK) to GET /gates showing it.
		birthShown = time.Second
	)
	dir := t.TempDir()
	httpAddr, mqttAddr := freePort(t), freePort(t)
	cenv := []string{"PARKING_SITE=presence", "PARKING_HTTP_ADDR=" + httpAddr, "PARKING_MQTT_LISTEN=" + mqttAddr,
		"PARKING_DB_DSN=" + filepath.Join(dir, "c.db"), "PARKING_TICKETS_KEY_FILE=" + filepath.Join(dir, "t.key"),
		"PARKING_AUTH_ADMIN_TOKEN=" + admin}
	pw := addGate(t, centraldBin, cenv, "entry-1", "entry")
	c := start(t, centraldBin, cenv...)
	_, pub := c.call("GET", "/tickets/public-key", "", "")
	genv := []string{"PARKING_SITE=presence", "PARKING_HTTP_ADDR=127.0.0.1:0", "PARKING_GATE_ID=entry-1",
		"PARKING_DB_PATH=" + filepath.Join(dir, "g.db"), "PARKING_TICKETS_PUBLIC_KEY=" + pub["publicKey"].(string),
		"PARKING_MQTT_URL=tcp://" + mqttAddr, "PARKING_MQTT_PASSWORD=" + pw, "PARKING_MQTT_KEEPALIVE=" + keepalive.String()}
	g := start(t, gatedBin, genv...)
	online := func() bool { on, _ := gateShownOnline(c, "entry-1"); return on }
	waitUntil(t, "the gate online at centrald", 20*time.Second, online)

	// One delay from each tenth of 0–10 s, in random order, so that every
	// run has gates dying while centrald is down or starting, just after
	// it is back, and long after.
	delays := make([]time.Duration, rounds)
	for i, k := range rand.Perm(rounds) {
		delays[i] = time.Duration(k)*maxDelay/rounds + rand.N(maxDelay/rounds)
	}
	began := time.Now()
	for round := 1; round <= rounds; round++ {
		// The gate dies a random moment after centrald's SIGKILL: while
		// centrald is down or starting, before or after its reconnection.
		gate := g
		before := gate.connects() // connections made before the restart
		c.kill()
		restarted := time.Now() // every lastSeen the old centrald wrote is before this
		delay := delays[round-1]
		killed := make(chan time.Time, 1)
		time.AfterFunc(delay, func() {
			gate.cmd.Process.Signal(syscall.SIGKILL)
			killed <- time.Now()
		})
		c = start(t, centraldBin, cenv...)
		up := time.Now()
		t.Logf("round %d: centrald serving again %s after its SIGKILL", round, up.Sub(restarted).Round(time.Millisecond))
		var birthAt time.Time // when the gate's connection since the restart was first seen in its log
		shown := false
		for alive := true; alive; {
			select {
			case <-gate.done:
				alive = false
			default:
			}
			on, seen, ok := gateShown(c, "entry-1")
			if birthAt.IsZero() && gate.connects() > before {
				birthAt = time.Now()
			}
			if on && seen.Before(restarted) {
				// A birth applied by the new centrald has a lastSeen after
				// its start: this is the flag from before the restart.
				t.Fatalf("round %d: GET /gates shows the gate online, last seen %s before centrald's restart, with no birth since",
					round, restarted.Sub(seen).Round(time.Millisecond))
			}
			shown = shown || (ok && on)
			if alive && !birthAt.IsZero() && !shown && time.Since(birthAt) > birthShown {
				t.Fatalf("round %d: the gate made its birth %s ago and GET /gates does not show it online",
					round, time.Since(birthAt).Round(time.Millisecond))
			}
			if alive {
				time.Sleep(20 * time.Millisecond)
			}
		}
		died := <-killed
		// Dead before centrald was back: nobody could tell centrald then.
		from := later(died, up)
		end := from.Add(2 * keepalive)
		for {
			on, ok := gateShownOnline(c, "entry-1")
			if ok && !on {
				break
			}
			if time.Now().After(end) {
				t.Fatalf("round %d: the gate, SIGKILLed %s after centrald, still shown online %s after its death (keepalive %s)",
					round, delay.Round(time.Millisecond), time.Since(died).Round(time.Millisecond), keepalive)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("round %d: gate killed %s after centrald (%s centrald was serving; birth seen: %v); offline %s after that",
			round, delay.Round(time.Millisecond), map[bool]string{true: "before", false: "after"}[died.Before(up)],
			!birthAt.IsZero(), time.Since(from).Round(time.Millisecond))

		g = start(t, gatedBin, genv...)
		waitUntil(t, "the restarted gate online at centrald", 10*time.Second, online)
	}
	t.Logf("%d rounds in %s", rounds, time.Since(began).Round(time.Second))
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
