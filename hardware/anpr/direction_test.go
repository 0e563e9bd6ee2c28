package anpr

import (
	"testing"
)

func TestDirectionString(t *testing.T) {
	for d, want := range map[Direction]string{Unknown: "unknown", Approaching: "approaching", Leaving: "leaving", Direction(42): "unknown"} {
		if got := d.String(); got != want {
			t.Errorf("Direction(%d).String() = %q, want %q", int(d), got, want)
		}
	}
}

func TestDirectionWords(t *testing.T) {
	tests := map[string]Direction{
		"forward": Approaching, "reverse": Leaving, "unknown": Unknown, // Hikvision
		"in": Approaching, "out": Leaving, "unk": Unknown, // AXIS
		"Approach": Approaching, "Away": Leaving, // Milesight
		" ENTRY ": Approaching, "exit": Leaving, "": Unknown, "sideways": Unknown,
	}
	for in, want := range tests {
		if got := directionWord(in); got != want {
			t.Errorf("directionWord(%q) = %v, want %v", in, got, want)
		}
	}
	degrees := map[float64]Direction{
		270: Approaching, 225: Approaching, 315: Approaching, -90: Approaching,
		90: Leaving, 45: Leaving, 135: Leaving, 450: Leaving,
		0: Unknown, 180: Unknown, 200: Unknown, 340: Unknown,
	}
	for in, want := range degrees {
		if got := directionDegrees(in); got != want {
			t.Errorf("directionDegrees(%v) = %v, want %v", in, got, want)
		}
	}
}
