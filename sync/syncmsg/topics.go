package syncmsg

import (
	"fmt"
	"strings"
)

// ValidID reports why s cannot be a site or gate id, or nil: 1-32
// lower-case letters, digits, '-' or '_', starting with a letter or digit
// (the rule of centrald's site and gated's gate.id settings). Ids become
// topic levels, so a '/', '+' or '#' in one would route messages to the
// wrong place or turn a topic into a wildcard.
func ValidID(s string) error {
	if len(s) == 0 || len(s) > 32 {
		return fmt.Errorf("id %q: want 1-32 characters", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '_') && i > 0:
		default:
			return fmt.Errorf("id %q: use lower-case letters, digits, '-' or '_', starting with a letter or digit", s)
		}
	}
	return nil
}

// The leaves of a gate's topics, as ParseGateTopic returns them: the part
// after parking/{site}/gates/{gate}/.
const (
	// LeafStatus is the gate's retained birth and will.
	LeafStatus = "status"
	// LeafEvents carries the gate's outbox events.
	LeafEvents = "events"
	// LeafSync carries the gate's resync requests.
	LeafSync = "sync"
	// LeafResult carries the gate's command results.
	LeafResult = "result"
	// LeafAck carries central's acknowledgements of events.
	LeafAck = "in/ack"
	// LeafSnapshot carries central's snapshot parts.
	LeafSnapshot = "in/snapshot"
	// LeafCmd carries central's commands.
	LeafCmd = "in/cmd"
)

// Topics names the topics of one site. Build it with NewTopics; the zero
// Topics names nothing (every method returns "").
type Topics struct {
	site string
	root string // "parking/{site}/"
}

// NewTopics returns the topics of site, which must pass ValidID.
func NewTopics(site string) (Topics, error) {
	if err := ValidID(site); err != nil {
		return Topics{}, fmt.Errorf("syncmsg: site: %w", err)
	}
	return Topics{site: site, root: "parking/" + site + "/"}, nil
}

// Site returns the site the topics belong to.
func (t Topics) Site() string { return t.site }

func (t Topics) central(leaf string) string {
	if t.root == "" {
		return ""
	}
	return t.root + "central/" + leaf
}

// gate returns the topic of a gate's leaf, or "" for an invalid gate id:
// every MQTT client refuses to publish or subscribe to an empty topic, so
// an id that was not validated (say, from an HTTP path) fails there
// instead of reaching another gate's topic or a wildcard.
func (t Topics) gate(gate, leaf string) string {
	if t.root == "" || ValidID(gate) != nil {
		return ""
	}
	return t.root + "gates/" + gate + "/" + leaf
}

// CentralStatus is parking/{site}/central/status: central's retained
// status and will (CentralStatus messages).
func (t Topics) CentralStatus() string { return t.central("status") }

// Changes is parking/{site}/central/changes: the differential updates and
// the heartbeat (Changes messages).
func (t Topics) Changes() string { return t.central("changes") }

// CentralAll is the filter parking/{site}/central/#, which a gate
// subscribes to for central's status and changes.
func (t Topics) CentralAll() string { return t.central("#") }

// GateStatus is parking/{site}/gates/{gate}/status: the gate's retained
// birth and will (GateStatus messages). "" for an invalid gate id.
func (t Topics) GateStatus(gate string) string { return t.gate(gate, LeafStatus) }

// Events is parking/{site}/gates/{gate}/events (Events messages). "" for
// an invalid gate id.
func (t Topics) Events(gate string) string { return t.gate(gate, LeafEvents) }

// Sync is parking/{site}/gates/{gate}/sync (SyncRequest messages). "" for
// an invalid gate id.
func (t Topics) Sync(gate string) string { return t.gate(gate, LeafSync) }

// Result is parking/{site}/gates/{gate}/result (Result messages). "" for
// an invalid gate id.
func (t Topics) Result(gate string) string { return t.gate(gate, LeafResult) }

// Ack is parking/{site}/gates/{gate}/in/ack (Ack messages). "" for an
// invalid gate id.
func (t Topics) Ack(gate string) string { return t.gate(gate, LeafAck) }

// Snapshot is parking/{site}/gates/{gate}/in/snapshot (SnapshotPart
// messages). "" for an invalid gate id.
func (t Topics) Snapshot(gate string) string { return t.gate(gate, LeafSnapshot) }

// Cmd is parking/{site}/gates/{gate}/in/cmd (Command messages). "" for an
// invalid gate id.
func (t Topics) Cmd(gate string) string { return t.gate(gate, LeafCmd) }

// GateInbox is the filter parking/{site}/gates/{gate}/in/#, which a gate
// subscribes to for what central sends it alone; the ACL allows a gate no
// other gate's inbox. "" for an invalid gate id.
func (t Topics) GateInbox(gate string) string { return t.gate(gate, "in/#") }

// AllGateStatus is the filter parking/{site}/gates/+/status, central's
// subscription to every gate's presence.
func (t Topics) AllGateStatus() string { return t.anyGate(LeafStatus) }

// AllEvents is the filter parking/{site}/gates/+/events.
func (t Topics) AllEvents() string { return t.anyGate(LeafEvents) }

// AllSync is the filter parking/{site}/gates/+/sync.
func (t Topics) AllSync() string { return t.anyGate(LeafSync) }

// AllResults is the filter parking/{site}/gates/+/result.
func (t Topics) AllResults() string { return t.anyGate(LeafResult) }

func (t Topics) anyGate(leaf string) string {
	if t.root == "" {
		return ""
	}
	return t.root + "gates/+/" + leaf
}

// ParseGateTopic splits a topic received by central (or a gate) into the
// gate id and the leaf (LeafStatus, LeafEvents, LeafSync, LeafResult,
// LeafAck, LeafSnapshot or LeafCmd). ok is false for a topic of another
// site, an invalid gate id, or a leaf the protocol does not have, so that
// the caller can drop it without looking further.
func (t Topics) ParseGateTopic(topic string) (gate, leaf string, ok bool) {
	if t.root == "" {
		return "", "", false
	}
	rest, found := strings.CutPrefix(topic, t.root+"gates/")
	if !found {
		return "", "", false
	}
	gate, leaf, found = strings.Cut(rest, "/")
	if !found || ValidID(gate) != nil {
		return "", "", false
	}
	switch leaf {
	case LeafStatus, LeafEvents, LeafSync, LeafResult, LeafAck, LeafSnapshot, LeafCmd:
		return gate, leaf, true
	}
	return "", "", false
}
