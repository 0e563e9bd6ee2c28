package pgstore

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/central/store/pgstore/pgtest"
)

// sortNode is a plan's Sort node (an Incremental Sort, which sorts only
// the rows of one group of a presorted prefix, is not one).
var sortNode = regexp.MustCompile(`(^|->)\s*Sort\b`)

// TestOperatorListsUseIndexes: each operator list has a plan that reads a
// page through indexes in the list's order and stops at its limit (GET
// /admin/reservations without filters sorted every reservation). On an
// empty schema the planner would rightly prefer to sort nothing much, so
// sorts and table scans are priced out (enable_sort, enable_seqscan):
// a plan with a Sort node remains only if no index gives the order.
func TestOperatorListsUseIndexes(t *testing.T) {
	pgtest.BaseDSN(t)
	dsn, _ := pgtest.Schema(t)
	s := open(t, dsn)
	ctx := context.Background()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET enable_sort = off`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	// The session's settings must not outlive the test in the pool.
	defer conn.Conn().Close(ctx)
	explain := func(what, q string, args ...any) {
		t.Helper()
		rows, err := conn.Query(ctx, `EXPLAIN `+q, args...)
		if err != nil {
			t.Fatalf("EXPLAIN %s: %v", q, err)
		}
		var lines []string
		for rows.Next() {
			var l string
			if err := rows.Scan(&l); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, l)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		p := strings.Join(lines, "\n")
		if sortNode.MatchString(p) || strings.Contains(p, "Seq Scan") {
			t.Errorf("%s is not read in its order through indexes:\n%s", what, p)
		}
	}
	for _, f := range []store.Filter{
		{Limit: 50},
		{Limit: 50, SpotID: "7"},
		{Limit: 50, States: []reservation.State{reservation.Left}},
		{Limit: 50, States: []reservation.State{reservation.NoShow, reservation.Cancelled}},
		{Limit: 50, SpotID: "7", States: []reservation.State{reservation.Taken}},
	} {
		q, args := listQuery(f)
		explain(fmt.Sprintf("List(spot %q, states %v, limit %d)", f.SpotID, f.States, f.Limit), q, args...)
	}
	for _, f := range []store.EventFilter{
		{Limit: 50},
		{Limit: 50, Outcome: store.EventException},
		{Limit: 50, GateID: "entry-1"},
		{Limit: 50, GateID: "entry-1", Outcome: store.EventException},
	} {
		q, args := gateEventsQuery(f)
		explain(fmt.Sprintf("GateEvents(gate %q, outcome %q)", f.GateID, f.Outcome), q, args...)
	}
	explain("LatestRefunds", latestRefundsQuery, 50)
}
