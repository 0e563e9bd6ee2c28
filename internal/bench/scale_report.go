package bench

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/parkgate/parkgate/central/store/pgstore"
)

// setup returns the setup with n instances, or nil.
func (s *ScaleReport) setup(n int) *ScaleSetup {
	for i := range s.Setups {
		if s.Setups[i].Instances == n {
			return &s.Setups[i]
		}
	}
	return nil
}

// RatioToRaw returns the throughput through HAProxy to n instances over
// the raw rate, at the i-th concurrency; NaN if either is missing.
func (s *ScaleReport) RatioToRaw(n, i int) float64 {
	st := s.setup(n)
	if st == nil || i >= len(st.Runs) || i >= len(s.Raw) || s.Raw[i].Throughput == 0 {
		return math.NaN()
	}
	return st.Runs[i].Throughput / s.Raw[i].Throughput
}

// Speedup returns the throughput with 3 instances over that with 1 at the
// i-th concurrency; NaN if either is missing.
func (s *ScaleReport) Speedup(i int) float64 {
	one, three := s.setup(1), s.setup(3)
	if one == nil || three == nil || i >= len(one.Runs) || i >= len(three.Runs) || one.Runs[i].Throughput == 0 {
		return math.NaN()
	}
	return three.Runs[i].Throughput / one.Runs[i].Throughput
}

// summaries lists every run of section h, for the count of unexpected
// answers.
func (s *ScaleReport) summaries() []Summary {
	var out []Summary
	for _, st := range s.Setups {
		out = append(out, st.Runs...)
	}
	return append(out, s.Raw...)
}

// instancesLabel names a setup: "1 instance", "3 instances".
func instancesLabel(n int) string {
	if n == 1 {
		return "1 instance"
	}
	return strconv.Itoa(n) + " instances"
}

// ratioCell formats a ratio, or "–" when it is missing.
func ratioCell(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.2f", v)
}

// markdown renders section h.
func (s *ScaleReport) markdown(b *bytes.Buffer, r *Report) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	pl := r.Plan
	p("## h. Scale-out on PostgreSQL")
	p("")
	if s.Skip != "" {
		p("Skipped: %s. It needs a PostgreSQL on this machine where it may create and drop schemas (`-postgres DSN`, by default "+
			"`$PARKING_TEST_POSTGRES_DSN`) and haproxy (`-haproxy`, by default from PATH or /usr/sbin).", s.Skip)
		p("")
		return
	}
	pg := s.Postgres
	p("The real bin/centrald on PostgreSQL %s at %s (`synchronous_commit` %s, `fsync` %s, `shared_buffers` %s), behind %s "+
		"with the shipped `%s` unchanged (`balance leastconn`, health checks on `/readyz`). Two setups: one instance, with all "+
		"three `PARKGATE_CENTRALD_n` pointing at it (HAProxy then sees three servers at one address, which it accepts; "+
		"leastconn spreads over them as over any three), and three instances. Each setup gets a fresh schema (`CREATE SCHEMA`, "+
		"the DSN's `search_path` set to it), dropped afterwards; its instances share one ticket key, have %d spots, no MQTT "+
		"(no broker, no gates) and pgstore's default pool of %d connections each, and start only once the previous one "+
		"answers `/readyz`. Clients are closed loops of %s workers, %s each after a %s warm-up, sending the contended pattern "+
		"of c to HAProxy; both concurrencies of a setup run on its schema, the pattern carrying on where the previous run "+
		"stopped, so that no run starts on windows already taken. 201 and 409 are correct answers.",
		cell(pg.Version), cell(pg.Addr), cell(pg.SynchronousCommit), cell(pg.Fsync), cell(pg.SharedBuffers), cell(s.HAProxy),
		cell(s.HAProxyConfig), pl.Spots, pgstore.DefaultMaxConns, joinAnd(intStrings(pl.ScaleConcurrencies)),
		dur(pl.ScaleDuration), dur(pl.Warmup))
	p("")
	p("**Raw.** In the same run, on a fresh schema created by `pgstore.Open` (the store's table, exclusion constraint, indexes "+
		"and trigger) with the same spots and the same contended pattern: a pgx pool of as many connections as workers, each "+
		"worker running %s for a live reservation, in a READ COMMITTED transaction of its own as `pgstore.Store.Write` "+
		"begins it: `SELECT 1 FROM spots WHERE id = $1 FOR NO KEY UPDATE`, the `INSERT INTO reservations`, `COMMIT`; an exclusion "+
		"violation (23P01) is the 409. It leaves out what `Tx.Insert` leaves to its caller: the `Spot` and `Live` reads that "+
		"the booking service runs first, and the change-log entry it logs for every created reservation, which pgstore inserts "+
		"at commit under a per-schema advisory lock. **The raw figure does not include the change log**; the HTTP path does, "+
		"so it does more database work per request than raw: two reads on every request and, on every 201, a change-log insert "+
		"whose commits are serialised across all instances. The HTTP setups run first (1, then 3 instances), then raw.", RawScaleMethod)
	p("")
	p("| setup | concurrency | requests | req/s | p50 | p99 | p99.9 | status codes | ÷ raw |")
	p("|---|--:|--:|--:|--:|--:|--:|---|--:|")
	for _, st := range s.Setups {
		for i, run := range st.Runs {
			p("| %s through HAProxy | %d | %d | %.0f | %s | %s | %s | %s | %s |", instancesLabel(st.Instances), run.Workers, run.Requests,
				run.Throughput, ms(run.Latency.P50), ms(run.Latency.P99), ms(run.Latency.P999), codes(run), ratioCell(s.RatioToRaw(st.Instances, i)))
		}
	}
	for _, run := range s.Raw {
		p("| raw (pgx, pool of %d) | %d | %d | %.0f | %s | %s | %s | %s | 1 |", run.Workers, run.Workers, run.Requests,
			run.Throughput, ms(run.Latency.P50), ms(run.Latency.P99), ms(run.Latency.P999), codes(run))
	}
	p("")
	p("| concurrency | 1 instance ÷ raw | 3 instances ÷ raw | 3 instances ÷ 1 instance |")
	p("|--:|--:|--:|--:|")
	for i, c := range pl.ScaleConcurrencies {
		p("| %d | %s | %s | %s |", c, ratioCell(s.RatioToRaw(1, i)), ratioCell(s.RatioToRaw(3, i)), ratioCell(s.Speedup(i)))
	}
	p("")
	p("**Correctness.** After each setup's runs (warm-ups included) parkbench reads its schema: every reservation answered 201 " +
		"must be there and no other (a request that got no answer may or may not have committed), each logged once in the " +
		"change log as created, and no live reservation of a spot may overlap another (the exclusion constraint forbids it; " +
		"this reads the table to show it). Attempts per instance are the instances' own `parkgate_reservation_attempts_total`.")
	p("")
	p("| setup | answered 201 | no answer | reservations in the schema | logged as created | overlapping live reservations | attempts per instance | result |")
	p("|---|--:|--:|--:|--:|--:|---|---|")
	for _, st := range s.Setups {
		p("%s", checkRow(instancesLabel(st.Instances), st.Check, strings.Join(intStrings(st.Attempts), " / ")))
	}
	p("%s", checkRow("raw (pgx)", s.RawCheck, "–"))
	p("")
	caveat := machineCaveat(r.Machine.CPUs)
	if pg.OtherSessions > 0 {
		caveat += fmt.Sprintf(" When the section started, %d other client sessions were connected to this PostgreSQL: work of "+
			"others on the same server (and CPUs) may be in these figures.", pg.OtherSessions)
	}
	p("**This machine.** %s", caveat)
	p("")
}

// checkRow renders a row of the correctness table.
func checkRow(label string, c ScaleCheck, attempts string) string {
	if c.Err != "" {
		return fmt.Sprintf("| %s | %d | %d | – | – | – | %s | **not read**: %s |", label, c.Created, c.Unanswered, attempts, cell(c.Err))
	}
	logged := "not written"
	if c.Logged >= 0 {
		logged = strconv.FormatInt(c.Logged, 10)
	}
	verdict := "as answered"
	if !c.OK() {
		verdict = "**NOT as answered**"
	}
	return fmt.Sprintf("| %s | %d | %d | %d | %s | %d | %s | %s |", label, c.Created, c.Unanswered, c.Rows, logged, c.Overlaps, attempts, verdict)
}

// machineCaveat is the honest word on what a scale-out on cpus CPUs can
// show.
func machineCaveat(cpus int) string {
	s := fmt.Sprintf("It has %d CPUs, and every process of this section shares them: PostgreSQL (its backends, WAL writer and "+
		"checkpointer), HAProxy (which, as the shipped configuration has it, logs every request to its standard output, read "+
		"by parkbench), the centrald instances and the load generator. ", cpus)
	if cpus <= 2 {
		s += "Three instances cannot scale on two cores: they split the same two CPUs three ways and add processes, " +
			"connections and context switches, so the 3-instance figures are expected to be no higher than the 1-instance ones, " +
			"and may be lower. "
	} else {
		s += "More instances can only help as long as CPUs are left over once PostgreSQL, HAProxy and the load generator have " +
			"theirs. "
	}
	return s + "The point of this section is correctness (only 201 and 409, the database holding exactly the 201s, no double " +
		"booking, the load spread over the instances) and the ratio to what PostgreSQL alone does with the same inserts, not " +
		"absolute scaling: that needs the database, HAProxy, the instances and the clients on machines of their own."
}

// notes are the paragraphs of section h for the report's notes: the
// ratios, what a third instance did, and the correctness check.
func (s *ScaleReport) notes(m Machine) []string {
	if s.Skip != "" {
		return []string{"Section h (scale-out on PostgreSQL) was skipped: " + s.Skip + "."}
	}
	var n []string
	for _, st := range s.Setups {
		var rs []string
		for i, run := range st.Runs {
			rs = append(rs, fmt.Sprintf("%s at concurrency %d (%.0f against %.0f req/s)", ratioCell(s.RatioToRaw(st.Instances, i)),
				run.Workers, run.Throughput, rawThroughput(s, i)))
		}
		if len(rs) > 0 {
			n = append(n, fmt.Sprintf("Contended reservations through HAProxy to %s on PostgreSQL ran at this share of the raw rate of the store's inserts: %s.",
				instancesLabel(st.Instances), joinAnd(rs)))
		}
	}
	if one := s.setup(1); one != nil {
		for i, run := range one.Runs {
			if v := s.RatioToRaw(1, i); !math.IsNaN(v) && v > 1 {
				n = append(n, fmt.Sprintf("At concurrency %d one instance beat raw: raw ran %d PostgreSQL backends at once on %d CPUs, "+
					"while an instance's pool lets at most %d of its transactions run at a time; and through the booking service a "+
					"request that loses to an already committed winner is refused by the unlocked `Live` read, without the spot lock "+
					"and the failing insert that every raw loser goes through.", run.Workers, run.Workers, m.CPUs, pgstore.DefaultMaxConns))
				break
			}
		}
	}
	if len(s.Raw) > 1 {
		first, last := s.Raw[0], s.Raw[len(s.Raw)-1]
		if first.Throughput > 0 && last.Throughput < 0.9*first.Throughput {
			n = append(n, fmt.Sprintf("Raw itself fell from %.0f req/s with %d connections to %.0f with %d: more backends than CPUs, queueing for the same few spot locks.",
				first.Throughput, first.Workers, last.Throughput, last.Workers))
		}
	}
	var sp []string
	lower, higher := 0, 0
	for i := range s.Raw {
		v := s.Speedup(i)
		if math.IsNaN(v) {
			continue
		}
		sp = append(sp, fmt.Sprintf("%.2f× at concurrency %d", v, s.Raw[i].Workers))
		switch {
		case v < 0.9:
			lower++
		case v > 1.1:
			higher++
		}
	}
	if len(sp) > 0 {
		s3 := fmt.Sprintf("Three instances against one: %s", joinAnd(sp))
		split := fmt.Sprintf("as expected on %d CPUs, where more instances only split the same CPUs more ways.", m.CPUs)
		switch {
		case higher == len(sp):
			s3 += fmt.Sprintf(": higher, so CPU was left over on these %d CPUs for more instances.", m.CPUs)
		case lower == len(sp):
			s3 += ": lower, " + split
		case higher == 0 && lower == 0:
			s3 += ": about the same, " + split
		case higher == 0:
			s3 += ": no higher, " + split
		default:
			s3 += ": higher at some concurrencies only."
		}
		n = append(n, s3+" Besides, every winning reservation takes the change log's advisory lock, shared by all instances of a site, "+
			"before its commit and holds it through the commit: the winning commits, and their WAL flushes, happen one at a time "+
			"whatever the number of instances, on any machine.")
	}
	if st := s.setup(3); st != nil && len(st.Attempts) > 1 {
		total := 0
		for _, a := range st.Attempts {
			total += a
		}
		if total > 0 {
			var shares []string
			for _, a := range st.Attempts {
				shares = append(shares, fmt.Sprintf("%.0f%%", 100*float64(a)/float64(total)))
			}
			n = append(n, fmt.Sprintf("HAProxy spread the reservation attempts over the three instances as %s.", strings.Join(shares, " / ")))
		}
	}
	var bad []string
	for _, st := range s.Setups {
		if !st.Check.OK() {
			bad = append(bad, instancesLabel(st.Instances))
		}
	}
	if !s.RawCheck.OK() {
		bad = append(bad, "raw")
	}
	if len(bad) == 0 {
		n = append(n, "Every schema held exactly the reservations answered 201, with no double booking.")
	} else {
		n = append(n, fmt.Sprintf("The schema of %s did NOT hold exactly the reservations answered 201, or was not read (see the correctness table).", joinAnd(bad)))
	}
	return []string{strings.Join(n, " ")}
}

// rawThroughput is the raw rate at the i-th concurrency, or 0.
func rawThroughput(s *ScaleReport, i int) float64 {
	if i < len(s.Raw) {
		return s.Raw[i].Throughput
	}
	return 0
}
