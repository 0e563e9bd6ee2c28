package bench

import (
	"strings"
	"testing"
	"time"
)

// TestHistoryTargets: a route passes only with p99 on the history within
// 2× the empty database's and no errors on either; the Markdown says what
// was measured, prune's report included.
func TestHistoryTargets(t *testing.T) {
	sum := func(p99 time.Duration, errs int) Summary {
		return Summary{Label: routeSpot, Rate: 200, Requests: 1000, Errors: errs, Latency: Latency{P50: p99 / 4, P99: p99},
			Codes: map[int]int{200: 1000 - errs}}
	}
	cases := []struct {
		name string
		r    HistoryRoute
		pass bool
	}{
		{"within", HistoryRoute{routeSpot, sum(10*time.Millisecond, 0), sum(20*time.Millisecond, 0)}, true},
		{"too slow", HistoryRoute{routeSpot, sum(10*time.Millisecond, 0), sum(21*time.Millisecond, 0)}, false},
		{"errors", HistoryRoute{routeSpot, sum(10*time.Millisecond, 0), sum(10*time.Millisecond, 3)}, false},
		{"not run", HistoryRoute{routeSpot, Summary{}, Summary{}}, false},
	}
	for _, c := range cases {
		h := &HistoryReport{N: 1000, Spots: HistorySpots, Runs: []HistoryRun{{Store: "sqlite", Routes: []HistoryRoute{c.r}}}}
		ts := h.targets()
		if len(ts) != 1 || ts[0].Pass != c.pass {
			t.Errorf("%s: %+v, want pass %v", c.name, ts, c.pass)
		}
	}
	h := &HistoryReport{N: 1_000_000, Spots: HistorySpots, Duration: 10 * time.Second, Skip: "no PostgreSQL given",
		Runs: []HistoryRun{{Store: "sqlite", Routes: []HistoryRoute{cases[0].r}, PruneOut: "erased: 970000 reservations (plate, token hash)\n",
			Loaded: HistoryLoaded{Reservations: 1_000_000}, LoadTook: 500 * time.Second, SizeFull: 900 << 20}}}
	md := string((&Report{Plan: DefaultPlan(), History: h}).Markdown())
	for _, want := range []string{"## k. Ten years of history", "1,000,000 reservations", "| sqlite | GET /parkings/{id} | 200/s |",
		"2.00×", "erased: 970000 reservations", "PostgreSQL run skipped: no PostgreSQL given", "900.0 MiB"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if thousands(1234567) != "1,234,567" || thousands(999) != "999" || thousands(1000) != "1,000" {
		t.Errorf("thousands: %s %s %s", thousands(1234567), thousands(999), thousands(1000))
	}
}
