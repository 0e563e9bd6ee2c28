package syncmsg

import "fmt"

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
