package ticket

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// pemType is the PEM block type of a PKCS #8 private key, the form OpenSSL
// and most tools read ("openssl pkey -in key.pem -pubout" works on it).
const pemType = "PRIVATE KEY"

// PublicKeyPrefix starts the text form of a public key (FormatPublicKey). It
// names the algorithm, so that a later key type can be told apart and a
// stray base64 string is not taken for a key.
const PublicKeyPrefix = "ed25519:"

// LoadOrCreateKey returns the site's ticket signing key from the PEM file at
// path (a PKCS #8 "PRIVATE KEY" block), creating a new random key there on
// first use, along with missing parent directories (mode 0700).
//
// A new key file is written with mode 0600 to a temporary file in the same
// directory, synced and then moved into place, so a crash never leaves a
// half-written key behind. If another process creates the key at the same
// time, both end up with the same key (the first one to finish wins),
// because a key that is not on disk would make its tickets unverifiable
// after a restart.
//
// The file must not be accessible to group or others (mode 0600 or
// stricter): anyone who can read it can forge tickets, and anyone who can
// write it can swap the site's key. LoadOrCreateKey refuses such a file
// rather than loosen the site's security silently.
//
// With several centrald instances the key must be the same everywhere:
// create it once and distribute the file; do not let each instance create
// its own.
func LoadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	key, err := loadKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	return createKey(path)
}

func loadKey(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		// Wrapped with %w: fs.ErrNotExist is how LoadOrCreateKey knows
		// to create the key.
		return nil, fmt.Errorf("ticket: opening key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("ticket: key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("ticket: key file %s is not a regular file", path)
	}
	// Windows does not have Unix permission bits; Go reports 0666 there.
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("ticket: key file %s has mode %04o, which lets group or others access the private key; run: chmod 600 %s",
			path, perm, path)
	}
	// A PEM Ed25519 key is about 120 bytes; refuse to read a huge file
	// that someone pointed tickets.key_file at by mistake.
	const limit = 16 << 10
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("ticket: reading key file %s: %w", path, err)
	}
	if len(data) > limit {
		return nil, fmt.Errorf("ticket: key file %s is too large to be a key", path)
	}
	return parsePrivateKeyPEM(path, data)
}

func parsePrivateKeyPEM(path string, data []byte) (ed25519.PrivateKey, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("ticket: key file %s holds no PEM block", path)
	}
	if block.Type != pemType {
		return nil, fmt.Errorf("ticket: key file %s holds a PEM %q block, want %q", path, block.Type, pemType)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("ticket: key file %s has data after its PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("ticket: key file %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("ticket: key file %s holds a %T, want an Ed25519 key", path, k)
	}
	return priv, nil
}

func createKey(path string) (ed25519.PrivateKey, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ticket: creating key directory: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ticket: generating key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("ticket: encoding key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der})

	// os.CreateTemp creates the file with mode 0600 before any byte of
	// the key is in it.
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("ticket: creating key file: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // after a successful link or rename: a no-op or the extra name
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("ticket: writing key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("ticket: writing key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("ticket: writing key file: %w", err)
	}

	// A hard link publishes the file atomically and, unlike rename, fails
	// if the key appeared meanwhile: then the other process's key is the
	// site key. Rename is the fallback for file systems without links.
	switch err := os.Link(tmpName, path); {
	case err == nil:
	case errors.Is(err, fs.ErrExist):
		return loadKey(path)
	default:
		if err := os.Rename(tmpName, path); err != nil {
			return nil, fmt.Errorf("ticket: installing key file: %w", err)
		}
	}
	// Persist the directory entry, so the key survives a power loss right
	// after centrald has started issuing tickets with it.
	if d, err := os.Open(dir); err == nil {
		serr := d.Sync()
		d.Close()
		if serr != nil && runtime.GOOS != "windows" {
			return nil, fmt.Errorf("ticket: syncing key directory: %w", serr)
		}
	}
	return priv, nil
}

// FormatPublicKey returns the one-line text form of a public key,
// "ed25519:" followed by its standard base64 encoding. It is what `centrald
// pubkey` prints and what the gate's tickets.public_key setting holds.
func FormatPublicKey(pub ed25519.PublicKey) string {
	return PublicKeyPrefix + base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey reads the text form made by FormatPublicKey, ignoring
// surrounding whitespace (config files and copy-paste add it). Anything
// else is an error that says what is wrong, because a gate with a bad key
// would deny every ticket.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	b64, ok := strings.CutPrefix(s, PublicKeyPrefix)
	if !ok {
		return nil, fmt.Errorf("ticket: public key %q does not start with %q", abbreviate(s), PublicKeyPrefix)
	}
	b, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("ticket: public key is not valid base64: %w", err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("ticket: public key has %d bytes, want %d", len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// abbreviate keeps error messages about a mistyped setting short.
func abbreviate(s string) string {
	const n = 24
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
