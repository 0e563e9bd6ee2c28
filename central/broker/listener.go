package broker

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

const (
	// connectTimeout is how long a new connection may take to send its
	// CONNECT (and finish the TLS handshake). mochi sets no deadline
	// before CONNECT, so without one an idle socket would hold a
	// connection slot, and its write buffer, forever.
	connectTimeout = 10 * time.Second
	// maxConns caps open connections. mochi allocates the pending-writes
	// buffer (maxPending pointers, 64 KiB) when a connection opens,
	// before it authenticates; the cap bounds that to 256 MiB. A site has
	// tens of gates, but one central serves up to a thousand (the fleet
	// benchmark in docs/benchmarks.md), and a reconnect storm briefly
	// holds old and new sockets: 512, the former cap, refused gate 512
	// and every one after it.
	maxConns = 4096
)

// listener is a mochi listener over a socket bound before the broker
// starts (so New reports a port in use at once and Addr knows the port of
// "127.0.0.1:0"). Unlike mochi's TCP listener it tracks every connection's
// goroutine, so Serve can wait for all of them before it returns.
type listener struct {
	id  string
	ln  net.Listener
	log *slog.Logger

	serving sync.WaitGroup // the accept loop
	conns   sync.WaitGroup // one per connection

	mu     sync.Mutex
	open   map[net.Conn]struct{}
	closed bool
}

var _ listeners.Listener = (*listener)(nil)

func newListener(id string, ln net.Listener, log *slog.Logger) *listener {
	return &listener{id: id, ln: ln, log: log, open: map[net.Conn]struct{}{}}
}

// Init is a no-op: the socket is already bound.
func (l *listener) Init(*slog.Logger) error { return nil }

// ID names the listener.
func (l *listener) ID() string { return l.id }

// Address is the bound address.
func (l *listener) Address() string { return l.ln.Addr().String() }

// Protocol is the transport.
func (l *listener) Protocol() string { return "tcp" }

// Serve accepts connections until Close; mochi runs it in its own
// goroutine, so the broker counts it in serving before starting mochi.
func (l *listener) Serve(establish listeners.EstablishFn) {
	defer l.serving.Done()
	var backoff time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if l.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait and go on, as
			// net/http does, rather than spin or give up the listener.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.log.Warn("mqtt accept failed", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if !l.track(c) {
			_ = c.Close()
			continue
		}
		go func() {
			defer l.conns.Done()
			defer l.untrack(c)
			_ = c.SetDeadline(time.Now().Add(connectTimeout)) // mochi replaces it with the keepalive deadline after CONNECT
			if err := establish(l.id, c); err != nil {
				// Refusals are logged by the hook; what is left is
				// clients going away, which is routine.
				l.log.Debug("mqtt connection ended", "remote", c.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// track registers a new connection; false when closed or full.
func (l *listener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	if len(l.open) >= maxConns {
		l.log.Warn("mqtt connection refused: too many connections", "remote", c.RemoteAddr().String(), "max", maxConns)
		return false
	}
	l.open[c] = struct{}{}
	l.conns.Add(1)
	return true
}

func (l *listener) untrack(c net.Conn) {
	_ = c.Close()
	l.mu.Lock()
	delete(l.open, c)
	l.mu.Unlock()
}

func (l *listener) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// Close stops accepting, closes every connection (a connected client's
// goroutine in mochi then ends and removes the client), and waits for
// every connection goroutine. Waiting here, before mochi waits on its own
// client WaitGroup, also keeps a late connection from adding to that
// WaitGroup while it is waited on.
//
// It does not call closeClients, mochi's closeListenerClients: in mochi
// v2.7.9 that takes the client map's read lock twice (GetByListener calls
// Len), and a client leaving at that moment (Delete, waiting for the write
// lock in between) deadlocks the shutdown for good — seen in CI as "Serve
// did not return". Closing the sockets ends the clients the same way
// without that lock; what is lost is only the MQTT 5 DISCONNECT with
// "server shutting down", and gates and centrald speak 3.1.1, where a
// server has no DISCONNECT to send.
func (l *listener) Close(_ listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.mu.Unlock()

	_ = l.ln.Close()
	l.mu.Lock()
	for c := range l.open {
		_ = c.Close()
	}
	l.mu.Unlock()
	l.conns.Wait()
}
