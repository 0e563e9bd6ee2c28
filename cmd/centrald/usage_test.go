package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --help is asked for: the usage on stdout and exit 0, as parkctl does.
// An unknown command is a mistake: it is named, then the usage, on
// stderr, exit 2 — even when the configuration is bad too.
func TestHelpAndUnknownCommand(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"--config", "x.yaml", "--help"}} {
		var stdout, stderr strings.Builder
		if code := run(args, nil, &stdout, &stderr); code != exitOK {
			t.Errorf("%q: exit %d, want 0", args, code)
		}
		if !strings.HasPrefix(stdout.String(), "usage: centrald ") || stderr.Len() != 0 {
			t.Errorf("%q: stdout %q, stderr %q; want the usage on stdout only", args, stdout.String(), stderr.String())
		}
	}
	for _, env := range [][]string{nil, {"PARKING_LOG_LEVEL=loud"}} {
		var stdout, stderr strings.Builder
		if code := run([]string{"frobnicate"}, env, &stdout, &stderr); code != exitUsage {
			t.Errorf("frobnicate (env %q): exit %d, want %d", env, code, exitUsage)
		}
		if want := "centrald: unknown command \"frobnicate\"\nusage: centrald "; !strings.HasPrefix(stderr.String(), want) || stdout.Len() != 0 {
			t.Errorf("frobnicate (env %q): stdout %q, stderr %q; want stderr to start %q", env, stdout.String(), stderr.String(), want)
		}
	}
	var stdout, stderr strings.Builder
	if code := run([]string{"--bogus"}, nil, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "-bogus\nusage: centrald ") {
		t.Errorf("--bogus: exit %d, stderr %q", code, stderr.String())
	}
}

// A misspelt key in the config file is named with the file and its dotted
// path, and the nearest known key; centrald does not start (exit 2).
func TestConfigTypoNamesFileAndKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.yaml")
	if err := os.WriteFile(path, []byte("htp:\n  addr: 127.0.0.1:9000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	code := run([]string{"--config", path, "check-config"}, nil, &stdout, &stderr)
	if want := "centrald: " + path + ": unknown key \"htp\" (did you mean \"http\"?)\n"; code != exitUsage || stderr.String() != want {
		t.Errorf("exit %d, stderr %q; want exit 2 and %q", code, stderr.String(), want)
	}
}

// TestDryRunOnlyWithPrune: --dry-run with another command is a usage
// error that shows the usage (it used to exit 2 saying nothing).
func TestDryRunOnlyWithPrune(t *testing.T) {
	var stdout, stderr strings.Builder
	if code := run([]string{"--dry-run", "version"}, nil, &stdout, &stderr); code != exitUsage ||
		!strings.HasPrefix(stderr.String(), "usage: centrald ") || stdout.Len() != 0 {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 2 and the usage on stderr", code, stdout.String(), stderr.String())
	}
}
