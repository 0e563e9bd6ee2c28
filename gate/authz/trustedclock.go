package authz

import (
	"context"
	"os"
	"runtime/debug"
	"time"

	"github.com/parkgate/parkgate/clock"
)

// DefaultSyncedPath is the file systemd-timesyncd creates once it has
// synchronised the system clock (systemd 239 and later); it lives in /run,
// so it is gone after a reboot until the next synchronisation.
const DefaultSyncedPath = "/run/systemd/timesync/synchronized"

// DefaultBackwardsTolerance is how far the clock may read behind the
// newest trusted time stored before it counts as having gone back. A few
// seconds absorb clock adjustments and the gap between a stored event and
// the next check; a wrong clock after a reboot is off by far more.
const DefaultBackwardsTolerance = 5 * time.Second

// Why words of a ClockStatus: stable, shown in the gate's status.
const (
	// ClockNTPSynchronized: systemd reports the clock synchronised.
	ClockNTPSynchronized = "ntp_synchronized"
	// ClockSane: no NTP report, but the clock is after the floor and not
	// behind the newest trusted time stored.
	ClockSane = "sane"
	// ClockBeforeFloor: the clock reads before the build or configured
	// floor, e.g. 1970 on a Pi without RTC.
	ClockBeforeFloor = "before_floor"
	// ClockWentBackwards: the clock reads before the newest trusted time
	// the database stored, so it went back (a reboot without RTC that
	// restored an old time).
	ClockWentBackwards = "went_backwards"
	// ClockNewestUnreadable: the newest stored time could not be read, so
	// a clock that went back cannot be ruled out.
	ClockNewestUnreadable = "newest_unreadable"
)

// TrustedClock decides whether the wall clock is sane enough for time-window
// decisions (a Raspberry Pi boots with a wrong clock until NTP
// syncs). The clock is trusted when systemd reports it synchronised, or else
// when it reads after Floor and not before the newest trusted time the
// gate's database has stored (a clock that went backwards is untrusted).
//
// An NTP-synchronised clock is trusted even when it reads before the newest
// stored time: then it is the stored time that was wrong (written while a
// bad clock was briefly taken for good), and refusing the synchronised clock
// would keep the lane untrusted until real time caught up.
//
// Every field is optional and injectable for tests. The zero value checks
// the real clock against the systemd file only.
type TrustedClock struct {
	// Clock is the clock checked; nil means the real one.
	Clock clock.Clock
	// Floor is a time before which the clock is certainly wrong: the later
	// of gate.clock_floor and BuildFloor().
	Floor time.Time
	// SyncedPath is the file whose existence means "synchronised"; empty
	// means DefaultSyncedPath.
	SyncedPath string
	// Exists reports whether a file exists; nil means os.Stat.
	Exists func(path string) bool
	// Newest returns the newest trusted time stored (for the gate,
	// (*localdb.DB).NewestTime); nil means none is known.
	Newest func(ctx context.Context) (time.Time, error)
	// Tolerance is how far behind Newest the clock may read; zero means
	// DefaultBackwardsTolerance.
	Tolerance time.Duration
}

// ClockStatus is the outcome of a check.
type ClockStatus struct {
	// Trusted says whether time-window decisions may use Now.
	Trusted bool
	// Why is one of the Clock* words.
	Why string
	// Now is the clock's reading.
	Now time.Time
	// Floor is the latest time known to have passed: the later of the
	// configured floor and the newest stored time. Decide uses it (as
	// Input.TimeFloor) while the clock is not trusted.
	Floor time.Time
}

// Check reads the clock and decides.
func (c *TrustedClock) Check(ctx context.Context) ClockStatus {
	clk := c.Clock
	if clk == nil {
		clk = clock.Real{}
	}
	st := ClockStatus{Now: clk.Now(), Floor: c.Floor}
	var newest time.Time
	newestErr := error(nil)
	if c.Newest != nil {
		newest, newestErr = c.Newest(ctx)
		if newestErr == nil && newest.After(st.Floor) {
			st.Floor = newest
		}
	}
	path := c.SyncedPath
	if path == "" {
		path = DefaultSyncedPath
	}
	exists := c.Exists
	if exists == nil {
		exists = func(p string) bool { _, err := os.Stat(p); return err == nil }
	}
	tol := c.Tolerance
	if tol <= 0 {
		tol = DefaultBackwardsTolerance
	}
	switch {
	case exists(path):
		st.Trusted, st.Why = true, ClockNTPSynchronized
	case st.Now.Before(c.Floor):
		st.Why = ClockBeforeFloor
	case newestErr != nil:
		st.Why = ClockNewestUnreadable
	case !newest.IsZero() && st.Now.Before(newest.Add(-tol)):
		st.Why = ClockWentBackwards
	default:
		st.Trusted, st.Why = true, ClockSane
	}
	return st
}

// BuildFloor returns the commit time the binary was built from (the
// vcs.time the go command stamps into binaries built in a git checkout),
// or the zero time when the binary carries none. No clock reading before
// it can be right.
func BuildFloor() time.Time {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return time.Time{}
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.time" {
			if t, err := time.Parse(time.RFC3339, s.Value); err == nil {
				return t
			}
		}
	}
	return time.Time{}
}
