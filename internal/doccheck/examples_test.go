package doccheck

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parkgate/parkgate/gate/authz"
	"github.com/parkgate/parkgate/gate/barrier"
	"github.com/parkgate/parkgate/gate/lane"
	"github.com/parkgate/parkgate/gate/localdb"
	"github.com/parkgate/parkgate/sync/syncmsg"
	"github.com/parkgate/parkgate/ticket"
)

// An example is a fenced code block of a doc whose info string carries
// "doccheck=NAME" (```json doccheck=changes): the block is a worked example
// that this test checks against the real code, so that it cannot go stale.
type example struct {
	name, body string
	line       int
}

// examples reads the marked blocks of docs/FILE, in order.
func examples(t *testing.T, file string) []example {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "docs", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []example
	var cur *example
	var body strings.Builder
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		fence := strings.HasPrefix(strings.TrimSpace(line), "```")
		switch {
		case cur == nil && fence:
			for _, w := range strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "```")) {
				if name, ok := strings.CutPrefix(w, "doccheck="); ok {
					cur = &example{name: name, line: n}
					body.Reset()
				}
			}
		case cur != nil && fence:
			cur.body = body.String()
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			body.WriteString(line)
			body.WriteByte('\n')
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("docs/%s:%d: example %s has no closing fence", file, cur.line, cur.name)
	}
	return out
}

func byName(exs []example, name string) []example {
	var out []example
	for _, e := range exs {
		if e.name == name {
			out = append(out, e)
		}
	}
	return out
}

// strict decodes JSON into v refusing fields v does not have: an example
// must not show a field the protocol does not know (a renamed one, say).
func strict(body string, v any) error {
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// Every message example of docs/sync.md is a payload the real decoder
// accepts, with no field the message does not have.
func TestSyncMessageExamples(t *testing.T) {
	exs := examples(t, "sync.md")
	decoders := map[string]struct {
		decode func([]byte) (any, error)
		shape  func() any
	}{
		"central-status": {func(b []byte) (any, error) { return syncmsg.DecodeCentralStatus(b) }, func() any { return new(syncmsg.CentralStatus) }},
		"changes":        {func(b []byte) (any, error) { return syncmsg.DecodeChanges(b) }, func() any { return new(syncmsg.Changes) }},
		"gate-status":    {func(b []byte) (any, error) { return syncmsg.DecodeGateStatus(b) }, func() any { return new(syncmsg.GateStatus) }},
		"events":         {func(b []byte) (any, error) { return syncmsg.DecodeEvents(b) }, func() any { return new(syncmsg.Events) }},
		"sync-request":   {func(b []byte) (any, error) { return syncmsg.DecodeSyncRequest(b) }, func() any { return new(syncmsg.SyncRequest) }},
		"ack":            {func(b []byte) (any, error) { return syncmsg.DecodeAck(b) }, func() any { return new(syncmsg.Ack) }},
		"snapshot-part":  {func(b []byte) (any, error) { return syncmsg.DecodeSnapshotPart(b) }, func() any { return new(syncmsg.SnapshotPart) }},
		"command":        {func(b []byte) (any, error) { return syncmsg.DecodeCommand(b) }, func() any { return new(syncmsg.Command) }},
		"result":         {func(b []byte) (any, error) { return syncmsg.DecodeResult(b) }, func() any { return new(syncmsg.Result) }},
		// An entry alone is checked inside a batch, whose encoder
		// validates it.
		"entry": {func(b []byte) (any, error) {
			var e syncmsg.Entry
			if err := strict(string(b), &e); err != nil {
				return nil, err
			}
			return syncmsg.EncodeChanges(syncmsg.Changes{From: 0, To: 1, Entries: []syncmsg.VersionedEntry{{Version: 1, Entry: e}}})
		}, func() any { return new(syncmsg.Entry) }},
		"snapshot-entries": {func(b []byte) (any, error) {
			var es []syncmsg.Entry
			if err := strict(string(b), &es); err != nil {
				return nil, err
			}
			return syncmsg.SplitSnapshot("check", 0, es, 0)
		}, func() any { return new([]syncmsg.Entry) }},
	}
	seen := map[string]bool{}
	for _, ex := range exs {
		d, ok := decoders[ex.name]
		if !ok {
			t.Errorf("docs/sync.md:%d: example %q: this test does not know that kind", ex.line, ex.name)
			continue
		}
		seen[ex.name] = true
		payload := []byte(strings.TrimSpace(ex.body))
		if _, err := d.decode(payload); err != nil {
			t.Errorf("docs/sync.md:%d: the %s example does not decode: %v\n%s", ex.line, ex.name, err, payload)
		}
		if err := strict(string(payload), d.shape()); err != nil {
			t.Errorf("docs/sync.md:%d: the %s example: %v", ex.line, ex.name, err)
		}
	}
	for name := range decoders {
		if !seen[name] {
			t.Errorf("docs/sync.md has no %s example (```json doccheck=%s)", name, name)
		}
	}
}

// The two-part snapshot of docs/sync.md: each part's base64 decodes on its
// own, the bytes joined in part order make the stated entries, and joining
// the base64 text first (the mistake the example warns of) does not work.
func TestSnapshotWorkedExample(t *testing.T) {
	exs := examples(t, "sync.md")
	partExs := byName(exs, "snapshot-part")
	want := byName(exs, "snapshot-entries")
	if len(partExs) < 2 || len(want) != 1 {
		t.Fatalf("docs/sync.md: %d snapshot-part and %d snapshot-entries examples; want at least 2 and 1", len(partExs), len(want))
	}
	var a syncmsg.Assembler
	var joined []byte
	var partLens []int
	var text strings.Builder
	var got []syncmsg.Entry
	var version int64
	for i, ex := range partExs {
		p, err := syncmsg.DecodeSnapshotPart([]byte(strings.TrimSpace(ex.body)))
		if err != nil {
			t.Fatalf("docs/sync.md:%d: part %d: %v", ex.line, i+1, err)
		}
		if p.Part != i+1 || p.Parts != len(partExs) {
			t.Fatalf("docs/sync.md:%d: part %d of %d; the doc shows it as %d of %d", ex.line, p.Part, p.Parts, i+1, len(partExs))
		}
		if i == 0 && !bytes.HasPrefix(p.Gzip, []byte{0x1f, 0x8b, 0x08}) {
			t.Errorf("docs/sync.md:%d: part 1 does not start with gzip's magic number 1f 8b 08: % x", ex.line, p.Gzip[:3])
		}
		if p.Part < p.Parts && !strings.Contains(ex.body, `==",`) {
			t.Errorf("docs/sync.md:%d: part %d's base64 does not end in == padding, which the text says it shows", ex.line, p.Part)
		}
		joined = append(joined, p.Gzip...)
		partLens = append(partLens, len(p.Gzip))
		var raw struct{ Gzip string }
		if err := json.Unmarshal([]byte(ex.body), &raw); err != nil {
			t.Fatal(err)
		}
		text.WriteString(raw.Gzip)
		entries, v, done, err := a.Add(p)
		if err != nil {
			t.Fatalf("docs/sync.md:%d: assembling part %d: %v", ex.line, p.Part, err)
		}
		if done != (i == len(partExs)-1) {
			t.Fatalf("docs/sync.md:%d: after part %d, done = %v", ex.line, p.Part, done)
		}
		got, version = entries, v
	}
	var wantEntries []syncmsg.Entry
	if err := strict(want[0].body, &wantEntries); err != nil {
		t.Fatalf("docs/sync.md:%d: %v", want[0].line, err)
	}
	if !reflect.DeepEqual(got, wantEntries) {
		t.Errorf("docs/sync.md: the parts assemble to\n%+v\nthe doc states\n%+v", got, wantEntries)
	}
	if version != 1207 {
		t.Errorf("the example's version is %d; the text says 1207", version)
	}
	if _, err := base64.StdEncoding.DecodeString(text.String()); err == nil {
		t.Error("the parts' base64 text joined decodes too: the example does not show why the bytes are joined, not the text")
	}
	// The text's figures follow the parts.
	doc := strings.Join(strings.Fields(readDoc(t, "sync.md")), " ")
	for _, s := range []string{
		"Part 1's `gzip` decodes to " + strconv.Itoa(partLens[0]) + " bytes",
		"part 2's to " + strconv.Itoa(partLens[1]),
		"The " + strconv.Itoa(len(joined)) + " gzip bytes make two parts",
		"Joined, the " + strconv.Itoa(len(joined)) + " bytes gunzip",
	} {
		if !strings.Contains(doc, s) {
			t.Errorf("docs/sync.md does not say %q: the text and the example disagree", s)
		}
	}
}

func readDoc(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", file))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The ticket of docs/tickets.md: the key's seed gives the stated public key
// and key id, the ticket verifies with that key and decodes to the stated
// fields, and the annotated bytes are the ticket's bytes.
func TestTicketWorkedExample(t *testing.T) {
	exs := examples(t, "tickets.md")
	one := func(name string) example {
		t.Helper()
		es := byName(exs, name)
		if len(es) != 1 {
			t.Fatalf("docs/tickets.md: %d %s examples, want 1", len(es), name)
		}
		return es[0]
	}
	keyEx, codeEx, bytesEx, fieldsEx := one("ticket-key"), one("ticket"), one("ticket-bytes"), one("ticket-fields")

	key := map[string]string{}
	for l := range strings.SplitSeq(keyEx.body, "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		// "seed …", "public key …", "key id …": the value is the last field.
		f := strings.Fields(l)
		key[strings.Join(f[:len(f)-1], " ")] = f[len(f)-1]
	}
	seed, err := hex.DecodeString(key["seed"])
	if err != nil || len(seed) != ed25519.SeedSize {
		t.Fatalf("docs/tickets.md:%d: seed %q: %v", keyEx.line, key["seed"], err)
	}
	signer, err := ticket.NewSigner(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	if got := ticket.FormatPublicKey(signer.PublicKey()); got != key["public key"] {
		t.Errorf("docs/tickets.md:%d: the seed's public key is %s, the doc says %s", keyEx.line, got, key["public key"])
	}
	if got := signer.KeyID(); got != key["key id"] {
		t.Errorf("docs/tickets.md:%d: the key id is %s, the doc says %s", keyEx.line, got, key["key id"])
	}
	pub, err := ticket.ParsePublicKey(key["public key"])
	if err != nil {
		t.Fatalf("docs/tickets.md:%d: %v", keyEx.line, err)
	}
	v, err := ticket.NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	code := strings.TrimSpace(codeEx.body)
	got, err := v.VerifySignature(code)
	if err != nil {
		t.Fatalf("docs/tickets.md:%d: the ticket does not verify with the example key: %v", codeEx.line, err)
	}
	var want struct {
		KeyID         string    `json:"keyId"`
		ReservationID string    `json:"reservationId"`
		SpotID        string    `json:"spotId"`
		From          time.Time `json:"from"`
		Until         time.Time `json:"until"`
		CarID         string    `json:"carId"`
	}
	if err := strict(fieldsEx.body, &want); err != nil {
		t.Fatalf("docs/tickets.md:%d: %v", fieldsEx.line, err)
	}
	if got.KeyID != want.KeyID || got.ReservationID != want.ReservationID || got.SpotID != want.SpotID ||
		!got.From.Equal(want.From) || !got.Until.Equal(want.Until) || got.CarID != want.CarID {
		t.Errorf("docs/tickets.md:%d: the ticket decodes to %+v; the doc states %+v", fieldsEx.line, got, want)
	}
	// Signing the stated fields again gives the same string: signing is
	// deterministic, so the example is exactly what centrald issues.
	again, err := signer.Issue(ticket.Ticket{ReservationID: want.ReservationID, SpotID: want.SpotID, From: want.From, Until: want.Until, CarID: want.CarID})
	if err != nil || again != code {
		t.Errorf("issuing the stated fields with the example key gives %q (%v), the doc shows %q", again, err, code)
	}
	if n := len(code); !strings.Contains(readDoc(t, "tickets.md"), "The ticket ("+strconv.Itoa(n)+" characters)") {
		t.Errorf("docs/tickets.md does not give the ticket's length, %d characters", n)
	}

	// The annotated bytes: the hex before the annotation of every line.
	var dump []byte
	for l := range strings.SplitSeq(bytesEx.body, "\n") {
		hexPart, _, _ := strings.Cut(l, "   ") // an annotation follows three or more spaces
		b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(hexPart), " ", ""))
		if err != nil {
			t.Fatalf("docs/tickets.md:%d: line %q: %v", bytesEx.line, l, err)
		}
		dump = append(dump, b...)
	}
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.TrimPrefix(code, "PG"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dump, raw) {
		t.Errorf("docs/tickets.md:%d: the annotated bytes\n% x\nare not the ticket's\n% x", bytesEx.line, dump, raw)
	}
	// The signature is over the domain string and the payload.
	payload, sig := raw[:len(raw)-ed25519.SignatureSize], raw[len(raw)-ed25519.SignatureSize:]
	if !ed25519.Verify(pub, append([]byte("parkgate-ticket-v1\x00"), payload...), sig) {
		t.Error("the signature is not over \"parkgate-ticket-v1\\x00\" and the payload, as the doc says")
	}
}

// docs/sync.md names every word a gate may send in an event (kinds,
// sources, decision reasons, barrier faults) and every command result
// word, so that a vendor's gate can be written from it.
func TestSyncDocListsEveryWord(t *testing.T) {
	doc := readDoc(t, "sync.md")
	words := []string{
		string(localdb.KindDecision), string(localdb.KindBarrierFault),
		string(localdb.SourceQR), string(localdb.SourcePlate), string(localdb.SourceRemote), string(localdb.SourceManual),
		string(lane.ReasonRemote), string(lane.ReasonDuplicate),
		string(barrier.EventFault), string(barrier.EventFaultCleared), string(barrier.FaultNotOpened), string(barrier.FaultNotClosed),
		syncmsg.RefusedExpired, syncmsg.RefusedDuplicate, syncmsg.RefusedUnknownType, syncmsg.RefusedClockUntrusted,
		syncmsg.ReasonStart, syncmsg.ReasonGap, syncmsg.ReasonStale, syncmsg.ReasonCommand,
		syncmsg.CmdOpen, syncmsg.CmdResync,
	}
	for _, r := range authz.Reasons {
		words = append(words, string(r))
	}
	for _, w := range words {
		if !strings.Contains(doc, "`"+w+"`") {
			t.Errorf("docs/sync.md does not name `%s`", w)
		}
	}
}
