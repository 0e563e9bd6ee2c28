package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// Every decoding failure is a client error with a code and a message; the
// decoders never panic and never accept something invalid.
func checkDecodeErr(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var br *badRequest
	if !errors.As(err, &br) || br.code == "" || br.msg == "" || br.status < 400 || br.status > 499 {
		t.Fatalf("not a client error: %#v", err)
	}
}

// oracle walks b with encoding/json's token reader, independently of the
// decoders' own scan, and says what a strict decoder must refuse: a card
// number in any decoded string or number, a control or bidi character or
// invalid UTF-8 in any string, a member name given twice in one object, or
// one not among names (exactly). ok is false if b is not one JSON value.
func oracle(b []byte, names ...string) (refuse, ok bool) {
	if !json.Valid(b) {
		return false, false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	type frame struct {
		object bool
		key    bool // the next string is a member name
		seen   map[string]bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return refuse, true
		}
		if err != nil {
			return false, false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		isKey := top != nil && top.object && top.key
		if top != nil && top.object {
			top.key = !top.key
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, &frame{object: true, key: true, seen: map[string]bool{}})
			case '[':
				stack = append(stack, &frame{})
			default:
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].key = true
				}
			}
			if v == '{' || v == '[' {
				if top != nil && top.object {
					top.key = false // the value is this container
				}
			}
		case string:
			// encoding/json turns invalid UTF-8 into U+FFFD: look at the raw
			// text for that.
			if containsCardNumber([]byte(v)) || strings.ContainsFunc(v, func(r rune) bool {
				return r < 0x20 || r == 0x7f || forbiddenRune(r)
			}) {
				refuse = true
			}
			if isKey {
				if top.seen[v] || !contains(names, v) {
					refuse = true
				}
				top.seen[v] = true
			}
		case json.Number:
			if numberIsCard([]byte(v)) {
				refuse = true
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// checkOracle fails the test if a decoder accepted b that the oracle says
// must be refused.
func checkOracle(t *testing.T, b []byte, err error, names ...string) {
	t.Helper()
	if err != nil {
		return
	}
	if !utf8.Valid(b) {
		t.Fatalf("accepted invalid UTF-8 %q", b)
	}
	if refuse, ok := oracle(b, names...); !ok || refuse {
		t.Fatalf("accepted %q (valid JSON %v, must refuse %v)", b, ok, refuse)
	}
}

func FuzzDecodeReserve(f *testing.F) {
	f.Add([]byte(`{"reservedFrom":"2026-11-26T10:00:00Z","reservedUntil":"2026-11-26T12:00:00Z"}`))
	f.Add([]byte(`{"reservedFrom":"2026-11-26T10:00:00+01:00","reservedUntil":"2026-11-26T12:00:00.5Z"}`))
	f.Add([]byte(`{"reservedFrom":1}`))
	f.Add([]byte(`{`))
	f.Add([]byte(`{"a":1} x`))
	f.Add([]byte(`{"reserved\u0046rom":"2026-11-26T10:00:00Z","reservedUntil":"2026-11-26T12:00:00\u005a"}`))
	f.Add([]byte(`{"RESERVEDFROM":"2026-11-26T10:00:00Z","reservedFrom":"2026-11-26T10:00:00Z","reservedUntil":"2026-11-26T12:00:00Z"}`))
	f.Add([]byte(`{"reservedFrom":"2026-11-26T10:00:00Z","reservedUntil":"2026-11-26T12:00:00Z","reservedUntil":"2026-11-26T13:00:00Z"}`))
	f.Add([]byte(`{"reservedFrom":"2026-11-26T10:00:00Z\u0000","reservedUntil":"2026-11-26T12:00:00Z","x":"\u0034242424242424242"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := DecodeReserve(b)
		checkDecodeErr(t, err)
		checkOracle(t, b, err, "reservedFrom", "reservedUntil")
		if err == nil && (w.From.IsZero() || w.Until.IsZero() || w.From.Location().String() != "UTC") {
			t.Fatalf("accepted %q as %v", b, w)
		}
	})
}

func FuzzDecodePay(f *testing.F) {
	f.Add([]byte(`{"carId":"X1","cardDetails":{"paymentMethod":"pm_card_visa"}}`))
	f.Add([]byte(`{"carId":"X1","cardDetails":{"number":"4242424242424242"}}`))
	f.Add([]byte(`{"carId":"X1","cardDetails":null}`))
	f.Add([]byte(`{"carId":"X1","cardDetails":{"paymentMethod":"pm_card_visa","x":"4000-0566-5566-5556"}}`))
	f.Add([]byte(`{"carId":"37828224631000\u0035","cardDetails":{"paymentMethod":"pm_card_visa"}}`))
	f.Add([]byte(`{"carId":"X1","cardDetails":{"paymentMethod":"pm_card_visa"},"n":4.242424242424242e15}`))
	f.Add([]byte(`{"carId":"X1","car\u0049d":"X2","cardDetails":{"payment\u004dethod":"pm_card_visa"}}`))
	f.Add([]byte(`{"CARID":"X1","cardDetails":{"paymentMethod":"pm_card_visa","paymentMethod":"pm_x"}}`))
	f.Add([]byte(`{"carId":"X1\u202e","cardDetails":{"paymentMethod":"pm_card_visa\ud800"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := DecodePay(b)
		checkDecodeErr(t, err)
		checkOracle(t, b, err, "carId", "cardDetails", "paymentMethod")
		if err != nil {
			return
		}
		if containsCardNumber([]byte(req.CarID)) || !validPaymentMethod(req.PaymentMethod) {
			t.Fatalf("accepted %q", b)
		}
	})
}

func FuzzDecodePush(f *testing.F) {
	f.Add([]byte(`{"reservations":[{"spotId":"1","reservedFrom":"2026-11-26T10:00:00Z","reservedUntil":"2026-11-26T12:00:00Z","carId":"F1"}]}`))
	f.Add([]byte(`{"reservations":[]}`))
	f.Add([]byte(`{"reservations":[{}]}`))
	f.Add([]byte(`{"reservations":[{"spotId":"1","reservedFrom":"2026-11-26T10:00:00Z","reservedUntil":"2026-11-26T12:00:00Z","carId":"37828224631000\u0035","reference":"INV-\u202e1"}]}`))
	f.Add([]byte(`{"reservations":[{"spotId":"1","spotId":"2","reservedFrom":"2026-11-26T10:00:00Z","reservedUntil":"2026-11-26T12:00:00Z","CarId":"F1"}],"reservations":[]}`))
	f.Add([]byte(`{"reservations":[{"spotId":"1\u0000","reservedFrom":"2026-11-26T10:00:00Z","reservedUntil":"2026-11-26T12:00:00Z","reference":"\ud83d\ude97"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		items, err := DecodePush(b)
		checkDecodeErr(t, err)
		checkOracle(t, b, err, "reservations", "spotId", "reservedFrom", "reservedUntil", "carId", "reference")
		if err == nil && len(items) == 0 {
			t.Fatalf("accepted an empty push %q", b)
		}
		for _, it := range items {
			if it.SpotID == "" || it.Window.From.IsZero() || it.Window.Until.IsZero() {
				t.Fatalf("accepted %q as %+v", b, it)
			}
		}
	})
}

// The query check refuses what url.Values would read differently from
// what was sent, and accepts only the parameters a route takes, once each.
func FuzzCheckQuery(f *testing.F) {
	f.Add("state=paid")
	f.Add("state=paid;drop")
	f.Add("state=paid&state=left")
	f.Add("spot=1%E2%80%AE&limit=5")
	f.Add("limit=%zz")
	f.Add("x=1")
	f.Fuzz(func(t *testing.T, raw string) {
		allowed := []string{"spot", "state", "limit"}
		err := checkQuery(&url.URL{RawQuery: raw}, allowed)
		checkDecodeErr(t, err)
		if err != nil {
			return
		}
		q, perr := url.ParseQuery(raw)
		if perr != nil {
			t.Fatalf("accepted %q, which does not parse: %v", raw, perr)
		}
		for k, vs := range q {
			if !contains(allowed, k) || len(vs) != 1 || !utf8.ValidString(vs[0]) || strings.ContainsFunc(vs[0], func(r rune) bool {
				return r < 0x20 || r == 0x7f || forbiddenRune(r)
			}) {
				t.Fatalf("accepted %q: %s=%q", raw, k, vs)
			}
		}
	})
}

func TestContainsCardNumber(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"4242424242424242", true},
		{"4242 4242 4242 4242", true},
		{"4000-0566-5566-5556", true},
		{`{"n":"378282246310005"}`, true}, // Amex, 15 digits
		{"4242424242424241", false},       // Luhn fails
		{"424242424242", false},           // 12 digits
		{"42424242424242424242", false},   // a 20-digit run is no card
		{"2026-11-26T10:00:00Z", false},
		{"pm_card_visa", false},
		{"4242  4242 4242 4242", false}, // a double space ends the run
		{strings.Repeat("1", 100000), false},
	} {
		if got := containsCardNumber([]byte(tc.in)); got != tc.want {
			t.Errorf("containsCardNumber(%.40q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// The strict check must stay cheap (the API's p99 target is 20 ms under
// load): it adds no allocation to an ordinary body.
func BenchmarkDecodePay(b *testing.B) {
	body := []byte(`{"carId":"K-LM 42","cardDetails":{"paymentMethod":"pm_card_visa"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodePay(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckPay(b *testing.B) {
	body := []byte(`{"carId":"K-LM \u0034\u0032","cardDetails":{"paymentMethod":"pm_card_visa"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := check(body, paySchema); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCheckAllocatesNothing(t *testing.T) {
	body := []byte(`{"reservations":[{"spotId":"1","reservedFrom":"2026-11-26T10:00:00Z","reservedUntil":"2026-11-26T12:00:00Z","carId":"F 1","reference":"INV-1"}]}`)
	if n := testing.AllocsPerRun(100, func() {
		if err := check(body, pushSchema); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("check allocates %v times per body", n)
	}
}
