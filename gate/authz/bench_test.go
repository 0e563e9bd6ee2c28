package authz

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/parkgate/parkgate/gate/localdb"
	"github.com/parkgate/parkgate/ticket"
)

// benchLane is a lane's database with a 10,000-reservation cache, the size
// the issue's latency target is stated for.
func benchLane(b *testing.B) (*localdb.DB, *ticket.Verifier, []string) {
	ctx := context.Background()
	db, err := localdb.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	s := signer(b, 7)
	v, _ := ticket.NewVerifier(s.PublicKey())
	const n = 10_000
	entries := make([]localdb.Entry, n)
	codes := make([]string, n)
	for i := range entries {
		id := fmt.Sprintf("res-%06d", i)
		entries[i] = localdb.Entry{ReservationID: id, SpotID: fmt.Sprint(i % 500), From: from, Until: until,
			CarID: fmt.Sprintf("B-XY %d", i), State: localdb.StatePaid}
		code, err := s.Issue(ticket.Ticket{ReservationID: id, SpotID: entries[i].SpotID, From: from, Until: until, CarID: entries[i].CarID})
		if err != nil {
			b.Fatal(err)
		}
		codes[i] = code
	}
	if err := db.ApplySnapshot(ctx, 1, entries); err != nil {
		b.Fatal(err)
	}
	return db, v, codes
}

// BenchmarkDecideTicket is the decision alone: signature, cache, presence.
func BenchmarkDecideTicket(b *testing.B) {
	db, v, codes := benchLane(b)
	ctx := context.Background()
	now := from.Add(30 * time.Minute)
	i := 0
	for b.Loop() {
		d := Decide(ctx, Input{Role: localdb.RoleEntry, Source: localdb.SourceQR, Code: codes[i%len(codes)],
			Now: now, ClockTrusted: true, Verifier: v, Cache: db})
		if !d.Granted {
			b.Fatal(d.Reason)
		}
		i++
	}
}

// BenchmarkDecidePlate is a plate decision on the same cache.
func BenchmarkDecidePlate(b *testing.B) {
	db, v, _ := benchLane(b)
	ctx := context.Background()
	now := from.Add(30 * time.Minute)
	i := 0
	for b.Loop() {
		d := Decide(ctx, Input{Role: localdb.RoleEntry, Source: localdb.SourcePlate, Plate: fmt.Sprintf("bxy%d", i%10_000),
			Now: now, ClockTrusted: true, Verifier: v, Cache: db})
		if !d.Granted {
			b.Fatal(d.Reason)
		}
		i++
	}
}

// BenchmarkDecideAndRecord is what stands between a scan and the relay:
// the decision and its durable record (an fsync per decision).
func BenchmarkDecideAndRecord(b *testing.B) {
	db, v, codes := benchLane(b)
	ctx := context.Background()
	now := from.Add(30 * time.Minute)
	i := 0
	for b.Loop() {
		d := Decide(ctx, Input{Role: localdb.RoleEntry, Source: localdb.SourceQR, Code: codes[i%len(codes)],
			Now: now, ClockTrusted: true, Verifier: v, Cache: db})
		if _, err := db.Record(ctx, d.Event("entry-1"), d.Presence); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
