package anpr

import (
	"errors"
	"testing"
	"unicode/utf8"
)

// FuzzParse feeds arbitrary content types and bodies to Parse: it must
// never panic, must keep its answers within the documented ranges, and
// must not echo the body in its errors.
func FuzzParse(f *testing.F) {
	for _, s := range samples {
		f.Add(s.contentType, readSample(f, s.file))
	}
	f.Add("", []byte(`{"plate": "k-lm 42"}`))
	f.Add("application/x-www-form-urlencoded", []byte("plate=KLM42&confidence=93"))
	f.Add("application/json", []byte(`{"data": {"results": [{"plate": "a", "score": 2, "direction": "-90"}]}}`))
	f.Add("multipart/form-data; boundary=x", []byte("--x\r\nContent-Disposition: form-data; name=\"json\"\r\n\r\n{\"plate\":\"AB1\"}\r\n--x--\r\n"))
	f.Add("", []byte("--x\r\nContent-Type: text/xml\r\n\r\n<EventNotificationAlert><ANPR><licensePlate>AB 1</licensePlate></ANPR></EventNotificationAlert>\r\n--x--"))

	// Preset auto, as gated is shipped: every format is detected.
	opt := Options{MaxBody: 64 << 10, Preset: "auto"}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		reads, err := Parse(contentType, body, opt)
		if err != nil {
			if reads != nil {
				t.Fatalf("reads %v with error %v", reads, err)
			}
			if msg := err.Error(); len(msg) > 600 {
				t.Fatalf("error of %d bytes: %.100s…", len(msg), msg)
			}
			if errors.Is(err, ErrNoRead) && err.Error() == "" {
				t.Fatal("empty no-read message")
			}
			return
		}
		if len(reads) != 1 {
			t.Fatalf("%d reads", len(reads))
		}
		r := reads[0]
		if r.Plate == "" || Normalize(r.Plate) != r.Plate || utf8.RuneCountInString(r.Plate) > MaxPlateLen {
			t.Fatalf("plate %q is not a normalised plate", r.Plate)
		}
		if Normalize(r.Raw) != r.Plate {
			t.Fatalf("plate %q is not Normalize(raw %q)", r.Plate, r.Raw)
		}
		if r.Confidence != Unrated && (r.Confidence < 0 || r.Confidence > 1) {
			t.Fatalf("confidence %v out of range", r.Confidence)
		}
		if r.Direction < Unknown || r.Direction > Leaving {
			t.Fatalf("direction %d out of range", r.Direction)
		}
		if r.Source == "" {
			t.Fatal("no source")
		}
	})
}
