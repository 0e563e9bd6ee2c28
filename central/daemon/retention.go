package daemon

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/parkgate/parkgate/central/config"
	"github.com/parkgate/parkgate/central/retention"
	"github.com/parkgate/parkgate/central/store"
)

// Prune is `centrald prune`: it erases now the personal data that
// retention.personal_data says is due at now (dryRun: it only counts it,
// changing nothing), and prints what on out, counts and times only.
func Prune(ctx context.Context, cfg config.Config, now time.Time, dryRun bool, out io.Writer) error {
	keep := cfg.PersonalDataKeep()
	if keep <= 0 {
		fmt.Fprintln(out, "retention.personal_data is off: personal data is kept, nothing to erase")
		return nil
	}
	st, err := OpenStore(ctx, cfg)
	if err != nil {
		return fmt.Errorf("opening the database: %w", err)
	}
	defer st.Close()
	before := now.Add(-keep)
	var e store.Erasure
	verb := "erased"
	if dryRun {
		verb = "would erase"
		e, err = st.PersonalData(ctx, before)
	} else {
		e, err = retention.Erase(ctx, st, before, retention.DefaultBatch)
	}
	// Print what was done even after an error: the batches before it are
	// committed.
	printErasure(out, verb, before, e)
	return err
}

// printErasure says what an erasure did (or would do) in a few lines.
func printErasure(out io.Writer, verb string, before time.Time, e store.Erasure) {
	day := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	fmt.Fprintf(out, "personal data of reservations finished, and of gate events received and notes logged, before %s (retention.personal_data)\n", day(before))
	fmt.Fprintf(out, "%s: %d reservations (plate, token hash)", verb, e.Reservations)
	if e.Reservations > 0 {
		fmt.Fprintf(out, ", finished %s to %s", day(e.OldestEnded), day(e.NewestEnded))
	}
	fmt.Fprintf(out, "\n%s: %d payment attempts (plate, payment method, customer, idempotency records)\n", verb, e.Attempts)
	fmt.Fprintf(out, "%s: %d change-log entries (plate, note)\n", verb, e.Changes)
	fmt.Fprintf(out, "%s: %d gate events (plate, the gate's text, the resolution's note)", verb, e.GateEvents)
	if e.GateEvents > 0 {
		fmt.Fprintf(out, ", received %s to %s", day(e.OldestReceived), day(e.NewestReceived))
	}
	fmt.Fprintf(out, "\n%s: %d notes of change-log entries of no reservation (gate openings, resolved gate exceptions)\n", verb, e.Notes)
}
