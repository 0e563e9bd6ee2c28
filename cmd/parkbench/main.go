// Command parkbench load-tests centrald and gated and writes
// docs/benchmarks.md; `make bench` runs it. The scenarios, targets and
// method are in package internal/bench.
//
// Usage:
//
//	parkbench -centrald bin/centrald -gated bin/gated [-only centrald|gated|sync|scale|console|fleet|history|groupcommit] [-history-n N] [-fleet-gates N] [-fleet-mqtt URL]
//	          [-gated-arm64 PATH] [-qemu PATH] [-postgres DSN] [-haproxy PATH]
//	          [-haproxy-config FILE] [-out docs/benchmarks.md] [-quick] [-strict] [-tmpdir DIR]
//
// -only runs one part: centrald (scenarios a to d, needs -centrald),
// gated (sections e and f, needs -gated), sync (section g, the sync over
// MQTT, needs both) or scale (section h, centrald scaled out on
// PostgreSQL behind HAProxy, needs -centrald) or console (section i, the
// mixed traffic with 50 operator consoles on GET /admin/events, needs
// -centrald), fleet (section j), history (section k, centrald on a million
// reservations of history against an empty database, on SQLite and, with
// -postgres, on PostgreSQL; -history-n sets the size, for CI-sized runs) or
// groupcommit (section l: contended reservations with group commit against
// the in-process rate with one transaction per request, and GET
// /parkings/{id} against a trivial Go JSON server that parkbench starts as
// a child of itself; needs -centrald); by default all run.
// Section f runs the linux/arm64 gated (by default linux-arm64/gated next
// to -gated) under qemu-aarch64 (by default from PATH), and is skipped with
// a note when either is missing; -gated-arm64 "" or -qemu "" skips it.
// Section h needs a PostgreSQL on this machine where it may create and
// drop schemas (-postgres, by default $PARKING_TEST_POSTGRES_DSN) and
// haproxy (-haproxy, by default from PATH or /usr/sbin) with the shipped
// configuration (-haproxy-config, by default configs/haproxy.cfg from the
// repository's root, where make runs parkbench), and is skipped with a note
// when one is missing or unusable; -postgres "" or -haproxy "" skips it.
//
// Exit codes: 0 the benchmark ran and the report was written (targets met
// or not, unless -strict); 1 a failure (a daemon did not start, the report
// could not be written, interrupted); 2 bad flags; 3 with -strict, a target
// was missed.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/parkgate/parkgate/internal/bench"
)

const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	exitMissed  = 3
)

func main() {
	// parkbench started again by itself as section l's trivial server.
	bench.ServeTrivialIfAsked()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("parkbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	centrald := fs.String("centrald", "", "path of the centrald binary to measure (required unless -only gated)")
	gated := fs.String("gated", "", "path of the gated binary to measure (required unless -only centrald or scale)")
	only := fs.String("only", "", "run one part only: centrald, gated, sync, scale, console, fleet, history or groupcommit (default: all)")
	historyN := fs.Int("history-n", bench.DefaultHistoryN, "the number of reservations of the history section's database")
	fleetGates := fs.Int("fleet-gates", bench.DefaultPlan().FleetGates, "the number of simulated gates of the fleet section")
	fleetMQTT := fs.String("fleet-mqtt", "", `an external broker (tcp://host:port) the fleet section also runs on (default: $`+mqttEnv+`; "": skip)`)
	arm64 := fs.String("gated-arm64", auto, `the linux/arm64 gated to run under qemu; "auto": linux-arm64/gated next to -gated; "": skip`)
	qemu := fs.String("qemu", auto, `the qemu-aarch64 user-mode emulator; "auto": from PATH; "": skip`)
	postgres := fs.String("postgres", "", `DSN (postgres:// URL) of a PostgreSQL on this machine where section h may create and drop schemas (default: $`+postgresEnv+`; "": skip)`)
	haproxy := fs.String("haproxy", auto, `the haproxy binary for section h; "auto": from PATH, else /usr/sbin/haproxy; "": skip`)
	haproxyConfig := fs.String("haproxy-config", bench.DefaultHAProxyConfig, "the HAProxy configuration section h runs")
	out := fs.String("out", "docs/benchmarks.md", "where to write the Markdown report; - for standard output")
	quick := fs.Bool("quick", false, "a smoke run: every duration cut to a fifth (figures are not comparable)")
	strict := fs.Bool("strict", false, "exit 3 if a target is missed")
	tmp := fs.String("tmpdir", "", "parent directory of the temporary databases (default: the system's)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	needCentrald := *only != bench.PartGated
	needGated := *only == "" || *only == bench.PartGated || *only == bench.PartSync
	needScale := *only == "" || *only == bench.PartScale
	needHistory := *only == "" || *only == bench.PartHistory
	needFleet := *only == "" || *only == bench.PartFleet
	switch {
	case *only != "" && *only != bench.PartCentrald && *only != bench.PartGated && *only != bench.PartSync && *only != bench.PartScale && *only != bench.PartConsole && *only != bench.PartFleet && *only != bench.PartHistory && *only != bench.PartGroupCommit,
		*historyN < 1,
		needCentrald && *centrald == "", needGated && *gated == "", fs.NArg() > 0:
		fmt.Fprintln(stderr, usage)
		return exitUsage
	}
	plan := bench.DefaultPlan()
	if *quick {
		plan = plan.Scaled(0.2)
	}
	plan.FleetGates = max(*fleetGates, 1)
	o := bench.Options{Only: *only, Centrald: *centrald, Gated: *gated, TempDir: *tmp, Plan: plan, Progress: stderr, HistoryN: *historyN}
	if needGated {
		o.GatedArm64, o.Qemu = arm64Paths(*gated, *arm64, *qemu, exec.LookPath)
	}
	if needFleet {
		o.FleetMQTT = flagOrEnv(fs, "fleet-mqtt", *fleetMQTT, mqttEnv, os.Getenv)
	}
	if needScale {
		o.Postgres = postgresDSN(fs, *postgres, os.Getenv)
		o.HAProxy = haproxyPath(*haproxy, exec.LookPath, fileExists)
		o.HAProxyConfig = *haproxyConfig
	}
	if needHistory {
		o.Postgres = postgresDSN(fs, *postgres, os.Getenv)
	}
	rep, err := bench.Run(ctx, o)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "parkbench: interrupted; daemons stopped, temporary files removed, no report written")
			return exitFailure
		}
		fmt.Fprintln(stderr, "parkbench:", err)
		return exitFailure
	}
	md := rep.Markdown()
	if *out == "-" {
		_, err = stdout.Write(md)
	} else {
		if err = os.MkdirAll(filepath.Dir(*out), 0o755); err == nil {
			err = os.WriteFile(*out, md, 0o644)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "parkbench: writing the report:", err)
		return exitFailure
	}
	for _, t := range rep.Targets() {
		verdict := "PASS"
		if !t.Pass {
			verdict = "MISS"
		}
		fmt.Fprintf(stderr, "parkbench: %s  %s: %s\n", verdict, t.Name, t.Measured)
	}
	if *out != "-" {
		fmt.Fprintln(stderr, "parkbench: wrote", *out)
	}
	if *strict && !rep.AllPass() {
		return exitMissed
	}
	return exitOK
}

// usage is printed on bad flags.
const usage = "usage: parkbench -centrald PATH -gated PATH [-only centrald|gated|sync|scale|console|fleet|history|groupcommit] [-history-n N] [-fleet-gates N] [-fleet-mqtt URL] [-gated-arm64 PATH] [-qemu PATH]" +
	" [-postgres DSN] [-haproxy PATH] [-haproxy-config FILE] [-out FILE] [-quick] [-strict] [-tmpdir DIR]"

// auto is the default of -gated-arm64, -qemu and -haproxy: look for them.
const auto = "auto"

// postgresEnv names the variable -postgres defaults to: the one the
// PostgreSQL tests read, so that a machine set up for them runs section h
// too.
const postgresEnv = "PARKING_TEST_POSTGRES_DSN"

// mqttEnv names the variable -fleet-mqtt defaults to: the one the MQTT
// tests read.
const mqttEnv = "PARKING_TEST_MQTT_URL"

// flagOrEnv is the flag's value if it was given (even empty, which
// skips), else the variable's.
func flagOrEnv(fs *flag.FlagSet, name, value, env string, getenv func(string) string) string {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	if set {
		return value
	}
	return getenv(env)
}

// postgresDSN resolves -postgres: the flag's value if it was given (even
// empty, which skips section h), else $PARKING_TEST_POSTGRES_DSN. The
// variable is read here rather than made the flag's default so that
// -help does not print a DSN, which may hold a password.
func postgresDSN(fs *flag.FlagSet, value string, getenv func(string) string) string {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "postgres" })
	if set {
		return value
	}
	return getenv(postgresEnv)
}

// haproxyPath resolves -haproxy: "auto" looks for haproxy with lookPath,
// then at /usr/sbin/haproxy, which Debian's package installs and which is
// not on every user's PATH; an empty result means "skip".
func haproxyPath(flagValue string, lookPath func(string) (string, error), exists func(string) bool) string {
	if flagValue != auto {
		return flagValue
	}
	if p, err := lookPath("haproxy"); err == nil {
		return p
	}
	if exists("/usr/sbin/haproxy") {
		return "/usr/sbin/haproxy"
	}
	return ""
}

// fileExists reports whether path names an existing file.
func fileExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir()
}

// arm64Paths resolves -gated-arm64 and -qemu: "auto" looks for the arm64
// binary in linux-arm64/ next to gated and for qemu-aarch64 (or
// qemu-aarch64-static) with lookPath; an empty result means "skip".
func arm64Paths(gated, arm64, qemu string, lookPath func(string) (string, error)) (string, string) {
	if arm64 == auto {
		arm64 = filepath.Join(filepath.Dir(gated), "linux-arm64", filepath.Base(gated))
	}
	if qemu == auto {
		qemu = ""
		for _, name := range []string{"qemu-aarch64", "qemu-aarch64-static"} {
			if p, err := lookPath(name); err == nil {
				qemu = p
				break
			}
		}
	}
	return arm64, qemu
}
