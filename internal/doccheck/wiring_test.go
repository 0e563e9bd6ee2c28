package doccheck

import (
	"os"
	"strings"
	"testing"

	gateconfig "github.com/parkgate/parkgate/gate/config"
)

// The wiring diagram (docs/wiring.svg, and the PNG rendered from it) shows
// the relay and the loop detector on the pins gated uses by default, named
// by BCM number and by their place on the Raspberry Pi's 40-pin header.
func TestWiringDiagramShowsTheDefaultPins(t *testing.T) {
	cfg, err := gateconfig.Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	// BCM GPIO number → physical pin on the 40-pin header.
	header := map[string]string{
		"GPIO2": "3", "GPIO3": "5", "GPIO4": "7", "GPIO17": "11", "GPIO27": "13", "GPIO22": "15",
		"GPIO10": "19", "GPIO9": "21", "GPIO11": "23", "GPIO5": "29", "GPIO6": "31", "GPIO13": "33",
		"GPIO19": "35", "GPIO26": "37", "GPIO14": "8", "GPIO15": "10", "GPIO18": "12", "GPIO23": "16",
		"GPIO24": "18", "GPIO25": "22", "GPIO8": "24", "GPIO7": "26", "GPIO12": "32", "GPIO16": "36",
		"GPIO20": "38", "GPIO21": "40",
	}
	svg, err := os.ReadFile("../../docs/wiring.svg")
	if err != nil {
		t.Fatal(err)
	}
	for role, pin := range map[string]string{"relay_pin": cfg.Hardware.RelayPin, "loop_pin": cfg.Hardware.LoopPin} {
		phys, ok := header[pin]
		if !ok {
			t.Fatalf("hardware.%s defaults to %q, not a header GPIO this test knows", role, pin)
		}
		for _, want := range []string{"pin " + phys + " · " + pin, role + ": " + pin + " (header pin " + phys + ")"} {
			if !strings.Contains(string(svg), want) {
				t.Errorf("docs/wiring.svg does not show %q (hardware.%s defaults to %s)", want, role, pin)
			}
		}
	}
}
