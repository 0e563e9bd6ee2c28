package console

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"time"

	"github.com/parkgate/parkgate/central/api"
	"github.com/parkgate/parkgate/central/apijson"
)

// keepAlive is how often an idle stream sends a comment, so that proxies
// keep it open and a closed session ends it.
const keepAlive = 15 * time.Second

// events serves GET /admin/events: a Server-Sent Events stream of the
// change log (event "change", id = the entry's version), the gates'
// presence (event "gate", one gate each time it changes, every gate when
// the stream opens), gate events (event "gate_event"), refunds recorded or
// settled (event "refund") and payment exceptions new or resolved (event
// "payment_exception"); only change events carry an id, so Last-Event-ID
// is always a change-log version. A stream opened
// with Last-Event-ID (what EventSource sends when it reconnects) first
// sends every change after that version, then goes on live: no change is
// sent twice or skipped. ?after=V does the same for a first connection;
// without either, the stream starts at the log's head, which the first
// event ("hello") names as its id.
func (c *Console) events(w http.ResponseWriter, r *http.Request) {
	who, ok := c.authorize(w, r)
	if !ok {
		return
	}
	// Where to start: Last-Event-ID (a reconnection) before ?after= (a
	// page that loaded the state as of that version and opens the
	// stream; EventSource cannot set the header the first time).
	after := int64(-1)
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			api.WriteError(w, http.StatusBadRequest, "invalid_last_event_id", "Last-Event-ID must be a change-log version: a number ≥ 0")
			return
		}
		after = n
	} else if v := r.URL.Query().Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			api.WriteError(w, http.StatusBadRequest, "invalid_query", "after must be a change-log version: a number ≥ 0")
			return
		}
		after = n
	}
	ctx := r.Context()
	sub, eventSeq, err := c.hub.subscribe(ctx)
	if err != nil {
		api.Fail(c.log, w, r, err)
		return
	}
	defer c.hub.unsubscribe(sub)
	// The version is read after subscribing: every change committed
	// later wakes this stream.
	head, err := c.svc.Store().Version(ctx)
	if err != nil {
		api.Fail(c.log, w, r, err)
		return
	}
	if after < 0 {
		after = head
	}
	gs, err := c.svc.Store().Gates(ctx)
	if err != nil {
		api.Fail(c.log, w, r, err)
		return
	}

	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream outlives the server's write timeout
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	out := &sse{w: bufio.NewWriter(w), flush: rc.Flush}
	out.send("hello", strconv.FormatInt(after, 10), map[string]any{"version": after, "head": head, "operator": who.name})
	sent := map[string]apijson.Gate{}
	for _, g := range gs {
		gj := api.GateJSON(g)
		sent[g.ID] = gj
		out.send("gate", "", gj)
	}
	if err := out.done(); err != nil {
		return
	}

	t := c.clk.NewTimer(keepAlive)
	defer func() { t.Stop() }()
	for {
		// Changes first: from the hub when it holds them, else the store.
		for {
			kept, ok := c.hub.since(after)
			if ok {
				// Encoded once by the hub for every stream.
				for _, k := range kept {
					out.sendJSON("change", strconv.FormatInt(k.version, 10), k.data)
					after = k.version
				}
				break
			}
			cs, err := c.svc.Store().Changes(ctx, after, changesPerRead)
			if err != nil {
				return // the client reconnects and resumes
			}
			for _, ch := range cs {
				out.send("change", strconv.FormatInt(ch.Version, 10), ch)
				after = ch.Version
			}
			if len(cs) < changesPerRead {
				break
			}
		}
		gates, es, seq := c.hub.snapshot(eventSeq)
		eventSeq = seq
		for _, g := range gates {
			if prev, ok := sent[g.ID]; !ok || !reflect.DeepEqual(prev, g) {
				sent[g.ID] = g
				out.send("gate", "", g)
			}
		}
		for _, e := range es {
			out.send(e.name, "", e.data)
		}
		if err := out.done(); err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-c.stop:
			return
		case <-sub.wake:
		case <-t.C():
			if who.session != "" && !c.sessions.alive(who.session) {
				out.send("logout", "", map[string]string{"reason": "session ended"})
				_ = out.done()
				return
			}
			out.comment("keep-alive")
			if err := out.done(); err != nil {
				return
			}
			t = c.clk.NewTimer(keepAlive)
		}
	}
}

// sse writes Server-Sent Events.
type sse struct {
	w     *bufio.Writer
	flush func() error
	err   error
}

func (s *sse) send(event, id string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.err = err
		return
	}
	s.sendJSON(event, id, b)
}

// sendJSON writes an event whose data is already JSON.
func (s *sse) sendJSON(event, id string, b []byte) {
	if id != "" {
		s.w.WriteString("id: " + id + "\n")
	}
	s.w.WriteString("event: " + event + "\ndata: ")
	s.w.Write(b) // JSON has no raw newlines
	s.w.WriteString("\n\n")
}

func (s *sse) comment(text string) { s.w.WriteString(": " + text + "\n\n") }

// done sends what was written.
func (s *sse) done() error {
	if s.err != nil {
		return s.err
	}
	if err := s.w.Flush(); err != nil {
		return err
	}
	return s.flush()
}

// followStop closes stop when ctx ends, so that open streams end with the
// server instead of holding its shutdown.
func followStop(ctx context.Context, stop chan struct{}) {
	<-ctx.Done()
	close(stop)
}
