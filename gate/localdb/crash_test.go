package localdb

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parkgate/parkgate/internal/childproc"
)

// crashEnv names the database a re-executed test binary writes to until it
// is killed.
const crashEnv = "LOCALDB_CRASH_CHILD_DB"

// TestCrashChild is the child side of TestRecordSurvivesSIGKILL: it records
// events as fast as it can and prints "seq id" after each Record returned,
// until the parent kills it.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("only runs as the child of TestRecordSurvivesSIGKILL")
	}
	ctx := context.Background()
	db, err := Open(ctx, path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	start := time.Now()
	for i := 0; i < 1_000_000; i++ {
		ev, err := db.Record(ctx, Event{
			GateID: "entry-1", Role: RoleEntry, Time: start.Add(time.Duration(i) * time.Millisecond),
			Source: SourceQR, Granted: true, Reason: "ticket", ReservationID: fmt.Sprintf("r%d-%d", os.Getpid(), i),
			ClockTrusted: true,
		}, Entered)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		// Unbuffered: the line leaves the process before the next Record
		// starts, so everything the parent reads was committed.
		fmt.Fprintf(os.Stdout, "%d %s %s\n", ev.Seq, ev.EventID, ev.ReservationID)
	}
	os.Exit(0)
}

func TestRecordSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "gate.db")
	type rec struct{ id, res string }
	returned := map[int64]rec{} // seq → what the child saw Record return
	var maxSeq int64

	// Several rounds, killed after different amounts of work, so that the
	// kill lands at different points of a transaction and the sequence has
	// to continue across crashes.
	for round, after := range []int{40, 173, 311} {
		cmd := exec.Command(exe, "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+path)
		cmd.Stderr = os.Stderr
		cmd.SysProcAttr = childproc.Attr()
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		lines := 0
		killed := false
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 {
				continue // test framework chatter
			}
			seq, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				continue
			}
			if _, dup := returned[seq]; dup {
				t.Fatalf("round %d: seq %d handed out twice", round, seq)
			}
			if seq <= maxSeq {
				t.Fatalf("round %d: seq %d after %d", round, seq, maxSeq)
			}
			maxSeq = seq
			returned[seq] = rec{f[1], f[2]}
			lines++
			if lines == after && !killed {
				// Keep reading afterwards: lines already in the pipe
				// were printed after a Record returned.
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				killed = true
			}
		}
		err = cmd.Wait()
		if !killed || err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("round %d: child ended with %v after %d lines, want it killed", round, err, lines)
		}
	}

	ctx := context.Background()
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	events, err := db.Pending(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[int64]Event{}
	var prev int64
	for _, ev := range events {
		if ev.Seq <= prev {
			t.Fatalf("stored seqs not strictly increasing: %d after %d", ev.Seq, prev)
		}
		prev = ev.Seq
		stored[ev.Seq] = ev
	}
	for seq, r := range returned {
		ev, ok := stored[seq]
		if !ok {
			t.Errorf("event seq %d was returned by Record but is lost", seq)
			continue
		}
		if ev.EventID != r.id || ev.ReservationID != r.res {
			t.Errorf("seq %d: stored %s/%s, Record returned %s/%s", seq, ev.EventID, ev.ReservationID, r.id, r.res)
		}
	}
	// Every stored entry has its presence, and nothing else is inside:
	// event and presence commit together or not at all.
	inside, err := db.InsideCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if inside != len(events) {
		t.Errorf("%d cars inside, %d entry events stored", inside, len(events))
	}
	for _, ev := range events {
		if in, _, err := db.Inside(ctx, ev.ReservationID); err != nil || !in {
			t.Errorf("event %d stored, its car not inside (%v)", ev.Seq, err)
		}
	}
	next, err := db.Record(ctx, Event{GateID: "entry-1", Role: RoleEntry, Time: time.Now()}, NoPresenceChange)
	if err != nil {
		t.Fatal(err)
	}
	if next.Seq <= maxSeq || next.Seq <= prev {
		t.Errorf("seq after the crashes %d, not above %d", next.Seq, max(maxSeq, prev))
	}
	t.Logf("%d events returned before the kills, %d stored", len(returned), len(events))
}
