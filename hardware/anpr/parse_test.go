package anpr

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// cet is the zone the zone-less samples (Milesight) are read in.
var cet = time.FixedZone("CET", 3600)

// samples are the recorded payloads in testdata with the Content-Type the
// camera sends them with.
var samples = []struct {
	file, contentType string
}{
	{"hikvision_anpr.xml", "application/xml; charset=UTF-8"},
	{"hikvision_anpr_multipart.bin", "multipart/form-data; boundary=boundary"},
	{"hikvision_mixed_picture_first.bin", "multipart/mixed; boundary=MIME_boundary_hik"},
	{"hikvision_videoloss.xml", "application/xml"},
	{"platerecognizer_stream.json", "application/json"},
	{"platerecognizer_stream.multipart", "multipart/form-data; boundary=------------------------9a1c3e5f7b2d4a60"},
	{"axis_lpv.json", "application/json"},
	{"milesight_lpr.json", "application/json"},
	{"openalpr_group.json", "application/json"},
	{"openalpr_results.json", "application/json"},
	{"openalpr_heartbeat.json", "application/json"},
	{"plain.json", "application/json"},
}

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseSamples(t *testing.T) {
	hik := Read{
		Plate: "KLM42", Raw: "KLM42", Confidence: 0.97, Direction: Approaching,
		Time:   time.Date(2025, 3, 11, 8, 15, 23, 417e6, time.FixedZone("", 3600)),
		Camera: "192.168.1.64/1", Source: "hikvision",
	}
	utcRead := time.Date(2025, 3, 11, 7, 15, 23, 417e6, time.UTC)
	tests := []struct {
		file, contentType string
		want              Read
		noRead            bool
	}{
		{file: "hikvision_anpr.xml", contentType: "application/xml; charset=UTF-8", want: hik},
		{file: "hikvision_anpr.xml", contentType: "text/xml", want: hik},
		{file: "hikvision_anpr.xml", contentType: "", want: hik},           // sniffed
		{file: "hikvision_anpr.xml", contentType: "text/plain", want: hik}, // sniffed
		{file: "hikvision_anpr_multipart.bin", contentType: "multipart/form-data; boundary=boundary", want: hik},
		{file: "hikvision_anpr_multipart.bin", contentType: "multipart/mixed; boundary=boundary", want: hik},
		{file: "hikvision_anpr_multipart.bin", contentType: "", want: hik}, // boundary sniffed
		{file: "hikvision_mixed_picture_first.bin", contentType: "multipart/mixed; boundary=MIME_boundary_hik", want: Read{
			Plate: "BMW1234", Raw: "B MW 1234", Confidence: 0.88, Direction: Leaving,
			Time:   time.Date(2025, 3, 11, 17, 42, 8, 0, time.FixedZone("", 3600)),
			Camera: "10.20.0.31/2", Source: "hikvision",
		}},
		{file: "hikvision_videoloss.xml", contentType: "application/xml", noRead: true},
		{file: "platerecognizer_stream.json", contentType: "application/json", want: Read{
			Plate: "KLM42", Raw: "klm42", Confidence: 0.903, Direction: Approaching,
			Time: utcRead, Camera: "entry-cam", Source: "platerecognizer",
		}},
		{file: "platerecognizer_stream.multipart", contentType: "multipart/form-data; boundary=------------------------9a1c3e5f7b2d4a60", want: Read{
			Plate: "BMW1234", Raw: "b-mw1234", Confidence: 0.857, Direction: Unknown,
			Time: utcRead, Camera: "entry-cam", Source: "platerecognizer",
		}},
		{file: "axis_lpv.json", contentType: "application/json", want: Read{
			Plate: "KLM42", Raw: "KLM42", Confidence: 0.912443, Direction: Approaching,
			Time: utcRead, Camera: "entry-lane-1", Source: "axis",
		}},
		{file: "milesight_lpr.json", contentType: "application/json", want: Read{
			Plate: "KLM42", Raw: "KLM42", Confidence: 0.93, Direction: Approaching,
			Time: time.Date(2025, 3, 11, 8, 15, 23, 417e6, cet), Camera: "Entry-LPR-01", Source: "milesight",
		}},
		{file: "openalpr_group.json", contentType: "application/json", want: Read{
			Plate: "KLM42", Raw: "KLM42", Confidence: 0.91377, Direction: Approaching,
			Time: time.UnixMilli(1741677323417), Camera: "1630410444", Source: "openalpr",
		}},
		{file: "openalpr_results.json", contentType: "application/json", want: Read{
			Plate: "KLM42", Raw: "KLM42", Confidence: 0.91377, Direction: Unknown,
			Time: time.UnixMilli(1741677323417), Camera: "1630410444", Source: "openalpr",
		}},
		{file: "openalpr_heartbeat.json", contentType: "application/json", noRead: true},
		{file: "plain.json", contentType: "application/json", want: Read{
			Plate: "KLM42", Raw: "k-lm 42", Confidence: Unrated, Source: "plain",
		}},
		{file: "plain.json", contentType: "", want: Read{
			Plate: "KLM42", Raw: "k-lm 42", Confidence: Unrated, Source: "plain",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file+"/"+tc.contentType, func(t *testing.T) {
			reads, err := Parse(tc.contentType, readSample(t, tc.file), Options{Location: cet})
			if tc.noRead {
				if !errors.Is(err, ErrNoRead) {
					t.Fatalf("Parse = %v, %v; want an ErrNoRead", reads, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(reads) != 1 {
				t.Fatalf("Parse returned %d reads, want 1: %+v", len(reads), reads)
			}
			assertRead(t, reads[0], tc.want)
		})
	}
}

func assertRead(t *testing.T, got, want Read) {
	t.Helper()
	if got.Plate != want.Plate || got.Raw != want.Raw || got.Direction != want.Direction ||
		got.Camera != want.Camera || got.Source != want.Source {
		t.Errorf("read = %+v\nwant   %+v", got, want)
	}
	if d := got.Confidence - want.Confidence; d > 1e-9 || d < -1e-9 {
		t.Errorf("confidence = %v, want %v", got.Confidence, want.Confidence)
	}
	if !got.Time.Equal(want.Time) {
		t.Errorf("time = %v, want %v", got.Time, want.Time)
	}
}

// Every sample also parses when its preset is named explicitly.
func TestParsePresetsMatchDetection(t *testing.T) {
	presetOf := map[string]string{
		"hikvision_anpr.xml": "hikvision", "hikvision_anpr_multipart.bin": "hikvision",
		"platerecognizer_stream.json": "platerecognizer", "platerecognizer_stream.multipart": "platerecognizer",
		"axis_lpv.json": "axis", "milesight_lpr.json": "milesight",
		"openalpr_group.json": "openalpr", "openalpr_results.json": "openalpr", "plain.json": "plain",
	}
	for _, s := range samples {
		preset, ok := presetOf[s.file]
		if !ok {
			continue
		}
		body := readSample(t, s.file)
		auto, err := Parse(s.contentType, body, Options{Location: cet})
		if err != nil {
			t.Fatalf("%s: %v", s.file, err)
		}
		named, err := Parse(s.contentType, body, Options{Location: cet, Preset: strings.ToUpper(preset)})
		if err != nil {
			t.Fatalf("%s with preset %s: %v", s.file, preset, err)
		}
		assertRead(t, named[0], auto[0])
		// "auto", gated's default, is detection by name.
		detected, err := Parse(s.contentType, body, Options{Location: cet, Preset: "auto"})
		if err != nil {
			t.Fatalf("%s with preset auto: %v", s.file, err)
		}
		assertRead(t, detected[0], auto[0])
	}
}

func TestParseWrongPreset(t *testing.T) {
	cases := []struct{ file, contentType, preset, want string }{
		{"hikvision_anpr.xml", "application/xml", "axis", "the axis format is JSON"},
		{"plain.json", "application/json", "hikvision", "expects XML"},
		{"plain.json", "application/json", "acme", `unknown preset "acme"`},
		{"axis_lpv.json", "application/json", "openalpr", "nothing at"},
	}
	for _, tc := range cases {
		_, err := Parse(tc.contentType, readSample(t, tc.file), Options{Preset: tc.preset})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s with preset %s: err = %v, want it to mention %q", tc.file, tc.preset, err, tc.want)
		}
	}
}

func TestParseCustomFields(t *testing.T) {
	body := `{"vehicle": {"registration": "KLM 42", "conf": 87}, "dir": "out", "ts": 1741677323, "cam": {"id": 7}}`
	opt := Options{Fields: FieldPaths{
		Plate: "vehicle.registration", Confidence: "vehicle.conf", ConfidenceScale: 100,
		Direction: "dir", Time: "ts", Camera: "cam.id",
	}}
	reads, err := Parse("application/json", []byte(body), opt)
	if err != nil {
		t.Fatal(err)
	}
	assertRead(t, reads[0], Read{
		Plate: "KLM42", Raw: "KLM 42", Confidence: 0.87, Direction: Leaving,
		Time: time.Unix(1741677323, 0), Camera: "7", Source: "custom",
	})

	// A list index in a path, and "|" alternatives.
	body = `{"reads": [{"lp": "AB1"}], "when": "", "at": "2025-03-11T07:15:23Z"}`
	reads, err = Parse("application/json", []byte(body), Options{Fields: FieldPaths{Plate: "reads.0.lp", Time: "when|at"}})
	if err != nil {
		t.Fatal(err)
	}
	if reads[0].Plate != "AB1" || !reads[0].Time.Equal(time.Date(2025, 3, 11, 7, 15, 23, 0, time.UTC)) {
		t.Errorf("read = %+v", reads[0])
	}
}

// A preset's path can be corrected in configuration without restating the
// rest of the preset.
func TestParsePresetOverride(t *testing.T) {
	body := `{"device": "Exit-LPR", "plate": "KLM42", "direction": "Away", "conf_pct": 64}`
	reads, err := Parse("application/json", []byte(body), Options{Preset: "milesight", Fields: FieldPaths{Confidence: "conf_pct", ConfidenceScale: 100}})
	if err != nil {
		t.Fatal(err)
	}
	assertRead(t, reads[0], Read{Plate: "KLM42", Raw: "KLM42", Confidence: 0.64, Direction: Leaving, Camera: "Exit-LPR", Source: "milesight"})
}

// Camera text ends up in logs: no control characters, valid UTF-8.
func TestParseSanitisesText(t *testing.T) {
	body := "{\"plate\": \"KLM\\n42\\u0007\", \"camera\": \"gate\\r\\nFAKE LOG LINE\xff\"}"
	reads, err := Parse("application/json", []byte(body), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r := reads[0]; r.Raw != "KLM42" || r.Camera != "gateFAKE LOG LINE\uFFFD" || r.Plate != "KLM42" {
		t.Errorf("read = %+v", r)
	}
}

func TestParseReverseDirection(t *testing.T) {
	reads, err := Parse("application/xml", readSample(t, "hikvision_anpr.xml"), Options{ReverseDirection: true})
	if err != nil {
		t.Fatal(err)
	}
	if reads[0].Direction != Leaving {
		t.Errorf("direction = %v, want leaving", reads[0].Direction)
	}
}

func TestParseForm(t *testing.T) {
	reads, err := Parse("application/x-www-form-urlencoded", []byte("plate=k-lm+42&confidence=0.8"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	assertRead(t, reads[0], Read{Plate: "KLM42", Raw: "k-lm 42", Confidence: 0.8, Source: "plain"})

	// A body mislabelled as a form is still read for what it is.
	reads, err = Parse("application/x-www-form-urlencoded", readSample(t, "hikvision_anpr.xml"), Options{})
	if err != nil || reads[0].Source != "hikvision" {
		t.Errorf("XML labelled as a form: %+v, %v", reads, err)
	}

	js := readSample(t, "platerecognizer_stream.json")
	form := "json=" + strings.NewReplacer("%", "%25", "&", "%26", "+", "%2B", "=", "%3D").Replace(string(js))
	reads, err = Parse("application/x-www-form-urlencoded", []byte(form), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if reads[0].Source != "platerecognizer" || reads[0].Plate != "KLM42" {
		t.Errorf("read = %+v", reads[0])
	}
}

func TestParsePlateRecognizerBestResult(t *testing.T) {
	body := `{"data": {"camera_id": "c1", "timestamp": "2025-03-11T07:15:23Z", "results": [
		{"plate": "klm4z", "score": 0.61, "direction": 90},
		{"plate": "klm42", "score": 0.94, "direction": 95},
		{"plate": "k1m42", "score": 0.70}]}}`
	reads, err := Parse("application/json", []byte(body), Options{})
	if err != nil {
		t.Fatal(err)
	}
	assertRead(t, reads[0], Read{
		Plate: "KLM42", Raw: "klm42", Confidence: 0.94, Direction: Leaving,
		Time: time.Date(2025, 3, 11, 7, 15, 23, 0, time.UTC), Camera: "c1", Source: "platerecognizer",
	})
}

func TestParseNoRead(t *testing.T) {
	cases := map[string]struct{ contentType, body string }{
		"hikvision unreadable plate": {"application/xml", `<EventNotificationAlert><eventType>ANPR</eventType><ANPR><licensePlate>unknown</licensePlate></ANPR></EventNotificationAlert>`},
		"hikvision no ANPR element":  {"application/xml", `<EventNotificationAlert><eventType>ANPR</eventType></EventNotificationAlert>`},
		"hikvision heartbeat":        {"application/xml", `<EventNotificationAlert xmlns="http://www.hikvision.com/ver20/XMLSchema"><eventType>heartBeat</eventType><eventState>active</eventState></EventNotificationAlert>`},
		"plate recognizer no result": {"application/json", `{"hook": {"event": "recognition"}, "data": {"results": []}}`},
		"plate recognizer other":     {"application/json", `{"hook": {"event": "heartbeat"}}`},
		"axis lost event":            {"application/json", `{"plateText": "KLM42", "carState": "lost", "plateConfidence": 0.9}`},
		"plain empty plate":          {"application/json", `{"plate": ""}`},
		"plain separators only":      {"application/json", `{"plate": " - "}`},
		"plain null plate":           {"application/json", `{"plate": null}`},
	}
	for name, tc := range cases {
		reads, err := Parse(tc.contentType, []byte(tc.body), Options{})
		if !errors.Is(err, ErrNoRead) {
			t.Errorf("%s: Parse = %+v, %v; want ErrNoRead", name, reads, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	cases := map[string]struct{ contentType, body, want string }{
		"empty":               {"application/json", ``, "not valid JSON"},
		"empty sniffed":       {"", "  \r\n", "body is empty"},
		"bad JSON":            {"application/json", `{"plate": `, "not valid JSON"},
		"JSON list":           {"application/json", `[{"plate": "KLM42"}]`, "not an object"},
		"unknown JSON":        {"application/json", `{"registration": "KLM42"}`, "no known ANPR format"},
		"plate not text":      {"application/json", `{"plate": {"text": "KLM42"}}`, "not text"},
		"bad confidence":      {"application/json", `{"plate": "KLM42", "confidence": "high"}`, `confidence "high" is not a number`},
		"NaN confidence":      {"application/json", `{"plate": "KLM42", "confidence": "NaN"}`, "not a finite number"},
		"bool confidence":     {"application/json", `{"plate": "KLM42", "confidence": true}`, "not a number"},
		"results not a list":  {"application/json", `{"data": {"results": {"plate": "KLM42"}}}`, "is not a list"},
		"plate too long":      {"application/json", `{"plate": "` + strings.Repeat("A", 100) + `"}`, "longer than any number plate"},
		"plate too many":      {"application/json", `{"plate": "` + strings.Repeat("A1 ", 10) + `"}`, "more than the 16"},
		"bad XML":             {"application/xml", `<EventNotificationAlert><ANPR>`, "not well-formed"},
		"wrong XML root":      {"text/xml", `<Heartbeat/>`, "root element is \"Heartbeat\""},
		"hik bad confidence":  {"application/xml", `<EventNotificationAlert><ANPR><licensePlate>KLM42</licensePlate><confidenceLevel>x</confidenceLevel></ANPR></EventNotificationAlert>`, "confidenceLevel \"x\" is not a number"},
		"no boundary":         {"multipart/form-data", "--x\r\n\r\n--x--\r\n", "no boundary parameter"},
		"multipart no event":  {"multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"pic\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8\xff\xd9\r\n--x--\r\n", "pictures but no XML or JSON"},
		"multipart empty":     {"multipart/form-data; boundary=x", "--x--\r\n", "no XML or JSON event part"},
		"multipart broken":    {"multipart/form-data; boundary=x", "garbage", "does not start with its multipart boundary \"x\""},
		"multipart cut short": {"multipart/form-data; boundary=x", "--x\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8", "cut short"},
		"unsupported":         {"image/jpeg", "\xff\xd8\xff\xe0", "unsupported content type \"image/jpeg\""},
		"no type no shape":    {"", "plate KLM42", "no Content-Type"},
		"sniffed no boundary": {"", "--\r\n", "not a boundary"},
	}
	for name, tc := range cases {
		reads, err := Parse(tc.contentType, []byte(tc.body), Options{})
		if err == nil || errors.Is(err, ErrNoRead) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Parse = %+v, %v; want an error mentioning %q", name, reads, err, tc.want)
		}
	}
}

// Errors name the problem, never echo the payload: bodies carry pictures
// and can be megabytes.
func TestParseErrorsDoNotEchoTheBody(t *testing.T) {
	secret := strings.Repeat("SECRETPAYLOAD", 50)
	bodies := map[string]string{
		"application/json": `{"plate": "` + secret + `"}`,
		"application/xml":  `<EventNotificationAlert><ANPR><licensePlate>` + secret + `</licensePlate><confidenceLevel>` + secret + `</confidenceLevel></ANPR></EventNotificationAlert>`,
		"text/xml":         `<` + secret + `></x>`,
		"":                 `{"confidence": "` + secret + `", "plate": "A"}`,
	}
	for ct, body := range bodies {
		_, err := Parse(ct, []byte(body), Options{})
		if err == nil {
			t.Fatalf("%s: no error", ct)
		}
		if strings.Contains(err.Error(), secret) || len(err.Error()) > 300 {
			t.Errorf("%s: the error echoes the body: %v", ct, err)
		}
	}
}

func TestParseMaxBody(t *testing.T) {
	body := readSample(t, "milesight_lpr.json")
	if _, err := Parse("application/json", body, Options{MaxBody: len(body)}); err != nil {
		t.Errorf("a body of exactly MaxBody bytes: %v", err)
	}
	_, err := Parse("application/json", body, Options{MaxBody: len(body) - 1})
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("a body over MaxBody: err = %v", err)
	}
	// Pictures before the event part count against the limit too.
	mp := readSample(t, "hikvision_mixed_picture_first.bin")
	_, err = Parse("multipart/mixed; boundary=MIME_boundary_hik", mp, Options{MaxBody: 1000})
	if err == nil || !strings.Contains(err.Error(), "larger than 1000 bytes") {
		t.Errorf("a multipart body over MaxBody: err = %v", err)
	}
}

// zeros is an endless reader of one byte value, to stand in for a huge
// picture without holding it in memory.
type zeros byte

func (z zeros) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(z)
	}
	return len(b), nil
}

// The pictures of a multipart push stream past: they are never held in
// memory, and nothing after the event part is read at all.
func TestParseReaderStreamsPictures(t *testing.T) {
	xml := readSample(t, "hikvision_anpr.xml")
	const picture = 24 << 20
	head := "--b\r\nContent-Disposition: form-data; name=\"detectionPicture.jpg\"; filename=\"detectionPicture.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
	mid := "\r\n--b\r\nContent-Disposition: form-data; name=\"anpr.xml\"\r\nContent-Type: application/xml\r\n\r\n"
	body := io.MultiReader(
		strings.NewReader(head), io.LimitReader(zeros('x'), picture),
		strings.NewReader(mid), bytes.NewReader(xml),
		strings.NewReader("\r\n--b\r\nContent-Type: image/jpeg\r\n\r\n"),
		zeros('y'), // an endless trailing picture: reading it would hang
	)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	reads, err := ParseReader("multipart/form-data; boundary=b", body, Options{MaxBody: 32 << 20})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if reads[0].Plate != "KLM42" {
		t.Errorf("plate = %q", reads[0].Plate)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("parsing allocated %d bytes for a %d-byte picture: the picture was buffered", alloc, picture)
	}
}

func TestParseTime(t *testing.T) {
	utc := time.UTC
	tests := []struct {
		in   string
		utc  bool
		want time.Time
	}{
		{"2025-03-11T08:15:23.417+01:00", false, time.Date(2025, 3, 11, 7, 15, 23, 417e6, utc)},
		{"2025-03-11T07:15:23Z", false, time.Date(2025, 3, 11, 7, 15, 23, 0, utc)},
		{"2025-03-11 08:15:23.417000+01:00", false, time.Date(2025, 3, 11, 7, 15, 23, 417e6, utc)},
		{"2025-03-11T08:15:23+0100", false, time.Date(2025, 3, 11, 7, 15, 23, 0, utc)},
		{"2025-03-11 08:15:23.417", false, time.Date(2025, 3, 11, 8, 15, 23, 417e6, cet)},
		{"2025-03-11 08:15:23", true, time.Date(2025, 3, 11, 8, 15, 23, 0, utc)},
		{"20250311 071523417", true, time.Date(2025, 3, 11, 7, 15, 23, 417e6, utc)},
		{"20250311 081523417+0100", true, time.Date(2025, 3, 11, 7, 15, 23, 417e6, utc)},
		{"20250311 071523", true, time.Date(2025, 3, 11, 7, 15, 23, 0, utc)},
		{"1741677323", false, time.Unix(1741677323, 0)},
		{"1741677323417", false, time.UnixMilli(1741677323417)},
		{"1741677323417000", false, time.UnixMicro(1741677323417000)},
		{"1741677323.5", false, time.Unix(1741677323, 5e8)},
		{"", false, time.Time{}},
		{"yesterday", false, time.Time{}},
		{"20250311 0+0100", true, time.Time{}}, // found by FuzzParse: used to panic
		{"0", false, time.Time{}},
		{"-5", false, time.Time{}},
	}
	for _, tc := range tests {
		got, _ := parseTime(tc.in, cet, tc.utc)
		if !got.Equal(tc.want) {
			t.Errorf("parseTime(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestPresets(t *testing.T) {
	got := fmt.Sprint(Presets())
	want := "[axis hikvision milesight openalpr plain platerecognizer]"
	if got != want {
		t.Errorf("Presets() = %s, want %s", got, want)
	}
}
