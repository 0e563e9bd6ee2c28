package centralsync

// The conversions from centrald's reservations and change log
// (central/reservation, central/store) to the protocol's types (syncmsg).
// They live here, not in syncmsg, so that the protocol package stays a
// leaf another gate implementation can import without parkgate's store.

import (
	"fmt"

	"github.com/parkgate/parkgate/central/reservation"
	"github.com/parkgate/parkgate/central/store"
	"github.com/parkgate/parkgate/sync/syncmsg"
)

// gateRelevant reports whether gates are told of r as it now is: a
// reservation that was paid (PaidAt set, which operator pushes set too) in
// a state that admits (paid, taken) or ends it (left, cancelled, no_show).
// A reservation never paid, expired or cancelled before payment, never
// gave a ticket a gate would honour, so it is neither sent nor revoked.
func gateRelevant(r reservation.Reservation) bool {
	if r.PaidAt.IsZero() {
		return false
	}
	return syncmsg.State(r.State).Valid()
}

// entryFromReservation returns r as gates cache it, and whether gates are
// told of it at all (gateRelevant).
func entryFromReservation(r reservation.Reservation) (syncmsg.Entry, bool) {
	if !gateRelevant(r) {
		return syncmsg.Entry{}, false
	}
	return syncmsg.Entry{
		ID:     r.ID,
		SpotID: r.SpotID,
		From:   r.From.UTC(),
		Until:  r.Until.UTC(),
		CarID:  r.CarID,
		State:  syncmsg.State(r.State),
	}, true
}

// batchFromLog turns change-log entries read after version from (store's
// Changes(ctx, from, limit)) into one batch covering (from, last version]:
// an entry for every change whose reservation is GateRelevant afterwards,
// none for the others (spot changes, unpaid reservations, declined
// payments), which the batch covers all the same. An empty log gives the
// heartbeat at from.
//
// The log must be in version order above from, which store guarantees; a
// log that is not, or that has more gate-relevant changes than
// syncmsg.MaxChangesEntries (read at most that many), is an error, since sending
// it would let gates skip a change.
func batchFromLog(from int64, log []store.Change) (syncmsg.Changes, error) {
	if from < 0 {
		return syncmsg.Changes{}, fmt.Errorf("centralsync: batch from version %d: negative", from)
	}
	c := syncmsg.Changes{V: syncmsg.FormatVersion, From: from, To: from}
	for i := range log {
		lc := &log[i]
		if lc.Version <= c.To {
			return syncmsg.Changes{}, fmt.Errorf("centralsync: change log entry %d has version %d after %d: want increasing versions above %d",
				i+1, lc.Version, c.To, from)
		}
		c.To = lc.Version
		if lc.Reservation == nil {
			continue
		}
		e, ok := entryFromReservation(*lc.Reservation)
		if !ok {
			continue
		}
		if len(c.Entries) == syncmsg.MaxChangesEntries {
			return syncmsg.Changes{}, fmt.Errorf("centralsync: more than %d gate-relevant changes after version %d: read at most %d change-log entries per batch",
				syncmsg.MaxChangesEntries, from, syncmsg.MaxChangesEntries)
		}
		c.Entries = append(c.Entries, syncmsg.VersionedEntry{Version: lc.Version, Entry: e})
	}
	return c, nil
}
