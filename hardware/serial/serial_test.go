package serial

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/clock/clocktest"
)

func TestSplitter(t *testing.T) {
	cases := []struct {
		name    string
		max     int
		reads   []string
		want    []string // records, empty ones included
		partial string   // left open at the end
		dropped uint64
	}{
		{name: "one code, one read", reads: []string{"PG1.abc\r"}, want: []string{"PG1.abc"}},
		{name: "a code split across reads", reads: []string{"PG1.a", "bc", "d\n"}, want: []string{"PG1.abcd"}},
		{name: "several codes in one read", reads: []string{"A\rB\nC\r\nD"}, want: []string{"A", "B", "C"}, partial: "D"},
		{name: "CRLF is one terminator", reads: []string{"A\r\nB\r\n"}, want: []string{"A", "B"}},
		{name: "CRLF across two reads", reads: []string{"A\r", "\nB\r", "\n"}, want: []string{"A", "B"}},
		{name: "LF LF is two terminators", reads: []string{"A\n\nB\n"}, want: []string{"A", "", "B"}},
		{name: "CR CR is two terminators", reads: []string{"A\r\rB\r"}, want: []string{"A", "", "B"}},
		{name: "LF CR is two terminators", reads: []string{"A\n\rB\r"}, want: []string{"A", "", "B"}},
		{name: "control characters are stripped", reads: []string{"\x00P\x1bG\x7f1\t.\x1dx\r"}, want: []string{"PG1.x"}},
		{name: "non-ASCII bytes pass", reads: []string{"caf\xc3\xa9\r"}, want: []string{"caf\xc3\xa9"}},
		{name: "exactly the maximum", max: 8, reads: []string{"01234567\r"}, want: []string{"01234567"}},
		{name: "oversized is dropped and counted", max: 8, reads: []string{"012345678\rOK\r"}, want: []string{"OK"}, dropped: 1},
		{name: "oversized across reads", max: 8, reads: []string{"01234", "56789", "ABCDEFGHIJ", "\r\n", "OK\n"}, want: []string{"OK"}, dropped: 1},
		{name: "garbage line between codes", max: 8, reads: []string{"A\r" + strings.Repeat("x", 100) + "\rB\r"}, want: []string{"A", "B"}, dropped: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.max == 0 {
				tc.max = DefaultMaxLen
			}
			s := splitter{max: tc.max}
			var got []string
			for _, r := range tc.reads {
				s.write([]byte(r), func(c string) { got = append(got, c) })
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
				t.Errorf("records %q, want %q", got, tc.want)
			}
			if string(s.buf) != tc.partial || s.partial() != (tc.partial != "") {
				t.Errorf("partial %q (%v), want %q", s.buf, s.partial(), tc.partial)
			}
			if s.dropped != tc.dropped {
				t.Errorf("dropped %d, want %d", s.dropped, tc.dropped)
			}
		})
	}
}

// chunks is a source that hands out the test's chunks one read at a time.
// Before each read it signals ready: the Reader calls Read again only once
// it has processed the previous chunk, so the test knows when the idle
// timer is armed.
type chunks struct {
	ch    chan string
	ready chan struct{}
}

func newChunks() *chunks { return &chunks{ch: make(chan string), ready: make(chan struct{})} }

func (c *chunks) Read(p []byte) (int, error) {
	c.ready <- struct{}{}
	s, ok := <-c.ch
	if !ok {
		return 0, io.EOF
	}
	return copy(p, s), nil
}

// send hands a chunk over and waits until the Reader has processed it.
func (c *chunks) send(s string) {
	c.ch <- s
	<-c.ready
}

type rig struct {
	t     *testing.T
	clk   *clocktest.Clock
	src   *chunks
	r     *Reader
	codes chan string
	done  chan error
	stop  context.CancelFunc
}

func newRig(t *testing.T, o Options) *rig {
	clk := clocktest.New(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC))
	o.Clock = clk
	g := &rig{t: t, clk: clk, src: newChunks(), codes: make(chan string, 100), done: make(chan error, 1)}
	g.r = NewReader(g.src, o)
	ctx, cancel := context.WithCancel(context.Background())
	g.stop = cancel
	go func() { g.done <- g.r.Serve(ctx, func(c string) { g.codes <- c }) }()
	<-g.src.ready // the first read
	t.Cleanup(cancel)
	return g
}

func (g *rig) want(code string) {
	g.t.Helper()
	select {
	case got := <-g.codes:
		if got != code {
			g.t.Fatalf("code %q, want %q", got, code)
		}
	case <-time.After(5 * time.Second):
		g.t.Fatalf("no code, want %q", code)
	}
}

func (g *rig) none() {
	g.t.Helper()
	select {
	case got := <-g.codes:
		g.t.Fatalf("unexpected code %q", got)
	default:
	}
}

func TestIdleFlush(t *testing.T) {
	g := newRig(t, Options{})
	g.src.send("PG1.no-suffix")
	g.clk.Advance(99 * time.Millisecond)
	g.none() // the idle timer is not due: nothing can have been flushed
	g.clk.Advance(time.Millisecond)
	g.want("PG1.no-suffix")

	// Bytes arriving keep the record open: the gap counts from the last.
	g.src.send("AB")
	g.clk.Advance(60 * time.Millisecond)
	g.src.send("CD")
	g.clk.Advance(60 * time.Millisecond)
	g.none()
	g.clk.Advance(40 * time.Millisecond)
	g.want("ABCD")

	// A terminated record leaves no timer behind.
	g.src.send("EF\r\n")
	g.want("EF")
	if n := g.clk.Timers(); n != 0 {
		t.Fatalf("%d timers armed after a complete record", n)
	}
}

func TestOversizedIsCountedNotPassed(t *testing.T) {
	g := newRig(t, Options{MaxLen: 16})
	g.src.send(strings.Repeat("Z", 40))
	g.clk.Advance(DefaultIdle) // an idle flush of an oversized record passes nothing
	g.src.send("OK\r")
	g.want("OK")
	g.none()
	if g.r.Dropped() != 1 {
		t.Fatalf("Dropped() = %d, want 1", g.r.Dropped())
	}
}

func TestEndOfSourceFlushes(t *testing.T) {
	g := newRig(t, Options{Idle: -1})
	g.src.send("A\rB")
	close(g.src.ch)
	if err := <-g.done; err != io.EOF {
		t.Fatalf("Serve = %v, want io.EOF", err)
	}
	g.want("A")
	g.want("B")
}

// Serve returns promptly when ctx ends, even with a read pending, and fn
// is never called afterwards.
func TestCancelInterruptsRead(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	r := NewReader(pr, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	codes := make(chan string, 10)
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, func(c string) { codes <- c }) }()
	pw.Write([]byte("A\r"))
	if c := <-codes; c != "A" {
		t.Fatalf("code %q", c)
	}
	cancel()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Fatalf("Serve = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	// The pipe is usable again by a later Serve.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go r.Serve(ctx2, func(c string) { codes <- c })
	pw.Write([]byte("B\r"))
	select {
	case c := <-codes:
		if c != "B" {
			t.Fatalf("code %q, want B", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a second Serve read nothing")
	}
}

type panickySource struct{}

func (panickySource) Read([]byte) (int, error) { panic("driver bug") }

// A panic in the reader's own goroutine fails Serve instead of killing the
// process past its supervisor.
func TestPanicInTheReaderFailsServe(t *testing.T) {
	r := NewReader(panickySource{}, Options{})
	err := r.Serve(context.Background(), func(string) {})
	if err == nil || !strings.Contains(err.Error(), "panic") {
		t.Fatalf("Serve = %v, want the panic as an error", err)
	}
}
