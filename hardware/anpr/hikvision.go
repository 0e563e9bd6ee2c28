package anpr

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// hikEvent is the part of a Hikvision ISAPI EventNotificationAlert that a
// gate needs. Field tags carry no namespace on purpose: encoding/xml then
// matches the local name in any namespace, and Hikvision firmware uses
// "http://www.hikvision.com/ver20/XMLSchema", "http://www.isapi.org/ver20/XMLSchema"
// or none at all.
//
// Confirmed against Hikvision's "XML_EventNotificationAlert_ANPR" message
// description and a payload recorded from a DS-TCG405-E: ANPR/licensePlate,
// ANPR/confidenceLevel (0-100), ANPR/direction (forward, reverse, unknown),
// dateTime (ISO 8601 with offset), eventType "ANPR", eventState.
type hikEvent struct {
	XMLName    xml.Name
	IPAddress  string `xml:"ipAddress"`
	MACAddress string `xml:"macAddress"`
	ChannelID  string `xml:"channelID"`
	DateTime   string `xml:"dateTime"`
	EventType  string `xml:"eventType"`
	EventState string `xml:"eventState"`
	ANPR       *struct {
		LicensePlate    string `xml:"licensePlate"`
		ConfidenceLevel string `xml:"confidenceLevel"`
		Direction       string `xml:"direction"`
	} `xml:"ANPR"`
}

// parseXML reads a bare EventNotificationAlert or the XML part of a
// Hikvision multipart push.
func (p *parser) parseXML(data []byte) ([]Read, error) {
	if p.want == "json" {
		return nil, errorf("the payload is XML but the %s format is JSON", p.source)
	}
	data = bytes.TrimPrefix(data, utf8BOM)
	dec := xml.NewDecoder(bytes.NewReader(data))
	// Some firmware declares a legacy charset (GB2312, ISO-8859-1). The
	// fields read here are ASCII in practice, so the bytes are taken as
	// they are rather than refusing the event.
	dec.CharsetReader = func(_ string, in io.Reader) (io.Reader, error) { return in, nil }
	var ev hikEvent
	if err := dec.Decode(&ev); err != nil {
		return nil, errorf("the XML event is not well-formed: %s", shortErr(err))
	}
	if ev.XMLName.Local != "EventNotificationAlert" {
		return nil, errorf("the XML root element is %s, not EventNotificationAlert", excerpt(ev.XMLName.Local))
	}
	if strings.EqualFold(strings.TrimSpace(ev.EventState), "inactive") {
		return nil, noReadf("the Hikvision event is inactive")
	}
	eventType := strings.TrimSpace(ev.EventType)
	if ev.ANPR == nil || strings.TrimSpace(ev.ANPR.LicensePlate) == "" {
		if !strings.EqualFold(eventType, "ANPR") {
			return nil, noReadf("the Hikvision event type is %s, not ANPR", excerpt(eventType))
		}
		return nil, noReadf("the Hikvision ANPR event has no licensePlate")
	}
	raw := strings.TrimSpace(ev.ANPR.LicensePlate)
	// Hikvision reports a vehicle whose plate it could not read with the
	// word "unknown" in place of the plate; that is not a plate.
	if strings.EqualFold(raw, "unknown") {
		return nil, noReadf("the Hikvision camera saw a vehicle but could not read its plate")
	}

	conf := Unrated
	if c := strings.TrimSpace(ev.ANPR.ConfidenceLevel); c != "" {
		v, err := strconv.ParseFloat(c, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, errorf("the Hikvision confidenceLevel %s is not a number", excerpt(c))
		}
		conf = clamp01(v / 100)
	}

	camera := strings.TrimSpace(ev.IPAddress)
	if camera == "" {
		camera = strings.TrimSpace(ev.MACAddress)
	}
	// An NVR forwards the events of all its cameras from one address; the
	// channel tells them apart.
	if ch := strings.TrimSpace(ev.ChannelID); ch != "" && camera != "" {
		camera += "/" + ch
	}

	t, _ := parseTime(strings.TrimSpace(ev.DateTime), p.loc, false)
	r, err := p.makeRead("hikvision", raw, conf, directionWord(ev.ANPR.Direction), t, camera)
	if err != nil {
		return nil, err
	}
	return []Read{r}, nil
}

// makeRead finishes a read the same way for every format: normalise and
// check the plate, apply the direction option, trim the camera id.
func (p *parser) makeRead(source, raw string, conf float64, dir Direction, t time.Time, camera string) (Read, error) {
	raw = strings.TrimSpace(raw)
	if strings.Contains(raw, `\u`) {
		// A camera that double-escapes its JSON (the AXIS License Plate
		// Verifier documents plateText as "\u0041...") would otherwise
		// yield a plate made of the escape letters.
		if s, err := strconv.Unquote(`"` + raw + `"`); err == nil {
			raw = strings.TrimSpace(s)
		}
	}
	if len(raw) > maxRawPlate {
		return Read{}, errorf("the %s plate is %d bytes long, longer than any number plate", source, len(raw))
	}
	plate := Normalize(raw)
	if plate == "" {
		return Read{}, noReadf("the %s plate %s has no letter or digit", source, excerpt(raw))
	}
	if n := len([]rune(plate)); n > MaxPlateLen {
		return Read{}, errorf("the %s plate %s has %d characters, more than the %d a plate can have", source, excerpt(raw), n, MaxPlateLen)
	}
	if p.opt.ReverseDirection {
		dir = dir.reversed()
	}
	return Read{
		Plate:      plate,
		Raw:        printable(raw, maxRawPlate),
		Confidence: conf,
		Direction:  dir,
		Time:       t,
		Camera:     printable(camera, 128),
		Source:     source,
	}, nil
}

// printable makes camera-supplied text safe to log: at most n bytes, valid
// UTF-8, no control characters (a newline in a plate would forge a log
// line).
func printable(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	s = strings.ToValidUTF8(s, "")
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}

// clamp01 keeps a confidence in 0..1 whatever the camera sent.
func clamp01(v float64) float64 {
	switch {
	case v < 0:
		return 0
	case v > 1:
		return 1
	}
	return v
}
