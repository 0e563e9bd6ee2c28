package syncmsg

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

// siteEntries returns n entries like a busy site's: random 16-character
// ids and plates, 300 spots, windows over a fortnight.
func siteEntries(n int) []Entry {
	rng := rand.New(rand.NewPCG(1, 2))
	const idChars = "abcdefghijklmnopqrstuvwxyz234567"
	const plateChars = "ABCDEFGHIJKLMNOPRSTUVWXYZ"
	states := []State{StatePaid, StatePaid, StatePaid, StateTaken, StateTaken, StateLeft, StateCancelled, StateNoShow}
	out := make([]Entry, n)
	for i := range out {
		id := make([]byte, 16)
		for j := range id {
			id[j] = idChars[rng.IntN(len(idChars))]
		}
		plate := fmt.Sprintf("%c%c-%c%c %d", plateChars[rng.IntN(25)], plateChars[rng.IntN(25)],
			plateChars[rng.IntN(25)], plateChars[rng.IntN(25)], rng.IntN(9999)+1)
		from := t0.Add(time.Duration(rng.IntN(14*24*4)) * 15 * time.Minute)
		out[i] = Entry{ID: string(id), SpotID: fmt.Sprint(rng.IntN(300) + 1), From: from,
			Until: from.Add(time.Duration(rng.IntN(16)+1) * 30 * time.Minute), CarID: plate, State: states[rng.IntN(len(states))]}
	}
	return out
}

// addAll gives parts to a, in the given order, through their encoded
// payloads, and returns what the last Add returned.
func addAll(t *testing.T, a *Assembler, parts []SnapshotPart, order []int) ([]Entry, int64, bool, error) {
	t.Helper()
	var (
		entries []Entry
		version int64
		done    bool
		err     error
	)
	for k, i := range order {
		b, err := EncodeSnapshotPart(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > MaxSnapshotPayload {
			t.Fatalf("part %d is %d bytes, more than %d", i+1, len(b), MaxSnapshotPayload)
		}
		p, err := DecodeSnapshotPart(b)
		if err != nil {
			t.Fatal(err)
		}
		entries, version, done, err = a.Add(p)
		if k < len(order)-1 && (done || err != nil) {
			t.Fatalf("part %d of %d: done %v, err %v", k+1, len(order), done, err)
		}
		if k == len(order)-1 {
			return entries, version, done, err
		}
	}
	return entries, version, done, err
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func TestSnapshotOf10000(t *testing.T) {
	entries := siteEntries(10_000)
	start := time.Now()
	parts, err := SplitSnapshot("snap-1", 1207, entries, 0)
	if err != nil {
		t.Fatal(err)
	}
	split := time.Since(start)
	var z, wire int
	for _, p := range parts {
		z += len(p.Gzip)
		b, _ := EncodeSnapshotPart(p)
		wire += len(b)
		if len(p.Gzip) > DefaultPartSize {
			t.Errorf("part %d has %d bytes", p.Part, len(p.Gzip))
		}
	}
	rawJSON, _ := encodeEntries(entries)
	var a Assembler
	start = time.Now()
	got, version, done, err := addAll(t, &a, parts, seq(len(parts)))
	if err != nil || !done || version != 1207 {
		t.Fatalf("done %v, version %d, err %v", done, version, err)
	}
	t.Logf("10,000 entries: %d bytes of JSON, %d bytes gzipped (%.1f%%), %d part(s), %d bytes on the wire in base64 JSON; split in %v, decoded and assembled in %v",
		len(rawJSON), z, 100*float64(z)/float64(len(rawJSON)), len(parts), wire, split.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if !reflect.DeepEqual(got, entries) {
		t.Fatal("the entries did not survive the round trip")
	}
	if id, _, _ := a.Pending(); id != "" {
		t.Errorf("still pending %q after completion", id)
	}
}

func encodeEntries(entries []Entry) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, e := range entries {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%q,"spotId":%q,"reservedFrom":%q,"reservedUntil":%q,"carId":%q,"state":%q}`,
			e.ID, e.SpotID, e.From.Format(time.RFC3339Nano), e.Until.Format(time.RFC3339Nano), e.CarID, e.State)
	}
	b.WriteByte(']')
	return b.Bytes(), nil
}

func TestSnapshotPartsOutOfOrder(t *testing.T) {
	entries := siteEntries(3000)
	parts, err := SplitSnapshot("snap-2", 9, entries, 8<<10)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) < 5 {
		t.Fatalf("only %d parts", len(parts))
	}
	order := seq(len(parts))
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	var a Assembler
	// A repeated part (QoS 1) is ignored on the way.
	if _, _, done, err := a.Add(parts[order[0]]); done || err != nil {
		t.Fatal(done, err)
	}
	got, version, done, err := addAll(t, &a, parts, order)
	if err != nil || !done || version != 9 || !reflect.DeepEqual(got, entries) {
		t.Fatalf("done %v, version %d, %d entries, err %v", done, version, len(got), err)
	}
	// A late repeat of a completed snapshot does not start a new one.
	if _, _, done, err := a.Add(parts[0]); done || !errors.Is(err, ErrStaleSnapshot) {
		t.Errorf("repeat after completion: done %v, err %v", done, err)
	}
	if id, _, _ := a.Pending(); id != "" {
		t.Errorf("pending %q", id)
	}
}

func TestSnapshotMissingPartGoesStale(t *testing.T) {
	parts, err := SplitSnapshot("snap-3", 9, siteEntries(3000), 8<<10)
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	a := Assembler{Now: func() time.Time { return now }}
	if a.Stale(now.Add(time.Hour), 10*time.Second) {
		t.Error("stale with nothing in progress")
	}
	for _, p := range parts[:len(parts)-1] {
		if _, _, done, err := a.Add(p); done || err != nil {
			t.Fatal(done, err)
		}
		now = now.Add(time.Second)
	}
	last := now.Add(-time.Second)
	if id, got, of := a.Pending(); id != "snap-3" || got != len(parts)-1 || of != len(parts) {
		t.Errorf("Pending() = %q, %d, %d", id, got, of)
	}
	if a.Stale(last.Add(9*time.Second), 10*time.Second) {
		t.Error("stale 9 s after the last part")
	}
	if !a.Stale(last.Add(10*time.Second), 10*time.Second) {
		t.Error("not stale 10 s after the last part")
	}
	// The caller asks again; central answers with a new snapshot, which
	// replaces the stale one, whose parts are refused from then on.
	parts2, _ := SplitSnapshot("snap-4", 9, siteEntries(10), 0)
	if _, _, done, err := a.Add(parts2[0]); !done || err != nil {
		t.Fatalf("new snapshot: done %v, err %v", done, err)
	}
	if _, _, _, err := a.Add(parts[len(parts)-1]); !errors.Is(err, ErrStaleSnapshot) {
		t.Errorf("the abandoned snapshot's last part: %v", err)
	}
	if a.Stale(now.Add(time.Hour), 10*time.Second) {
		t.Error("stale after completion")
	}
}

func TestSnapshotOlderIDRefused(t *testing.T) {
	newer, _ := SplitSnapshot("snap-b", 20, siteEntries(3000), 8<<10)
	older, _ := SplitSnapshot("snap-a", 19, siteEntries(3000), 8<<10)
	same, _ := SplitSnapshot("snap-c", 20, siteEntries(3000), 8<<10)
	var a Assembler
	if _, _, _, err := a.Add(newer[0]); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := a.Add(older[1]); !errors.Is(err, ErrStaleSnapshot) {
		t.Errorf("older version: %v", err)
	}
	if id, n, _ := a.Pending(); id != "snap-b" || n != 1 {
		t.Errorf("the older part disturbed the newer snapshot: %q, %d", id, n)
	}
	// Another snapshot at the same version (a second request's answer)
	// takes over; the first one's parts are refused from then on.
	if _, _, _, err := a.Add(same[0]); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := a.Add(newer[1]); !errors.Is(err, ErrStaleSnapshot) {
		t.Errorf("replaced snapshot: %v", err)
	}
	got, v, done, err := addAll(t, &a, same, seq(len(same))[1:])
	if !done || err != nil || v != 20 || len(got) != 3000 {
		t.Errorf("done %v, version %d, %d entries, %v", done, v, len(got), err)
	}
	// After completion, a snapshot at a lower version is accepted: central
	// may have been restored from a backup, and the gate asked.
	low, _ := SplitSnapshot("snap-d", 3, siteEntries(5), 0)
	if _, v, done, err := a.Add(low[0]); !done || err != nil || v != 3 {
		t.Errorf("lower version after completion: %v, %v", done, err)
	}
	a.Reset()
	if _, _, _, err := a.Add(same[0]); !errors.Is(err, ErrStaleSnapshot) {
		t.Errorf("after Reset: %v", err)
	}
}

func TestSnapshotPartsDisagree(t *testing.T) {
	parts, _ := SplitSnapshot("snap-5", 9, siteEntries(3000), 8<<10)
	var a Assembler
	if _, _, _, err := a.Add(parts[0]); err != nil {
		t.Fatal(err)
	}
	for _, f := range []func(p *SnapshotPart){
		func(p *SnapshotPart) { p.Count++ },
		func(p *SnapshotPart) { p.Version++ },
		func(p *SnapshotPart) { p.Parts++ },
	} {
		p := parts[1]
		f(&p)
		if _, _, _, err := a.Add(p); !errors.Is(err, ErrInvalid) {
			t.Errorf("disagreeing part: %v", err)
		}
	}
	if _, _, _, err := a.Add(SnapshotPart{ID: "x"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("invalid part: %v", err)
	}
	got, _, done, err := addAll(t, &a, parts, seq(len(parts))[1:])
	if !done || err != nil || len(got) != 3000 {
		t.Errorf("the good parts still complete: %v, %v", done, err)
	}
}

// gzipParts compresses raw and cuts it into parts as SplitSnapshot would,
// for snapshots SplitSnapshot refuses to make.
func gzipParts(t *testing.T, id string, count int, raw []byte, maxPart int) []SnapshotPart {
	t.Helper()
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	zw.Write(raw)
	zw.Close()
	z := b.Bytes()
	var parts []SnapshotPart
	for i := 0; i < len(z); i += maxPart {
		parts = append(parts, SnapshotPart{V: 1, ID: id, Version: 1, Count: count, Gzip: z[i:min(i+maxPart, len(z))]})
	}
	for i := range parts {
		parts[i].Part, parts[i].Parts = i+1, len(parts)
	}
	return parts
}

func TestSnapshotBrokenContentsRefused(t *testing.T) {
	e := `{"id":"r1","spotId":"3","reservedFrom":"2026-05-01T08:00:00Z","reservedUntil":"2026-05-01T10:00:00Z","carId":"X","state":"paid"}`
	for _, c := range []struct {
		name, raw, want string
		count           int
	}{
		{"count too high", "[" + e + "]", "1 entries, but its count says 2", 2},
		{"count too low", "[" + e + "," + strings.Replace(e, "r1", "r2", 1) + "]", "more entries than its count 1", 1},
		{"invalid entry", "[" + strings.Replace(e, "paid", "expired", 1) + "]", `state "expired"`, 1},
		{"duplicate", "[" + e + "," + e + "]", "both reservation", 2},
		{"not an array", `{"a":1}`, "not a JSON array", 0},
		{"trailing data", "[" + e + "] x", "data after the JSON array", 1},
		{"truncated", "[" + e, "EOF", 1},
		{"bad JSON", "[" + e + ",}", "entry 2", 2},
	} {
		var a Assembler
		_, _, done, err := a.Add(gzipParts(t, "s", c.count, []byte(c.raw), DefaultPartSize)[0])
		if done || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: done %v, err %v, want %q", c.name, done, err, c.want)
		}
		if id, _, _ := a.Pending(); id != "" {
			t.Errorf("%s: the broken snapshot stays pending", c.name)
		}
	}
	// Corrupt compressed data: the gzip checksum or the inflater says so.
	parts, _ := SplitSnapshot("snap-6", 1, siteEntries(100), 0)
	bad := parts[0]
	bad.Gzip = bytes.Clone(bad.Gzip)
	bad.Gzip[len(bad.Gzip)/2] ^= 0xff
	var a Assembler
	if _, _, done, err := a.Add(bad); done || !errors.Is(err, ErrInvalid) {
		t.Errorf("corrupt data: done %v, err %v", done, err)
	}
	notGzip := parts[0]
	notGzip.ID, notGzip.Gzip = "snap-7", []byte("[]")
	if _, _, done, err := a.Add(notGzip); done || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "not gzip") {
		t.Errorf("not gzip: done %v, err %v", done, err)
	}
	// A checksum error after the closing bracket is still caught.
	good, _ := SplitSnapshot("snap-8", 1, siteEntries(100), 0)
	z := bytes.Clone(good[0].Gzip)
	z[len(z)-6] ^= 0xff // inside the CRC-32 trailer
	good[0].Gzip = z
	if _, _, done, err := a.Add(good[0]); done || !errors.Is(err, ErrInvalid) {
		t.Errorf("bad checksum: done %v, err %v", done, err)
	}
}

// bomb makes a gzip bomb: the decompressed JSON that write produces, as
// gzip members (gzip.Reader reads them as one stream), each member made
// once by z and repeated as the writer repeats it, so that the test does
// not spend its time compressing 65 MiB.
func bomb(t *testing.T, id string, count int, write func(z func(string) []byte, w *bytes.Buffer)) []SnapshotPart {
	t.Helper()
	made := map[string][]byte{}
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestCompression) // reused: each one is ~1 MB of state
	z := func(s string) []byte {
		if m, ok := made[s]; ok {
			return m
		}
		var b bytes.Buffer
		zw.Reset(&b)
		io.WriteString(zw, s)
		zw.Close()
		made[s] = b.Bytes()
		return made[s]
	}
	var b bytes.Buffer
	write(z, &b)
	data := b.Bytes()
	var parts []SnapshotPart
	for i := 0; i < len(data); i += DefaultPartSize {
		parts = append(parts, SnapshotPart{ID: id, Count: count, Gzip: data[i:min(i+DefaultPartSize, len(data))]})
	}
	for i := range parts {
		parts[i].Part, parts[i].Parts = i+1, len(parts)
	}
	return parts
}

// addBomb gives the parts to a fresh Assembler and checks that it refuses
// them without allocating more than maxAlloc bytes on the way.
func addBomb(t *testing.T, name string, parts []SnapshotPart, want string, maxAlloc uint64) {
	t.Helper()
	var a Assembler
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	var (
		done bool
		err  error
	)
	for _, p := range parts {
		if _, _, done, err = a.Add(p); err != nil {
			break
		}
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	z := 0
	for _, p := range parts {
		z += len(p.Gzip)
	}
	t.Logf("%s: %d bytes of gzip in %d part(s), refused in %v, %d KiB allocated: %v",
		name, z, len(parts), time.Since(start).Round(time.Millisecond), alloc>>10, err)
	if done || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: done %v, err %v, want %q", name, done, err, want)
	}
	if alloc > maxAlloc {
		t.Errorf("%s: %d bytes allocated, more than %d", name, alloc, maxAlloc)
	}
}

func TestSnapshotGzipBombRefused(t *testing.T) {
	mib := strings.Repeat(" ", 1<<20)
	// "[" and 65 MiB of spaces: valid JSON whitespace, which json.Decoder
	// would buffer whole and rescan at every read.
	spaces := bomb(t, "spaces", 0, func(z func(string) []byte, w *bytes.Buffer) {
		w.Write(z("["))
		m := z(mib)
		for range 65 {
			w.Write(m)
		}
		w.Write(z("]"))
	})
	addBomb(t, "65 MiB of spaces", spaces, "without the end of an entry", 8<<20)
	// One giant string: json.Decoder would buffer it whole.
	giant := bomb(t, "giant", 1, func(z func(string) []byte, w *bytes.Buffer) {
		w.Write(z(`[{"id":"`))
		a := z(strings.Repeat("a", 1<<20))
		for range 65 {
			w.Write(a)
		}
		w.Write(z(`"}]`))
	})
	addBomb(t, "a 65 MiB string", giant, "without the end of an entry", 8<<20)
	// Valid entries, each padded with 60 KiB of spaces: every bound but
	// the decompressed size holds, and that one stops it at 64 MiB.
	padded := bomb(t, "padded", 2000, func(z func(string) []byte, w *bytes.Buffer) {
		w.Write(z("["))
		pad := z(mib[:60<<10])
		rest := z(`"spotId":"3","reservedFrom":"2026-05-01T08:00:00Z","reservedUntil":"2026-05-01T10:00:00Z","state":"paid"}`)
		for i := range 1100 {
			if i > 0 {
				w.Write(z(","))
			}
			w.Write(z(fmt.Sprintf(`{"id":"r%d",`, i)))
			w.Write(pad)
			w.Write(rest)
		}
		w.Write(z("]"))
	})
	addBomb(t, "1,100 entries padded to 66 MiB", padded, "more than 67108864 bytes decompressed", 8<<20)

	// The bound is the Assembler's to set.
	small := Assembler{MaxDecompressed: 1 << 10}
	good, _ := SplitSnapshot("s", 1, siteEntries(100), 0)
	if _, _, done, err := small.Add(good[0]); done || !strings.Contains(fmt.Sprint(err), "more than 1024 bytes decompressed") {
		t.Errorf("small bound: %v, %v", done, err)
	}
}

func TestAssemblerBounds(t *testing.T) {
	parts, _ := SplitSnapshot("s", 1, siteEntries(3000), 8<<10)
	a := Assembler{MaxParts: 3}
	if _, _, _, err := a.Add(parts[0]); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "more than 3") {
		t.Errorf("MaxParts: %v", err)
	}
	b := Assembler{MaxCompressed: 20 << 10}
	var err error
	for _, p := range parts[:3] {
		if _, _, _, err = b.Add(p); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "compressed bytes") {
		t.Errorf("MaxCompressed: %v", err)
	}
	if id, _, _ := b.Pending(); id != "" {
		t.Error("the snapshot over the bound stays pending")
	}
}

func TestSplitSnapshotRefusals(t *testing.T) {
	es := siteEntries(3)
	for name, f := range map[string]func() error{
		"part too big": func() error { _, err := SplitSnapshot("s", 1, es, DefaultPartSize+1); return err },
		"bad id":       func() error { _, err := SplitSnapshot("a b", 1, es, 0); return err },
		"empty id":     func() error { _, err := SplitSnapshot("", 1, es, 0); return err },
		"negative":     func() error { _, err := SplitSnapshot("s", -1, es, 0); return err },
		"invalid":      func() error { _, err := SplitSnapshot("s", 1, []Entry{{ID: "x"}}, 0); return err },
		"duplicate":    func() error { _, err := SplitSnapshot("s", 1, []Entry{es[0], es[0]}, 0); return err },
		"too many parts": func() error {
			_, err := SplitSnapshot("s", 1, siteEntries(3000), 64)
			return err
		},
	} {
		if f() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// An empty site is a snapshot too: one part, count 0.
	parts, err := SplitSnapshot("empty", 5, nil, 0)
	if err != nil || len(parts) != 1 || parts[0].Count != 0 {
		t.Fatalf("%+v, %v", parts, err)
	}
	var a Assembler
	got, v, done, err := a.Add(parts[0])
	if !done || err != nil || v != 5 || got == nil || len(got) != 0 {
		t.Errorf("empty: %v, %d, %v, %v", got, v, done, err)
	}
}
