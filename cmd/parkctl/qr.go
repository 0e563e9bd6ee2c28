package main

import (
	"io"
	"strings"

	qrcode "github.com/skip2/go-qrcode"
)

// ANSI escapes of drawQR: black on bright white, then back to the
// terminal's colours.
const (
	qrColors = "\x1b[30;107m"
	qrReset  = "\x1b[0m"
)

// drawQR writes text as a QR code (error correction level M, quiet zone of
// four modules, like the PNG of GET /parking/{id}/ticket.png) in Unicode
// half blocks: each character cell holds two modules, one above the other,
// so that the code comes out square in a terminal, whose cells are about
// twice as high as wide.
//
// With color, every line sets black on bright white, so the code reads the
// right way round (dark modules on a light ground, as scanners expect) on
// dark and light terminals alike. Without it (NO_COLOR), the light modules
// are drawn as blocks, which is right on a terminal with a dark background,
// as "qrencode -t UTF8" does.
func drawQR(w io.Writer, text string, color bool) error {
	q, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		return err
	}
	bits := q.Bitmap() // with the quiet zone
	var b strings.Builder
	for y := 0; y < len(bits); y += 2 {
		if color {
			b.WriteString(qrColors)
		}
		for x := range bits[y] {
			// The row below the last one is quiet zone too.
			top, bottom := bits[y][x], y+1 < len(bits) && bits[y+1][x]
			if !color {
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
