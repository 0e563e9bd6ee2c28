package client_test

import (
	"bytes"
	"context"
	"image/png"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	zxqr "github.com/makiuchi-d/gozxing/qrcode"

	"github.com/parkgate/parkgate/central/client"
	"github.com/parkgate/parkgate/central/client/clienttest"
	"github.com/parkgate/parkgate/clock/clocktest"
)

// readQR decodes a PNG and the QR code in it.
func readQR(t *testing.T, b []byte) (text string, width, height int) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	// PURE_BARCODE: the image is the code alone, as rendered. gozxing's
	// finder-pattern detector misses about 1 in 70 valid codes of this
	// size (zbar reads them all), which made this test fail at random.
	res, err := zxqr.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
	if err != nil {
		t.Fatalf("no QR code in the PNG: %v", err)
	}
	return res.GetText(), img.Bounds().Dx(), img.Bounds().Dy()
}

func TestTicketPNG(t *testing.T) {
	ctx := context.Background()
	srv := clienttest.Start(t, clocktest.New(t0), "1")
	c := srv.Client(t)
	res, err := c.Reserve(ctx, "1", t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.TicketPNG(ctx, "1", res.Token, 0)
	wantErr(t, "unpaid", err, http.StatusConflict, "wrong_state")
	anon, err := client.New(srv.URL, client.WithHTTPClient(srv.HTTP.Client()))
	if err != nil {
		t.Fatal(err)
	}
	_, err = anon.TicketPNG(ctx, "1", "", 0)
	wantErr(t, "no token", err, http.StatusUnauthorized, "missing_token")

	paid, err := c.Pay(ctx, "1", res.Token, "X1", "pm_card_visa", "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.TicketPNG(ctx, "1", res.Token, 0)
	if err != nil {
		t.Fatal(err)
	}
	if text, w, h := readQR(t, b); text != paid.Ticket || w != h || w%8 != 0 {
		t.Fatalf("default PNG: %q %d×%d, want %q at 8 pixels a module", text, w, h, paid.Ticket)
	}
	// The token may come from the client, too.
	driver := srv.Client(t, client.WithToken(res.Token), client.WithAdminToken(""))
	b, err = driver.TicketPNG(ctx, "1", "", 300)
	if err != nil {
		t.Fatal(err)
	}
	if text, w, h := readQR(t, b); text != paid.Ticket || w != 300 || h != 300 {
		t.Fatalf("300 px PNG: %q %d×%d", text, w, h)
	}
	_, err = driver.TicketPNG(ctx, "1", "", 100)
	wantErr(t, "too small", err, http.StatusBadRequest, "invalid_query")
	_, err = driver.TicketPNG(ctx, "1", "", 4096)
	wantErr(t, "too large", err, http.StatusBadRequest, "invalid_query")
}

func TestTicketPNGRefusesWhatIsNotAPNG(t *testing.T) {
	var accept, auth string
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		accept, auth = r.Header.Get("Accept"), r.Header.Get("Authorization")
		if r.URL.Query().Get("size") == "200" {
			w.Header().Set("Content-Type", "image/png")
			w.Write([]byte("<html>not a png</html>"))
			return
		}
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html>a portal page</html>"))
	}))
	defer fake.Close()
	c, err := client.New(fake.URL, client.WithToken("tok"))
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{0, 200} {
		b, err := c.TicketPNG(context.Background(), "1", "", size)
		if err == nil || b != nil || !strings.Contains(err.Error(), "is not a PNG image") {
			t.Fatalf("size %d: %q %v", size, b, err)
		}
	}
	if !strings.HasPrefix(accept, "image/png") || auth != "Bearer tok" {
		t.Fatalf("request headers: Accept %q, Authorization %q", accept, auth)
	}
}
