package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// With group commit on (the default), sixteen clients reserve, pay and park
// at once, half of them racing for the same spot-windows. The moment one
// client is answered after enough traffic, it SIGKILLs centrald itself,
// before anything else can run. After a restart, that last answered request
// and every one answered before it are in the database in the state their
// answer gave; and /metrics showed fewer commits than answered writes, so
// the requests really did share transactions.
func TestProcessGroupCommitAnswerSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	env := []string{"PARKING_SPOTS_COUNT=40", "PARKING_DB_GROUP_COMMIT=true"}
	p := start(t, dir, env...)
	now := time.Now()
	future := now.Add(24 * time.Hour).Truncate(time.Hour)
	client := &http.Client{Timeout: 10 * time.Second}

	var (
		mu       sync.Mutex
		want     = map[string]string{} // reservation id → state its last answer gave
		inFlight = map[string]string{} // reservation id → state its request in flight may give
		answered atomic.Int64          // successful writes answered so far
		killed   atomic.Bool
		last     string // the request answered just before the kill
		wg       sync.WaitGroup
	)
	// do sends one request; ok reports a success answer. The client whose
	// success answer comes once enough have been answered kills centrald
	// right there.
	do := func(method, path, token, body string, okStatus int, id func(map[string]any) string, state string) (map[string]any, bool) {
		if killed.Load() {
			return nil, false
		}
		if rid := id(nil); rid != "" {
			// A later request for a reservation already answered may
			// commit without its answer getting out before the kill.
			mu.Lock()
			inFlight[rid] = state
			mu.Unlock()
		}
		req, _ := http.NewRequest(method, p.base+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := client.Do(req)
		if err != nil {
			return nil, false // killed meanwhile
		}
		defer res.Body.Close()
		var m map[string]any
		json.NewDecoder(res.Body).Decode(&m)
		if res.StatusCode != okStatus {
			if res.StatusCode != http.StatusConflict {
				t.Errorf("%s %s: %d %v", method, path, res.StatusCode, m)
			}
			return m, false
		}
		rid := id(m)
		n := answered.Add(1)
		mu.Lock()
		want[rid] = state
		mu.Unlock()
		if n >= 300 && killed.CompareAndSwap(false, true) {
			p.cmd.Process.Signal(syscall.SIGKILL)
			last = rid + " " + state
		}
		return m, true
	}
	resID := func(m map[string]any) string { s, _ := m["reservationId"].(string); return s }

	// Scrape /metrics meanwhile: commits below the successes answered
	// before the scrape began means several shared a commit.
	batched := make(chan bool, 1)
	go func() {
		saw := false
		defer func() { batched <- saw }()
		for !killed.Load() {
			before := answered.Load()
			c, ok := metric(p.base, "parkgate_store_commits_total")
			if !ok {
				return
			}
			if c < float64(before) {
				saw = true
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Park first: a window open now on a spot of the client's own.
			spot := strconv.Itoa(21 + w)
			if r, ok := do("POST", "/reserve/parking/"+spot, "", windowJSON(now.Add(-time.Minute), now.Add(2*time.Hour)), 201, resID, "reserved"); ok {
				tok, rid := r["token"].(string), resID(r)
				same := func(map[string]any) string { return rid }
				if _, ok := do("POST", "/pay/parking/"+spot, tok, visa, 200, same, "paid"); ok {
					do("POST", "/park/parking/"+spot+"?is_parking=true", tok, "", 200, same, "taken")
				}
			}
			for i := 0; !killed.Load() && i < 2000; i++ {
				var spot string
				var from time.Time
				if w < 8 {
					// Everyone in this half races for the same spot-window.
					spot, from = strconv.Itoa(1+i%4), future.Add(time.Duration(i/4)*time.Hour)
				} else {
					spot, from = strconv.Itoa(5+w), future.Add(time.Duration(i)*time.Hour)
				}
				r, ok := do("POST", "/reserve/parking/"+spot, "", windowJSON(from, from.Add(time.Hour)), 201, resID, "reserved")
				if ok && i%3 == 0 {
					rid := resID(r)
					do("POST", "/pay/parking/"+spot, r["token"].(string), visa, 200, func(map[string]any) string { return rid }, "paid")
				}
			}
		}()
	}
	wg.Wait()
	if !killed.Load() {
		t.Fatalf("only %d answers: centrald was never killed", answered.Load())
	}
	<-p.done
	if !<-batched {
		t.Error("no scrape of /metrics showed fewer commits than answered writes: did any requests share a commit?")
	}

	p = start(t, dir, env...)
	for id, state := range want {
		a := p.call("GET", "/reservations/"+id, adminToken, "")
		if a.status != 200 || (a.body["status"] != state && a.body["status"] != inFlight[id]) {
			t.Errorf("answered %s as %s, after SIGKILL: %d %s (the last answer before the kill: %s)", id, state, a.status, a.raw, last)
		}
	}
	t.Logf("%d answered writes of %d reservations all present after SIGKILL; the last: %s", answered.Load(), len(want), last)
}

// metric reads one counter from centrald's /metrics.
func metric(base, name string) (float64, bool) {
	res, err := http.Get(base + "/metrics")
	if err != nil {
		return 0, false
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	io.Copy(io.Discard, res.Body)
	return 0, false
}
