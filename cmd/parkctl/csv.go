package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/parkgate/parkgate/central/client"
)

// pushRow is one reservation of a push file and the line it came from, so
// that an error about it can name the line the operator has to edit.
type pushRow struct {
	line int
	item client.PushItem
}

// csvProblem is one bad row.
type csvProblem struct {
	line int
	msg  string
}

// csvErrors lists every bad row of a push file: reporting them all at once
// saves a round of fix-and-retry per row.
type csvErrors struct{ problems []csvProblem }

func (e *csvErrors) Error() string {
	return fmt.Sprintf("%d bad row(s), the first on line %d: %s", len(e.problems), e.problems[0].line, e.problems[0].msg)
}

// pushColumns maps the header names a push file may use to the fields:
// the short names of the README, and the API's names for files exported
// from elsewhere.
var pushColumns = map[string]string{
	"spot": "spot", "spotid": "spot",
	"from": "from", "reservedfrom": "from",
	"until": "until", "reserveduntil": "until",
	"car": "car", "carid": "car",
	"reference": "reference",
}

// Limits the server applies too; checked here so that a bad row is
// reported by its line, not by its index in the request.
const (
	maxSpotID    = 32
	maxCarID     = 16
	maxReference = 200
)

// readPushCSV reads and checks a push file: a header row naming the
// columns (spot, from and until required, car and reference optional, in
// any order), then one reservation per row. Blank lines and lines starting
// with '#' are skipped. It checks every row before returning, and returns
// a *csvErrors listing the bad ones.
func readPushCSV(r io.Reader) ([]pushRow, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1 // counted below, so the message can say more
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, errors.New("the file is empty; it needs a header row: spot,from,until,car,reference")
	}
	if err != nil {
		return nil, csvErr(err)
	}
	hline, _ := cr.FieldPos(0)
	col := map[string]int{}
	var bad csvErrors
	for i, h := range header {
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff") // spreadsheets write a byte order mark
		}
		name, ok := pushColumns[strings.ToLower(strings.TrimSpace(h))]
		switch {
		case !ok:
			bad.problems = append(bad.problems, csvProblem{hline, fmt.Sprintf("unknown column %q; the columns are spot, from, until, car, reference", h)})
		case col[name] != 0:
			bad.problems = append(bad.problems, csvProblem{hline, fmt.Sprintf("column %q appears twice", name)})
		default:
			col[name] = i + 1 // 0 means absent
		}
	}
	for _, need := range []string{"spot", "from", "until"} {
		if col[need] == 0 {
			bad.problems = append(bad.problems, csvProblem{hline, fmt.Sprintf("the header has no %q column (want spot,from,until,car,reference)", need)})
		}
	}
	if len(bad.problems) > 0 {
		return nil, &bad
	}

	var rows []pushRow
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			// A quoting error leaves the reader unsure where rows begin:
			// stop, with what was found so far.
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				bad.problems = append(bad.problems, csvProblem{pe.Line, pe.Err.Error()})
				return nil, &bad
			}
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(header) {
			bad.problems = append(bad.problems, csvProblem{line, fmt.Sprintf("%d field(s), but the header has %d", len(rec), len(header))})
			continue
		}
		get := func(name string) string {
			if i := col[name]; i > 0 {
				return strings.TrimSpace(rec[i-1])
			}
			return ""
		}
		it, msgs := checkPushRow(get("spot"), get("from"), get("until"), get("car"), get("reference"))
		for _, m := range msgs {
			bad.problems = append(bad.problems, csvProblem{line, m})
		}
		rows = append(rows, pushRow{line, it})
	}
	if len(bad.problems) > 0 {
		return nil, &bad
	}
	if len(rows) == 0 {
		return nil, errors.New("no reservations after the header row")
	}
	return rows, nil
}

// checkPushRow validates one row and says everything wrong with it.
func checkPushRow(spot, from, until, car, ref string) (client.PushItem, []string) {
	var msgs []string
	it := client.PushItem{SpotID: spot, CarID: car, Reference: ref}
	switch {
	case spot == "":
		msgs = append(msgs, "spot is empty")
	case len(spot) > maxSpotID || strings.IndexFunc(spot, notSpotRune) >= 0:
		msgs = append(msgs, fmt.Sprintf("spot %q is not a spot id (letters, digits, - and _, at most %d)", spot, maxSpotID))
	}
	var err error
	okFrom, okUntil := false, false
	if from == "" {
		msgs = append(msgs, "from is empty")
	} else if it.ReservedFrom, err = time.Parse(time.RFC3339Nano, from); err != nil {
		msgs = append(msgs, fmt.Sprintf("from %q is not an RFC 3339 time such as 2026-11-26T14:00:00Z", from))
	} else {
		okFrom = true
	}
	if until == "" {
		msgs = append(msgs, "until is empty")
	} else if it.ReservedUntil, err = time.Parse(time.RFC3339Nano, until); err != nil {
		msgs = append(msgs, fmt.Sprintf("until %q is not an RFC 3339 time such as 2026-11-26T16:00:00Z", until))
	} else {
		okUntil = true
	}
	if okFrom && okUntil && !it.ReservedUntil.After(it.ReservedFrom) {
		msgs = append(msgs, "until must be after from")
	}
	if len(car) > maxCarID || strings.IndexFunc(strings.ToUpper(car), notCarRune) >= 0 {
		msgs = append(msgs, fmt.Sprintf("car %q is not a licence plate (letters A-Z, digits, spaces and dashes, at most %d)", car, maxCarID))
	}
	if len(ref) > maxReference {
		msgs = append(msgs, fmt.Sprintf("reference is longer than %d characters", maxReference))
	}
	return it, msgs
}

func notSpotRune(c rune) bool {
	return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_')
}

func notCarRune(c rune) bool {
	return !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == ' ')
}

// csvErr words a CSV syntax error of the header row.
func csvErr(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &csvErrors{[]csvProblem{{pe.Line, pe.Err.Error()}}}
	}
	return err
}
