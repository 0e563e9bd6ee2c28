package syncmsg

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)

func entry(id string, st State) Entry {
	return Entry{ID: id, SpotID: "3", From: t0, Until: t0.Add(2 * time.Hour), CarID: "B-XY 123", State: st}
}

func event(seq int64) Event {
	return Event{EventID: fmt.Sprintf("ev-%d", seq), Seq: seq, Kind: "decision", Role: RoleEntry, Time: t0,
		Source: "qr", Granted: true, Reason: "ticket", ReservationID: "r1", SpotID: "3", CarID: "B-XY 123",
		ClockTrusted: true, Plate: "BXY123"}
}

// samples holds a valid message of every type, with its encoder and a
// decoder returning it as any, for the tables below.
type sample struct {
	name   string
	msg    any
	encode func() ([]byte, error)
	decode func([]byte) (any, error)
}

func samples() []sample {
	cs := CentralStatus{Online: true, Session: 3, Version: 1207, At: t0}
	cw := CentralStatus{Session: 3}
	ch := Changes{From: 41, To: 44, Entries: []VersionedEntry{{42, entry("r1", StatePaid)}, {44, entry("r2", StateCancelled)}}}
	hb := Heartbeat(44)
	gs := GateStatus{Online: true, Session: 9, GateID: "entry-1", Role: RoleEntry, Software: "v1.2.3",
		CacheVersion: 1207, Outbox: 4, Barrier: "closed", ClockTrusted: true, At: t0,
		Faults: []GateFault{{Kind: "record", Error: "decisions cannot be recorded: database or disk is full", Since: t0.Add(-time.Minute), At: t0}}}
	gw := GateStatus{Session: 9, GateID: "entry-1"}
	ev := Events{Events: []Event{event(17), event(18)}}
	sr := SyncRequest{ID: "req-1", Have: 41, Reason: ReasonGap}
	ak := Ack{EventIDs: []string{"ev-17", "ev-18"}}
	cm := Command{ID: "cmd-1", Type: CmdOpen, Expires: t0.Add(10 * time.Second), Reason: "operator anna"}
	rs := Result{ID: "cmd-1", OK: false, Error: RefusedExpired}
	sp := SnapshotPart{ID: "snap-9f3a", Version: 1207, Part: 1, Parts: 2, Count: 10000, Gzip: []byte{0x1f, 0x8b, 8}}
	mk := func(name string, msg any, enc func() ([]byte, error), dec func([]byte) (any, error)) sample {
		return sample{name, msg, enc, dec}
	}
	return []sample{
		mk("central birth", cs, func() ([]byte, error) { return EncodeCentralStatus(cs) }, func(b []byte) (any, error) { return DecodeCentralStatus(b) }),
		mk("central will", cw, func() ([]byte, error) { return EncodeCentralStatus(cw) }, func(b []byte) (any, error) { return DecodeCentralStatus(b) }),
		mk("changes", ch, func() ([]byte, error) { return EncodeChanges(ch) }, func(b []byte) (any, error) { return DecodeChanges(b) }),
		mk("heartbeat", hb, func() ([]byte, error) { return EncodeChanges(hb) }, func(b []byte) (any, error) { return DecodeChanges(b) }),
		mk("gate birth", gs, func() ([]byte, error) { return EncodeGateStatus(gs) }, func(b []byte) (any, error) { return DecodeGateStatus(b) }),
		mk("gate will", gw, func() ([]byte, error) { return EncodeGateStatus(gw) }, func(b []byte) (any, error) { return DecodeGateStatus(b) }),
		mk("events", ev, func() ([]byte, error) { return EncodeEvents(ev) }, func(b []byte) (any, error) { return DecodeEvents(b) }),
		mk("sync request", sr, func() ([]byte, error) { return EncodeSyncRequest(sr) }, func(b []byte) (any, error) { return DecodeSyncRequest(b) }),
		mk("ack", ak, func() ([]byte, error) { return EncodeAck(ak) }, func(b []byte) (any, error) { return DecodeAck(b) }),
		mk("command", cm, func() ([]byte, error) { return EncodeCommand(cm) }, func(b []byte) (any, error) { return DecodeCommand(b) }),
		mk("result", rs, func() ([]byte, error) { return EncodeResult(rs) }, func(b []byte) (any, error) { return DecodeResult(b) }),
		mk("snapshot part", sp, func() ([]byte, error) { return EncodeSnapshotPart(sp) }, func(b []byte) (any, error) { return DecodeSnapshotPart(b) }),
	}
}

// withV returns msg with its V field set to 1, as the decoder returns it.
func withV(msg any) any {
	v := reflect.New(reflect.TypeOf(msg)).Elem()
	v.Set(reflect.ValueOf(msg))
	v.FieldByName("V").SetInt(FormatVersion)
	return v.Interface()
}

func TestRoundTrips(t *testing.T) {
	for _, s := range samples() {
		b, err := s.encode()
		if err != nil {
			t.Fatalf("%s: encode: %v", s.name, err)
		}
		if !bytes.HasPrefix(b, []byte(`{"v":1,`)) {
			t.Errorf("%s: payload does not start with \"v\":1: %s", s.name, b)
		}
		got, err := s.decode(b)
		if err != nil {
			t.Fatalf("%s: decode %s: %v", s.name, b, err)
		}
		if want := withV(s.msg); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: round trip\n got %+v\nwant %+v", s.name, got, want)
		}
	}
}

func TestWillsCarryNoBirthFields(t *testing.T) {
	b, _ := EncodeCentralStatus(CentralStatus{Session: 3, Version: 9, At: t0})
	if string(b) != `{"v":1,"online":false,"session":3}` {
		t.Errorf("central will = %s", b)
	}
	b, _ = EncodeGateStatus(GateStatus{Session: 9, GateID: "g", Role: RoleExit, CacheVersion: 5})
	if string(b) != `{"v":1,"online":false,"session":9,"gateId":"g"}` {
		t.Errorf("gate will = %s", b)
	}
	// A birth keeps its zero counters: cacheVersion 0 and outbox 0 mean
	// something.
	b, _ = EncodeGateStatus(GateStatus{Online: true, Session: 1, GateID: "g", Role: RoleExit, At: t0})
	for _, f := range []string{`"cacheVersion":0`, `"outbox":0`, `"clockTrusted":false`, `"barrier":""`, `"faults":[]`} {
		if !strings.Contains(string(b), f) {
			t.Errorf("gate birth lacks %s: %s", f, b)
		}
	}
	if b, _ := EncodeChanges(Heartbeat(7)); string(b) != `{"v":1,"from":7,"to":7}` {
		t.Errorf("heartbeat = %s", b)
	}
}

// The examples of docs/sync.md, with their elisions filled in, decode.
func TestDocExamplesDecode(t *testing.T) {
	const e = `{"id":"znscvmy6lijvg6j5","spotId":"3","reservedFrom":"2026-05-01T08:00:00Z","reservedUntil":"2026-05-01T10:00:00Z","carId":"B-XY 123","state":"paid"}`
	ch, err := DecodeChanges([]byte(`{"v":1,"from":41,"to":44,"entries":[{"version":42,"entry":` + e + `},{"version":44,"entry":` + e + `}]}`))
	if err != nil || ch.From != 41 || ch.To != 44 || len(ch.Entries) != 2 || ch.Entries[0].Entry.ID != "znscvmy6lijvg6j5" ||
		!ch.Entries[0].Entry.From.Equal(t0) || ch.Entries[1].Entry.State != StatePaid {
		t.Errorf("changes: %+v, %v", ch, err)
	}
	if _, err := DecodeChanges([]byte(`{"v":1,"from":1207,"to":1207}`)); err != nil {
		t.Errorf("heartbeat: %v", err)
	}
	cs, err := DecodeCentralStatus([]byte(`{"v":1,"online":true,"session":2,"version":1207,"at":"2026-05-01T08:00:00Z"}`))
	if err != nil || !cs.Online || cs.Version != 1207 {
		t.Errorf("central status: %+v, %v", cs, err)
	}
	gs, err := DecodeGateStatus([]byte(`{"v":1,"online":true,"session":5,"gateId":"entry-1","role":"entry","software":"1.0",
		"cacheVersion":1207,"outbox":0,"barrier":"closed","clockTrusted":true,"at":"2026-05-01T08:00:00Z"}`))
	if err != nil || gs.GateID != "entry-1" || gs.CacheVersion != 1207 {
		t.Errorf("gate status: %+v, %v", gs, err)
	}
	evs, err := DecodeEvents([]byte(`{"v":1,"events":[{"eventId":"d63f","seq":17,"kind":"decision","role":"entry","time":"2026-05-01T08:01:00Z","source":"qr",
		"granted":true,"reason":"ticket","reservationId":"znscvmy6lijvg6j5","spotId":"3","carId":"B-XY 123",
		"overstay":false,"presenceUnknown":false,"clockTrusted":true}]}`))
	if err != nil || len(evs.Events) != 1 || evs.Events[0].Seq != 17 || !evs.Events[0].Granted {
		t.Errorf("events: %+v, %v", evs, err)
	}
	if r, err := DecodeSyncRequest([]byte(`{"v":1,"id":"r-1","have":41,"reason":"gap"}`)); err != nil || r.Have != 41 {
		t.Errorf("sync: %+v, %v", r, err)
	}
	if r, err := DecodeResult([]byte(`{"v":1,"id":"c-1","ok":true}`)); err != nil || !r.OK {
		t.Errorf("result: %+v, %v", r, err)
	}
	if a, err := DecodeAck([]byte(`{"v":1,"eventIds":["d63f"]}`)); err != nil || a.EventIDs[0] != "d63f" {
		t.Errorf("ack: %+v, %v", a, err)
	}
	if c, err := DecodeCommand([]byte(`{"v":1,"id":"c-1","type":"resync","expires":"2026-05-01T08:00:10Z","reason":"operator"}`)); err != nil || c.Type != CmdResync {
		t.Errorf("command: %+v, %v", c, err)
	}
	if p, err := DecodeSnapshotPart([]byte(`{"v":1,"id":"snap-9f3a","version":1207,"part":1,"parts":2,"count":10000,"gzip":"H4sIAAAA"}`)); err != nil || p.Parts != 2 || len(p.Gzip) != 6 {
		t.Errorf("snapshot part: %+v, %v", p, err)
	}
	// Receivers ignore unknown fields.
	if _, err := DecodeAck([]byte(`{"v":1,"eventIds":["a"],"future":{"x":[1,2]}}`)); err != nil {
		t.Errorf("unknown field: %v", err)
	}
}

func TestVersionRefusals(t *testing.T) {
	for _, s := range samples() {
		good, _ := s.encode()
		rest := bytes.TrimPrefix(good, []byte(`{"v":1,`))
		for _, c := range []struct {
			payload string
			got     string
		}{
			{`{` + string(rest), ""},
			{`{"v":null,` + string(rest), ""},
			{`{"v":2,` + string(rest), "2"},
			{`{"v":"1",` + string(rest), `"1"`},
			{`{"v":1.0,` + string(rest), "1.0"},
			{`{"v":0,` + string(rest), "0"},
			{`{"v":{"a":1},` + string(rest), `{"a":1}`},
		} {
			_, err := s.decode([]byte(c.payload))
			var ve *VersionError
			if !errors.Is(err, ErrVersion) || !errors.As(err, &ve) || ve.Got != c.got {
				t.Errorf("%s: %s: err = %v", s.name, c.payload, err)
				continue
			}
			if c.got != "" && !strings.Contains(err.Error(), `"v":`+c.got) {
				t.Errorf("%s: the error does not name the version: %v", s.name, err)
			}
		}
	}
	_, err := DecodeAck([]byte(`{"v":2,"eventIds":"a different v2 shape"}`))
	if !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), `"v":2 is not supported`) {
		t.Errorf("a v2 payload of another shape: %v", err)
	}
	_, err = DecodeAck([]byte(`{"eventIds":["a"]}`))
	if err == nil || !strings.Contains(err.Error(), `no "v"`) {
		t.Errorf("missing v: %v", err)
	}
}

func TestSizeRefusals(t *testing.T) {
	pad := func(b []byte, n int) []byte { // valid JSON of n bytes: spaces before the '}'
		return append(append(b[:len(b)-1:len(b)-1], bytes.Repeat([]byte(" "), n-len(b))...), '}')
	}
	for _, s := range samples() {
		good, _ := s.encode()
		limit := MaxPayload
		if s.name == "snapshot part" {
			limit = MaxSnapshotPayload
		}
		if _, err := s.decode(pad(good, limit)); err != nil {
			t.Errorf("%s: %d bytes refused: %v", s.name, limit, err)
		}
		if _, err := s.decode(pad(good, limit+1)); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: %d bytes: err = %v", s.name, limit+1, err)
		}
	}
}

// mutate decodes the JSON of msg into a map, lets f change it, and returns
// the payload.
func mutate(t *testing.T, enc func() ([]byte, error), f func(m map[string]any)) []byte {
	t.Helper()
	b, err := enc()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFieldRefusals(t *testing.T) {
	ss := map[string]sample{}
	for _, s := range samples() {
		ss[s.name] = s
	}
	firstEntry := func(m map[string]any) map[string]any {
		return m["entries"].([]any)[0].(map[string]any)["entry"].(map[string]any)
	}
	firstEvent := func(m map[string]any) map[string]any { return m["events"].([]any)[0].(map[string]any) }
	firstFault := func(m map[string]any) map[string]any { return m["faults"].([]any)[0].(map[string]any) }
	many := func(n int, f func(i int) any) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	evJSON := func(i int) any {
		b, _ := json.Marshal(event(int64(i + 1)))
		var m map[string]any
		json.Unmarshal(b, &m)
		return m
	}
	cases := []struct {
		sample, name, want string
		f                  func(m map[string]any)
	}{
		{"central birth", "session 0", "session 0", func(m map[string]any) { m["session"] = 0 }},
		{"central birth", "negative version", "version -1", func(m map[string]any) { m["version"] = -1 }},
		{"central birth", "no at", "at is missing", func(m map[string]any) { delete(m, "at") }},
		{"central will", "no session", "session 0", func(m map[string]any) { delete(m, "session") }},
		{"central birth", "not an object", "not a JSON object", nil},

		{"changes", "from > to", "from 45 is after to 44", func(m map[string]any) { m["from"] = 45 }},
		{"changes", "negative from", "from -1", func(m map[string]any) { m["from"] = -1 }},
		{"changes", "version not above from", "version 41", func(m map[string]any) { m["entries"].([]any)[0].(map[string]any)["version"] = 41 }},
		{"changes", "version above to", "version 45", func(m map[string]any) { m["entries"].([]any)[1].(map[string]any)["version"] = 45 }},
		{"changes", "versions not increasing", "version 42", func(m map[string]any) { m["entries"].([]any)[1].(map[string]any)["version"] = 42 }},
		{"changes", "unknown state", `state "expired"`, func(m map[string]any) { firstEntry(m)["state"] = "expired" }},
		{"changes", "unknown state word", `state "open"`, func(m map[string]any) { firstEntry(m)["state"] = "open" }},
		{"changes", "empty id", "id is empty", func(m map[string]any) { firstEntry(m)["id"] = "" }},
		{"changes", "empty spot", "spotId is empty", func(m map[string]any) { delete(firstEntry(m), "spotId") }},
		{"changes", "control character", "control characters", func(m map[string]any) { firstEntry(m)["carId"] = "B\x1b[2J" }},
		{"changes", "long car id", "carId is longer", func(m map[string]any) { firstEntry(m)["carId"] = strings.Repeat("X", 65) }},
		{"changes", "no window start", "reservedFrom is missing", func(m map[string]any) { delete(firstEntry(m), "reservedFrom") }},
		{"changes", "empty window", "is not after", func(m map[string]any) { firstEntry(m)["reservedUntil"] = firstEntry(m)["reservedFrom"] }},
		{"changes", "bad time", "parsing time", func(m map[string]any) { firstEntry(m)["reservedFrom"] = "yesterday" }},
		{"changes", "too many entries", "more than 1000", func(m map[string]any) {
			m["to"] = 5000
			m["entries"] = many(MaxChangesEntries+1, func(i int) any {
				return map[string]any{"version": 42 + i, "entry": firstEntry(m)}
			})
		}},

		{"gate birth", "bad gate id", "gateId", func(m map[string]any) { m["gateId"] = "a/b" }},
		{"gate will", "no gate id", "gateId", func(m map[string]any) { delete(m, "gateId") }},
		{"gate birth", "session 0", "session 0", func(m map[string]any) { m["session"] = 0 }},
		{"gate birth", "bad role", `role "side"`, func(m map[string]any) { m["role"] = "side" }},
		{"gate birth", "negative cache version", "cacheVersion -1", func(m map[string]any) { m["cacheVersion"] = -1 }},
		{"gate birth", "negative outbox", "outbox -2", func(m map[string]any) { m["outbox"] = -2 }},
		{"gate birth", "no at", "at is missing", func(m map[string]any) { delete(m, "at") }},
		{"gate birth", "fault without kind", "fault 0: kind is empty", func(m map[string]any) { firstFault(m)["kind"] = "" }},
		{"gate birth", "fault without since", "since and at are required", func(m map[string]any) { delete(firstFault(m), "since") }},
		{"gate birth", "fault error with control", "control characters", func(m map[string]any) { firstFault(m)["error"] = "disk\x1b[2J" }},
		{"gate birth", "fault error too long", "error is longer than 256", func(m map[string]any) { firstFault(m)["error"] = strings.Repeat("x", 257) }},
		{"gate birth", "too many faults", "33 faults", func(m map[string]any) {
			m["faults"] = many(MaxFaults+1, func(i int) any { return firstFault(m) })
		}},

		{"events", "no events", "no events", func(m map[string]any) { m["events"] = []any{} }},
		{"events", "101 events", "101 events, more than 100", func(m map[string]any) { m["events"] = many(101, evJSON) }},
		{"events", "seq not increasing", "want increasing", func(m map[string]any) { m["events"].([]any)[1].(map[string]any)["seq"] = 17 }},
		{"events", "duplicate id", "appears twice", func(m map[string]any) { m["events"].([]any)[1].(map[string]any)["eventId"] = "ev-17" }},
		{"events", "empty event id", "eventId is empty", func(m map[string]any) { firstEvent(m)["eventId"] = "" }},
		{"events", "event id with space", "printable ASCII", func(m map[string]any) { firstEvent(m)["eventId"] = "a b" }},
		{"events", "seq 0", "seq 0", func(m map[string]any) { firstEvent(m)["seq"] = 0 }},
		{"events", "no kind", "kind is empty", func(m map[string]any) { delete(firstEvent(m), "kind") }},
		{"events", "bad role", `role ""`, func(m map[string]any) { delete(firstEvent(m), "role") }},
		{"events", "no time", "time is missing", func(m map[string]any) { delete(firstEvent(m), "time") }},

		{"sync request", "no id", "id is empty", func(m map[string]any) { delete(m, "id") }},
		{"sync request", "negative have", "have -1", func(m map[string]any) { m["have"] = -1 }},
		{"sync request", "no reason", "reason", func(m map[string]any) { delete(m, "reason") }},
		{"sync request", "odd reason", "reason", func(m map[string]any) { m["reason"] = "Gap!" }},

		{"ack", "no ids", "no event ids", func(m map[string]any) { m["eventIds"] = []any{} }},
		{"ack", "empty id", "eventId is empty", func(m map[string]any) { m["eventIds"] = []any{""} }},
		{"ack", "too many ids", "more than 1000", func(m map[string]any) { m["eventIds"] = many(1001, func(i int) any { return fmt.Sprint(i) }) }},

		{"command", "no id", "id is empty", func(m map[string]any) { delete(m, "id") }},
		{"command", "unknown type", `type "reboot"`, func(m map[string]any) { m["type"] = "reboot" }},
		{"command", "no expiry", "expires is missing", func(m map[string]any) { delete(m, "expires") }},

		{"result", "no id", "id is empty", func(m map[string]any) { delete(m, "id") }},
		{"result", "failure without error", "needs an error", func(m map[string]any) { delete(m, "error") }},

		{"snapshot part", "no id", "id is empty", func(m map[string]any) { delete(m, "id") }},
		{"snapshot part", "part 0", "part 0", func(m map[string]any) { m["part"] = 0 }},
		{"snapshot part", "part > parts", "part 3", func(m map[string]any) { m["part"] = 3 }},
		{"snapshot part", "too many parts", "parts 257", func(m map[string]any) { m["parts"] = 257 }},
		{"snapshot part", "negative count", "count -1", func(m map[string]any) { m["count"] = -1 }},
		{"snapshot part", "huge count", "count 1000001", func(m map[string]any) { m["count"] = MaxSnapshotEntries + 1 }},
		{"snapshot part", "negative version", "version -1", func(m map[string]any) { m["version"] = -1 }},
		{"snapshot part", "no data", "no data", func(m map[string]any) { m["gzip"] = "" }},
		{"snapshot part", "not base64", "illegal base64", func(m map[string]any) { m["gzip"] = "%%%" }},
		{"snapshot part", "part too big", "more than 262144", func(m map[string]any) { m["gzip"] = make([]byte, DefaultPartSize+1) }},
	}
	for _, c := range cases {
		s := ss[c.sample]
		payload := []byte(`[1,2,3]`)
		if c.f != nil {
			payload = mutate(t, s.encode, c.f)
		}
		got, err := s.decode(payload)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s, %s: err = %v, want ErrInvalid saying %q", c.sample, c.name, err, c.want)
			continue
		}
		if c.sample != "command" && !reflect.ValueOf(got).IsZero() {
			t.Errorf("%s, %s: a refused message came back non-zero: %+v", c.sample, c.name, got)
		}
	}
}

func TestCommandRefusalKeepsTheID(t *testing.T) {
	c, err := DecodeCommand([]byte(`{"v":1,"id":"c-9","type":"reboot","expires":"2026-05-01T08:00:10Z"}`))
	if !errors.Is(err, ErrInvalid) || c.ID != "c-9" {
		t.Fatalf("got %+v, %v", c, err)
	}
	ok := Command{Expires: t0}
	if ok.Expired(t0.Add(-time.Nanosecond)) || !ok.Expired(t0) || !ok.Expired(t0.Add(time.Second)) {
		t.Error("Expired: the expiry instant itself is expired, a nanosecond before is not")
	}
}

func TestEncodersRefuseWhatDecodersRefuse(t *testing.T) {
	for name, f := range map[string]func() error{
		"changes": func() error { _, err := EncodeChanges(Changes{From: 5, To: 4}); return err },
		"events":  func() error { _, err := EncodeEvents(Events{}); return err },
		"status": func() error {
			_, err := EncodeGateStatus(GateStatus{Online: true, Session: 1, GateID: "g"})
			return err
		},
		"central":  func() error { _, err := EncodeCentralStatus(CentralStatus{}); return err },
		"sync":     func() error { _, err := EncodeSyncRequest(SyncRequest{ID: "x"}); return err },
		"ack":      func() error { _, err := EncodeAck(Ack{}); return err },
		"command":  func() error { _, err := EncodeCommand(Command{ID: "x", Type: CmdOpen}); return err },
		"result":   func() error { _, err := EncodeResult(Result{ID: "x"}); return err },
		"snapshot": func() error { _, err := EncodeSnapshotPart(SnapshotPart{ID: "x"}); return err },
	} {
		if err := f(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}
