package authz

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parkgate/parkgate/clock/clocktest"
)

func TestTrustedClock(t *testing.T) {
	floor := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name      string
		now       time.Time
		synced    bool
		newest    time.Time
		newestErr error
		want      string
		trusted   bool
		wantFloor time.Time
	}{
		{name: "ntp synchronised", now: now, synced: true, want: ClockNTPSynchronized, trusted: true, wantFloor: floor},
		{name: "ntp wins over a 1970 clock", now: time.Unix(0, 0), synced: true, want: ClockNTPSynchronized, trusted: true, wantFloor: floor},
		{name: "ntp wins over a poisoned newest", now: now, synced: true, newest: now.Add(24 * time.Hour), want: ClockNTPSynchronized, trusted: true, wantFloor: now.Add(24 * time.Hour)},
		{name: "after floor, nothing stored", now: now, want: ClockSane, trusted: true, wantFloor: floor},
		{name: "after floor and newest", now: now, newest: now.Add(-time.Hour), want: ClockSane, trusted: true, wantFloor: now.Add(-time.Hour)},
		{name: "slightly behind newest", now: now, newest: now.Add(3 * time.Second), want: ClockSane, trusted: true, wantFloor: now.Add(3 * time.Second)},
		{name: "went backwards", now: now, newest: now.Add(time.Hour), want: ClockWentBackwards, wantFloor: now.Add(time.Hour)},
		{name: "before floor (1970)", now: time.Unix(0, 0), want: ClockBeforeFloor, wantFloor: floor},
		{name: "newest unreadable", now: now, newestErr: errors.New("io"), want: ClockNewestUnreadable, wantFloor: floor},
	} {
		t.Run(c.name, func(t *testing.T) {
			var asked string
			tc := &TrustedClock{
				Clock: clocktest.New(c.now),
				Floor: floor,
				Exists: func(p string) bool {
					asked = p
					return c.synced
				},
				Newest: func(context.Context) (time.Time, error) { return c.newest, c.newestErr },
			}
			st := tc.Check(context.Background())
			if st.Why != c.want || st.Trusted != c.trusted || !st.Now.Equal(c.now) || !st.Floor.Equal(c.wantFloor) {
				t.Errorf("got %+v, want why=%s trusted=%v floor=%v", st, c.want, c.trusted, c.wantFloor)
			}
			if asked != DefaultSyncedPath {
				t.Errorf("checked %q, want %q", asked, DefaultSyncedPath)
			}
		})
	}
}

func TestTrustedClockZeroValueUsesTheRealFile(t *testing.T) {
	// Whatever this machine's NTP state, the real clock is after a zero
	// floor and nothing is stored: trusted one way or the other.
	st := (&TrustedClock{}).Check(context.Background())
	if !st.Trusted || (st.Why != ClockNTPSynchronized && st.Why != ClockSane) {
		t.Errorf("zero TrustedClock: %+v", st)
	}
	if bf := BuildFloor(); !bf.IsZero() && bf.After(time.Now()) {
		t.Errorf("build floor %v is in the future", bf)
	}
}
