package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/run.golden")

// testdata/run.jsonl was recorded from `go test -json ./...` on a module
// with a passing package with skips (a skipped subtest too), a failing
// test, a package that does not compile and one without tests. A stand-in
// for go replays it and exits 1, as go test did: the report shows the whole
// failure output, the build errors, one line per package and every skip
// with its package, name and message, and the exit status is go test's.
func TestReportOfRecordedRun(t *testing.T) {
	dir := t.TempDir()
	fakeGo := filepath.Join(dir, "go")
	argsFile := filepath.Join(dir, "args")
	rec, err := filepath.Abs("testdata/run.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\necho \"$@\" >" + argsFile + "\ncat " + rec + "\necho 'go: a complaint' >&2\nexit 1\n"
	if err := os.WriteFile(fakeGo, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	code := run(fakeGo, []string{"-race", "-count=1", "./..."}, &stdout, &stderr, nil)
	if code != 1 {
		t.Errorf("exit status %d, want go test's 1", code)
	}
	if args, _ := os.ReadFile(argsFile); string(args) != "test -json -race -count=1 ./...\n" {
		t.Errorf("go ran with %q", args)
	}
	if stderr.String() != "go: a complaint\n" {
		t.Errorf("stderr %q: go's own stderr must pass through", stderr.String())
	}
	golden := "testdata/run.golden"
	if *update {
		os.WriteFile(golden, []byte(stdout.String()), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if stdout.String() != string(want) {
		t.Errorf("report differs from %s (go test -run %s -update to accept):\n%s", golden, t.Name(), stdout.String())
	}
	// What a person looks for, whatever the layout.
	for _, w := range []string{
		"b_test.go:9: got 2, want 3\n    b_test.go:10: more context\n        over two lines\n--- FAIL: TestBreaks",
		`c/c_test.go:5:40: cannot use "s"`,
		"TestNeedsPostgres: a_test.go:12: PARKING_TEST_POSTGRES_DSN unset: the PostgreSQL store tests need a server",
		"TestSub/mqtt: a_test.go:18: PARKING_TEST_MQTT_URL unset",
		"ok   example.com/fix/a ",
		"?    example.com/fix/d [no test files]",
	} {
		if !strings.Contains(stdout.String(), w) {
			t.Errorf("report lacks %q", w)
		}
	}

	// A passing run exits 0.
	os.WriteFile(fakeGo, []byte("#!/bin/sh\nexit 0\n"), 0o755)
	if code := run(fakeGo, nil, &stdout, &stderr, nil); code != 0 {
		t.Errorf("passing run: exit status %d", code)
	}
}

// While nothing is printed, a tick says what is compiling or running.
func TestHeartbeat(t *testing.T) {
	var b strings.Builder
	s := newSummary(&b)
	t0 := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	s.heartbeat(t0)
	s.line(`{"Time":"2026-12-03T09:00:01Z","Action":"start","Package":"example.com/slow"}`)
	s.heartbeat(t0.Add(20 * time.Second))
	want := "… compiling (0 packages done)\n… running example.com/slow for 19s (0 packages done)\n"
	if b.String() != want {
		t.Fatalf("got %q, want %q", b.String(), want)
	}
	s.line(`{"Time":"2026-12-03T09:00:30Z","Action":"pass","Package":"example.com/slow","Elapsed":29}`)
	b.Reset()
	s.heartbeat(t0.Add(35 * time.Second)) // a line was printed 5 s ago
	if b.Len() != 0 {
		t.Fatalf("heartbeat right after a line: %q", b.String())
	}
}
