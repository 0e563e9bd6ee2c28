package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ConsoleP99Ratio is the target of section i: the mixed traffic's p99 with
// the consoles connected at most this many times the p99 without them.
const ConsoleP99Ratio = 1.5

// ConsoleReport holds section i: the mixed traffic of b without and with
// operator consoles following GET /admin/events.
type ConsoleReport struct {
	Consoles      int
	Without, With Summary
	// Per console, the change events received while the traffic ran
	// (fewest and most), and the change-log versions committed in that
	// time; Complete: every console received every one of them, in
	// order, none twice.
	MinEvents, MaxEvents int
	Changes              int
	Complete             bool
	// Errors counts the wrong answers of every round, kept or not.
	Errors int
	// Problem says what went wrong with the streams, if anything.
	Problem string
}

// Ratio is the p99 with the consoles over the p99 without.
func (c *ConsoleReport) Ratio() float64 {
	if c.Without.Latency.P99 == 0 {
		return 0
	}
	return float64(c.With.Latency.P99) / float64(c.Without.Latency.P99)
}

func (c *ConsoleReport) targets() []TargetResult {
	ratio := c.Ratio()
	return []TargetResult{{
		Name: fmt.Sprintf("i. mixed traffic with %d consoles on /admin/events: p99 ≤ %.1f × without, every change to every console", c.Consoles, ConsoleP99Ratio),
		Measured: fmt.Sprintf("%.2f × (p99 %s with, %s without); %d of %d changes to each console", ratio,
			ms(c.With.Latency.P99), ms(c.Without.Latency.P99), c.MinEvents, c.Changes),
		Pass: c.With.Requests > 0 && c.Without.Requests > 0 && ratio <= ConsoleP99Ratio && c.Complete &&
			c.With.Errors == 0 && c.Without.Errors == 0 && c.Errors == 0,
	}}
}

func (c *ConsoleReport) markdown(b *bytes.Buffer, r *Report) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	p("## i. Operator consoles on the event stream")
	p("")
	p("The mixed traffic of b (%d req/s for %s), on a fresh centrald each time, alone and then with %d consoles "+
		"connected to `GET /admin/events` (the admin token; each a client reading the Server-Sent Events stream as a "+
		"browser's `EventSource` does, counting the change events and checking their ids), %d rounds alternating, "+
		"the lower p99 of each case kept (a stall caused by something else on the machine should not decide the ratio). "+
		"Target: p99 with the consoles ≤ %.1f × p99 without, and every console receives every change committed "+
		"meanwhile, in order, none twice.",
		r.Plan.MixedRate, dur(r.Plan.MixedDuration), c.Consoles, consoleRounds, ConsoleP99Ratio)
	p("")
	latencyTable(b, "run", []Summary{c.Without, c.With})
	p("")
	p("In the last round each console received %d to %d change events; the log got %d changes while the traffic ran "+
		"(warm-up included). p99 ratio: %.2f; wrong answers over all rounds: %d.", c.MinEvents, c.MaxEvents, c.Changes, c.Ratio(), c.Errors)
	if c.Problem != "" {
		p("")
		p("Problem with the streams: %s.", c.Problem)
	}
	p("")
}

// consoleRounds is how many times section i runs each case, alternating;
// it keeps the lower p99 of each, so that a stall caused by something
// else on the machine in one run does not decide the ratio.
const consoleRounds = 2

// consoleSection runs section i.
func (b *runner) consoleSection(ctx context.Context) (*ConsoleReport, error) {
	rep := &ConsoleReport{Consoles: b.p.Consoles, Complete: true}
	mixed := func(c *Centrald, label string) Summary {
		ok := OK(200, 201, 409)
		samples, from := runHTTP(ctx, httpRun{targeter: mixedTargeter(c.URL, b.p.Spots, newFutureHours(time.Now())),
			rate: b.p.MixedRate, warmup: b.p.Warmup, dur: b.p.MixedDuration, ok: ok})
		s := Summarize(label, samples, from, ok)
		s.Rate = b.p.MixedRate
		rep.Errors += s.Errors
		b.done(s)
		return s
	}
	better := func(prev, s Summary) Summary {
		if prev.Requests == 0 || s.Latency.P99 < prev.Latency.P99 {
			return s
		}
		return prev
	}
	for round := 1; round <= consoleRounds; round++ {
		b.progress("i: mixed traffic at %d req/s for %s, no consoles (round %d of %d)", b.p.MixedRate, b.p.MixedDuration, round, consoleRounds)
		err := b.withCentrald(ctx, func(c *Centrald) error {
			rep.Without = better(rep.Without, mixed(c, "without consoles"))
			return nil
		})
		if err != nil {
			return nil, err
		}
		b.progress("i: the same with %d consoles on GET /admin/events (round %d of %d)", b.p.Consoles, round, consoleRounds)
		err = b.withCentrald(ctx, func(c *Centrald) error {
			s, err := b.withConsoles(ctx, c, rep, func() Summary { return mixed(c, fmt.Sprintf("with %d consoles", b.p.Consoles)) })
			rep.With = better(rep.With, s)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// withConsoles connects the consoles to c, runs load, and checks that
// every console received every change committed meanwhile.
func (b *runner) withConsoles(ctx context.Context, c *Centrald, rep *ConsoleReport, load func() Summary) (Summary, error) {
	sctx, stop := context.WithCancel(ctx)
	consoles := make([]*consoleClient, b.p.Consoles)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }() // the streams end with sctx
	for i := range consoles {
		consoles[i] = &consoleClient{url: c.URL + "/admin/events", token: c.AdminToken, hello: make(chan int64, 1)}
		wg.Add(1)
		go func() { defer wg.Done(); consoles[i].run(sctx) }()
	}
	start := int64(-1)
	for _, cc := range consoles {
		select {
		case v := <-cc.hello:
			if start < 0 || v < start {
				start = v
			}
		case <-time.After(20 * time.Second):
			return Summary{}, fmt.Errorf("a console did not get its stream's first event within 20 s: %v", cc.failure())
		case <-ctx.Done():
			return Summary{}, ctx.Err()
		}
	}
	s := load()
	head, n, err := logSince(ctx, c, start)
	if err != nil {
		return s, err
	}
	rep.Changes = n
	// The streams may still be sending the last changes.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		caught := true
		for _, cc := range consoles {
			caught = caught && cc.last() >= head
		}
		if caught {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	rep.MinEvents, rep.MaxEvents = 0, 0
	for i, cc := range consoles {
		cc.mu.Lock()
		events, last, problem := cc.events, cc.lastV, cc.problem
		cc.mu.Unlock()
		if i == 0 || events < rep.MinEvents {
			rep.MinEvents = events
		}
		rep.MaxEvents = max(rep.MaxEvents, events)
		switch {
		case problem != "":
			rep.Complete, rep.Problem = false, fmt.Sprintf("console %d: %s", i+1, problem)
		case events != n || last != head:
			rep.Complete = false
			rep.Problem = fmt.Sprintf("console %d received %d changes up to version %d; the log has %d up to %d", i+1, events, last, n, head)
		}
	}
	return s, nil
}

// logSince reads the change log after version after: its last version and
// how many entries it has.
func logSince(ctx context.Context, c *Centrald, after int64) (head int64, n int, err error) {
	head = after
	for {
		req, err := http.NewRequestWithContext(ctx, "GET", c.URL+"/admin/changes?limit=5000&after="+strconv.FormatInt(head, 10), nil)
		if err != nil {
			return 0, 0, err
		}
		req.Header.Set("Authorization", "Bearer "+c.AdminToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, 0, err
		}
		var cs []struct {
			Version int64 `json:"version"`
		}
		err = json.NewDecoder(res.Body).Decode(&cs)
		res.Body.Close()
		if err != nil {
			return 0, 0, fmt.Errorf("GET /admin/changes: %d: %w", res.StatusCode, err)
		}
		if len(cs) == 0 {
			return head, n, nil
		}
		n += len(cs)
		head = cs[len(cs)-1].Version
	}
}

// consoleClient follows GET /admin/events as a console does, counting
// change events and checking that their ids only go up.
type consoleClient struct {
	url, token string
	hello      chan int64 // the stream's start, once

	mu      sync.Mutex
	events  int
	lastV   int64
	problem string
}

func (cc *consoleClient) last() int64 {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.lastV
}

func (cc *consoleClient) failure() string {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.problem
}

func (cc *consoleClient) fail(format string, args ...any) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.problem == "" {
		cc.problem = fmt.Sprintf(format, args...)
	}
}

// run reads the stream until ctx ends.
func (cc *consoleClient) run(ctx context.Context) {
	req, err := http.NewRequestWithContext(ctx, "GET", cc.url, nil)
	if err != nil {
		cc.fail("%v", err)
		return
	}
	req.Header.Set("Authorization", "Bearer "+cc.token)
	req.Header.Set("Accept", "text/event-stream")
	res, err := (&http.Client{Transport: loopbackTransport(1)}).Do(req)
	if err != nil {
		if ctx.Err() == nil {
			cc.fail("%v", err)
		}
		return
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		cc.fail("status %d", res.StatusCode)
		return
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var event, id string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = line[7:]
		case strings.HasPrefix(line, "id: "):
			id = line[4:]
		case line == "":
			v, _ := strconv.ParseInt(id, 10, 64)
			switch event {
			case "hello":
				cc.mu.Lock()
				cc.lastV = v
				cc.mu.Unlock()
				cc.hello <- v
			case "change":
				cc.mu.Lock()
				if v <= cc.lastV && cc.problem == "" {
					cc.problem = fmt.Sprintf("change %d after %d", v, cc.lastV)
				}
				cc.events++
				cc.lastV = v
				cc.mu.Unlock()
			}
			event, id = "", ""
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		cc.fail("reading the stream: %v", err)
	}
}
