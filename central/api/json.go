package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/parkgate/parkgate/central/apijson"
	"github.com/parkgate/parkgate/central/booking"
	"github.com/parkgate/parkgate/central/reservation"
)

// maxBody bounds every request body; the largest legitimate one is a push
// of many reservations.
const maxBody = 1 << 20

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v) // the client may have gone; nothing to do then
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, apijson.Error{Error: apijson.ErrorDetail{Code: code, Message: msg}})
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

func toJSON(r reservation.Reservation, hold time.Duration) apijson.Reservation {
	j := apijson.Reservation{
		ReservationID: r.ID, SpotID: r.SpotID, Status: string(r.State), Source: string(r.Source),
		ReservedFrom: r.From, ReservedUntil: r.Until, ReservationCreatedAt: r.CreatedAt,
		Amount: r.Amount, Currency: r.Currency, CarID: r.CarID, Reference: r.Reference,
		PaidAt: r.PaidAt, CheckedInAt: r.CheckedInAt, LeftAt: r.LeftAt, EndedAt: r.EndedAt,
	}
	if r.State == reservation.Reserved {
		j.PaymentDueBy = r.CreatedAt.Add(hold)
	}
	return j
}

func issuedJSON(i booking.Issued, hold time.Duration) apijson.Reservation {
	j := toJSON(i.Reservation, hold)
	j.Token, j.Ticket = i.Token, i.Ticket
	return j
}

func spotJSON(v booking.SpotView) apijson.Parking {
	p := apijson.Parking{ID: v.ID, Status: v.Status}
	if r := v.Reservation; r != nil {
		p.ReservationID, p.ReservationStatus = r.ID, string(r.State)
		p.ReservationCreatedAt, p.ReservedFrom, p.ReservedUntil = r.CreatedAt, r.From, r.Until
		p.PaidAt, p.LeftAt, p.CarID = r.PaidAt, r.LeftAt, r.CarID
	}
	return p
}
