package main

import (
	"io"
	"os"
	"strings"

	qrcode "github.com/skip2/go-qrcode"
)

// ANSI escapes of drawQR: black on bright white, then back to the
// terminal's colours.
const (
	qrColors = "\x1b[30;107m"
	qrReset  = "\x1b[0m"
)

// qrStyle is how drawQR draws: for a terminal in colour or without, or
// for anything else.
type qrStyle int

const (
	// qrColour sets black on bright white on every line, so the code reads
	// the right way round (dark modules on a light ground, as scanners
	// expect) on dark and light terminals alike.
	qrColour qrStyle = iota
	// qrLightBlocks draws the light modules as blocks, without escapes:
	// right on a terminal with a dark background, as "qrencode -t UTF8"
	// does (NO_COLOR on a terminal).
	qrLightBlocks
	// qrDarkBlocks draws the dark modules as blocks, without escapes:
	// right on paper and light backgrounds, where output that is not a
	// terminal (a file, a pipe to a printer or a mail) usually ends up,
	// and no escape codes litter it.
	qrDarkBlocks
)

// drawQR writes text as a QR code (error correction level M, quiet zone of
// four modules, like the PNG of GET /parking/{id}/ticket.png) in Unicode
// half blocks: each character cell holds two modules, one above the other,
// so that the code comes out square in a terminal, whose cells are about
// twice as high as wide.
func drawQR(w io.Writer, text string, style qrStyle) error {
	q, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		return err
	}
	bits := q.Bitmap() // with the quiet zone
	var b strings.Builder
	color := style == qrColour
	for y := 0; y < len(bits); y += 2 {
		if color {
			b.WriteString(qrColors)
		}
		for x := range bits[y] {
			// The row below the last one is quiet zone too.
			top, bottom := bits[y][x], y+1 < len(bits) && bits[y+1][x]
			if style == qrLightBlocks {
				top, bottom = !top, !bottom
			}
			switch {
			case top && bottom:
				b.WriteString("█")
			case top:
				b.WriteString("▀")
			case bottom:
				b.WriteString("▄")
			default:
				b.WriteByte(' ')
			}
		}
		if color {
			b.WriteString(qrReset)
		}
		b.WriteByte('\n')
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// isTerminal reports whether w is a terminal. A writer may say so itself
// (IsTerminal, as tests' stand-ins for a terminal do); otherwise only a
// character device is one.
func isTerminal(w io.Writer) bool {
	if t, ok := w.(interface{ IsTerminal() bool }); ok {
		return t.IsTerminal()
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
