package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/parkgate/parkgate/central/broker"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/sync/syncmsg"
)

// AddGate provisions a gate for the embedded broker: a new random password
// (192 bits), stored as its SHA-256 (broker.HashToken: a generated secret
// needs no slow KDF, and a thousand gates reconnecting at once must not
// wait for a thousand argon2id checks), returned once for gated's mqtt.password, and
// the gate's role (syncmsg.RoleEntry or RoleExit), which its events are
// checked against: an entry gate cannot check a car out. A new gate needs
// a role; adding a known gate again rotates its password, keeps its
// presence, and keeps its role unless role is given.
func AddGate(ctx context.Context, st store.Store, id, role string, now time.Time) (string, error) {
	if syncmsg.ValidID(id) != nil {
		return "", fmt.Errorf("gate id %q: use 1-32 lower-case letters, digits, '-' or '_', starting with a letter or digit", id)
	}
	if id == CentralUser {
		return "", fmt.Errorf("gate id %q is centrald's own MQTT user", id)
	}
	if role != "" && role != syncmsg.RoleEntry && role != syncmsg.RoleExit {
		return "", fmt.Errorf("role %q: want entry or exit", role)
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
	err = st.Write(ctx, func(tx store.Tx) error {
		g, err := tx.Gate(id)
		if errors.Is(err, store.ErrNotFound) {
			g = store.Gate{ID: id, AddedAt: now}
		} else if err != nil {
			return err
		}
		if role != "" {
			g.Role = role
		}
		if g.Role == "" {
			return ErrRoleRequired
		}
		g.PasswordHash = hash
		return tx.PutGate(g)
	})
	if err != nil {
		return "", err
	}
	return password, nil
}

// ErrRoleRequired: AddGate was given no role for a gate that has none.
var ErrRoleRequired = errors.New("a gate without a recorded role needs one: --role entry or --role exit")

// CentralUser is centrald's own MQTT user name (the Mosquitto ACL example
// names it too).
const CentralUser = "centrald"

// GateCredentials lets the embedded broker check gates' passwords against
// the store, fresh at every connection, so `centrald gate add` takes effect
// without a restart.
type GateCredentials struct{ Store store.Store }

// Lookup implements broker.Credentials.
func (c GateCredentials) Lookup(gateID string) ([]byte, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	g, err := c.Store.Gate(ctx, gateID)
	if errors.Is(err, store.ErrNotFound) || err == nil && len(g.PasswordHash) == 0 {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return g.PasswordHash, true, nil
}

// Upgrade implements broker.Upgrader: it stores a gate's SHA-256 password
// hash in place of the argon2id one the broker just verified, unless the
// stored hash changed meanwhile (`centrald gate add` rotated it).
func (c GateCredentials) Upgrade(gateID string, old, new []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Store.Write(ctx, func(tx store.Tx) error {
		g, err := tx.Gate(gateID)
		if err != nil {
			return err
		}
		if !bytes.Equal(g.PasswordHash, old) {
			return nil
		}
		g.PasswordHash = new
		return tx.PutGate(g)
	})
}
