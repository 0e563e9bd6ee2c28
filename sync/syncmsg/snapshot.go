package syncmsg

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Snapshot bounds.
const (
	// DefaultPartSize is the most gzip bytes one part carries (256 KiB,
	// docs/sync.md), and the default of SplitSnapshot. In base64 it stays
	// under MaxSnapshotPayload, and far under any broker's message limit.
	DefaultPartSize = 256 << 10
	// MaxParts is the most parts one snapshot may have: 64 MiB of gzip at
	// the default part size, several hundred times a site's snapshot.
	MaxParts = 256
	// MaxSnapshotEntries bounds a snapshot's declared count, so that a
	// receiver never sizes anything by an absurd count.
	MaxSnapshotEntries = 1_000_000
	// DefaultMaxCompressed is the Assembler's default bound on the gzip
	// bytes it holds for one snapshot. 10,000 reservations are ~0.2 MB.
	DefaultMaxCompressed = 16 << 20
	// DefaultMaxDecompressed is the Assembler's default bound on a
	// snapshot's JSON once decompressed (10,000 reservations are ~2 MB),
	// so that a gzip bomb stops at 64 MiB instead of eating the memory.
	DefaultMaxDecompressed = 64 << 20
)

// ErrStaleSnapshot is what Assembler.Add returns for a part of a snapshot
// it no longer wants: one already assembled or abandoned, or an older one
// (lower version) than the snapshot being assembled. Such parts are QoS 1
// repeats or answers to an earlier request; the caller ignores them.
var ErrStaleSnapshot = errors.New("syncmsg: part of a stale snapshot")

// SplitSnapshot cuts a snapshot for sending: the JSON array of entries,
// gzip-compressed, in parts of at most maxPart gzip bytes (DefaultPartSize
// when maxPart <= 0; more than DefaultPartSize is refused, since receivers
// refuse such parts). Every entry must be valid and ids distinct, so that
// a gate never receives a snapshot it cannot apply. id names the snapshot
// (a fresh one per answer, so that a gate can tell the parts of two
// answers apart).
func SplitSnapshot(id string, version int64, entries []Entry, maxPart int) ([]SnapshotPart, error) {
	if maxPart <= 0 {
		maxPart = DefaultPartSize
	}
	if maxPart > DefaultPartSize {
		return nil, fmt.Errorf("syncmsg: snapshot part size %d: at most %d", maxPart, DefaultPartSize)
	}
	if err := checkToken("snapshot id", id, 64); err != nil {
		return nil, fmt.Errorf("syncmsg: %w", err)
	}
	if version < 0 {
		return nil, fmt.Errorf("syncmsg: snapshot version %d is negative", version)
	}
	if len(entries) > MaxSnapshotEntries {
		return nil, fmt.Errorf("syncmsg: snapshot of %d entries, more than %d", len(entries), MaxSnapshotEntries)
	}
	if err := checkEntries(entries); err != nil {
		return nil, fmt.Errorf("syncmsg: snapshot %q: %w", id, err)
	}
	if entries == nil {
		entries = []Entry{} // "[]", not "null"
	}
	raw, err := json.Marshal(entries)
	if err != nil {
		return nil, err
	}
	if len(raw) > DefaultMaxDecompressed {
		return nil, fmt.Errorf("syncmsg: snapshot %q is %d bytes of JSON, more than the %d gates accept", id, len(raw), DefaultMaxDecompressed)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	z := buf.Bytes()
	n := (len(z) + maxPart - 1) / maxPart
	if n > MaxParts {
		return nil, fmt.Errorf("syncmsg: snapshot %q needs %d parts of %d bytes, more than %d", id, n, maxPart, MaxParts)
	}
	parts := make([]SnapshotPart, n)
	for i := range parts {
		chunk := z[i*maxPart : min((i+1)*maxPart, len(z))]
		parts[i] = SnapshotPart{V: FormatVersion, ID: id, Version: version, Part: i + 1, Parts: n,
			Count: len(entries), Gzip: chunk}
	}
	return parts, nil
}

// checkEntries validates entries and refuses a reservation listed twice,
// which localdb's ApplySnapshot would refuse too, after the whole transfer.
func checkEntries(entries []Entry) error {
	seen := make(map[string]int, len(entries))
	for i := range entries {
		e := &entries[i]
		if err := e.validate(); err != nil {
			return fmt.Errorf("entry %d (%q): %v", i+1, e.ID, err)
		}
		if j, dup := seen[e.ID]; dup {
			return fmt.Errorf("entries %d and %d are both reservation %q", j, i+1, e.ID)
		}
		seen[e.ID] = i + 1
	}
	return nil
}

// Assembler puts the parts of a snapshot back together on the gate. It
// assembles one snapshot at a time: a part of another snapshot with the
// same or a higher version replaces the one in progress (the gate asked
// again, or central answered a later request), a part with a lower version
// is refused (ErrStaleSnapshot), and so are parts of the last few
// snapshots completed or abandoned, so that QoS 1 repeats do not start a
// snapshot that never completes.
//
// The zero Assembler is ready to use with the default bounds. Its methods
// may be called from several goroutines (say, the message handler and a
// timer checking Stale).
type Assembler struct {
	// MaxParts bounds the parts of one snapshot (0: MaxParts).
	MaxParts int
	// MaxCompressed bounds the gzip bytes held for one snapshot (0:
	// DefaultMaxCompressed).
	MaxCompressed int
	// MaxDecompressed bounds a snapshot's decompressed JSON (0:
	// DefaultMaxDecompressed).
	MaxDecompressed int64
	// Now tells the time a part arrives, for Stale (nil: time.Now). Set
	// it to the clock given to Stale.
	Now func() time.Time

	mu      sync.Mutex
	cur     *assembly
	retired [8]string // ids completed or abandoned, most recent at next-1
	next    int
}

type assembly struct {
	id       string
	version  int64
	parts    int
	count    int
	data     [][]byte // by part number - 1; nil while missing
	received int
	bytes    int
	last     time.Time // when the last new part arrived
}

// Add takes one part. When it completes a snapshot, Add returns its
// entries and version with done true, ready for localdb's ApplySnapshot
// (through LocalEntries). A repeated part of the snapshot in progress is
// ignored. An error refuses the part; when the snapshot itself turns out
// broken (its data does not decompress, does not parse, or does not hold
// Count valid entries), it is abandoned and the caller should ask for a
// resync.
func (a *Assembler) Add(p SnapshotPart) (entries []Entry, version int64, done bool, err error) {
	if err := p.validate(); err != nil {
		return nil, 0, false, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	maxParts := a.MaxParts
	if maxParts <= 0 {
		maxParts = MaxParts
	}
	if p.Parts > maxParts {
		return nil, 0, false, invalid("snapshot %q: %d parts, more than %d", p.ID, p.Parts, maxParts)
	}
	if a.isRetired(p.ID) {
		return nil, 0, false, fmt.Errorf("%w: %q was already assembled or abandoned", ErrStaleSnapshot, p.ID)
	}
	if c := a.cur; c != nil && c.id != p.ID {
		if p.Version < c.version {
			return nil, 0, false, fmt.Errorf("%w: %q has version %d, older than %q at %d",
				ErrStaleSnapshot, p.ID, p.Version, c.id, c.version)
		}
		a.retire(c.id)
		a.cur = nil
	}
	if a.cur == nil {
		a.cur = &assembly{id: p.ID, version: p.Version, parts: p.Parts, count: p.Count,
			data: make([][]byte, p.Parts)}
	}
	c := a.cur
	if p.Version != c.version || p.Parts != c.parts || p.Count != c.count {
		return nil, 0, false, invalid("snapshot %q: part %d says version %d, %d parts, count %d; earlier parts said %d, %d, %d",
			p.ID, p.Part, p.Version, p.Parts, p.Count, c.version, c.parts, c.count)
	}
	if c.data[p.Part-1] != nil {
		return nil, 0, false, nil
	}
	maxZ := a.MaxCompressed
	if maxZ <= 0 {
		maxZ = DefaultMaxCompressed
	}
	if c.bytes+len(p.Gzip) > maxZ {
		a.abandon()
		return nil, 0, false, invalid("snapshot %q: more than %d compressed bytes", p.ID, maxZ)
	}
	c.data[p.Part-1] = bytes.Clone(p.Gzip)
	c.received++
	c.bytes += len(p.Gzip)
	c.last = a.now()
	if c.received < c.parts {
		return nil, 0, false, nil
	}
	defer a.abandon() // complete or broken, it is finished either way
	maxJSON := a.MaxDecompressed
	if maxJSON <= 0 {
		maxJSON = DefaultMaxDecompressed
	}
	entries, err = decodeSnapshot(c, maxJSON)
	if err != nil {
		return nil, 0, false, err
	}
	return entries, c.version, true, nil
}

// Stale reports whether a snapshot is in progress whose last new part
// arrived at least after ago (docs/sync.md: 10 s): parts went missing and
// the caller should ask again. A request that got no part at all is the
// caller's to time; the Assembler never heard of it.
func (a *Assembler) Stale(now time.Time, after time.Duration) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cur != nil && now.Sub(a.cur.last) >= after
}

// Pending describes the snapshot in progress, for status and logs: its id,
// the parts received and expected; "" when none.
func (a *Assembler) Pending() (id string, received, parts int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cur == nil {
		return "", 0, 0
	}
	return a.cur.id, a.cur.received, a.cur.parts
}

// Reset abandons the snapshot in progress, if any, and forgets it, so that
// its parts are refused from now on.
func (a *Assembler) Reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.abandon()
}

func (a *Assembler) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Assembler) abandon() {
	if a.cur != nil {
		a.retire(a.cur.id)
		a.cur = nil
	}
}

func (a *Assembler) retire(id string) {
	a.retired[a.next] = id
	a.next = (a.next + 1) % len(a.retired)
}

func (a *Assembler) isRetired(id string) bool {
	for _, r := range a.retired {
		if r == id {
			return true
		}
	}
	return false
}

// errBomb marks decompressed data over the bound.
var errBomb = errors.New("decompressed data over the bound")

// maxEntryJSON bounds the bytes between two '}' of a snapshot's JSON. An
// entry is well under 1 KiB even with every string at its bound and
// escaped; the bound keeps json.Decoder's buffer small whatever the
// sender sends: one giant value, or a long run of whitespace, which
// json.Decoder rescans from its start at every read (quadratic time).
const maxEntryJSON = 64 << 10

// errEntryTooLong marks maxEntryJSON bytes without a '}'.
var errEntryTooLong = fmt.Errorf("more than %d bytes without the end of an entry", maxEntryJSON)

// boundedReader reads at most left bytes of r and fails with errBomb if r
// has more, so that a gzip bomb is cut off, not read to its end; and fails
// with errEntryTooLong at maxEntryJSON bytes without a '}'.
type boundedReader struct {
	r     io.Reader
	left  int64
	since int // bytes since the last '}'
}

func (c *boundedReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		var one [1]byte
		n, err := c.r.Read(one[:])
		if n > 0 {
			return 0, errBomb
		}
		return 0, err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	for _, b := range p[:n] {
		if b == '}' {
			c.since = 0
		} else if c.since++; c.since > maxEntryJSON {
			return 0, errEntryTooLong
		}
	}
	return n, err
}

// decodeSnapshot decompresses and parses a complete snapshot, streaming,
// so that memory stays bounded by the entries themselves.
func decodeSnapshot(c *assembly, maxJSON int64) ([]Entry, error) {
	readers := make([]io.Reader, len(c.data))
	for i, d := range c.data {
		readers[i] = bytes.NewReader(d)
	}
	zr, err := gzip.NewReader(io.MultiReader(readers...))
	if err != nil {
		return nil, invalid("snapshot %q: not gzip: %v", c.id, err)
	}
	cr := &boundedReader{r: zr, left: maxJSON}
	fail := func(err error) error {
		if errors.Is(err, errBomb) {
			return invalid("snapshot %q: more than %d bytes decompressed", c.id, maxJSON)
		}
		return invalid("snapshot %q: %v", c.id, err)
	}
	dec := json.NewDecoder(cr)
	if tok, err := dec.Token(); err != nil {
		return nil, fail(err)
	} else if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, invalid("snapshot %q: not a JSON array", c.id)
	}
	entries := make([]Entry, 0, min(c.count, 1<<16))
	seen := make(map[string]int, min(c.count, 1<<16))
	for dec.More() {
		if len(entries) == c.count {
			return nil, invalid("snapshot %q: more entries than its count %d", c.id, c.count)
		}
		var e Entry
		if err := dec.Decode(&e); err != nil {
			return nil, fail(fmt.Errorf("entry %d: %w", len(entries)+1, err))
		}
		n := len(entries) + 1
		if err := e.validate(); err != nil {
			return nil, invalid("snapshot %q: entry %d (%q): %v", c.id, n, e.ID, err)
		}
		if j, dup := seen[e.ID]; dup {
			return nil, invalid("snapshot %q: entries %d and %d are both reservation %q", c.id, j, n, e.ID)
		}
		seen[e.ID] = n
		entries = append(entries, e)
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return nil, fail(err)
	}
	if len(entries) != c.count {
		return nil, invalid("snapshot %q: %d entries, but its count says %d", c.id, len(entries), c.count)
	}
	// Read to the end: only there does gzip check its checksum, and
	// anything after the array is a fault of the sender.
	rest := io.MultiReader(dec.Buffered(), cr)
	buf := make([]byte, 32<<10)
	for {
		n, err := rest.Read(buf)
		if len(bytes.TrimLeft(buf[:n], " \t\r\n")) != 0 {
			return nil, invalid("snapshot %q: data after the JSON array", c.id)
		}
		if err == io.EOF {
			return entries, nil
		}
		if err != nil {
			return nil, fail(err)
		}
	}
}
