package broker

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// One central serves up to a thousand gates (docs/scaling.md), and while
// they reconnect after a restart some old sockets are still open: the
// listener must take a thousand connections and still admit a gate. With
// the former cap of 512 the 513th connection was refused.
func TestThousandConnectionsAndOneMore(t *testing.T) {
	b := startBroker(t, nil)
	const n = 1000
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		c, err := net.Dial("tcp", b.Addr())
		if err != nil {
			t.Fatalf("connection %d: %v", len(conns)+1, err)
		}
		conns = append(conns, c)
	}
	// The sockets above are open and not yet past CONNECT; a gate
	// connecting now is the 1,001st.
	mustDial(t, gate(b.Addr(), "gate-a"))
}

// After a centrald restart every gate reconnects at once. Gate passwords
// are generated tokens, stored as SHA-256: 200 gates with their own real
// credentials are all let in within a few seconds. With argon2id hashes
// (~60 ms of one core each, two at a time) the checks alone take ~6 s,
// and several times that under the race detector.
func TestReconnectStormOfGeneratedPasswords(t *testing.T) {
	const n = 200
	creds := StaticCredentials{}
	pws := make(map[string]string, n)
	for i := range n {
		id := fmt.Sprintf("lane-%03d", i)
		pw := newToken(t)
		h, err := HashToken(pw)
		if err != nil {
			t.Fatal(err)
		}
		creds[id], pws[id] = h, pw
	}
	b := startBrokerWith(t, creds, nil)

	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for id, pw := range pws {
		wg.Go(func() {
			c := paho.NewClient(clientOpts(b.Addr(), id, id, pw).SetConnectTimeout(30 * time.Second))
			tok := c.Connect()
			if !tok.WaitTimeout(30 * time.Second) {
				errs <- fmt.Errorf("%s: connect timed out", id)
				return
			}
			if err := tok.Error(); err != nil {
				errs <- fmt.Errorf("%s: %w", id, err)
				return
			}
			t.Cleanup(func() { c.Disconnect(0) })
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	const bound = 3 * time.Second
	if took > bound {
		t.Errorf("%d gates took %v to be let in, want < %v", n, took, bound)
	}
	t.Logf("%d gates connected at once in %v", n, took)
}

// upgradingCreds is StaticCredentials that records and applies upgrades,
// replacing a hash only if it is still the old one, as centrald's store
// does.
type upgradingCreds struct {
	mu     sync.Mutex
	hashes StaticCredentials
	calls  int
}

func (u *upgradingCreds) Lookup(id string) ([]byte, bool, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hashes.Lookup(id)
}

// state is the stored hash of id and the number of upgrade calls so far.
func (u *upgradingCreds) state(id string) ([]byte, int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hashes[id], u.calls
}

func (u *upgradingCreds) Upgrade(id string, old, new []byte) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.calls++
	if string(u.hashes[id]) == string(old) {
		u.hashes[id] = new
	}
	return nil
}

// A gate whose hash is still argon2id (stored before gate passwords were
// hashed with SHA-256) is let in, and its hash is replaced by the SHA-256
// form so that its next connection is cheap. A wrong password upgrades
// nothing.
func TestArgon2idGateHashIsUpgraded(t *testing.T) {
	pw := newToken(t)
	old, err := HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	creds := &upgradingCreds{hashes: StaticCredentials{"gate-old": old}}
	b := startBrokerWith(t, creds, nil)

	if _, err := dial(t, clientOpts(b.Addr(), "gate-old", "gate-old", pw+"x")); err == nil {
		t.Fatal("wrong password accepted")
	}
	if h, calls := creds.state("gate-old"); calls != 0 || string(h) != string(old) {
		t.Fatalf("a refused connection changed the stored hash (%d upgrade calls)", calls)
	}
	c := mustDial(t, clientOpts(b.Addr(), "gate-old", "gate-old", pw))
	c.Disconnect(100)
	h, _ := creds.state("gate-old")
	if !IsTokenHash(h) || !CheckPassword(h, pw) {
		t.Fatalf("stored hash after a good login: %q, want the SHA-256 form of the password", h)
	}
	// And the gate still gets in with the upgraded hash, only once
	// upgraded.
	mustDial(t, clientOpts(b.Addr(), "gate-old", "gate-old", pw))
	if _, calls := creds.state("gate-old"); calls != 1 {
		t.Errorf("%d upgrade calls, want 1", calls)
	}
}
