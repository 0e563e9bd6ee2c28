package bench

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// granted returns the granted runs (one per concurrency).
func (g *GatedReport) granted() []ScanRun {
	var out []ScanRun
	for _, r := range g.Runs {
		if r.Want == reasonTicket {
			out = append(out, r)
		}
	}
	return out
}

// denied returns the denied run, ok false if there is none.
func (g *GatedReport) denied() (ScanRun, bool) {
	for _, r := range g.Runs {
		if r.Want != reasonTicket {
			return r, true
		}
	}
	return ScanRun{}, false
}

// allRuns lists every scan run, the emulated one included.
func (g *GatedReport) allRuns() []ScanRun {
	out := slices.Clone(g.Runs)
	if g.Emulated != nil {
		out = append(out, g.Emulated.Run)
	}
	return out
}

// targets: the memory after start and after the load, and the lane's
// p99 of every granted run (with no errors). The emulated run has none.
func (g *GatedReport) targets() []TargetResult {
	rss := func(name string, v int64, extra string) TargetResult {
		t := TargetResult{Name: fmt.Sprintf("e. gated RSS %s, %d-reservation cache: < %s", name, g.Reservations, mib(RSSTarget)),
			Pass: v > 0 && v < RSSTarget}
		if v > 0 {
			t.Measured = mib(v) + extra
		} else {
			t.Measured = "not measured"
			if g.RSSErr != "" {
				t.Measured += " (" + cell(g.RSSErr) + ")"
			}
		}
		return t
	}
	out := []TargetResult{rss("after start", g.RSSStart, "")}
	peak := ""
	if g.RSSPeak > 0 {
		peak = fmt.Sprintf(" (peak %s)", mib(g.RSSPeak))
	}
	out = append(out, rss(fmt.Sprintf("after %d scans", g.Scans), g.RSSLoad, peak))
	for _, r := range g.granted() {
		t := TargetResult{
			Name: fmt.Sprintf("e. gated scan-to-relay p99 (lane), granted, concurrency %d: < %s, no errors", r.Workers, ms(ScanP99Target)),
			Pass: r.Client.Requests > 0 && r.Lane.P99 < ScanP99Target && r.Errors() == 0,
		}
		if r.Client.Requests == 0 {
			t.Measured = "not measured"
		} else {
			t.Measured = fmt.Sprintf("p99 %s (p50 %s; %d scans, %.0f decisions/s, %d errors)",
				ms(r.Lane.P99), ms(r.Lane.P50), r.Client.Requests, r.Client.Throughput, r.Errors())
		}
		out = append(out, t)
	}
	return out
}

// markdown renders sections e and f.
func (g *GatedReport) markdown(b *bytes.Buffer, r *Report) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	pl := r.Plan
	p("## e. gated: memory and scan-to-relay latency")
	p("")
	p("The real bin/gated as a child process in simulator mode (`PARKING_HARDWARE_MODE=sim`, an entry lane, a free 127.0.0.1 "+
		"port, `PARKING_LOG_LEVEL=warn`), its database in the same directory as above, with a cache of %d reservations over "+
		"%d spots filled by `gated import` (which took %s): per 20 reservations, 16 paid and valid now, one cancelled, one "+
		"left, one paid for a later window and one whose car is inside. A fresh Ed25519 site key is made in process "+
		"(`ticket.NewSigner`) and gated gets its public half (`PARKING_TICKETS_PUBLIC_KEY`). One ticket is issued per distinct "+
		"valid reservation (%d), in shuffled order, so every scan is a new granted decision: signature check → cache and "+
		"presence lookup → outbox commit (SQLite WAL, synchronous=FULL, so an fsync) → relay command. Each run posts the codes "+
		"to `POST /v1/sim/scan` from a closed loop (each client sends its next scan when its last is answered) for %d scans "+
		"or %s, whichever comes first, after %d warm-up scans that are not counted; the denied run sends the same tickets "+
		"with one character of the signature changed (up to %d, or %s).",
		g.Reservations, g.Spots, ms(g.Import), g.Tickets, pl.ScanMax, dur(pl.ScanDuration), pl.ScanWarmup, pl.DeniedMax, dur(pl.DeniedDuration))
	p("")
	p("**lane** is the answer's `latencyMs`, gated's own scan-to-relay time: from the read reaching the lane to the relay " +
		"command (for a denied scan, to the committed record, since nothing opens). The lane takes one decision at a time, so " +
		"with several clients it includes the wait for the ones ahead. **round trip** is the client's time for the whole HTTP " +
		"request, JSON included. A denied scan (bad signature) is still committed to the outbox but needs no cache lookup and " +
		"opens nothing, which shows what the barrier-free path costs. Percentiles are exact nearest-rank values, as above.")
	p("")
	p("| gated memory | VmRSS |")
	p("|---|--:|")
	p("| after start (cache imported, ready, no scan yet) | %s |", mibOrDash(g.RSSStart))
	p("| after the %d scans below (warm-ups included) | %s |", g.Scans, mibOrDash(g.RSSLoad))
	p("| peak (VmHWM) by then | %s |", mibOrDash(g.RSSPeak))
	p("")
	if g.RSSErr != "" {
		p("Memory could not be read: %s.", cell(g.RSSErr))
		p("")
	}
	scanTable(b, g.Runs)
	p("")
	p("After these runs the outbox held %d records for the %d decisions sent%s.", g.Outbox, g.Scans, outboxVerdict(g.Outbox, g.Scans))
	p("")

	p("## f. gated on arm64: emulated (qemu-user on x86-64), not a Raspberry Pi")
	p("")
	em := g.Emulated
	if em == nil {
		p("Skipped: %s.", g.EmulatedSkip)
		p("")
		return
	}
	p("**These figures are emulated, not measured on a Raspberry Pi.** %s (`%s`) run by `%s`: user-mode emulation that "+
		"translates every arm64 instruction on this machine's x86-64 CPU, while system calls (the fsync of each commit, the "+
		"network) are the host's. It gives an order of magnitude and shows the cross-built binary working, nothing more; "+
		"a real Pi's CPU, memory and SD card or SSD differ entirely. A fresh copy of the same cache (imported with the native "+
		"binary: the SQLite file is the same on every architecture); gated was ready %s after start. Concurrency 1, %d scans "+
		"or %s, after %d warm-up scans.",
		em.Binary, cell(em.Version), em.Emulator, ms(em.Ready), pl.EmulatedMax, dur(pl.EmulatedDuration), pl.EmulatedWarmup)
	p("")
	scanTable(b, []ScanRun{em.Run})
	p("")
}

// breakdown splits a granted decision's p50 roughly into the bare fsync
// of the disk, the signature check (timed in parkbench's process), what
// the granted path adds over the denied one, and the rest: mostly the
// outbox transaction apart from its fsync. p50s do not add up exactly;
// the split is an estimate and says so.
func (g *GatedReport) breakdown(one, denied ScanRun, m Machine) string {
	total := one.Lane.P50
	fsync, verify := m.Fsync.P50, g.Verify.P50
	extra := max(one.Lane.P50-denied.Lane.P50, 0)
	rest := total - fsync - verify - extra
	pct := func(d time.Duration) float64 { return 100 * float64(d) / float64(total) }
	s := fmt.Sprintf("Roughly, of a granted decision's p50 of %s: a bare 4 KiB append + fsync on this disk takes %s (%.0f%%), the Ed25519 signature check %s (%.0f%%, timed in parkbench's process over %d tickets), the lookup, presence check and relay about %s (%.0f%%)",
		ms(total), ms(fsync), pct(fsync), ms(verify), pct(verify), g.VerifyN, ms(extra), pct(extra))
	if rest > 0 {
		s += fmt.Sprintf(", which leaves about %s (%.0f%%) for the rest of the outbox transaction apart from its fsync (SQLite in pure Go: the outbox insert with the presence and newest-time updates that go with it, writing the WAL pages, begin and commit) and the lane's bookkeeping", ms(rest), pct(rest))
	}
	s += "."
	worst := max(fsync, verify, extra, rest)
	switch {
	case worst == fsync || worst == rest:
		s += " The durable outbox commit (its fsync and the rest of its transaction) is the largest part."
	case worst == verify:
		s += " The signature check is the largest part."
	}
	if one.Lane.P99 > 2*one.Lane.P50 && m.Fsync.P99 > 0 {
		s += fmt.Sprintf(" The tail spreads further than the bare fsync's: the decision's p99 is %s (%.1f× its median), the fsync's %s.",
			ms(one.Lane.P99), float64(one.Lane.P99)/float64(one.Lane.P50), ms(m.Fsync.P99))
	}
	return s
}

func outboxVerdict(outbox, scans int) string {
	switch {
	case outbox == scans:
		return ": every decision was recorded"
	case outbox < scans:
		return fmt.Sprintf(": %d decisions are MISSING from the outbox", scans-outbox)
	default:
		return " (the rest are barrier events, which the outbox records too)"
	}
}

func mibOrDash(n int64) string {
	if n <= 0 {
		return "–"
	}
	return mib(n)
}

func scanTable(b *bytes.Buffer, runs []ScanRun) {
	fmt.Fprintln(b, "| run | scans | decisions/s | lane p50 | lane p99 | lane p99.9 | lane max | round trip p50 | round trip p99 | round trip p99.9 | reasons | errors |")
	fmt.Fprintln(b, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|")
	for _, r := range runs {
		s := r.Client
		fmt.Fprintf(b, "| %s | %d | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n", cell(r.Label), s.Requests, s.Throughput,
			ms(r.Lane.P50), ms(r.Lane.P99), ms(r.Lane.P999), ms(r.Lane.Max),
			ms(s.Latency.P50), ms(s.Latency.P99), ms(s.Latency.P999), reasons(r.Reasons), r.Errors())
	}
}

// reasons lists decisions by reason: "ticket: 3000".
func reasons(m map[string]int) string {
	if len(m) == 0 {
		return "–"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// notes are the gated paragraphs: latency and what it is made of, memory,
// and the emulated run.
func (g *GatedReport) notes(m Machine) []string {
	var paras, n []string
	flush := func() {
		if len(n) > 0 {
			paras = append(paras, strings.Join(n, " "))
			n = nil
		}
	}
	gr := g.granted()
	if len(gr) > 0 && gr[0].Client.Requests > 0 {
		one := gr[0]
		verdict := "within"
		if one.Lane.P99 >= ScanP99Target {
			verdict = "above"
		}
		n = append(n, fmt.Sprintf("gated decided a granted scan at concurrency %d in p50 %s and p99 %s of its own time (scan to relay command), %s the %s target, at %.0f decisions/s; the client's round trip was p50 %s, p99 %s.",
			one.Workers, ms(one.Lane.P50), ms(one.Lane.P99), verdict, ms(ScanP99Target), one.Client.Throughput, ms(one.Client.Latency.P50), ms(one.Client.Latency.P99)))
		if one.Lane.P99 >= ScanP99Target {
			n = append(n, fmt.Sprintf("That target is MISSED by %s.", ms(one.Lane.P99-ScanP99Target)))
		}
		// What a decision is made of: the denied path (decode, signature
		// check, commit) against the granted one (plus lookup, presence,
		// relay), and the bare fsync under every commit.
		if d, ok := g.denied(); ok && d.Client.Requests > 0 {
			extra := one.Lane.P50 - d.Lane.P50
			s := fmt.Sprintf("A denied scan (bad signature: the signature check and the outbox commit, no lookup, no relay) took p50 %s", ms(d.Lane.P50))
			if extra > 0 {
				s += fmt.Sprintf(", so the cache lookup, presence check and relay command add about %s to a granted one", ms(extra))
			}
			n = append(n, s+".")
			if one.Lane.P50 > 0 && m.FsyncN > 0 && g.VerifyN > 0 {
				n = append(n, g.breakdown(one, d, m))
			}
		}
		if one.Client.Latency.P50 > one.Lane.P50 {
			n = append(n, fmt.Sprintf("HTTP, JSON and the client add about %s to the lane's p50 (%.0f%% of the round trip), which a serial scanner on a Pi does not pay.",
				ms(one.Client.Latency.P50-one.Lane.P50), 100*float64(one.Client.Latency.P50-one.Lane.P50)/float64(one.Client.Latency.P50)))
		}
		if len(gr) > 1 {
			last := gr[len(gr)-1]
			if last.Client.Requests > 0 {
				s := fmt.Sprintf("With %d clients at once gated took %.0f decisions/s (%.0f with one) at lane p50 %s and p99 %s",
					last.Workers, last.Client.Throughput, one.Client.Throughput, ms(last.Lane.P50), ms(last.Lane.P99))
				if last.Client.Throughput < 1.5*one.Client.Throughput {
					s += ": decisions are taken one at a time (the lane's lock, one SQLite writer), so more readers queue rather than add throughput, and the queueing shows in the lane's latency"
				}
				n = append(n, s+".")
			}
		}
	}
	flush()

	if g.RSSStart > 0 {
		s := fmt.Sprintf("gated's resident memory was %s once ready with the %d-reservation cache", mib(g.RSSStart), g.Reservations)
		if g.RSSLoad > 0 {
			s += fmt.Sprintf(" and %s after %d scans (peak %s)", mib(g.RSSLoad), g.Scans, mib(g.RSSPeak))
		}
		if g.RSSStart < RSSTarget && (g.RSSLoad == 0 || g.RSSLoad < RSSTarget) {
			s += fmt.Sprintf(", within the %s target.", mib(RSSTarget))
		} else {
			s += fmt.Sprintf(": the %s target is MISSED.", mib(RSSTarget))
		}
		n = append(n, s)
	}
	if em := g.Emulated; em != nil && em.Run.Client.Requests > 0 {
		s := fmt.Sprintf("Emulated under qemu-user (not a Raspberry Pi), the arm64 binary decided a granted scan in p50 %s, p99 %s at %.0f decisions/s",
			ms(em.Run.Lane.P50), ms(em.Run.Lane.P99), em.Run.Client.Throughput)
		if len(gr) > 0 && gr[0].Lane.P50 > 0 {
			s += fmt.Sprintf(", %.1f× the native p50", float64(em.Run.Lane.P50)/float64(gr[0].Lane.P50))
		}
		n = append(n, s+"; the emulation's cost, not the Pi's, is what this measures.")
	} else if g.EmulatedSkip != "" {
		n = append(n, "The emulated arm64 run was skipped: "+g.EmulatedSkip+".")
	}
	flush()
	return paras
}
