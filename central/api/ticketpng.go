package api

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"strconv"

	qrcode "github.com/skip2/go-qrcode"
)

// The QR code of GET /parking/{id}/ticket.png (documented in
// docs/tickets.md).
const (
	// qrModulePixels is the side of one QR module, in pixels, when the
	// request does not ask for a size: large enough for a phone camera to
	// read the code from a screen or a printout.
	qrModulePixels = 8
	// minQRSize and maxQRSize bound the ?size= parameter (pixels). At
	// minQRSize even the largest ticket (a version 9 code, 61 modules with
	// the quiet zone) gets two pixels a module; maxQRSize bounds the work
	// and the answer.
	minQRSize = 128
	maxQRSize = 1024
)

// ticketPNG serves the ticket of the JSON route (GET /parking/{id}/ticket)
// as a QR code PNG. It asks the booking service the same question as that
// route, so it answers the same errors in the same shape.
func (h *Handler) ticketPNG(w http.ResponseWriter, r *http.Request) {
	size := 0
	if q := r.URL.Query(); q.Has("size") {
		n, err := strconv.Atoi(q.Get("size"))
		if err != nil || len(q["size"]) > 1 || n < minQRSize || n > maxQRSize {
			h.fail(w, r, invalid("invalid_query", "size must be the image's width in pixels, a number from %d to %d (leave it out for %d pixels a module)", minQRSize, maxQRSize, qrModulePixels))
			return
		}
		size = n
	}
	t, err := h.svc.Ticket(r.Context(), r.PathValue("id"), h.caller(r))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	b, err := qrPNG(t, size)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	// The ticket opens the barrier: no cache along the way may keep it.
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b) // the client may have gone; nothing to do then
}

// qrPNG draws text as a QR code at error correction level M (15 % of the
// code may be damaged) and returns it as a black-on-white PNG with the
// standard quiet zone of four modules. An all upper-case ticket is stored in
// the QR alphanumeric mode, so a ticket of up to 221 characters fits a
// version 8 code.
//
// size is the width and height in pixels; 0 draws each module as
// qrModulePixels × qrModulePixels pixels. Modules are always whole pixels,
// all of the same size: what size leaves over is added to the white margin,
// half on each side, so the code stays sharp at any size.
func qrPNG(text string, size int) ([]byte, error) {
	q, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		return nil, fmt.Errorf("drawing a QR code of %d characters: %w", len(text), err)
	}
	bits := q.Bitmap() // the symbol with its quiet zone
	n := len(bits)
	scale := qrModulePixels
	if size == 0 {
		size = n * scale
	} else {
		scale = size / n
	}
	if scale < 1 {
		return nil, fmt.Errorf("a QR code of %d modules does not fit %d pixels", n, size)
	}
	// Index 0, the zero value of every pixel, is white.
	img := image.NewPaletted(image.Rect(0, 0, size, size), color.Palette{color.White, color.Black})
	off := (size - n*scale) / 2
	for my, row := range bits {
		for mx, dark := range row {
			if !dark {
				continue
			}
			for y := off + my*scale; y < off+(my+1)*scale; y++ {
				i := img.PixOffset(off+mx*scale, y)
				for x := 0; x < scale; x++ {
					img.Pix[i+x] = 1
				}
			}
		}
	}
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("encoding the QR code as PNG: %w", err)
	}
	return buf.Bytes(), nil
}
