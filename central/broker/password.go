package broker

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Credentials gives the broker the gates' stored password hashes (as
// HashToken makes them, or HashPassword for hashes stored before gate
// passwords were hashed with SHA-256). centrald keeps them in its
// database; tests use StaticCredentials. Lookup reports ok=false for an unknown gate and an
// error only when the store itself failed (the connection is then refused:
// the broker never lets a gate in without a checked password).
type Credentials interface {
	Lookup(gateID string) (hash []byte, ok bool, err error)
}

// Upgrader is what a Credentials may also do: replace a gate's stored
// argon2id hash by the SHA-256 form (HashToken) once the gate has shown
// the right password, so that its later connections cost microseconds
// instead of ~60 ms. It must replace the hash only if it is still old, so
// that a password rotated in the meantime is not overwritten.
type Upgrader interface {
	Upgrade(gateID string, old, new []byte) error
}

// StaticCredentials is an in-memory Credentials: gate id → hash from
// HashToken or HashPassword.
type StaticCredentials map[string][]byte

// Lookup returns the hash stored for gateID.
func (s StaticCredentials) Lookup(gateID string) ([]byte, bool, error) {
	h, ok := s[gateID]
	return h, ok, nil
}

// Argon2id parameters: OWASP's recommended minimum for argon2id (19 MiB,
// two passes, one lane). A check costs ~60 ms of one core, which makes
// guessing a password a person chose slow even from a leaked database. The parameters are stored in every hash, so raising them
// later only affects new hashes; old ones still verify.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024 // KiB
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

// A gate's password is never chosen by a person: `centrald gate add`
// generates it from 24 random bytes (192 bits). A slow KDF protects
// low-entropy secrets from guessing; against a uniformly random 192-bit
// token guessing is hopeless at any speed, so one SHA-256 of the token is
// as strong as argon2id, and costs about a microsecond instead of ~60 ms.
// That matters after a centrald restart, when every gate reconnects at
// once: a thousand argon2id checks take ~30 s on two cores, a thousand
// SHA-256 checks well under a millisecond.
//
// Plain SHA-256 rather than HMAC-SHA-256 with a server key: a key would
// only help if the database leaked without it, and a 192-bit token needs
// no such help; it would also be one more secret to keep, back up and
// share between centrald instances. No salt either: a salt defeats
// precomputed tables of likely passwords, and there are none for random
// tokens.
const (
	tokenPrefix = "$sha256$"
	// MinTokenLen is the shortest secret HashToken accepts: 22 characters
	// are 128 bits in unpadded base64. It catches a caller handing a
	// human password to HashToken; it cannot measure entropy, so only
	// pass HashToken secrets from crypto/rand.
	MinTokenLen = 22
)

// HashToken hashes a generated secret (at least 128 bits from crypto/rand,
// like a gate's password) as "$sha256$" and the unpadded base64 of its
// SHA-256. Use HashPassword for anything a person may choose.
func HashToken(token string) ([]byte, error) {
	if len(token) < MinTokenLen {
		return nil, fmt.Errorf("broker: a token needs at least %d characters (128 random bits)", MinTokenLen)
	}
	sum := sha256.Sum256([]byte(token))
	return fmt.Appendf(nil, "%s%s", tokenPrefix, base64.RawStdEncoding.EncodeToString(sum[:])), nil
}

// IsTokenHash reports whether hash is in HashToken's form (a check of it
// is cheap); anything else is left to HashPassword's argon2id.
func IsTokenHash(hash []byte) bool { return strings.HasPrefix(string(hash), tokenPrefix) }

// HashPassword hashes pw with argon2id and a random 16-byte salt, in the
// PHC string format ("$argon2id$v=19$m=19456,t=2,p=1$salt$hash", unpadded
// base64) so that the parameters travel with the hash. It is for secrets a
// person may choose or type; generated tokens take HashToken.
func HashPassword(pw string) ([]byte, error) {
	if pw == "" {
		return nil, errors.New("broker: empty password")
	}
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("broker: salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Appendf(nil, "$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemory, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// CheckPassword reports whether pw matches hash, from HashToken or
// HashPassword (the hash says which). A malformed hash never matches. The
// final comparison is constant-time.
func CheckPassword(hash []byte, pw string) bool {
	if IsTokenHash(hash) {
		// The exact length as well: the decoder skips newlines.
		enc := hash[len(tokenPrefix):]
		want, err := base64.RawStdEncoding.Strict().DecodeString(string(enc))
		if err != nil || len(enc) != base64.RawStdEncoding.EncodedLen(sha256.Size) || len(want) != sha256.Size {
			return false
		}
		sum := sha256.Sum256([]byte(pw))
		return subtle.ConstantTimeCompare(sum[:], want) == 1
	}
	p, ok := parseHash(string(hash))
	if !ok {
		return false
	}
	key := argon2.IDKey([]byte(pw), p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
	return subtle.ConstantTimeCompare(key, p.key) == 1
}

// argonHash is a parsed PHC string.
type argonHash struct {
	time, memory uint32
	threads      uint8
	salt, key    []byte
}

// maxArgonMemory bounds the memory a stored hash may ask for (1 GiB), so a
// corrupt or hostile row cannot make a login allocate without limit.
const maxArgonMemory = 1 << 20

func parseHash(s string) (argonHash, bool) {
	var p argonHash
	parts := strings.Split(s, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, false
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return p, false
	}
	var threads uint32
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &threads); err != nil || n != 3 {
		return p, false
	}
	if p.time < 1 || p.time > 100 || threads < 1 || threads > 255 ||
		p.memory < 8*threads || p.memory > maxArgonMemory {
		return p, false
	}
	p.threads = uint8(threads)
	var err error
	b64 := base64.RawStdEncoding
	if p.salt, err = b64.DecodeString(parts[4]); err != nil || len(p.salt) < 8 {
		return p, false
	}
	if p.key, err = b64.DecodeString(parts[5]); err != nil || len(p.key) < 16 || len(p.key) > 64 {
		return p, false
	}
	return p, true
}
