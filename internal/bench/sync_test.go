package bench

import (
	"strings"
	"testing"
	"time"
)

func TestSyncReportTargetsAndMarkdown(t *testing.T) {
	s := &SyncReport{Spots: 2000, PropagationN: 100, Propagation: Latency{P50: 5 * time.Millisecond, P99: 20 * time.Millisecond, Max: 30 * time.Millisecond},
		ResyncEntries: 10000, ResyncVersion: 20300, Resync: 2500 * time.Millisecond, ResyncReady: 100 * time.Millisecond,
		ScanTarget: 2000, Granted: 2000, Queued: 2000, CentraldReady: 300 * time.Millisecond, FirstAck: time.Second, Drained: 3 * time.Second}
	r := &Report{Plan: DefaultPlan(), Sync: s}
	ts := r.Targets()
	if len(ts) != 2 || !ts[0].Pass || ts[1].Pass {
		t.Fatalf("targets: %+v", ts)
	}
	md := string(r.Markdown())
	for _, want := range []string{"## g. Sync over MQTT", "| 2000 | 300 ms | 1000 ms | 3000 ms | 667 | 1000 |", "**MISS**", "10,000 queued events"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "## a. GET /parkings") || strings.Contains(md, "## e. gated") {
		t.Error("sync-only report holds other sections")
	}
	s.PropagationLost = 1
	if r.Targets()[0].Pass {
		t.Error("a propagation that never arrived passes")
	}
}
