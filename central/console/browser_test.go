package console_test

import (
	"context"
	"flag"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parkgate/parkgate/central/booking"
	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/internal/browsertest"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "write the 500-spot screenshot to docs/console-500.png")

func chromium(t *testing.T) context.Context { return browsertest.Start(t, 1920, 1080) }

func browse(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Run(c, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestFiveHundredSpotsOnOneScreen: with 500 spots every tile is on a
// 1920×1080 screen without scrolling, and on a phone nothing runs off the
// side.
func TestFiveHundredSpotsOnOneScreen(t *testing.T) {
	ctx := chromium(t)
	spots := make([]string, 500)
	for i := range spots {
		spots[i] = strconv.Itoa(i + 1)
	}
	e := newEnv(t, clock.Real{}, false, spots...)
	// A lot in use: of 330 spots with a reservation, a third taken, a
	// third reserved now, a third reserved later.
	now := time.Now().UTC()
	var items []booking.PushItem
	for i := 0; i < 330; i++ {
		from := now.Add(-4 * time.Minute)
		if i%3 == 2 {
			from = now.Add(time.Duration(1+i%5) * time.Hour)
		}
		items = append(items, booking.PushItem{SpotID: spots[i*3/2], Window: reservation.Window{From: from, Until: from.Add(2 * time.Hour)},
			CarID: "B-" + strconv.Itoa(1000+i)})
	}
	if _, err := e.svc.Push(context.Background(), items); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 330; i += 3 {
		if _, err := e.svc.Force(context.Background(), spots[i*3/2], booking.StatusTaken); err != nil {
			t.Fatal(err)
		}
	}
	pw := e.operator("alice")
	var tiles int
	var bottom, height float64
	browse(t, ctx, "sign in",
		chromedp.Navigate(e.srv.URL+"/console/login"),
		chromedp.SendKeys(`#name`, "alice", chromedp.ByQuery),
		chromedp.SendKeys(`#password`, pw, chromedp.ByQuery),
		chromedp.Click(`#signin`, chromedp.ByQuery),
		chromedp.WaitVisible(`.tile[data-spot="500"]`, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll("#tiles .tile").length`, &tiles),
		chromedp.Evaluate(`document.getElementById("tiles").getBoundingClientRect().bottom`, &bottom),
		chromedp.Evaluate(`window.innerHeight`, &height),
	)
	if tiles != 500 {
		t.Fatalf("%d tiles, want 500", tiles)
	}
	if bottom > height {
		t.Errorf("the tiles end at %.0f px, below the %0.f px screen", bottom, height)
	}
	if *updateScreenshot {
		var png []byte
		browse(t, ctx, "screenshot", chromedp.Evaluate(`document.body.classList.add("still")`, nil),
			chromedp.CaptureScreenshot(&png))
		if err := os.WriteFile("../../docs/console-500.png", png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A phone: the page fits its width (it scrolls down, never sideways).
	var scrollW, innerW int
	browse(t, ctx, "phone",
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Reload(),
		chromedp.WaitVisible(`.tile[data-spot="500"]`, chromedp.ByQuery),
		chromedp.Evaluate(`document.documentElement.scrollWidth`, &scrollW),
		chromedp.Evaluate(`window.innerWidth`, &innerW),
	)
	if scrollW > innerW {
		t.Errorf("on a phone the page is %d px wide in a %d px window", scrollW, innerW)
	}
	if *updateScreenshot {
		var png []byte
		browse(t, ctx, "phone screenshot", chromedp.Evaluate(`document.body.classList.add("still")`, nil),
			chromedp.CaptureScreenshot(&png))
		if err := os.WriteFile("../../docs/console-phone.png", png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestKeyboard: a tile and the confirmation are reachable and usable by
// keyboard: Enter on a focused tile selects its spot, a live update keeps
// the focus where it is, and Escape closes the confirmation without
// acting.
func TestKeyboard(t *testing.T) {
	ctx := chromium(t)
	e := newEnv(t, clock.Real{}, false, "1", "2")
	id := e.reserve("2", 1)
	pw := e.operator("alice")
	var spot, focused string
	var open bool
	browse(t, ctx, "keyboard",
		chromedp.Navigate(e.srv.URL+"/console/login"),
		chromedp.SendKeys(`#name`, "alice", chromedp.ByQuery),
		chromedp.SendKeys(`#password`, pw+"\r", chromedp.ByQuery),
		chromedp.WaitVisible(`.tile[data-spot="2"]`, chromedp.ByQuery),
		chromedp.Focus(`.tile[data-spot="2"]`, chromedp.ByQuery),
		chromedp.KeyEvent("\r"),
		chromedp.Value(`#release-spot`, &spot, chromedp.ByQuery),
		chromedp.ActionFunc(func(context.Context) error { e.reserve("1", 2); return nil }),
		chromedp.Poll(`document.querySelector('.tile[data-spot="1"]').title.includes("reservation")`, nil),
		chromedp.Evaluate(`document.activeElement.dataset.spot || ""`, &focused),
		chromedp.SendKeys(`#cancel-id`, id+"\r", chromedp.ByQuery),
		chromedp.WaitVisible(`#confirm-reason`, chromedp.ByQuery),
		chromedp.KeyEvent("\x1b"),
		chromedp.WaitNotVisible(`#confirm-reason`, chromedp.ByQuery),
		chromedp.Evaluate(`document.getElementById("confirm").open`, &open),
	)
	if spot != "2" {
		t.Errorf("Enter on tile 2 selected %q", spot)
	}
	if focused != "2" {
		t.Errorf("after a live update the focus is on tile %q, want 2", focused)
	}
	if open {
		t.Error("Escape left the confirmation open")
	}
	if res, _ := e.st.Get(context.Background(), id); res.State != reservation.Reserved {
		t.Errorf("Escape cancelled the reservation: %s", res.State)
	}
}

// TestDisputeOnAnOpenPage: a dispute opened while the page is open (it
// has no change-log entry) shows under Needs attention and once in the
// feed, without a reload.
func TestDisputeOnAnOpenPage(t *testing.T) {
	ctx := chromium(t)
	e := newEnv(t, clock.Real{}, false, "1")
	id := e.reserve("1", 1)
	pw := e.operator("alice")
	var n int
	browse(t, ctx, "dispute",
		chromedp.Navigate(e.srv.URL+"/console/login"),
		chromedp.SendKeys(`#name`, "alice", chromedp.ByQuery),
		chromedp.SendKeys(`#password`, pw+"\r", chromedp.ByQuery),
		chromedp.WaitVisible(`#live.live:not(.off)`, chromedp.ByQuery),
		chromedp.ActionFunc(func(context.Context) error {
			e.write(func(tx store.Tx) error {
				return tx.PutPaymentException(store.PaymentException{ID: "evt_dp_page", Kind: store.ExceptionDispute, ReservationID: id,
					Amount: 500, Currency: "eur", ProviderRef: "dp_page", Reason: "fraudulent", CreatedAt: time.Now().UTC()})
			})
			return nil
		}),
		chromedp.WaitVisible(`#exceptions li[data-payment="evt_dp_page"]`, chromedp.ByQuery),
		// Shown under Needs attention means a state load rendered it
		// after the stream's event (which asks for that load) or before
		// it: the feed holds it once either way.
		chromedp.Evaluate(`[...document.querySelectorAll("#feed li")].filter((li) => li.textContent.includes("disputed")).length`, &n),
	)
	if n != 1 {
		t.Errorf("the dispute is %d times in the feed, want once", n)
	}
}
