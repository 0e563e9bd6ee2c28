package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `gated check-config` warns about a relay on a pin pulled to its active
// level at power-on, with the config.txt line that holds it inactive.
func TestCheckConfigWarnsAboutBootLevels(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"check-config"}, []string{"PARKING_HARDWARE_MODE=rpi", "PARKING_HARDWARE_RELAY_PIN=GPIO4"}, &out, &errOut)
	if code != exitOK || !strings.Contains(errOut.String(), "gpio=4=op,dl") {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	out.Reset()
	errOut.Reset()
	if code := run([]string{"check-config"}, nil, &out, &errOut); code != exitOK || errOut.Len() != 0 {
		t.Fatalf("default config: exit %d, stderr %q", code, errOut.String())
	}
}

// `gated safe` (systemd's ExecStopPost) has nothing to drive in sim mode,
// and says why it cannot drive GPIO where there is none.
func TestSafeCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"safe"}, nil, &out, &errOut); code != exitOK || !strings.Contains(out.String(), "inactive") {
		t.Fatalf("sim: exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
	if chips, _ := filepath.Glob("/dev/gpiochip*"); len(chips) > 0 {
		t.Skip("this machine has GPIO: a test must not drive its lines")
	}
	out.Reset()
	errOut.Reset()
	code := run([]string{"safe"}, []string{"PARKING_HARDWARE_MODE=rpi"}, &out, &errOut)
	if code != exitFailure || !strings.Contains(errOut.String(), "gated safe: hardware.relay_pin: rpi:") {
		t.Fatalf("rpi without GPIO: exit %d, stderr %q", code, errOut.String())
	}
}

// The shipped unit keeps the lane fail-safe: it runs `gated safe` with the
// daemon's config after every stop, restarts without a start limit, does
// not wait for time sync (which has no timeout), and the USB-serial
// drivers its DeviceAllow rules name are loaded at boot.
func TestUnitFailsSafe(t *testing.T) {
	raw, err := os.ReadFile("../../systemd/gated.service")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string][]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
			keys[k] = append(keys[k], v)
		}
	}
	start, stop := keys["ExecStart"], keys["ExecStopPost"]
	if len(start) != 1 || len(stop) != 1 {
		t.Fatalf("ExecStart %q, ExecStopPost %q", start, stop)
	}
	bin, cfg, _ := strings.Cut(start[0], " ")
	if stop[0] != bin+" safe "+cfg {
		t.Errorf("ExecStopPost=%s, want %s safe %s", stop[0], bin, cfg)
	}
	if v := keys["StartLimitIntervalSec"]; len(v) != 1 || v[0] != "0" {
		t.Errorf("StartLimitIntervalSec %q, want 0", v)
	}
	for _, k := range []string{"After", "Wants", "Requires"} {
		for _, v := range keys[k] {
			if strings.Contains(v, "time-sync.target") {
				t.Errorf("%s=%s: the time-sync.target start job has no timeout; an offline lane would never start", k, v)
			}
		}
	}
	mods, err := os.ReadFile("../../systemd/parkgate-gated.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"cdc_acm", "usbserial"} {
		if !strings.Contains("\n"+string(mods)+"\n", "\n"+m+"\n") {
			t.Errorf("systemd/parkgate-gated.conf does not load %s", m)
		}
	}
}
