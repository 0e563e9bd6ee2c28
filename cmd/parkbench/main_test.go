package main

import (
	"bytes"
	"context"
	"errors"
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
