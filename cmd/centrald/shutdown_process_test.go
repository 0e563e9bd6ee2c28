package main

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/parkgate/parkgate/sync/syncmsg"
)

var mqttAddrRe = regexp.MustCompile(`"msg":"centrald started".*?"mqtt":"([^"]+)"`)

// SIGTERM under load: centrald stops within a few seconds, and a gate
// hears central's retained "offline" of the session it had seen born
// before the embedded broker goes. The relay says it through the broker
// on its way out; when every service was cancelled at once, the broker
// closed the relay's connection under that publish, which then waited
// for paho's 10 s write timeout (and the gates heard nothing).
func TestProcessSIGTERMSaysOfflineAndStopsPromptly(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir, "PARKING_SPOTS_COUNT=50", "PARKING_MQTT_ALLOW_ANONYMOUS=true")
	waitFor(t, "the relay connected as the leader", 30*time.Second, func() bool {
		return strings.Contains(p.logText(), "connected to the MQTT broker")
	})
	m := mqttAddrRe.FindStringSubmatch(p.logText())
	if m == nil {
		t.Fatalf("no MQTT address in the start line:\n%s", p.logText())
	}

	topics, err := syncmsg.NewTopics("demo")
	if err != nil {
		t.Fatal(err)
	}
	statuses := make(chan syncmsg.CentralStatus, 64)
	o := paho.NewClientOptions().AddBroker("tcp://" + m[1]).SetClientID("shutdown-watcher").
		SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connecting to the embedded broker: %v", tok.Error())
	}
	defer c.Disconnect(0)
	// The change stream too, as a gate takes it: the broker has
	// deliveries in flight when the stop comes.
	filters := map[string]byte{topics.CentralStatus(): 1, topics.Changes(): 1}
	if tok := c.SubscribeMultiple(filters, func(_ paho.Client, msg paho.Message) {
		if msg.Topic() != topics.CentralStatus() {
			return
		}
		if s, err := syncmsg.DecodeCentralStatus(msg.Payload()); err == nil {
			statuses <- s
		}
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribing: %v", tok.Error())
	}
	var born syncmsg.CentralStatus
	select {
	case born = <-statuses:
	case <-time.After(10 * time.Second):
		t.Fatal("no retained central status on the embedded broker")
	}
	if !born.Online {
		t.Fatalf("central's retained status: %+v, want online", born)
	}

	// Reservations flow while the stop comes.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		acked int
	)
	client := &http.Client{Timeout: 5 * time.Second}
	base := time.Now().Add(time.Hour).Truncate(time.Hour)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000 && ctx.Err() == nil; i++ {
				from := base.Add(time.Duration(i) * time.Hour)
				req, _ := http.NewRequestWithContext(ctx, "POST", fmt.Sprintf("%s/reserve/parking/%d", p.base, w*6+i%6+1),
					strings.NewReader(windowJSON(from, from.Add(time.Hour))))
				res, err := client.Do(req)
				if err != nil {
					return // stopped
				}
				res.Body.Close()
				if res.StatusCode == 201 {
					mu.Lock()
					acked++
					mu.Unlock()
				}
			}
		}()
	}
	waitFor(t, "reservations flowing", 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return acked >= 100
	})
	sent := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("centrald still running 15 s after SIGTERM:\n%s", p.logText())
	}
	took := time.Since(sent)
	cancel()
	wg.Wait()
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	// The bound: well under parkbench's 10 s and any service manager's
	// stop timeout; the broker waits at most 3 s for the relay. (A binary
	// built with -race, as here, also sleeps 1 s at exit.)
	if took > 5*time.Second {
		t.Errorf("centrald took %s to stop after SIGTERM, want under 5 s; its log:\n%s", took.Round(time.Millisecond), p.logText())
	}
	if strings.Contains(p.logText(), "services still stopping") {
		t.Errorf("a service held up the stop:\n%s", p.logText())
	}
	for {
		select {
		case s := <-statuses:
			if s.Online {
				continue
			}
			if s.Session != born.Session {
				t.Fatalf("offline for session %d, want the session born, %d", s.Session, born.Session)
			}
			t.Logf("stopped %s after SIGTERM with %d reservations taken; the watcher heard central offline", took.Round(time.Millisecond), acked)
			return
		case <-time.After(time.Second): // it came before the exit, or never
			t.Fatalf("no \"central offline\" reached the subscriber before centrald stopped; its log:\n%s", p.logText())
		}
	}
}
