package sqlitestore

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
)

// plan returns SQLite's EXPLAIN QUERY PLAN of q, one line a step.
func plan(t *testing.T, s *Store, q string, args ...any) []string {
	t.Helper()
	rows, err := s.db.Query(context.Background(), `EXPLAIN QUERY PLAN `+q, args...)
	if err != nil {
		t.Fatalf("EXPLAIN QUERY PLAN %s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var (
			id, parent, unused int
			detail             string
		)
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		out = append(out, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// walksInOrder fails the test unless the plan reads its rows through
// indexes in the order asked for: no sort of the rows found (a sort of
// the tail of the order within one spot, sortsWithin, excepted) and no
// scan of a table.
func walksInOrder(t *testing.T, what string, steps []string, sortsWithin bool) {
	t.Helper()
	for _, st := range steps {
		switch {
		case strings.HasPrefix(st, "USE TEMP B-TREE FOR ORDER BY"):
			t.Errorf("%s sorts every row it finds: %q", what, steps)
		case strings.HasPrefix(st, "USE TEMP B-TREE") && !sortsWithin:
			t.Errorf("%s sorts part of the order: %q", what, steps)
		case strings.HasPrefix(st, "SCAN") && !strings.Contains(st, "INDEX"):
			t.Errorf("%s scans a table: %q", what, steps)
		}
	}
}

// TestOperatorListsUseIndexes: the operator's lists read a page through
// indexes in the list's order and stop at its limit, rather than sort
// every matching row of the years of history (GET /admin/reservations
// without filters sorted every reservation).
func TestOperatorListsUseIndexes(t *testing.T) {
	s := openTemp(t, filepath.Join(t.TempDir(), "central.db"))
	for _, f := range []store.Filter{
		{Limit: 50},
		{Limit: 50, SpotID: "7"},
		{Limit: 50, States: []reservation.State{reservation.Left}},
		{Limit: 50, SpotID: "7", States: []reservation.State{reservation.Taken}},
		{Limit: 50, States: []reservation.State{reservation.Taken}},
	} {
		q, args := listQuery(f)
		steps := plan(t, s, q, args...)
		what := fmt.Sprintf("List(spot %q, states %v, limit %d)", f.SpotID, f.States, f.Limit)
		walksInOrder(t, what, steps, false)
		if f.SpotID == "" && !strings.Contains(strings.Join(steps, "\n"), "spots_position") {
			t.Errorf("%s does not walk the spots in order: %q", what, steps)
		}
	}
	// A state few reservations are in looks into each spot's entries of
	// it, not into its history.
	q, args := listQuery(store.Filter{Limit: 50, States: []reservation.State{reservation.Taken}})
	if steps := plan(t, s, q, args...); !strings.Contains(strings.Join(steps, "\n"), "reservations_state_spot (state=? AND spot_id=?)") {
		t.Errorf("List(taken) reads more than the spots' taken reservations: %q", steps)
	}
	// Several states: a spot's reservations of each are read from the
	// index and sorted by window within that spot only.
	for _, states := range [][]reservation.State{{reservation.NoShow, reservation.Cancelled}, reservation.LiveStates} {
		q, args := listQuery(store.Filter{Limit: 50, States: states})
		walksInOrder(t, fmt.Sprintf("List(%v)", states), plan(t, s, q, args...), true)
	}

	for _, f := range []store.EventFilter{
		{Limit: 50},
		{Limit: 50, Outcome: store.EventException},
		{Limit: 50, GateID: "entry-1"},
		{Limit: 50, GateID: "entry-1", Outcome: store.EventException},
	} {
		q, args := gateEventsQuery(f)
		walksInOrder(t, fmt.Sprintf("GateEvents(gate %q, outcome %q)", f.GateID, f.Outcome), plan(t, s, q, args...), false)
	}
	walksInOrder(t, "LatestRefunds", plan(t, s, latestRefundsQuery, 50), false)
}
