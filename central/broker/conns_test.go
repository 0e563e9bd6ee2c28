package broker

import (
	"net"
	"testing"
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
