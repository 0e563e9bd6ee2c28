package gatesync

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/parkgate/parkgate/clock/clocktest"
	"github.com/parkgate/parkgate/gate/faults"
	"github.com/parkgate/parkgate/gate/lane"
	"github.com/parkgate/parkgate/gate/localdb"
)

// faultyLane is fakeLane with the gate's fault register in its status, as
// the real lane reports it.
type faultyLane struct {
	*fakeLane
	faults *faults.Register
}

func (l faultyLane) Status(ctx context.Context) (lane.Status, error) {
	st, err := l.fakeLane.Status(ctx)
	st.Faults = l.faults.Snapshot()
	return st, err
}

// A fault raised or cleared is published in a new birth at once, not at
// the next periodic check of the status: the sync's clock stands still
// here, so that check never comes.
func TestFaultChangePublishesBirthAtOnce(t *testing.T) {
	b := startMochi(t)
	site := uniqueSite(t)
	c := startCentral(t, b.url(), site, "centrald", "")
	dir := t.TempDir()
	db, err := localdb.Open(context.Background(), filepath.Join(dir, "gate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	clk := clocktest.New(time.Now().UTC().Truncate(time.Second))
	flt := faults.New(clk, nil)
	ln := faultyLane{fakeLane: &fakeLane{db: db}, faults: flt}
	ln.trusted.Store(true)
	cfg := testConfig(site, b.url())
	s := New(cfg, Deps{DB: db, Lane: ln, Sessions: FileSessions(filepath.Join(dir, "session")), Clock: clk,
		Log: testLog(t, slog.LevelInfo), StatusChanged: flt.Changed})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	eventually(t, "the first birth", func() bool { return len(c.births(0)) == 1 })
	if f := c.births(0)[0].Faults; f == nil || len(f) != 0 {
		t.Fatalf("first birth faults = %#v, want []", f)
	}
	// Past BirthInterval after the first birth, well before the next
	// periodic check (every second).
	clk.Advance(cfg.BirthInterval)
	flt.Set(faults.Record, errors.New("database or disk is full"), time.Time{})
	eventually(t, "a birth with the fault", func() bool {
		bs := c.births(0)
		f := bs[len(bs)-1].Faults
		return len(f) == 1 && f[0].Kind == faults.Record && f[0].Error == "database or disk is full" && f[0].Since.Equal(clk.Now())
	})
	clk.Advance(cfg.BirthInterval)
	flt.Clear(faults.Record)
	eventually(t, "a birth without it", func() bool {
		bs := c.births(0)
		return len(bs) == 3 && bs[2].Faults != nil && len(bs[2].Faults) == 0
	})
}
