package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// The closed-loop load generator.
//
// The load generator shares the machine's two cores with what it
// measures, so every microsecond it spends on a request is one the server
// does not get. vegeta, through net/http's client, spent about 70 µs of
// CPU per contended reservation, close to half of what centrald itself
// spent answering it, which made every closed-loop figure partly a figure
// of the generator. This one writes each request from its target onto a
// keep-alive connection of its own and reads the answer's status line,
// headers and body, nothing else: about a quarter of that. Fixed-rate
// runs still go through vegeta, whose pacer they need.

// answerTimeout bounds one request, from writing it to the end of its
// answer.
const answerTimeout = 10 * time.Second

// closedLoop runs r as a closed loop of r.workers workers, each sending its
// next request when its last one is answered, for r.warmup+r.dur (and at
// most maxSamples requests in all). It returns every request as a Sample
// and the start of the measured window.
func closedLoop(ctx context.Context, r httpRun) ([]Sample, time.Time) {
	limit := maxSamples
	if r.maxRequests > 0 {
		limit = min(r.maxRequests, maxSamples)
	}
	return runWorkers(ctx, r.workers, r.warmup, r.dur, limit, func() (func(time.Time) (Sample, bool), func()) {
		c := &loadConn{}
		// An interrupted run ends now, not when the request in flight is
		// answered or times out.
		stop := context.AfterFunc(ctx, c.interrupt)
		var t vegeta.Target
		step := func(t0 time.Time) (Sample, bool) {
			t = vegeta.Target{}
			if err := r.targeter(&t); err != nil {
				return Sample{Start: t0, Err: "target: " + err.Error()}, false
			}
			code, body, err := c.do(ctx, &t)
			s := Sample{Start: t0, Latency: time.Since(t0), Code: code, Route: routeOf(t.Method, t.URL)}
			if err != nil {
				s.Code, s.Err = 0, err.Error()
			} else if !r.ok(code) {
				s.Err = strings.TrimSpace(http.StatusText(code) + " " + strings.TrimSpace(string(body)))
			}
			return s, true
		}
		return step, func() { stop(); c.close() }
	})
}

// loadConn is one worker's keep-alive connection, opened on first use and
// again after an error or a "Connection: close".
type loadConn struct {
	host string
	mu   sync.Mutex // guards conn against interrupt
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	body []byte // the kept start of the last answer's body
}

func (c *loadConn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// interrupt makes the request in flight, if any, fail at once.
func (c *loadConn) interrupt() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		c.conn.SetDeadline(time.Unix(1, 0))
	}
}

// do sends t and reads its answer: the status and, cut to 256 bytes, the
// body.
func (c *loadConn) do(ctx context.Context, t *vegeta.Target) (int, []byte, error) {
	host, path, err := splitURL(t.URL)
	if err != nil {
		return 0, nil, err
	}
	if c.conn == nil || c.host != host {
		c.close()
		if err := c.dial(host); err != nil {
			return 0, nil, err
		}
	}
	if err := c.conn.SetDeadline(time.Now().Add(answerTimeout)); err != nil {
		c.close()
		return 0, nil, err
	}
	// interrupt runs once ctx has ended: either after the deadline above,
	// which it then cuts short, or before, and then ctx has ended here.
	if err := ctx.Err(); err != nil {
		return 0, nil, err
	}
	code, keep, err := c.roundTrip(t, host, path)
	if err != nil || !keep {
		c.close()
	}
	return code, c.body, err
}

func (c *loadConn) dial(host string) error {
	h, _, err := net.SplitHostPort(host)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(h); ip == nil || !ip.Equal(net.IPv4(127, 0, 0, 1)) {
		return fmt.Errorf("parkbench dials only 127.0.0.1, not %s", host)
	}
	conn, err := net.DialTimeout("tcp4", host, 5*time.Second)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.host, c.conn = host, conn
	c.mu.Unlock()
	c.r, c.w = bufio.NewReaderSize(conn, 4096), bufio.NewWriterSize(conn, 4096)
	return nil
}

// splitURL splits http://host:port/path into its host and path.
func splitURL(u string) (host, path string, err error) {
	rest, ok := strings.CutPrefix(u, "http://")
	if !ok {
		return "", "", fmt.Errorf("%q: only http:// URLs", u)
	}
	host, path = rest, "/"
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		host, path = rest[:i], rest[i:]
	}
	return host, path, nil
}

// roundTrip writes the request and reads its answer; keep is false when
// the connection cannot carry another request.
func (c *loadConn) roundTrip(t *vegeta.Target, host, path string) (code int, keep bool, err error) {
	w := c.w
	w.WriteString(t.Method)
	w.WriteByte(' ')
	w.WriteString(path)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\nUser-Agent: parkbench\r\n")
	for k, vs := range t.Header {
		for _, v := range vs {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	if len(t.Body) > 0 || t.Method == http.MethodPost || t.Method == http.MethodPut {
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.Itoa(len(t.Body)))
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
	w.Write(t.Body)
	if err := w.Flush(); err != nil {
		return 0, false, err
	}
	return c.readAnswer(t.Method == http.MethodHead)
}

// readAnswer reads one HTTP/1.1 answer.
func (c *loadConn) readAnswer(head bool) (code int, keep bool, err error) {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, false, fmt.Errorf("reading the status line: %w", err)
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, false, fmt.Errorf("not an HTTP/1.x status line: %q", bytes.TrimSpace(line))
	}
	code, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, fmt.Errorf("status line %q: %w", bytes.TrimSpace(line), err)
	}
	keep = line[7] == '1' // HTTP/1.1 keeps the connection unless told otherwise
	length, chunked := int64(-1), false
	for {
		h, err := c.r.ReadSlice('\n')
		if err != nil {
			return 0, false, fmt.Errorf("reading the headers: %w", err)
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return 0, false, fmt.Errorf("bad header line %q", h)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.ParseInt(string(value), 10, 64); err != nil || length < 0 {
				return 0, false, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			keep = keep && !bytes.EqualFold(value, []byte("close"))
		}
	}
	var body io.Reader
	switch {
	case head || code == http.StatusNoContent || code == http.StatusNotModified || code/100 == 1:
		body = http.NoBody
	case chunked:
		body = httputil.NewChunkedReader(c.r)
	case length >= 0:
		body = io.LimitReader(c.r, length)
	default: // the body runs to the end of the connection
		body, keep = c.r, false
	}
	c.body = c.body[:0]
	var buf [256]byte
	n, err := io.ReadFull(body, buf[:])
	c.body = append(c.body, buf[:n]...)
	read := int64(n)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		err = nil
	} else if err == nil {
		var more int64
		more, err = io.Copy(io.Discard, body)
		read += more
	}
	if err == nil && length >= 0 && read < length {
		err = io.ErrUnexpectedEOF
	}
	if err == nil && chunked {
		err = c.skipTrailer()
	}
	if err != nil {
		return 0, false, fmt.Errorf("reading the body: %w", err)
	}
	return code, keep, nil
}

// skipTrailer reads what follows a chunked body's last chunk: trailer
// lines, if any, up to the empty line.
func (c *loadConn) skipTrailer() error {
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return nil
		}
	}
}
