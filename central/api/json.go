package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/parkgate/parkgate/central/booking"
	"github.com/parkgate/parkgate/central/reservation"
)

// maxBody bounds every request body; the largest legitimate one is a push
// of many reservations.
const maxBody = 1 << 20

// errorBody is the one error shape of the API (PRODUCT.md §4).
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v) // the client may have gone; nothing to do then
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var b errorBody
	b.Error.Code, b.Error.Message = code, msg
	writeJSON(w, status, b)
}

// badRequest is a client error found while reading a request.
type badRequest struct {
	status int
	code   string
	msg    string
}

func (e *badRequest) Error() string { return e.msg }

func invalid(code, format string, args ...any) error {
	return &badRequest{status: http.StatusBadRequest, code: code, msg: fmt.Sprintf(format, args...)}
}

// readBody reads a bounded request body.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, &badRequest{status: http.StatusRequestEntityTooLarge, code: "body_too_large", msg: fmt.Sprintf("the request body is larger than %d bytes", maxBody)}
	}
	if err != nil {
		return nil, invalid("unreadable_body", "the request body could not be read")
	}
	return b, nil
}

// decode parses one JSON object strictly: unknown fields and trailing data
// are errors, so a typo in a field name is reported, not ignored.
func decode(b []byte, dst any) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return invalid("malformed_json", "the body holds more than one JSON value")
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid("malformed_json", "the body holds data after the JSON object")
	}
	return nil
}

// jsonError words a decoding error without echoing values back (a value
// could be something that must not be repeated, like a card number).
func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return invalid("missing_body", "the request needs a JSON body")
	case errors.As(err, &syn), errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("malformed_json", "the body is not valid JSON")
	case errors.As(err, &typ):
		return invalid("invalid_field", "field %q must be a %s", typ.Field, typ.Type.Kind())
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return invalid("unknown_field", "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return invalid("malformed_json", "the body is not a valid JSON object")
}

// parseTime reads an RFC 3339 time; field names the input for the message.
func parseTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, invalid("missing_field", "%s is required", field)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || len(s) > 40 {
		return time.Time{}, invalid("invalid_time", "%s must be an RFC 3339 time such as 2026-11-26T14:00:00Z", field)
	}
	if t.Year() < 2000 || t.Year() > 9999 {
		return time.Time{}, invalid("invalid_time", "%s is out of range", field)
	}
	return t.UTC(), nil
}

// reservationJSON is a reservation as the API shows it.
type reservationJSON struct {
	ReservationID        string             `json:"reservationId"`
	SpotID               string             `json:"spotId"`
	Status               reservation.State  `json:"status"`
	Source               reservation.Source `json:"source"`
	ReservedFrom         time.Time          `json:"reservedFrom"`
	ReservedUntil        time.Time          `json:"reservedUntil"`
	ReservationCreatedAt time.Time          `json:"reservationCreatedAt"`
	Amount               int64              `json:"amount"`
	Currency             string             `json:"currency"`
	CarID                string             `json:"carId,omitempty"`
	Reference            string             `json:"reference,omitempty"`
	PaymentDueBy         time.Time          `json:"paymentDueBy,omitzero"`
	PaidAt               time.Time          `json:"paidAt,omitzero"`
	CheckedInAt          time.Time          `json:"checkedInAt,omitzero"`
	LeftAt               time.Time          `json:"leftAt,omitzero"`
	EndedAt              time.Time          `json:"endedAt,omitzero"`
	// Token and Ticket are shown once: at creation and at payment.
	Token  string `json:"token,omitempty"`
	Ticket string `json:"ticket,omitempty"`
}

func toJSON(r reservation.Reservation, hold time.Duration) reservationJSON {
	j := reservationJSON{
		ReservationID: r.ID, SpotID: r.SpotID, Status: r.State, Source: r.Source,
		ReservedFrom: r.From, ReservedUntil: r.Until, ReservationCreatedAt: r.CreatedAt,
		Amount: r.Amount, Currency: r.Currency, CarID: r.CarID, Reference: r.Reference,
		PaidAt: r.PaidAt, CheckedInAt: r.CheckedInAt, LeftAt: r.LeftAt, EndedAt: r.EndedAt,
	}
	if r.State == reservation.Reserved {
		j.PaymentDueBy = r.CreatedAt.Add(hold)
	}
	return j
}

func issuedJSON(i booking.Issued, hold time.Duration) reservationJSON {
	j := toJSON(i.Reservation, hold)
	j.Token, j.Ticket = i.Token, i.Ticket
	return j
}

// parkingJSON is a spot in GET /parkings: the seed's field names.
type parkingJSON struct {
	ID                   string            `json:"id"`
	Status               string            `json:"status"`
	ReservationID        string            `json:"reservationId,omitempty"`
	ReservationStatus    reservation.State `json:"reservationStatus,omitempty"`
	ReservationCreatedAt time.Time         `json:"reservationCreatedAt,omitzero"`
	ReservedFrom         time.Time         `json:"reservedFrom,omitzero"`
	ReservedUntil        time.Time         `json:"reservedUntil,omitzero"`
	PaidAt               time.Time         `json:"paidAt,omitzero"`
	LeftAt               time.Time         `json:"leftAt,omitzero"`
	CarID                string            `json:"carId,omitempty"`
}

func spotJSON(v booking.SpotView) parkingJSON {
	p := parkingJSON{ID: v.ID, Status: v.Status}
	if r := v.Reservation; r != nil {
		p.ReservationID, p.ReservationStatus = r.ID, r.State
		p.ReservationCreatedAt, p.ReservedFrom, p.ReservedUntil = r.CreatedAt, r.From, r.Until
		p.PaidAt, p.LeftAt, p.CarID = r.PaidAt, r.LeftAt, r.CarID
	}
	return p
}
