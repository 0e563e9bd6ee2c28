// Package plate holds the one way parkgate compares licence plates, used
// by both halves: centrald (a reservation's carId), the gate's cache and
// its ANPR camera input. Plates are compared after normalising
// ("k-lm 42" is "KLM42"), so a plate typed by a driver matches the one a
// camera reads.
package plate

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxLen is the longest normalised plate accepted. No country issues
// plates anywhere near this long, so anything longer is a misread or a
// wrong field path, and the limit keeps memory bounded (the ANPR filter remembers plates).
const MaxLen = 16

// Normalize reduces a plate to the form the lane compares: upper case, with
// spaces, dashes, dots and every other separator removed, so that "k-lm 42"
// and "KLM 42" are both "KLM42".
//
// Letters with diacritics are folded to their base letter (Ö→O, Š→S, ß→SS)
// because cameras disagree on whether to report them: one OCR engine reads
// a German "KÖN" plate as "KÖN", the next as "KON", and a driver may type
// either when booking. The Cyrillic and Greek letters that plates share
// with the Latin alphabet (А, В, Е, К, М, Н, О, Р, С, Т, У, Х, ...) are
// folded to those Latin letters for the same reason, and full-width and
// Arabic-Indic digits become ASCII digits. Other letters (a Chinese
// province character, say) are kept, upper-cased. The result is empty when
// the input has no letter or digit; callers must treat that as no plate.
func Normalize(plate string) string {
	var b strings.Builder
	b.Grow(len(plate))
	for _, r := range plate {
		if r < utf8.RuneSelf {
			switch {
			case 'a' <= r && r <= 'z':
				b.WriteByte(byte(r - 'a' + 'A'))
			case 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
				b.WriteByte(byte(r))
			}
			continue
		}
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			continue
		}
		switch {
		case 0xFF10 <= r && r <= 0xFF19: // full-width digits
			b.WriteByte(byte('0' + r - 0xFF10))
			continue
		case 0xFF21 <= r && r <= 0xFF3A: // full-width upper case
			b.WriteByte(byte('A' + r - 0xFF21))
			continue
		case 0xFF41 <= r && r <= 0xFF5A: // full-width lower case
			b.WriteByte(byte('A' + r - 0xFF41))
			continue
		case 0x0660 <= r && r <= 0x0669: // Arabic-Indic digits
			b.WriteByte(byte('0' + r - 0x0660))
			continue
		case 0x06F0 <= r && r <= 0x06F9: // Extended Arabic-Indic digits
			b.WriteByte(byte('0' + r - 0x06F0))
			continue
		case 0x0966 <= r && r <= 0x096F: // Devanagari digits
			b.WriteByte(byte('0' + r - 0x0966))
			continue
		}
		up := unicode.ToUpper(r)
		if f, ok := fold[up]; ok {
			b.WriteString(f)
			continue
		}
		b.WriteRune(up)
	}
	return b.String()
}

// fold maps upper-case letters that cameras and drivers write
// inconsistently to the ASCII letters a plate comparison should see.
var fold = map[rune]string{
	// Latin-1 Supplement and Latin Extended-A.
	'À': "A", 'Á': "A", 'Â': "A", 'Ã': "A", 'Ä': "A", 'Å': "A", 'Ā': "A", 'Ă': "A", 'Ą': "A",
	'Æ': "AE",
	'Ç': "C", 'Ć': "C", 'Ĉ': "C", 'Ċ': "C", 'Č': "C",
	'Ð': "D", 'Ď': "D", 'Đ': "D",
	'È': "E", 'É': "E", 'Ê': "E", 'Ë': "E", 'Ē': "E", 'Ĕ': "E", 'Ė': "E", 'Ę': "E", 'Ě': "E",
	'Ĝ': "G", 'Ğ': "G", 'Ġ': "G", 'Ģ': "G",
	'Ĥ': "H", 'Ħ': "H",
	'Ì': "I", 'Í': "I", 'Î': "I", 'Ï': "I", 'Ĩ': "I", 'Ī': "I", 'Ĭ': "I", 'Į': "I", 'İ': "I",
	'Ĳ': "IJ",
	'Ĵ': "J",
	'Ķ': "K",
	'Ĺ': "L", 'Ļ': "L", 'Ľ': "L", 'Ŀ': "L", 'Ł': "L",
	'Ñ': "N", 'Ń': "N", 'Ņ': "N", 'Ň': "N",
	'Ò': "O", 'Ó': "O", 'Ô': "O", 'Õ': "O", 'Ö': "O", 'Ø': "O", 'Ō': "O", 'Ŏ': "O", 'Ő': "O",
	'Œ': "OE",
	'Ŕ': "R", 'Ŗ': "R", 'Ř': "R",
	'Ś': "S", 'Ŝ': "S", 'Ş': "S", 'Š': "S", 'Ș': "S",
	'ß': "SS", 'ẞ': "SS",
	'Ţ': "T", 'Ť': "T", 'Ŧ': "T", 'Ț': "T",
	'Þ': "TH",
	'Ù': "U", 'Ú': "U", 'Û': "U", 'Ü': "U", 'Ũ': "U", 'Ū': "U", 'Ŭ': "U", 'Ů': "U", 'Ű': "U", 'Ų': "U",
	'Ŵ': "W",
	'Ý': "Y", 'Ÿ': "Y", 'Ŷ': "Y",
	'Ź': "Z", 'Ż': "Z", 'Ž': "Z",
	// Cyrillic letters that plates share with Latin ones.
	'А': "A", 'В': "B", 'Е': "E", 'Ё': "E", 'К': "K", 'М': "M", 'Н': "H", 'О': "O",
	'Р': "P", 'С': "C", 'Т': "T", 'У': "Y", 'Х': "X", 'І': "I", 'Ј': "J", 'Ѕ': "S",
	// Greek letters that Greek plates use precisely because they look Latin.
	'Α': "A", 'Β': "B", 'Ε': "E", 'Ζ': "Z", 'Η': "H", 'Ι': "I", 'Κ': "K", 'Μ': "M",
	'Ν': "N", 'Ο': "O", 'Ρ': "P", 'Τ': "T", 'Υ': "Y", 'Χ': "X",
}
