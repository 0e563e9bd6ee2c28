// Package centralsync is centrald's side of the gate ↔ central sync of
// docs/sync.md, over one MQTT client (paho) to the embedded or an external
// broker:
//
//   - the relay publishes the change log, in commit order, as batches of
//     differential updates on central/changes, and an empty heartbeat when
//     nothing changes, so that every gate holds one unbroken version line.
//     It records in the store how far it got (store.Tx.SetRelayPosition),
//     so that a relay that starts — a restart, or a new leader of several
//     instances (Config.Leader) — goes on from there;
//   - resyncs answer a gate's sync request with a compressed snapshot of
//     what gates need to know, at a version of that same line;
//   - events from the gates' outboxes are stored and applied through
//     booking (Service.ApplyGateEvent, which checks them against the
//     gate's registered role) and acknowledged only once stored; those
//     of a gate whose role is not recorded yet wait for its birth;
//   - presence: gate births and wills (and any message a gate sends) keep
//     the gates table (GET /gates) current — a gate is online only after
//     a birth received live on its current connection, which every gate
//     makes again when central's birth comes; a birth records the role of
//     a gate that has none and never replaces one (Config.RoleFromBirth
//     aside) — and central's own retained status and will tell the gates
//     whether central is there;
//   - commands (open, resync) go to one gate with an id and an expiry and
//     wait for the gate's result.
//
// Relay.Serve owns the connection (its own reconnect loop, so that every
// (re)connection gets a fresh session number in its will and birth) and
// every worker goroutine, and waits for all of them before it returns.
// MQTT callbacks never block: they hand messages to in-memory queues that
// the workers drain, because a paho callback that waits (say, for the PUBACK
// of an acknowledgement) would stop the client from reading that PUBACK.
package centralsync
