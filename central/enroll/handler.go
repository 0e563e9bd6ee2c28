package enroll

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/clock"
	"github.com/parkgate/parkgate/internal/enrollment"
	"github.com/parkgate/parkgate/internal/throttle"
)

// Broker is what enrolled gates are told about the MQTT broker (the
// password is each gate's own).
type Broker struct {
	// URL is enroll.broker_url: the broker as the gates reach it; empty:
	// the gate derives ssl://{central's host}:{TLSPort}.
	URL string
	// TLSPort is the embedded broker's TLS port; PlainPort its plain TCP
	// port, announced only when there is no TLS port.
	TLSPort, PlainPort int
	// CA is the PEM CA certificate the gates are to trust (empty: their
	// system roots).
	CA string
}

// Handler serves GET and POST /enroll.
type Handler struct {
	Store store.Store
	// Key returns central's enrollment key (enroll.key_file). It is read
	// at each request, not once: the key is made on first use, possibly
	// by `centrald gate enroll` while the daemon runs, and a daemon that
	// never enrolls a gate leaves no key file behind.
	Key        func() (ed25519.PrivateKey, error)
	Site       string
	Broker     Broker
	TicketKeys []string
	Clock      clock.Clock
	Log        *slog.Logger

	once     sync.Once
	throttle *throttle.Throttle
}

// Refused requests are throttled by client address (internal/throttle's
// limits). A code cannot be guessed (96 random bits), so this only keeps a
// broken or hostile client from hammering the database and the log.
const maxBody = 4 << 10

func (h *Handler) init() {
	h.once.Do(func() {
		if h.Clock == nil {
			h.Clock = clock.Real{}
		}
		if h.Log == nil {
			h.Log = slog.New(slog.DiscardHandler)
		}
		h.throttle = throttle.New(h.Clock)
	})
}

// ServeKey answers GET /enroll with central's enrollment public key.
func (h *Handler) ServeKey(w http.ResponseWriter, r *http.Request) {
	h.init()
	key, ok := h.key(w)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, enrollment.KeyInfo{Key: base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))})
}

// key loads the enrollment key, answering 500 if it cannot.
func (h *Handler) key(w http.ResponseWriter) (ed25519.PrivateKey, bool) {
	key, err := h.Key()
	if err != nil {
		h.Log.Error("enrollment key", "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "enrollment failed on central; see its log")
		return nil, false
	}
	return key, true
}

// ServeRedeem answers POST /enroll: the gate's bundle, encrypted to the
// request's recipient and signed, or a refusal.
func (h *Handler) ServeRedeem(w http.ResponseWriter, r *http.Request) {
	h.init()
	addr := throttle.ClientAddr(r)
	if d := h.throttle.Wait(addr); d > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(d.Seconds()+0.999)))
		writeError(w, http.StatusTooManyRequests, enrollment.CodeThrottle,
			"too many refused enrollment requests from this address; try again in "+d.Round(time.Second).String())
		return
	}
	var req enrollment.Request
	body, err := readBody(w, r)
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		err = dec.Decode(&req)
	}
	var id ed25519.PublicKey
	var recipient, proof []byte
	if err == nil {
		id, recipient, proof, err = enrollment.ParseRequest(req)
	}
	if err != nil {
		h.throttle.Fail(addr)
		writeError(w, http.StatusBadRequest, "bad_request", "malformed enrollment request: want {\"code\", \"recipient\", \"proof\"} as gated enroll sends it")
		return
	}
	// The key before the code is spent: without it there is no answer.
	key, ok := h.key(w)
	if !ok {
		return
	}
	now := h.Clock.Now()
	g, err := Redeem(r.Context(), h.Store, id, recipient, proof, now)
	if err != nil {
		status, code := http.StatusInternalServerError, "internal"
		switch {
		case errors.Is(err, ErrUnknown):
			status, code = http.StatusNotFound, enrollment.CodeUnknown
		case errors.Is(err, ErrUsed):
			status, code = http.StatusGone, enrollment.CodeUsed
		case errors.Is(err, ErrExpired):
			status, code = http.StatusGone, enrollment.CodeExpired
		}
		if status == http.StatusInternalServerError {
			h.Log.Error("enrollment failed", "err", err)
			writeError(w, status, code, "enrollment failed on central; see its log")
			return
		}
		h.throttle.Fail(addr)
		h.Log.Warn("enrollment refused", "reason", code, "addr", addr)
		writeError(w, status, code, err.Error())
		return
	}
	b := enrollment.Bundle{Site: h.Site, GateID: g.GateID, Role: g.Role, TicketPublicKeys: h.TicketKeys,
		MQTT: enrollment.MQTT{URL: h.Broker.URL, TLSPort: h.Broker.TLSPort, Username: g.GateID, Password: g.Password, CA: h.Broker.CA}}
	if h.Broker.TLSPort == 0 {
		b.MQTT.PlainPort = h.Broker.PlainPort
	}
	resp, err := enrollment.Seal(key, id, recipient, b)
	if err != nil {
		h.Log.Error("enrollment: sealing the answer", "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "enrollment failed on central; see its log")
		return
	}
	h.throttle.Succeed(addr)
	// Never the password, nor the code.
	h.Log.Info("gate enrolled", "gate", g.GateID, "role", g.Role, "addr", addr)
	writeJSON(w, http.StatusOK, resp)
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	var buf bytes.Buffer
	_, err := buf.ReadFrom(r.Body)
	return buf.Bytes(), err
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	e.Error.Code, e.Error.Message = code, msg
	writeJSON(w, status, e)
}
