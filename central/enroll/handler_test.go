package enroll_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/central/enroll"
	"github.com/parkgate/parkgate/central/store/sqlitestore"
	"github.com/parkgate/parkgate/clock/clocktest"
	"github.com/parkgate/parkgate/internal/enrollment"
)

type rig struct {
	h   *enroll.Handler
	pub ed25519.PublicKey
	srv *httptest.Server
	clk *clocktest.Clock
	log *bytes.Buffer
}

func newRig(t *testing.T) *rig {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	pub, priv, _ := ed25519.GenerateKey(nil)
	clk := clocktest.New(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	var log bytes.Buffer
	h := &enroll.Handler{Store: st, Key: func() (ed25519.PrivateKey, error) { return priv, nil }, Site: "s1", Clock: clk, Broker: enroll.Broker{TLSPort: 8883},
		Log: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /enroll", h.ServeKey)
	mux.HandleFunc("POST /enroll", h.ServeRedeem)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &rig{h: h, pub: pub, srv: srv, clk: clk, log: &log}
}

func (r *rig) issue(t *testing.T, ttl time.Duration) enrollment.Code {
	t.Helper()
	c, err := enroll.Issue(context.Background(), r.h.Store, r.pub, "entry-1", "entry", ttl, r.clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (r *rig) enroll(c enrollment.Code) (enrollment.Bundle, error) {
	return enrollment.Enroll(context.Background(), r.srv.Client(), r.srv.URL, c)
}

func refusal(err error) string {
	var re *enrollment.RefusedError
	if errors.As(err, &re) {
		return re.Code
	}
	return ""
}

// Expiry follows central's clock: valid until issue + enroll.ttl.
func TestExpiryByClock(t *testing.T) {
	r := newRig(t)
	c := r.issue(t, time.Hour)
	r.clk.Advance(time.Hour - time.Second)
	c2 := r.issue(t, time.Hour)
	if _, err := r.enroll(c); err != nil {
		t.Fatalf("1 s before expiry: %v", err)
	}
	r.clk.Advance(time.Hour)
	if _, err := r.enroll(c2); refusal(err) != enrollment.CodeExpired {
		t.Fatalf("at expiry: %v, want %s", err, enrollment.CodeExpired)
	}
}

// Refused requests from one address are throttled, and the throttle ends
// with time; nothing secret reaches the log.
func TestThrottle(t *testing.T) {
	r := newRig(t)
	good := r.issue(t, time.Hour)
	for i := range 5 {
		unknown, _ := enrollment.NewCode(r.pub)
		if _, err := r.enroll(unknown); refusal(err) != enrollment.CodeUnknown {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if _, err := r.enroll(good); refusal(err) != enrollment.CodeThrottle {
		t.Fatalf("after 5 refusals: %v, want %s", err, enrollment.CodeThrottle)
	}
	r.clk.Advance(31 * time.Second)
	b, err := r.enroll(good)
	if err != nil {
		t.Fatalf("after the lockout: %v", err)
	}
	if strings.Contains(r.log.String(), b.MQTT.Password) || strings.Contains(r.log.String(), good.String()) {
		t.Fatalf("the log holds the password or the code:\n%s", r.log.String())
	}
}

// Bad bodies are refused with 400 and count against the address.
func TestMalformedRequests(t *testing.T) {
	r := newRig(t)
	for _, body := range []string{"", "{", `{"code":"x","recipient":"y","proof":"z"}`, `{"code":"","recipient":"","proof":"","extra":1}`,
		strings.Repeat("x", 5000)} {
		res, err := http.Post(r.srv.URL+"/enroll", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Error struct{ Code string } }
		json.NewDecoder(res.Body).Decode(&e)
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest && res.StatusCode != http.StatusTooManyRequests {
			t.Errorf("body %.20q: %d %s", body, res.StatusCode, e.Error.Code)
		}
	}
}
