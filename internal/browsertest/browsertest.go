// Package browsertest starts the headless Chromium that the console's
// browser tests drive with chromedp. The browser is named by
// PARKING_TEST_CHROMIUM (.ci/run sets it); without it the tests skip.
//
// The flags are the ones that work on a machine without network: without
// the background-networking ones Chromium keeps trying to reach Google's
// services, and without a fresh profile directory runs would share state.
package browsertest

import (
	"context"
	"os"
	"testing"

	"github.com/chromedp/chromedp"
)

// Env names the variable that holds the Chromium binary.
const Env = "PARKING_TEST_CHROMIUM"

// Start starts headless Chromium with a window of width × height and
// returns its context; the browser is closed when the test ends. It skips
// the test when Env is not set.
func Start(t testing.TB, width, height int) context.Context {
	t.Helper()
	path := os.Getenv(Env)
	if path == "" {
		t.Skip(Env + " is not set (e.g. /usr/bin/chromium): browser tests skipped")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	// chromedp reports DevTools events it does not know (newer Chromium
	// sends some): noise, not failures.
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(func(string, ...any) {}))
	t.Cleanup(func() { _ = chromedp.Cancel(ctx); cancel(); cancelAlloc() })
	// The first Run starts the browser, which lives as long as the
	// context it ran with: this one, not a step's shorter deadline.
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	return ctx
}
