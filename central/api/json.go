package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/parkgate/parkgate/central/apijson"
	"github.com/parkgate/parkgate/central/booking"
	"github.com/parkgate/parkgate/central/reservation"
)

// maxBody bounds every request body; the largest legitimate one is a push
// of many reservations.
const maxBody = 1 << 20

// Header values every JSON answer carries, set by assigning these slices
// (canonical keys, never modified) rather than through Header.Set, which
// canonicalises the key and allocates a slice per answer: on a point read
// that was a measurable share of centrald's own time.
var (
	jsonContentType = []string{"application/json"}
	noStore         = []string{"no-store"}
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Cache-Control"] = noStore
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v) // the client may have gone; nothing to do then
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, apijson.Error{Error: apijson.ErrorDetail{Code: code, Message: maskCardNumber(msg)}})
}

// maskCardNumber hides the digits of a message that would repeat a card
// number: messages may quote a path segment or a header, which the body
// check never sees.
func maskCardNumber(msg string) string {
	if !containsCardNumber([]byte(msg)) {
		return msg
	}
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return '*'
		}
		return r
	}, msg)
}

// checkQuery refuses a query string with parameters other than allowed,
// one given twice, control or bidi characters, or that does not parse.
// url.Values would drop a pair it cannot parse without a word (Go reads
// "state=paid;drop" as no state at all, since ';' stopped being a
// separator), and an ignored filter answers a different question than the
// one asked: so the raw query is parsed here and any error is the
// client's.
func checkQuery(u *url.URL, allowed []string) error {
	if u.RawQuery == "" {
		return nil
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return invalid("invalid_query", "the query string does not parse: parameters are name=value pairs separated by & (not ;), percent-encoded")
	}
	for k, vs := range q {
		if !slices.Contains(allowed, k) {
			if len(allowed) == 0 {
				return invalid("unknown_query_parameter", "unknown query parameter %q: this endpoint takes none", truncate([]byte(k)))
			}
			return invalid("unknown_query_parameter", "unknown query parameter %q; this endpoint takes %s", truncate([]byte(k)), strings.Join(allowed, ", "))
		}
		if len(vs) > 1 {
			return invalid("invalid_query", "query parameter %s is given more than once", k)
		}
		var sc scanner
		if sc.text([]byte(vs[0]), k); sc.err != nil {
			return invalid("invalid_query", "query parameter %s holds a control or text-direction character, or is not UTF-8", k)
		}
	}
	return nil
}

// badRequest is a client error found while reading a request.
type badRequest struct {
	status int
	code   string
	msg    string
	field  string // the body field at fault, when one is
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

// spotJSON shows a spot as pv may see it: the plate only to those who
// may see it.
func spotJSON(v booking.SpotView, pv plateViewer) apijson.Parking {
	p := apijson.Parking{ID: v.ID, Status: v.Status}
	if r := v.Reservation; r != nil {
		p.ReservationID, p.ReservationStatus = r.ID, string(r.State)
		p.ReservationCreatedAt, p.ReservedFrom, p.ReservedUntil = r.CreatedAt, r.From, r.Until
		p.PaidAt, p.LeftAt = r.PaidAt, r.LeftAt
		if pv.sees(r) {
			p.CarID = r.CarID
		}
	}
	return p
}

// OperatorSpotJSON shows a spot as an operator sees it (plate included).
func OperatorSpotJSON(v booking.SpotView) apijson.Parking { return spotJSON(v, plateViewer{all: true}) }
