// Package throttle slows down guessing: it counts refused attempts by key
// (an operator's name, a client address) and makes each attempt past the
// free ones wait, doubling up to a bound. The operator console's sign-in
// and gate enrollment use it.
package throttle

import (
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/parkgate/parkgate/clock"
)

// Limits: after Free refused attempts in a row for a key, each further
// attempt waits Lockout, doubling up to MaxLockout; a success clears the
// key's count.
const (
	Free       = 5
	Lockout    = 30 * time.Second
	MaxLockout = 15 * time.Minute
)

// maxKept bounds the keys kept: past it, those no longer waiting are
// forgotten, so that guessing many names or codes does not grow memory.
const maxKept = 10000

// Throttle counts refused attempts by key. Its zero value is not usable:
// make one with New.
type Throttle struct {
	clk clock.Clock
	mu  sync.Mutex
	m   map[string]*failures
}

type failures struct {
	n     int
	until time.Time // no attempt before this
}

// New returns a throttle on clk.
func New(clk clock.Clock) *Throttle {
	return &Throttle{clk: clk, m: map[string]*failures{}}
}

// Wait returns how long the keys must still wait (0: try now).
func (t *Throttle) Wait(keys ...string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.clk.Now()
	var d time.Duration
	for _, k := range keys {
		if f := t.m[k]; f != nil && f.until.After(now) {
			d = max(d, f.until.Sub(now))
		}
	}
	return d
}

// Fail counts a refused attempt against every key.
func (t *Throttle) Fail(keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.clk.Now()
	if len(t.m) >= maxKept {
		for k, f := range t.m {
			if !f.until.After(now) {
				delete(t.m, k)
			}
		}
	}
	for _, k := range keys {
		f := t.m[k]
		if f == nil {
			f = &failures{}
			t.m[k] = f
		}
		f.n++
		if over := f.n - Free; over >= 0 {
			f.until = now.Add(min(Lockout<<min(over, 10), MaxLockout))
		}
	}
}

// Succeed clears key's count.
func (t *Throttle) Succeed(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, key)
}

// ClientAddr is the address a request comes from, as a throttle key: the
// TCP peer's host (a forwarded-for header is not trusted).
func ClientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
