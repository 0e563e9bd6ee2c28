// Package anpr turns what ANPR (number-plate) cameras push to the gate's
// POST /v1/anpr endpoint into plate reads, and filters those reads before
// the lane decides on them.
//
// The camera market speaks many dialects, so Parse accepts the common ones
// natively rather than asking installers to run a translator:
//
//   - a Hikvision ISAPI alarm push: multipart/form-data (or multipart/mixed)
//     whose XML part is an EventNotificationAlert with an ANPR element, the
//     other parts being JPEG pictures; or the same XML posted alone;
//   - a Plate Recognizer Stream webhook: JSON, or multipart with a "json"
//     form field next to the image upload;
//   - generic JSON read through configurable dot paths (FieldPaths), with
//     presets for a plain {"plate": "..."} body (PRODUCT.md §5), the AXIS
//     License Plate Verifier push, Milesight LPR cameras and the OpenALPR /
//     Rekor agent.
//
// Every format ends up as the same Read: a normalised plate, a confidence in
// 0..1, a direction of travel and the camera's timestamp. Filter then drops
// reads under a confidence threshold and the repeats of a plate that the
// camera sends frame after frame (PRODUCT.md §7: such a plate is one read).
//
// The package does no HTTP and no authentication: the handler reads the
// request, hands the body to ParseReader and decides what to answer. It
// also never trusts the camera's clock for anything but information;
// de-duplication runs on the gate's own clock.
package anpr

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Read is one plate seen by a camera, in the same shape whatever the
// vendor's format.
type Read struct {
	// Plate is the normalised plate (see Normalize): what the lane compares
	// with a reservation's car id.
	Plate string
	// Raw is the plate text as the camera sent it, for logs and support.
	Raw string
	// Confidence is the camera's confidence in the read, from 0 to 1, or
	// Unrated when the payload carried none (a plain {"plate": ...} body).
	Confidence float64
	// Direction is the vehicle's direction of travel relative to the camera.
	Direction Direction
	// Time is when the camera says it saw the plate; zero if it sent no
	// usable time. It is information only: camera clocks drift and reset.
	Time time.Time
	// Camera identifies the sending camera when the payload names one (an
	// IP address, a serial, a configured id); empty otherwise.
	Camera string
	// Source names the format that was parsed: "hikvision",
	// "platerecognizer", a preset name ("plain", "axis", "milesight",
	// "openalpr") or "custom" for caller-supplied field paths.
	Source string
}

// Unrated is the Confidence of a read whose payload carried no confidence.
// It is negative so that it can never be mistaken for a real score; Filter
// lets it through unless RequireConfidence is set, because the formats that
// omit it (the plain body, the simulator) come from something that has
// already decided the read is good.
const Unrated = -1.0

// Direction is where a vehicle was heading when the camera read its plate.
type Direction int

// The directions a camera can report. Cameras that look at oncoming traffic
// report Approaching for a vehicle driving towards them; when a camera is
// mounted the other way round, Options.ReverseDirection swaps the two.
const (
	// Unknown means the camera did not say, or said something this package
	// does not understand.
	Unknown Direction = iota
	// Approaching is a vehicle driving towards the camera.
	Approaching
	// Leaving is a vehicle driving away from the camera.
	Leaving
)

// String returns the direction as a lower-case word, as logs and the
// status API spell it.
func (d Direction) String() string {
	switch d {
	case Approaching:
		return "approaching"
	case Leaving:
		return "leaving"
	default:
		return "unknown"
	}
}

// reversed swaps Approaching and Leaving, for cameras mounted to watch
// vehicles from behind.
func (d Direction) reversed() Direction {
	switch d {
	case Approaching:
		return Leaving
	case Leaving:
		return Approaching
	}
	return d
}

// MaxPlateLen is the longest normalised plate accepted. No country issues
// plates anywhere near this long, so anything longer is a misread or a
// wrong field path, and the limit keeps the Filter's memory bounded.
const MaxPlateLen = 16

// maxRawPlate bounds the raw text looked at, so that a hostile or broken
// payload cannot make Normalize walk megabytes.
const maxRawPlate = 64

// Normalize reduces a plate to the form the lane compares: upper case, with
// spaces, dashes, dots and every other separator removed, so that "k-lm 42"
// and "KLM 42" are both "KLM42" (PRODUCT.md §5).
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
