// Package retention erases the personal data of finished reservations once
// they have been finished for longer than retention.personal_data: their
// plates, token hashes, payment-method and customer references, idempotency
// records, and the plates in the change log and in gate events
// (store.Eraser says exactly what). The money records and the counts stay.
//
// centrald runs it as a supervised service (Service), and `centrald prune`
// runs it once, or with --dry-run only counts.
package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/clock"
)

// Defaults of Service.
const (
	// DefaultInterval: how often the service looks for data past its
	// retention. Retention is counted in days; an hour late is nothing.
	DefaultInterval = time.Hour
	// DefaultBatch bounds one transaction, so that erasing a backlog
	// (the first run on years of history) never holds the database's
	// write lock for long: bookings go on between batches.
	DefaultBatch = 500
)

// Bounds of retention.personal_data.
const (
	// MinKeep: the gates keep a finished reservation (its plate included)
	// for a week after its window as a revocation (gate/localdb's
	// DefaultRetention); a shorter retention could not be kept there.
	MinKeep = 7 * 24 * time.Hour
	// MaxKeep: ten years.
	MaxKeep = 10 * 366 * 24 * time.Hour
)

// ParseKeep reads retention.personal_data: "off" (keep personal data for
// ever), a Go duration ("2160h") or a number of days ("90d"), from MinKeep
// to MaxKeep. It returns 0 for "off".
func ParseKeep(s string) (time.Duration, error) {
	v := strings.TrimSpace(s)
	if strings.EqualFold(v, "off") {
		return 0, nil
	}
	var (
		d   time.Duration
		err error
	)
	if days, ok := strings.CutSuffix(v, "d"); ok {
		var n int
		if n, err = strconv.Atoi(days); err == nil {
			d = time.Duration(n) * 24 * time.Hour
		}
	} else {
		d, err = time.ParseDuration(v)
	}
	if err != nil || d < MinKeep || d > MaxKeep {
		return 0, fmt.Errorf("retention.personal_data %q: want a duration from 7d (168h, as long as the gates keep a finished reservation) to 3660d, such as 90d or 2160h, or off to keep personal data for ever", s)
	}
	return d, nil
}

// Erase erases everything finished (or, for gate events, received) before
// before, in batches of batch, and returns what it erased in all. On an
// error it returns what the batches before it erased.
func Erase(ctx context.Context, st store.Eraser, before time.Time, batch int) (store.Erasure, error) {
	var total store.Erasure
	for {
		e, err := st.ErasePersonalData(ctx, before, batch)
		if err != nil {
			return total, err
		}
		total.Add(e)
		if e.Zero() {
			return total, nil
		}
	}
}

// Service erases personal data past its retention every Interval, from
// its start on. With several centrald instances on one PostgreSQL
// database every instance runs it: the store's batches skip rows another
// instance is erasing, so each row is erased once.
type Service struct {
	Store store.Eraser
	Clock clock.Clock
	// Keep is retention.personal_data (> 0; "off" runs no Service).
	Keep     time.Duration
	Interval time.Duration // DefaultInterval if zero
	Batch    int           // DefaultBatch if zero
	Log      *slog.Logger
}

// Serve implements the service contract of internal/service. A failed run
// is logged and tried again at the next interval: what it missed is still
// due then.
func (s *Service) Serve(ctx context.Context) error {
	if s.Keep <= 0 {
		return errors.New("retention: no retention period")
	}
	interval, batch := s.Interval, s.Batch
	if interval <= 0 {
		interval = DefaultInterval
	}
	if batch <= 0 {
		batch = DefaultBatch
	}
	for {
		start := s.Clock.Now()
		before := start.Add(-s.Keep)
		e, err := Erase(ctx, s.Store, before, batch)
		if !e.Zero() {
			s.Log.Info("personal data erased", append(Attrs(e), "finishedBefore", before.UTC().Format(time.RFC3339),
				"took", s.Clock.Now().Sub(start).Round(time.Millisecond))...)
		}
		if err != nil && ctx.Err() == nil {
			s.Log.Error("erasing personal data failed; trying again later", "err", err)
		}
		t := s.Clock.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C():
		}
	}
}

// Attrs are e's counts as log attributes: counts and times only, never
// what was erased.
func Attrs(e store.Erasure) []any {
	a := []any{"reservations", e.Reservations, "paymentAttempts", e.Attempts, "changes", e.Changes, "gateEvents", e.GateEvents, "notes", e.Notes}
	if !e.OldestEnded.IsZero() {
		a = append(a, "oldestEnded", e.OldestEnded.UTC().Format(time.RFC3339), "newestEnded", e.NewestEnded.UTC().Format(time.RFC3339))
	}
	if !e.OldestReceived.IsZero() {
		a = append(a, "oldestEvent", e.OldestReceived.UTC().Format(time.RFC3339), "newestEvent", e.NewestReceived.UTC().Format(time.RFC3339))
	}
	return a
}
