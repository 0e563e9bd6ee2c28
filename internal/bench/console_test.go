package bench

import (
	"strings"
	"testing"
	"time"
)

// TestConsoleTargets: section i passes only with the ratio within 1.5,
// every change delivered to every console and no errors, and its
// Markdown says what was measured.
func TestConsoleTargets(t *testing.T) {
	sum := func(p99 time.Duration) Summary {
		return Summary{Label: "x", Requests: 1000, Latency: Latency{P99: p99}, Codes: map[int]int{200: 1000}}
	}
	cases := []struct {
		name string
		rep  ConsoleReport
		pass bool
	}{
		{"within", ConsoleReport{Consoles: 50, Without: sum(10 * time.Millisecond), With: sum(15 * time.Millisecond), Complete: true}, true},
		{"too slow", ConsoleReport{Consoles: 50, Without: sum(10 * time.Millisecond), With: sum(16 * time.Millisecond), Complete: true}, false},
		{"a change lost", ConsoleReport{Consoles: 50, Without: sum(10 * time.Millisecond), With: sum(10 * time.Millisecond), Complete: false}, false},
		{"not run", ConsoleReport{Consoles: 50, Complete: true}, false},
		{"errors in a round not kept", ConsoleReport{Consoles: 50, Without: sum(10 * time.Millisecond), With: sum(10 * time.Millisecond), Complete: true, Errors: 1}, false},
	}
	for _, c := range cases {
		ts := c.rep.targets()
		if len(ts) != 1 || ts[0].Pass != c.pass {
			t.Errorf("%s: %+v, want pass %v", c.name, ts, c.pass)
		}
	}
	r := &Report{Plan: DefaultPlan(), Console: &cases[0].rep}
	md := string(r.Markdown())
	if !strings.Contains(md, "## i. Operator consoles on the event stream") || !strings.Contains(md, "i. mixed traffic with 50 consoles") {
		t.Errorf("markdown lacks section i:\n%s", md)
	}
}
