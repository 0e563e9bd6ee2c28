// Package syncmsg is the pure codec of the gate ↔ central sync protocol of
// docs/sync.md: the topic names, the JSON payloads with their "v":1 format
// version, the rule that decides whether a gate applies a batch of changes,
// and the cutting and reassembly of compressed snapshots.
//
// It does no I/O and holds no MQTT client, so that both sides (the gate's
// sync and centrald's relay) share one definition of every message and can
// test it without a broker. Decoders take bytes straight off the network:
// they bound sizes, refuse an unknown format version by name, and check
// every field, so that the code behind them handles only well-formed
// messages. Encoders apply the same checks, so that a sender learns of a
// message its receiver would refuse before publishing it.
//
// It is a leaf: it imports only the standard library (a test checks this),
// so that a gate written by someone else can speak the protocol with this
// package and an MQTT client alone. The conversions to and from parkgate's
// own databases live with the side that owns each: centralsync turns the
// change log into batches, gatesync turns batches into the gate's cache and
// the outbox into events.
package syncmsg
