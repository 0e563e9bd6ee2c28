package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"strings"
	"testing"
)

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},                                   // neither binary
		{"-centrald", "c"},                   // both halves need -gated too
		{"-gated", "g"},                      // and -centrald
		{"-only", "gated", "-centrald", "c"}, // the gated half needs -gated
		{"-only", "centrald", "-gated", "g"}, // the centrald half needs -centrald
		{"-only", "both", "-centrald", "c", "-gated", "g"},
		{"-only", "scale", "-gated", "g"},   // the scale-out runs centrald
		{"-only", "sync", "-centrald", "c"}, // the sync needs both
		{"-centrald", "c", "-gated", "g", "extra"},
		{"-nosuchflag"},
	} {
		var stderr bytes.Buffer
		if code := run(context.Background(), args, &bytes.Buffer{}, &stderr); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
		}
		if !strings.Contains(stderr.String(), "usage") && !strings.Contains(stderr.String(), "flag provided but not defined") {
			t.Errorf("%q: stderr %q", args, stderr.String())
		}
	}
}

func TestMissingBinaryFails(t *testing.T) {
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"-only", "gated", "-gated", "/nonexistent/gated", "-out", "-"}, &bytes.Buffer{}, &stderr)
	if code != exitFailure || !strings.Contains(stderr.String(), "gated binary") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

// -only scale needs centrald and nothing else: without PostgreSQL or
// haproxy it gets as far as looking for the binary.
func TestScaleNeedsOnlyCentrald(t *testing.T) {
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"-only", "scale", "-centrald", "/nonexistent/centrald", "-postgres", "", "-out", "-"},
		&bytes.Buffer{}, &stderr)
	if code != exitFailure || !strings.Contains(stderr.String(), "centrald binary") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

func TestPostgresDSN(t *testing.T) {
	env := func(v string) func(string) string {
		return func(name string) string {
			if name == postgresEnv {
				return v
			}
			return ""
		}
	}
	for _, c := range []struct {
		args []string
		env  string
		want string
	}{
		{nil, "postgres://from-env", "postgres://from-env"},
		{nil, "", ""},
		{[]string{"-postgres", "postgres://flag"}, "postgres://from-env", "postgres://flag"},
		{[]string{"-postgres", ""}, "postgres://from-env", ""}, // "" skips section h even with the variable set
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		v := fs.String("postgres", "", "")
		if err := fs.Parse(c.args); err != nil {
			t.Fatal(err)
		}
		if got := postgresDSN(fs, *v, env(c.env)); got != c.want {
			t.Errorf("%q with $%s=%q: %q, want %q", c.args, postgresEnv, c.env, got, c.want)
		}
	}
}

func TestHAProxyPath(t *testing.T) {
	look := func(found bool) func(string) (string, error) {
		return func(name string) (string, error) {
			if found {
				return "/usr/local/sbin/" + name, nil
			}
			return "", errors.New("not found")
		}
	}
	exists := func(yes bool) func(string) bool { return func(string) bool { return yes } }
	for _, c := range []struct {
		flag         string
		onPath, sbin bool
		want         string
	}{
		{auto, true, true, "/usr/local/sbin/haproxy"},
		{auto, false, true, "/usr/sbin/haproxy"}, // Debian's, off a user's PATH
		{auto, false, false, ""},
		{"/opt/haproxy", false, false, "/opt/haproxy"},
		{"", true, true, ""},
	} {
		if got := haproxyPath(c.flag, look(c.onPath), exists(c.sbin)); got != c.want {
			t.Errorf("haproxyPath(%q, on PATH %v, in /usr/sbin %v) = %q, want %q", c.flag, c.onPath, c.sbin, got, c.want)
		}
	}
}

func TestArm64Paths(t *testing.T) {
	found := func(have ...string) func(string) (string, error) {
		return func(name string) (string, error) {
			for _, h := range have {
				if h == name {
					return "/usr/bin/" + name, nil
				}
			}
			return "", errors.New("not found")
		}
	}
	for _, c := range []struct {
		arm64, qemu string
		look        func(string) (string, error)
		wantBin     string
		wantQemu    string
	}{
		{auto, auto, found("qemu-aarch64"), "bin/linux-arm64/gated", "/usr/bin/qemu-aarch64"},
		{auto, auto, found("qemu-aarch64-static"), "bin/linux-arm64/gated", "/usr/bin/qemu-aarch64-static"},
		{auto, auto, found(), "bin/linux-arm64/gated", ""},
		{"x/gated", "/opt/qemu", found(), "x/gated", "/opt/qemu"},
		{"", "", found("qemu-aarch64"), "", ""},
	} {
		bin, q := arm64Paths("bin/gated", c.arm64, c.qemu, c.look)
		if bin != c.wantBin || q != c.wantQemu {
			t.Errorf("arm64Paths(%q, %q) = %q, %q; want %q, %q", c.arm64, c.qemu, bin, q, c.wantBin, c.wantQemu)
		}
	}
}
