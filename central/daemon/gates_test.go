package daemon

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/broker"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/central/store/sqlitestore"
)

// The broker upgrades a gate's argon2id hash to the SHA-256 form after a
// good login; the store replaces it only while it is still the hash the
// broker checked, so a password rotated by `centrald gate add` meanwhile
// stays rotated.
func TestGateCredentialsUpgrade(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pw, err := AddGate(ctx, st, "entry-1", "entry", time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	creds := GateCredentials{Store: st}
	fast, _, _ := creds.Lookup("entry-1")
	if !broker.IsTokenHash(fast) {
		t.Fatalf("AddGate stored %.10q..., want the $sha256$ form", fast)
	}
	// A gate provisioned before: its hash is argon2id.
	old, err := broker.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Write(ctx, func(tx store.Tx) error {
		g, err := tx.Gate("entry-1")
		if err != nil {
			return err
		}
		g.PasswordHash = old
		return tx.PutGate(g)
	}); err != nil {
		t.Fatal(err)
	}
	if err := creds.Upgrade("entry-1", old, fast); err != nil {
		t.Fatal(err)
	}
	if h, _, _ := creds.Lookup("entry-1"); string(h) != string(fast) || !broker.CheckPassword(h, pw) {
		t.Fatalf("after Upgrade the stored hash is %.10q..., want the SHA-256 form", h)
	}
	g, err := st.Gate(ctx, "entry-1")
	if err != nil || g.Role != "entry" {
		t.Fatalf("Upgrade changed the gate: role %q, %v", g.Role, err)
	}
	// Rotated meanwhile: an upgrade of the old hash changes nothing.
	pw2, err := AddGate(ctx, st, "entry-1", "", time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := creds.Upgrade("entry-1", old, fast); err != nil {
		t.Fatal(err)
	}
	if h, _, _ := creds.Lookup("entry-1"); !broker.CheckPassword(h, pw2) || broker.CheckPassword(h, pw) {
		t.Fatal("a late upgrade overwrote a rotated password")
	}
}
