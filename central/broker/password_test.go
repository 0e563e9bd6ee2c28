package broker

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

// newToken makes a secret the way `centrald gate add` does: 24 random
// bytes, unpadded base64url.
func newToken(t testing.TB) string {
	t.Helper()
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func TestTokenHash(t *testing.T) {
	tok := newToken(t)
	h, err := HashToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(h), "$sha256$") || strings.Contains(string(h), tok) {
		t.Errorf("hash %q: want $sha256$ and no trace of the token", h)
	}
	if !CheckPassword(h, tok) {
		t.Error("right token refused")
	}
	for _, pw := range []string{"", tok[1:], tok + "x", strings.ToUpper(tok), newToken(t)} {
		if CheckPassword(h, pw) {
			t.Errorf("wrong token %q accepted", pw)
		}
	}
	// A human-length password is refused: HashToken is only for
	// generated secrets.
	for _, short := range []string{"", "s3cret", strings.Repeat("a", MinTokenLen-1)} {
		if _, err := HashToken(short); err == nil {
			t.Errorf("HashToken(%q) accepted a secret shorter than %d characters", short, MinTokenLen)
		}
	}
	// A stored hash that is not exactly $sha256$ and 32 bytes of unpadded
	// base64 fails closed, even with the right token.
	b64 := strings.TrimPrefix(string(h), "$sha256$")
	for _, bad := range []string{
		"$sha256$",
		"$sha256$" + b64[:len(b64)-4], // 29 bytes
		"$sha256$" + b64 + "AAAA",     // 35 bytes
		"$sha256$" + b64 + "=",        // padded
		"$sha256$" + strings.ReplaceAll(b64, b64[:1], "!"), // not base64
		"$sha256$" + b64 + "\n",
		"$SHA256$" + b64,
		"$sha256$$" + b64,
		b64,
	} {
		if CheckPassword([]byte(bad), tok) {
			t.Errorf("malformed hash %q matched", bad)
		}
	}
}

// Both forms verify through one CheckPassword: hashes stored as argon2id
// before gate passwords were hashed with SHA-256 still let their gates in.
func TestCheckPasswordBothForms(t *testing.T) {
	tok := newToken(t)
	fast, err := HashToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	slow, err := HashPassword(tok)
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string][]byte{"sha256": fast, "argon2id": slow} {
		if !CheckPassword(h, tok) {
			t.Errorf("%s: right password refused", name)
		}
		if CheckPassword(h, newToken(t)) {
			t.Errorf("%s: wrong password accepted", name)
		}
	}
}

// A thousand gates reconnect at once after a centrald restart; checking
// their passwords must not keep them waiting. A thousand checks of a
// generated gate password take well under a second (argon2id: ~60 s on
// one core).
func TestTokenCheckIsFast(t *testing.T) {
	tok := newToken(t)
	h, err := HashToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	start := time.Now()
	for range n {
		if !CheckPassword(h, tok) {
			t.Fatal("right token refused")
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("%d token checks took %v, want < 1s (under a millisecond each)", n, d)
	} else {
		t.Logf("%d token checks: %v (%v each)", n, d, d/n)
	}
}

func BenchmarkCheckToken(b *testing.B) {
	tok := newToken(b)
	h, err := HashToken(tok)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		CheckPassword(h, tok)
	}
}
