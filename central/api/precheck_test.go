package api_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parkgate/parkgate/central/api"
	"github.com/parkgate/parkgate/central/booking"
	"github.com/parkgate/parkgate/central/payment/fakepay"
	"github.com/parkgate/parkgate/central/store/sqlitestore"
	"github.com/parkgate/parkgate/clock/clocktest"
)

// With group commit a reservation is first checked on committed data, and
// one refused there never reaches the writer. Its answer is the one the
// writer gives without group commit (where nothing is pre-checked):
// status, body and the reservation metrics alike, for a window others hold
// (two of them: the answer names the earlier), an unknown spot and a
// retired spot that still has a live reservation (unknown, not a
// conflict: the spot is checked first).
func TestPrecheckedRefusalsAnswerAsTheWriter(t *testing.T) {
	type answer struct {
		Status int
		Body   string
	}
	run := func(groupCommit bool) (refusals []answer, metrics string, st *sqlitestore.Store) {
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
		writes0, _ := st.CommitStats()
		for _, req := range []struct{ spot, body string }{
			{"1", window(t0.Add(2*time.Hour), t0.Add(4*time.Hour))}, // overlaps both of spot 1: names the earlier
			{"1", window(t0, t0.Add(90*time.Minute))},               // and again
			{"9", window(t0.Add(time.Hour), t0.Add(2*time.Hour))},   // no such spot
			{"2", window(t0.Add(time.Hour), t0.Add(2*time.Hour))},   // retired
		} {
			r := s.do("POST", "/reserve/parking/"+req.spot, "", req.body)
			refusals = append(refusals, answer{r.Status, string(r.Body)})
		}
		if writes, _ := st.CommitStats(); groupCommit && writes != writes0 {
			t.Errorf("group commit: %d refusals reached the writer (parkgate_store_writes_total), want none", writes-writes0)
		}
		if r := s.do("POST", "/reserve/parking/3", "", window(t0.Add(time.Hour), t0.Add(3*time.Hour))); r.Status != 201 {
			t.Fatalf("a free spot after the refusals: %d %s", r.Status, r.Body)
		}
		m := s.do("GET", "/metrics", "", "")
		return refusals, fmt.Sprint(regexp.MustCompile(`parkgate_reservation_attempts_total\{.*`).FindAllString(string(m.Body), -1)), st
	}
	before, beforeMetrics, _ := run(false)
	after, afterMetrics, st := run(true)
	want := []struct {
		status int
		code   string
	}{{409, "overlap"}, {409, "overlap"}, {404, "unknown_spot"}, {404, "unknown_spot"}}
	for i, w := range want {
		if before[i] != after[i] {
			t.Errorf("refusal %d: with the pre-check %d %s, from the writer %d %s", i+1, after[i].Status, after[i].Body, before[i].Status, before[i].Body)
		}
		r := resp{after[i].Status, []byte(after[i].Body)}
		if r.Status != w.status || r.errCode(t) != w.code {
			t.Errorf("refusal %d: %d %s, want %d %s", i+1, r.Status, r.Body, w.status, w.code)
		}
	}
	if beforeMetrics != afterMetrics {
		t.Errorf("reservation metrics with the pre-check %s, from the writer %s", afterMetrics, beforeMetrics)
	}
	if n := st.PrecheckRefusals(); n != 4 {
		t.Errorf("%d pre-check refusals counted, want 4", n)
	}
}
