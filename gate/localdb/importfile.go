package localdb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/parkgate/parkgate/plate"
)

// Import is a cache snapshot read from a file by ReadImport, for `gated
// import FILE` until the sync with central fills the cache.
type Import struct {
	// Version is the cache version the snapshot stands for.
	Version int64
	// Entries are the reservations, in file order.
	Entries []Entry
}

// MaxImportSize bounds an import file. 64 MiB holds several hundred
// thousand reservations, far beyond a site; the bound keeps a wrong file
// (a disk image, a log) from eating the Pi's memory.
const MaxImportSize = 64 << 20

// ReadImport reads a snapshot in the import format:
//
//	{"version": 42, "reservations": [
//	  {"id": "r1", "spotId": "7", "reservedFrom": "2026-05-01T08:00:00Z",
//	   "reservedUntil": "2026-05-01T10:00:00Z", "carId": "K-LM 42", "state": "paid"}
//	]}
//
// Each reservation uses the JSON names centrald uses: the id as "id" (the
// store's and change log's form) or "reservationId" (the API's), the state
// as "state" or "status"; times are RFC 3339. Other fields, such as those a
// centrald API answer carries, are ignored, so such an answer can be
// imported as it is. Every problem is an error that names the entry (its
// position, from 1, and its id). Apply the result with ApplySnapshot.
func ReadImport(r io.Reader) (Import, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxImportSize+1))
	if err != nil {
		return Import{}, fmt.Errorf("import: %w", err)
	}
	if len(data) > MaxImportSize {
		return Import{}, fmt.Errorf("import: larger than %d MiB", MaxImportSize>>20)
	}
	var top struct {
		Version      *int64             `json:"version"`
		Reservations *[]json.RawMessage `json:"reservations"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&top); err != nil {
		return Import{}, fmt.Errorf("import: not a JSON object of the import format: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Import{}, errors.New("import: unexpected data after the JSON object")
	}
	switch {
	case top.Version == nil:
		return Import{}, errors.New(`import: "version" is missing (the cache version of this snapshot, a number >= 0)`)
	case *top.Version < 0:
		return Import{}, fmt.Errorf(`import: "version" %d is negative`, *top.Version)
	case top.Reservations == nil:
		return Import{}, errors.New(`import: "reservations" is missing (an array, possibly empty)`)
	}
	out := Import{Version: *top.Version, Entries: make([]Entry, 0, len(*top.Reservations))}
	seen := make(map[string]int, len(*top.Reservations))
	for i, raw := range *top.Reservations {
		e, err := importEntry(raw)
		if err != nil {
			if e.ReservationID != "" {
				return Import{}, fmt.Errorf("import: reservation %d (%q): %w", i+1, e.ReservationID, err)
			}
			return Import{}, fmt.Errorf("import: reservation %d: %w", i+1, err)
		}
		if j, dup := seen[e.ReservationID]; dup {
			return Import{}, fmt.Errorf("import: reservation %d (%q): the same id as reservation %d", i+1, e.ReservationID, j)
		}
		seen[e.ReservationID] = i + 1
		out.Entries = append(out.Entries, e)
	}
	return out, nil
}

// importEntry decodes and checks one reservation. It returns the id it
// found even with an error, so that the message can name the entry.
func importEntry(raw json.RawMessage) (Entry, error) {
	var j struct {
		ID            *string    `json:"id"`
		ReservationID *string    `json:"reservationId"`
		SpotID        string     `json:"spotId"`
		From          *time.Time `json:"reservedFrom"`
		Until         *time.Time `json:"reservedUntil"`
		CarID         string     `json:"carId"`
		State         *string    `json:"state"`
		Status        *string    `json:"status"`
	}
	// Decode the id first on its own, so that a type error elsewhere in
	// the entry can still name it.
	var ids struct {
		ID            any `json:"id"`
		ReservationID any `json:"reservationId"`
	}
	var e Entry
	if err := json.Unmarshal(raw, &ids); err == nil {
		if s, ok := ids.ID.(string); ok {
			e.ReservationID = s
		} else if s, ok := ids.ReservationID.(string); ok {
			e.ReservationID = s
		}
	}
	if err := json.Unmarshal(raw, &j); err != nil {
		return e, fmt.Errorf("not a reservation object: %w", err)
	}
	switch {
	case j.ID != nil && j.ReservationID != nil && *j.ID != *j.ReservationID:
		return e, fmt.Errorf(`"id" %q and "reservationId" %q differ`, *j.ID, *j.ReservationID)
	case j.ID != nil:
		e.ReservationID = *j.ID
	case j.ReservationID != nil:
		e.ReservationID = *j.ReservationID
	default:
		return e, errors.New(`"id" (or "reservationId") is missing`)
	}
	switch {
	case j.State != nil && j.Status != nil && *j.State != *j.Status:
		return e, fmt.Errorf(`"state" %q and "status" %q differ`, *j.State, *j.Status)
	case j.State != nil:
		e.State = State(*j.State)
	case j.Status != nil:
		e.State = State(*j.Status)
	default:
		return e, errors.New(`"state" (or "status") is missing`)
	}
	e.SpotID, e.CarID = j.SpotID, j.CarID
	if j.From != nil {
		e.From = j.From.UTC()
	}
	if j.Until != nil {
		e.Until = j.Until.UTC()
	}
	if err := e.Validate(); err != nil {
		return e, err
	}
	e.Plate = plate.Normalize(e.CarID)
	return e, nil
}
