package localdb

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"
)

// A finished reservation stays in the cache as a revocation for
// DefaultRetention after its window, then Prune drops it: no lookup finds
// its plate any more, and neither do the database's files.
func TestPruneLeavesNoPlate(t *testing.T) {
	ctx := context.Background()
	db, path := openTemp(t)
	const car, plate = "GT-123 AB", "GT123AB"
	from := t0
	paid := entry("r1", car, StatePaid, from, 2*time.Hour)
	if err := db.ApplySnapshot(ctx, 1, []Entry{paid, entry("r2", "OTHER 1", StatePaid, from.Add(30*24*time.Hour), time.Hour)}); err != nil {
		t.Fatal(err)
	}
	left := paid
	left.State = StateLeft
	if _, err := db.ApplyChange(ctx, Change{Prev: 1, Version: 2, Entry: left}); err != nil {
		t.Fatal(err)
	}
	// Kept as the record that the car left, for a while.
	if es, err := db.ByPlate(ctx, plate); err != nil || len(es) != 1 || es[0].State != StateLeft {
		t.Fatalf("ByPlate right after the car left = %+v, %v", es, err)
	}
	if _, err := db.Prune(ctx, from.Add(2*time.Hour+DefaultRetention-time.Hour), 0); err != nil {
		t.Fatal(err)
	}
	if es, _ := db.ByPlate(ctx, plate); len(es) != 1 {
		t.Fatalf("pruned before the retention was over: %+v", es)
	}

	if _, err := db.Prune(ctx, from.Add(2*time.Hour+DefaultRetention+time.Hour), 0); err != nil {
		t.Fatal(err)
	}
	if es, err := db.ByPlate(ctx, plate); err != nil || len(es) != 0 {
		t.Errorf("ByPlate after the retention = %+v, %v; want nothing", es, err)
	}
	if _, ok, _ := db.Lookup(ctx, "r1"); ok {
		t.Error("the finished reservation is still cached")
	}
	if _, ok, _ := db.Lookup(ctx, "r2"); !ok {
		t.Error("a future reservation was pruned")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{plate, car} {
			if bytes.Contains(b, []byte(p)) {
				t.Errorf("%s still holds the plate %q (deleted rows left in free pages)", f, p)
			}
		}
	}
}
