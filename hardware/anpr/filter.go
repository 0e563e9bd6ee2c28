package anpr

import (
	"sync"
	"time"

	"github.com/parkgate/parkgate/clock"
)

// DefaultWindow is the de-duplication window a Filter uses when Window is
// zero: the 5 seconds the QR scanner gets, which suits a
// camera too (it repeats a plate several times a second while the car is
// in the picture).
const DefaultWindow = 5 * time.Second

// DefaultMaxPlates is how many distinct plates a Filter remembers when
// MaxPlates is zero. A lane sees a handful of plates in any window, so
// this is only reached under a flood of misreads or garbage.
const DefaultMaxPlates = 1024

// The reason words Filter.Accept gives for a dropped read, for logs and
// metrics labels.
const (
	// ReasonLowConfidence: the camera was less sure than MinConfidence.
	ReasonLowConfidence = "low_confidence"
	// ReasonDuplicate: the plate was already read within the window.
	ReasonDuplicate = "duplicate"
	// ReasonNoPlate: the read has no plate (only hand-built reads can).
	ReasonNoPlate = "no_plate"
)

// Filter decides which reads reach the lane: it drops reads under a
// confidence threshold and repeats of a plate already read within a window.
// The zero value is usable (no threshold, DefaultWindow, the real clock);
// a Filter is safe for concurrent use and must not be copied after use.
//
// The window slides: every repeat of a plate restarts it, so a car that
// stands in front of the camera for a minute while the camera keeps
// reporting it is one read, not one every five seconds (a plate the
// camera repeats frame after frame is one read). The plate is
// accepted again once the camera has not reported it for a whole window,
// which is when a car that drove off comes back. The price is that a car
// waiting at a closed barrier is not decided again while it waits; the
// gate has other ways to open for it (an operator, a ticket scan).
//
// Duplicates are recognised by the normalised plate alone, whatever the
// camera or direction, so that two cameras on one lane count as one.
// Different readings of the same car ("KLM42", then "KLM4Z") are different
// plates to the filter; matching near-misses is the lane's business.
type Filter struct {
	// MinConfidence drops reads the camera scored lower (0..1).
	MinConfidence float64
	// RequireConfidence also drops reads that carry no confidence at all
	// (Unrated); by default they pass, see Unrated.
	RequireConfidence bool
	// Window is the de-duplication window; zero means DefaultWindow and a
	// negative value turns de-duplication off.
	Window time.Duration
	// Clock tells the time; nil means the real clock. The filter never
	// uses the camera's own timestamp, which may be wrong or reset.
	Clock clock.Clock
	// MaxPlates bounds how many plates are remembered; zero means
	// DefaultMaxPlates. Past it, the plate seen longest ago is forgotten.
	MaxPlates int

	mu    sync.Mutex
	seen  map[string]time.Time // plate → last time the camera reported it
	swept time.Time            // when expired plates were last forgotten
}

// Accept reports whether r should reach the lane and, when it should not,
// why: ReasonLowConfidence, ReasonDuplicate or ReasonNoPlate.
//
// A read under the threshold is dropped before the duplicate check and
// does not restart the window, so a blurred frame followed by a sharp one
// still lets the sharp one through.
func (f *Filter) Accept(r Read) (ok bool, why string) {
	plate := r.Plate
	if plate == "" {
		plate = Normalize(r.Raw)
	}
	if plate == "" {
		return false, ReasonNoPlate
	}
	if r.Confidence < 0 {
		if f.RequireConfidence {
			return false, ReasonLowConfidence
		}
	} else if r.Confidence < f.MinConfidence {
		return false, ReasonLowConfidence
	}

	window := f.Window
	if window == 0 {
		window = DefaultWindow
	}
	if window < 0 {
		return true, ""
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if f.seen == nil {
		f.seen = make(map[string]time.Time)
	}
	f.sweep(now, window)

	last, known := f.seen[plate]
	f.seen[plate] = now
	if known && within(now, last, window) {
		return false, ReasonDuplicate
	}
	return true, ""
}

func (f *Filter) now() time.Time {
	if f.Clock == nil {
		return time.Now()
	}
	return f.Clock.Now()
}

// within reports whether now and last are less than window apart. The
// distance is taken in either direction: the real clock is monotonic, but
// an injected one can be set back (a wall clock corrected by NTP), and a
// clock set back by an hour must not make every plate a duplicate for an
// hour.
func within(now, last time.Time, window time.Duration) bool {
	d := now.Sub(last)
	if d < 0 {
		d = -d
	}
	return d < window
}

// sweep forgets plates not seen for a window, at most once per window so
// that Accept stays cheap, and then, if too many remain, the plates seen
// longest ago. The map therefore holds at most MaxPlates plates.
func (f *Filter) sweep(now time.Time, window time.Duration) {
	limit := f.MaxPlates
	if limit <= 0 {
		limit = DefaultMaxPlates
	}
	if within(now, f.swept, window) && len(f.seen) < limit {
		return
	}
	f.swept = now
	for plate, last := range f.seen {
		if !within(now, last, window) {
			delete(f.seen, plate)
		}
	}
	for len(f.seen) >= limit {
		oldest, first := "", true
		var at time.Time
		for plate, last := range f.seen {
			if first || last.Before(at) {
				oldest, at, first = plate, last, false
			}
		}
		delete(f.seen, oldest)
	}
}
