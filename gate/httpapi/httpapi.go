// Package httpapi is gated's local HTTP interface (docs/gated.md):
// /healthz, /metrics, /v1/status, POST /v1/anpr for the plate camera, and —
// in simulator mode only — the simulator endpoints that CI and demos drive:
// /v1/sim/scan, /v1/sim/plate, /v1/sim/vehicle.
//
// A camera push opens the barrier, so POST /v1/anpr takes pushes only from
// the configured source networks and, when set, with the configured HTTP
// Basic credentials (see Camera). It is served either with the rest of the
// API (New) or alone on the camera's own listener (NewCamera), so that the
// API can stay on loopback while the camera reaches the gate.
package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parkgate/parkgate/gate/faults"
	"github.com/parkgate/parkgate/gate/lane"
	"github.com/parkgate/parkgate/gate/localdb"
	"github.com/parkgate/parkgate/hardware/anpr"
)

// maxBody bounds simulator requests; ANPR pushes carry pictures and are
// bounded by anpr.Options.MaxBody.
const maxBody = 64 << 10

// Lane is what the API needs of the lane (a *lane.Lane).
type Lane interface {
	Handle(ctx context.Context, r lane.Read) (lane.Result, error)
	Submit(r lane.Read) error
	Status(ctx context.Context) (lane.Status, error)
}

// Sim is the simulator's control surface; nil outside simulator mode.
type Sim interface {
	// Vehicle puts a vehicle on the loop under the barrier, or takes it away.
	Vehicle(present bool)
}

// Options configure the handler.
type Options struct {
	Lane     Lane
	Sim      Sim
	ANPR     anpr.Options
	Filter   *anpr.Filter
	Camera   Camera
	Registry *prometheus.Registry
	Log      *slog.Logger
	// Online reports whether the sync with centrald is up (false until the
	// sync exists).
	Online func() bool
	// CameraElsewhere leaves POST /v1/anpr out of New: the camera has its
	// own listener, served by NewCamera.
	CameraElsewhere bool
}

// Camera says who may push plates to POST /v1/anpr. Everyone else is
// answered 403, logged and counted, and their plate never reaches the lane.
type Camera struct {
	// AllowFrom are the networks pushes are taken from, matched against
	// the TCP peer's address (never a header such as X-Forwarded-For,
	// which the sender writes). Empty: no push is taken.
	AllowFrom []netip.Prefix
	// Username and Password, when Username is set, are the HTTP Basic
	// credentials every push must carry as well.
	Username, Password string
}

// New returns gated's HTTP handler.
func New(o Options) http.Handler {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Online == nil {
		o.Online = func() bool { return false }
	}
	h := newHandler(o)
	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	if o.Registry != nil {
		m.Handle("GET /metrics", promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{}))
	} else {
		m.Handle("GET /metrics", promhttp.Handler())
	}
	m.HandleFunc("GET /v1/status", h.status)
	if !o.CameraElsewhere {
		m.HandleFunc("POST /v1/anpr", h.anprGuarded)
	}
	if o.Sim != nil {
		m.HandleFunc("POST /v1/sim/scan", h.simScan)
		m.HandleFunc("POST /v1/sim/plate", h.simPlate)
		m.HandleFunc("POST /v1/sim/vehicle", h.simVehicle)
	}
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint (the simulator endpoints exist only with hardware.mode: sim)")
	})
	return m
}

// NewCamera returns the handler of the camera's own listener: POST
// /v1/anpr and nothing else, so that status, metrics and the simulator
// stay on the API's listener.
func NewCamera(o Options) http.Handler {
	h := newHandler(o)
	m := http.NewServeMux()
	m.HandleFunc("POST /v1/anpr", h.anprGuarded)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "this listener serves only POST /v1/anpr for the plate camera")
	})
	return m
}

type handler struct {
	o       Options
	refused *prometheus.CounterVec
	// user and pass are the SHA-256 of the configured credentials, so
	// that comparing them takes the same time whatever the lengths.
	user, pass [sha256.Size]byte
}

func newHandler(o Options) *handler {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	h := &handler{o: o, refused: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parkgate_anpr_refused_total",
		Help: "Camera pushes refused, by reason: source (not from anpr.allow_from) or credentials (missing or wrong HTTP Basic login).",
	}, []string{"reason"})}
	h.user, h.pass = sha256.Sum256([]byte(o.Camera.Username)), sha256.Sum256([]byte(o.Camera.Password))
	if o.Registry != nil {
		if err := o.Registry.Register(h.refused); err != nil {
			// New and NewCamera on one registry share the counter.
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				panic(err)
			}
			h.refused = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	h.refused.WithLabelValues("source")
	h.refused.WithLabelValues("credentials")
	return h
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// StatusJSON is GET /v1/status (docs/gated.md).
type StatusJSON struct {
	GateID        string `json:"gateId"`
	Role          string `json:"role"`
	Barrier       string `json:"barrier"`
	Online        bool   `json:"online"`
	CacheVersion  int64  `json:"cacheVersion"`
	Outbox        int    `json:"outbox"`
	BarrierState  string `json:"barrierState"`
	Fault         string `json:"fault,omitempty"`
	Vehicle       bool   `json:"vehicle"`
	ClockTrusted  bool   `json:"clockTrusted"`
	Clock         string `json:"clock"`
	OfflinePolicy string `json:"offlinePolicy"`
	// Faults are the gate's active faults, ordered by kind; [] when
	// healthy.
	Faults []FaultJSON `json:"faults"`
}

// FaultJSON is one active fault in /v1/status (see gate/faults).
type FaultJSON struct {
	// Kind is the fault's word: record, barrier, or another part's.
	Kind string `json:"kind"`
	// Error is the last error reported for it, one sentence.
	Error string `json:"error"`
	// Since is when it was raised; At when it was last reported.
	Since time.Time `json:"since"`
	At    time.Time `json:"at"`
}

// FaultsJSON converts the lane's faults.
func FaultsJSON(fs []faults.Fault) []FaultJSON {
	out := make([]FaultJSON, len(fs))
	for i, f := range fs {
		out[i] = FaultJSON{Kind: f.Kind, Error: f.Error, Since: f.Since.UTC(), At: f.At.UTC()}
	}
	return out
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	s, err := h.o.Lane.Status(r.Context())
	if err != nil {
		h.o.Log.Error("status failed", "err", err)
		writeError(w, http.StatusServiceUnavailable, "db_unavailable", "the local database does not answer")
		return
	}
	writeJSON(w, http.StatusOK, StatusJSON{
		GateID: s.GateID, Role: string(s.Role), Barrier: s.Barrier, Online: h.o.Online(),
		CacheVersion: s.CacheVersion, Outbox: s.Outbox, BarrierState: s.BarrierState, Fault: s.Fault,
		Vehicle: s.Vehicle, ClockTrusted: s.ClockTrusted, Clock: s.ClockWhy, OfflinePolicy: string(s.OfflinePolicy),
		Faults: FaultsJSON(s.Faults),
	})
}

// DecisionJSON answers a simulated read.
type DecisionJSON struct {
	Granted       bool   `json:"granted"`
	Reason        string `json:"reason"`
	Detail        string `json:"detail,omitempty"`
	ReservationID string `json:"reservationId,omitempty"`
	SpotID        string `json:"spotId,omitempty"`
	CarID         string `json:"carId,omitempty"`
	Overstay      bool   `json:"overstay,omitempty"`
	// PresenceUnknown: let out though the gate did not know the car was in.
	PresenceUnknown bool    `json:"presenceUnknown,omitempty"`
	EventID         string  `json:"eventId,omitempty"`
	Seq             int64   `json:"seq,omitempty"`
	LatencyMs       float64 `json:"latencyMs"`
}

func decisionJSON(res lane.Result) DecisionJSON {
	return DecisionJSON{
		Granted: res.Granted, Reason: string(res.Reason), Detail: res.Detail, ReservationID: res.ReservationID,
		SpotID: res.SpotID, CarID: res.CarID, Overstay: res.Overstay, PresenceUnknown: res.PresenceUnknown, EventID: res.EventID, Seq: res.Seq,
		LatencyMs: float64(res.Latency.Microseconds()) / 1000,
	}
}

// decode reads one small JSON object strictly.
func decode(w http.ResponseWriter, r *http.Request, dst any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		writeError(w, http.StatusBadRequest, "malformed_json", "the body must be one JSON object with the documented fields")
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		writeError(w, http.StatusBadRequest, "malformed_json", "the body holds data after the JSON object")
		return false
	}
	return true
}

func (h *handler) decide(w http.ResponseWriter, r *http.Request, rd lane.Read) {
	res, err := h.o.Lane.Handle(r.Context(), rd)
	if err != nil {
		h.o.Log.Error("decision failed", "source", rd.Source, "err", err)
		writeError(w, http.StatusServiceUnavailable, "lane_failed", "the decision could not be recorded or the barrier did not take it; the barrier stays closed")
		return
	}
	writeJSON(w, http.StatusOK, decisionJSON(res))
}

func (h *handler) simScan(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Code *string `json:"code"`
	}
	if !decode(w, r, &req) {
		return
	}
	if req.Code == nil || len(*req.Code) > 1024 {
		writeError(w, http.StatusBadRequest, "invalid_code", "code is required (the scanned line, at most 1024 characters)")
		return
	}
	h.decide(w, r, lane.Read{Source: localdb.SourceQR, Value: *req.Code})
}

func (h *handler) simPlate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Plate string `json:"plate"`
	}
	if !decode(w, r, &req) {
		return
	}
	if anpr.Normalize(req.Plate) == "" || len(req.Plate) > 32 {
		writeError(w, http.StatusBadRequest, "invalid_plate", "plate is required: letters and digits, at most 32 characters")
		return
	}
	h.decide(w, r, lane.Read{Source: localdb.SourcePlate, Value: req.Plate})
}

func (h *handler) simVehicle(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Present *bool `json:"present"`
	}
	if !decode(w, r, &req) {
		return
	}
	if req.Present == nil {
		writeError(w, http.StatusBadRequest, "invalid_present", "present is required: true or false")
		return
	}
	h.o.Sim.Vehicle(*req.Present)
	writeJSON(w, http.StatusOK, map[string]bool{"present": *req.Present})
}

// anprGuarded takes a camera push only from an allowed source with the
// right credentials: a push opens the barrier for the plate it names.
func (h *handler) anprGuarded(w http.ResponseWriter, r *http.Request) {
	if !allowedPeer(r.RemoteAddr, h.o.Camera.AllowFrom) {
		h.refuse(w, r, "source", "forbidden_source", "pushes are taken only from the networks in anpr.allow_from")
		return
	}
	if h.o.Camera.Username != "" {
		user, pass, _ := r.BasicAuth()
		u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(pass))
		// Both compared, always: no early answer tells which was wrong.
		okUser := subtle.ConstantTimeCompare(u[:], h.user[:])
		okPass := subtle.ConstantTimeCompare(p[:], h.pass[:])
		if okUser&okPass != 1 {
			h.refuse(w, r, "credentials", "bad_credentials", "pushes must carry the HTTP Basic login set in anpr.username and anpr.password")
			return
		}
	}
	h.anpr(w, r)
}

// allowedPeer reports whether the TCP peer remoteAddr (host:port, as
// net/http gives it) is in one of the networks. An IPv4 client of a
// dual-stack listener shows as ::ffff:a.b.c.d and is matched as a.b.c.d.
func allowedPeer(remoteAddr string, allow []netip.Prefix) bool {
	peer, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	addr := peer.Addr().Unmap().WithZone("")
	for _, p := range allow {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// refuse answers a push that is not taken, and says so in the log (with
// the TCP peer, never what the request claims) and the metrics. Nothing of
// the request is read or logged: not its plate, not its credentials.
func (h *handler) refuse(w http.ResponseWriter, r *http.Request, reason, code, msg string) {
	h.refused.WithLabelValues(reason).Inc()
	h.o.Log.Warn("camera push refused", "reason", reason, "peer", r.RemoteAddr)
	writeError(w, http.StatusForbidden, code, msg)
}

// anpr takes a camera push: it answers at once (cameras retry or stall on
// slow answers) and the lane decides right after.
func (h *handler) anpr(w http.ResponseWriter, r *http.Request) {
	defer io.Copy(io.Discard, io.LimitReader(r.Body, 16<<20)) // let the camera finish its upload
	reads, err := anpr.ParseReader(r.Header.Get("Content-Type"), r.Body, h.o.ANPR)
	if err != nil && !errors.Is(err, anpr.ErrNoRead) {
		// The parser's messages never quote the body.
		writeError(w, http.StatusBadRequest, "unreadable_push", err.Error())
		return
	}
	type item struct {
		Plate  string `json:"plate"`
		Status string `json:"status"` // queued, or why not
	}
	out := []item{}
	for _, rd := range reads {
		it := item{Plate: rd.Plate, Status: "queued"}
		if ok, why := h.o.Filter.Accept(rd); !ok {
			it.Status = strings.ToLower(why)
		} else if err := h.o.Lane.Submit(lane.Read{Source: localdb.SourcePlate, Value: rd.Plate}); err != nil {
			it.Status = "busy"
		}
		out = append(out, it)
	}
	writeJSON(w, http.StatusOK, map[string]any{"reads": out, "at": time.Now().UTC()})
}
