package broker

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Credentials gives the broker the gates' stored password hashes (as
// HashPassword makes them). centrald keeps them in its database; tests use
// StaticCredentials. Lookup reports ok=false for an unknown gate and an
// error only when the store itself failed (the connection is then refused:
// the broker never lets a gate in without a checked password).
type Credentials interface {
	Lookup(gateID string) (hash []byte, ok bool, err error)
}

// StaticCredentials is an in-memory Credentials: gate id → hash from
// HashPassword.
type StaticCredentials map[string][]byte

// Lookup returns the hash stored for gateID.
func (s StaticCredentials) Lookup(gateID string) ([]byte, bool, error) {
	h, ok := s[gateID]
	return h, ok, nil
}

// Argon2id parameters: OWASP's recommended minimum for argon2id (19 MiB,
// two passes, one lane). A check costs ~60 ms of one core, which is
// nothing for a gate that connects once, but makes guessing from a leaked
// database slow. The parameters are stored in every hash, so raising them
// later only affects new hashes; old ones still verify.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024 // KiB
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

// HashPassword hashes pw with argon2id and a random 16-byte salt, in the
// PHC string format ("$argon2id$v=19$m=19456,t=2,p=1$salt$hash", unpadded
// base64) so that the parameters travel with the hash.
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

// CheckPassword reports whether pw matches hash (from HashPassword). A
// malformed hash never matches. The final comparison is constant-time.
func CheckPassword(hash []byte, pw string) bool {
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
