// Package sdnotify speaks systemd's notify protocol (sd_notify(3)) so the
// daemons can run as Type=notify units with a watchdog. Outside systemd
// (NOTIFY_SOCKET unset) every call is a no-op.
package sdnotify

import (
	"context"
	"net"
	"os"
	"strconv"
	"time"
)

// Messages.
const (
	Ready        = "READY=1"
	Stopping     = "STOPPING=1"
	WatchdogPing = "WATCHDOG=1"
)

// Notify sends state to systemd. It reports false (and no error) when not
// running under systemd.
func Notify(state string) (bool, error) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return false, nil
	}
	if addr[0] == '@' {
		addr = "\x00" + addr[1:] // abstract socket
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return false, err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, err
	}
	return true, nil
}

// WatchdogInterval returns how often systemd expects a WATCHDOG=1 (half of
// WatchdogSec, as sd_watchdog_enabled(3) advises), or 0 if it expects none.
func WatchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// Watchdog pings systemd's watchdog while healthy reports nil, so a daemon
// whose database hangs is restarted instead of answering nothing forever.
type Watchdog struct {
	Interval time.Duration
	Healthy  func(ctx context.Context) error
}

// Serve implements the service contract.
func (w Watchdog) Serve(ctx context.Context) error {
	if w.Interval <= 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(w.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			hctx, cancel := context.WithTimeout(ctx, w.Interval)
			err := w.Healthy(hctx)
			cancel()
			if err == nil {
				_, _ = Notify(WatchdogPing)
			}
		}
	}
}
