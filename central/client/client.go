// Package client is a small typed Go client for centrald's HTTP API
// (docs/api.md, central/api). parkctl is built on it, and process-level
// tests and benchmarks use it so that they exercise the API exactly as an
// outside program does: over HTTP, through the one error shape.
//
// It deliberately imports nothing from the server packages: a client that
// shared the server's types could not notice when the wire format changes,
// and would drag the store and metrics code into every binary that talks to
// centrald.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/parkgate/parkgate/central/apijson"
	"github.com/parkgate/parkgate/central/store"
)

// DefaultTimeout bounds a request when no *http.Client is given: a CLI
// talking to a server that has stopped answering must not hang forever.
// It leaves room for a payment, which the server bounds at 10 seconds.
const DefaultTimeout = 30 * time.Second

// maxResponse bounds how much of a response body is read, so that a
// misbehaving server cannot exhaust the client's memory. The largest
// legitimate answer (10000 reservations) is a few megabytes.
const maxResponse = 64 << 20

// Client calls one centrald. Its methods are safe for concurrent use.
type Client struct {
	base  string // scheme://host[/prefix], without a trailing slash
	hc    *http.Client
	token string // the driver's reservation token
	admin string // the operator's admin token
	hook  func(*http.Response, []byte)
	agent string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (transport, timeouts, TLS). Tests
// pass httptest.Server.Client(); benchmarks pass one with a large idle
// connection pool.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.hc = hc
		}
	}
}

// WithToken sets the reservation token that driver methods use when their
// token argument is empty, so a program that handles one reservation need
// not pass it on every call.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithAdminToken sets the operator token (auth.admin_token) sent to the
// admin endpoints. It is also the fallback credential of driver methods
// called with no token at all, since the server lets an operator check a
// car in or out, show or cancel any reservation.
func WithAdminToken(token string) Option { return func(c *Client) { c.admin = token } }

// WithResponseHook calls f with every response and its body (already read;
// do not read res.Body). parkctl uses it to print the server's JSON
// verbatim; tests can use it to inspect headers.
func WithResponseHook(f func(res *http.Response, body []byte)) Option {
	return func(c *Client) { c.hook = f }
}

// WithUserAgent sets the User-Agent header, so that server logs tell
// parkctl from a benchmark.
func WithUserAgent(ua string) Option { return func(c *Client) { c.agent = ua } }

// New returns a client of the centrald at baseURL, e.g.
// "http://127.0.0.1:8080". A path in baseURL is kept as a prefix, for a
// server behind a reverse proxy. The URL is checked now so that a typo is
// reported before any request.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server URL %q must look like http://host:port", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("server URL %q must not have a query or fragment", baseURL)
	}
	c := &Client{
		base:  strings.TrimRight(u.String(), "/"),
		hc:    &http.Client{Timeout: DefaultTimeout},
		agent: "parkgate-client",
	}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Error is a non-2xx answer. Code and Message come from the API's error
// shape {"error":{"code","message"}}; when the body is not in that shape
// (a proxy's error page, say) Code is empty and Message says what came.
type Error struct {
	Status  int    // HTTP status code
	Code    string // the API's machine word, e.g. "overlap"
	Message string // a sentence for a person
}

// Error renders the answer the way parkctl prints it:
// "<message> (<code>, HTTP <status>)".
func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
	}
	return fmt.Sprintf("%s (%s, HTTP %d)", e.Message, e.Code, e.Status)
}

// ErrorCode returns the API error code of err, or "" if err is not an
// *Error; a shorthand for tests and for callers that branch on the code.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Spot statuses (Parking.Status, ForceStatus).
const (
	StatusFree     = "free"
	StatusReserved = "reserved"
	StatusTaken    = "taken"
)

// Reservation states (Reservation.Status, Change.Reservation.State).
// Reserved, Paid and Taken are live; the others are final.
const (
	StateReserved  = "reserved"
	StatePaid      = "paid"
	StateTaken     = "taken"
	StateLeft      = "left"
	StateExpired   = "expired"
	StateNoShow    = "no_show"
	StateCancelled = "cancelled"
)

// Parking is a spot as GET /parkings shows it.
type Parking = apijson.Parking

// Reservation is a reservation as the API shows it.
type Reservation = apijson.Reservation

// Change is one entry of the change log (GET /admin/changes), which gates
// and other followers replay in Version order; its Reservation is the
// stored record after the change (nil for spot changes).
type Change = store.Change

// PushItem is one reservation an operator pushes (POST
// /admin/reservations): settled outside the card flow, so it is created
// paid.
type PushItem struct {
	SpotID        string    `json:"spotId"`
	ReservedFrom  time.Time `json:"reservedFrom"`
	ReservedUntil time.Time `json:"reservedUntil"`
	CarID         string    `json:"carId,omitempty"`
	Reference     string    `json:"reference,omitempty"`
}

// PublicKey is the site's ticket verification key and its id.
type PublicKey = apijson.PublicKey

// Spots lists every spot with its status as of now. A plate (CarID) is
// personal data: the server shows every one to the admin token, a
// reservation's own to its token, none to anybody else; so the client
// sends its admin token, else its reservation token (WithToken), else
// none.
func (c *Client) Spots(ctx context.Context) ([]Parking, error) {
	var out []Parking
	err := c.do(ctx, http.MethodGet, "/parkings", c.viewer(), nil, nil, &out)
	return out, err
}

// Spot returns one spot, its plate shown as for Spots.
func (c *Client) Spot(ctx context.Context, id string) (Parking, error) {
	var out Parking
	err := c.do(ctx, http.MethodGet, "/parkings/"+seg(id), c.viewer(), nil, nil, &out)
	return out, err
}

// viewer is the credential the public reads send.
func (c *Client) viewer() string {
	if c.admin != "" {
		return c.admin
	}
	return c.token
}

// Reserve holds spot for [from, until), waiting for payment. The answer
// carries the reservation's Token: keep it, it is shown only once.
func (c *Client) Reserve(ctx context.Context, spot string, from, until time.Time) (Reservation, error) {
	body := map[string]string{"reservedFrom": rfc3339(from), "reservedUntil": rfc3339(until)}
	var out Reservation
	err := c.do(ctx, http.MethodPost, "/reserve/parking/"+seg(spot), "", body, nil, &out)
	return out, err
}

// Pay pays the reservation that token opens with a payment method
// reference such as "pm_card_visa" (never a card number: the server
// refuses those). A non-empty idempotencyKey makes a retry safe: the same
// key gets the first answer and is never charged twice. A decline is an
// *Error with Status 402; the reservation stays payable.
func (c *Client) Pay(ctx context.Context, spot, token, carID, paymentMethod, idempotencyKey string) (Reservation, error) {
	body := map[string]any{"carId": carID, "cardDetails": map[string]string{"paymentMethod": paymentMethod}}
	var hdr http.Header
	if idempotencyKey != "" {
		hdr = http.Header{"Idempotency-Key": {idempotencyKey}}
	}
	var out Reservation
	err := c.do(ctx, http.MethodPost, "/pay/parking/"+seg(spot), c.driver(token), body, hdr, &out)
	return out, err
}

// CheckIn records that the car of the paid reservation of spot has parked
// (the spot becomes taken).
func (c *Client) CheckIn(ctx context.Context, spot, token string) (Reservation, error) {
	var out Reservation
	err := c.do(ctx, http.MethodPost, "/park/parking/"+seg(spot)+"?is_parking=true", c.driver(token), nil, nil, &out)
	return out, err
}

// CheckOut records that the car on spot left at leavingAt, or now if it is
// zero. Leaving before reservedUntil frees the spot at once.
func (c *Client) CheckOut(ctx context.Context, spot, token string, leavingAt time.Time) (Reservation, error) {
	q := url.Values{"is_parking": {"false"}}
	if !leavingAt.IsZero() {
		q.Set("leaving_at", rfc3339(leavingAt))
	}
	var out Reservation
	err := c.do(ctx, http.MethodPost, "/park/parking/"+seg(spot)+"?"+q.Encode(), c.driver(token), nil, nil, &out)
	return out, err
}

// Reservation returns reservation id to the holder of its token, or to an
// operator.
func (c *Client) Reservation(ctx context.Context, id, token string) (Reservation, error) {
	var out Reservation
	err := c.do(ctx, http.MethodGet, "/reservations/"+seg(id), c.driver(token), nil, nil, &out)
	return out, err
}

// Cancel cancels reservation id, which must not have started to be used
// (a car that has checked in checks out instead).
func (c *Client) Cancel(ctx context.Context, id, token string) (Reservation, error) {
	var out Reservation
	err := c.do(ctx, http.MethodDelete, "/reservations/"+seg(id), c.driver(token), nil, nil, &out)
	return out, err
}

// Ticket returns the QR ticket payload of the paid reservation of spot that
// token opens: the string a gate scans.
func (c *Client) Ticket(ctx context.Context, spot, token string) (string, error) {
	var out struct {
		Ticket string `json:"ticket"`
	}
	err := c.do(ctx, http.MethodGet, "/parking/"+seg(spot)+"/ticket", c.driver(token), nil, nil, &out)
	return out.Ticket, err
}

// TicketPNG returns the ticket of the paid reservation of spot that token
// opens as a QR code PNG (GET /parking/{id}/ticket.png). size is the
// image's width and height in pixels, which the server bounds (128 to 1024);
// size ≤ 0 takes the server's default of 8 pixels a QR module. Errors are
// those of Ticket, as an *Error.
func (c *Client) TicketPNG(ctx context.Context, spot, token string, size int) ([]byte, error) {
	path := "/parking/" + seg(spot) + "/ticket.png"
	if size > 0 {
		path += "?size=" + strconv.Itoa(size)
	}
	res, b, err := c.send(ctx, http.MethodGet, path, c.driver(token), nil, http.Header{"Accept": {"image/png, application/json;q=0.9"}})
	if err != nil {
		return nil, err
	}
	// A proxy's page or a server without the route must not end up saved
	// as the driver's ticket.
	ct := res.Header.Get("Content-Type")
	if mt, _, _ := mime.ParseMediaType(ct); mt != "image/png" || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		return nil, fmt.Errorf("GET %s: the answer (HTTP %d, %q) is not a PNG image", pathOnly(path), res.StatusCode, ct)
	}
	return b, nil
}

// PublicKey returns the site's ticket verification key.
func (c *Client) PublicKey(ctx context.Context) (PublicKey, error) {
	var out PublicKey
	err := c.do(ctx, http.MethodGet, "/tickets/public-key", "", nil, nil, &out)
	return out, err
}

// Ready returns nil once the server answers /readyz with 200, else an
// *Error (503 while starting or when the database does not answer).
// Process-level tests poll it after starting centrald.
func (c *Client) Ready(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/readyz", "", nil, nil, nil)
}

// ForceStatus sets a spot's status by operator decision (free, reserved or
// taken), e.g. to release a no-show; the server records why through the
// reservation's state machine. It returns the spot afterwards.
func (c *Client) ForceStatus(ctx context.Context, spot, status string) (Parking, error) {
	var out Parking
	err := c.do(ctx, http.MethodPost, "/parking/"+seg(spot)+"/status/"+seg(status), c.admin, nil, nil, &out)
	return out, err
}

// OpenGate asks a gate to open its barrier (operators): centrald sends the
// command over MQTT and answers once the gate has.
func (c *Client) OpenGate(ctx context.Context, gateID string) error {
	return c.do(ctx, http.MethodPost, "/gates/"+seg(gateID)+"/open", c.admin, nil, nil, nil)
}

// ResyncGate asks a gate to request a fresh snapshot of the reservation
// list (operators); centrald answers once the gate has asked.
func (c *Client) ResyncGate(ctx context.Context, gateID string) error {
	return c.do(ctx, http.MethodPost, "/gates/"+seg(gateID)+"/resync", c.admin, nil, nil, nil)
}

// Push creates all items as paid operator reservations, or none of them:
// the server applies the whole list in one transaction, and an error names
// the first item ("reservation N: ...", counting from 1) it could not
// place. The answers carry each reservation's token and ticket.
func (c *Client) Push(ctx context.Context, items []PushItem) ([]Reservation, error) {
	type wireItem struct {
		SpotID        string `json:"spotId"`
		ReservedFrom  string `json:"reservedFrom"`
		ReservedUntil string `json:"reservedUntil"`
		CarID         string `json:"carId,omitempty"`
		Reference     string `json:"reference,omitempty"`
	}
	req := struct {
		Reservations []wireItem `json:"reservations"`
	}{Reservations: make([]wireItem, len(items))}
	for i, it := range items {
		req.Reservations[i] = wireItem{it.SpotID, rfc3339(it.ReservedFrom), rfc3339(it.ReservedUntil), it.CarID, it.Reference}
	}
	var out struct {
		Reservations []Reservation `json:"reservations"`
	}
	err := c.do(ctx, http.MethodPost, "/admin/reservations", c.admin, req, nil, &out)
	return out.Reservations, err
}

// Reservations lists reservations for operators, optionally of one spot
// and in the given states; limit ≤ 0 takes the server's default (1000).
func (c *Client) Reservations(ctx context.Context, spot string, states []string, limit int) ([]Reservation, error) {
	q := url.Values{}
	if spot != "" {
		q.Set("spot", spot)
	}
	if len(states) > 0 {
		q.Set("state", strings.Join(states, ","))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out []Reservation
	err := c.do(ctx, http.MethodGet, "/admin/reservations"+query(q), c.admin, nil, nil, &out)
	return out, err
}

// Changes returns change-log entries with a version above after, oldest
// first; limit ≤ 0 takes the server's default (500). A follower passes the
// last version it has seen.
func (c *Client) Changes(ctx context.Context, after int64, limit int) ([]Change, error) {
	q := url.Values{}
	if after > 0 {
		q.Set("after", strconv.FormatInt(after, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out []Change
	err := c.do(ctx, http.MethodGet, "/admin/changes"+query(q), c.admin, nil, nil, &out)
	return out, err
}

// driver picks the credential of a driver method: the explicit token, else
// the client's token, else the admin token (an operator acting on a
// reservation whose token they do not have).
func (c *Client) driver(token string) string {
	switch {
	case token != "":
		return token
	case c.token != "":
		return c.token
	}
	return c.admin
}

// do sends one request and decodes a 2xx answer into out (nil: ignore the
// body). Anything else becomes an *Error.
func (c *Client) do(ctx context.Context, method, path, bearer string, in any, hdr http.Header, out any) error {
	res, b, err := c.send(ctx, method, path, bearer, in, hdr)
	if err != nil || out == nil {
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: the answer (HTTP %d) is not the expected JSON: %w", method, pathOnly(path), res.StatusCode, err)
	}
	return nil
}

// send sends one request with in as its JSON body (nil: none) and returns
// a 2xx answer with its body, read in full. Anything else becomes an
// *Error. hdr may replace the default Accept header.
func (c *Client) send(ctx context.Context, method, path, bearer string, in any, hdr http.Header) (*http.Response, []byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, nil, fmt.Errorf("encoding request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", c.agent)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return nil, nil, err // *url.Error names method and URL; the URL holds no secret
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxResponse))
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: reading the answer: %w", method, pathOnly(path), err)
	}
	if c.hook != nil {
		c.hook(res, b)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return nil, nil, decodeError(res.StatusCode, b)
	}
	return res, b, nil
}

// decodeError turns a non-2xx answer into an *Error, trusting the body
// only if it is the API's error shape.
func decodeError(status int, b []byte) *Error {
	var eb apijson.Error
	if json.Unmarshal(b, &eb) == nil && (eb.Error.Code != "" || eb.Error.Message != "") {
		msg := eb.Error.Message
		if msg == "" {
			msg = http.StatusText(status)
		}
		return &Error{Status: status, Code: eb.Error.Code, Message: msg}
	}
	return &Error{Status: status, Message: snippet(status, b)}
}

// snippet words a body that is not the API's error shape: its first line,
// shortened, if it is printable text; else the status text.
func snippet(status int, b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	printable := s != ""
	for _, r := range s {
		if r < ' ' && r != '\t' || r == '\uFFFD' {
			printable = false
			break
		}
	}
	text := http.StatusText(status)
	if text == "" {
		text = "unexpected answer"
	}
	if !printable {
		return text
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return text + ": " + s
}

// seg escapes one path segment, so an id typed by a person cannot change
// which endpoint is called.
func seg(s string) string {
	if s == "." || s == ".." {
		// PathEscape leaves dots alone, and a dot segment would be
		// resolved away by the server's path cleaning.
		return strings.ReplaceAll(s, ".", "%2E")
	}
	return url.PathEscape(s)
}

func query(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

func pathOnly(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		return p[:i]
	}
	return p
}

// rfc3339 formats t the way the API wants times: RFC 3339 in UTC.
func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
