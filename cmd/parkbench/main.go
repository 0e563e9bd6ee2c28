// Command parkbench load-tests centrald and writes docs/benchmarks.md; `make
// bench` runs it. The scenarios, targets and method are in package
// internal/bench.
//
// Usage:
//
//	parkbench -centrald bin/centrald [-out docs/benchmarks.md] [-quick] [-strict] [-tmpdir DIR]
//
// Exit codes: 0 the benchmark ran and the report was written (targets met
// or not, unless -strict); 1 a failure (centrald did not start, the report
// could not be written, interrupted); 2 bad flags; 3 with -strict, a target
// was missed.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("parkbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	centrald := fs.String("centrald", "", "path of the centrald binary to measure (required)")
	out := fs.String("out", "docs/benchmarks.md", "where to write the Markdown report; - for standard output")
	quick := fs.Bool("quick", false, "a smoke run: every duration cut to a fifth (figures are not comparable)")
	strict := fs.Bool("strict", false, "exit 3 if a target is missed")
	tmp := fs.String("tmpdir", "", "parent directory of the temporary databases (default: the system's)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *centrald == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: parkbench -centrald PATH [-out FILE] [-quick] [-strict] [-tmpdir DIR]")
		return exitUsage
	}
	plan := bench.DefaultPlan()
	if *quick {
		plan = plan.Scaled(0.2)
	}
	rep, err := bench.Run(ctx, bench.Options{Centrald: *centrald, TempDir: *tmp, Plan: plan, Progress: stderr})
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "parkbench: interrupted; centrald stopped, temporary files removed, no report written")
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
