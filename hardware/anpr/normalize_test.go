package anpr

import "testing"

func TestNormalize(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"k-lm 42", "KLM42"}, // PRODUCT.md §5
		{"KLM42", "KLM42"},
		{"  klm\t42\n", "KLM42"},
		{"B·MW.1234", "BMW1234"},
		{"AB12 CDE", "AB12CDE"},
		{"m:ab_123/4", "MAB1234"},
		{"KÖN-AB 12", "KONAB12"},      // German umlaut folded: cameras disagree on it
		{"kön-ab 12", "KONAB12"},      // and lower case folds the same way
		{"KO\u0308N AB12", "KONAB12"}, // decomposed umlaut: the combining mark goes
		{"ŠKODA1", "SKODA1"},
		{"STRAßE1", "STRASSE1"},
		{"ÆØÅ12", "AEOA12"},
		{"ŁÓDŹ 7", "LODZ7"},
		{"А123ВС77", "A123BC77"}, // Cyrillic look-alikes
		{"а123вс77", "A123BC77"},
		{"ΙΚΝ-1234", "IKN1234"}, // Greek plate letters
		{"ＫＬＭ４２", "KLM42"},      // full-width, as an IME types it
		{"١٢٣ABC", "123ABC"},    // Arabic-Indic digits
		{"京A12345", "京A12345"},  // other scripts are kept
		{"", ""},
		{" - . / ", ""},
		{"\x00\xff", ""}, // invalid UTF-8 is no plate
	}
	for _, tc := range tests {
		if got := Normalize(tc.in); got != tc.want {
			t.Errorf("Normalize(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := Normalize(tc.want); got != tc.want {
			t.Errorf("Normalize is not idempotent on %q: got %q", tc.want, got)
		}
	}
}

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
