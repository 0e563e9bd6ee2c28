package daemon

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/parkgate/parkgate/central/enroll"
	"github.com/parkgate/parkgate/central/store"
)

// AddGate provisions a gate for the embedded broker (enroll.Provision):
// a new password, returned once for gated's mqtt.password, and the gate's
// role, which its events are checked against. A new gate needs a role;
// adding a known gate again rotates its password, keeps its presence, and
// keeps its role unless role is given.
func AddGate(ctx context.Context, st store.Store, id, role string, now time.Time) (string, error) {
	var password string
	err := st.Write(ctx, func(tx store.Tx) error {
		pw, err := enroll.Provision(tx, id, role, now)
		password = pw
		return err
	})
	if err != nil {
		return "", err
	}
	return password, nil
}

// ErrRoleRequired: AddGate was given no role for a gate that has none.
var ErrRoleRequired = enroll.ErrRoleRequired

// CentralUser is centrald's own MQTT user name (the Mosquitto ACL example
// names it too).
const CentralUser = enroll.CentralUser

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
