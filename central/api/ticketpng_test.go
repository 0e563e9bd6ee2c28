package api_test

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	zxqr "github.com/makiuchi-d/gozxing/qrcode"
	qrcode "github.com/skip2/go-qrcode"

	"github.com/parkgate/parkgate/central/api"
	"github.com/parkgate/parkgate/clock/clocktest"
	"github.com/parkgate/parkgate/ticket"
)

// alnumCapacityM is how many QR alphanumeric characters versions 1 to 10
// hold at error correction level M (ISO/IEC 18004, table 7).
var alnumCapacityM = []int{20, 38, 61, 90, 122, 154, 178, 221, 262, 311}

// alnumVersion is the smallest QR version that holds n alphanumeric
// characters at level M.
func alnumVersion(t *testing.T, n int) int {
	t.Helper()
	for i, c := range alnumCapacityM {
		if n <= c {
			return i + 1
		}
	}
	t.Fatalf("%d characters need a version above 10", n)
	return 0
}

// decodeQR reads the QR code in img back with a real QR decoder (ZXing's Go
// port), as a phone or gate scanner would, and checks how it was stored: at
// level M and without byte mode.
func decodeQR(t *testing.T, img image.Image) string {
	t.Helper()
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	// PURE_BARCODE: the image is the code alone, as rendered. gozxing's
	// finder-pattern detector misses about 1 in 70 valid codes of this
	// size (zbar reads them all), which made this test fail at random.
	res, err := zxqr.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
	if err != nil {
		t.Fatalf("the QR code does not decode: %v", err)
	}
	md := res.GetResultMetadata()
	if ec := md[gozxing.ResultMetadataType_ERROR_CORRECTION_LEVEL]; ec != "M" {
		t.Errorf("error correction level %v, want M", ec)
	}
	if _, ok := md[gozxing.ResultMetadataType_BYTE_SEGMENTS]; ok {
		t.Error("the ticket is stored in byte mode, want alphanumeric")
	}
	// The first segment's mode indicator: 0010 alphanumeric (0001, numeric,
	// would do too; 0100 is byte mode).
	if raw := res.GetRawBytes(); len(raw) == 0 || raw[0]>>4 != 0b0010 && raw[0]>>4 != 0b0001 {
		t.Errorf("first segment mode %04b, want alphanumeric", raw[0]>>4)
	}
	return res.GetText()
}

func decodePNG(t *testing.T, b []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	return img
}

func dark(c color.Color) bool {
	y := color.GrayModel.Convert(c).(color.Gray).Y
	switch y {
	case 0:
		return true
	case 0xff:
		return false
	}
	panic(fmt.Sprintf("grey pixel %d: the code must be pure black on white", y))
}

// checkModules checks that img is exactly the library's QR code of text:
// square modules of scale pixels, the quiet zone included, centred, with
// white all around.
func checkModules(t *testing.T, img image.Image, text string, scale int) {
	t.Helper()
	q, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		t.Fatal(err)
	}
	bits := q.Bitmap()
	n := len(bits)
	size := img.Bounds().Dx()
	off := (size - n*scale) / 2
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			want := false
			if mx, my := (x-off)/scale, (y-off)/scale; x >= off && y >= off && mx < n && my < n {
				want = bits[my][mx]
			}
			if got := dark(img.At(x, y)); got != want {
				t.Fatalf("pixel (%d, %d) dark %v, want %v", x, y, got, want)
			}
		}
	}
	// The quiet zone: four light modules all around the symbol.
	for i := 0; i < n; i++ {
		for j := 0; j < 4; j++ {
			if bits[j][i] || bits[n-1-j][i] || bits[i][j] || bits[i][n-1-j] {
				t.Fatalf("no quiet zone of 4 modules")
			}
		}
	}
}

func (s *server) png(path, token string) (*http.Response, []byte) {
	s.t.Helper()
	req, _ := http.NewRequest("GET", s.srv.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := s.srv.Client().Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return res, b
}

func TestTicketPNG(t *testing.T) {
	clk := clocktest.New(t0)
	s := newServer(t, clk, []string{"1", "2"})
	var res reserved
	s.do("POST", "/reserve/parking/1", "", window(t0, t0.Add(2*time.Hour))).decode(t, &res)

	// Errors, before and after payment: the same status and body as the
	// JSON route's, in the API's error shape.
	var other reserved
	s.do("POST", "/reserve/parking/2", "", window(t0, t0.Add(time.Hour))).decode(t, &other)
	same := func(what, id, token string, status int, code string) {
		t.Helper()
		j := s.do("GET", "/parking/"+id+"/ticket", token, "")
		hr, b := s.png("/parking/"+id+"/ticket.png", token)
		if hr.StatusCode != status || j.Status != status || !bytes.Equal(b, j.Body) ||
			!strings.HasPrefix(hr.Header.Get("Content-Type"), "application/json") ||
			(resp{hr.StatusCode, b}).errCode(t) != code {
			t.Fatalf("%s: PNG route %d %q %s, JSON route %d %s; want %d %s",
				what, hr.StatusCode, hr.Header.Get("Content-Type"), b, j.Status, j.Body, status, code)
		}
	}
	same("no token", "1", "", 401, "missing_token")
	same("wrong token", "1", "not-a-token", 401, "invalid_token")
	same("unpaid", "1", res.Token, 409, "wrong_state")
	same("another spot's token", "2", res.Token, 403, "wrong_spot")
	same("an unknown spot", "9", res.Token, 403, "wrong_spot")
	same("the admin token", "1", admin, 403, "driver_only")
	if r := s.do("GET", "/parking/1/ticket.png/x", res.Token, ""); r.Status != 404 || r.errCode(t) != "not_found" {
		t.Fatalf("a longer path: %d %s", r.Status, r.Body)
	}

	var paid reserved
	s.do("POST", "/pay/parking/1", res.Token, `{"carId":"K-LM 42","cardDetails":{"paymentMethod":"pm_card_visa"}}`).decode(t, &paid)
	if paid.Ticket == "" {
		t.Fatal("no ticket after payment")
	}
	same("another spot's token, paid", "2", res.Token, 403, "wrong_spot")
	same("the admin token, paid", "1", admin, 403, "driver_only")

	check := func(what, path string, size, scale int) {
		t.Helper()
		hr, b := s.png(path, res.Token)
		if hr.StatusCode != 200 || hr.Header.Get("Content-Type") != "image/png" || hr.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("%s: %d %q %q %.200s", what, hr.StatusCode, hr.Header.Get("Content-Type"), hr.Header.Get("Cache-Control"), b)
		}
		img := decodePNG(t, b)
		if bd := img.Bounds(); bd.Min != (image.Point{}) || bd.Dx() != size || bd.Dy() != size {
			t.Fatalf("%s: image %v, want %d×%d", what, bd, size, size)
		}
		if got := decodeQR(t, img); got != paid.Ticket {
			t.Fatalf("%s: decodes to %q, want the ticket %q", what, got, paid.Ticket)
		}
		checkModules(t, img, paid.Ticket, scale)
	}
	// By default 8 pixels a module, four modules of quiet zone each side,
	// and the smallest version that holds the ticket in alphanumeric mode.
	v := alnumVersion(t, len(paid.Ticket))
	modules := 17 + 4*v + 8
	check("default", "/parking/1/ticket.png", 8*modules, 8)
	for _, size := range []int{128, 300, 1024} {
		check(fmt.Sprint("size ", size), fmt.Sprintf("/parking/1/ticket.png?size=%d", size), size, size/modules)
	}

	for _, q := range []string{"size=127", "size=1025", "size=0", "size=-200", "size=", "size=abc", "size=200px", "size=2e2"} {
		r := s.do("GET", "/parking/1/ticket.png?"+q, res.Token, "")
		if r.Status != 400 || r.errCode(t) != "invalid_query" || !strings.Contains(string(r.Body), "128 to 1024") {
			t.Errorf("?%s: %d %s", q, r.Status, r.Body)
		}
	}
	if r := s.do("GET", "/parking/1/ticket.png?size=200&size=300", res.Token, ""); r.Status != 400 || r.errCode(t) != "invalid_query" {
		t.Errorf("size twice: %d %s", r.Status, r.Body)
	}

	// A car that has checked in keeps its ticket (it shows it at the exit).
	if r := s.do("POST", "/park/parking/1?is_parking=true", res.Token, ""); r.Status != 200 {
		t.Fatalf("park: %d %s", r.Status, r.Body)
	}
	check("checked in", "/parking/1/ticket.png?size=256", 256, 256/modules)
	// After leaving there is no ticket any more.
	if r := s.do("POST", "/park/parking/1?is_parking=false", res.Token, ""); r.Status != 200 {
		t.Fatalf("leave: %d %s", r.Status, r.Body)
	}
	same("left", "1", res.Token, 409, "wrong_state")
}

// TestQRPNGEveryTicketSize draws tickets from the smallest to the largest
// the format allows and reads each back, at the default size and at the
// smallest size (at most 2 pixels a module); the largest ticket also at the
// largest size.
func TestQRPNGEveryTicketSize(t *testing.T) {
	signer, err := ticket.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	id := func(n int) string {
		const chars = "abcdefghijklmnopqrstuvwxyz0123456789-"
		b := make([]byte, n)
		for i := range b {
			b[i] = chars[rng.IntN(len(chars))]
		}
		return string(b)
	}
	from := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	tks := []ticket.Ticket{
		{ReservationID: "r", SpotID: "1", From: from, Until: from.Add(time.Second)},
		{ReservationID: id(ticket.MaxReservationIDLen), SpotID: id(ticket.MaxSpotIDLen), CarID: id(ticket.MaxCarIDLen), From: from, Until: from.Add(ticket.MaxWindow)},
	}
	for range 12 {
		tks = append(tks, ticket.Ticket{
			ReservationID: id(1 + rng.IntN(ticket.MaxReservationIDLen)),
			SpotID:        id(1 + rng.IntN(ticket.MaxSpotIDLen)),
			CarID:         id(rng.IntN(ticket.MaxCarIDLen + 1)),
			From:          from, Until: from.Add(time.Duration(1+rng.IntN(1e6)) * time.Second),
		})
	}
	for i, tk := range tks {
		code, err := signer.Issue(tk)
		if err != nil {
			t.Fatal(err)
		}
		sizes := []int{0, 128}
		if i == 1 {
			sizes = append(sizes, 1024)
		}
		for _, size := range sizes {
			b, err := api.QRPNG(code, size)
			if err != nil {
				t.Fatalf("%d characters: %v", len(code), err)
			}
			img := decodePNG(t, b)
			if got := decodeQR(t, img); got != code {
				t.Fatalf("%d characters at size %d: decodes to %q, want %q", len(code), size, got, code)
			}
			if size == 0 {
				// No version above the one alphanumeric mode needs.
				modules := img.Bounds().Dx() / 8
				if v, max := (modules-8-17)/4, alnumVersion(t, len(code)); v > max {
					t.Fatalf("%d characters take version %d, alphanumeric mode needs %d", len(code), v, max)
				}
				checkModules(t, img, code, 8)
			} else if img.Bounds().Dx() != size {
				t.Fatalf("size %d gave %v", size, img.Bounds())
			}
		}
	}
}
