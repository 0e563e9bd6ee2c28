package syncmsg

import (
	"strings"
	"testing"
)

func TestTopicsMatchTheTable(t *testing.T) {
	tp, err := NewTopics("lot-7")
	if err != nil {
		t.Fatal(err)
	}
	if tp.Site() != "lot-7" {
		t.Errorf("Site() = %q", tp.Site())
	}
	for _, c := range []struct{ got, want string }{
		{tp.CentralStatus(), "parking/lot-7/central/status"},
		{tp.Changes(), "parking/lot-7/central/changes"},
		{tp.CentralAll(), "parking/lot-7/central/#"},
		{tp.GateStatus("entry-1"), "parking/lot-7/gates/entry-1/status"},
		{tp.Events("entry-1"), "parking/lot-7/gates/entry-1/events"},
		{tp.Sync("entry-1"), "parking/lot-7/gates/entry-1/sync"},
		{tp.Result("entry-1"), "parking/lot-7/gates/entry-1/result"},
		{tp.Ack("entry-1"), "parking/lot-7/gates/entry-1/in/ack"},
		{tp.Snapshot("entry-1"), "parking/lot-7/gates/entry-1/in/snapshot"},
		{tp.Cmd("entry-1"), "parking/lot-7/gates/entry-1/in/cmd"},
		{tp.GateInbox("entry-1"), "parking/lot-7/gates/entry-1/in/#"},
		{tp.AllGateStatus(), "parking/lot-7/gates/+/status"},
		{tp.AllEvents(), "parking/lot-7/gates/+/events"},
		{tp.AllSync(), "parking/lot-7/gates/+/sync"},
		{tp.AllResults(), "parking/lot-7/gates/+/result"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestTopicsRefuseBadIDs(t *testing.T) {
	for _, site := range []string{"", "Lot", "lot/7", "lot+", "#", "-lot", "_lot", "lot 7", "lot.7", strings.Repeat("a", 33), "é"} {
		if _, err := NewTopics(site); err == nil {
			t.Errorf("NewTopics(%q) accepted", site)
		}
	}
	for _, ok := range []string{"a", "7", "lot_7-b", strings.Repeat("a", 32)} {
		if _, err := NewTopics(ok); err != nil {
			t.Errorf("NewTopics(%q): %v", ok, err)
		}
	}
	tp, _ := NewTopics("lot")
	for _, gate := range []string{"", "+", "#", "a/b", "Gate", "a b", strings.Repeat("g", 33)} {
		for name, got := range map[string]string{
			"GateStatus": tp.GateStatus(gate), "Events": tp.Events(gate), "Sync": tp.Sync(gate),
			"Result": tp.Result(gate), "Ack": tp.Ack(gate), "Snapshot": tp.Snapshot(gate),
			"Cmd": tp.Cmd(gate), "GateInbox": tp.GateInbox(gate),
		} {
			if got != "" {
				t.Errorf("%s(%q) = %q, want \"\"", name, gate, got)
			}
		}
	}
	var zero Topics
	if zero.CentralStatus() != "" || zero.AllEvents() != "" || zero.Cmd("g") != "" {
		t.Error("the zero Topics names topics")
	}
	if _, _, ok := zero.ParseGateTopic("parking//gates/g/status"); ok {
		t.Error("the zero Topics parses topics")
	}
}

func TestParseGateTopic(t *testing.T) {
	tp, _ := NewTopics("lot")
	for _, c := range []struct {
		topic, gate, leaf string
		ok                bool
	}{
		{"parking/lot/gates/entry-1/status", "entry-1", LeafStatus, true},
		{"parking/lot/gates/entry-1/events", "entry-1", LeafEvents, true},
		{"parking/lot/gates/e/sync", "e", LeafSync, true},
		{"parking/lot/gates/e/result", "e", LeafResult, true},
		{"parking/lot/gates/e/in/ack", "e", LeafAck, true},
		{"parking/lot/gates/e/in/snapshot", "e", LeafSnapshot, true},
		{"parking/lot/gates/e/in/cmd", "e", LeafCmd, true},
		{"parking/other/gates/e/status", "", "", false},
		{"parking/lot/gates/E/status", "", "", false},
		{"parking/lot/gates/+/status", "", "", false},
		{"parking/lot/gates//status", "", "", false},
		{"parking/lot/gates/e/unknown", "", "", false},
		{"parking/lot/gates/e/status/extra", "", "", false},
		{"parking/lot/gates/e/in", "", "", false},
		{"parking/lot/gates/e", "", "", false},
		{"parking/lot/central/status", "", "", false},
		{"parking/lotx/gates/e/status", "", "", false},
		{"", "", "", false},
	} {
		gate, leaf, ok := tp.ParseGateTopic(c.topic)
		if gate != c.gate || leaf != c.leaf || ok != c.ok {
			t.Errorf("ParseGateTopic(%q) = %q, %q, %v; want %q, %q, %v", c.topic, gate, leaf, ok, c.gate, c.leaf, c.ok)
		}
	}
	// What the builders make, the parser reads back.
	for leaf, topic := range map[string]string{
		LeafStatus: tp.GateStatus("g1"), LeafEvents: tp.Events("g1"), LeafSync: tp.Sync("g1"),
		LeafResult: tp.Result("g1"), LeafAck: tp.Ack("g1"), LeafSnapshot: tp.Snapshot("g1"), LeafCmd: tp.Cmd("g1"),
	} {
		if g, l, ok := tp.ParseGateTopic(topic); !ok || g != "g1" || l != leaf {
			t.Errorf("ParseGateTopic(%q) = %q, %q, %v", topic, g, l, ok)
		}
	}
}
