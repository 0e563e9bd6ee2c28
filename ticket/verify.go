package ticket

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Reason is the stable, machine-readable word for why a ticket was rejected.
// Gates report it (for example as the "reason" of a scan decision) and count
// it in metrics, so the values never change.
type Reason string

// The reasons Verify gives. Each names one thing an operator would do
// something different about.
const (
	// ReasonMalformed: not a ticket of this format at all (wrong prefix, a
	// character outside the base32 alphabet, lower case, an impossible
	// length or a broken structure). Usually a foreign QR code.
	ReasonMalformed Reason = "malformed"
	// ReasonTooShort: shorter than its own structure needs, typically a
	// ticket the scanner read only in part.
	ReasonTooShort Reason = "too_short"
	// ReasonTooLong: longer than any ticket can be; refused before anything
	// is decoded.
	ReasonTooLong Reason = "too_long"
	// ReasonUnknownKey: well formed, but signed with a key the gate does
	// not know: another site's ticket, or a key rotation that has not
	// reached the gate yet.
	ReasonUnknownKey Reason = "unknown_key"
	// ReasonBadSignature: well formed and for a known key, but the
	// signature does not match: a forged or altered ticket.
	ReasonBadSignature Reason = "bad_signature"
	// ReasonExpired: authentic, but the reservation window has ended.
	ReasonExpired Reason = "expired"
)

// MaxInputLen is the longest input Verify looks at, surrounding whitespace
// included; anything longer is ReasonTooLong without being decoded. The
// largest valid ticket has 258 characters, which leaves room for the line
// endings and padding scanners add.
const MaxInputLen = 320

// RejectError is the error Verify returns for a ticket it does not accept.
type RejectError struct {
	// Reason is the stable word for the rejection.
	Reason Reason
	// Detail says what exactly was wrong, for a person reading a log; its
	// wording may change.
	Detail string
}

// Error returns "ticket rejected (reason): detail".
func (e *RejectError) Error() string {
	return "ticket rejected (" + string(e.Reason) + "): " + e.Detail
}

// ReasonOf returns the Reason of err if err is or wraps a *RejectError, and
// "" otherwise.
func ReasonOf(err error) Reason {
	var re *RejectError
	if errors.As(err, &re) {
		return re.Reason
	}
	return ""
}

func reject(r Reason, format string, args ...any) *RejectError {
	return &RejectError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// Verifier checks tickets against one or more public keys. It is immutable
// and safe for concurrent use; to change the keys (rotation through
// configuration or sync) build a new Verifier and swap it in, for example
// with an atomic.Pointer.
type Verifier struct {
	keys map[[keyIDLen]byte]ed25519.PublicKey
}

// NewVerifier returns a Verifier that accepts tickets signed by any of keys.
// Several keys let a site rotate: gates accept the old and the new key until
// every ticket signed with the old one has expired. The same key given twice
// counts once; two different keys with the same key id (a 1 in 2³² chance)
// are refused, since tickets could not say which one they mean.
func NewVerifier(keys ...ed25519.PublicKey) (*Verifier, error) {
	if len(keys) == 0 {
		return nil, errors.New("ticket: a verifier needs at least one public key")
	}
	v := &Verifier{keys: make(map[[keyIDLen]byte]ed25519.PublicKey, len(keys))}
	for i, k := range keys {
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("ticket: public key %d has %d bytes, want %d", i+1, len(k), ed25519.PublicKeySize)
		}
		id := keyIDOf(k)
		if old, ok := v.keys[id]; ok {
			if old.Equal(k) {
				continue
			}
			return nil, fmt.Errorf("ticket: two different public keys share the key id %s", hex.EncodeToString(id[:]))
		}
		v.keys[id] = append(ed25519.PublicKey(nil), k...)
	}
	return v, nil
}

// KeyIDs returns the ids of the keys v accepts, for status pages and logs.
func (v *Verifier) KeyIDs() []string {
	ids := make([]string, 0, len(v.keys))
	for id := range v.keys {
		ids = append(ids, hex.EncodeToString(id[:]))
	}
	return ids
}

// Verify decodes code, checks its signature and checks that now is before
// the end of its window. Every rejection is a *RejectError; on
// ReasonExpired the returned Ticket is nevertheless the authentic, decoded
// ticket (an exit lane may still let an overstaying car out), on every other
// error it is the zero Ticket.
//
// Verify does not reject a ticket whose window has not started yet: how
// early a car may enter is the gate's policy (reservations.early_arrival),
// so the caller compares now with Ticket.From. Surrounding whitespace is
// ignored, since scanners end each read with CR, LF or both.
//
// Decoding is strict: lower case is refused, although the base32 letters
// would decode the same. QR alphanumeric mode has no lower case, so a real
// scan never produces it, and a strict decoder gives each ticket exactly one
// spelling: any altered character is denied, and logs and
// the gate's repeated-scan suppression can compare codes as strings.
func (v *Verifier) Verify(code string, now time.Time) (Ticket, error) {
	t, err := v.VerifySignature(code)
	if err != nil {
		return Ticket{}, err
	}
	if !now.Before(t.Until) {
		return t, reject(ReasonExpired, "the window ended at %s", t.Until.Format(time.RFC3339))
	}
	return t, nil
}

// VerifySignature is Verify without the time check: it decodes code and
// checks its signature only. It is for a gate whose clock is not trusted yet
// (after boot, before NTP sync), which then applies its offline policy to
// the authentic ticket instead of trusting a wrong clock.
func (v *Verifier) VerifySignature(code string) (Ticket, error) {
	// Refuse oversized input before looking at it further, so a hostile
	// "scan" costs nothing.
	if len(code) > MaxInputLen {
		return Ticket{}, reject(ReasonTooLong, "input is %d bytes, more than the %d accepted", len(code), MaxInputLen)
	}
	code = strings.Trim(code, " \t\r\n\v\f")
	body, ok := strings.CutPrefix(code, Prefix)
	if !ok {
		if strings.HasPrefix(Prefix, code) {
			return Ticket{}, reject(ReasonTooShort, "only %d characters", len(code))
		}
		return Ticket{}, reject(ReasonMalformed, "does not start with %q", Prefix)
	}
	for i := 0; i < len(body); i++ {
		if c := body[i]; !('A' <= c && c <= 'Z' || '2' <= c && c <= '7') {
			return Ticket{}, reject(ReasonMalformed, "character %d (%q) is not in the upper-case base32 alphabet", len(Prefix)+i+1, c)
		}
	}
	switch {
	case len(code) < minCodeLen:
		return Ticket{}, reject(ReasonTooShort, "%d characters, a ticket has at least %d", len(code), minCodeLen)
	case len(code) > maxCodeLen:
		return Ticket{}, reject(ReasonTooLong, "%d characters, a ticket has at most %d", len(code), maxCodeLen)
	}

	// Unpadded base32 cannot end with 1, 3 or 6 characters of a final
	// 8-character group. Such a code was most likely cut short, so decode
	// all but its last character to see whether its structure says so.
	badLen := false
	if r := len(body) % 8; r == 1 || r == 3 || r == 6 {
		badLen = true
		body = body[:len(body)-1]
	}
	raw, err := b32.DecodeString(body)
	if err != nil { // cannot happen after the checks above; stay safe
		return Ticket{}, reject(ReasonMalformed, "bad base32: %v", err)
	}
	t, keyID, payloadLen, rerr := parse(raw)
	if rerr != nil {
		return Ticket{}, rerr
	}
	if badLen {
		return Ticket{}, reject(ReasonMalformed, "impossible base32 length")
	}
	// The decoder ignores the unused low bits of the last character;
	// insist on zeros there so that no second spelling of a ticket exists.
	if b32.EncodeToString(raw) != body {
		return Ticket{}, reject(ReasonMalformed, "non-canonical base32 ending")
	}

	pub, ok := v.keys[keyID]
	if !ok {
		return Ticket{}, reject(ReasonUnknownKey, "signed with key %s, which this gate does not know", t.KeyID)
	}
	payload, sig := raw[:payloadLen], raw[payloadLen:]
	if !ed25519.Verify(pub, signedMessage(payload), sig) {
		return Ticket{}, reject(ReasonBadSignature, "signature does not match key %s", t.KeyID)
	}
	return t, nil
}

// parse decodes the binary form (payload and signature) without checking
// the signature. It returns the ticket, the key id and the payload's length;
// the signature is the rest. Running out of bytes is ReasonTooShort, any
// other problem ReasonMalformed. The payload must be exactly what
// appendPayload makes of the decoded ticket, which rules out overlong
// varints and any other second encoding of the same ticket.
func parse(raw []byte) (Ticket, [keyIDLen]byte, int, *RejectError) {
	var (
		t     Ticket
		keyID [keyIDLen]byte
	)
	short := func(what string) *RejectError {
		return reject(ReasonTooShort, "ends inside the %s", what)
	}
	b := raw
	if len(b) < 1 {
		return t, keyID, 0, short("version")
	}
	if b[0] != formatVersion {
		return t, keyID, 0, reject(ReasonMalformed, "unsupported format version %d", b[0])
	}
	b = b[1:]
	if len(b) < keyIDLen {
		return t, keyID, 0, short("key id")
	}
	keyID = [keyIDLen]byte(b[:keyIDLen])
	b = b[keyIDLen:]
	if len(b) < 4 {
		return t, keyID, 0, short("start time")
	}
	from := int64(binary.BigEndian.Uint32(b))
	b = b[4:]
	window, n := binary.Uvarint(b)
	switch {
	case n == 0:
		return t, keyID, 0, short("window")
	case n < 0 || window > uint64(MaxWindow/time.Second):
		return t, keyID, 0, reject(ReasonMalformed, "window out of range")
	}
	b = b[n:]
	var strs [3]string
	for i, what := range [3]string{"reservation id", "spot id", "car id"} {
		if len(b) < 1 {
			return t, keyID, 0, short(what)
		}
		l := int(b[0])
		if len(b)-1 < l {
			return t, keyID, 0, short(what)
		}
		strs[i] = string(b[1 : 1+l])
		b = b[1+l:]
	}
	payloadLen := len(raw) - len(b)
	switch {
	case len(b) < ed25519.SignatureSize:
		return t, keyID, 0, short("signature")
	case len(b) > ed25519.SignatureSize:
		return t, keyID, 0, reject(ReasonMalformed, "%d bytes after the signature", len(b)-ed25519.SignatureSize)
	}
	t = Ticket{
		ReservationID: strs[0],
		SpotID:        strs[1],
		From:          time.Unix(from, 0).UTC(),
		Until:         time.Unix(from+int64(window), 0).UTC(),
		CarID:         strs[2],
		KeyID:         hex.EncodeToString(keyID[:]),
	}
	if err := validate(&t); err != nil {
		return Ticket{}, keyID, 0, reject(ReasonMalformed, "%s", err)
	}
	if !bytes.Equal(appendPayload(nil, keyID, &t), raw[:payloadLen]) {
		return Ticket{}, keyID, 0, reject(ReasonMalformed, "non-canonical encoding")
	}
	return t, keyID, payloadLen, nil
}
