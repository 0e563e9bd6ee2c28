package retention

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/central/store/sqlitestore"
	"github.com/parkgate/parkgate/clock/clocktest"

	"github.com/parkgate/parkgate/internal/syncbuf"
)

// The service erases what is due when it starts and, as time passes, what
// becomes due, in batches, and logs counts, never a plate.
func TestServiceErasesAsTimePasses(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	day := 24 * time.Hour
	now := time.Date(2031, 3, 1, 12, 0, 0, 0, time.UTC)
	clk := clocktest.New(now)
	if err := st.SetSpots(ctx, []string{"1"}, now.Add(-400*day)); err != nil {
		t.Fatal(err)
	}
	mk := func(id string, ended time.Time) reservation.Reservation {
		return reservation.Reservation{ID: id, SpotID: "1", State: reservation.Left, Source: reservation.SourceDriver,
			From: ended.Add(-2 * time.Hour), Until: ended.Add(time.Hour), CreatedAt: ended.Add(-3 * time.Hour),
			CarID: "SV123ICE", Amount: 500, Currency: "eur", EndedAt: ended, LeftAt: ended}
	}
	rs := []reservation.Reservation{mk("a", now.Add(-120*day)), mk("b", now.Add(-100*day)), mk("c", now.Add(-85*day))}
	if err := st.Write(ctx, func(tx store.Tx) error {
		for _, r := range rs {
			if err := tx.Insert(r); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	svc := &Service{Store: st, Clock: clk, Keep: 90 * day, Interval: time.Hour, Batch: 1,
		Log: slog.New(slog.NewJSONHandler(&logs, nil))}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Serve(runCtx) }()

	// A run is over once the service armed its timer for the next one.
	waitRun := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for clk.Timers() != 1 {
			if time.Now().After(deadline) {
				t.Fatal("the service did not finish a run within 10 s")
			}
			time.Sleep(time.Millisecond)
		}
	}
	plates := func() string {
		t.Helper()
		var s []string
		for _, id := range []string{"a", "b", "c"} {
			r, err := st.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			s = append(s, id+"="+r.CarID)
		}
		return strings.Join(s, " ")
	}
	waitRun()
	if got := plates(); got != "a= b= c=SV123ICE" {
		t.Fatalf("after the first run: %s; want a and b erased (finished 120 and 100 days ago), c kept (85)", got)
	}
	if n := strings.Count(logs.String(), `"msg":"personal data erased"`); n != 1 || !strings.Contains(logs.String(), `"reservations":2`) {
		t.Errorf("want one log line for the run, counting 2 reservations; got:\n%s", logs.String())
	}

	clk.Advance(4 * day) // c: 89 days
	waitRun()
	if got := plates(); got != "a= b= c=SV123ICE" {
		t.Fatalf("after 89 days: %s", got)
	}
	clk.Advance(day + time.Hour)
	waitRun()
	if got := plates(); got != "a= b= c=" {
		t.Fatalf("after 90 days: %s; want c erased too", got)
	}
	if n := strings.Count(logs.String(), `"msg":"personal data erased"`); n != 2 {
		t.Errorf("want a log line for each run that erased something (2); got:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "SV123ICE") {
		t.Errorf("the log holds a plate:\n%s", logs.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel: %v", err)
	}
}

func TestParseKeep(t *testing.T) {
	for in, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, "2160h": 2160 * time.Hour, "off": 0, " 7d ": MinKeep} {
		if got, err := ParseKeep(in); err != nil || got != want {
			t.Errorf("ParseKeep(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "0s", "6d", "167h", "3661d", "ninety days", "-90d", "90"} {
		if _, err := ParseKeep(in); err == nil || !strings.Contains(err.Error(), "retention.personal_data") {
			t.Errorf("ParseKeep(%q): err %v, want a clear refusal", in, err)
		}
	}
}
