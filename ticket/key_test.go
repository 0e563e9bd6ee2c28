package ticket

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestLoadOrCreateKey(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions")
	}
	dir := filepath.Join(t.TempDir(), "etc", "parkgate")
	path := filepath.Join(dir, "ticket.key")

	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(k1) != ed25519.PrivateKeySize {
		t.Fatalf("key has %d bytes", len(k1))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode = %04o, want 0600", perm)
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := di.Mode().Perm(); perm != 0o700 {
		t.Errorf("key directory mode = %04o, want 0700", perm)
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), "-----BEGIN PRIVATE KEY-----\n") {
		t.Errorf("key file does not start with a PRIVATE KEY PEM block:\n%s", data)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the key (temporary file left behind?)", len(entries))
	}

	k2, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equal(k2) {
		t.Error("reloading gave a different key")
	}

	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadOrCreateKey(path)
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: err = %v, want a refusal that says how to fix it", mode, err)
		}
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if k3, err := LoadOrCreateKey(path); err != nil || !k1.Equal(k3) {
		t.Errorf("mode 0400: %v", err)
	}
}

func TestLoadOrCreateKeyConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ticket.key")
	const n = 8
	keys := make([]ed25519.PrivateKey, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], errs[i] = LoadOrCreateKey(path) })
	}
	wg.Wait()
	onDisk, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if !keys[i].Equal(onDisk) {
			t.Errorf("caller %d got a key that is not the one on disk", i)
		}
	}
}

func TestLoadKeyRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKCS8PrivateKey(edKey)
	for name, c := range map[string]struct {
		data string
		want string
	}{
		"empty":     {"", "no PEM block"},
		"garbage":   {"not a key\n", "no PEM block"},
		"type":      {string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER})), `want "PRIVATE KEY"`},
		"ecdsa":     {string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})), "want an Ed25519 key"},
		"bad der":   {string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}})), "ticket.key"},
		"trailing":  {string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: edDER})) + "junk", "data after"},
		"too large": {strings.Repeat("x", 20<<10), "too large"},
	} {
		path := filepath.Join(dir, name, "ticket.key")
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(c.data), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadOrCreateKey(path)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to contain %q", name, err, c.want)
		}
		// A broken key file is never replaced by a new key.
		if data, _ := os.ReadFile(path); string(data) != c.data {
			t.Errorf("%s: the key file was changed", name)
		}
	}
	if _, err := LoadOrCreateKey(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory as key file: err = %v", err)
	}
}

func TestPublicKeyText(t *testing.T) {
	pub := testSigner(t, 1).PublicKey()
	s := FormatPublicKey(pub)
	if !strings.HasPrefix(s, "ed25519:") || strings.ContainsAny(s, " \n") {
		t.Errorf("FormatPublicKey = %q", s)
	}
	for _, in := range []string{s, " " + s + "\n", "\t" + s + "\r\n"} {
		got, err := ParsePublicKey(in)
		if err != nil {
			t.Fatalf("ParsePublicKey(%q): %v", in, err)
		}
		if !got.Equal(pub) {
			t.Errorf("ParsePublicKey(%q) = %x, want %x", in, got, pub)
		}
	}
	b64 := strings.TrimPrefix(s, "ed25519:")
	for _, bad := range []string{
		"",
		b64,                           // no algorithm
		"ED25519:" + b64,              // case matters
		"ecdsa:" + b64,                //
		"ed25519:" + b64[:len(b64)-4], // short
		"ed25519:" + b64 + "AAAA",     // long
		"ed25519:" + b64[:len(b64)-1], // missing padding
		"ed25519:" + b64[:20] + "*" + b64[21:],
		"ed25519:" + base64.StdEncoding.EncodeToString(make([]byte, 64)), // a private key's size
		"ed25519: " + b64,
	} {
		if _, err := ParsePublicKey(bad); err == nil {
			t.Errorf("ParsePublicKey(%q) succeeded", bad)
		}
	}
	// Non-canonical base64 (non-zero unused bits) is refused, so that a key
	// has one spelling.
	last := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", b64[len(b64)-2])
	alt := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[last^1]
	if _, err := ParsePublicKey("ed25519:" + b64[:len(b64)-2] + string(alt) + "="); err == nil {
		t.Error("non-canonical base64 accepted")
	}
}

func TestKeyID(t *testing.T) {
	s := testSigner(t, 1)
	id := KeyID(s.PublicKey())
	if len(id) != 8 || strings.Trim(id, "0123456789abcdef") != "" {
		t.Errorf("KeyID = %q, want 8 lower-case hex digits", id)
	}
	if id != s.KeyID() {
		t.Errorf("KeyID = %q, Signer.KeyID = %q", id, s.KeyID())
	}
	if id == KeyID(testSigner(t, 2).PublicKey()) {
		t.Error("two keys share a key id")
	}
}

// TestKeyFileSignsTickets ties the pieces together as centrald and a gate
// use them: the key from the file signs, the formatted public key verifies.
func TestKeyFileSignsTickets(t *testing.T) {
	priv, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "ticket.key"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(FormatPublicKey(priv.Public().(ed25519.PublicKey)))
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(issue(t, s, sampleTicket()), t0); err != nil {
		t.Fatal(err)
	}
}
