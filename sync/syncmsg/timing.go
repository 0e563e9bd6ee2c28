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
