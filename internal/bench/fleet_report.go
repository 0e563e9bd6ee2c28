package bench

import (
	"bytes"
	"fmt"
	"time"
)

// targets: on each broker, the propagation's p99 to every cache (nothing
// lost) and the restart's convergence.
func (f *FleetReport) targets() []TargetResult {
	var out []TargetResult
	for _, r := range f.Runs {
		out = append(out, TargetResult{
			Name: fmt.Sprintf("j. fleet (%s): payment to all %d caches, p99 < %s", r.Broker, r.Gates, ms(FleetPropagationP99Target)),
			Measured: fmt.Sprintf("p99 %s (p50 %s; %d payments × %d gates, %d not reached)",
				ms(r.Propagation.P99), ms(r.Propagation.P50), r.PropagationN, r.Gates, r.Lost),
			Pass: r.PropagationN > 0 && r.Lost == 0 && r.Propagation.P99 < FleetPropagationP99Target,
		})
		res := TargetResult{
			Name: fmt.Sprintf("j. fleet (%s): %d gates online and converged after a centrald restart, < %s", r.Broker, r.Gates, dur(FleetRestartTarget)),
			Pass: r.Restart > 0 && r.Restart < FleetRestartTarget,
		}
		if r.Restart > 0 {
			res.Measured = fmt.Sprintf("%s from exec (%d snapshots)", sec1(r.Restart), r.Snapshots)
		} else {
			res.Measured = fmt.Sprintf("not within %s", dur(fleetWait))
		}
		out = append(out, res)
	}
	return out
}

// markdown renders section j.
func (f *FleetReport) markdown(b *bytes.Buffer, _ *Report) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	p("## j. A fleet of gates on one centrald")
	p("")
	p("The real bin/centrald and, in parkbench's own process, a fleet of simulated gates (internal/fleet) that speak " +
		"the protocol through sync/syncmsg and paho alone: birth and will, snapshot at connect, versioned batches with gap " +
		"detection, events with acks. On the embedded broker the gates connect anonymously (`mqtt.allow_anonymous`), " +
		"since provisioning a thousand argon2id passwords would measure the hashing; on Mosquitto, as the site's " +
		"external broker, centrald records each gate's role from its birth. Everything runs on this machine.")
	p("")
	p("**Propagation**: a reservation paid (the clock starts when the pay request is sent, so the figure includes the pay itself) until each gate's cache holds the "+
		"payment's change-log version, every gate × every payment one at a time. **Restart**: centrald stopped with "+
		"SIGTERM and started again on its database; from its exec until `GET /gates` shows every gate online and every "+
		"gate holds central's version. **Idle CPU**: centrald's user+system time over %s with every gate connected "+
		"(heartbeats only).", dur(f.runsWindow()))
	p("")
	p("| broker | gates | all online after start | propagation p50 | p99 | max | not reached | target p99 < %s | restart → converged | target < %s | snapshots at restart | RSS before | RSS with gates | per gate | peak RSS after restart | idle CPU (of one core) | per 1,000 gates | load average |",
		ms(FleetPropagationP99Target), dur(FleetRestartTarget))
	p("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
	for _, r := range f.Runs {
		per := "–"
		if r.Gates > 0 && r.RSSConnected > 0 {
			per = fmt.Sprintf("%.1f KiB", float64(r.RSSConnected-r.RSSBefore)/1024/float64(r.Gates))
		}
		restart := "not reached"
		ratio := "–"
		if r.Restart > 0 {
			restart = sec1(r.Restart)
			ratio = fmt.Sprintf("%.2f×", r.Restart.Seconds()/FleetRestartTarget.Seconds())
		}
		p("| %s | %d | %s | %s | %s | %s | %d | %.2f× | %s | %s | %d | %s | %s | %s | %s | %.1f %% | %.1f %% | %s |",
			r.Broker, r.Gates, sec1(r.Connect), ms(r.Propagation.P50), ms(r.Propagation.P99), ms(r.Propagation.Max), r.Lost,
			r.Propagation.P99.Seconds()/FleetPropagationP99Target.Seconds(), restart, ratio, r.Snapshots,
			mib(r.RSSBefore), mib(r.RSSConnected), per, mib(r.RSSPeakRestart), 100*r.CPUIdle,
			100*r.CPUIdle*1000/float64(max(r.Gates, 1)), r.Load)
	}
	if f.Skip != "" {
		p("")
		p("Mosquitto run skipped: %s.", f.Skip)
	}
	p("")
}

func (f *FleetReport) runsWindow() (d time.Duration) {
	for _, r := range f.Runs {
		d = max(d, r.IdleWindow)
	}
	return d
}
