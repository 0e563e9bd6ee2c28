package syncmsg

import (
	"reflect"
	"strings"
	"testing"
)

// Above keeps the part of a batch a gate holding a version inside it
// still needs, and leaves every other batch as it is.
func TestChangesAbove(t *testing.T) {
	e := func(v int64, id string) VersionedEntry {
		return VersionedEntry{Version: v, Entry: Entry{ID: id}}
	}
	c := Changes{V: 1, From: 12, To: 16, Entries: []VersionedEntry{e(13, "a"), e(15, "b"), e(16, "c")}}
	for _, tc := range []struct {
		have int64
		want Changes
	}{
		{14, Changes{V: 1, From: 14, To: 16, Entries: []VersionedEntry{e(15, "b"), e(16, "c")}}},
		{15, Changes{V: 1, From: 15, To: 16, Entries: []VersionedEntry{e(16, "c")}}},
		{13, Changes{V: 1, From: 13, To: 16, Entries: []VersionedEntry{e(15, "b"), e(16, "c")}}},
		{12, c}, // follows: nothing to trim
		{10, c}, // a gap stays a gap
		{16, c}, // a repeat stays a repeat
		{20, c},
	} {
		got := c.Above(tc.have)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Above(%d) = %+v, want %+v", tc.have, got, tc.want)
		}
		if tc.have > c.From && tc.have < c.To && Classify(tc.have, got) != Apply {
			t.Errorf("Above(%d) gives a batch Classify does not apply: %v", tc.have, Classify(tc.have, got))
		}
	}
	// Versions after the last entry: the trimmed batch has no entry and
	// still moves the gate to To.
	tail := Changes{V: 1, From: 20, To: 25, Entries: []VersionedEntry{e(21, "a")}}
	if got := tail.Above(22); got.From != 22 || got.To != 25 || len(got.Entries) != 0 {
		t.Errorf("Above(22) of (20, 25] = %+v, want (22, 25] without entries", got)
	}
	if b, err := EncodeChanges(tail.Above(22)); err != nil || string(b) != `{"v":1,"from":22,"to":25}` {
		t.Errorf("encoded: %s, %v", b, err)
	}
}

// A snapshot part carries the request it answers through the codec, and a
// request id no sync request could have is refused.
func TestSnapshotPartRequest(t *testing.T) {
	parts, err := SplitSnapshot("snap-1", 3, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := parts[0]
	p.Request = "17-2"
	b, err := EncodeSnapshotPart(p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeSnapshotPart(b)
	if err != nil || got.Request != "17-2" {
		t.Fatalf("decoded %+v, %v; want request 17-2", got, err)
	}
	p.Request = "has space"
	if _, err := EncodeSnapshotPart(p); err == nil {
		t.Error("a request id with a space was encoded")
	}
	p.Request = ""
	if b, _ := EncodeSnapshotPart(p); strings.Contains(string(b), "request") {
		t.Errorf("a part answering no request has the field: %s", b)
	}
}
