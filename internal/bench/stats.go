package bench

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"time"
)

// Sample is one measured request: when it started, how long it took and
// how it ended. Code is the HTTP status (or the status the in-process call
// stands for); 0 means the request got no answer, and Err says why.
type Sample struct {
	Start   time.Time
	Latency time.Duration
	Code    int
	Route   string // which kind of request, for per-route figures
	Err     string
}

// Latency holds exact percentiles of a set of durations.
type Latency struct {
	P50, P99, P999, Max time.Duration
}

// Percentile returns the q-quantile (0 < q ≤ 1) of sorted, ascending
// durations by the nearest-rank method: the smallest value such that at
// least q of all values are less than or equal to it. It interpolates
// nothing, so the answer is always one of the measured values; with fewer
// than 1/(1-q) values the q-quantile is the maximum. It returns 0 for no
// values.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	// The epsilon keeps q·n = 999.0000000000001 (0.999 is not exact in
	// binary) from rounding up to the next rank.
	rank := int(math.Ceil(q*float64(n) - 1e-9))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

// LatencyOf computes the percentiles of ds, sorting it in place.
func LatencyOf(ds []time.Duration) Latency {
	slices.Sort(ds)
	if len(ds) == 0 {
		return Latency{}
	}
	return Latency{
		P50:  Percentile(ds, 0.50),
		P99:  Percentile(ds, 0.99),
		P999: Percentile(ds, 0.999),
		Max:  ds[len(ds)-1],
	}
}

// Summary is what one measured run reports.
type Summary struct {
	Label string
	// Workers is the number of closed-loop workers; 0 for a fixed-rate run.
	Workers int
	// Rate is the offered rate of a fixed-rate run in requests per second;
	// 0 for a closed loop.
	Rate     int
	Requests int
	// Elapsed runs from the start of the measured window to the end of the
	// last request in it.
	Elapsed    time.Duration
	Throughput float64 // requests per second over Elapsed
	Latency    Latency
	// Codes counts answers by status; 0 counts requests that got none.
	Codes map[int]int
	// ByCode holds the latency of the requests with each status.
	ByCode map[int]Latency
	// Errors counts the answers that are not ok for the scenario.
	Errors int
	// ErrorSamples are up to three distinct error descriptions.
	ErrorSamples []string
}

// Summarize reduces the samples that started at or after from (the end of
// the warm-up) to a Summary; ok says which statuses are a correct answer.
func Summarize(label string, samples []Sample, from time.Time, ok func(code int) bool) Summary {
	s := Summary{Label: label, Codes: map[int]int{}, ByCode: map[int]Latency{}}
	var (
		all    []time.Duration
		byCode = map[int][]time.Duration{}
		end    time.Time
		seen   = map[string]bool{}
	)
	for _, x := range samples {
		if x.Start.Before(from) {
			continue
		}
		all = append(all, x.Latency)
		byCode[x.Code] = append(byCode[x.Code], x.Latency)
		s.Codes[x.Code]++
		if e := x.Start.Add(x.Latency); e.After(end) {
			end = e
		}
		if !ok(x.Code) {
			s.Errors++
			msg := x.Err
			if msg == "" {
				msg = "status " + strconv.Itoa(x.Code)
			}
			if !seen[msg] && len(s.ErrorSamples) < 3 {
				seen[msg] = true
				s.ErrorSamples = append(s.ErrorSamples, msg)
			}
		}
	}
	s.Requests = len(all)
	if s.Requests > 0 {
		s.Elapsed = end.Sub(from)
		if s.Elapsed > 0 {
			s.Throughput = float64(s.Requests) / s.Elapsed.Seconds()
		}
	}
	s.Latency = LatencyOf(all)
	for c, ds := range byCode {
		s.ByCode[c] = LatencyOf(ds)
	}
	return s
}

// SortedCodes returns the statuses of s in ascending order.
func (s Summary) SortedCodes() []int {
	cs := make([]int, 0, len(s.Codes))
	for c := range s.Codes {
		cs = append(cs, c)
	}
	sort.Ints(cs)
	return cs
}

// OK reports whether code is in codes; it builds the ok functions that
// Summarize takes.
func OK(codes ...int) func(int) bool {
	return func(c int) bool { return slices.Contains(codes, c) }
}

// Segment is a slice of a fixed-rate run: its figures, the GET /parkings
// figures within it, and how many reservations had been created (201)
// by its end, warm-up included.
type Segment struct {
	Summary
	List    Summary
	Created int
}

// segments cuts the measured window [from, from+dur) into n equal parts.
func segments(samples []Sample, from time.Time, dur time.Duration, n int, ok func(int) bool) []Segment {
	if n < 1 || dur <= 0 {
		return nil
	}
	step := dur / time.Duration(n)
	parts := make([][]Sample, n)
	lists := make([][]Sample, n)
	created := make([]int, n)
	for _, x := range samples {
		if x.Code == 201 {
			for i := range n {
				if x.Start.Before(from.Add(time.Duration(i+1) * step)) {
					created[i]++
				}
			}
		}
		if x.Start.Before(from) {
			continue
		}
		i := min(int(x.Start.Sub(from)/step), n-1)
		parts[i] = append(parts[i], x)
		if x.Route == routeList {
			lists[i] = append(lists[i], x)
		}
	}
	out := make([]Segment, n)
	for i := range n {
		start := from.Add(time.Duration(i) * step)
		label := fmt.Sprintf("%s–%s", secs(time.Duration(i)*step), secs(time.Duration(i+1)*step))
		out[i] = Segment{
			Summary: Summarize(label, parts[i], start, ok),
			List:    Summarize(label, lists[i], start, ok),
			Created: created[i],
		}
	}
	return out
}

func secs(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + " s"
}
