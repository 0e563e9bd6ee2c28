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
//     presets for a plain {"plate": "..."} body (docs/gated.md), the AXIS
//     License Plate Verifier push, Milesight LPR cameras and the OpenALPR /
//     Rekor agent.
//
// Every format ends up as the same Read: a normalised plate, a confidence in
// 0..1, a direction of travel and the camera's timestamp. Filter then drops
// reads under a confidence threshold and the repeats of a plate that the
// camera sends frame after frame (such a plate is one read).
//
// The package does no HTTP and no authentication: the handler reads the
// request, hands the body to ParseReader and decides what to answer. It
// also never trusts the camera's clock for anything but information;
// de-duplication runs on the gate's own clock.
package anpr

import (
	"time"

	"github.com/parkgate/parkgate/plate"
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

// MaxPlateLen is the longest normalised plate accepted (plate.MaxLen).
const MaxPlateLen = plate.MaxLen

// maxRawPlate bounds the raw text looked at, so that a hostile or broken
// payload cannot make Normalize walk megabytes.
const maxRawPlate = 64

// Normalize is plate.Normalize, the form the lane compares plates in.
func Normalize(p string) string { return plate.Normalize(p) }
