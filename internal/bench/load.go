package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/parkgate/parkgate/central/reservation"
)

// maxSamples bounds every run in count as its duration bounds it in time.
const maxSamples = 2_000_000

// Routes, as the per-route figures name them.
const (
	routeList    = "GET /parkings"
	routeSpot    = "GET /parkings/{id}"
	routeReserve = "POST /reserve/parking/{id}"
)

// httpRun is one load run against a centrald.
type httpRun struct {
	targeter vegeta.Targeter
	// rate is the offered rate in requests per second; 0 runs a closed
	// loop of workers workers, each sending its next request when its
	// last one is answered.
	rate    int
	workers int
	warmup  time.Duration
	dur     time.Duration
	// ok says which statuses are correct answers; the bodies of the
	// others are kept (cut short) to say what went wrong.
	ok func(int) bool
	// maxRequests bounds a closed loop in count (0: maxSamples).
	maxRequests int
}

// runHTTP runs r and returns every result as a Sample, and the start of
// the measured window (the end of the warm-up). Results that started
// during the warm-up are in the samples too; Summarize drops them. A
// closed loop runs on closedLoop's lean client, a fixed rate on vegeta.
func runHTTP(ctx context.Context, r httpRun) ([]Sample, time.Time) {
	if r.rate == 0 {
		return closedLoop(ctx, r)
	}
	opts := []func(*vegeta.Attacker){
		vegeta.Client(&http.Client{Timeout: 10 * time.Second, Transport: loopbackTransport(64)}),
		vegeta.MaxBody(256),
		// Enough workers to keep the rate through a stall, but bounded.
		vegeta.Workers(16), vegeta.MaxWorkers(1024),
	}
	pacer := vegeta.ConstantPacer{Freq: r.rate, Per: time.Second}
	atk := vegeta.NewAttacker(opts...)
	began := time.Now()
	results := atk.Attack(r.targeter, pacer, r.warmup+r.dur, "parkbench")
	samples := make([]Sample, 0, 1024)
	done := ctx.Done()
	for res := range results {
		s := Sample{Start: res.Timestamp, Latency: res.Latency, Code: int(res.Code), Route: routeOf(res.Method, res.URL)}
		if !r.ok(s.Code) {
			s.Err = res.Error
			if len(res.Body) > 0 {
				s.Err = strings.TrimSpace(s.Err + " " + strings.TrimSpace(string(res.Body)))
			}
		}
		samples = append(samples, s)
		if len(samples) >= maxSamples {
			atk.Stop()
		}
		select {
		case <-done:
			atk.Stop()
			done = nil
		default:
		}
	}
	return samples, began.Add(r.warmup)
}

// runLoop runs op in a closed loop of workers goroutines for warmup+dur
// (and at most maxSamples times in all) and returns what each call took.
func runLoop(ctx context.Context, workers int, warmup, dur time.Duration, op func(context.Context) (code int, err string)) ([]Sample, time.Time) {
	return runWorkers(ctx, workers, warmup, dur, maxSamples, func() (func(time.Time) (Sample, bool), func()) {
		return func(t0 time.Time) (Sample, bool) {
			code, err := op(ctx)
			return Sample{Start: t0, Latency: time.Since(t0), Code: code, Err: err}, true
		}, nil
	})
}

// runWorkers is the closed loop under runLoop and closedLoop: workers
// goroutines, each calling the step that newWorker made for it, one step
// after the other, until warmup+dur has passed, ctx has ended, limit steps
// have started in all or the step says its worker stops. A step gets the
// time it started and returns its sample; done, if not nil, runs when its
// worker ends. It returns every sample and the end of the warm-up.
func runWorkers(ctx context.Context, workers int, warmup, dur time.Duration, limit int,
	newWorker func() (step func(t0 time.Time) (s Sample, goOn bool), done func())) ([]Sample, time.Time) {
	began := time.Now()
	deadline := began.Add(warmup + dur)
	var (
		wg    sync.WaitGroup
		count atomic.Int64
		per   = make([][]Sample, workers)
	)
	for i := range workers {
		wg.Go(func() {
			step, done := newWorker()
			if done != nil {
				defer done()
			}
			for ctx.Err() == nil && count.Add(1) <= int64(limit) {
				t0 := time.Now()
				if !t0.Before(deadline) {
					return
				}
				s, goOn := step(t0)
				per[i] = append(per[i], s)
				if !goOn {
					return
				}
			}
		})
	}
	wg.Wait()
	var all []Sample
	for _, s := range per {
		all = append(all, s...)
	}
	return all, began.Add(warmup)
}

// routeOf names the route of a request for the per-route figures. It
// runs once per request in the load generator, so it cuts the path out of
// the URL by hand instead of parsing it.
func routeOf(method, rawURL string) string {
	_, p, err := splitURL(rawURL)
	if err != nil {
		return method + " ?"
	}
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	switch {
	case method == http.MethodGet && p == "/parkings":
		return routeList
	case method == http.MethodGet && strings.HasPrefix(p, "/parkings/"):
		return routeSpot
	case method == http.MethodPost && strings.HasPrefix(p, "/reserve/parking/"):
		return routeReserve
	default:
		return method + " " + p
	}
}

// The contended pattern. Every request picks one of contendedSpots spots
// and one of contendedWindows, all overlapping, so that clients race for
// the same few spot-windows and most lose with 409. So that the race goes
// on for the whole run instead of every window filling up within the first
// second (after which every request would be a refusal and the winning
// path, the commit, would no longer be measured), after every
// contendedEpoch requests the set of windows moves contendedSpacing further
// into the future and the race moves to the next group of contendedSpots
// spots. Moving the spots too keeps each spot's history short: the store's
// overlap check scans every earlier reservation of a spot, so on five fixed
// spots each request would cost more than the one before, and the side
// that wins more often (the faster one) would slow itself down. The HTTP
// and the in-process runs use the same generator.
const (
	contendedSpots   = 5
	contendedEpoch   = 40
	contendedSpacing = 6 * time.Hour
)

// contendedWindows are offsets from the epoch's start. Per spot and epoch
// at most two can be held at once ([0,2h) with [2h,4h)).
var contendedWindows = [...]struct{ from, until time.Duration }{
	{0, 2 * time.Hour},
	{time.Hour, 3 * time.Hour},
	{2 * time.Hour, 4 * time.Hour},
	{0, 4 * time.Hour},
}

// contention generates the contended pattern; it is safe for concurrent
// use.
type contention struct {
	base      time.Time
	maxEpochs uint64
	groups    uint64 // groups of contendedSpots spots among the site's
	n         atomic.Uint64
}

// newContention returns the generator for a site of spots spots ("1" to
// spots; at least contendedSpots).
func newContention(now time.Time, spots int) *contention {
	base := now.UTC().Truncate(time.Hour).Add(24 * time.Hour)
	room := time.Duration(MaxAdvanceHours)*time.Hour - 48*time.Hour
	return &contention{base: base, maxEpochs: uint64(room / contendedSpacing), groups: uint64(max(spots/contendedSpots, 1))}
}

func (c *contention) next() (spot string, w reservation.Window) {
	n := c.n.Add(1) - 1
	// Past maxEpochs the windows come round again (and are all taken):
	// far beyond what a run of a few seconds sends.
	epoch := (n / contendedEpoch) % c.maxEpochs
	start := c.base.Add(time.Duration(epoch) * contendedSpacing)
	o := contendedWindows[rand.IntN(len(contendedWindows))]
	first := int(epoch%c.groups) * contendedSpots
	spot = strconv.Itoa(first + 1 + rand.IntN(contendedSpots))
	return spot, reservation.Window{From: start.Add(o.from), Until: start.Add(o.until)}
}

// futureHours draws random one-hour windows up to max_advance ahead, so
// that reservations spread over 500 spots almost never collide.
type futureHours struct {
	base  time.Time
	hours int
}

func newFutureHours(now time.Time) futureHours {
	return futureHours{base: now.UTC().Truncate(time.Hour).Add(24 * time.Hour), hours: MaxAdvanceHours - 48}
}

func (f futureHours) next() reservation.Window {
	from := f.base.Add(time.Duration(rand.IntN(f.hours)) * time.Hour)
	return reservation.Window{From: from, Until: from.Add(time.Hour)}
}

// reserveBody is the JSON body of POST /reserve/parking/{id}.
func reserveBody(w reservation.Window) []byte {
	return fmt.Appendf(nil, `{"reservedFrom":%q,"reservedUntil":%q}`,
		w.From.UTC().Format(time.RFC3339), w.Until.UTC().Format(time.RFC3339))
}

var jsonHeader = http.Header{"Content-Type": []string{"application/json"}}

func reserveTarget(t *vegeta.Target, base, spot string, w reservation.Window) {
	t.Method = http.MethodPost
	t.URL = base + "/reserve/parking/" + spot
	t.Body = reserveBody(w)
	t.Header = jsonHeader
}

// healthTargeter sends GET /healthz: the HTTP round trip with no work.
func healthTargeter(base string) vegeta.Targeter {
	return func(t *vegeta.Target) error {
		t.Method, t.URL = http.MethodGet, base+"/healthz"
		return nil
	}
}

// listTargeter sends GET /parkings.
func listTargeter(base string) vegeta.Targeter {
	return func(t *vegeta.Target) error {
		t.Method, t.URL = http.MethodGet, base+"/parkings"
		return nil
	}
}

// mixedTargeter sends 70% GET /parkings/{id}, 10% GET /parkings and 20%
// POST /reserve/parking/{id} over spots spots with random future windows.
func mixedTargeter(base string, spots int, hours futureHours) vegeta.Targeter {
	return func(t *vegeta.Target) error {
		*t = vegeta.Target{}
		switch r := rand.IntN(100); {
		case r < 70:
			t.Method, t.URL = http.MethodGet, base+"/parkings/"+strconv.Itoa(1+rand.IntN(spots))
		case r < 80:
			t.Method, t.URL = http.MethodGet, base+"/parkings"
		default:
			reserveTarget(t, base, strconv.Itoa(1+rand.IntN(spots)), hours.next())
		}
		return nil
	}
}

// contendedTargeter sends the contended pattern over HTTP.
func contendedTargeter(base string, c *contention) vegeta.Targeter {
	return func(t *vegeta.Target) error {
		spot, w := c.next()
		reserveTarget(t, base, spot, w)
		return nil
	}
}
