// Command testsum runs `go test -json` and shows what a person running
// `make test` needs: one line per package as it finishes (so there is
// progress while the rest compile and run), the full output of every
// failure, and at the end every skipped test with its package and its skip
// message (the tests that need PostgreSQL, Mosquitto, stripe-mock, HAProxy
// or Chromium say there which variable to set). It exits with go test's
// exit status.
//
//	go run ./internal/tools/testsum [-go GO] [go test flags] [packages]
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"
)

func main() {
	goCmd := "go"
	args := os.Args[1:]
	if len(args) >= 2 && args[0] == "-go" {
		goCmd, args = args[1], args[2:]
	}
	os.Exit(run(goCmd, args, os.Stdout, os.Stderr, time.NewTicker(20*time.Second).C))
}

// run runs goCmd test -json args, writes the report to stdout and returns
// go test's exit status (2 if it could not run at all). A value on tick
// prints what is running if nothing was printed for a while: a package
// that takes long (the process tests) would leave the screen still.
func run(goCmd string, args []string, stdout, stderr io.Writer, tick <-chan time.Time) int {
	cmd := exec.Command(goCmd, append([]string{"test", "-json"}, args...)...)
	cmd.Stderr = stderr // go's own complaints (a bad flag, no packages)
	out, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(stderr, "testsum:", err)
		return 2
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(stderr, "testsum:", err)
		return 2
	}
	s := newSummary(stdout)
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	for done := false; !done; {
		select {
		case l, ok := <-lines:
			if !ok {
				done = true
				break
			}
			s.line(l)
		case now := <-tick:
			s.heartbeat(now)
		}
	}
	waitErr := cmd.Wait()
	s.finish()
	var exit *exec.ExitError
	switch {
	case waitErr == nil:
		return 0
	case errors.As(waitErr, &exit):
		return exit.ExitCode()
	}
	fmt.Fprintln(stderr, "testsum:", waitErr)
	return 2
}

// event is one line of `go test -json` (cmd/test2json), including the
// build events that carry ImportPath instead of Package.
type event struct {
	Time        time.Time
	Action      string
	Package     string
	ImportPath  string
	Test        string
	Elapsed     float64
	Output      string
	FailedBuild string
}

// test is what is known of one test so far.
type test struct {
	pkg, name string
	output    []string
	done      bool
}

// pkgState is one package's tests and its own (non-test) output.
type pkgState struct {
	tests   map[string]*test
	order   []string // test names in the order they started
	output  []string // output outside any test: panics, TestMain, FAIL lines
	passed  int
	skipped int
	failed  int
}

type skip struct{ pkg, name, msg string }

// summary consumes events and writes the report to w.
type summary struct {
	w       io.Writer
	pkgs    map[string]*pkgState
	running []string // packages started and not finished, in start order
	started map[string]time.Time
	builds  map[string][]string
	skips   []skip
	fails   []string // "pkg TestName" of failed tests, and packages
	first   time.Time
	last    time.Time
	printed time.Time // last time a line was written (heartbeats)
	nPkgs   int
}

func newSummary(w io.Writer) *summary {
	return &summary{w: w, pkgs: map[string]*pkgState{}, builds: map[string][]string{}, started: map[string]time.Time{}}
}

func (s *summary) pkg(name string) *pkgState {
	p := s.pkgs[name]
	if p == nil {
		p = &pkgState{tests: map[string]*test{}}
		s.pkgs[name] = p
	}
	return p
}

func (s *summary) printf(format string, args ...any) {
	fmt.Fprintf(s.w, format, args...)
	s.printed = s.last
}

// line takes one line of go test's standard output; a line that is not
// JSON (go test writes some, e.g. for a pattern that matches nothing) is
// shown as it is.
func (s *summary) line(l string) {
	var e event
	if !strings.HasPrefix(l, "{") || json.Unmarshal([]byte(l), &e) != nil {
		s.printf("%s\n", l)
		return
	}
	if !e.Time.IsZero() {
		if s.first.IsZero() {
			s.first = e.Time
		}
		s.last = e.Time
	}
	switch e.Action {
	case "build-output":
		s.builds[e.ImportPath] = append(s.builds[e.ImportPath], e.Output)
		return
	case "build-fail":
		return
	}
	p := s.pkg(e.Package)
	if e.Test == "" {
		switch e.Action {
		case "start":
			s.running = append(s.running, e.Package)
			s.started[e.Package] = e.Time
		case "output":
			if !trailer(e.Output) {
				p.output = append(p.output, e.Output)
			}
		case "pass", "fail", "skip":
			s.finishPkg(e, p)
		}
		return
	}
	t := p.tests[e.Test]
	if t == nil {
		t = &test{pkg: e.Package, name: e.Test}
		p.tests[e.Test] = t
		p.order = append(p.order, e.Test)
	}
	switch e.Action {
	case "output":
		t.output = append(t.output, e.Output)
	case "pass":
		t.done = true
		p.passed++
	case "skip":
		t.done = true
		p.skipped++
		s.skips = append(s.skips, skip{e.Package, e.Test, skipMessage(t.output)})
	case "fail":
		t.done = true
		p.failed++
		s.fails = append(s.fails, e.Package+" "+e.Test)
		// The whole output of the failure, at once, as go test -v shows it.
		s.printf("--- output of %s %s:\n%s", e.Package, e.Test, strings.Join(t.output, ""))
	}
}

// finishPkg prints a package's line, and for a failed package everything
// the failures list does not already show: the build output, output
// outside any test (a panic, TestMain) and tests cut off mid-run.
func (s *summary) finishPkg(e event, p *pkgState) {
	for i, r := range s.running {
		if r == e.Package {
			s.running = append(s.running[:i], s.running[i+1:]...)
			break
		}
	}
	s.nPkgs++
	if e.Action == "fail" {
		if b := s.builds[e.Package]; len(b) > 0 || e.FailedBuild != "" {
			if len(b) == 0 {
				b = s.builds[e.FailedBuild]
			}
			s.printf("--- build output of %s:\n%s", e.Package, strings.Join(b, ""))
		}
		for _, name := range p.order {
			if t := p.tests[name]; !t.done {
				s.printf("--- output of %s %s (did not finish):\n%s", e.Package, name, strings.Join(t.output, ""))
			}
		}
		if len(p.output) > 0 {
			s.printf("--- output of %s outside its tests:\n%s", e.Package, strings.Join(p.output, ""))
		}
		if p.failed == 0 {
			s.fails = append(s.fails, e.Package+" (package)")
		}
	}
	counts := fmt.Sprintf("%d passed", p.passed)
	if p.skipped > 0 {
		counts += fmt.Sprintf(", %d skipped", p.skipped)
	}
	if p.failed > 0 {
		counts += fmt.Sprintf(", %d failed", p.failed)
	}
	switch {
	case e.Action == "fail" && e.FailedBuild != "":
		s.printf("FAIL %s [build failed]\n", e.Package)
	case e.Action == "fail":
		s.printf("FAIL %s %.2fs (%s)\n", e.Package, e.Elapsed, counts)
	case e.Action == "skip":
		s.printf("?    %s [no test files]\n", e.Package)
	case len(p.tests) == 0:
		s.printf("ok   %s [no tests to run]\n", e.Package)
	default:
		s.printf("ok   %s %.2fs (%s)\n", e.Package, e.Elapsed, counts)
	}
}

// trailer reports whether a package's output line is go test's own
// closing line ("PASS", "FAIL", "ok  \tpkg 0.1s", "FAIL\tpkg [build
// failed]"), which the package's line replaces.
func trailer(l string) bool {
	l = strings.TrimSuffix(l, "\n")
	return l == "PASS" || l == "FAIL" || strings.HasPrefix(l, "ok  \t") || strings.HasPrefix(l, "FAIL\t") || strings.HasPrefix(l, "?   \t")
}

// heartbeat says what is still running when nothing was printed for a
// while.
func (s *summary) heartbeat(now time.Time) {
	if !s.printed.IsZero() && now.Sub(s.printed) < 15*time.Second {
		return
	}
	if len(s.running) == 0 {
		fmt.Fprintf(s.w, "… compiling (%s done)\n", plural(s.nPkgs, "package"))
	} else {
		names := make([]string, len(s.running))
		for i, p := range s.running {
			names[i] = fmt.Sprintf("%s for %s", p, now.Sub(s.started[p]).Round(time.Second))
		}
		fmt.Fprintf(s.w, "… running %s (%s done)\n", strings.Join(names, ", "), plural(s.nPkgs, "package"))
	}
	s.printed = now
}

// skipMessage is a skipped test's output without go test's framing lines:
// what it passed to t.Skip, with its file:line.
func skipMessage(output []string) string {
	var msg []string
	for _, o := range output {
		l := strings.TrimSpace(o)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- SKIP") {
			continue
		}
		msg = append(msg, l)
	}
	return strings.Join(msg, " ")
}

// finish writes the skipped tests (grouped by package) and the totals.
func (s *summary) finish() {
	total, skipped := 0, len(s.skips)
	for _, p := range s.pkgs {
		total += p.passed + p.skipped + p.failed
	}
	if skipped > 0 {
		fmt.Fprintf(s.w, "\nSkipped (%d), each with its reason:\n", skipped)
		sort.SliceStable(s.skips, func(i, j int) bool { return s.skips[i].pkg < s.skips[j].pkg })
		pkg := ""
		for _, k := range s.skips {
			if k.pkg != pkg {
				pkg = k.pkg
				fmt.Fprintf(s.w, "  %s\n", pkg)
			}
			fmt.Fprintf(s.w, "    %s: %s\n", k.name, k.msg)
		}
	}
	fmt.Fprintf(s.w, "\n%s in %s: %d passed, %d skipped, %d failed (%s)\n",
		plural(total, "test"), plural(s.nPkgs, "package"), total-skipped-countTests(s.fails), skipped, countTests(s.fails),
		s.last.Sub(s.first).Round(100*time.Millisecond))
	if len(s.fails) > 0 {
		fmt.Fprintf(s.w, "FAILED (output above):\n  %s\n", strings.Join(s.fails, "\n  "))
	}
}

// countTests counts the failed tests among fails (not whole packages).
func countTests(fails []string) int {
	n := 0
	for _, f := range fails {
		if !strings.HasSuffix(f, " (package)") {
			n++
		}
	}
	return n
}

// plural is "1 test", "2 tests".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
