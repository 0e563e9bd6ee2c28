package ticket

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var knownReasons = map[Reason]bool{
	ReasonMalformed: true, ReasonTooShort: true, ReasonTooLong: true,
	ReasonUnknownKey: true, ReasonBadSignature: true, ReasonExpired: true,
}

// FuzzVerify feeds arbitrary scanner input to Verify. It must never panic,
// must reject with a known reason, and whatever it accepts must be exactly
// the ticket that issuing the decoded ticket again produces (so no second
// spelling of a ticket and no field lost or invented in decoding).
func FuzzVerify(f *testing.F) {
	s1, s2 := testSigner(f, 1), testSigner(f, 2)
	v := testVerifier(f, s1, s2)
	signers := map[string]*Signer{s1.KeyID(): s1, s2.KeyID(): s2}

	sample := sampleTicket()
	code := issue(f, s1, sample)
	for _, seed := range []string{
		code,
		code + "\r\n",
		" " + code + "\t",
		issue(f, s2, sample),
		issue(f, testSigner(f, 3), sample), // unknown key
		issue(f, s1, Ticket{ReservationID: "r", SpotID: "1", From: t0, Until: t0.Add(time.Second)}),
		issue(f, s1, Ticket{ReservationID: strings.Repeat("r", 32), SpotID: strings.Repeat("s", 32), CarID: strings.Repeat("c", 16), From: t0, Until: t0.Add(MaxWindow)}),
		code[:len(code)/2],
		code[:len(code)-1],
		code + "A",
		code + "AAAAAAAA",
		strings.ToLower(code),
		"",
		"PG",
		"hello",
		Prefix + strings.Repeat("A", 200),
		strings.Repeat("7", MaxInputLen+1),
	} {
		f.Add(seed)
	}
	now := t0.Add(time.Hour)
	f.Fuzz(func(t *testing.T, in string) {
		got, err := v.Verify(in, now)
		if err != nil {
			var re *RejectError
			if !errors.As(err, &re) || !knownReasons[re.Reason] {
				t.Fatalf("Verify(%q): error %v is not a *RejectError with a known reason", in, err)
			}
			if re.Reason != ReasonExpired {
				if got != (Ticket{}) {
					t.Fatalf("Verify(%q) rejected (%v) but returned %+v", in, err, got)
				}
				return
			}
		}
		// Accepted, or authentic but expired.
		s, ok := signers[got.KeyID]
		if !ok {
			t.Fatalf("Verify(%q) returned a ticket of unknown key %q", in, got.KeyID)
		}
		again, ierr := s.Issue(got)
		if ierr != nil {
			t.Fatalf("Verify(%q) accepted a ticket Issue refuses: %v", in, ierr)
		}
		if trimmed := strings.Trim(in, " \t\r\n\v\f"); again != trimmed {
			t.Fatalf("Verify accepted %q, but the ticket it decoded to issues as %q", trimmed, again)
		}
		if _, serr := v.VerifySignature(in); serr != nil {
			t.Fatalf("Verify accepted %q but VerifySignature says %v", in, serr)
		}
	})
}

// FuzzRoundTrip issues arbitrary tickets. Issue either refuses one with
// ErrInvalid or produces a code that verifies to the same ticket, within the
// length limits and the QR alphanumeric set.
func FuzzRoundTrip(f *testing.F) {
	s := testSigner(f, 1)
	v := testVerifier(f, s)
	f.Add("R7K2M9Q4X1B8C3D5", "LEVEL-2-ROW-B-17", "B-XY 1234 EV", t0.Unix(), int64(8*3600), int64(0))
	f.Add("r", "1", "", int64(0), int64(1), int64(999_999_999))
	f.Add(strings.Repeat("r", 32), strings.Repeat("s", 32), strings.Repeat("c", 16), int64(1<<32-1), int64(MaxWindow/time.Second), int64(1))
	f.Add("", "1", "", int64(-5), int64(0), int64(-1))
	f.Add("Ωmega", "\xff", "a\nb", int64(1<<40), int64(-1), int64(500_000_000))
	f.Fuzz(func(t *testing.T, res, spot, car string, from, window, nanos int64) {
		tk := Ticket{ReservationID: res, SpotID: spot, CarID: car}
		tk.From = time.Unix(from, nanos%1e9)
		tk.Until = tk.From.Add(time.Duration(window) * time.Second)
		code, err := s.Issue(tk)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Issue(%+v): %v does not wrap ErrInvalid", tk, err)
			}
			return
		}
		if len(code) < minCodeLen || len(code) > maxCodeLen {
			t.Fatalf("code length %d outside [%d, %d]", len(code), minCodeLen, maxCodeLen)
		}
		for i := 0; i < len(code); i++ {
			if c := code[i]; !('A' <= c && c <= 'Z' || '2' <= c && c <= '7') {
				t.Fatalf("code %q has character %q", code, c)
			}
		}
		got, err := v.Verify(code, tk.From)
		if err != nil {
			t.Fatalf("Verify(Issue(%+v)): %v", tk, err)
		}
		if got.ReservationID != res || got.SpotID != spot || got.CarID != car {
			t.Fatalf("strings changed: got %+v, want %+v", got, tk)
		}
		// The window may only shrink, by less than a second at each end.
		if got.From.Before(tk.From) || got.From.Sub(tk.From) >= time.Second ||
			got.Until.After(tk.Until) || tk.Until.Sub(got.Until) >= time.Second {
			t.Fatalf("window %v–%v, issued for %v–%v", got.From, got.Until, tk.From, tk.Until)
		}
	})
}
