package plate

import (
	"testing"
	"unicode/utf8"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"k-lm 42", "KLM42"}, // the documented example (docs/gated.md)
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

// FuzzNormalize checks that normalising is idempotent and yields only
// upper-case letters and digits.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"k-lm 42", "KÖN-AB 12", "а123вс77", "ＫＬＭ４２", "ǅ", "ß", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := Normalize(s)
		if Normalize(n) != n {
			t.Fatalf("Normalize(%q) = %q, but Normalize(%q) = %q", s, n, n, Normalize(n))
		}
		for _, r := range n {
			if r == utf8.RuneError || r == ' ' || r == '-' || r == '.' {
				t.Fatalf("Normalize(%q) = %q keeps %q", s, n, r)
			}
		}
	})
}
