package localdb

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestReadImport(t *testing.T) {
	const in = `{
	  "version": 42,
	  "reservations": [
	    {"id": "r1", "spotId": "7", "reservedFrom": "2026-05-01T08:00:00Z",
	     "reservedUntil": "2026-05-01T10:00:00Z", "carId": "k-lm 42", "state": "paid"},
	    {"reservationId": "r2", "spotId": "8", "reservedFrom": "2026-05-01T10:00:00+02:00",
	     "reservedUntil": "2026-05-01T12:00:00+02:00", "status": "cancelled",
	     "amount": 500, "currency": "EUR", "reservationCreatedAt": "2026-04-30T10:00:00Z"},
	    {"id": "r3", "reservationId": "r3", "spotId": "9", "reservedFrom": "2026-05-01T08:00:00Z",
	     "reservedUntil": "2026-05-01T09:00:00Z", "state": "taken", "status": "taken"}
	  ]
	}`
	imp, err := ReadImport(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if imp.Version != 42 || len(imp.Entries) != 3 {
		t.Fatalf("got %+v", imp)
	}
	want := Entry{ReservationID: "r1", SpotID: "7", From: t0, Until: t0.Add(2 * time.Hour), CarID: "k-lm 42",
		Plate: "KLM42", State: StatePaid}
	if imp.Entries[0] != want {
		t.Errorf("entry 1 = %+v, want %+v", imp.Entries[0], want)
	}
	if e := imp.Entries[1]; e.ReservationID != "r2" || e.State != StateCancelled || !e.From.Equal(t0) || e.From.Location() != time.UTC {
		t.Errorf("entry 2 = %+v", e)
	}

	ctx := context.Background()
	db, _ := openTemp(t)
	if err := db.ApplySnapshot(ctx, imp.Version, imp.Entries); err != nil {
		t.Fatal(err)
	}
	mustVersion(t, db, 42)
	if e := mustLookup(t, db, "r2"); e.State != StateCancelled {
		t.Errorf("imported r2: %+v", e)
	}
}

func TestReadImportErrorsNameTheEntry(t *testing.T) {
	const ok = `"spotId": "7", "reservedFrom": "2026-05-01T08:00:00Z", "reservedUntil": "2026-05-01T10:00:00Z", "state": "paid"`
	for name, c := range map[string]struct{ in, want string }{
		"not json":        {`hello`, "not a JSON object"},
		"array":           {`[]`, "not a JSON object"},
		"trailing":        {`{"version": 1, "reservations": []} {}`, "after the JSON object"},
		"no version":      {`{"reservations": []}`, `"version" is missing`},
		"neg version":     {`{"version": -1, "reservations": []}`, "negative"},
		"no reservations": {`{"version": 1}`, `"reservations" is missing`},
		"no id":           {`{"version": 1, "reservations": [{` + ok + `}]}`, `reservation 1: "id"`},
		"ids differ":      {`{"version": 1, "reservations": [{"id": "a", "reservationId": "b", ` + ok + `}]}`, `reservation 1 ("a"): "id" "a" and "reservationId" "b" differ`},
		"no state":        {`{"version": 1, "reservations": [{"id": "a", "spotId": "7", "reservedFrom": "2026-05-01T08:00:00Z", "reservedUntil": "2026-05-01T10:00:00Z"}]}`, `reservation 1 ("a"): "state"`},
		"states differ":   {`{"version": 1, "reservations": [{"id": "a", ` + ok + `, "status": "taken"}]}`, `"state" "paid" and "status" "taken" differ`},
		"bad state":       {`{"version": 1, "reservations": [{"id": "a", "spotId": "7", "reservedFrom": "2026-05-01T08:00:00Z", "reservedUntil": "2026-05-01T10:00:00Z", "state": "free"}]}`, `reservation 1 ("a"): state "free"`},
		"no spot":         {`{"version": 1, "reservations": [{"id": "a", "reservedFrom": "2026-05-01T08:00:00Z", "reservedUntil": "2026-05-01T10:00:00Z", "state": "paid"}]}`, `reservation 1 ("a"): spot id is empty`},
		"bad time":        {`{"version": 1, "reservations": [{"id": "a", "spotId": "7", "reservedFrom": "tomorrow", "reservedUntil": "2026-05-01T10:00:00Z", "state": "paid"}]}`, `reservation 1 ("a"): not a reservation object`},
		"no until":        {`{"version": 1, "reservations": [{"id": "a", "spotId": "7", "reservedFrom": "2026-05-01T08:00:00Z", "state": "paid"}]}`, `reservedUntil is missing`},
		"inverted":        {`{"version": 1, "reservations": [{"id": "a", "spotId": "7", "reservedFrom": "2026-05-01T10:00:00Z", "reservedUntil": "2026-05-01T08:00:00Z", "state": "paid"}]}`, `not after reservedFrom`},
		"duplicate": {`{"version": 1, "reservations": [{"id": "a", ` + ok + `}, {"id": "b", ` + ok + `}, {"id": "a", ` + ok + `}]}`,
			`reservation 3 ("a"): the same id as reservation 1`},
		"second bad": {`{"version": 1, "reservations": [{"id": "a", ` + ok + `}, {"id": "b", "spotId": 7}]}`, `reservation 2 ("b")`},
	} {
		_, err := ReadImport(strings.NewReader(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to contain %q", name, err, c.want)
		}
	}
}
