package ticket

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits on what a ticket may carry. They bound the size of the QR code (the
// largest ticket is 258 characters) and the work a gate does on untrusted
// input; Issue refuses anything beyond them and Verify treats it as malformed.
const (
	// MaxReservationIDLen is the longest reservation id, in bytes.
	MaxReservationIDLen = 32
	// MaxSpotIDLen is the longest spot id, in bytes.
	MaxSpotIDLen = 32
	// MaxCarIDLen is the longest car id (licence plate), in bytes. The
	// longest plates in use have about ten characters.
	MaxCarIDLen = 16
	// MaxWindow is the longest reservation window a ticket can carry. A year
	// is far beyond any parking reservation, and it keeps the window field
	// at four bytes at most.
	MaxWindow = 366 * 24 * time.Hour
)

// Prefix starts every ticket. It tells a parkgate ticket from any other QR
// code before anything is decoded.
const Prefix = "PG"

const (
	// formatVersion is the first payload byte of the format described in
	// the package documentation.
	formatVersion byte = 1
	// sigDomain is signed in front of the payload (domain separation): a
	// signature that the site key makes for anything else never verifies as
	// a ticket, and vice versa.
	sigDomain = "parkgate-ticket-v1\x00"
	// keyIDLen is the size of the key id in the payload.
	keyIDLen = 4
)

// b32 is RFC 4648 base32 without padding: its alphabet (A–Z, 2–7) lies inside
// the QR alphanumeric set, and '=' padding would only add characters.
var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Sizes of the smallest and the largest valid ticket, used by Verify to
// reject input by its length before decoding it.
var (
	minBinLen = 1 + keyIDLen + 4 + 1 + (1 + 1) + (1 + 1) + 1 + ed25519.SignatureSize
	maxBinLen = 1 + keyIDLen + 4 + uvarintLen(uint64(MaxWindow/time.Second)) +
		(1 + MaxReservationIDLen) + (1 + MaxSpotIDLen) + (1 + MaxCarIDLen) +
		ed25519.SignatureSize
	minCodeLen = len(Prefix) + b32.EncodedLen(minBinLen)
	maxCodeLen = len(Prefix) + b32.EncodedLen(maxBinLen)
)

// ErrInvalid is wrapped by every error Issue returns for a ticket it refuses
// to sign, so that callers can tell bad input from other failures.
var ErrInvalid = errors.New("invalid ticket")

// Ticket is what a ticket proves: the reservation, its spot, its time window
// and the car, as the central server knew them when it issued the ticket.
type Ticket struct {
	// ReservationID identifies the reservation; 1 to MaxReservationIDLen
	// bytes.
	ReservationID string
	// SpotID identifies the parking spot; 1 to MaxSpotIDLen bytes.
	SpotID string
	// From is the start of the reservation window. Tickets carry whole
	// seconds; Issue rounds From up to the next second, so a ticket never
	// starts before the reservation.
	From time.Time
	// Until is the end of the reservation window, after From. Issue rounds
	// it down to a whole second, so a ticket never outlasts the
	// reservation.
	Until time.Time
	// CarID is the car's licence plate as centrald stored it (may be empty,
	// at most MaxCarIDLen bytes). Comparing it with what a camera read is
	// up to the gate, which normalises both.
	CarID string
	// KeyID is the id (see KeyID) of the key that signed the ticket. Verify
	// sets it, so that a gate can log which key of a rotation was used;
	// Issue ignores it and always writes the Signer's own key id.
	KeyID string
}

// KeyID returns the id of a public key: the hex form of the first 4 bytes of
// its SHA-256, the same bytes that tickets carry to name their key. It is for
// logs and configuration output, so that operators can match keys at a
// glance.
func KeyID(pub ed25519.PublicKey) string {
	id := keyIDOf(pub)
	return hex.EncodeToString(id[:])
}

func keyIDOf(pub ed25519.PublicKey) [keyIDLen]byte {
	sum := sha256.Sum256(pub)
	return [keyIDLen]byte(sum[:keyIDLen])
}

// Signer issues tickets with one private key. It is immutable and safe for
// concurrent use.
type Signer struct {
	priv  ed25519.PrivateKey
	pub   ed25519.PublicKey
	keyID [keyIDLen]byte
}

// NewSigner returns a Signer for priv, which must be a complete Ed25519
// private key (ed25519.PrivateKeySize bytes).
func NewSigner(priv ed25519.PrivateKey) (*Signer, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("ticket: private key has %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	// Copy, so that a caller reusing its slice cannot change the key under
	// a Signer that other goroutines use.
	priv = append(ed25519.PrivateKey(nil), priv...)
	pub := priv.Public().(ed25519.PublicKey)
	return &Signer{priv: priv, pub: pub, keyID: keyIDOf(pub)}, nil
}

// PublicKey returns the public half of the Signer's key, which gates need to
// verify its tickets.
func (s *Signer) PublicKey() ed25519.PublicKey {
	return append(ed25519.PublicKey(nil), s.pub...)
}

// KeyID returns the id of the Signer's key, as KeyID(s.PublicKey()).
func (s *Signer) KeyID() string { return hex.EncodeToString(s.keyID[:]) }

// Issue returns the signed text form of t. It refuses, with an error wrapping
// ErrInvalid, a ticket that breaks the limits above or whose window is empty
// once rounded to whole seconds; t.KeyID is ignored. The same ticket always
// yields the same string (Ed25519 signatures are deterministic), so a retried
// payment hands the driver the same QR code.
func (s *Signer) Issue(t Ticket) (string, error) {
	if t.From.IsZero() || t.Until.IsZero() {
		return "", fmt.Errorf("ticket: from and until must both be set: %w", ErrInvalid)
	}
	// Round the window inwards to whole seconds: a ticket must never grant
	// more time than the reservation it stands for.
	from := t.From.Truncate(time.Second)
	if from.Before(t.From) {
		from = from.Add(time.Second)
	}
	t.From = from.UTC()
	t.Until = t.Until.Truncate(time.Second).UTC()
	if err := validate(&t); err != nil {
		return "", fmt.Errorf("ticket: %s: %w", err, ErrInvalid)
	}
	payload := appendPayload(make([]byte, 0, maxBinLen), s.keyID, &t)
	sig := ed25519.Sign(s.priv, signedMessage(payload))
	return Prefix + b32.EncodeToString(append(payload, sig...)), nil
}

// validate checks t against the limits; the times must already be whole
// seconds. It is shared by Issue and Verify so that the two can never
// disagree on what a valid ticket is. The error text is a phrase to be
// wrapped by the caller.
func validate(t *Ticket) error {
	if err := checkString("reservation id", t.ReservationID, 1, MaxReservationIDLen); err != nil {
		return err
	}
	if err := checkString("spot id", t.SpotID, 1, MaxSpotIDLen); err != nil {
		return err
	}
	if err := checkString("car id", t.CarID, 0, MaxCarIDLen); err != nil {
		return err
	}
	from := t.From.Unix()
	if from < 0 || from > math.MaxUint32 {
		return fmt.Errorf("from %s is outside the years 1970 to 2106 that a ticket can carry", t.From.Format(time.RFC3339))
	}
	if !t.Until.After(t.From) {
		return fmt.Errorf("until %s is not after from %s (in whole seconds)",
			t.Until.Format(time.RFC3339), t.From.Format(time.RFC3339))
	}
	if w := t.Until.Sub(t.From); w > MaxWindow {
		return fmt.Errorf("window of %s is longer than the %s a ticket can carry", w, MaxWindow)
	}
	return nil
}

// checkString enforces the length limits and keeps control characters and
// invalid UTF-8 out of tickets: their fields end up in gate logs, displays
// and databases, where such bytes cause trouble and have no legitimate use.
func checkString(what, s string, minLen, maxLen int) error {
	switch {
	case len(s) < minLen:
		return fmt.Errorf("%s is empty", what)
	case len(s) > maxLen:
		return fmt.Errorf("%s is %d bytes long, more than the %d allowed", what, len(s), maxLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("%s is not valid UTF-8", what)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("%s contains the control character %U", what, r)
		}
	}
	return nil
}

// appendPayload appends the binary payload of t (everything but the
// signature) to b. t must have passed validate.
func appendPayload(b []byte, keyID [keyIDLen]byte, t *Ticket) []byte {
	b = append(b, formatVersion)
	b = append(b, keyID[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(t.From.Unix()))
	b = binary.AppendUvarint(b, uint64(t.Until.Unix()-t.From.Unix()))
	b = appendString(b, t.ReservationID)
	b = appendString(b, t.SpotID)
	b = appendString(b, t.CarID)
	return b
}

func appendString(b []byte, s string) []byte {
	b = append(b, byte(len(s)))
	return append(b, s...)
}

// signedMessage is what the signature covers: the domain string, then the
// payload.
func signedMessage(payload []byte) []byte {
	m := make([]byte, 0, len(sigDomain)+len(payload))
	m = append(m, sigDomain...)
	return append(m, payload...)
}

func uvarintLen(v uint64) int {
	var buf [binary.MaxVarintLen64]byte
	return binary.PutUvarint(buf[:], v)
}
