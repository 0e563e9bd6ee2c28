package serial

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/parkgate/parkgate/clock/clocktest"
)

// openPTY opens a pseudo-terminal: the master is the "scanner" the test
// writes to, the slave's path is the tty the code under test opens.
func openPTY(t *testing.T) (*os.File, string) {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	// grantpt(3) is a no-op with devpts; unlockpt(3) is TIOCSPTLCK 0.
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(fd)
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		unix.Close(fd)
		t.Fatalf("ptsname: %v", err)
	}
	m := os.NewFile(uintptr(fd), "ptmx")
	t.Cleanup(func() { m.Close() })
	return m, fmt.Sprintf("/dev/pts/%d", n)
}

func codeOrFail(t *testing.T, codes <-chan string, want string) {
	t.Helper()
	select {
	case got := <-codes:
		if got != want {
			t.Fatalf("code %q, want %q", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no code, want %q", want)
	}
}

func TestOpenPTY(t *testing.T) {
	master, slave := openPTY(t)
	// The idle gap runs on a fake clock, so a slow machine cannot split a
	// code that the test writes in two parts.
	clk := clocktest.New(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC))
	p, err := OpenOptions(slave, 0, Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	// Raw 8N1 at the default 9600 baud, reads returning byte by byte.
	rc, _ := p.f.SyscallConn()
	var tio *unix.Termios
	rc.Control(func(fd uintptr) { tio, err = unix.IoctlGetTermios(int(fd), unix.TCGETS) })
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case tio.Cflag&unix.CBAUD != unix.B9600:
		t.Errorf("speed %#x, want B9600", tio.Cflag&unix.CBAUD)
	case tio.Cflag&unix.CSIZE != unix.CS8 || tio.Cflag&(unix.PARENB|unix.CSTOPB) != 0:
		t.Errorf("cflag %#x, want 8N1", tio.Cflag)
	case tio.Lflag&(unix.ICANON|unix.ECHO|unix.ISIG) != 0:
		t.Errorf("lflag %#x, want raw (no ICANON, ECHO, ISIG)", tio.Lflag)
	case tio.Iflag&(unix.ICRNL|unix.IXON) != 0 || tio.Oflag&unix.OPOST != 0:
		t.Errorf("iflag %#x oflag %#x: CR translation or flow control left on", tio.Iflag, tio.Oflag)
	case tio.Cc[unix.VMIN] != 1 || tio.Cc[unix.VTIME] != 0:
		t.Errorf("VMIN %d VTIME %d, want 1 0", tio.Cc[unix.VMIN], tio.Cc[unix.VTIME])
	}

	ctx, cancel := context.WithCancel(context.Background())
	codes := make(chan string, 10)
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, func(c string) { codes <- c }) }()

	// Two codes and the start of a third in one write, the rest later;
	// then a code with no suffix, flushed by the idle gap (raw mode: no
	// line discipline holding it back until a newline).
	master.Write([]byte("PG1.first\r\nPG1.sec"))
	codeOrFail(t, codes, "PG1.first")
	master.Write([]byte("ond\r"))
	codeOrFail(t, codes, "PG1.second")
	master.Write([]byte("PG1.bare"))
	// The tty offers no "consumed" signal: wait until the bytes have armed
	// the idle timer, then let the gap pass.
	for deadline := time.Now().Add(5 * time.Second); clk.Timers() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the partial code never armed the idle timer")
		}
	}
	select {
	case c := <-codes:
		t.Fatalf("code %q before the idle gap", c)
	default:
	}
	clk.Advance(DefaultIdle)
	codeOrFail(t, codes, "PG1.bare")

	cancel()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Fatalf("Serve = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel: the tty read was not interrupted")
	}
}

func TestOpenErrors(t *testing.T) {
	_, slave := openPTY(t)
	if _, err := Open(slave, 12345); err == nil || !strings.Contains(err.Error(), "baud") {
		t.Errorf("Open at 12345 baud = %v", err)
	}
	p, err := Open(slave, 115200)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	if _, err := Open("/dev/null", 9600); err == nil || !strings.Contains(err.Error(), "tty") {
		t.Errorf("Open(/dev/null) = %v, want a not-a-tty error", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "nope"), 9600); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open of a missing device = %v", err)
	}
}

// logs is a slog handler that hands each message to the test.
type logs chan string

func (l logs) Enabled(context.Context, slog.Level) bool { return true }
func (l logs) Handle(_ context.Context, r slog.Record) error {
	l <- r.Message
	return nil
}
func (l logs) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l logs) WithGroup(string) slog.Handler      { return l }

func (l logs) wait(t *testing.T, msg string) {
	t.Helper()
	select {
	case got := <-l:
		if got != msg {
			t.Fatalf("log %q, want %q", got, msg)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no log %q", msg)
	}
}

// Unplugging the scanner (the master going away) and plugging it back
// (the by-id link pointing at a tty again) resumes reading.
func TestDeviceReconnects(t *testing.T) {
	link := filepath.Join(t.TempDir(), "usb-Scanner_1234-if00")
	m1, s1 := openPTY(t)
	if err := os.Symlink(s1, link); err != nil {
		t.Fatal(err)
	}
	clk := clocktest.New(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC))
	l := make(logs, 10)
	d := &Device{Path: link, Options: Options{Clock: clk}, Log: slog.New(l)}
	ctx, cancel := context.WithCancel(context.Background())
	codes := make(chan string, 10)
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, func(c string) { codes <- c }) }()

	l.wait(t, "scanner connected")
	m1.Write([]byte("PG1.one\r"))
	codeOrFail(t, codes, "PG1.one")

	m1.Close() // unplugged
	l.wait(t, "scanner unavailable, retrying")
	m2, s2 := openPTY(t)
	os.Remove(link)
	if err := os.Symlink(s2, link); err != nil {
		t.Fatal(err)
	}
	clk.Advance(DefaultRetry)
	l.wait(t, "scanner connected")
	m2.Write([]byte("PG1.two\r"))
	codeOrFail(t, codes, "PG1.two")

	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Serve = %v, want context.Canceled", err)
	}
}

func TestDeviceRefusesABadBaud(t *testing.T) {
	d := &Device{Path: "/dev/null", Baud: 1234}
	if err := d.Serve(context.Background(), func(string) {}); err == nil {
		t.Fatal("Serve with an unsupported baud did not fail at once")
	}
}
