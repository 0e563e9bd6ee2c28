package main

import (
	"bytes"
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
