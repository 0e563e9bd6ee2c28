// Package enroll is central's side of gate enrollment (docs/gated.md,
// "Enrollment"; the protocol is internal/enrollment): provisioning a
// gate, issuing its one-time code (`centrald gate enroll`), and GET/POST
// /enroll, which redeems a code for the gate's configuration.
package enroll

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/parkgate/parkgate/central/broker"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/internal/enrollment"
	"github.com/parkgate/parkgate/sync/syncmsg"
)

// CentralUser is centrald's own MQTT user name (the Mosquitto ACL example
// names it too): no gate may take it.
const CentralUser = "centrald"

// ErrRoleRequired: a gate without a recorded role was given none.
var ErrRoleRequired = errors.New("a gate without a recorded role needs one: --role entry or --role exit")

// checkGate validates a gate id and role ("" keeps the recorded one).
func checkGate(id, role string) error {
	if syncmsg.ValidID(id) != nil {
		return fmt.Errorf("gate id %q: use 1-32 lower-case letters, digits, '-' or '_', starting with a letter or digit", id)
	}
	if id == CentralUser {
		return fmt.Errorf("gate id %q is centrald's own MQTT user", id)
	}
	if role != "" && role != syncmsg.RoleEntry && role != syncmsg.RoleExit {
		return fmt.Errorf("role %q: want entry or exit", role)
	}
	return nil
}

// Provision gives gate id a new random password (192 bits) within tx,
// stored as its SHA-256 (broker.HashToken: a generated secret needs no
// slow KDF, and a thousand gates reconnecting at once must not wait for a
// thousand argon2id checks), and returns it, to be shown once. role
// (syncmsg.RoleEntry or RoleExit) is what the gate's events are checked
// against; a new gate needs one, a known gate keeps its own unless role
// is given. The gate's presence is kept.
func Provision(tx store.Tx, id, role string, now time.Time) (string, error) {
	if err := checkGate(id, role); err != nil {
		return "", err
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	password := base64.RawURLEncoding.EncodeToString(b[:])
	hash, err := broker.HashToken(password)
	if err != nil {
		return "", err
	}
	g, err := gateOrNew(tx, id, role, now)
	if err != nil {
		return "", err
	}
	g.PasswordHash = hash
	return password, tx.PutGate(g)
}

func gateOrNew(tx store.Tx, id, role string, now time.Time) (store.Gate, error) {
	g, err := tx.Gate(id)
	if errors.Is(err, store.ErrNotFound) {
		g = store.Gate{ID: id, AddedAt: now}
	} else if err != nil {
		return g, err
	}
	if role != "" {
		g.Role = role
	}
	if g.Role == "" {
		return g, ErrRoleRequired
	}
	return g, nil
}

// Issue records gate id with its role (as Provision does, but a new gate
// gets no password yet, so it cannot log in before it enrolls, and a
// known gate keeps its password until the code is redeemed) and returns a
// new one-time code for it, valid for ttl from now. key is central's
// enrollment public key, whose fingerprint the code carries. Only the
// code's ID is stored, never its secret.
func Issue(ctx context.Context, st store.Store, key ed25519.PublicKey, id, role string, ttl time.Duration, now time.Time) (enrollment.Code, error) {
	if err := checkGate(id, role); err != nil {
		return enrollment.Code{}, err
	}
	if ttl <= 0 {
		return enrollment.Code{}, fmt.Errorf("enroll.ttl %s: want a positive duration", ttl)
	}
	code, err := enrollment.NewCode(key)
	if err != nil {
		return code, err
	}
	err = st.Write(ctx, func(tx store.Tx) error {
		g, err := gateOrNew(tx, id, role, now)
		if err != nil {
			return err
		}
		if err := tx.PutGate(g); err != nil {
			return err
		}
		return tx.PutEnrollment(store.Enrollment{Key: code.ID(), GateID: id, Role: g.Role, CreatedAt: now, ExpiresAt: now.Add(ttl)})
	})
	if err != nil {
		return enrollment.Code{}, err
	}
	return code, nil
}

// Refusals of Redeem; the HTTP handler answers each with its own code.
var (
	// ErrUnknown: no such code, or a proof that does not match it (the
	// two are not told apart: only the code's holder may learn more).
	ErrUnknown = errors.New("this enrollment code is not known to this central (mistyped, or issued by another central)")
	ErrUsed    = errors.New("this enrollment code was already used; issue a new one: centrald gate enroll ID --role entry|exit")
	ErrExpired = errors.New("this enrollment code has expired; issue a new one: centrald gate enroll ID --role entry|exit")
)

// Grant is what a redeemed code gives a gate, before encryption.
type Grant struct {
	GateID, Role, Password string
}

// Redeem checks a request against the stored code and, if the code is
// known, unused and not expired at now, marks it used and gives the gate
// a new password, all in one transaction: of two requests with one code,
// exactly one succeeds.
func Redeem(ctx context.Context, st store.Store, id ed25519.PublicKey, recipient, proof []byte, now time.Time) (Grant, error) {
	if !enrollment.Verify(id, recipient, proof) {
		return Grant{}, ErrUnknown
	}
	var g Grant
	err := st.Write(ctx, func(tx store.Tx) error {
		e, err := tx.Enrollment(id)
		if errors.Is(err, store.ErrNotFound) {
			return ErrUnknown
		} else if err != nil {
			return err
		}
		if !e.UsedAt.IsZero() {
			return ErrUsed
		}
		if !now.Before(e.ExpiresAt) {
			return ErrExpired
		}
		pw, err := Provision(tx, e.GateID, e.Role, now)
		if err != nil {
			return err
		}
		e.UsedAt = now
		if err := tx.PutEnrollment(e); err != nil {
			return err
		}
		g = Grant{GateID: e.GateID, Role: e.Role, Password: pw}
		return nil
	})
	if err != nil {
		return Grant{}, err
	}
	return g, nil
}
