package bench

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// A daemon that does not stop on SIGTERM is made to show why: stop sends
// SIGQUIT (a Go daemon then prints its goroutines' stacks), and the
// error names the file that keeps all of its output, the stacks included.
func TestStopKeepsTheOutputOfAStuckDaemon(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("needs sh")
	}
	// Ignores SIGTERM (sleep inherits that); SIGQUIT ends it.
	c, err := startChild("stuck", exec.Command(sh, "-c", `trap "" TERM; echo up and waiting; exec sleep 60`))
	if err != nil {
		t.Fatal(err)
	}
	c.grace = 200 * time.Millisecond
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(c.log.String(), "up and waiting") {
		if time.Now().After(deadline) {
			t.Fatal("the child did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	err = c.stop()
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("stop took %v", took)
	}
	if err == nil || !strings.Contains(err.Error(), "did not stop within 200ms of SIGTERM") {
		t.Fatalf("stop = %v", err)
	}
	_, name, ok := strings.Cut(err.Error(), " is in ")
	if !ok {
		t.Fatalf("no file in %q", err)
	}
	t.Cleanup(func() { os.Remove(name) })
	b, err := os.ReadFile(name)
	if err != nil || !strings.Contains(string(b), "up and waiting") {
		t.Errorf("%s holds %q (%v)", name, b, err)
	}
	select {
	case <-c.exited:
	default:
		t.Error("the child still runs")
	}
}
