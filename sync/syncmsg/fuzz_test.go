package syncmsg

import (
	"testing"
)

// FuzzDecode feeds every decoder the same bytes: none may panic, and what
// one accepts must encode again and decode to an accepted message (so that
// central can relay and a gate can re-send what it was given). Snapshot
// parts also go through an Assembler.
func FuzzDecode(f *testing.F) {
	for _, s := range samples() {
		b, err := s.encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	parts, err := SplitSnapshot("snap-f", 3, siteEntries(20), 0)
	if err != nil {
		f.Fatal(err)
	}
	b, _ := EncodeSnapshotPart(parts[0])
	f.Add(b)
	for _, s := range []string{``, `{}`, `null`, `[]`, `{"v":1}`, `{"v":2}`, `{"v":1,"entries":null}`,
		`{"v":1,"from":1,"to":0}`, `{"v":1,"events":[{}]}`, `{"v":1e400}`, `{"v":1,"gzip":"!!"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		check := func(name string, ok bool, reencode func() ([]byte, error), redecode func([]byte) error) {
			if !ok {
				return
			}
			out, err := reencode()
			if err != nil {
				t.Fatalf("%s: accepted %q but cannot encode it: %v", name, b, err)
			}
			if err := redecode(out); err != nil {
				t.Fatalf("%s: accepted %q, re-encoded %q is refused: %v", name, b, out, err)
			}
		}
		cs, err := DecodeCentralStatus(b)
		check("central status", err == nil, func() ([]byte, error) { return EncodeCentralStatus(cs) },
			func(b []byte) error { _, err := DecodeCentralStatus(b); return err })
		ch, err := DecodeChanges(b)
		check("changes", err == nil, func() ([]byte, error) { return EncodeChanges(ch) },
			func(b []byte) error { _, err := DecodeChanges(b); return err })
		if err == nil {
			for _, have := range []int64{0, ch.From, ch.To, ch.From + 1} {
				Classify(have, ch)
			}
		}
		gs, err := DecodeGateStatus(b)
		check("gate status", err == nil, func() ([]byte, error) { return EncodeGateStatus(gs) },
			func(b []byte) error { _, err := DecodeGateStatus(b); return err })
		ev, err := DecodeEvents(b)
		check("events", err == nil, func() ([]byte, error) { return EncodeEvents(ev) },
			func(b []byte) error { _, err := DecodeEvents(b); return err })
		sr, err := DecodeSyncRequest(b)
		check("sync request", err == nil, func() ([]byte, error) { return EncodeSyncRequest(sr) },
			func(b []byte) error { _, err := DecodeSyncRequest(b); return err })
		ak, err := DecodeAck(b)
		check("ack", err == nil, func() ([]byte, error) { return EncodeAck(ak) },
			func(b []byte) error { _, err := DecodeAck(b); return err })
		cm, err := DecodeCommand(b)
		check("command", err == nil, func() ([]byte, error) { return EncodeCommand(cm) },
			func(b []byte) error { _, err := DecodeCommand(b); return err })
		rs, err := DecodeResult(b)
		check("result", err == nil, func() ([]byte, error) { return EncodeResult(rs) },
			func(b []byte) error { _, err := DecodeResult(b); return err })
		sp, err := DecodeSnapshotPart(b)
		check("snapshot part", err == nil, func() ([]byte, error) { return EncodeSnapshotPart(sp) },
			func(b []byte) error { _, err := DecodeSnapshotPart(b); return err })
		if err == nil {
			var a Assembler
			a.Add(sp)
		}
	})
}
