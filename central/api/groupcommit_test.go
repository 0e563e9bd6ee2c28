package api_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parkgate/parkgate/central/api"
	"github.com/parkgate/parkgate/central/booking"
	"github.com/parkgate/parkgate/central/payment/fakepay"
	"github.com/parkgate/parkgate/central/store/sqlitestore"
	"github.com/parkgate/parkgate/clock/clocktest"
)

// A reservation refused by the writer's check (one statement, store
// Availability) gets the same answer with group commit as with one
// transaction per request: status, body and the reservation metrics alike,
// for a window others hold (two of them: the answer names the earlier), an
// unknown spot and a retired spot that still has a live reservation
// (unknown, not a conflict: the spot is checked first). Under group commit
// each refusal is counted as a write by the time it is answered.
func TestGroupCommitRefusalsAnswerAsWithout(t *testing.T) {
	type answer struct {
		Status int
		Body   string
	}
	run := func(groupCommit bool) (refusals []answer, metrics string) {
		ctx := context.Background()
		st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "central.db"), sqlitestore.WithGroupCommit(groupCommit))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if err := st.SetSpots(ctx, []string{"1", "2", "3"}, t0); err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		svc := booking.New(st, &fakepay.Provider{}, nil, clocktest.New(t0), booking.DefaultConfig(), nil, booking.NewMetrics(reg))
		h := api.New(svc, api.Options{AdminToken: admin, PaymentHold: booking.DefaultConfig().PaymentHold, Registry: reg})
		h.SetReady(true)
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		s := &server{t: t, srv: srv, st: st}

		for _, h := range []struct {
			spot     string
			from, to time.Duration
		}{{"1", 3 * time.Hour, 5 * time.Hour}, {"1", time.Hour, 3 * time.Hour}, {"2", time.Hour, 3 * time.Hour}} {
			if r := s.do("POST", "/reserve/parking/"+h.spot, "", window(t0.Add(h.from), t0.Add(h.to))); r.Status != 201 {
				t.Fatalf("reserve spot %s: %d %s", h.spot, r.Status, r.Body)
			}
		}
		if err := st.SetSpots(ctx, []string{"1", "3"}, t0); err != nil { // spot 2 retired, its reservation live
			t.Fatal(err)
		}
		for _, req := range []struct{ spot, body string }{
			{"1", window(t0.Add(2*time.Hour), t0.Add(4*time.Hour))}, // overlaps both of spot 1: names the earlier
			{"1", window(t0, t0.Add(90*time.Minute))},               // and again
			{"9", window(t0.Add(time.Hour), t0.Add(2*time.Hour))},   // no such spot
			{"2", window(t0.Add(time.Hour), t0.Add(2*time.Hour))},   // retired
		} {
			writes0, _ := st.CommitStats()
			r := s.do("POST", "/reserve/parking/"+req.spot, "", req.body)
			refusals = append(refusals, answer{r.Status, string(r.Body)})
			if writes, _ := st.CommitStats(); writes != writes0+1 {
				t.Errorf("group commit %v: refusal %d answered, %d writes counted for it (parkgate_store_writes_total), want 1",
					groupCommit, len(refusals), writes-writes0)
			}
		}
		if r := s.do("POST", "/reserve/parking/3", "", window(t0.Add(time.Hour), t0.Add(3*time.Hour))); r.Status != 201 {
			t.Fatalf("a free spot after the refusals: %d %s", r.Status, r.Body)
		}
		m := s.do("GET", "/metrics", "", "")
		return refusals, fmt.Sprint(regexp.MustCompile(`parkgate_reservation_attempts_total\{.*`).FindAllString(string(m.Body), -1))
	}
	without, withoutMetrics := run(false)
	with, withMetrics := run(true)
	earlier := fmt.Sprintf("from %s to %s", t0.Add(time.Hour).Format(time.RFC3339), t0.Add(3*time.Hour).Format(time.RFC3339))
	want := []struct {
		status int
		code   string
		names  string // in the body
	}{{409, "overlap", earlier}, {409, "overlap", earlier}, {404, "unknown_spot", `no spot \"9\"`}, {404, "unknown_spot", `no spot \"2\"`}}
	for i, w := range want {
		if without[i] != with[i] {
			t.Errorf("refusal %d: with group commit %d %s, without %d %s", i+1, with[i].Status, with[i].Body, without[i].Status, without[i].Body)
		}
		r := resp{with[i].Status, []byte(with[i].Body)}
		if r.Status != w.status || r.errCode(t) != w.code || !strings.Contains(with[i].Body, w.names) {
			t.Errorf("refusal %d: %d %s, want %d %s naming %s", i+1, r.Status, r.Body, w.status, w.code, w.names)
		}
	}
	if withMetrics != withoutMetrics {
		t.Errorf("reservation metrics with group commit %s, without %s", withMetrics, withoutMetrics)
	}
}
