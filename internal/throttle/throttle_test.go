package throttle

import (
	"testing"
	"time"

	"github.com/parkgate/parkgate/clock/clocktest"
)

// After Free refusals a key waits Lockout, doubling with each further
// refusal up to MaxLockout; other keys are not held up; a success clears.
func TestWaitDoublesUpToTheBound(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC))
	th := New(clk)
	for range Free - 1 {
		th.Fail("addr:a")
	}
	if d := th.Wait("addr:a"); d != 0 {
		t.Fatalf("after %d refusals: wait %s, want none", Free-1, d)
	}
	th.Fail("addr:a")
	if d := th.Wait("addr:a"); d != Lockout {
		t.Fatalf("after %d refusals: wait %s, want %s", Free, d, Lockout)
	}
	th.Fail("addr:a")
	if d := th.Wait("addr:a", "name:x"); d != 2*Lockout {
		t.Fatalf("one refusal more: wait %s, want %s", d, 2*Lockout)
	}
	for range 20 {
		th.Fail("addr:a")
	}
	if d := th.Wait("addr:a"); d != MaxLockout {
		t.Fatalf("many refusals: wait %s, want the bound %s", d, MaxLockout)
	}
	if d := th.Wait("addr:b"); d != 0 {
		t.Fatalf("another key waits %s", d)
	}
	clk.Advance(MaxLockout)
	if d := th.Wait("addr:a"); d != 0 {
		t.Fatalf("after the lockout: wait %s", d)
	}
	th.Succeed("addr:a")
	th.Fail("addr:a")
	if d := th.Wait("addr:a"); d != 0 {
		t.Fatalf("a success did not clear the count: wait %s", d)
	}
}

// Guessing many keys does not grow memory past maxKept once their waits
// are over.
func TestKeysAreForgotten(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC))
	th := New(clk)
	for i := range maxKept {
		th.Fail(string(rune('a'+i%26)) + time.Duration(i).String())
	}
	clk.Advance(time.Second)
	th.Fail("one more")
	if n := len(th.m); n != 1 {
		t.Fatalf("%d keys kept, want only the new one", n)
	}
}
