package syncmsg

import (
	"fmt"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/gate/localdb"
)

// Verdict is what a gate does with a Changes batch.
type Verdict int

// The verdicts of Classify.
const (
	// Apply: the batch follows the version held; apply every entry and
	// hold To, in one transaction.
	Apply Verdict = iota + 1
	// Repeat: the gate already holds To; ignore the batch.
	Repeat
	// Gap: the batch does not follow the version held; ask for a resync
	// (ReasonGap, or ReasonStale for a heartbeat) and ignore batches until
	// a snapshot has been applied.
	Gap
)

// String names the verdict, for logs.
func (v Verdict) String() string {
	switch v {
	case Apply:
		return "apply"
	case Repeat:
		return "repeat"
	case Gap:
		return "gap"
	}
	return fmt.Sprintf("Verdict(%d)", int(v))
}

// Classify applies docs/sync.md's rule to a gate holding version have:
// have == From applies, have >= To is a repeat, anything else (have <
// From, or From < have < To) is a gap. A gate trims a batch it holds a
// version inside of (From < have < To) with Changes.Above first, which
// makes it one to apply. A heartbeat at the version held
// (From == To == have) fits both of the first two; it is a Repeat, since
// applying nothing and holding what is held is ignoring it, without the
// write. A batch with From > To (which DecodeChanges refuses) is a Gap,
// the answer that repairs anything.
func Classify(have int64, c Changes) Verdict {
	switch {
	case c.From > c.To:
		return Gap
	case have >= c.To:
		return Repeat
	case have == c.From:
		return Apply
	}
	return Gap
}

// LocalChanges turns a batch into the gate cache's changes, to give to
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
func LocalChanges(c Changes) []localdb.Change {
	if c.From >= c.To {
		return nil
	}
	out := make([]localdb.Change, 0, len(c.Entries)+1)
	prev := c.From
	for _, ve := range c.Entries {
		out = append(out, localdb.Change{Prev: prev, Version: ve.Version, Entry: ve.Entry.Local()})
		prev = ve.Version
	}
	if prev < c.To {
		out = append(out, localdb.Change{Prev: prev, Version: c.To})
	}
	return out
}

// Local returns e as the gate's cache stores it.
func (e Entry) Local() localdb.Entry {
	return localdb.Entry{
		ReservationID: e.ID,
		SpotID:        e.SpotID,
		From:          e.From,
		Until:         e.Until,
		CarID:         e.CarID,
		State:         localdb.State(e.State),
	}
}

// LocalEntries returns entries as the gate's cache stores them, for
// localdb's ApplySnapshot.
func LocalEntries(entries []Entry) []localdb.Entry {
	out := make([]localdb.Entry, len(entries))
	for i := range entries {
		out[i] = entries[i].Local()
	}
	return out
}

// GateRelevant reports whether gates are told of r as it now is: a
// reservation that was paid (PaidAt set, which operator pushes set too) in
// a state that admits (paid, taken) or ends it (left, cancelled, no_show).
// A reservation never paid, expired or cancelled before payment, never
// gave a ticket a gate would honour, so it is neither sent nor revoked.
func GateRelevant(r reservation.Reservation) bool {
	if r.PaidAt.IsZero() {
		return false
	}
	return State(r.State).Valid()
}

// EntryFromReservation returns r as gates cache it, and whether gates are
// told of it at all (GateRelevant).
func EntryFromReservation(r reservation.Reservation) (Entry, bool) {
	if !GateRelevant(r) {
		return Entry{}, false
	}
	return Entry{
		ID:     r.ID,
		SpotID: r.SpotID,
		From:   r.From.UTC(),
		Until:  r.Until.UTC(),
		CarID:  r.CarID,
		State:  State(r.State),
	}, true
}

// BatchFromLog turns change-log entries read after version from (store's
// Changes(ctx, from, limit)) into one batch covering (from, last version]:
// an entry for every change whose reservation is GateRelevant afterwards,
// none for the others (spot changes, unpaid reservations, declined
// payments), which the batch covers all the same. An empty log gives the
// heartbeat at from.
//
// The log must be in version order above from, which store guarantees; a
// log that is not, or that has more gate-relevant changes than
// MaxChangesEntries (read at most that many), is an error, since sending
// it would let gates skip a change.
func BatchFromLog(from int64, log []store.Change) (Changes, error) {
	if from < 0 {
		return Changes{}, fmt.Errorf("syncmsg: batch from version %d: negative", from)
	}
	c := Changes{V: FormatVersion, From: from, To: from}
	for i := range log {
		lc := &log[i]
		if lc.Version <= c.To {
			return Changes{}, fmt.Errorf("syncmsg: change log entry %d has version %d after %d: want increasing versions above %d",
				i+1, lc.Version, c.To, from)
		}
		c.To = lc.Version
		if lc.Reservation == nil {
			continue
		}
		e, ok := EntryFromReservation(*lc.Reservation)
		if !ok {
			continue
		}
		if len(c.Entries) == MaxChangesEntries {
			return Changes{}, fmt.Errorf("syncmsg: more than %d gate-relevant changes after version %d: read at most %d change-log entries per batch",
				MaxChangesEntries, from, MaxChangesEntries)
		}
		c.Entries = append(c.Entries, VersionedEntry{Version: lc.Version, Entry: e})
	}
	return c, nil
}

// EventFromLocal returns an outbox event as it travels to central. The
// gate id is left out: the topic carries it, and the broker's ACL makes
// sure it is the sender's.
func EventFromLocal(ev localdb.Event) Event {
	return Event{
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
