package main

import (
	"strings"
	"testing"
)

// A camera setting that cannot work stops gated at start with exit code 2
// and a message naming the key, instead of a gate that takes pushes from
// the wrong place or refuses its camera.
func TestBadCameraConfigStopsAtStart(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want string
	}{
		{"PARKING_ANPR_ALLOW_FROM=10.20.0.0/24,10.30.0.500/32", `anpr.allow_from: "10.30.0.500/32" is not a network`},
		{"PARKING_ANPR_USERNAME=hikcam", "anpr.username and anpr.password: set both"},
		{"PARKING_ANPR_PRESET=hikvison", `anpr.preset "hikvison"`},
	} {
		var stdout, stderr strings.Builder
		if code := run([]string{"check-config"}, []string{tc.env}, &stdout, &stderr); code != exitUsage {
			t.Errorf("%s: exit code %d, want %d", tc.env, code, exitUsage)
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%s: stderr %q, want it to say %q", tc.env, stderr.String(), tc.want)
		}
	}
}
