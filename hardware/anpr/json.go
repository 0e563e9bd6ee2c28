package anpr

import (
	"bytes"
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// FieldPaths says where a JSON payload keeps each part of a read.
//
// A path is a dot-separated list of object keys, with a number selecting a
// list element ("data.results.0.plate"); several paths separated by "|" are
// tried in order and the first that holds a non-empty value wins
// ("time_msec|time"). Keys that themselves contain "." or "|" cannot be
// addressed.
type FieldPaths struct {
	// Results, when set, is the path of a list of candidate results; Plate,
	// Confidence and Direction are then looked up in each element, the one
	// with the highest confidence is used, and Direction, Time and Camera
	// fall back to the top level when an element lacks them.
	Results string
	// Plate is the path of the plate text. Required.
	Plate string
	// Confidence is the path of the read's confidence; optional.
	Confidence string
	// ConfidenceScale is what a certain read scores: 1 for 0..1 scores, 100
	// for percentages. Zero means guess: values above 1 are percentages.
	ConfidenceScale float64
	// Direction is the path of the direction of travel: a word such as
	// "in", "approach", "forward", "out", "away" or "reverse".
	Direction string
	// DirectionDegrees reads a numeric direction as an angle in the image:
	// 0° moving right, 90° moving up (away from a camera facing oncoming
	// traffic), 270° moving down (towards it). Within 60° of down is
	// Approaching, within 60° of up Leaving, and crossing the picture
	// sideways Unknown.
	DirectionDegrees bool
	// Time is the path of the camera's timestamp: RFC 3339, "2006-01-02
	// 15:04:05[.000]", "20060102 150405000" or Unix seconds, milliseconds
	// or microseconds.
	Time string
	// TimeUTC reads timestamps without a zone as UTC rather than in
	// Options.Location.
	TimeUTC bool
	// Camera is the path of the camera's identifier; optional.
	Camera string
	// State and IgnoreStates skip payloads that are not sightings: when the
	// value at State equals one of IgnoreStates (ignoring case) the payload
	// is a no-read, such as the AXIS verifier's "lost" event sent ten
	// seconds after the car left the picture.
	State        string
	IgnoreStates []string
}

// empty reports whether no field is set, so that Options{} means detect.
func (f FieldPaths) empty() bool {
	return f.Results == "" && f.Plate == "" && f.Confidence == "" && f.ConfidenceScale == 0 &&
		f.Direction == "" && !f.DirectionDegrees && f.Time == "" && !f.TimeUTC && f.Camera == "" &&
		f.State == "" && f.IgnoreStates == nil
}

// override returns f with every field that o sets replacing f's, so that a
// configuration can correct one path of a preset and keep the rest.
func (f FieldPaths) override(o FieldPaths) FieldPaths {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&f.Results, o.Results)
	set(&f.Plate, o.Plate)
	set(&f.Confidence, o.Confidence)
	set(&f.Direction, o.Direction)
	set(&f.Time, o.Time)
	set(&f.Camera, o.Camera)
	set(&f.State, o.State)
	if o.ConfidenceScale != 0 {
		f.ConfidenceScale = o.ConfidenceScale
	}
	f.DirectionDegrees = f.DirectionDegrees || o.DirectionDegrees
	f.TimeUTC = f.TimeUTC || o.TimeUTC
	if o.IgnoreStates != nil {
		f.IgnoreStates = o.IgnoreStates
	}
	return f
}

// presets are the JSON layouts known by name. Each entry says what was
// confirmed and what is a guess, so that a field trip can correct it here
// or, on site, through Options.Fields.
var presets = map[string][]FieldPaths{
	// {"plate": "..."}; everything else optional. This is
	// what the simulator and simple integrations send.
	"plain": {{
		Plate:      "plate",
		Confidence: "confidence",
		Direction:  "direction",
		Time:       "timestamp|time",
		Camera:     "camera|camera_id",
	}},

	// Plate Recognizer Stream webhook. Confirmed from Plate Recognizer's
	// published sample and their webhook receivers: data.results[].plate,
	// .score (0-1), .direction, data.timestamp (RFC 3339), data.camera_id.
	// Guess: the direction angle convention (documented as degrees, sent
	// as "" when unknown); we assume the usual one, see DirectionDegrees.
	"platerecognizer": {{
		Results:          "data.results",
		Plate:            "plate",
		Confidence:       "score",
		ConfidenceScale:  1,
		Direction:        "direction",
		DirectionDegrees: true,
		Time:             "data.timestamp",
		Camera:           "data.camera_id",
	}},

	// AXIS License Plate Verifier "push events" JSON (the ACAP is made by
	// FF Group; fields from their protocol 1.0/1.6 description): plateUTF8,
	// plateUnicode or plateText; plateConfidence as a 0-1 float (their
	// sample: 0.808824); carMoveDirection "in"/"out"/"unknown";
	// datetime "YYYYMMDD HHMMSSFFF[+HHMM]" in UTC; carState
	// new/updated/lost; sensorProviderID. Guess: camera_info.SerialNumber
	// as a fallback camera id. Not checked against a live camera.
	"axis": {{
		Plate:           "plateUTF8|plateUnicode|plateText",
		Confidence:      "plateConfidence",
		ConfidenceScale: 1,
		Direction:       "carMoveDirection",
		Time:            "datetime",
		TimeUTC:         true,
		Camera:          "sensorProviderID|camera_info.SerialNumber",
		State:           "carState",
		IgnoreStates:    []string{"lost"},
	}},

	// Milesight LPR camera "HTTP Post" JSON. From third-party receivers,
	// not from Milesight's own documentation: plate, confidence, direction
	// ("Approach"/"Away"), time_msec ("2006-01-02 15:04:05.000", camera
	// local time) or time, device. Guess: the confidence scale, hence auto.
	"milesight": {{
		Plate:      "plate",
		Confidence: "confidence",
		Direction:  "direction",
		Time:       "time_msec|time",
		Camera:     "device",
	}},

	// OpenALPR / Rekor agent. Confirmed from OpenALPR's agent
	// documentation: alpr_group with best_plate.plate,
	// best_plate.confidence (0-100), epoch_start (ms), camera_id; and
	// per-frame alpr_results with results[].plate/.confidence and
	// epoch_time; heartbeats share the endpoint. Guess: travel_direction
	// as an image angle like Plate Recognizer's.
	"openalpr": {
		{
			Plate:            "best_plate.plate|best_plate_number",
			Confidence:       "best_plate.confidence|best_confidence",
			ConfidenceScale:  100,
			Direction:        "travel_direction",
			DirectionDegrees: true,
			Time:             "epoch_start",
			Camera:           "camera_id",
			State:            "data_type",
			IgnoreStates:     []string{"heartbeat"},
		},
		{
			Results:         "results",
			Plate:           "plate",
			Confidence:      "confidence",
			ConfidenceScale: 100,
			Time:            "epoch_time",
			Camera:          "camera_id",
			State:           "data_type",
			IgnoreStates:    []string{"heartbeat"},
		},
	},
}

// Presets lists the names Options.Preset accepts, sorted: the two native
// formats and the generic JSON presets.
func Presets() []string {
	names := []string{"hikvision"}
	for name := range presets {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// maxResults bounds how many candidate results are compared, so that a
// huge list cannot make one request expensive.
const maxResults = 64

// parseJSON decodes a JSON payload and reads it with the configured or
// detected layout.
func (p *parser) parseJSON(data []byte) ([]Read, error) {
	if p.want == "hikvision" {
		return nil, errorf("the payload is JSON but the hikvision preset expects XML")
	}
	dec := json.NewDecoder(bytes.NewReader(bytes.TrimPrefix(data, utf8BOM)))
	dec.UseNumber() // keep millisecond epochs and ids exact
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, errorf("the JSON payload is not valid JSON: %s", shortErr(err))
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, errorf("the JSON payload is not an object")
	}
	return p.parseObject(obj)
}

// parseObject reads a decoded JSON object (or form fields).
func (p *parser) parseObject(obj map[string]any) ([]Read, error) {
	if p.want == "hikvision" {
		return nil, errorf("the payload is a form but the hikvision preset expects XML")
	}
	layouts, source := p.fields, p.source
	if layouts == nil {
		source = detectJSON(obj)
		if source == "" {
			return nil, errorf("the JSON payload is in no known ANPR format (no plate field found); set a preset or field paths")
		}
		layouts = presets[source]
	}
	for _, l := range layouts {
		reads, applies, err := p.readLayout(source, l, obj)
		if applies || err != nil {
			return reads, err
		}
	}
	where := layouts[0].Plate
	if layouts[0].Results != "" {
		where = layouts[0].Results
	}
	return nil, noReadf("the %s payload has nothing at %s", source, excerpt(where))
}

// detectJSON names the preset whose shape obj has, or "" for none. The
// checks go from the most to the least specific shape, since every
// format has some field called "plate".
func detectJSON(obj map[string]any) string {
	if _, ok := obj["hook"]; ok {
		return "platerecognizer"
	}
	if _, ok := lookup(obj, "data.results"); ok {
		return "platerecognizer"
	}
	if dt, ok := obj["data_type"].(string); ok && (strings.HasPrefix(dt, "alpr_") || dt == "heartbeat") {
		return "openalpr"
	}
	if _, ok := obj["best_plate"]; ok {
		return "openalpr"
	}
	for _, k := range []string{"plateUTF8", "plateUnicode", "plateText", "carMoveDirection", "packetCounter"} {
		if _, ok := obj[k]; ok {
			return "axis"
		}
	}
	if _, ok := obj["plate"]; ok {
		for _, k := range []string{"time_msec", "device", "plate_image", "full_image", "detection_region"} {
			if _, ok := obj[k]; ok {
				return "milesight"
			}
		}
		return "plain"
	}
	return ""
}

// readLayout reads obj with one layout. applies is false when the layout's
// plate (or result list) is absent, so that the next layout can be tried.
func (p *parser) readLayout(source string, l FieldPaths, obj map[string]any) (reads []Read, applies bool, err error) {
	if l.State != "" && len(l.IgnoreStates) > 0 {
		if v, ok := lookup(obj, l.State); ok {
			state := scalarString(v)
			for _, ign := range l.IgnoreStates {
				if strings.EqualFold(state, ign) {
					return nil, true, noReadf("the %s payload is a %s event, not a sighting", source, excerpt(state))
				}
			}
		}
	}
	if l.Plate == "" {
		return nil, true, errorf("the %s field paths name no plate path", source)
	}

	elems := []any{obj}
	if l.Results != "" {
		v, ok := lookup(obj, l.Results)
		if !ok {
			return nil, false, nil
		}
		list, ok := v.([]any)
		if !ok {
			return nil, true, errorf("the %s field %s is not a list", source, excerpt(l.Results))
		}
		if len(list) == 0 {
			return nil, true, noReadf("the %s payload has an empty result list", source)
		}
		if len(list) > maxResults {
			list = list[:maxResults]
		}
		elems = list
	}

	// Pick the candidate the camera is surest of; an unrated one loses to
	// any rated one.
	best, bestConf, bestRaw := -1, 0.0, ""
	for i, e := range elems {
		v, ok := lookup(e, l.Plate)
		if !ok {
			continue
		}
		raw, ok := plateText(v)
		if !ok {
			return nil, true, errorf("the %s plate at %s is not text", source, excerpt(l.Plate))
		}
		conf, err := confidenceAt(source, l, e)
		if err != nil {
			return nil, true, err
		}
		if best < 0 || conf > bestConf {
			best, bestConf, bestRaw = i, conf, raw
		}
	}
	if best < 0 {
		if l.Results != "" {
			return nil, true, noReadf("no %s result has a plate at %s", source, excerpt(l.Plate))
		}
		return nil, false, nil
	}
	elem := elems[best]

	// Direction, time and camera: the chosen result first, then the top
	// level, which is where most formats keep them.
	at := func(path string) (any, bool) {
		if path == "" {
			return nil, false
		}
		if v, ok := lookup(elem, path); ok {
			return v, true
		}
		if l.Results != "" {
			return lookup(obj, path)
		}
		return nil, false
	}
	dir := Unknown
	if v, ok := at(l.Direction); ok {
		dir = directionValue(v, l.DirectionDegrees)
	}
	var t time.Time
	if v, ok := at(l.Time); ok {
		t = timeValue(v, p.loc, l.TimeUTC)
	}
	camera := ""
	if v, ok := at(l.Camera); ok {
		camera = scalarString(v)
	}
	r, err := p.makeRead(source, bestRaw, bestConf, dir, t, camera)
	if err != nil {
		return nil, true, err
	}
	return []Read{r}, true, nil
}

// confidenceAt reads and scales the confidence of one candidate; Unrated
// when the payload has none.
func confidenceAt(source string, l FieldPaths, elem any) (float64, error) {
	if l.Confidence == "" {
		return Unrated, nil
	}
	v, ok := lookup(elem, l.Confidence)
	if !ok {
		return Unrated, nil
	}
	var f float64
	switch x := v.(type) {
	case json.Number:
		var err error
		if f, err = x.Float64(); err != nil {
			return 0, errorf("the %s confidence %s is not a number", source, excerpt(x.String()))
		}
	case string:
		s := strings.TrimSuffix(strings.TrimSpace(x), "%")
		var err error
		if f, err = strconv.ParseFloat(strings.TrimSpace(s), 64); err != nil {
			return 0, errorf("the %s confidence %s is not a number", source, excerpt(x))
		}
	default:
		return 0, errorf("the %s confidence at %s is not a number", source, excerpt(l.Confidence))
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, errorf("the %s confidence is not a finite number", source)
	}
	switch scale := l.ConfidenceScale; {
	case scale > 0:
		f /= scale
	case f > 1:
		f /= 100 // guessed: a score above 1 can only be a percentage
	}
	return clamp01(f), nil
}

// lookup follows a path (with "|" alternatives) through decoded JSON. Null
// and empty strings count as absent, so that an alternative can take over.
func lookup(root any, path string) (any, bool) {
	for alt := range strings.SplitSeq(path, "|") {
		alt = strings.TrimSpace(alt)
		if alt == "" {
			continue
		}
		cur := root
		found := true
		for key := range strings.SplitSeq(alt, ".") {
			switch c := cur.(type) {
			case map[string]any:
				v, ok := c[key]
				if !ok {
					found = false
				}
				cur = v
			case []any:
				i, err := strconv.Atoi(key)
				if err != nil || i < 0 || i >= len(c) {
					found = false
					break
				}
				cur = c[i]
			default:
				found = false
			}
			if !found {
				break
			}
		}
		if !found || cur == nil {
			continue
		}
		if s, ok := cur.(string); ok && strings.TrimSpace(s) == "" {
			continue
		}
		return cur, true
	}
	return nil, false
}

// plateText accepts a plate sent as text, or as a bare number by firmware
// that types an all-digit plate as one.
func plateText(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	}
	return "", false
}

// scalarString renders a JSON scalar as text: camera ids come as strings
// from some vendors and as numbers from others.
func scalarString(v any) string {
	switch x := v.(type) {
	case string:
		return strings.TrimSpace(x)
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	}
	return ""
}

// directionValue reads a direction sent as a word or, for formats that use
// one, as an angle in degrees.
func directionValue(v any, degrees bool) Direction {
	switch x := v.(type) {
	case json.Number:
		if degrees {
			if f, err := x.Float64(); err == nil {
				return directionDegrees(f)
			}
		}
		return Unknown
	case string:
		if degrees {
			if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil {
				return directionDegrees(f)
			}
		}
		return directionWord(x)
	}
	return Unknown
}

// directionWord understands the words vendors use: Hikvision
// forward/reverse, AXIS in/out, Milesight Approach/Away, and plain English.
func directionWord(s string) Direction {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "forward", "in", "approach", "approaching", "toward", "towards", "incoming",
		"entry", "enter", "entering", "arrive", "arriving", "inbound", "coming":
		return Approaching
	case "reverse", "backward", "out", "away", "leave", "leaving", "outgoing",
		"exit", "exiting", "depart", "departing", "outbound", "going":
		return Leaving
	}
	return Unknown
}

// directionDegrees turns an image-plane angle into a direction: within 60°
// of straight down the picture is a vehicle coming at a camera that faces
// the traffic, within 60° of straight up one driving away, and anything
// else is crossing the picture, which says nothing.
func directionDegrees(d float64) Direction {
	if math.IsNaN(d) || math.IsInf(d, 0) {
		return Unknown
	}
	d = math.Mod(d, 360)
	if d < 0 {
		d += 360
	}
	switch {
	case math.Abs(d-270) <= 60:
		return Approaching
	case math.Abs(d-90) <= 60:
		return Leaving
	}
	return Unknown
}

// timeValue reads a timestamp sent as a number (a Unix epoch) or as text.
// A value that cannot be read gives the zero time: the camera's time is
// information, not a reason to drop a read.
func timeValue(v any, loc *time.Location, utc bool) time.Time {
	switch x := v.(type) {
	case json.Number:
		return epochText(x.String())
	case string:
		t, _ := parseTime(x, loc, utc)
		return t
	}
	return time.Time{}
}

// zoned and naive are the text layouts cameras use, with and without a
// zone. time.Parse accepts fractional seconds after the seconds field even
// when the layout has none, which covers ".847" and ".606935".
var (
	zoned = []string{
		time.RFC3339,
		"2006-01-02 15:04:05Z07:00",
		"2006-01-02T15:04:05Z0700",
		"2006-01-02 15:04:05Z0700",
		"2006-01-02 15:04:05 Z07:00",
		time.RFC1123Z,
		time.RFC1123,
	}
	naive = []string{
		"2006-01-02T15:04:05",
		"2006-01-02 15:04:05",
		"2006/01/02 15:04:05",
	}
)

// parseTime reads a camera timestamp. Zone-less times are read in loc, or
// in UTC when utc is set.
func parseTime(s string, loc *time.Location, utc bool) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 64 {
		return time.Time{}, false
	}
	if utc || loc == nil {
		loc = time.UTC
	}
	if isDigits(strings.Replace(s, ".", "", 1)) {
		t := epochText(s)
		return t, !t.IsZero()
	}
	for _, layout := range zoned {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	for _, layout := range naive {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, true
		}
	}
	if t, ok := parseCompact(s, loc); ok {
		return t, true
	}
	return time.Time{}, false
}

// parseCompact reads the AXIS verifier's "20230517 143636123" with an
// optional "+0200": digits run into each other, which no Go layout can
// express for the milliseconds.
func parseCompact(s string, loc *time.Location) (time.Time, bool) {
	date, rest, ok := strings.Cut(s, " ")
	if !ok || len(date) != 8 || len(rest) < 6 || !isDigits(date) {
		return time.Time{}, false
	}
	zone := ""
	if i := strings.IndexAny(rest, "+-"); i >= 0 {
		rest, zone = rest[:i], rest[i:]
	}
	rest = strings.TrimSpace(rest)
	if !isDigits(rest) || len(rest) < 6 || len(rest) > 15 {
		return time.Time{}, false
	}
	clock, frac := rest[:6], rest[6:]
	t, err := time.ParseInLocation("20060102 150405", date+" "+clock, loc)
	if err != nil {
		return time.Time{}, false
	}
	if frac != "" {
		ns, _ := strconv.Atoi((frac + "000000000")[:9])
		t = t.Add(time.Duration(ns))
	}
	if zone != "" {
		z, err := time.Parse("-0700", zone)
		if err != nil {
			return time.Time{}, false
		}
		_, off := z.Zone()
		t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.FixedZone("", off))
	}
	return t, true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// epochText reads a Unix time whose unit is guessed from its size, since
// vendors send seconds (OpenALPR's open-source agent), milliseconds
// (OpenALPR groups) or microseconds: any present date in seconds is below
// 1e11, in milliseconds below 1e14, and so on. Whole numbers are read as
// integers so that milliseconds stay exact.
func epochText(s string) time.Time {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		switch {
		case i <= 0:
			return time.Time{}
		case i < 1e11:
			return time.Unix(i, 0)
		case i < 1e14:
			return time.UnixMilli(i)
		case i < 1e17:
			return time.UnixMicro(i)
		default:
			return time.Unix(0, i)
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f <= 0 || f >= 1e11 {
		// Fractions only make sense on seconds; anything else is noise.
		return time.Time{}
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9))
}
