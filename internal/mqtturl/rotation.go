package mqtturl

import (
	"crypto/tls"
	"net/url"
	"slices"
	"sync/atomic"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Rotation is the order in which one client tries the nodes of its broker,
// connection after connection: each connection attempt starts with the
// node after the one the previous connection reached, or tried last when
// none answered, so that a node that was just lost (or is dead) is tried
// last. gated's and centrald's sync loops each own one; its methods are
// called from that loop, and Apply's handler from paho.
type Rotation struct {
	urls  []string
	next  int                    // index in urls of the node to try first
	tried atomic.Pointer[string] // the node of paho's latest attempt; set by paho's goroutine
}

// NewRotation returns a rotation over urls (Split's list), starting with
// the first.
func NewRotation(urls []string) *Rotation { return &Rotation{urls: urls} }

// Apply adds the nodes to opts in this attempt's order and has paho record
// each node it tries. Call it once per connection attempt, then Tried and
// Done after paho's Connect.
func (r *Rotation) Apply(opts *paho.ClientOptions) {
	r.tried.Store(nil)
	for _, u := range from(r.urls, r.next) {
		opts.AddBroker(u)
	}
	opts.SetConnectionAttemptHandler(func(u *url.URL, tc *tls.Config) *tls.Config {
		v := u.String()
		r.tried.Store(&v)
		return tc
	})
}

// Tried returns the node paho tried last in the current attempt (the one
// it is connected to, once Connect succeeded), or "" before any.
func (r *Rotation) Tried() string {
	if u := r.tried.Load(); u != nil {
		return *u
	}
	return ""
}

// Done ends a connection (or a failed attempt): the next attempt starts
// with the node after the one tried last.
func (r *Rotation) Done() {
	if i := slices.Index(r.urls, r.Tried()); i >= 0 {
		r.next = i + 1
	}
}

// Next returns the node the next attempt starts with, or "" without nodes.
func (r *Rotation) Next() string {
	if l := from(r.urls, r.next); len(l) > 0 {
		return l[0]
	}
	return ""
}
