package centralsync_test

import (
	"crypto/rand"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/sync/syncmsg"
)

// Every part of a snapshot echoes the id of the sync request it answers,
// and a request made while a snapshot for the gate is on its way is
// answered after it, with its own id: a gate that asked again (its answer
// slow or lost) gets an answer it can match, not only the earlier one.
func TestSnapshotsEchoTheirRequest(t *testing.T) {
	e := newEnv(t, startBroker(t, "127.0.0.1:0").url())
	// Large enough that the second request arrives while the first
	// snapshot is being built or sent (the rule holds either way).
	const n = 1000
	rs := make([]reservation.Reservation, n)
	now := e.clk.Now()
	for i := range rs {
		w := e.window(float64(1+i/100), 1)
		rs[i] = reservation.Reservation{ID: strings.ToLower(rand.Text()[:16]), SpotID: strconv.Itoa(1 + i%100), State: reservation.Paid,
			Source: reservation.SourceOperator, From: w.From, Until: w.Until, CreatedAt: now, PaidAt: now, CarID: fmt.Sprintf("X %04d", i)}
	}
	e.insert(rs...)
	v := e.caughtUp()
	g := connectGate(t, e.url, e.topics, "g1")
	for _, id := range []string{"g1-first", "g1-again"} {
		p, err := syncmsg.EncodeSyncRequest(syncmsg.SyncRequest{ID: id, Have: 0, Reason: syncmsg.ReasonGap})
		if err != nil {
			t.Fatal(err)
		}
		g.publish(e.topics.Sync("g1"), p, false)
	}
	answered := map[string]bool{}
	asm := map[string]*syncmsg.Assembler{}
	for len(answered) < 2 {
		m := next(t, g.snapshots, "the snapshots answering both requests")
		part, err := syncmsg.DecodeSnapshotPart(m.payload)
		if err != nil {
			t.Fatal(err)
		}
		if part.Request != "g1-first" && part.Request != "g1-again" {
			t.Fatalf("snapshot %s part %d answers request %q, want one of the requests sent", part.ID, part.Part, part.Request)
		}
		a := asm[part.Request]
		if a == nil {
			a = &syncmsg.Assembler{}
			asm[part.Request] = a
		}
		entries, version, done, err := a.Add(part)
		if err != nil {
			t.Fatal(err)
		}
		if done {
			if len(entries) != n || version != v {
				t.Errorf("the answer to %s: %d entries at %d, want %d at %d", part.Request, len(entries), version, n, v)
			}
			answered[part.Request] = true
		}
	}
}
