package ticket

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
)

// testKey returns a deterministic key, so that failures reproduce.
func testKey(seed byte) ed25519.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed
	}
	return ed25519.NewKeyFromSeed(s)
}

func testSigner(t testing.TB, seed byte) *Signer {
	t.Helper()
	s, err := NewSigner(testKey(seed))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testVerifier(t testing.TB, signers ...*Signer) *Verifier {
	t.Helper()
	var keys []ed25519.PublicKey
	for _, s := range signers {
		keys = append(keys, s.PublicKey())
	}
	v, err := NewVerifier(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

var t0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

// sampleTicket is the size the length target is stated for: a 16-character
// reservation id, a 16-character spot id and a 12-character car id.
func sampleTicket() Ticket {
	return Ticket{
		ReservationID: "R7K2M9Q4X1B8C3D5",
		SpotID:        "LEVEL-2-ROW-B-17",
		From:          t0,
		Until:         t0.Add(8 * time.Hour),
		CarID:         "B-XY 1234 EV",
	}
}

func issue(t testing.TB, s *Signer, tk Ticket) string {
	t.Helper()
	code, err := s.Issue(tk)
	if err != nil {
		t.Fatalf("Issue(%+v): %v", tk, err)
	}
	return code
}

func sameTicket(a, b Ticket) bool {
	return a.ReservationID == b.ReservationID && a.SpotID == b.SpotID && a.CarID == b.CarID &&
		a.From.Equal(b.From) && a.Until.Equal(b.Until)
}

func wantReason(t *testing.T, err error, want ...Reason) {
	t.Helper()
	var re *RejectError
	if !errors.As(err, &re) {
		t.Fatalf("error = %v (%T), want a *RejectError with reason %v", err, err, want)
	}
	for _, w := range want {
		if re.Reason == w {
			return
		}
	}
	t.Fatalf("reason = %q (%v), want one of %v", re.Reason, err, want)
}

func TestRoundTrip(t *testing.T) {
	s := testSigner(t, 1)
	v := testVerifier(t, s)
	for _, tk := range []Ticket{
		sampleTicket(),
		{ReservationID: "r", SpotID: "1", From: t0, Until: t0.Add(time.Second)},                                                                                                             // smallest
		{ReservationID: "Ωmega-ü", SpotID: "Ebene −1 / 17", From: t0, Until: t0.Add(MaxWindow)},                                                                                             // UTF-8, longest window
		{ReservationID: strings.Repeat("r", 32), SpotID: strings.Repeat("s", 32), CarID: strings.Repeat("c", 16), From: time.Unix(1<<32-1, 0), Until: time.Unix(1<<32-1, 0).Add(MaxWindow)}, // largest
		{ReservationID: "epoch", SpotID: "0", From: time.Unix(0, 0), Until: time.Unix(127, 0)},
		{ReservationID: "varint", SpotID: "0", From: t0, Until: t0.Add(128 * time.Second)},
	} {
		code := issue(t, s, tk)
		got, err := v.Verify(code, tk.From)
		if err != nil {
			t.Fatalf("Verify(%q): %v", code, err)
		}
		if !sameTicket(got, tk) {
			t.Errorf("round trip: got %+v, want %+v", got, tk)
		}
		if got.KeyID != s.KeyID() || got.KeyID != KeyID(s.PublicKey()) {
			t.Errorf("KeyID = %q, want %q", got.KeyID, s.KeyID())
		}
		if got.From.Location() != time.UTC || got.Until.Location() != time.UTC {
			t.Errorf("times not in UTC: %v %v", got.From, got.Until)
		}
		if len(code) > maxCodeLen || len(code) < minCodeLen {
			t.Errorf("len(code) = %d, outside [%d, %d]", len(code), minCodeLen, maxCodeLen)
		}
	}
}

func TestLengthAndAlphabet(t *testing.T) {
	s := testSigner(t, 1)
	tk := sampleTicket()
	// The window length changes the size by a byte or two; cover short and
	// long ones. 24 days is the longest window with a 3-byte varint.
	for _, w := range []time.Duration{time.Hour, 8 * time.Hour, 24*24*time.Hour + 6*time.Hour} {
		tk.Until = tk.From.Add(w)
		code := issue(t, s, tk)
		t.Logf("window %v: %d characters", w, len(code))
		if len(code) >= 200 {
			t.Errorf("window %v: ticket is %d characters, want under 200: %s", w, len(code), code)
		}
		const qrAlphanumeric = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
		for _, c := range code {
			if !strings.ContainsRune(qrAlphanumeric, c) {
				t.Fatalf("character %q is outside the QR alphanumeric set", c)
			}
		}
	}
	typical := Ticket{ReservationID: "R7K2M9Q4X1B8C3D5", SpotID: "17", CarID: "KLM4242", From: t0, Until: t0.Add(3 * time.Hour)}
	t.Logf("typical ticket: %d characters", len(issue(t, s, typical)))

	if maxCodeLen != 258 || maxCodeLen+8 > MaxInputLen {
		t.Errorf("maxCodeLen = %d (documented as 258), MaxInputLen = %d", maxCodeLen, MaxInputLen)
	}
}

func TestIssueDeterministic(t *testing.T) {
	s := testSigner(t, 1)
	a, b := issue(t, s, sampleTicket()), issue(t, s, sampleTicket())
	if a != b {
		t.Errorf("same ticket issued twice gave %q and %q", a, b)
	}
	tk := sampleTicket()
	tk.KeyID = "ffffffff" // ignored by Issue
	if c := issue(t, s, tk); c != a {
		t.Errorf("Issue depends on Ticket.KeyID")
	}
}

func TestWhitespaceAccepted(t *testing.T) {
	s := testSigner(t, 1)
	v := testVerifier(t, s)
	code := issue(t, s, sampleTicket())
	for _, in := range []string{code + "\r\n", code + "\n", code + "\r", " \t" + code + " ", "\r\n" + code + "\r\n"} {
		if _, err := v.Verify(in, t0); err != nil {
			t.Errorf("Verify(%q): %v", in, err)
		}
	}
	// Whitespace inside the code is not a scanner artefact; the base32
	// decoder would skip CR/LF, so make sure we do not.
	mid := len(code) / 2
	for _, in := range []string{code[:mid] + "\n" + code[mid:], code[:mid] + " " + code[mid:]} {
		_, err := v.Verify(in, t0)
		wantReason(t, err, ReasonMalformed)
	}
}

// TestEverySubstitutionRejected changes each character of a valid ticket to
// every other character a scanner could plausibly produce and checks that
// none of them verifies (a ticket changed in any character is denied).
func TestEverySubstitutionRejected(t *testing.T) {
	s := testSigner(t, 1)
	other := testSigner(t, 2)
	v := testVerifier(t, s, other) // a second key must not make a difference
	tk := sampleTicket()
	code := issue(t, s, tk)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	counts := map[Reason]int{}
	for i := 0; i < len(code); i++ {
		subs := alphabet + strings.ToLower(code[i:i+1]) + "01:"
		for j := 0; j < len(subs); j++ {
			c := subs[j]
			if c == code[i] {
				continue
			}
			changed := code[:i] + string(c) + code[i+1:]
			got, err := v.Verify(changed, t0)
			if err == nil {
				t.Fatalf("position %d changed to %q verified (as %+v)", i, c, got)
			}
			var re *RejectError
			if !errors.As(err, &re) {
				t.Fatalf("position %d: error %v is not a *RejectError", i, err)
			}
			counts[re.Reason]++
		}
	}
	t.Logf("rejections by reason: %v", counts)
	if counts[ReasonBadSignature] == 0 || counts[ReasonMalformed] == 0 || counts[ReasonUnknownKey] == 0 {
		t.Errorf("expected bad_signature, malformed and unknown_key among the rejections: %v", counts)
	}
}

func TestTruncated(t *testing.T) {
	s := testSigner(t, 1)
	v := testVerifier(t, s)
	for _, tk := range []Ticket{sampleTicket(), {ReservationID: "r", SpotID: "1", From: t0, Until: t0.Add(time.Second)}} {
		code := issue(t, s, tk)
		for n := 0; n < len(code); n++ {
			_, err := v.Verify(code[:n], t0)
			// Every truncation is recognised as such: the structure
			// says how long the ticket must be.
			wantReason(t, err, ReasonTooShort)
		}
	}
}

func TestTooLong(t *testing.T) {
	s := testSigner(t, 1)
	v := testVerifier(t, s)
	code := issue(t, s, sampleTicket())

	_, err := v.Verify(strings.Repeat("A", MaxInputLen+1), t0)
	wantReason(t, err, ReasonTooLong)
	_, err = v.Verify(code+strings.Repeat(" ", MaxInputLen), t0) // whitespace counts: nothing is looked at
	wantReason(t, err, ReasonTooLong)
	_, err = v.Verify(Prefix+strings.Repeat("A", maxCodeLen-len(Prefix)+1), t0)
	wantReason(t, err, ReasonTooLong)
	_, err = v.Verify(strings.Repeat("\xff", 1<<20), t0)
	wantReason(t, err, ReasonTooLong)
	// Extra data after a valid ticket that still fits the length limits.
	_, err = v.Verify(code+"AAAAAAAA", t0)
	wantReason(t, err, ReasonMalformed)
}

func TestMalformed(t *testing.T) {
	s := testSigner(t, 1)
	v := testVerifier(t, s)
	code := issue(t, s, sampleTicket())
	for _, in := range []string{
		"hello",
		"https://example.com/",
		"PGI" + code[3:],      // a valid letter, but the version byte becomes 0x41
		"PG0" + code[3:],      // '0', '1', '8' and '9' are not base32
		"PG1:" + code[2:],     // the prefix has no separator
		strings.ToLower(code), // lower case is refused (one spelling per ticket)
		code[:2] + strings.ToLower(code[2:]),
		code + "=",
		code + "======",
		"pg" + code[2:],
		"XX" + code[2:],
		code[:len(code)-1] + "\x00",
		code[:100] + "é" + code[101:],
	} {
		_, err := v.Verify(in, t0)
		wantReason(t, err, ReasonMalformed)
	}
}

// TestNonCanonicalBase32 flips the unused low bits of the last character,
// which the base32 decoder ignores, and checks the result is refused.
func TestNonCanonicalBase32(t *testing.T) {
	s := testSigner(t, 1)
	v := testVerifier(t, s)
	code := issue(t, s, sampleTicket())
	body := code[len(Prefix):]
	unused := len(body)*5 - b32.DecodedLen(len(body))*8
	if unused == 0 {
		t.Skip("no unused bits in this ticket")
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	last := strings.IndexByte(alphabet, code[len(code)-1])
	for bits := 1; bits < 1<<unused; bits++ {
		changed := code[:len(code)-1] + string(alphabet[last^bits])
		_, err := v.Verify(changed, t0)
		wantReason(t, err, ReasonMalformed)
	}
}

// TestSignedButInvalid checks that the structure and content rules hold even
// for payloads carrying a valid signature, which only a buggy or foreign
// issuer could produce.
func TestSignedButInvalid(t *testing.T) {
	s := testSigner(t, 1)
	v := testVerifier(t, s)
	sign := func(payload []byte) string {
		sig := ed25519.Sign(s.priv, signedMessage(payload))
		return Prefix + b32.EncodeToString(append(payload, sig...))
	}
	good := sampleTicket()
	valid := appendPayload(nil, s.keyID, &good)
	if _, err := v.Verify(sign(valid), t0); err != nil {
		t.Fatalf("hand-signed valid payload: %v", err)
	}

	header := func(version byte, window []byte) []byte {
		b := []byte{version}
		b = append(b, s.keyID[:]...)
		b = binary.BigEndian.AppendUint32(b, uint32(t0.Unix()))
		return append(b, window...)
	}
	strs := func(b []byte, ss ...string) []byte {
		for _, x := range ss {
			b = appendString(b, x)
		}
		return b
	}
	for name, payload := range map[string][]byte{
		"version 2":         strs(header(2, []byte{60}), "r", "1", ""),
		"version 0":         strs(header(0, []byte{60}), "r", "1", ""),
		"overlong varint":   strs(header(1, []byte{0xbc, 0x00}), "r", "1", ""),
		"zero window":       strs(header(1, []byte{0}), "r", "1", ""),
		"window too long":   strs(header(1, binary.AppendUvarint(nil, uint64(MaxWindow/time.Second)+1)), "r", "1", ""),
		"empty reservation": strs(header(1, []byte{60}), "", "1", "CAR"),
		"empty spot":        strs(header(1, []byte{60}), "r", "", "CAR"),
		"long car":          strs(header(1, []byte{60}), "r", "1", strings.Repeat("c", MaxCarIDLen+1)),
		"control char":      strs(header(1, []byte{60}), "r\n", "1", ""),
		"bad utf-8":         strs(header(1, []byte{60}), "r", "\xff", ""),
	} {
		_, err := v.Verify(sign(payload), t0)
		if ReasonOf(err) != ReasonMalformed {
			t.Errorf("%s: err = %v, want reason malformed", name, err)
		}
	}
}

func TestUnknownKeyAndRotation(t *testing.T) {
	oldKey, newKey, foreign := testSigner(t, 1), testSigner(t, 2), testSigner(t, 3)
	tk := sampleTicket()

	_, err := testVerifier(t, newKey).Verify(issue(t, oldKey, tk), t0)
	wantReason(t, err, ReasonUnknownKey)
	if !strings.Contains(err.Error(), oldKey.KeyID()) {
		t.Errorf("error %q does not name the key id %s", err, oldKey.KeyID())
	}

	v := testVerifier(t, oldKey, newKey)
	for _, s := range []*Signer{oldKey, newKey} {
		got, err := v.Verify(issue(t, s, tk), t0)
		if err != nil {
			t.Fatalf("key %s: %v", s.KeyID(), err)
		}
		if got.KeyID != s.KeyID() {
			t.Errorf("KeyID = %s, want %s", got.KeyID, s.KeyID())
		}
	}
	_, err = v.Verify(issue(t, foreign, tk), t0)
	wantReason(t, err, ReasonUnknownKey)
	if ids := v.KeyIDs(); len(ids) != 2 {
		t.Errorf("KeyIDs() = %v, want 2 ids", ids)
	}
}

// TestBadSignature splices the signature of one ticket onto another with the
// same key id.
func TestBadSignature(t *testing.T) {
	s := testSigner(t, 1)
	v := testVerifier(t, s)
	a := sampleTicket()
	b := a
	b.CarID = "B-XY 1234 EW"
	ca, cb := issue(t, s, a), issue(t, s, b)
	if len(ca) != len(cb) {
		t.Fatal("test tickets differ in length")
	}
	// Splice in binary: the signature need not start on a character
	// boundary.
	ra, _ := b32.DecodeString(ca[len(Prefix):])
	rb, _ := b32.DecodeString(cb[len(Prefix):])
	n := len(ra) - ed25519.SignatureSize
	spliced := append(append([]byte(nil), rb[:n]...), ra[n:]...)
	_, err := v.Verify(Prefix+b32.EncodeToString(spliced), t0)
	wantReason(t, err, ReasonBadSignature)
}

func TestExpiry(t *testing.T) {
	s := testSigner(t, 1)
	v := testVerifier(t, s)
	tk := sampleTicket()
	code := issue(t, s, tk)

	for _, now := range []time.Time{
		tk.From.Add(-24 * time.Hour), // early: the gate's policy, not Verify's
		tk.From,
		tk.Until.Add(-time.Second),
		tk.Until.Add(-time.Nanosecond),
	} {
		if _, err := v.Verify(code, now); err != nil {
			t.Errorf("now = %v: %v", now, err)
		}
	}
	for _, now := range []time.Time{tk.Until, tk.Until.Add(time.Nanosecond), tk.Until.Add(365 * 24 * time.Hour)} {
		got, err := v.Verify(code, now)
		wantReason(t, err, ReasonExpired)
		if !sameTicket(got, tk) {
			t.Errorf("expired: returned ticket %+v, want the authentic one", got)
		}
	}
	// The zone of now does not matter.
	if _, err := v.Verify(code, tk.Until.Add(-time.Second).In(time.FixedZone("x", -11*3600))); err != nil {
		t.Errorf("now in another zone: %v", err)
	}
	if _, err := v.VerifySignature(code); err != nil {
		t.Errorf("VerifySignature: %v", err)
	}
}

func TestIssueRefuses(t *testing.T) {
	s := testSigner(t, 1)
	ok := sampleTicket()
	with := func(f func(*Ticket)) Ticket { tk := ok; f(&tk); return tk }
	for name, c := range map[string]struct {
		tk   Ticket
		want string
	}{
		"empty reservation": {with(func(t *Ticket) { t.ReservationID = "" }), "reservation id is empty"},
		"long reservation":  {with(func(t *Ticket) { t.ReservationID = strings.Repeat("r", 33) }), "reservation id is 33 bytes long, more than the 32 allowed"},
		"empty spot":        {with(func(t *Ticket) { t.SpotID = "" }), "spot id is empty"},
		"long spot":         {with(func(t *Ticket) { t.SpotID = strings.Repeat("s", 33) }), "spot id is 33 bytes"},
		"long car":          {with(func(t *Ticket) { t.CarID = strings.Repeat("c", 17) }), "car id is 17 bytes"},
		"control":           {with(func(t *Ticket) { t.CarID = "AB\r\n12" }), "control character"},
		"utf-8":             {with(func(t *Ticket) { t.SpotID = "\xc3" }), "not valid UTF-8"},
		"no from":           {with(func(t *Ticket) { t.From = time.Time{} }), "must both be set"},
		"no until":          {with(func(t *Ticket) { t.Until = time.Time{} }), "must both be set"},
		"empty window":      {with(func(t *Ticket) { t.Until = t.From }), "is not after from"},
		"reversed":          {with(func(t *Ticket) { t.Until = t.From.Add(-time.Hour) }), "is not after from"},
		"sub-second window": {with(func(t *Ticket) { t.From = t0.Add(100 * time.Millisecond); t.Until = t0.Add(900 * time.Millisecond) }), "is not after from"},
		"window too long":   {with(func(t *Ticket) { t.Until = t.From.Add(MaxWindow + time.Second) }), "longer than"},
		"before 1970":       {with(func(t *Ticket) { t.From = time.Unix(-1, 0); t.Until = time.Unix(60, 0) }), "outside the years"},
		"after 2106":        {with(func(t *Ticket) { t.From = time.Unix(1<<32, 0); t.Until = time.Unix(1<<32+60, 0) }), "outside the years"},
	} {
		_, err := s.Issue(c.tk)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %q, want it to contain %q", name, err, c.want)
		}
	}
}

// TestIssueRoundsInwards checks that sub-second times never widen the
// window.
func TestIssueRoundsInwards(t *testing.T) {
	s := testSigner(t, 1)
	v := testVerifier(t, s)
	tk := sampleTicket()
	tk.From = t0.Add(300 * time.Millisecond).In(time.FixedZone("CET", 3600))
	tk.Until = t0.Add(time.Hour + 999*time.Millisecond)
	got, err := v.Verify(issue(t, s, tk), t0)
	if err != nil {
		t.Fatal(err)
	}
	if !got.From.Equal(t0.Add(time.Second)) || !got.Until.Equal(t0.Add(time.Hour)) {
		t.Errorf("window = %v–%v, want %v–%v", got.From, got.Until, t0.Add(time.Second), t0.Add(time.Hour))
	}
}

func TestNewSignerAndVerifierErrors(t *testing.T) {
	if _, err := NewSigner(make(ed25519.PrivateKey, 10)); err == nil {
		t.Error("NewSigner accepted a short key")
	}
	if _, err := NewVerifier(); err == nil {
		t.Error("NewVerifier accepted no keys")
	}
	if _, err := NewVerifier(make(ed25519.PublicKey, 31)); err == nil {
		t.Error("NewVerifier accepted a short key")
	}
	pub := testSigner(t, 1).PublicKey()
	v, err := NewVerifier(pub, pub)
	if err != nil {
		t.Fatalf("the same key twice: %v", err)
	}
	if len(v.KeyIDs()) != 1 {
		t.Errorf("the same key twice gave %d ids", len(v.KeyIDs()))
	}
	// The Verifier keeps its own copy of the key.
	pub[0] ^= 1
	if _, err := v.Verify(issue(t, testSigner(t, 1), sampleTicket()), t0); err != nil {
		t.Errorf("changing the caller's key slice affected the verifier: %v", err)
	}
}

func TestReasonOfAndError(t *testing.T) {
	err := error(&RejectError{Reason: ReasonExpired, Detail: "the window ended"})
	if got := ReasonOf(err); got != ReasonExpired {
		t.Errorf("ReasonOf = %q", got)
	}
	wrapped := errors.Join(errors.New("gate"), err)
	if got := ReasonOf(wrapped); got != ReasonExpired {
		t.Errorf("ReasonOf(wrapped) = %q", got)
	}
	if got := ReasonOf(errors.New("x")); got != "" {
		t.Errorf("ReasonOf(other) = %q", got)
	}
	if got, want := err.Error(), "ticket rejected (expired): the window ended"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func BenchmarkVerify(b *testing.B) {
	s := testSigner(b, 1)
	v := testVerifier(b, s)
	code := issue(b, s, sampleTicket())
	for b.Loop() {
		if _, err := v.Verify(code, t0); err != nil {
			b.Fatal(err)
		}
	}
}
