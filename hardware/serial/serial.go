// Package serial reads QR codes from a scanner on a serial line: a USB
// CDC-ACM scanner (/dev/ttyACM0) or an RS-232 one behind a USB adapter,
// opened by its stable name under /dev/serial/by-id/. It implements
// hardware.CodeReader.
//
// A scanner sends each code as one record ended by CR, LF or CRLF (its
// "suffix" setting), but nothing guarantees that one read() returns one
// record: USB packets and the tty layer split and merge them freely. So a
// Reader is a line splitter over the byte stream:
//
//   - CR, LF and CRLF end a record; CRLF is one terminator, even when the
//     CR and the LF arrive in different reads. Empty records are ignored.
//   - A partial record is flushed after an idle gap (100 ms by default, on
//     the injected clock) for scanners configured with no suffix.
//   - Other control characters (NUL, ESC, a GS1 group separator...) are
//     stripped: tickets are printable ASCII, and a stray byte must not turn
//     a valid ticket into a denied one.
//   - A record longer than 512 bytes (by default) is garbage, not a code:
//     it is dropped whole and counted (Dropped), never passed on cut.
//
// Open configures the tty raw, 8N1, at the requested baud (9600 by
// default) with termios ioctls; Device reopens the device when the
// scanner is unplugged and comes back.
//
// Not done: USB keyboard-wedge scanners (HID devices that "type" the code)
// would need an evdev reader with an exclusive grab (EVIOCGRAB) and a US
// keymap; configure such scanners for USB CDC (virtual COM port) mode
// instead, which most support.
package serial

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/hardware"
)

// Defaults for Options.
const (
	// DefaultIdle is the gap after which a partial record is flushed: far
	// longer than the gap between bytes of one code at 9600 baud (about
	// 1 ms), far shorter than the time between two scans.
	DefaultIdle = 100 * time.Millisecond
	// DefaultMaxLen caps a record; tickets are under 200 characters.
	DefaultMaxLen = 512
)

// Options tune a Reader; the zero value means the defaults.
type Options struct {
	// Clock times the idle flush; clock.Real{} if nil.
	Clock clock.Clock
	// Idle is the idle gap that flushes a partial record; DefaultIdle if
	// zero, never if negative.
	Idle time.Duration
	// MaxLen is the longest record passed on; DefaultMaxLen if zero.
	MaxLen int
}

func (o Options) withDefaults() Options {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Idle == 0 {
		o.Idle = DefaultIdle
	}
	if o.MaxLen <= 0 {
		o.MaxLen = DefaultMaxLen
	}
	return o
}

// Reader splits the byte stream of a scanner into codes.
type Reader struct {
	src     io.Reader
	opts    Options
	dropped atomic.Uint64
}

var _ hardware.CodeReader = (*Reader)(nil)

// NewReader returns a Reader of the codes in src.
func NewReader(src io.Reader, o Options) *Reader {
	return &Reader{src: src, opts: o.withDefaults()}
}

// Dropped counts the records dropped for being longer than MaxLen.
func (r *Reader) Dropped() uint64 { return r.dropped.Load() }

// deadliner is what Serve needs to interrupt a pending read when ctx
// ends: os.File (ttys, pipes) and net.Conn have it.
type deadliner interface {
	SetReadDeadline(t time.Time) error
}

// Serve reads codes and calls fn with each, until ctx ends (it returns
// ctx.Err()) or the source fails (it returns the error; io.EOF at the end
// of the source, after flushing a last record without terminator). fn is
// never called after Serve has returned. A partial record is discarded
// when ctx ends.
//
// If the source has SetReadDeadline, a pending read is interrupted when
// ctx ends; otherwise that read goes on in the background and whatever it
// returns is discarded. Run one Serve at a time: they would share the
// source.
func (r *Reader) Serve(ctx context.Context, fn func(code string)) error {
	// Empty records (a CR CR, a lone LF) are not codes.
	emit := func(code string) {
		if code != "" {
			fn(code)
		}
	}
	s := &session{r: r, fn: emit, sp: splitter{max: r.opts.MaxLen}}
	errc := make(chan error, 1)
	go func() {
		// This goroutine calls fn, which reaches the lane: a panic here
		// would kill the process past its supervisor. It fails Serve.
		defer func() {
			if p := recover(); p != nil {
				errc <- fmt.Errorf("serial: panic in the reader: %v", p)
			}
		}()
		errc <- s.readLoop()
	}()
	select {
	case err := <-errc:
		s.stop()
		return err
	case <-ctx.Done():
	}
	if d, ok := r.src.(deadliner); ok && d.SetReadDeadline(time.Unix(1, 0)) == nil {
		<-errc
		_ = d.SetReadDeadline(time.Time{}) // usable by a later Serve
	}
	s.stop()
	return ctx.Err()
}

// session is one Serve's state: the splitter and its idle timer.
type session struct {
	r  *Reader
	fn func(string)

	mu       sync.Mutex // serialises the splitter and the calls to fn
	sp       splitter
	timer    clock.Timer
	cancel   chan struct{}
	gen      int
	deadline time.Time // when the idle timer fires
	stopped  bool
}

func (s *session) readLoop() error {
	buf := make([]byte, 256)
	for {
		n, err := s.r.src.Read(buf)
		if n > 0 {
			s.feed(buf[:n])
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				s.flush(-1)
			}
			return err
		}
	}
}

// feed splits p and arms the idle flush if a record is left open.
func (s *session) feed(p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	now := s.r.opts.Clock.Now()
	if s.timer != nil && !now.Before(s.deadline) {
		// The idle gap has passed but its timer has not been serviced
		// yet: the open record ended before these bytes came.
		s.sp.end(s.fn)
	}
	// Disarm before passing codes on: whoever receives one then sees no
	// stale idle timer.
	s.disarm()
	before := s.sp.dropped
	s.sp.write(p, s.fn)
	s.r.dropped.Add(s.sp.dropped - before)
	if s.sp.partial() && s.r.opts.Idle > 0 {
		s.gen++
		gen, t, cancel := s.gen, s.r.opts.Clock.NewTimer(s.r.opts.Idle), make(chan struct{})
		s.timer, s.cancel, s.deadline = t, cancel, now.Add(s.r.opts.Idle)
		go func() {
			select {
			case <-t.C():
				s.flush(gen)
			case <-cancel:
			}
		}()
	}
}

// flush ends the partial record, if the idle timer gen is still the
// current one (gen < 0: unconditionally, at the end of the source).
func (s *session) flush(gen int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || gen >= 0 && gen != s.gen {
		return
	}
	s.disarm()
	s.sp.end(s.fn)
}

// disarm stops the idle timer. Called with mu held.
func (s *session) disarm() {
	if s.timer != nil {
		s.timer.Stop()
		close(s.cancel)
		s.timer, s.cancel = nil, nil
	}
	s.gen++
}

// stop ends the session: no fn call happens after it returns.
func (s *session) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	s.disarm()
}

// splitter is the pure record splitter: bytes in, records out.
type splitter struct {
	max     int
	buf     []byte
	afterCR bool // the last byte seen was a CR: an LF now completes a CRLF
	over    bool // the current record overflowed and is being skipped
	dropped uint64
}

// write consumes p, calling emit with each completed record.
func (s *splitter) write(p []byte, emit func(string)) {
	for _, c := range p {
		if c == '\n' && s.afterCR {
			s.afterCR = false // the LF of a CRLF
			continue
		}
		s.afterCR = c == '\r'
		switch {
		case c == '\r' || c == '\n':
			s.end(emit)
		case c < 0x20 || c == 0x7f:
			// stripped
		case s.over:
			// skipping the rest of an oversized record
		case len(s.buf) == s.max:
			s.over = true
			s.dropped++
			s.buf = s.buf[:0]
		default:
			s.buf = append(s.buf, c)
		}
	}
}

// end completes the current record: passes it on (even empty: the caller
// decides) unless it is oversized.
func (s *splitter) end(emit func(string)) {
	if !s.over {
		emit(string(s.buf))
	}
	s.buf = s.buf[:0]
	s.over = false
}

// partial reports whether a record has begun and not ended.
func (s *splitter) partial() bool { return len(s.buf) > 0 || s.over }
