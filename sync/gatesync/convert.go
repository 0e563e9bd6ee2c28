package gatesync

// The conversions between the protocol's types (syncmsg) and the gate's
// cache and outbox (gate/localdb). They live here, not in syncmsg, so that
// the protocol package stays a leaf another gate implementation can import
// without parkgate's databases.

import (
	"github.com/parkgate/parkgate/gate/localdb"
	"github.com/parkgate/parkgate/sync/syncmsg"
)

// localChanges turns a batch into the gate cache's changes, to give to
// localdb's ApplyChanges in one call (one transaction). The changes chain:
// the first applies on top of From, each next on top of the previous
// one's version, so ApplyChanges itself refuses a batch that does not
// follow what the cache holds.
//
// When the batch's last entry is below To (the versions after it concern
// no gate), or the batch has no entry though From < To, the result ends
// with a version marker: a Change with Prev = the last version, Version =
// To and the zero Entry, which stands for "hold To". Without it a gate
// would hold the last entry's version, and the next batch (From = To)
// would look like a gap. localdb must accept the marker: ApplyChanges
// skips Entry.Validate for a Change whose Entry is the zero Entry, checks
// its Prev against the version held like any change, writes no row, and
// stores the held version even when no row was written. A heartbeat
// (From == To) gives no change at all.
func localChanges(c syncmsg.Changes) []localdb.Change {
	if c.From >= c.To {
		return nil
	}
	out := make([]localdb.Change, 0, len(c.Entries)+1)
	prev := c.From
	for _, ve := range c.Entries {
		out = append(out, localdb.Change{Prev: prev, Version: ve.Version, Entry: localEntry(ve.Entry)})
		prev = ve.Version
	}
	if prev < c.To {
		out = append(out, localdb.Change{Prev: prev, Version: c.To})
	}
	return out
}

// localEntry returns e as the gate's cache stores it.
func localEntry(e syncmsg.Entry) localdb.Entry {
	return localdb.Entry{
		ReservationID: e.ID,
		SpotID:        e.SpotID,
		From:          e.From,
		Until:         e.Until,
		CarID:         e.CarID,
		State:         localdb.State(e.State),
	}
}

// localEntries returns entries as the gate's cache stores them, for
// localdb's ApplySnapshot.
func localEntries(entries []syncmsg.Entry) []localdb.Entry {
	out := make([]localdb.Entry, len(entries))
	for i := range entries {
		out[i] = localEntry(entries[i])
	}
	return out
}

// eventFromLocal returns an outbox event as it travels to central. The
// gate id is left out: the topic carries it, and the broker's ACL makes
// sure it is the sender's.
func eventFromLocal(ev localdb.Event) syncmsg.Event {
	return syncmsg.Event{
		EventID:         ev.EventID,
		Seq:             ev.Seq,
		Kind:            string(ev.Kind),
		Role:            string(ev.Role),
		Time:            ev.Time.UTC(),
		Source:          string(ev.Source),
		Granted:         ev.Granted,
		Reason:          ev.Reason,
		ReservationID:   ev.ReservationID,
		SpotID:          ev.SpotID,
		CarID:           ev.CarID,
		Overstay:        ev.Overstay,
		PresenceUnknown: ev.PresenceUnknown,
		ClockTrusted:    ev.ClockTrusted,
		Plate:           ev.Plate,
		Detail:          ev.Detail,
	}
}
