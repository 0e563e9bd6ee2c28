package console

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parkgate/parkgate/central/api"
	"github.com/parkgate/parkgate/central/apijson"
	"github.com/parkgate/parkgate/central/booking"
	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
)

// State is what GET /console/api/state answers: everything the page
// draws, as of version of the change log.
type State struct {
	Version    int64               `json:"version"`
	Now        time.Time           `json:"now"`
	Counts     Counts              `json:"counts"`
	Spots      []apijson.Parking   `json:"spots"`
	Gates      []apijson.Gate      `json:"gates"`
	Exceptions []apijson.GateEvent `json:"exceptions"`
	// PaymentExceptions are disputes and unpaid overstay fees, open and
	// resolved, newest first.
	PaymentExceptions []apijson.PaymentException `json:"paymentExceptions"`
	Changes           []store.Change             `json:"changes"`    // the latest, oldest first
	GateEvents        []apijson.GateEvent        `json:"gateEvents"` // the latest, newest first
	Refunds           []RefundEvent              `json:"refunds"`    // the latest recorded or settled first
	Operator          string                     `json:"operator,omitempty"`
}

// Counts are the numbers at the top of the page.
type Counts struct {
	Free         int `json:"free"`
	Reserved     int `json:"reserved"`
	Taken        int `json:"taken"`
	NoShowsToday int `json:"noShowsToday"`
}

// feedLength is how many changes and gate events the page starts with.
const feedLength = 50

func (c *Console) state(w http.ResponseWriter, r *http.Request) {
	who, ok := c.authorize(w, r)
	if !ok {
		return
	}
	ctx, st := r.Context(), c.svc.Store()
	out := State{Now: c.clk.Now().UTC(), Operator: who.name, Spots: []apijson.Parking{}, Gates: []apijson.Gate{},
		Exceptions: []apijson.GateEvent{}, PaymentExceptions: []apijson.PaymentException{}, Changes: []store.Change{},
		GateEvents: []apijson.GateEvent{}, Refunds: []RefundEvent{}}
	var err error
	// The version first: the page then replays the stream from it, so a
	// change made while the rest is read is applied again, never lost.
	if out.Version, err = st.Version(ctx); err != nil {
		api.Fail(c.log, w, r, err)
		return
	}
	vs, err := c.svc.Spots(ctx)
	if err != nil {
		api.Fail(c.log, w, r, err)
		return
	}
	for _, v := range vs {
		out.Spots = append(out.Spots, api.OperatorSpotJSON(v))
		switch v.Status {
		case booking.StatusFree:
			out.Counts.Free++
		case booking.StatusReserved:
			out.Counts.Reserved++
		case booking.StatusTaken:
			out.Counts.Taken++
		}
	}
	midnight := out.Now.Truncate(24 * time.Hour)
	ns, err := st.List(ctx, store.Filter{States: []reservation.State{reservation.NoShow}, UntilAfter: midnight.Add(-7 * 24 * time.Hour)})
	if err != nil {
		api.Fail(c.log, w, r, err)
		return
	}
	for _, x := range ns {
		if !x.EndedAt.Before(midnight) {
			out.Counts.NoShowsToday++
		}
	}
	gs, err := st.Gates(ctx)
	if err != nil {
		api.Fail(c.log, w, r, err)
		return
	}
	for _, g := range gs {
		out.Gates = append(out.Gates, api.GateJSON(g))
	}
	ex, err := st.GateEvents(ctx, store.EventFilter{Outcome: store.EventException, Limit: 200})
	if err != nil {
		api.Fail(c.log, w, r, err)
		return
	}
	for _, e := range ex {
		out.Exceptions = append(out.Exceptions, api.GateEventJSON(e))
	}
	pex, err := st.PaymentExceptions(ctx, 200)
	if err != nil {
		api.Fail(c.log, w, r, err)
		return
	}
	for _, e := range pex {
		out.PaymentExceptions = append(out.PaymentExceptions, api.PaymentExceptionJSON(e))
	}
	cs, err := st.Changes(ctx, max(0, out.Version-feedLength), feedLength)
	if err != nil {
		api.Fail(c.log, w, r, err)
		return
	}
	out.Changes = append(out.Changes, cs...)
	es, err := st.GateEvents(ctx, store.EventFilter{Limit: feedLength})
	if err != nil {
		api.Fail(c.log, w, r, err)
		return
	}
	for _, e := range es {
		out.GateEvents = append(out.GateEvents, api.GateEventJSON(e))
	}
	rs, err := st.LatestRefunds(ctx, feedLength)
	if err != nil {
		api.Fail(c.log, w, r, err)
		return
	}
	for _, rf := range rs {
		out.Refunds = append(out.Refunds, refundEvent(rf))
	}
	api.WriteJSON(w, http.StatusOK, out)
}

// ReasonRequest is the body of the console's actions: why the operator
// acts, which the change log keeps.
type ReasonRequest struct {
	Reason string `json:"reason"`
}

// maxReason bounds a reason or note.
const maxReason = 500

// reason reads an action's body and the caller it is recorded under.
func (c *Console) reason(w http.ResponseWriter, r *http.Request) (booking.Caller, bool) {
	who, ok := c.authorize(w, r)
	if !ok {
		return booking.Caller{}, false
	}
	b, err := api.ReadBody(w, r)
	if err != nil {
		api.Fail(c.log, w, r, err)
		return booking.Caller{}, false
	}
	var req ReasonRequest
	if err := api.DecodeStrict(b, &req); err != nil {
		api.Fail(c.log, w, r, err)
		return booking.Caller{}, false
	}
	req.Reason = strings.TrimSpace(req.Reason)
	switch {
	case req.Reason == "":
		api.WriteError(w, http.StatusBadRequest, "missing_reason", "say why: reason is required and is recorded with your name")
		return booking.Caller{}, false
	case len(req.Reason) > maxReason:
		api.WriteError(w, http.StatusBadRequest, "reason_too_long", fmt.Sprintf("reason is longer than %d bytes", maxReason))
		return booking.Caller{}, false
	}
	return booking.Caller{Operator: true, Name: who.name, Reason: req.Reason}, true
}

func (c *Console) openGate(w http.ResponseWriter, r *http.Request) {
	by, ok := c.reason(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	if c.cfg.Gates == nil {
		api.WriteError(w, http.StatusServiceUnavailable, "no_gates", "centrald has no MQTT broker configured, so it cannot reach gates")
		return
	}
	if _, err := c.svc.Store().Gate(r.Context(), id); errors.Is(err, store.ErrNotFound) {
		api.WriteError(w, http.StatusNotFound, "unknown_gate", "there is no gate "+strconv.Quote(id))
		return
	} else if err != nil {
		api.Fail(c.log, w, r, err)
		return
	}
	opened, refusal, err := c.cfg.Gates.OpenGate(r.Context(), id, "operator "+by.Name+": "+by.Reason)
	switch {
	case err != nil:
		api.WriteError(w, http.StatusServiceUnavailable, "gate_unreachable", "the gate did not answer: "+err.Error())
		return
	case !opened:
		api.WriteError(w, http.StatusConflict, "gate_refused", "the gate refused to open: "+refusal)
		return
	}
	if err := c.svc.LogGateOpened(r.Context(), id, by); err != nil {
		api.Fail(c.log, w, r, err)
		return
	}
	c.log.Info("console: gate opened", "gate", id, "operator", by.Name)
	api.WriteJSON(w, http.StatusOK, map[string]any{"gateId": id, "opened": true})
}

func (c *Console) releaseSpot(w http.ResponseWriter, r *http.Request) {
	by, ok := c.reason(w, r)
	if !ok {
		return
	}
	v, err := c.svc.ForceBy(r.Context(), r.PathValue("id"), booking.StatusFree, by)
	if err != nil {
		api.Fail(c.log, w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, api.OperatorSpotJSON(v))
}

func (c *Console) cancel(w http.ResponseWriter, r *http.Request) {
	by, ok := c.reason(w, r)
	if !ok {
		return
	}
	res, err := c.svc.Cancel(r.Context(), r.PathValue("id"), by)
	if err != nil {
		api.Fail(c.log, w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, api.ReservationJSON(res, c.cfg.PaymentHold))
}

func (c *Console) resolve(w http.ResponseWriter, r *http.Request) {
	by, ok := c.reason(w, r)
	if !ok {
		return
	}
	e, err := c.svc.ResolveException(r.Context(), r.PathValue("id"), by)
	if err != nil {
		api.Fail(c.log, w, r, err)
		return
	}
	api.WriteJSON(w, http.StatusOK, api.GateEventJSON(e))
}

// resolvePayment resolves a payment exception (a dispute, an unpaid
// overstay fee) with a note, recording who did.
func (c *Console) resolvePayment(w http.ResponseWriter, r *http.Request) {
	by, ok := c.reason(w, r)
	if !ok {
		return
	}
	e, err := c.svc.ResolvePaymentException(r.Context(), r.PathValue("id"), by)
	if err != nil {
		api.Fail(c.log, w, r, err)
		return
	}
	c.log.Info("console: payment exception resolved", "exception", e.ID, "by", e.ResolvedBy)
	api.WriteJSON(w, http.StatusOK, api.PaymentExceptionJSON(e))
}

// CSVRequest is the body of POST /console/api/csv/preview and
// /console/api/csv/push: the CSV's lines (a JSON text field may hold no
// line break) and, to push, the reason.
type CSVRequest struct {
	Lines  []string `json:"lines"`
	Reason string   `json:"reason"`
}

// CSVRow is one line of a pushed CSV as the preview shows it.
type CSVRow struct {
	Line          int    `json:"line"`
	SpotID        string `json:"spotId"`
	ReservedFrom  string `json:"reservedFrom"`
	ReservedUntil string `json:"reservedUntil"`
	CarID         string `json:"carId,omitempty"`
	Reference     string `json:"reference,omitempty"`
	Error         string `json:"error,omitempty"`
}

// CSVAnswer is the answer of POST /console/api/csv/preview and push.
type CSVAnswer struct {
	Rows   []CSVRow `json:"rows"`
	OK     bool     `json:"ok"`
	Pushed int      `json:"pushed"`
	Error  string   `json:"error,omitempty"`
}

// csvColumns are the columns of a reservations CSV, in this order, named
// in its first line.
var csvColumns = []string{"spotId", "reservedFrom", "reservedUntil", "carId", "reference"}

// maxCSVRows bounds one push, as POST /admin/reservations does.
const maxCSVRows = 1000

// parseCSV reads a reservations CSV into rows (each with its error, if
// any) and the items to push.
func parseCSV(text string, spot func(string) bool) ([]CSVRow, []booking.PushItem, error) {
	rd := csv.NewReader(strings.NewReader(text))
	rd.FieldsPerRecord = -1
	rd.TrimLeadingSpace = true
	head, err := rd.Read()
	if err == io.EOF {
		return nil, nil, errors.New("the CSV is empty; its first line names the columns: " + strings.Join(csvColumns, ","))
	}
	if err != nil {
		return nil, nil, fmt.Errorf("line 1: %v", err)
	}
	for i := range head {
		head[i] = strings.TrimSpace(strings.TrimPrefix(head[i], "\ufeff"))
	}
	if len(head) < 3 || len(head) > len(csvColumns) || !slices.Equal(head, csvColumns[:len(head)]) {
		return nil, nil, errors.New("line 1 must name the columns " + strings.Join(csvColumns, ",") + " (carId and reference may be left out)")
	}
	var (
		rows  []CSVRow
		items []booking.PushItem
	)
	for {
		rec, err := rd.Read()
		if err == io.EOF {
			break
		}
		line, _ := rd.FieldPos(0)
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				line = pe.Line
			}
			rows = append(rows, CSVRow{Line: line, Error: "not valid CSV: " + err.Error()})
			continue
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // a blank line
		}
		row := CSVRow{Line: line}
		get := func(i int) string {
			if i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		row.SpotID, row.ReservedFrom, row.ReservedUntil, row.CarID, row.Reference = get(0), get(1), get(2), get(3), get(4)
		item := booking.PushItem{SpotID: row.SpotID, CarID: row.CarID, Reference: row.Reference}
		var errs []string
		if len(rec) != len(head) {
			errs = append(errs, fmt.Sprintf("has %d fields, want %d", len(rec), len(head)))
		}
		if row.SpotID == "" {
			errs = append(errs, "spotId is empty")
		} else if !spot(row.SpotID) {
			errs = append(errs, "there is no spot "+strconv.Quote(row.SpotID))
		}
		var e1, e2 error
		item.Window.From, e1 = time.Parse(time.RFC3339, row.ReservedFrom)
		item.Window.Until, e2 = time.Parse(time.RFC3339, row.ReservedUntil)
		if e1 != nil {
			errs = append(errs, "reservedFrom is not a time like 2026-05-01T08:00:00Z")
		}
		if e2 != nil {
			errs = append(errs, "reservedUntil is not a time like 2026-05-01T10:00:00Z")
		}
		if e1 == nil && e2 == nil && !item.Window.Until.After(item.Window.From) {
			errs = append(errs, "reservedUntil is not after reservedFrom")
		}
		if row.CarID != "" {
			if _, err := booking.NormaliseCarID(row.CarID); err != nil {
				errs = append(errs, "carId: "+err.Error())
			}
		}
		row.Error = strings.Join(errs, "; ")
		rows = append(rows, row)
		items = append(items, item)
		if len(rows) > maxCSVRows {
			return nil, nil, fmt.Errorf("push at most %d reservations at once", maxCSVRows)
		}
	}
	if len(rows) == 0 {
		return nil, nil, errors.New("the CSV lists no reservations")
	}
	return rows, items, nil
}

// itemIndex finds "reservation N:" in a push error: the item it names.
var itemIndex = regexp.MustCompile(`^reservation (\d+): (.*)$`)

func (c *Console) csvPreview(w http.ResponseWriter, r *http.Request) { c.csv(w, r, true) }
func (c *Console) csvPush(w http.ResponseWriter, r *http.Request)    { c.csv(w, r, false) }

// csv previews or pushes a reservations CSV: all lines or none.
func (c *Console) csv(w http.ResponseWriter, r *http.Request, preview bool) {
	who, ok := c.authorize(w, r)
	if !ok {
		return
	}
	b, err := api.ReadBody(w, r)
	if err != nil {
		api.Fail(c.log, w, r, err)
		return
	}
	var req CSVRequest
	if err := api.DecodeStrict(b, &req); err != nil {
		api.Fail(c.log, w, r, err)
		return
	}
	req.Reason = strings.TrimSpace(req.Reason)
	if !preview && req.Reason == "" {
		api.WriteError(w, http.StatusBadRequest, "missing_reason", "say why: reason is required and is recorded with your name")
		return
	}
	if len(req.Reason) > maxReason {
		api.WriteError(w, http.StatusBadRequest, "reason_too_long", fmt.Sprintf("reason is longer than %d bytes", maxReason))
		return
	}
	spots, err := c.svc.Store().Spots(r.Context())
	if err != nil {
		api.Fail(c.log, w, r, err)
		return
	}
	known := map[string]bool{}
	for _, s := range spots {
		known[s] = true
	}
	rows, items, err := parseCSV(strings.Join(req.Lines, "\n"), func(id string) bool { return known[id] })
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, "invalid_csv", err.Error())
		return
	}
	out := CSVAnswer{Rows: rows, OK: true}
	for _, row := range rows {
		if row.Error != "" {
			out.OK = false
		}
	}
	if !out.OK {
		out.Error = "some lines are wrong: nothing was pushed; fix them and try again"
		api.WriteJSON(w, http.StatusUnprocessableEntity, out)
		return
	}
	if preview {
		api.WriteJSON(w, http.StatusOK, out)
		return
	}
	res, err := c.svc.PushBy(r.Context(), items, booking.Caller{Operator: true, Name: who.name, Reason: req.Reason})
	if err != nil {
		be, isBooking := booking.AsError(err)
		if !isBooking {
			api.Fail(c.log, w, r, err)
			return
		}
		out.OK = false
		out.Error = "nothing was pushed: " + be.Message
		if m := itemIndex.FindStringSubmatch(be.Message); m != nil {
			if i, _ := strconv.Atoi(m[1]); i >= 1 && i <= len(out.Rows) {
				out.Rows[i-1].Error = m[2]
				out.Error = fmt.Sprintf("nothing was pushed: line %d: %s", out.Rows[i-1].Line, m[2])
			}
		}
		api.WriteJSON(w, http.StatusUnprocessableEntity, out)
		return
	}
	out.Pushed = len(res)
	c.log.Info("console: reservations pushed", "count", len(res), "operator", who.name)
	api.WriteJSON(w, http.StatusCreated, out)
}

// Found is one reservation a lookup found, with its money.
type Found struct {
	Reservation apijson.Reservation      `json:"reservation"`
	Attempts    []apijson.PaymentAttempt `json:"attempts"`
	Refunds     []apijson.Refund         `json:"refunds"`
}

// maxFound bounds a lookup's answer.
const maxFound = 50

// lookup finds reservations by id or by plate (newest first), with their
// payment attempts and refunds.
func (c *Console) lookup(w http.ResponseWriter, r *http.Request) {
	if _, ok := c.authorize(w, r); !ok {
		return
	}
	ctx, st := r.Context(), c.svc.Store()
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if q == "" || len(q) > 100 {
		api.WriteError(w, http.StatusBadRequest, "invalid_query", "q must be a reservation id or a plate")
		return
	}
	var found []reservation.Reservation
	if res, err := st.Get(ctx, q); err == nil {
		found = append(found, res)
	} else if !errors.Is(err, store.ErrNotFound) {
		api.Fail(c.log, w, r, err)
		return
	}
	if plate, err := booking.NormaliseCarID(q); err == nil && plate != "" && len(found) == 0 {
		// By the plate's index: reading every reservation to compare
		// plates took seconds with years of history.
		all, err := st.List(ctx, store.Filter{CarID: plate})
		if err != nil {
			api.Fail(c.log, w, r, err)
			return
		}
		found = append(found, all...)
		slices.SortFunc(found, func(a, b reservation.Reservation) int { return b.From.Compare(a.From) })
		found = found[:min(len(found), maxFound)]
	}
	out := []Found{}
	for _, x := range found {
		f := Found{Reservation: api.ReservationJSON(x, c.cfg.PaymentHold), Attempts: []apijson.PaymentAttempt{}, Refunds: []apijson.Refund{}}
		atts, err := st.PaymentAttempts(ctx, x.ID)
		if err != nil {
			api.Fail(c.log, w, r, err)
			return
		}
		for _, a := range atts {
			f.Attempts = append(f.Attempts, apijson.PaymentAttempt{Number: a.Number, Outcome: a.Outcome, Amount: a.Amount,
				Currency: a.Currency, ProviderRef: a.ProviderRef, Message: a.Message, StartedAt: a.StartedAt, FinishedAt: a.FinishedAt})
		}
		refs, err := st.Refunds(ctx, x.ID)
		if err != nil {
			api.Fail(c.log, w, r, err)
			return
		}
		for _, rf := range refs {
			f.Refunds = append(f.Refunds, api.RefundJSON(rf))
		}
		out = append(out, f)
	}
	api.WriteJSON(w, http.StatusOK, out)
}
