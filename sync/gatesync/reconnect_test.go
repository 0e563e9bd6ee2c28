package gatesync

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parkgate/parkgate/gate/localdb"
)

// silentListener accepts TCP connections and never answers them: a
// centrald whose broker port is bound while it is still starting, or a
// half-dead broker. It keeps what it accepted open, as such a process
// does, until the test ends.
type silentListener struct {
	ln       net.Listener
	accepted chan struct{}
	mu       sync.Mutex
	conns    []net.Conn
}

func listenSilently(t *testing.T) *silentListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silentListener{ln: ln, accepted: make(chan struct{}, 100)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			select {
			case s.accepted <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.conns {
			c.Close()
		}
	})
	return s
}

// logBuffer keeps a component's log for a test to read, and shows it in
// the test's log.
type logBuffer struct {
	t  *testing.T
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.b.Write(p)
	l.mu.Unlock()
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A gate whose connection attempt hangs on a listener that accepts TCP
// but never answers CONNECT gives that attempt up, says so, and is
// connected to the real broker within 5 s of it being back on that port,
// even when the broker comes back just as the hanging attempt began. Then
// with the broker refusing connections for long enough that the backoff
// reaches its cap, the gate is again back within 5 s.
func TestReconnectsWithin5sPastASilentListener(t *testing.T) {
	const within = 5 * time.Second
	silent := listenSilently(t)
	addr := silent.ln.Addr().String()
	cfg := testConfig(uniqueSite(t), "tcp://"+addr)
	cfg.RetryMax = DefaultRetryMax // the production cap, which the bound is about

	dir := t.TempDir()
	db, err := localdb.Open(context.Background(), filepath.Join(dir, "gate.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ln := &fakeLane{db: db}
	ln.trusted.Store(true)
	logs := &logBuffer{t: t}
	attempts := &countingSessions{SessionCounter: FileSessions(filepath.Join(dir, "gate.db.session"))}
	s := New(cfg, Deps{DB: db, Lane: ln, Sessions: attempts,
		Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(deadline):
			t.Error("Serve did not return")
		}
	}()

	// The worst moment: an attempt has just been accepted and now waits
	// for a CONNACK that never comes; the broker is back right then.
	select {
	case <-silent.accepted:
	case <-time.After(deadline):
		t.Fatal("the gate never tried the listener")
	}
	silent.ln.Close() // the accepted connection stays open and silent
	b := &mochiBroker{t: t, addr: addr}
	b.start()
	t.Cleanup(b.stop)
	back := time.Now()
	eventually(t, "the gate connected to the broker", s.connected.Load)
	if took := time.Since(back); took > within {
		t.Errorf("connected %s after the broker was back, want within %s", took, within)
	}
	if !strings.Contains(logs.String(), "mqtt connection attempt failed") {
		t.Error("the abandoned attempt was not logged at info level or above")
	}

	// The broker goes away and refuses connections until the backoff is at
	// its cap (100 ms doubling to 5 s: after six failed attempts).
	b.stop()
	eventually(t, "the gate noticing", func() bool { return !s.connected.Load() })
	eventually(t, "the lost connection logged", func() bool { return strings.Contains(logs.String(), "mqtt connection lost") })
	a0 := attempts.n.Load()
	end := time.Now().Add(30 * time.Second)
	for attempts.n.Load() < a0+7 {
		if time.Now().After(end) {
			t.Fatal("the gate stopped retrying")
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.start()
	back = time.Now()
	eventually(t, "the gate connected again", s.connected.Load)
	if took := time.Since(back); took > within {
		t.Errorf("connected %s after the broker was back, want within %s", took, within)
	}
}

// has reports whether a client with this id is connected to the broker.
func (b *mochiBroker) has(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv == nil {
		return false
	}
	c, ok := b.srv.Clients.Get(id)
	return ok && !c.Closed()
}

// A gate given the nodes of a clustered broker (mqtt.url with commas)
// connects to the first, and when that node dies goes straight to the next
// one: the dead node's port now accepts TCP and never answers, as a node
// that hangs does, and the gate is on the other node within less than the
// time one attempt on the dead node would cost (connectTimeout). The next
// loss brings it back to the first node.
func TestFailsOverToTheNextNode(t *testing.T) {
	a, b := startMochi(t), startMochi(t)
	cfg := testConfig(uniqueSite(t), a.url()+","+b.url())
	cfg.RetryMax = DefaultRetryMax
	g := startGate(t, cfg)
	id := g.sync.clientID
	eventually(t, "the gate on the first node", func() bool { return a.has(id) && g.sync.connected.Load() })
	if b.has(id) {
		t.Fatal("the gate is connected to both nodes")
	}

	addr := a.addr
	a.stop()
	lost := time.Now()
	// The dead node's port answers TCP and nothing else.
	var silent net.Listener
	eventually(t, "a silent listener on the dead node's port", func() bool {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			silent = ln
		}
		return err == nil
	})
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	eventually(t, "the gate on the second node", func() bool { return b.has(id) && g.sync.connected.Load() })
	if took := time.Since(lost); took >= connectTimeout {
		t.Errorf("on the second node %s after the first died, want less than one attempt's %s: it tried the dead node first", took, connectTimeout)
	}

	silent.Close()
	a = &mochiBroker{t: t, addr: addr}
	a.start()
	t.Cleanup(a.stop)
	b.stop()
	eventually(t, "the gate back on the first node", func() bool { return a.has(id) && g.sync.connected.Load() })
}
