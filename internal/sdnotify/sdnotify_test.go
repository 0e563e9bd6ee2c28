package sdnotify

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// listen makes a datagram socket standing in for systemd's.
func listen(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return conn
}

func read(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, 256)
	n, err := conn.Read(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(b[:n])
}

func TestNotify(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := Notify(Ready); sent || err != nil {
		t.Fatalf("outside systemd: %v %v", sent, err)
	}
	conn := listen(t)
	if sent, err := Notify(Ready); !sent || err != nil {
		t.Fatalf("Notify: %v %v", sent, err)
	}
	if got := read(t, conn); got != Ready {
		t.Fatalf("got %q", got)
	}
}

func TestWatchdogInterval(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "")
	if WatchdogInterval() != 0 {
		t.Fatal("no watchdog expected")
	}
	t.Setenv("WATCHDOG_USEC", "30000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	if got := WatchdogInterval(); got != 15*time.Second {
		t.Fatalf("interval %v", got)
	}
	t.Setenv("WATCHDOG_PID", "1")
	if WatchdogInterval() != 0 {
		t.Fatal("watchdog meant for another process")
	}
}

// The watchdog is pinged only while the daemon is healthy: the first
// three checks fail, so the first ping comes after the fourth.
func TestWatchdogPingsOnlyWhenHealthy(t *testing.T) {
	conn := listen(t)
	var checks atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Watchdog{Interval: 5 * time.Millisecond, Healthy: func(context.Context) error {
		if checks.Add(1) <= 3 {
			return errors.New("database does not answer")
		}
		return nil
	}}.Serve(ctx)
	if got := read(t, conn); got != WatchdogPing {
		t.Fatalf("got %q", got)
	}
	if n := checks.Load(); n < 4 {
		t.Fatalf("pinged after %d checks, 3 of which failed", n)
	}
}
