// Package enrollment is the protocol by which a gate enrolls with central
// in one command (docs/gated.md, "Enrollment"): the one-time code that
// `centrald gate enroll` prints and `gated enroll` takes, the messages of
// GET and POST /enroll, and both ends' cryptography.
//
// The code carries two things: a fresh 96-bit secret, and the fingerprint
// (96 bits of SHA-256) of central's enrollment public key. The gate
// proves it knows the secret without sending it, by signing its request
// with an Ed25519 key derived from the secret; central stores only that
// key's public half. Central answers with the gate's configuration
// encrypted (HPKE, RFC 9180) to an X25519 key the gate made for this one
// request, and signs the answer with its enrollment key; the gate accepts
// the answer only if that key matches the fingerprint in the code. So a
// passive eavesdropper on plain HTTP learns nothing, a man in the middle
// can neither redeem the code nor pose as central, and the gate trusts
// central from the code alone, not from its first answer.
package enrollment

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
)

const (
	// SecretLen is the code's secret in bytes: 96 bits, beyond both
	// online guessing (which the endpoint throttles anyway) and offline
	// search from an eavesdropped request.
	SecretLen = 12
	// FingerprintLen is how much of the SHA-256 of central's enrollment
	// key the code carries: a false central needs a key matching these
	// 96 bits, a second preimage.
	FingerprintLen = 12
	// codeBytes is secret, fingerprint and a check byte that catches a
	// typo before anything is sent: 25 bytes, 40 base32 characters.
	codeBytes = SecretLen + FingerprintLen + 1
	groupLen  = 5
)

// alphabet is Crockford's base32: digits and upper-case letters without
// I, L, O and U, so that a code read aloud or copied by hand survives.
var alphabet = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

// Code is a one-time enrollment code.
type Code struct {
	Secret      [SecretLen]byte
	Fingerprint [FingerprintLen]byte
}

// Fingerprint is what a code carries of central's enrollment key.
func Fingerprint(pub ed25519.PublicKey) [FingerprintLen]byte {
	sum := sha256.Sum256(pub)
	var f [FingerprintLen]byte
	copy(f[:], sum[:])
	return f
}

// NewCode makes a code with a fresh secret for the central whose
// enrollment key is pub.
func NewCode(pub ed25519.PublicKey) (Code, error) {
	var c Code
	if len(pub) != ed25519.PublicKeySize {
		return c, errors.New("enrollment: not an Ed25519 public key")
	}
	if _, err := rand.Read(c.Secret[:]); err != nil {
		return c, err
	}
	c.Fingerprint = Fingerprint(pub)
	return c, nil
}

// String is the code as people type it: 40 characters in groups of 5,
// e.g. 3KQ7M-....
func (c Code) String() string {
	var b [codeBytes]byte
	copy(b[:], c.Secret[:])
	copy(b[SecretLen:], c.Fingerprint[:])
	b[codeBytes-1] = check(b[:codeBytes-1])
	s := alphabet.EncodeToString(b[:])
	var groups []string
	for i := 0; i < len(s); i += groupLen {
		groups = append(groups, s[i:i+groupLen])
	}
	return strings.Join(groups, "-")
}

// ErrCodeFormat: the text is not an enrollment code (mistyped, cut short).
var ErrCodeFormat = errors.New("not an enrollment code: want 40 letters and digits in groups of 5, as `centrald gate enroll` printed it")

// ParseCode reads a code as String writes it. Case, dashes and spaces do
// not matter, and O, I and L are read as 0, 1 and 1.
func ParseCode(s string) (Code, error) {
	var c Code
	norm := strings.Map(func(r rune) rune {
		switch r {
		case '-', ' ', '\t':
			return -1
		case 'o', 'O':
			return '0'
		case 'i', 'I', 'l', 'L':
			return '1'
		}
		if r >= 'a' && r <= 'z' {
			return r - 'a' + 'A'
		}
		return r
	}, strings.TrimSpace(s))
	if len(norm) != alphabet.EncodedLen(codeBytes) {
		return c, ErrCodeFormat
	}
	b, err := alphabet.DecodeString(norm)
	if err != nil || len(b) != codeBytes {
		return c, ErrCodeFormat
	}
	if check(b[:codeBytes-1]) != b[codeBytes-1] {
		return c, fmt.Errorf("enrollment code %s: a character is wrong (its check does not match); compare it with what `centrald gate enroll` printed", s)
	}
	copy(c.Secret[:], b)
	copy(c.Fingerprint[:], b[SecretLen:])
	return c, nil
}

func check(b []byte) byte {
	sum := sha256.Sum256(append([]byte("parkgate enrollment check\x00"), b...))
	return sum[0]
}

// signingKey is the Ed25519 key derived from the secret: the gate signs
// its request with it, and central keeps only its public half (ID).
func (c Code) signingKey() ed25519.PrivateKey {
	seed, err := hkdf.Key(sha256.New, c.Secret[:], nil, "parkgate enrollment code v1", ed25519.SeedSize)
	if err != nil {
		panic(err) // only for lengths beyond HKDF's limit
	}
	return ed25519.NewKeyFromSeed(seed)
}

// ID identifies the code at central without revealing its secret: the
// public key derived from the secret. Central stores it instead of the
// code.
func (c Code) ID() ed25519.PublicKey {
	return c.signingKey().Public().(ed25519.PublicKey)
}
