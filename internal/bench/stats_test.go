package bench

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// msSeq returns 1 ms, 2 ms, … n ms.
func msSeq(n int) []time.Duration {
	ds := make([]time.Duration, n)
	for i := range ds {
		ds[i] = time.Duration(i+1) * time.Millisecond
	}
	return ds
}

func TestPercentileNearestRank(t *testing.T) {
	for _, c := range []struct {
		n    int
		q    float64
		want time.Duration // in ms
	}{
		{1000, 0.50, 500},
		{1000, 0.99, 990},
		{1000, 0.999, 999}, // 0.999·1000 is not exactly 999 in binary: must not round up
		{1000, 1, 1000},
		{1001, 0.999, 1000}, // rank ⌈999.999⌉ = 1000
		{2000, 0.999, 1998},
		{10, 0.999, 10}, // fewer than 1000 values: p99.9 is the maximum
		{10, 0.5, 5},
		{3, 0.5, 2},
		{1, 0.999, 1},
		{100, 0.99, 99},
		{101, 0.99, 100},
	} {
		if got := Percentile(msSeq(c.n), c.q); got != c.want*time.Millisecond {
			t.Errorf("Percentile(1..%d ms, %v) = %v, want %v ms", c.n, c.q, got, c.want)
		}
	}
	if got := Percentile(nil, 0.99); got != 0 {
		t.Errorf("Percentile(nil) = %v, want 0", got)
	}
}

func TestLatencyOfSortsItsInput(t *testing.T) {
	ds := msSeq(5000)
	rand.Shuffle(len(ds), func(i, j int) { ds[i], ds[j] = ds[j], ds[i] })
	l := LatencyOf(ds)
	want := Latency{P50: 2500 * time.Millisecond, P99: 4950 * time.Millisecond, P999: 4995 * time.Millisecond, Max: 5000 * time.Millisecond}
	if l != want {
		t.Errorf("LatencyOf = %+v, want %+v", l, want)
	}
	if (LatencyOf(nil) != Latency{}) {
		t.Error("LatencyOf(nil) is not zero")
	}
}

func TestSummarize(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	from := t0.Add(time.Second)
	var samples []Sample
	// Warm-up: ignored, whatever it holds.
	for i := range 100 {
		samples = append(samples, Sample{Start: t0.Add(time.Duration(i) * time.Millisecond), Latency: time.Hour, Code: 500})
	}
	// Measured: 10 per 10 ms for 2 s, 201 then nine 409s, each taking 1 ms.
	for i := range 2000 {
		code := 409
		if i%10 == 0 {
			code = 201
		}
		samples = append(samples, Sample{Start: from.Add(time.Duration(i) * time.Millisecond), Latency: time.Millisecond, Code: code})
	}
	samples = append(samples,
		Sample{Start: from, Latency: 2 * time.Millisecond, Code: 0, Err: "connection refused"},
		Sample{Start: from, Latency: 2 * time.Millisecond, Code: 0, Err: "connection refused"},
		Sample{Start: from, Latency: 3 * time.Millisecond, Code: 500},
	)
	s := Summarize("x", samples, from, OK(201, 409))
	if s.Requests != 2003 {
		t.Errorf("Requests = %d, want 2003 (warm-up excluded)", s.Requests)
	}
	if s.Codes[201] != 200 || s.Codes[409] != 1800 || s.Codes[0] != 2 || s.Codes[500] != 1 {
		t.Errorf("Codes = %v", s.Codes)
	}
	if s.Errors != 3 {
		t.Errorf("Errors = %d, want 3", s.Errors)
	}
	if len(s.ErrorSamples) != 2 || s.ErrorSamples[0] != "connection refused" || s.ErrorSamples[1] != "status 500" {
		t.Errorf("ErrorSamples = %q, want the two distinct errors", s.ErrorSamples)
	}
	// The last request starts at from+1999 ms and ends 1 ms later.
	if s.Elapsed != 2*time.Second {
		t.Errorf("Elapsed = %v, want 2s", s.Elapsed)
	}
	if s.Throughput < 1001 || s.Throughput > 1002 {
		t.Errorf("Throughput = %v, want 2003/2s", s.Throughput)
	}
	if s.Latency.P50 != time.Millisecond || s.Latency.Max != 3*time.Millisecond {
		t.Errorf("Latency = %+v", s.Latency)
	}
	if s.ByCode[201].P50 != time.Millisecond || s.ByCode[0].Max != 2*time.Millisecond {
		t.Errorf("ByCode = %+v", s.ByCode)
	}
	if got := s.SortedCodes(); len(got) != 4 || got[0] != 0 || got[3] != 500 {
		t.Errorf("SortedCodes = %v", got)
	}

	empty := Summarize("none", nil, from, OK(200))
	if empty.Requests != 0 || empty.Throughput != 0 || (empty.Latency != Latency{}) {
		t.Errorf("empty summary = %+v", empty)
	}
}

func TestSegments(t *testing.T) {
	from := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var samples []Sample
	// One 201 during the warm-up, then one request per 100 ms for 1 s:
	// reservations at even tenths, list reads at odd ones.
	samples = append(samples, Sample{Start: from.Add(-time.Millisecond), Code: 201, Route: routeReserve})
	for i := range 10 {
		s := Sample{Start: from.Add(time.Duration(i) * 100 * time.Millisecond), Latency: time.Duration(i+1) * time.Millisecond}
		if i%2 == 0 {
			s.Code, s.Route = 201, routeReserve
		} else {
			s.Code, s.Route = 200, routeList
		}
		samples = append(samples, s)
	}
	g := segments(samples, from, time.Second, 2, OK(200, 201))
	if len(g) != 2 {
		t.Fatalf("%d segments, want 2", len(g))
	}
	if g[0].Requests != 5 || g[1].Requests != 5 {
		t.Errorf("requests per segment = %d, %d, want 5, 5", g[0].Requests, g[1].Requests)
	}
	if g[0].Created != 4 || g[1].Created != 6 {
		t.Errorf("created = %d, %d, want 4 (warm-up + 3), 6", g[0].Created, g[1].Created)
	}
	if g[0].List.Requests != 2 || g[1].List.Latency.Max != 10*time.Millisecond {
		t.Errorf("list figures = %+v / %+v", g[0].List, g[1].List)
	}
	if g[1].Label != "0.5 s–1 s" {
		t.Errorf("label = %q", g[1].Label)
	}
}

func TestContentionRacesForFewWindows(t *testing.T) {
	now := time.Now()
	c := newContention(now, 500)
	type key struct {
		spot string
		from time.Time
	}
	seen := map[key]bool{}
	for i := range contendedEpoch * 3 {
		spot, w := c.next()
		n, err := strconv.Atoi(spot)
		epoch := i / contendedEpoch
		if first := epoch * contendedSpots; err != nil || n <= first || n > first+contendedSpots {
			t.Fatalf("request %d: spot %q outside its epoch's group %d-%d", i, spot, first+1, first+contendedSpots)
		}
		if !w.From.After(now) || !w.Until.After(w.From) || w.From.After(now.Add(MaxAdvanceHours*time.Hour)) {
			t.Fatalf("window %v not in (now, now+max_advance]", w)
		}
		start := c.base.Add(time.Duration(epoch) * contendedSpacing)
		if w.From.Before(start) || w.Until.After(start.Add(contendedSpacing)) {
			t.Fatalf("request %d: window %v outside its epoch starting %v", i, w, start)
		}
		seen[key{spot, w.From}] = true
	}
	// 3 epochs × 5 spots × 3 distinct starts at most.
	if len(seen) > 3*contendedSpots*3 {
		t.Errorf("%d distinct spot-windows: the pattern is not contended", len(seen))
	}

	// The groups come round again on a small site.
	c = newContention(now, 10)
	for i := range contendedEpoch * 3 {
		spot, _ := c.next()
		n, _ := strconv.Atoi(spot)
		if first := (i / contendedEpoch) % 2 * contendedSpots; n <= first || n > first+contendedSpots {
			t.Fatalf("10 spots, request %d: spot %s outside group %d-%d", i, spot, first+1, first+contendedSpots)
		}
	}
}

func TestRunLoopIsBounded(t *testing.T) {
	ctx := context.Background()
	start := time.Now()
	samples, from := runLoop(ctx, 4, 20*time.Millisecond, 50*time.Millisecond, func(context.Context) (int, string) {
		time.Sleep(time.Millisecond)
		return 201, ""
	})
	if took := time.Since(start); took > time.Second {
		t.Errorf("runLoop took %v for a 70 ms run", took)
	}
	if len(samples) == 0 {
		t.Fatal("no samples")
	}
	s := Summarize("loop", samples, from, OK(201))
	if s.Requests == 0 || s.Requests >= len(samples) {
		t.Errorf("%d measured of %d: the warm-up should hold some", s.Requests, len(samples))
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if samples, _ := runLoop(cctx, 4, 0, time.Minute, func(context.Context) (int, string) { return 201, "" }); len(samples) != 0 {
		t.Errorf("a cancelled loop ran %d times", len(samples))
	}
}

func TestRouteOf(t *testing.T) {
	for _, c := range []struct{ method, url, want string }{
		{"GET", "http://127.0.0.1:1/parkings", routeList},
		{"GET", "http://127.0.0.1:1/parkings/17", routeSpot},
		{"POST", "http://127.0.0.1:1/reserve/parking/3", routeReserve},
		{"GET", "http://127.0.0.1:1/healthz", "GET /healthz"},
		{"GET", "http://127.0.0.1:1/parkings?state=free", routeList},
		{"GET", "127.0.0.1:1/parkings", "GET ?"},
	} {
		if got := routeOf(c.method, c.url); got != c.want {
			t.Errorf("routeOf(%s %s) = %q, want %q", c.method, c.url, got, c.want)
		}
	}
}
