package syncmsg

import "time"

// The protocol's timing, as docs/sync.md gives it. Both sides default to
// these, so the figures that must agree (a heartbeat well inside the
// gates' timeout, the resend and snapshot waits) live in one place.
const (
	// Keepalive is the MQTT keepalive: a silently dead connection is
	// noticed within about one and a half times it.
	Keepalive = 15 * time.Second
	// RetryMax caps the reconnect backoff: a lane is back within seconds
	// of the broker.
	RetryMax = 5 * time.Second
	// HeartbeatEvery is how often central announces its version when nothing
	// changes.
	HeartbeatEvery = 10 * time.Second
	// HeartbeatTimeout is how long a gate goes without hearing central
	// before it reports itself not online (three heartbeats).
	HeartbeatTimeout = 30 * time.Second
	// ResendAfter is how long an event waits for central's acknowledgement
	// before the gate sends the unacknowledged events again.
	ResendAfter = 5 * time.Second
	// SnapshotTimeout is how long a gate waits for a snapshot (or its next
	// part) before asking again.
	SnapshotTimeout = 10 * time.Second
	// CommandTTL is a command's validity: commands are never replayed
	// after it.
	CommandTTL = 10 * time.Second
)

// The protocol's MQTT quality of service. Every publish is QoS 1: the
// PUBACK tells the sender the broker has the message, and only then does
// it go on (forget a version, count an event as sent). Every subscription
// is QoS 0, so the broker hands messages to a subscriber without keeping
// any state for it beyond the connection: with clean sessions a broker
// redelivers nothing after a disconnect anyway, and what a subscriber can
// miss the protocol repairs (a change by the version gap, a snapshot part
// by its timeout, an event by its resend, a birth by the next one). A QoS 1
// subscription would tie a client to state that a clustered broker keeps
// on one node or behind a leader (a durable queue on RabbitMQ, a
// JetStream consumer on NATS): after that node's crash the client could
// not subscribe anywhere until the node or a new leader came back.
const (
	PublishQoS   byte = 1
	SubscribeQoS byte = 0
)
