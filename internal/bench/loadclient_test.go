package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// The closed-loop client reads every kind of answer net/http's server
// writes, keeps its connection between requests, opens a new one when the
// server closes it, and keeps the start of a wrong answer's body.
func TestClosedLoopReadsEveryAnswer(t *testing.T) {
	var conns atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil || string(body) != `{"a":1}` || r.Header.Get("Content-Type") != "application/json" || r.ContentLength != 7 {
			http.Error(w, fmt.Sprintf("got %q (%v) as %q", body, err, r.Header.Get("Content-Type")), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("GET /chunked", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "first ")
		w.(http.Flusher).Flush() // no Content-Length: chunked
		fmt.Fprint(w, strings.Repeat("x", 1000))
	})
	mux.HandleFunc("GET /close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		fmt.Fprint(w, "bye")
	})
	mux.HandleFunc("GET /empty", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /conflict", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"taken"}`+strings.Repeat(" ", 500), http.StatusConflict)
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	paths := []string{"/echo", "/chunked", "/empty", "/conflict", "/chunked"}
	var n atomic.Int64
	targeter := func(tgt *vegeta.Target) error {
		i := int(n.Add(1)-1) % len(paths)
		tgt.Method, tgt.URL = http.MethodGet, srv.URL+paths[i]
		if paths[i] == "/echo" {
			tgt.Method, tgt.Body, tgt.Header = http.MethodPost, []byte(`{"a":1}`), jsonHeader
		}
		return nil
	}
	ok := OK(200, 201, 204)
	samples, _ := closedLoop(context.Background(), httpRun{targeter: targeter, workers: 1, dur: time.Hour, ok: ok, maxRequests: 50})
	if len(samples) != 50 {
		t.Fatalf("%d samples, want 50", len(samples))
	}
	for i, s := range samples {
		want := map[string]int{"/echo": 201, "/chunked": 200, "/empty": 204, "/conflict": 409}[paths[i%len(paths)]]
		if s.Code != want {
			t.Fatalf("request %d (%s): %d %q, want %d", i, paths[i%len(paths)], s.Code, s.Err, want)
		}
		if want == 409 && !strings.Contains(s.Err, `{"error":"taken"}`) {
			t.Fatalf("a wrong answer's body is not kept: %q", s.Err)
		}
	}
	if c := conns.Load(); c != 1 {
		t.Fatalf("%d connections for 50 requests from one worker, want 1 (keep-alive)", c)
	}

	// A server that closes the connection after each answer.
	n.Store(0)
	paths = []string{"/close"}
	samples, _ = closedLoop(context.Background(), httpRun{targeter: targeter, workers: 1, dur: time.Hour, ok: ok, maxRequests: 5})
	for _, s := range samples {
		if s.Code != 200 {
			t.Fatalf("after Connection: close: %d %q", s.Code, s.Err)
		}
	}
	if c := conns.Load(); c != 1+5 {
		t.Fatalf("%d connections, want 6: one for each answer that closed its connection", c)
	}
}

// Answers cut short or malformed are errors, not answers, and the client
// goes on with a new connection.
func TestClosedLoopRefusesBrokenAnswers(t *testing.T) {
	for name, answer := range map[string]string{
		"body cut short":      "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
		"no status line":      "hello\r\n\r\n",
		"bad Content-Length":  "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
		"connection closed":   "",
		"headers cut short":   "HTTP/1.1 200 OK\r\nContent-Len",
		"long body cut short": "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + strings.Repeat("y", 600),
	} {
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					buf := make([]byte, 4096)
					c.Read(buf)
					c.Write([]byte(answer))
					c.Close()
				}
			}()
			targeter := func(tgt *vegeta.Target) error {
				tgt.Method, tgt.URL = http.MethodGet, "http://"+ln.Addr().String()+"/"
				return nil
			}
			samples, _ := closedLoop(context.Background(), httpRun{targeter: targeter, workers: 1, dur: time.Hour, ok: OK(200), maxRequests: 3})
			if len(samples) != 3 {
				t.Fatalf("%d samples, want 3", len(samples))
			}
			for _, s := range samples {
				if s.Code != 0 || s.Err == "" {
					t.Fatalf("%q taken as an answer: %d %q", answer, s.Code, s.Err)
				}
			}
		})
	}
}

// parkbench loads only this machine.
func TestClosedLoopDialsOnlyLoopback(t *testing.T) {
	targeter := func(tgt *vegeta.Target) error {
		tgt.Method, tgt.URL = http.MethodGet, "http://192.0.2.1:80/"
		return nil
	}
	samples, _ := closedLoop(context.Background(), httpRun{targeter: targeter, workers: 1, dur: time.Hour, ok: OK(200), maxRequests: 1})
	if len(samples) != 1 || !strings.Contains(samples[0].Err, "only 127.0.0.1") {
		t.Fatalf("%+v", samples)
	}
}

// The figures of turns are their requests over the sum of their measured
// windows: the time between turns and their warm-ups count for nothing.
func TestSummarizeTurns(t *testing.T) {
	base := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	at := func(ms int, code int) Sample {
		return Sample{Start: base.Add(time.Duration(ms) * time.Millisecond), Latency: 100 * time.Millisecond, Code: code}
	}
	turns := []turn{
		// Warm-up before 0 ms, then 10 requests; the last ends at 1000 ms.
		{samples: []Sample{at(-500, 200), at(0, 200), at(100, 200), at(200, 200), at(300, 200), at(400, 200),
			at(500, 200), at(600, 200), at(700, 200), at(800, 200), at(900, 409)}, from: base},
		// An hour later: 5 requests in 500 ms.
		{samples: []Sample{at(3_600_000, 200), at(3_600_100, 200), at(3_600_200, 200), at(3_600_300, 200), at(3_600_400, 200)},
			from: base.Add(time.Hour)},
	}
	s := summarizeTurns("x", turns, OK(200))
	if s.Requests != 15 || s.Elapsed != 1500*time.Millisecond || s.Throughput != 10 {
		t.Fatalf("requests %d elapsed %v throughput %v, want 15, 1.5s, 10/s", s.Requests, s.Elapsed, s.Throughput)
	}
	if s.Errors != 1 || s.Codes[409] != 1 {
		t.Fatalf("errors %d codes %v", s.Errors, s.Codes)
	}
}

// Interrupting parkbench ends a closed loop at once, even with every
// worker waiting for an answer that does not come.
func TestClosedLoopInterrupted(t *testing.T) {
	arrived := make(chan struct{}, 4)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
	}))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for range 4 {
			<-arrived
		}
		cancel()
	}()
	targeter := func(tgt *vegeta.Target) error {
		tgt.Method, tgt.URL = http.MethodGet, srv.URL+"/"
		return nil
	}
	began := time.Now()
	samples, _ := closedLoop(ctx, httpRun{targeter: targeter, workers: 4, dur: time.Hour, ok: OK(200)})
	if took := time.Since(began); took >= answerTimeout/2 {
		t.Fatalf("the loop ended %v after it began; an interrupt should end it at once", took)
	}
	if len(samples) != 4 {
		t.Fatalf("%d samples, want the 4 requests in flight", len(samples))
	}
	for _, s := range samples {
		if s.Code != 0 {
			t.Fatalf("an interrupted request got %d", s.Code)
		}
	}
}
