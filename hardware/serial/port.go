package serial

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/parkgate/parkgate/hardware"
)

// DefaultBaud is the speed of most QR scanners out of the box.
const DefaultBaud = 9600

// Port is an open serial scanner: a Reader over a tty configured raw 8N1.
type Port struct {
	f *os.File
	r *Reader
}

var _ hardware.CodeReader = (*Port)(nil)

// Open opens device (e.g. /dev/serial/by-id/usb-...-if00) with the given
// baud (0 means DefaultBaud), raw 8N1, with the default Options.
func Open(device string, baud int) (*Port, error) {
	return OpenOptions(device, baud, Options{})
}

// OpenOptions is Open with Options for the Reader.
func OpenOptions(device string, baud int, o Options) (*Port, error) {
	if baud == 0 {
		baud = DefaultBaud
	}
	f, err := openTTY(device, baud)
	if err != nil {
		return nil, err
	}
	return &Port{f: f, r: NewReader(f, o)}, nil
}

// Serve reads codes until ctx ends or the device fails (e.g. the scanner
// was unplugged); see Reader.Serve.
func (p *Port) Serve(ctx context.Context, fn func(code string)) error {
	return p.r.Serve(ctx, fn)
}

// Dropped counts the oversized records dropped.
func (p *Port) Dropped() uint64 { return p.r.Dropped() }

// Close closes the device.
func (p *Port) Close() error { return p.f.Close() }

// DefaultRetry is how long Device waits before reopening a scanner that
// is missing or failed: a replugged USB scanner is back within a second.
const DefaultRetry = time.Second

// Device is a scanner by path that survives being unplugged: Serve opens
// it, reads codes, and when it fails or is missing, waits Retry and opens
// it again, until ctx ends. Use it with a /dev/serial/by-id/ path, which
// names the same scanner whatever USB port it comes back on.
type Device struct {
	// Path is the tty device.
	Path string
	// Baud is the line speed; DefaultBaud if zero.
	Baud int
	// Options tune the Reader; Options.Clock also times the retries.
	Options Options
	// Retry is the wait between attempts; DefaultRetry if zero.
	Retry time.Duration
	// Log receives "connected" and "unavailable" reports (once per
	// change, not once per attempt); slog.Default() if nil.
	Log *slog.Logger
}

var _ hardware.CodeReader = (*Device)(nil)

// Serve reads codes from the device, reopening it as needed, until ctx
// ends; it returns ctx.Err(), or at once an error that retrying cannot
// fix (an unsupported baud).
func (d *Device) Serve(ctx context.Context, fn func(code string)) error {
	baud := d.Baud
	if baud == 0 {
		baud = DefaultBaud
	}
	if _, ok := bauds[baud]; !ok {
		return errUnsupportedBaud(baud)
	}
	opts := d.Options.withDefaults()
	retry := d.Retry
	if retry <= 0 {
		retry = DefaultRetry
	}
	log := d.Log
	if log == nil {
		log = slog.Default()
	}
	lastErr := ""
	for {
		p, err := OpenOptions(d.Path, baud, opts)
		if err == nil {
			log.Info("scanner connected", "device", d.Path, "baud", baud)
			lastErr = ""
			err = p.Serve(ctx, fn)
			p.Close()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err == nil {
				err = errors.New("reader stopped")
			}
		}
		t := opts.Clock.NewTimer(retry)
		if err.Error() != lastErr {
			lastErr = err.Error()
			log.Warn("scanner unavailable, retrying", "device", d.Path, "err", err, "every", retry)
		}
		select {
		case <-t.C():
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

func errUnsupportedBaud(baud int) error {
	return fmt.Errorf("serial: baud %d is not supported (use 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800 or 921600)", baud)
}

// ErrUnsupported is returned by Open where there are no termios ttys.
var ErrUnsupported = errors.New("serial: serial ports need Linux")
