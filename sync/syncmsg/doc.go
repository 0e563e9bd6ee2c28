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
// The package converts between the protocol's types and the gate's cache
// (gate/localdb) and centrald's change log (central/store) only through
// those packages' types; it never opens their databases.
package syncmsg
