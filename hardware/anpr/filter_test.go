package anpr

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkgate/parkgate/clock/clocktest"
)

var t0 = time.Date(2025, 3, 11, 8, 0, 0, 0, time.UTC)

func read(plate string, conf float64) Read {
	return Read{Plate: Normalize(plate), Raw: plate, Confidence: conf}
}

func TestFilterConfidence(t *testing.T) {
	f := &Filter{MinConfidence: 0.8, Clock: clocktest.New(t0)}
	tests := []struct {
		r    Read
		ok   bool
		why  string
		note string
	}{
		{read("AA1", 0.79), false, ReasonLowConfidence, "under the threshold"},
		{read("AA2", 0.80), true, "", "at the threshold"},
		{read("AA3", 1), true, "", "certain"},
		{read("AA4", Unrated), true, "", "unrated reads pass by default"},
		{Read{Confidence: 0.9}, false, ReasonNoPlate, "no plate"},
		{Read{Raw: "k-lm 42", Confidence: 0.9}, true, "", "plate normalised from Raw"},
	}
	for _, tc := range tests {
		ok, why := f.Accept(tc.r)
		if ok != tc.ok || why != tc.why {
			t.Errorf("%s: Accept = %v, %q; want %v, %q", tc.note, ok, why, tc.ok, tc.why)
		}
	}

	strict := &Filter{MinConfidence: 0.5, RequireConfidence: true, Clock: clocktest.New(t0)}
	if ok, why := strict.Accept(read("AA4", Unrated)); ok || why != ReasonLowConfidence {
		t.Errorf("RequireConfidence: Accept(unrated) = %v, %q", ok, why)
	}
}

func TestFilterDuplicates(t *testing.T) {
	clk := clocktest.New(t0)
	f := &Filter{Window: 5 * time.Second, Clock: clk}
	step := func(d time.Duration, r Read, wantOK bool, wantWhy string) {
		t.Helper()
		clk.Advance(d)
		ok, why := f.Accept(r)
		if ok != wantOK || why != wantWhy {
			t.Errorf("at +%v Accept(%s) = %v, %q; want %v, %q", clk.Now().Sub(t0), r.Plate, ok, why, wantOK, wantWhy)
		}
	}
	step(0, read("KLM42", 0.9), true, "")
	step(200*time.Millisecond, read("k-lm 42", 0.9), false, ReasonDuplicate) // same plate, other spelling
	step(0, read("BMW1234", 0.9), true, "")                                  // another plate is independent
	// The camera keeps repeating the plate for 20 s: still one read, since
	// every repeat restarts the window.
	for range 20 {
		step(time.Second, read("KLM42", 0.95), false, ReasonDuplicate)
	}
	// Silent for just under a window: still the same car.
	step(4999*time.Millisecond, read("KLM42", 0.9), false, ReasonDuplicate)
	// Silent for a whole window: the car left and came back.
	step(5*time.Second, read("KLM42", 0.9), true, "")
}

// A blurred frame under the threshold neither passes nor hides the sharp
// frame that follows it.
func TestFilterLowConfidenceDoesNotStartTheWindow(t *testing.T) {
	clk := clocktest.New(t0)
	f := &Filter{MinConfidence: 0.7, Clock: clk}
	if ok, why := f.Accept(read("KLM42", 0.4)); ok || why != ReasonLowConfidence {
		t.Fatalf("blurred: %v %q", ok, why)
	}
	clk.Advance(100 * time.Millisecond)
	if ok, why := f.Accept(read("KLM42", 0.9)); !ok {
		t.Fatalf("sharp after blurred: %v %q", ok, why)
	}
}

func TestFilterDefaultsAndDisabled(t *testing.T) {
	clk := clocktest.New(t0)
	f := &Filter{Clock: clk} // Window zero: DefaultWindow
	f.Accept(read("KLM42", 0.9))
	clk.Advance(DefaultWindow - time.Millisecond)
	if ok, _ := f.Accept(read("KLM42", 0.9)); ok {
		t.Error("zero Window did not de-duplicate within DefaultWindow")
	}

	off := &Filter{Window: -1, Clock: clk}
	for i := range 3 {
		if ok, why := off.Accept(read("KLM42", 0.9)); !ok {
			t.Errorf("negative Window, read %d: %q", i, why)
		}
	}

	var zero Filter // the real clock
	if ok, _ := zero.Accept(read("KLM42", 0.9)); !ok {
		t.Error("zero Filter refused a first read")
	}
	if ok, why := zero.Accept(read("KLM42", 0.9)); ok || why != ReasonDuplicate {
		t.Errorf("zero Filter, immediate repeat: %v %q", ok, why)
	}
}

// A wall clock stepped back (NTP correcting a Pi that booted with a wrong
// date) must not turn every known plate into a duplicate until the clock
// catches up.
func TestFilterClockSetBack(t *testing.T) {
	clk := clocktest.New(t0)
	f := &Filter{Clock: clk}
	f.Accept(read("KLM42", 0.9))
	clk.Set(t0.Add(-2 * time.Second))
	if ok, _ := f.Accept(read("KLM42", 0.9)); ok {
		t.Error("a 2 s step back: the repeat was accepted")
	}
	clk.Set(t0.Add(-time.Hour))
	if ok, why := f.Accept(read("KLM42", 0.9)); !ok {
		t.Errorf("an hour's step back: %q", why)
	}
}

func TestFilterMemoryBounded(t *testing.T) {
	clk := clocktest.New(t0)
	f := &Filter{Clock: clk, MaxPlates: 10}
	for i := range 1000 {
		clk.Advance(time.Millisecond)
		if ok, why := f.Accept(read(fmt.Sprintf("P%d", i), 0.9)); !ok {
			t.Fatalf("plate %d: %q", i, why)
		}
		if n := len(f.seen); n > 10 {
			t.Fatalf("after %d plates the filter remembers %d", i+1, n)
		}
	}
	// The most recent plates are the ones remembered.
	if ok, _ := f.Accept(read("P999", 0.9)); ok {
		t.Error("the newest plate was forgotten")
	}

	// Plates not seen for a window are forgotten.
	g := &Filter{Clock: clk}
	for i := range 100 {
		g.Accept(read(fmt.Sprintf("Q%d", i), 0.9))
	}
	clk.Advance(DefaultWindow)
	g.Accept(read("LAST", 0.9))
	if n := len(g.seen); n != 1 {
		t.Errorf("a window later the filter still remembers %d plates", n)
	}
}

func TestFilterConcurrent(t *testing.T) {
	clk := clocktest.New(t0)
	f := &Filter{Clock: clk, MinConfidence: 0.5}
	var accepted atomic.Int32
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				if ok, _ := f.Accept(read("KLM42", 0.9)); ok {
					accepted.Add(1)
				}
				f.Accept(read(fmt.Sprintf("G%dN%d", g, i%50), 0.9))
			}
		}()
	}
	wg.Wait()
	if n := accepted.Load(); n != 1 {
		t.Errorf("one plate read 4000 times at one instant was accepted %d times, want 1", n)
	}
}
