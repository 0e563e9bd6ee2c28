package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The shipped example must load as it is and say exactly the defaults, so
// that its comments stay true, and it must mention every key.
func TestExampleFileIsTheDefaults(t *testing.T) {
	file, err := Load("../../configs/gated.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	def, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(file, def) {
		t.Fatalf("configs/gated.yaml differs from the defaults:\nfile %+v\ndef  %+v", file, def)
	}
	raw, _ := os.ReadFile("../../configs/gated.yaml")
	for k := range defaults {
		leaf := k[strings.LastIndex(k, ".")+1:]
		if !strings.Contains(string(raw), leaf+":") {
			t.Errorf("configs/gated.yaml does not document %s", k)
		}
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	c, err := Load("", []string{"PARKING_GATE_ID=exit-2", "PARKING_GATE_ROLE=exit", "PARKING_HARDWARE_PULSE=800ms",
		"PARKING_TICKETS_PUBLIC_KEY=ed25519:dFcg0OsR9mjMg+XFwo7EAxdHnmUHK/XICtq41vMhc3E=, ed25519:dFcg0OsR9mjMg+XFwo7EAxdHnmUHK/XICtq41vMhc3E="})
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := c.PublicKeys()
	if c.Gate.ID != "exit-2" || c.Gate.Role != "exit" || c.Hardware.Pulse.Milliseconds() != 800 || len(keys) != 2 {
		t.Fatalf("%+v keys %d", c, len(keys))
	}
}

func TestBadConfigIsReportedClearly(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"gate:\n  role: middle\n", "gate.role"},
		{"gate:\n  id: Entry 1\n", "gate.id"},
		{"gate:\n  offline_policy: open\n", "offline_policy"},
		{"gate:\n  clock_floor: yesterday\n", "clock_floor"},
		{"hardware:\n  mode: arduino\n", "hardware.mode"},
		{"hardware:\n  pulse: 50ms\n", "hardware.pulse"},
		{"hardware:\n  mode: rpi\n  relay_pin: 'GPIO 17'\n", "relay_pin"},
		{"hardware:\n  mode: rpi\n  barrier_mode: hold\n", "hold_pin"},
		{"hardware:\n  reader_baud: 1234\n", "reader_baud"},
		{"tickets:\n  public_key: nonsense\n", "tickets.public_key"},
		{"anpr:\n  min_confidence: 2\n", "min_confidence"},
		{"gates:\n  id: x\n", "gates"},
	} {
		p := filepath.Join(t.TempDir(), "g.yaml")
		os.WriteFile(p, []byte(tc.yaml), 0o600)
		if _, err := Load(p, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want mention of %q", tc.yaml, err, tc.want)
		}
	}
}
